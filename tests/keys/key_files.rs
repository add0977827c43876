//! Key and certificate files as people really have them: PEM with text around the blocks (the
//! `Bag Attributes` of `openssl pkcs12 -nodes`), a byte-order mark, CRLF line ends, a `.pfx`
//! without or with a wrong password or as base64 text, an OpenSSL legacy encrypted PEM, and a
//! certificate where a key is expected (and the other way round). Every key is made by the test.

use std::path::PathBuf;
use std::process::Command;

use msgraph_notify::{Certificate, Error, PrivateKey};

fn fresh() -> (PrivateKey, Certificate) {
    let key = PrivateKey::generate(2048).expect("key");
    let cert = Certificate::self_signed(&key, "receiver.example", 30).expect("cert");
    (key, cert)
}

fn pem(label: &str, der: &[u8]) -> String {
    pkcs8::der::pem::encode_string(label, pkcs8::LineEnding::LF, der).expect("pem")
}

/// The PKCS#1 `RSAPrivateKey` inside a key's PKCS#8 (what `-traditional` writes).
fn pkcs1_der(key: &PrivateKey) -> Vec<u8> {
    let der = key.to_pkcs8_der();
    let info = pkcs8::PrivateKeyInfoRef::try_from(der.as_slice()).expect("pkcs8");
    info.private_key.as_bytes().to_vec()
}

fn pfx(key: &PrivateKey, cert: &Certificate, password: &str) -> Vec<u8> {
    let chain = p12_keystore::PrivateKeyChain::new(
        vec![7u8; 20],
        p12_keystore::PrivateKey::from_der(&key.to_pkcs8_der()).expect("p12 key"),
        [p12_keystore::Certificate::from_der(cert.der()).expect("p12 cert")],
    );
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "receiver",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    store.writer(password).write().expect("write pfx")
}

fn key_err(bytes: &[u8], password: Option<&str>) -> String {
    match PrivateKey::load(bytes, password) {
        Ok(_) => panic!("the key loaded"),
        Err(e) => e.to_string(),
    }
}

fn assert_same(key: &PrivateKey, expected: &PrivateKey) {
    assert_eq!(key.public_key_pkcs1_der(), expected.public_key_pkcs1_der());
}

/// What `openssl pkcs12 -in cert.pfx -nodes` prints (OpenSSL 3): the chain's certificates, each
/// after its `Bag Attributes` and subject/issuer lines, then the key after `Key Attributes`.
fn openssl_nodes_text(key: &PrivateKey, cert: &Certificate, ca: &Certificate) -> String {
    format!(
        "Bag Attributes\n    friendlyName: ca\nsubject=CN = issuing-ca\nissuer=CN = issuing-ca\n{}\
         Bag Attributes\n    localKeyID: 07 07 07 07 07 07 07 07 07 07 07 07 07 07 07 07 07 07 07 07 \n    \
         friendlyName: receiver\nsubject=CN = receiver.example\nissuer=CN = receiver.example\n{}\
         Bag Attributes\n    localKeyID: 07 07 07 07 07 07 07 07 07 07 07 07 07 07 07 07 07 07 07 07 \n    \
         friendlyName: receiver\nKey Attributes: <No Attributes>\n{}",
        ca.to_pem(),
        cert.to_pem(),
        key.to_pkcs8_pem().as_str()
    )
}

#[test]
fn pem_with_bag_attributes_loads_key_and_the_matching_certificate_of_the_chain() {
    let (key, cert) = fresh();
    let (_, ca) = fresh();
    let text = openssl_nodes_text(&key, &cert, &ca);
    let (loaded, with) = PrivateKey::load(text.as_bytes(), None).expect("-nodes output loads");
    assert_same(&loaded, &key);
    assert_eq!(
        with.as_ref(),
        Some(&cert),
        "the leaf, not the CA first in the file"
    );
    // The same with a password given (it is ignored for an unencrypted key).
    assert!(PrivateKey::load(text.as_bytes(), Some("x")).is_ok());

    // `-nocerts -nodes`: the key alone, after its attributes; PKCS#1 as `-traditional` writes it.
    let nocerts = format!(
        "Bag Attributes\n    friendlyName: receiver\nKey Attributes: <No Attributes>\n{}",
        pem("RSA PRIVATE KEY", &pkcs1_der(&key))
    );
    let (alone, none) = PrivateKey::load(nocerts.as_bytes(), None).expect("-nocerts loads");
    assert_same(&alone, &key);
    assert!(none.is_none());

    // `-clcerts -nokeys`: the certificate after its attributes, as --cert takes it.
    let clcerts = format!(
        "Bag Attributes\n    localKeyID: 07 07\nsubject=CN = receiver.example\nissuer=CN = receiver.example\n{}",
        cert.to_pem()
    );
    assert_eq!(Certificate::load(clcerts.as_bytes()).expect("loads"), cert);

    // RFC 7468 explanatory text before a block.
    let explained = format!(
        "This is the receiver's key.\nKeep it secret.\n\n{}",
        key.to_pkcs8_pem().as_str()
    );
    assert!(PrivateKey::load(explained.as_bytes(), None).is_ok());
}

