//! The key options (`--key`, `--password`, `--password-file`, `--cert`) of every command that
//! decrypts, and the key ring they make: key files and PKCS#11 keys, mixed as given.

use msgraph_notify::{Certificate, KeyRing, PrivateKey};

use crate::{Fail, Secret, fail};

/// The private keys and their certificates.
#[derive(clap::Args, Debug, Clone)]
pub struct KeyOpts {
    /// A private key: a file (PEM PKCS#1, PKCS#8, encrypted PKCS#8, DER or PKCS#12) or a key in
    /// a PKCS#11 token (`pkcs11:token=T;object=LABEL?module-path=LIB&pin-source=file:PIN`, RFC
    /// 7512; the module may come from MSGRAPH_NOTIFY_PKCS11_MODULE, the PIN from
    /// MSGRAPH_NOTIFY_PKCS11_PIN). `ID=...` registers it under that encryptionCertificateId (an
    /// ID may contain `=`: it ends at the first `=pkcs11:`, or at the last `=` followed by an
    /// existing file); a bare key serves when it is the only key or when its certificate's
    /// thumbprint matches. Repeat during certificate rotation, also with one ID twice when the
    /// certificates tell the keys apart; files and tokens mix.
    #[arg(
        long = "key",
        value_name = "[ID=]PATH|pkcs11:URI",
        env = "MSGRAPH_NOTIFY_KEY",
        hide_env_values = true
    )]
    pub keys: Vec<String>,

    /// Password of encrypted PEM and PKCS#12 keys.
    #[arg(
        long,
        value_name = "P",
        env = "MSGRAPH_NOTIFY_KEY_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<Secret>,

    /// Read the password of encrypted keys from this file (its first line), e.g. a systemd
    /// credential, so that it is neither in argv nor in the environment.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "password",
        env = "MSGRAPH_NOTIFY_KEY_PASSWORD_FILE"
    )]
    pub password_file: Option<String>,

    /// A certificate (PEM or DER) to pair with a key that does not carry its own, so that the
    /// notification's thumbprint is checked. Repeatable; matched to keys by public key.
    #[arg(long = "cert", value_name = "FILE", env = "MSGRAPH_NOTIFY_CERT")]
    pub certs: Vec<String>,
}

impl KeyOpts {
    /// The key ring from `--key` and `--cert`: key files and PKCS#11 keys, mixed as given.
    pub fn key_ring(&self) -> Result<KeyRing, Fail> {
        let mut certs = Vec::new();
        for path in &self.certs {
            let bytes =
                std::fs::read(path).map_err(|e| fail!("cannot read certificate {path}: {e}"))?;
            let cert = Certificate::load(&bytes)
                .map_err(|e| fail!("certificate {path} does not load: {e}"))?;
            certs.push((path, cert, false));
        }
        // A key's own certificate, else the --cert that belongs to it.
        let mut pair = |key: &dyn msgraph_notify::keys::Unwrap, own: Option<Certificate>| {
            own.or_else(|| {
                let entry = certs.iter_mut().find(|(_, c, _)| c.belongs_to(key))?;
                entry.2 = true;
                Some(entry.1.clone())
            })
        };
        let password = self.key_password()?;
        let mut ring = KeyRing::new();
        for spec in &self.keys {
            match split_key_spec(spec).map_err(|e| fail!("{e}"))? {
                KeySpec::File { id, path } => {
                    warn_if_world_readable("--key", path);
                    let bytes = zeroize::Zeroizing::new(
                        std::fs::read(path).map_err(|e| fail!("cannot read key {path}: {e}"))?,
                    );
                    let (key, cert) =
                        PrivateKey::load(&bytes, password.as_ref().map(Secret::expose))
                            .map_err(|e| fail!("key {path} does not load: {e}"))?;
                    let cert = pair(&key, cert);
                    match id {
                        Some(id) => ring.add(id, key, cert),
                        None => ring.add_without_id(key, cert),
                    }
                    .map_err(|e| fail!("key {path}: {e}"))?;
                }
                KeySpec::Pkcs11 { id, uri } => add_pkcs11(&mut ring, id, uri, &mut pair)?,
            }
        }
        if let Some((path, _, _)) = certs.iter().find(|(_, _, used)| !used) {
            return Err(fail!(
                "certificate {path} belongs to none of the --key keys"
            ));
        }
        Ok(ring)
    }

