//! `keygen --pkcs11` and `decrypt --key [ID=]pkcs11:…` against a throw-away SoftHSM2 token,
//! driven through the built binary; OpenSC's `pkcs11-tool` checks what the token holds.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{APP_ID, CLIENT_STATE, Fixture, TENANT, lines, s, text};
use msgraph_notify::Certificate;
use msgraph_notify::testing::{GraphEncryptor, NotificationSpec};
use serde_json::Value;

const PIN: &str = "424242";

/// A SoftHSM2 configuration with its own token directory and one token per label.
struct Hsm {
    dir: tempfile::TempDir,
    module: PathBuf,
}

impl Hsm {
    fn new(labels: &[&str]) -> Option<Hsm> {
        let module = [
            "/usr/lib/softhsm/libsofthsm2.so",
            "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
            "/usr/local/lib/softhsm/libsofthsm2.so",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
        let Some(module) = module else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("SoftHSM2 is not installed (CI=true): apt-get install softhsm2 opensc");
            }
            eprintln!("skipping: SoftHSM2 is not installed (apt-get install softhsm2 opensc)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tokens")).unwrap();
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.path().join("tokens").display()
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("pin"), format!("{PIN}\n")).unwrap();
        let hsm = Hsm { dir, module };
        for label in labels {
            let out = hsm
                .command("softhsm2-util")
                .args(["--init-token", "--free", "--label", label])
                .args(["--so-pin", "000000", "--pin", PIN])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", text(&out.stderr));
        }
        Some(hsm)
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    /// A command with this HSM's configuration and module in its environment.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("SOFTHSM2_CONF", self.conf())
            .env("MSGRAPH_NOTIFY_PKCS11_MODULE", &self.module)
            .env_remove("MSGRAPH_NOTIFY_PKCS11_PIN");
        c
    }

    /// The binary, run with `args` and `stdin`, in this HSM's environment.
    fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        use std::io::Write;
        let mut child = self
            .command(env!("CARGO_BIN_EXE_msgraph-notify"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Fed from a thread, and a closed pipe ignored: a command that refuses its options exits
        // before it reads its input (EPIPE here), and a large input must not block its output.
        let mut input = child.stdin.take().unwrap();
        let data = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
        let out = child.wait_with_output().unwrap();
        let _ = writer.join();
        out
    }

    /// A URI without module-path (the module comes from MSGRAPH_NOTIFY_PKCS11_MODULE).
    fn uri(&self, token: &str, object: &str) -> String {
        format!(
            "pkcs11:token={token};object={object}?pin-source=file:{}",
            self.dir.path().join("pin").display()
        )
    }
}

fn item(cert: &Certificate, cert_id: &str, tag: &str) -> Value {
    let mut spec = NotificationSpec::new(TENANT, &format!("communications/presences/{tag}"));
    spec.client_state = Some(CLIENT_STATE.into());
    let n = GraphEncryptor::new(cert, cert_id)
        .notification(&Fixture::presence(tag), &spec)
        .unwrap();
    serde_json::to_value(n).unwrap()
}

