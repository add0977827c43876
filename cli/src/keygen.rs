//! `keygen`: an RSA key and a self-signed certificate for a subscription's `encryptionCertificate`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use msgraph_notify::{Certificate, PrivateKey};

use crate::{Fail, fail};

/// Make an RSA private key and a self-signed certificate for a Graph subscription.
///
/// Writes DIR/key.pem (PKCS#8, file mode 0600) and DIR/cert.pem, and prints on stdout the JSON to
/// paste into the subscription request (`encryptionCertificate`, `encryptionCertificateId`).
/// With --pfx-password-file it also writes DIR/key.pfx (PKCS#12: the key and its certificate,
/// encrypted with the password on the file's first line; mode 0600), the form Azure Key Vault
/// and Windows import.
/// With --pkcs11 URI the key pair is generated inside the token (sensitive, non-extractable) and
/// the certificate stored there beside it; --out then only receives cert.pem, if given.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  msgraph-notify keygen --out ./keys --cert-id receiver-2026\n  \
    # then create the subscription with includeResourceData: true and the two printed fields\n  \
    msgraph-notify keygen --cert-id receiver-2026 --pkcs11 \\\n    \
    'pkcs11:token=graph;object=receiver-2026?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/pin'"
)]
pub struct Args {
    /// The directory to write key.pem and cert.pem into (created when missing). With --pkcs11:
    /// optional, and only cert.pem is written.
    #[arg(long, value_name = "DIR", required_unless_present = "pkcs11")]
    out: Option<String>,

    /// Generate the key pair inside this PKCS#11 token instead of a file (RFC 7512 URI with
    /// object= and/or id=, module-path= or MSGRAPH_NOTIFY_PKCS11_MODULE, and the user PIN by
    /// pin-source=file:PATH or MSGRAPH_NOTIFY_PKCS11_PIN). Refused when such a key exists.
    #[arg(long, value_name = "URI")]
    pkcs11: Option<String>,

    /// The key size in bits: 2048, 3072 or 4096.
    #[arg(long, default_value_t = 2048, value_parser = parse_bits)]
    bits: usize,

    /// Your id for the certificate (≤ 128 characters): Graph echoes it in each notification's
    /// encryptionCertificateId. Default: `msgraph-notify-` and the first 8 digits of the thumbprint.
    #[arg(long, value_name = "ID")]
    cert_id: Option<String>,

    /// How many days the certificate is valid (Graph does not check; it is informational).
    #[arg(long, default_value_t = 365, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=36500))]
    days: u32,

    /// The certificate's subject common name.
    #[arg(long, default_value = "msgraph-notify", value_name = "CN")]
    common_name: String,

    /// Also write DIR/key.pfx (PKCS#12, key and certificate), encrypted with the password on
    /// this file's first line (not on the command line, where other users could read it).
    #[arg(long, value_name = "FILE", conflicts_with = "pkcs11")]
    pfx_password_file: Option<String>,

