//! RFC 7512 PKCS#11 URIs: which module, which token, which key, which PIN.

use std::fmt;
use std::path::PathBuf;

use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use super::{MODULE_ENV, PIN_ENV};
use crate::error::{Error, Result};

/// A parsed RFC 7512 PKCS#11 URI naming one RSA private key.
///
/// Path attributes understood: `token`, `manufacturer`, `model`, `serial`, `slot-id` (which token),
/// `object` (the key's label), `id` (its `CKA_ID`, percent-encoded bytes) and `type` (only
/// `private`). Query attributes: `module-path`, `pin-source` (`file:PATH` or a path), `pin-value`.
/// Values are percent-decoded. Any other attribute, an attribute given twice, a malformed
/// percent-encoding, or a URI that names no key (neither `object` nor `id`) is refused with
/// [`Error::Key`] naming it.
///
/// ```
/// # fn main() -> Result<(), msgraph_notify::Error> {
/// use msgraph_notify::keys::pkcs11::Pkcs11Uri;
/// let uri = Pkcs11Uri::parse(
///     "pkcs11:token=graph;object=receiver%202026;id=%01%02\
///      ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234",
/// )?;
/// assert_eq!(uri.token.as_deref(), Some("graph"));
/// assert_eq!(uri.object.as_deref(), Some("receiver 2026"));
/// assert_eq!(uri.id.as_deref(), Some(&[1u8, 2][..]));
/// assert!(!format!("{uri:?}").contains("1234")); // the PIN never shows
/// # Ok(()) }
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pkcs11Uri {
    /// `token=`: the token's label.
    pub token: Option<String>,
    /// `manufacturer=`: the token's manufacturer id.
    pub manufacturer: Option<String>,
    /// `model=`: the token's model.
    pub model: Option<String>,
    /// `serial=`: the token's serial number.
    pub serial: Option<String>,
    /// `slot-id=`: the slot's number (decimal).
    pub slot_id: Option<u64>,
    /// `object=`: the key's label (`CKA_LABEL`).
    pub object: Option<String>,
    /// `id=`: the key's `CKA_ID` bytes.
    pub id: Option<Vec<u8>>,
    /// `module-path=`: the PKCS#11 module (a shared library). Default: [`MODULE_ENV`].
    pub module_path: Option<PathBuf>,
    /// `pin-source=`: where the PIN is read from (`file:PATH` or `PATH`).
    pub pin_source: Option<String>,
    pin_value: Option<Zeroizing<String>>,
}