#[test]
fn keygen_in_the_token_then_decrypt_with_a_token_key_and_a_file_key_under_one_id() {
    let Some(hsm) = Hsm::new(&["cli"]) else {
        return;
    };
    // An id with `=` in it: the CLI's --key rule must keep it whole.
    let cert_id = "receiver=2026";
    let out_dir = hsm.dir.path().join("out");
    let uri = hsm.uri("cli", "receiver-2026");
    let out = hsm.run(
        &[
            "keygen",
            "--pkcs11",
            &uri,
            "--cert-id",
            cert_id,
            "--out",
            &s(&out_dir),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["encryptionCertificateId"], cert_id);
    let token_cert = Certificate::load(&std::fs::read(out_dir.join("cert.pem")).unwrap()).unwrap();
    assert_eq!(printed["thumbprint"], token_cert.thumbprint());
    assert_eq!(
        printed["encryptionCertificate"],
        token_cert.encryption_certificate()
    );
    assert!(
        !out_dir.join("key.pem").exists(),
        "no key file for a token key"
    );

    // OpenSC sees a private key that is sensitive and was never extractable.
    match hsm
        .command("pkcs11-tool")
        .args([
            "--module",
            &s(&hsm.module),
            "--token-label",
            "cli",
            "--login",
        ])
        .args(["--pin", PIN, "--list-objects", "--type", "privkey"])
        .output()
    {
        Ok(listed) => {
            let listing = text(&listed.stdout);
            assert!(listed.status.success(), "{}", text(&listed.stderr));
            assert!(listing.contains("receiver-2026"), "{listing}");
            assert!(listing.contains("never extractable"), "{listing}");
            assert!(listing.contains("sensitive"), "{listing}");
        }
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping the OpenSC check: pkcs11-tool: {e}");
        }
        Err(e) => panic!("pkcs11-tool (OpenSC) is needed under CI=true: {e}"),
    }

    // Rotation: the old certificate in a file, the new one in the token, both under one id.
    let fx = Fixture::new();
    let body = fx.body(vec![
        item(&token_cert, cert_id, "new"),
        item(&fx.cert, cert_id, "old"),
    ]);
    let token_spec = format!("{cert_id}={uri}");
    let file_spec = format!("{cert_id}={}", fx.key_path.display());
    let out = hsm.run(
        &[
            "decrypt",
            "--key",
            &token_spec,
            "--key",
            &file_spec,
            "--cert",
            &s(&fx.cert_path),
            "--jwks",
            &s(&fx.jwks_path),
            "--app-id",
            APP_ID,
            "--client-state",
            CLIENT_STATE,
            "-",
        ],
        &body,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let items = lines(&out);
    assert_eq!(items.len(), 2);
    for (item, tag) in items.iter().zip(["new", "old"]) {
        assert_eq!(item["status"], "decrypted", "{item}");
        assert_eq!(item["data"]["id"], tag);
    }

    // The same object again: refused, the key is not replaced.
    let again = hsm.run(&["keygen", "--pkcs11", &uri], b"");
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("exists"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn a_wrong_pin_exits_2_naming_the_pin_but_never_its_value() {
    let Some(hsm) = Hsm::new(&["pins"]) else {
        return;
    };
    let out = hsm.run(&["keygen", "--pkcs11", &hsm.uri("pins", "k")], b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let wrong = hsm.dir.path().join("wrong-pin");
    std::fs::write(&wrong, "13579\n").unwrap();
    let uri = format!(
        "pkcs11:token=pins;object=k?pin-source=file:{}",
        wrong.display()
    );
    let out = hsm.run(
        &[
            "decrypt",
            "--key",
            &format!("id={uri}"),
            "--insecure-skip-tokens",
            "-",
        ],
        b"{\"value\":[]}",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("PIN is incorrect"), "{err}");
    assert!(!err.contains("13579"), "{err}");

    // The PIN from the environment, off the command line.
    let out = hsm
        .command(env!("CARGO_BIN_EXE_msgraph-notify"))
        .env("MSGRAPH_NOTIFY_PKCS11_PIN", PIN)
        .args([
            "decrypt",
            "--key",
            "pkcs11:token=pins;object=k",
            "--insecure-skip-tokens",
        ])
        .arg(s(&write(
            &hsm.dir.path().join("empty.json"),
            b"{\"value\":[]}",
        )))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn a_missing_module_or_object_exits_2_and_says_which() {
    let Some(hsm) = Hsm::new(&["objects"]) else {
        return;
    };
    let out = hsm.run(
        &[
            "decrypt",
            "--key",
            "pkcs11:token=objects;object=k?module-path=/nonexistent/pkcs11.so&pin-value=1",
            "--insecure-skip-tokens",
            "-",
        ],
        b"{\"value\":[]}",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("/nonexistent/pkcs11.so"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("does not exist"));

    let out = hsm.run(
        &[
            "decrypt",
            "--key",
            &hsm.uri("objects", "absent"),
            "--insecure-skip-tokens",
            "-",
        ],
        b"{\"value\":[]}",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("no RSA private key matches") && err.contains("absent"),
        "{err}"
    );
}

fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::write(path, bytes).unwrap();
    path.to_owned()
}

#[test]
fn key_specs_with_ids_containing_equals_signs() {
    // Two file keys under ids with `=`, one of them with `=` in its path too.
    let fx = Fixture::new();
    let odd_path = fx.path("key=v2.pem");
    std::fs::copy(&fx.key_path, &odd_path).unwrap();
    let body = fx.body(vec![item(&fx.cert, "a=b", "one")]);
    for spec in [
        format!("a=b={}", fx.key_path.display()),
        format!("a=b={}", odd_path.display()),
    ] {
        let out = common::run(
            &[
                "decrypt",
                "--key",
                &spec,
                "--jwks",
                &s(&fx.jwks_path),
                "--app-id",
                APP_ID,
                "--client-state",
                CLIENT_STATE,
                "-",
            ],
            &body,
        );
        assert_eq!(out.status.code(), Some(0), "{spec}: {}", text(&out.stderr));
        assert_eq!(lines(&out)[0]["status"], "decrypted");
    }
    // Two keys under one id, neither with a certificate: refused, with the reason.
    let other = fx.path("other.pem");
    let key = msgraph_notify::PrivateKey::generate(2048).unwrap();
    std::fs::write(&other, key.to_pkcs8_pem().as_bytes()).unwrap();
    let out = common::run(
        &[
            "decrypt",
            "--key",
            &format!("x={}", fx.key_path.display()),
            "--key",
            &format!("x={}", other.display()),
            "--insecure-skip-tokens",
            "-",
        ],
        b"{\"value\":[]}",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("neither has a certificate"),
        "{}",
        text(&out.stderr)
    );
    // No file after any `=`: said plainly.
    let out = common::run(
        &[
            "decrypt",
            "--key",
            "a=b=/nonexistent/k.pem",
            "--insecure-skip-tokens",
            "-",
        ],
        b"{\"value\":[]}",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no such key file"),
        "{}",
        text(&out.stderr)
    );
}
