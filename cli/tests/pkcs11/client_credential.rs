//! The client assertion that gets Graph access tokens, signed by a key in a SoftHSM2 token
//! (`--client-credential pkcs11:URI`, CKM_SHA256_RSA_PKCS_PSS): `msgraph-notify emulator`
//! verifies it against the certificate registered for the app, and `subscriptions list` gets
//! Graph's answer.

use std::time::Duration;

use test_support::process::Captured;

use super::*;

const APP_ID: &str = "3c5ae9b2-7a0e-4f1d-9a43-5b8d2f6c1e07";

#[test]
fn a_key_in_a_token_signs_the_client_assertion_the_emulator_accepts() {
    let Some(hsm) = Hsm::new(&["app"]) else {
        return;
    };
    // The app's key made in the token; its certificate (written beside, and into the token)
    // is the one registered with the emulator.
    let out_dir = hsm.dir.join("app-out");
    let uri = hsm.uri_without_module("app", "graph-app");
    let out = run(
        &hsm,
        &[
            "keygen",
            "--pkcs11",
            &uri,
            "--cert-id",
            "app",
            "--out",
            &s(&out_dir),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let cert = out_dir.join("cert.pem");
    let emulator = Captured::spawn(
        std::process::Command::new(env!("CARGO_BIN_EXE_msgraph-notify")).args([
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--app",
            &format!("{APP_ID}={}", cert.display()),
            "--tenant",
            TENANT,
        ]),
        "emulator",
    );
    let base = emulator.wait_stderr("emulator listening", Duration::from_secs(60), |line| {
        line.split("emulator listening on ")
            .nth(1)
            .map(|s| s.trim().to_owned())
    });
    let graph = format!("{base}/v1.0");
    let list = |extra: &[&str]| {
        let mut args = vec![
            "subscriptions",
            "list",
            "--graph-url",
            &graph,
            "--authority",
            &base,
            "--tenant",
            TENANT,
            "--client-id",
            APP_ID,
            "--client-credential",
            &uri,
        ];
        args.extend_from_slice(extra);
        run(&hsm, &args, b"")
    };
    // The certificate comes from the token.
    let out = list(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(lines(&out).is_empty(), "no subscription yet");
    // Or from --client-certificate; another app's certificate is refused by Entra's rule.
    let out = list(&["--client-certificate", &s(&cert)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let other = hsm.dir.join("other-cert.pem");
    std::fs::write(&other, test_support::other_keypair().1.to_pem()).unwrap();
    let out = list(&["--client-certificate", &s(&other)]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("Entra ID answered HTTP 401 invalid_client"),
        "{stderr}"
    );
}