#[test]
fn pem_with_a_byte_order_mark_or_crlf_line_ends_loads() {
    let (key, cert) = fresh();
    let lf = format!("{}{}", key.to_pkcs8_pem().as_str(), cert.to_pem());
    let crlf = lf.replace('\n', "\r\n");
    for (what, text) in [
        ("BOM", format!("\u{feff}{lf}")),
        ("CRLF", crlf.clone()),
        ("BOM and CRLF", format!("\u{feff}{crlf}")),
        (
            "BOM, CRLF and attributes",
            format!("\u{feff}Bag Attributes\r\n    friendlyName: r\r\n{crlf}"),
        ),
    ] {
        let (loaded, with) =
            PrivateKey::load(text.as_bytes(), None).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_same(&loaded, &key);
        assert_eq!(with.as_ref(), Some(&cert), "{what}");
        assert_eq!(
            Certificate::load(text.as_bytes()).unwrap_or_else(|e| panic!("{what}: {e}")),
            cert
        );
    }
    // UTF-16 with its byte-order mark, as Windows PowerShell 5 redirects text: named.
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(lf.encode_utf16().flat_map(u16::to_le_bytes));
    assert!(key_err(&utf16, None).contains("the file is UTF-16 text"));
    assert!(
        Certificate::load(&utf16)
            .unwrap_err()
            .to_string()
            .contains("UTF-16")
    );
}

#[test]
fn pkcs12_errors_name_the_password() {
    let (key, cert) = fresh();
    let file = pfx(&key, &cert, "s3cret");
    let without = key_err(&file, None);
    assert!(
        without.contains("this looks like a PKCS#12 file")
            && without.contains("a password is needed"),
        "{without}"
    );
    let wrong = key_err(&file, Some("wrong"));
    assert!(
        wrong.contains("wrong password for the PKCS#12 file"),
        "{wrong}"
    );
    assert!(!wrong.contains("MAC"), "{wrong}");
    let (loaded, with) = PrivateKey::load(&file, Some("s3cret")).expect("right password");
    assert_same(&loaded, &key);
    assert_eq!(with, Some(cert.clone()));
    // The direct entry point says the same.
    let direct = PrivateKey::from_pkcs12(&file, "wrong")
        .unwrap_err()
        .to_string();
    assert!(
        direct.contains("wrong password for the PKCS#12 file"),
        "{direct}"
    );
}

#[test]
fn a_pfx_as_base64_text_loads() {
    use base64::Engine;
    let (key, cert) = fresh();
    let file = pfx(&key, &cert, "s3cret");
    let b64 = base64::engine::general_purpose::STANDARD.encode(&file);
    // One line (Key Vault's secret value), and wrapped at 64 with CRLF and a final newline.
    let wrapped: String = b64
        .as_bytes()
        .chunks(64)
        .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
        .collect();
    for text in [b64.clone(), wrapped, format!("\u{feff}{b64}\n")] {
        let (loaded, with) = PrivateKey::load(text.as_bytes(), Some("s3cret")).expect("loads");
        assert_same(&loaded, &key);
        assert_eq!(with.as_ref(), Some(&cert));
        let without = key_err(text.as_bytes(), None);
        assert!(
            without.contains("base64") && without.contains("a password is needed"),
            "{without}"
        );
    }
    // The certificate as base64 text (a subscription's encryptionCertificate) loads too.
    assert_eq!(
        Certificate::load(cert.encryption_certificate().as_bytes()).unwrap(),
        cert
    );
}

/// A legacy encrypted PEM as `openssl rsa -aes256 -traditional` writes it: the headers, then the
/// base64 of the encrypted PKCS#1 key.
fn legacy_pem_text(key: &PrivateKey) -> String {
    let body = pem("RSA PRIVATE KEY", &pkcs1_der(key));
    body.replacen(
        "-----BEGIN RSA PRIVATE KEY-----\n",
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,3F1C2B6A9D0E4F5A6B7C8D9E0F1A2B3C\n\n",
        1,
    )
}

fn assert_legacy_refusal(message: &str) {
    assert!(
        message.contains("OpenSSL legacy encrypted PEM"),
        "{message}"
    );
    assert!(message.contains("AES-256-CBC"), "{message}");
    assert!(
        message.contains("`openssl pkcs8 -topk8 -v2 aes-256-cbc -in key.pem -out key-pkcs8.pem`"),
        "{message}"
    );
}

