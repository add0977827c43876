//! keygen, encrypt, decrypt, demo and --help, driven through the built binary.

use crate::common::*;
use msgraph_notify::{Certificate, PrivateKey};
use serde_json::{Value, json};

#[test]
fn keygen_writes_a_private_key_0600_and_prints_the_subscription_fields() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("keys");
    let out = run(
        &[
            "keygen",
            "--out",
            &s(&out_dir),
            "--cert-id",
            "receiver-2026",
            "--bits",
            "2048",
            "--days",
            "30",
        ],
        b"",
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(printed["encryptionCertificateId"], "receiver-2026");

    let key_bytes = std::fs::read(out_dir.join("key.pem")).unwrap();
    assert!(text(&key_bytes).starts_with("-----BEGIN PRIVATE KEY-----"));
    let (key, _) = PrivateKey::load(&key_bytes, None).unwrap();
    assert_eq!(key.bits(), 2048);
    let cert = Certificate::load(&std::fs::read(out_dir.join("cert.pem")).unwrap()).unwrap();
    assert!(cert.matches(&key));
    assert_eq!(
        printed["encryptionCertificate"],
        cert.encryption_certificate()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out_dir.join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "key.pem mode {mode:o}");
    }

    // An existing key is not overwritten without --force.
    let again = run(&["keygen", "--out", &s(&out_dir)], b"");
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again.stderr).contains("--force"));
    // Bad sizes are refused by the option parser.
    assert_eq!(
        run(&["keygen", "--out", &s(&out_dir), "--bits", "1024"], b"")
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn encrypt_then_decrypt_round_trip_with_a_signed_token() {
    let fx = Fixture::new();
    let issuer_key = fx.path("issuer.pem");
    std::fs::write(
        &issuer_key,
        PrivateKey::generate(2048)
            .unwrap()
            .to_pkcs8_pem()
            .as_bytes(),
    )
    .unwrap();
    let jwks = fx.path("issuer-jwks.json");
    let resources = json!([
        {"@odata.type": "#microsoft.graph.presence", "id": "u1", "availability": "Away"},
        {"id": "1700000000000", "chatId": "19:c@thread.v2", "messageType": "message",
         "body": {"contentType": "text", "content": "héllo"}},
    ]);
    let enc = run(
        &[
            "encrypt",
            "--cert",
            &s(&fx.cert_path),
            "--cert-id",
            CERT_ID,
            "--tenant",
            TENANT,
            "--change-type",
            "created",
            "--client-state",
            CLIENT_STATE,
            "--token-key",
            &s(&issuer_key),
            "--token-kid",
            "kid-1",
            "--app-id",
            APP_ID,
            "--jwks-out",
            &s(&jwks),
            "-",
        ],
        resources.to_string().as_bytes(),
    );
    assert!(enc.status.success(), "stderr: {}", text(&enc.stderr));
    let body: Value = serde_json::from_slice(&enc.stdout).unwrap();
    assert_eq!(body["value"].as_array().unwrap().len(), 2);
    assert_eq!(
        body["value"][0]["encryptedContent"]["encryptionCertificateId"],
        CERT_ID
    );
    assert_eq!(
        body["value"][1]["resource"],
        "chats('19:c@thread.v2')/messages('1700000000000')"
    );
    let body_path = fx.path("body.json");
    std::fs::write(&body_path, &enc.stdout).unwrap();

    let dec = run(
        &[
            "decrypt",
            "--key",
            &format!("{CERT_ID}={}", fx.key_path.display()),
            "--jwks",
            &s(&jwks),
            "--app-id",
            APP_ID,
            "--tenant",
            TENANT,
            "--client-state",
            CLIENT_STATE,
            &s(&body_path),
        ],
        b"",
    );
    assert_eq!(dec.status.code(), Some(0), "stderr: {}", text(&dec.stderr));
    let items = lines(&dec);
    assert_eq!(items.len(), 2);
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item["index"], i);
        assert_eq!(item["status"], "decrypted");
        assert_eq!(item["data"], resources[i]);
        assert_eq!(item["tenantId"], TENANT);
        assert_eq!(item["changeType"], "created");
    }

    // A bare key path with a --cert: served by thumbprint; input from stdin.
    let dec = run(
        &[
            "decrypt",
            "--key",
            &s(&fx.key_path),
            "--cert",
            &s(&fx.cert_path),
            "--jwks",
            &s(&jwks),
            "--app-id",
            APP_ID,
            "--client-state",
            CLIENT_STATE,
            "-",
        ],
        &enc.stdout,
    );
    assert_eq!(dec.status.code(), Some(0), "stderr: {}", text(&dec.stderr));
    assert_eq!(lines(&dec).len(), 2);

    // Subscriptions bound to apps: `decrypt` of the same body with these options added.
    let subscription = body["value"][0]["subscriptionId"].as_str().unwrap();
    let key = s(&fx.key_path);
    let jwks = s(&jwks);
    let decrypt_with = |extra: &[&str]| {
        let mut args = vec!["decrypt", "--key", &key, "--jwks", &jwks];
        args.extend_from_slice(&["--client-state", CLIENT_STATE]);
        args.extend_from_slice(extra);
        args.push("-");
        run(&args, &enc.stdout)
    };
    // Bound to another receiving app: the token (issued to APP_ID) no longer covers its items.
    let to_other = format!("{subscription}=other-app");
    let dec = decrypt_with(&[
        "--app-id",
        APP_ID,
        "--app-id",
        "other-app",
        "--subscription-app",
        &to_other,
    ]);
    assert_eq!(dec.status.code(), Some(1), "stderr: {}", text(&dec.stderr));
    for item in lines(&dec) {
        assert_eq!(item["status"], "rejected");
        assert!(
            item["error"].as_str().unwrap().contains("other-app"),
            "{item}"
        );
    }
    // Only bound subscriptions, and this one is not: rejected. Bound to APP_ID (in another
    // case): decrypted.
    let strict = |binding: &str| {
        decrypt_with(&[
            "--app-id",
            APP_ID,
            "--subscription-app",
            binding,
            "--only-bound-subscriptions",
        ])
    };
    let dec = strict(&format!("another-subscription={APP_ID}"));
    assert_eq!(dec.status.code(), Some(1), "stderr: {}", text(&dec.stderr));
    assert!(lines(&dec).iter().all(|i| i["status"] == "rejected"));
    let dec = strict(&format!("{}={APP_ID}", subscription.to_uppercase()));
    assert_eq!(dec.status.code(), Some(0), "stderr: {}", text(&dec.stderr));
    // Unusable bindings are exit 2: no app, no subscription, an app that is not --app-id,
    // and a binding while tokens are skipped.
    let unusable: [&[&str]; 4] = [
        &["--app-id", APP_ID, "--subscription-app", "sub="],
        &["--app-id", APP_ID, "--subscription-app", "=app"],
        &[
            "--app-id",
            APP_ID,
            "--subscription-app",
            "sub=not-an-app-id",
        ],
        &["--insecure-skip-tokens", "--subscription-app", "sub=app"],
    ];
    for args in unusable {
        let dec = decrypt_with(args);
        let stderr = text(&dec.stderr);
        assert_eq!(dec.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("subscription") && !stderr.contains("cannot be used"),
            "{stderr}"
        );
    }
}