impl fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Uri")
            .field("token", &self.token)
            .field("serial", &self.serial)
            .field("slot_id", &self.slot_id)
            .field("object", &self.object)
            .field("id", &self.id.as_deref().map(hex))
            .field("module_path", &self.module_path)
            .field("pin_source", &self.pin_source)
            .field("pin_value", &self.pin_value.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl Pkcs11Uri {
    /// Parses `pkcs11:PATH-ATTRIBUTES[?QUERY-ATTRIBUTES]` (RFC 7512).
    pub fn parse(uri: &str) -> Result<Self> {
        let bad = |why: String| Error::Key(format!("PKCS#11 URI: {why}"));
        let rest = uri
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("pkcs11:"))
            .and_then(|_| uri.get(7..))
            .ok_or_else(|| bad("it must start with \"pkcs11:\"".into()))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut out = Pkcs11Uri::default();
        let mut seen: Vec<&str> = Vec::new();
        for (part, sep) in [(path, ';'), (query, '&')] {
            for attr in part.split(sep).filter(|a| !a.is_empty()) {
                let Some((name, value)) = attr.split_once('=') else {
                    return Err(bad(format!("attribute {attr:?} has no \"=\"")));
                };
                if seen.contains(&name) {
                    return Err(bad(format!("attribute {name:?} is given twice")));
                }
                seen.push(name);
                let bytes = pct_decode(name, value)?;
                let text = || {
                    String::from_utf8(bytes.clone())
                        .map_err(|_| bad(format!("the value of {name} is not UTF-8")))
                };
                match (sep, name) {
                    (';', "token") => out.token = Some(text()?),
                    (';', "manufacturer") => out.manufacturer = Some(text()?),
                    (';', "model") => out.model = Some(text()?),
                    (';', "serial") => out.serial = Some(text()?),
                    (';', "slot-id") => {
                        out.slot_id = Some(text()?.parse().map_err(|_| {
                            bad(format!("slot-id {value:?} is not a decimal number"))
                        })?);
                    }
                    (';', "object") => out.object = Some(text()?),
                    (';', "id") => out.id = Some(bytes),
                    (';', "type") => {
                        if text()? != "private" {
                            return Err(bad(format!(
                                "type={value}: the URI must name a private key (type=private)"
                            )));
                        }
                    }
                    ('&', "module-path") => out.module_path = Some(PathBuf::from(text()?)),
                    ('&', "pin-source") => out.pin_source = Some(text()?),
                    ('&', "pin-value") => {
                        out.pin_value = Some(Zeroizing::new(text()?));
                    }
                    ('&', "module-name") => {
                        return Err(bad(
                            "module-name is not supported: give module-path (or set \
                             MSGRAPH_NOTIFY_PKCS11_MODULE)"
                                .into(),
                        ));
                    }
                    _ => {
                        return Err(bad(format!(
                            "unsupported {} attribute {name:?}",
                            if sep == ';' { "path" } else { "query" }
                        )));
                    }
                }
            }
        }
        if out.object.is_none() && out.id.is_none() {
            return Err(bad(
                "it names no key: give object= (the label) or id=".into()
            ));
        }
        if out.pin_source.is_some() && out.pin_value.is_some() {
            return Err(bad("give pin-source or pin-value, not both".into()));
        }
        Ok(out)
    }

    /// The module's path: `module-path`, else [`MODULE_ENV`].
    pub(super) fn module(&self) -> Result<PathBuf> {
        if let Some(p) = &self.module_path {
            return Ok(p.clone());
        }
        match std::env::var_os(MODULE_ENV) {
            Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
            _ => Err(Error::Key(format!(
                "no PKCS#11 module: give module-path= in the URI or set {MODULE_ENV}"
            ))),
        }
    }

    /// The PIN: `pin-value`, the file of `pin-source`, else [`PIN_ENV`], else none.
    pub(super) fn pin(&self) -> Result<Option<AuthPin>> {
        if let Some(v) = &self.pin_value {
            return Ok(Some(AuthPin::from(v.as_str())));
        }
        if let Some(source) = &self.pin_source {
            let path = source
                .strip_prefix("file://")
                .or_else(|| source.strip_prefix("file:"))
                .unwrap_or(source);
            if path.starts_with('|') {
                return Err(Error::Key(
                    "pin-source: running a command for the PIN is not supported; use file:PATH"
                        .into(),
                ));
            }
            let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                Error::Key(format!("cannot read the PIN file {path} (pin-source): {e}"))
            })?);
            let line = text.lines().next().unwrap_or_default();
            return Ok(Some(AuthPin::from(line)));
        }
        match std::env::var(PIN_ENV) {
            Ok(pin) => {
                let pin = Zeroizing::new(pin);
                Ok(Some(AuthPin::from(pin.as_str())))
            }
            Err(_) => Ok(None),
        }
    }

    /// "token 'graph', object 'receiver-2026'": for messages (no secret).
    pub(super) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = &self.token {
            parts.push(format!("token {t:?}"));
        }
        if let Some(s) = &self.serial {
            parts.push(format!("serial {s:?}"));
        }
        if let Some(o) = &self.object {
            parts.push(format!("object {o:?}"));
        }
        if let Some(id) = &self.id {
            parts.push(format!("id {}", hex(id)));
        }
        parts.join(", ")
    }
}

/// Strict percent-decoding (RFC 3986): every `%` is followed by two hex digits.
fn pct_decode(name: &str, value: &str) -> Result<Vec<u8>> {
    let b = value.as_bytes();
    let mut i = 0;
    while let Some(p) = b.get(i..).and_then(|s| s.iter().position(|&c| c == b'%')) {
        let at = i + p;
        let ok = b
            .get(at + 1..at + 3)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
        if !ok {
            return Err(Error::Key(format!(
                "PKCS#11 URI: the value of {name} has a malformed percent-encoding at byte {at}"
            )));
        }
        i = at + 3;
    }
    Ok(percent_encoding::percent_decode(b).collect())
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