#[test]
fn a_legacy_encrypted_pem_is_refused_with_the_command_that_converts_it() {
    let (key, _) = fresh();
    let text = legacy_pem_text(&key);
    assert_legacy_refusal(&key_err(text.as_bytes(), Some("s3cret")));
    assert_legacy_refusal(&key_err(text.as_bytes(), None));
    assert_legacy_refusal(&PrivateKey::from_pem(&text).unwrap_err().to_string());
}

#[test]
fn a_certificate_given_as_key_and_a_key_given_as_certificate_say_so() {
    let (key, cert) = fresh();
    for bytes in [cert.to_pem().into_bytes(), cert.der().to_vec()] {
        let e = key_err(&bytes, None);
        assert!(
            e.contains("this is a certificate, not a private key"),
            "{e}"
        );
    }
    let pkcs1 = pkcs1_der(&key);
    for bytes in [
        key.to_pkcs8_pem().as_bytes().to_vec(),
        key.to_pkcs8_der().to_vec(),
        pem("RSA PRIVATE KEY", &pkcs1).into_bytes(),
        pkcs1,
    ] {
        match Certificate::load(&bytes) {
            Err(e @ Error::Certificate(_)) => assert!(
                e.to_string()
                    .contains("this is a private key, not a certificate"),
                "{e}"
            ),
            other => panic!("{other:?}"),
        }
    }
    let e = Certificate::load(&pfx(&key, &cert, "p"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("PKCS#12"), "{e}");
}

/// The real `openssl` binary, when installed (`.ci/run` installs it; elsewhere the test says it
/// skipped).
fn openssl() -> Option<Command> {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(Command::new("openssl"));
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the openssl command is missing (CI=true)"
    );
    eprintln!("skipping: no openssl command to convert the test's own files with");
    None
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("msgraph-notify-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn run(mut cmd: Command) -> Vec<u8> {
    let out = cmd.output().expect("run openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn what_the_openssl_command_writes_loads_or_is_refused_with_the_command() {
    let Some(_) = openssl() else { return };
    let (key, cert) = fresh();
    let dir = temp_dir("openssl");
    let pfx_path = dir.join("cert.pfx");
    std::fs::write(&pfx_path, pfx(&key, &cert, "s3cret")).unwrap();
    let p = pfx_path.to_str().unwrap();

    let mut nodes = openssl().unwrap();
    nodes.args(["pkcs12", "-in", p, "-nodes", "-passin", "pass:s3cret"]);
    let text = run(nodes);
    assert!(String::from_utf8_lossy(&text).contains("Bag Attributes"));
    let (loaded, with) = PrivateKey::load(&text, None).expect("`-nodes` output loads");
    assert_same(&loaded, &key);
    assert_eq!(with.as_ref(), Some(&cert));

    let mut nokeys = openssl().unwrap();
    nokeys.args([
        "pkcs12",
        "-in",
        p,
        "-clcerts",
        "-nokeys",
        "-passin",
        "pass:s3cret",
    ]);
    assert_eq!(
        Certificate::load(&run(nokeys)).expect("-clcerts -nokeys"),
        cert
    );

    let mut nocerts = openssl().unwrap();
    nocerts.args([
        "pkcs12",
        "-in",
        p,
        "-nocerts",
        "-nodes",
        "-passin",
        "pass:s3cret",
    ]);
    assert_same(
        &PrivateKey::load(&run(nocerts), None).expect("-nocerts").0,
        &key,
    );

    // A legacy encrypted PEM, then the conversion the refusal names, run as printed.
    let plain = dir.join("plain.pem");
    std::fs::write(&plain, key.to_pkcs8_pem().as_bytes()).unwrap();
    let legacy = dir.join("key.pem");
    let mut make = openssl().unwrap();
    make.args([
        "rsa",
        "-in",
        plain.to_str().unwrap(),
        "-aes256",
        "-traditional",
    ])
    .args(["-passout", "pass:old", "-out", legacy.to_str().unwrap()]);
    run(make);
    let legacy_text = std::fs::read(&legacy).unwrap();
    assert!(String::from_utf8_lossy(&legacy_text).contains("Proc-Type: 4,ENCRYPTED"));
    assert_legacy_refusal(&key_err(&legacy_text, Some("old")));
    let mut convert = openssl().unwrap();
    convert
        .current_dir(&dir)
        .args([
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-in",
            "key.pem",
            "-out",
            "key-pkcs8.pem",
        ])
        .args(["-passin", "pass:old", "-passout", "pass:new"]);
    run(convert);
    let converted = std::fs::read(dir.join("key-pkcs8.pem")).unwrap();
    assert_same(
        &PrivateKey::load(&converted, Some("new"))
            .expect("converted")
            .0,
        &key,
    );
    let _ = std::fs::remove_dir_all(&dir);
}