#[test]
fn decrypt_exit_codes() {
    let fx = Fixture::new();
    let args = fx.receiver_args();
    let decrypt = |extra: &[&str], stdin: &[u8]| {
        let mut all: Vec<&str> = vec!["decrypt"];
        all.extend(args.iter().map(String::as_str));
        all.extend(extra);
        all.push("-");
        run(&all, stdin)
    };

    // 0: everything verifies; basic and lifecycle items pass too.
    let mut lifecycle = json!({"subscriptionId": "s1", "lifecycleEvent": "reauthorizationRequired",
                               "clientState": CLIENT_STATE, "tenantId": TENANT});
    let body = fx.body(vec![fx.item(&Fixture::presence("u1")), lifecycle.clone()]);
    let out = decrypt(&[], &body);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let items = lines(&out);
    assert_eq!(items[0]["status"], "decrypted");
    assert_eq!(items[1]["status"], "lifecycle");
    assert_eq!(items[1]["lifecycleEvent"], "reauthorizationRequired");

    // 1: one item rejected (wrong clientState), the others still reported, in order.
    lifecycle["clientState"] = json!("wrong");
    let body = fx.body(vec![fx.item(&Fixture::presence("u1")), lifecycle]);
    let out = decrypt(&[], &body);
    assert_eq!(out.status.code(), Some(1));
    let items = lines(&out);
    assert_eq!(items[0]["status"], "decrypted");
    assert_eq!(items[1]["status"], "rejected");
    assert!(items[1]["error"].as_str().unwrap().contains("clientState"));

    // 1: a forged token.
    let out = decrypt(&[], &fx.forged_body("u2"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(lines(&out)[0]["status"], "rejected");

    // 2: unusable input, with the reason on stderr and nothing on stdout.
    for (input, reason) in [
        (&b"not json at all"[..], "not JSON"),
        (b"{\"value\": 3}", "not an array"),
        (b"{\"value\": {\"a\": 1}}", "not an array"),
        (b"{}", "value"),
        (b"", "an empty body"),
    ] {
        let out = decrypt(&[], input);
        assert_eq!(out.status.code(), Some(2), "input {:?}", text(input));
        assert!(
            text(&out.stderr).contains(reason),
            "stderr: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }

    // 2: a key that does not load, a missing file, missing --app-id.
    let out = run(
        &[
            "decrypt",
            "--key",
            &s(&fx.cert_path),
            "--insecure-skip-tokens",
            "-",
        ],
        b"{\"value\":[]}",
    );
    assert_refused(&out, "does not load");
    let out = run(
        &[
            "decrypt",
            "--key",
            &s(&fx.key_path),
            "--insecure-skip-tokens",
            "/nonexistent/body.json",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    let out = run(
        &["decrypt", "--key", &s(&fx.key_path), "-"],
        b"{\"value\":[]}",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--app-id"));
}

#[test]
fn no_input_panics_decrypt() {
    let fx = Fixture::new();
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let inputs: Vec<Vec<u8>> = vec![
        b"{\"value\":[1,\"x\",null,{},[]]}".to_vec(),
        b"{\"value\":[{\"encryptedContent\":{\"data\":\"!!\",\"dataKey\":\"\",\"dataSignature\":\"AA==\"},\"tenantId\":\"t\"}],\"validationTokens\":[\"a.b.c\",7,null]}".to_vec(),
        b"{\"value\":[{\"EncryptedContent\":{}}],\"validationTokens\":\"x\"}".to_vec(),
        b"{\"value\":[{\"changeType\":42,\"clientState\":[]}]}".to_vec(),
        deep.into_bytes(),
        vec![0xff, 0xfe, 0x00, 0x7b],
    ];
    for input in &inputs {
        for extra in [
            &["--insecure-skip-tokens"][..],
            &["--jwks", &s(&fx.jwks_path), "--app-id", APP_ID],
        ] {
            let mut args = vec!["decrypt", "--key"];
            let key = s(&fx.key_path);
            args.push(&key);
            args.extend(extra);
            args.push("-");
            let out = run(&args, input);
            let stderr = text(&out.stderr);
            assert!(
                matches!(out.status.code(), Some(0..=2)),
                "{:?}: {stderr}",
                out.status
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
}

#[test]
fn insecure_skip_tokens_decrypts_offline_with_a_warning() {
    let fx = Fixture::new();
    let body = serde_json::json!({"value": [fx.item(&Fixture::presence("u9"))]}).to_string();
    let out = run(
        &[
            "decrypt",
            "--key",
            &s(&fx.key_path),
            "--insecure-skip-tokens",
            "-",
        ],
        body.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("warning: --insecure-skip-tokens"));
    assert_eq!(lines(&out)[0]["data"]["id"], "u9");

    // Without the switch the same body is rejected: no token.
    let out = run(
        &[
            "decrypt",
            "--key",
            &s(&fx.key_path),
            "--jwks",
            &s(&fx.jwks_path),
            "--app-id",
            APP_ID,
            "-",
        ],
        body.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(!text(&out.stderr).contains("--insecure-skip-tokens"));
}

#[test]
fn decrypt_fetches_signing_keys_from_jwks_url() {
    let fx = Fixture::new();
    let (addr, hits) = static_server(fx.issuer.jwks_json());
    let url = format!("http://{addr}/discovery/keys");
    let body = fx.body(vec![fx.item(&Fixture::presence("u3"))]);
    let out = run(
        &[
            &["decrypt", "--key", &s(&fx.key_path)][..],
            &checks("--jwks-url", &url),
            &["-"],
        ]
        .concat(),
        &body,
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(lines(&out)[0]["status"], "decrypted");
    assert_eq!(*hits.lock().unwrap(), 1);
}

#[test]
fn demo_runs_in_memory_and_shows_the_forgeries_rejected() {
    let out = run(&["demo"], b"");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    for needle in [
        "decrypted presence",
        "rosterUpdated",
        "decrypted chat message",
        "200 text/plain",
        "no validation token: rejected",
        "3 genuine items decrypted; 4 of 4 forged items rejected",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
}

#[test]
fn every_command_has_help_with_an_example() {
    for cmd in ["keygen", "encrypt", "decrypt", "demo", "serve"] {
        let out = run(&[cmd, "--help"], b"");
        assert!(out.status.success());
        let help = text(&out.stdout);
        assert!(help.contains("Example"), "{cmd} --help:\n{help}");
        assert!(help.contains("msgraph-notify"), "{cmd} --help:\n{help}");
    }
    assert!(text(&run(&["--help"], b"").stdout).contains("demo"));
}

#[test]
fn decrypt_opens_the_real_graph_vector_from_its_pkcs12() {
    let Some(shared) = shared_dir() else { return };
    let dir = shared.join("vectors/dotnet-sdk");
    let content: Value =
        serde_json::from_slice(&std::fs::read(dir.join("encryptedContent.json")).unwrap()).unwrap();
    let expected: Value =
        serde_json::from_slice(&std::fs::read(dir.join("decrypted.json")).unwrap()).unwrap();
    let body = json!({"value": [{"subscriptionId": "s", "tenantId": TENANT, "changeType": "created",
                                 "resource": "teams", "encryptedContent": content}]});
    let pfx = s(&dir.join("certificate.pfx"));
    let out = run(
        &[
            "decrypt",
            "--key",
            &pfx,
            "--password",
            "rich",
            "--insecure-skip-tokens",
            "-",
        ],
        body.to_string().as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(lines(&out)[0]["data"], expected);

    // The wrong password: the key does not load.
    let out = run(
        &[
            "decrypt",
            "--key",
            &pfx,
            "--password",
            "wrong",
            "--insecure-skip-tokens",
            "-",
        ],
        body.to_string().as_bytes(),
    );
    assert_eq!(out.status.code(), Some(2));

    // The password from a file (its first line; CRLF tolerated), never on the command line.
    let tmp = tempfile::tempdir().unwrap();
    let password_file = tmp.path().join("password");
    std::fs::write(&password_file, "rich\r\nsecond line ignored\n").unwrap();
    let args = [
        "decrypt",
        "--key",
        &pfx,
        "--password-file",
        &s(&password_file),
        "--insecure-skip-tokens",
        "-",
    ];
    let out = run(&args, body.to_string().as_bytes());
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(lines(&out)[0]["data"], expected);
    std::fs::write(&password_file, "\n").unwrap();
    let out = run(&args, body.to_string().as_bytes());
    assert_refused(&out, "--password-file");
}