    /// Overwrite key.pem, cert.pem (and key.pfx) when they exist.
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args) -> Result<ExitCode, Fail> {
    if let Some(id) = &args.cert_id
        && (id.is_empty() || id.chars().count() > 128)
    {
        return Err(fail!("--cert-id must be 1 to 128 characters"));
    }
    if let Some(uri) = &args.pkcs11 {
        return in_token(&args, uri);
    }
    let Some(out) = &args.out else {
        return Err(fail!("--out DIR is required"));
    };
    let dir = Path::new(out);
    std::fs::create_dir_all(dir).map_err(|e| fail!("cannot create {}: {e}", dir.display()))?;
    let key_path = dir.join("key.pem");
    let cert_path = dir.join("cert.pem");
    let pfx_path = dir.join("key.pfx");
    let pfx_password = match &args.pfx_password_file {
        Some(path) => Some(crate::secret::first_line("--pfx-password-file", path)?),
        None => None,
    };
    if !args.force {
        let pfx = pfx_password.as_ref().map(|_| &pfx_path);
        for p in [&key_path, &cert_path].into_iter().chain(pfx) {
            if p.exists() {
                return Err(fail!("{} exists (use --force to overwrite)", p.display()));
            }
        }
    }

    if crate::stderr_is_terminal() {
        errln!("generating a {}-bit RSA key...", args.bits);
    }
    let key = PrivateKey::generate(args.bits).map_err(|e| fail!("key generation failed: {e}"))?;
    let cert = Certificate::self_signed(&key, &args.common_name, args.days)
        .map_err(|e| fail!("certificate generation failed: {e}"))?;
    let thumbprint = cert.thumbprint();
    let cert_id = cert_id(&args, &thumbprint);

    write_private(&key_path, key.to_pkcs8_pem().as_bytes())
        .map_err(|e| fail!("cannot write {}: {e}", key_path.display()))?;
    std::fs::write(&cert_path, cert.to_pem())
        .map_err(|e| fail!("cannot write {}: {e}", cert_path.display()))?;
    if let Some(password) = &pfx_password {
        let pfx = zeroize::Zeroizing::new(pkcs12(&key, &cert, password.expose())?);
        write_private(&pfx_path, &pfx)
            .map_err(|e| fail!("cannot write {}: {e}", pfx_path.display()))?;
    }

    let mut out = serde_json::json!({
        "encryptionCertificate": cert.encryption_certificate(),
        "encryptionCertificateId": cert_id,
        "thumbprint": thumbprint,
        "notAfter": cert.not_after(),
        "key": key_path.display().to_string(),
        "certificate": cert_path.display().to_string(),
    });
    if pfx_password.is_some() {
        out["pfx"] = pfx_path.display().to_string().into();
    }
    outln!("{out}");
    if crate::stderr_is_terminal() {
        errln!(
            "wrote {} (mode 0600) and {}",
            key_path.display(),
            cert_path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The key and its certificate as a PKCS#12 file encrypted with `password` (p12-keystore's
/// default: PBES2 with AES-256-CBC and PBKDF2-HMAC-SHA256), the certificate's thumbprint as the
/// entry's localKeyId.
fn pkcs12(key: &PrivateKey, cert: &Certificate, password: &str) -> Result<Vec<u8>, Fail> {
    let local_key_id: Vec<u8> = cert
        .thumbprint()
        .as_bytes()
        .chunks(2)
        .filter_map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect();
    let der = key.to_pkcs8_der();
    let chain = p12_keystore::PrivateKeyChain::new(
        local_key_id,
        p12_keystore::PrivateKey::from_der(&der).map_err(|e| fail!("key.pfx: {e}"))?,
        [p12_keystore::Certificate::from_der(cert.der()).map_err(|e| fail!("key.pfx: {e}"))?],
    );
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "msgraph-notify",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    store
        .writer(password)
        .write()
        .map_err(|e| fail!("cannot make key.pfx: {e}"))
}

/// `--cert-id`, else `msgraph-notify-` and the first 8 digits of the thumbprint.
fn cert_id(args: &Args, thumbprint: &str) -> String {
    args.cert_id.clone().unwrap_or_else(|| {
        format!(
            "msgraph-notify-{}",
            thumbprint
                .get(..8)
                .unwrap_or(thumbprint)
                .to_ascii_lowercase()
        )
    })
}

/// `keygen --pkcs11 URI`: the key pair made inside the token, the certificate stored beside it.
#[cfg(feature = "pkcs11")]
fn in_token(args: &Args, uri: &str) -> Result<ExitCode, Fail> {
    use msgraph_notify::keys::pkcs11::Pkcs11Key;
    let cert_path = match &args.out {
        Some(out) => {
            let dir = Path::new(out);
            std::fs::create_dir_all(dir)
                .map_err(|e| fail!("cannot create {}: {e}", dir.display()))?;
            let path = dir.join("cert.pem");
            if path.exists() && !args.force {
                return Err(fail!(
                    "{} exists (use --force to overwrite)",
                    path.display()
                ));
            }
            Some(path)
        }
        None => None,
    };
    if crate::stderr_is_terminal() {
        errln!("generating a {}-bit RSA key in the token...", args.bits);
    }
    let key = Pkcs11Key::generate(uri, args.bits, &args.common_name, args.days)
        .map_err(|e| fail!("--pkcs11: {e}"))?;
    let cert = key
        .certificate()
        .ok_or_else(|| fail!("--pkcs11: the token did not keep the certificate"))?;
    let thumbprint = cert.thumbprint();
    if let Some(path) = &cert_path {
        std::fs::write(path, cert.to_pem())
            .map_err(|e| fail!("cannot write {}: {e}", path.display()))?;
    }
    let mut out = serde_json::json!({
        "encryptionCertificate": cert.encryption_certificate(),
        "encryptionCertificateId": cert_id(args, &thumbprint),
        "thumbprint": thumbprint,
        "notAfter": cert.not_after(),
        "key": "pkcs11 (non-extractable, in the token)",
    });
    if let Some(path) = &cert_path {
        out["certificate"] = path.display().to_string().into();
    }
    outln!("{out}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "pkcs11"))]
fn in_token(_: &Args, _: &str) -> Result<ExitCode, Fail> {
    Err(fail!(
        "--pkcs11: this msgraph-notify was built without the `pkcs11` feature"
    ))
}

/// Writes a secret file readable by its owner only (mode 0600 from creation, on Unix).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let mut file = options.open(path)?;
        // An existing file (--force) keeps its old mode through open(): set it.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()
    }
    #[cfg(not(unix))]
    {
        let mut file = options.open(path)?;
        file.write_all(bytes)?;
        file.sync_all()
    }
}

fn parse_bits(s: &str) -> Result<usize, String> {
    match s {
        "2048" | "3072" | "4096" => s.parse().map_err(|_| "not a number".to_owned()),
        _ => Err("must be 2048, 3072 or 4096".to_owned()),
    }
}