    /// The key password: --password (or its variable), or the first line of --password-file.
    fn key_password(&self) -> Result<Option<Secret>, Fail> {
        match &self.password_file {
            Some(path) => {
                warn_if_world_readable("--password-file", path);
                crate::secret::first_line("--password-file", path).map(Some)
            }
            None => Ok(self.password.clone()),
        }
    }
}

/// Warns when a secret file (a private key, its password, the clientState) can be read by every
/// user of the machine (mode `o+r`): the secret is then as good as public on a shared host. A
/// warning, not a refusal: the file may sit in a directory only its owner can enter.
pub fn warn_if_world_readable(option: &str, path: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.is_file()
            && meta.permissions().mode() & 0o004 != 0
        {
            crate::log::warn(&format!(
                "{option} {path} is readable by every user of this machine (mode {:o}): \
                 chmod 600 {path}",
                meta.permissions().mode() & 0o777
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = (option, path);
}

/// What one `--key` names: a key file or a PKCS#11 URI, with or without an id.
#[derive(Debug, PartialEq, Eq)]
enum KeySpec<'a> {
    File { id: Option<&'a str>, path: &'a str },
    Pkcs11 { id: Option<&'a str>, uri: &'a str },
}

/// The PKCS#11 URI scheme, as `--key` recognises it.
const PKCS11_SCHEME: &str = "pkcs11:";

/// Reads one `--key` value. The rule, in order:
///
/// 1. a value that exists as a file path is that path, whole (even with `=` in it), no id;
/// 2. a value that starts with `pkcs11:` is a PKCS#11 URI, no id;
/// 3. `ID=pkcs11:URI`: the id ends at the first `=pkcs11:`, so an id may contain `=` (and the
///    URI its own `=`s): `a=b=pkcs11:token=t;object=k` is id `a=b`;
/// 4. `ID=PATH`: split at the last `=` that is followed by an existing path, so an id may
///    contain `=`: `a=b=/keys/k.pem` is id `a=b`; a path with `=` is found whole first
///    (`id=/keys/x=y.pem` is id `id` when `y.pem` is no file of the working directory);
/// 5. anything else is an error that says no file was found.
fn split_key_spec(spec: &str) -> Result<KeySpec<'_>, String> {
    if std::path::Path::new(spec).exists() {
        return Ok(KeySpec::File {
            id: None,
            path: spec,
        });
    }
    if spec
        .get(..PKCS11_SCHEME.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(PKCS11_SCHEME))
    {
        return Ok(KeySpec::Pkcs11 {
            id: None,
            uri: spec,
        });
    }
    if let Some(at) = spec.find("=pkcs11:").filter(|&at| at > 0)
        && let (Some(id), Some(uri)) = (spec.get(..at), spec.get(at + 1..))
    {
        return Ok(KeySpec::Pkcs11 { id: Some(id), uri });
    }
    let mut ends = spec.rmatch_indices('=').map(|(at, _)| at);
    if let Some((id, path)) = ends.find_map(|at| {
        let (id, path) = (spec.get(..at)?, spec.get(at + 1..)?);
        (!id.is_empty() && !path.is_empty() && std::path::Path::new(path).exists())
            .then_some((id, path))
    }) {
        return Ok(KeySpec::File { id: Some(id), path });
    }
    Err(format!(
        "--key {spec:?}: no such key file (neither the value nor the part after any \"=\" is \
         an existing file; expected [ID=]PATH or [ID=]pkcs11:URI)"
    ))
}

/// Opens a PKCS#11 key and adds it to the ring; the URI (which may carry a PIN) is never
/// printed, only the key's description.
#[cfg(feature = "pkcs11")]
fn add_pkcs11(
    ring: &mut KeyRing,
    id: Option<&str>,
    uri: &str,
    pair: &mut impl FnMut(&dyn msgraph_notify::keys::Unwrap, Option<Certificate>) -> Option<Certificate>,
) -> Result<(), Fail> {
    use msgraph_notify::keys::Unwrap;
    use msgraph_notify::keys::pkcs11::Pkcs11Key;
    let key = Pkcs11Key::open(uri).map_err(|e| fail!("--key pkcs11: {e}"))?;
    let cert = pair(&key, key.certificate().cloned());
    let name = key.describe();
    match id {
        Some(id) => ring.add_unwrapper(id, key, cert),
        None => ring.add_unwrapper_without_id(key, cert),
    }
    .map_err(|e| fail!("{name}: {e}"))
}

#[cfg(not(feature = "pkcs11"))]
fn add_pkcs11(
    _: &mut KeyRing,
    _: Option<&str>,
    _: &str,
    _: &mut impl FnMut(&dyn msgraph_notify::keys::Unwrap, Option<Certificate>) -> Option<Certificate>,
) -> Result<(), Fail> {
    Err(fail!(
        "--key pkcs11:...: this msgraph-notify was built without the `pkcs11` feature"
    ))
}

#[cfg(test)]
mod tests {
    use super::{KeySpec, split_key_spec};

    #[test]
    fn key_specs() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("k.pem");
        let with_eq = dir.path().join("x=y.pem");
        std::fs::write(&plain, "").unwrap();
        std::fs::write(&with_eq, "").unwrap();
        let plain = plain.to_str().unwrap();
        let with_eq = with_eq.to_str().unwrap();
        let file = |id, path| Ok(KeySpec::File { id, path });

        assert_eq!(split_key_spec(plain), file(None, plain));
        assert_eq!(split_key_spec(with_eq), file(None, with_eq));
        let spec = format!("cert-1={plain}");
        assert_eq!(split_key_spec(&spec), file(Some("cert-1"), plain));
        // An id with `=` in it: split at the last `=` followed by an existing path.
        let spec = format!("a=b=={plain}");
        assert_eq!(split_key_spec(&spec), file(Some("a=b="), plain));
        // A path with `=` in it keeps it.
        let spec = format!("id={with_eq}");
        assert_eq!(split_key_spec(&spec), file(Some("id"), with_eq));
        let spec = format!("k=v={with_eq}");
        assert_eq!(split_key_spec(&spec), file(Some("k=v"), with_eq));
        // No file anywhere: an error that says so, not a guess.
        assert!(
            split_key_spec("cert-1=/tmp/none/k.pem")
                .unwrap_err()
                .contains("no such key file")
        );
        assert!(split_key_spec("=x").is_err());
        assert!(split_key_spec("").is_err());
    }

    #[test]
    fn pkcs11_specs() {
        let uri = "pkcs11:token=graph;object=k?module-path=/m.so&pin-source=file:/p";
        assert_eq!(split_key_spec(uri), Ok(KeySpec::Pkcs11 { id: None, uri }));
        let spec = format!("receiver-2026={uri}");
        assert_eq!(
            split_key_spec(&spec),
            Ok(KeySpec::Pkcs11 {
                id: Some("receiver-2026"),
                uri
            })
        );
        let spec = format!("a=b={uri}");
        assert_eq!(
            split_key_spec(&spec),
            Ok(KeySpec::Pkcs11 {
                id: Some("a=b"),
                uri
            })
        );
        // `=pkcs11:` at the very start has no id: not a URI, not a file.
        assert!(split_key_spec("=pkcs11:object=k").is_err());
        assert_eq!(
            split_key_spec("PKCS11:object=k"),
            Ok(KeySpec::Pkcs11 {
                id: None,
                uri: "PKCS11:object=k"
            })
        );
    }
}
