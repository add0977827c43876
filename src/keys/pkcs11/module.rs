//! The module and the token: loading a module once per process, finding the slot, logging in,
//! finding the key and its certificate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{
    Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use super::super::Certificate;
use super::*;
use crate::error::{Error, Result};
/// One loaded and initialised module per path, shared by every key of the process (a module is
/// initialised once per process).
pub(super) fn module(path: &Path) -> Result<Pkcs11> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut modules = MODULES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(m) = modules.get(path) {
        return Ok(m.clone());
    }
    if !path.exists() {
        return Err(Error::Key(format!(
            "the PKCS#11 module {} does not exist (module-path or {MODULE_ENV})",
            path.display()
        )));
    }
    let ctx = Pkcs11::new(path).map_err(|e| {
        Error::Key(format!(
            "cannot load the PKCS#11 module {}: {e}",
            path.display()
        ))
    })?;
    initialize(&ctx).map_err(|e| {
        Error::Key(format!(
            "cannot initialise the PKCS#11 module {}: {e}",
            path.display()
        ))
    })?;
    modules.insert(path.to_owned(), ctx.clone());
    Ok(ctx)
}

/// One lock per module path, shared by every key of the process on that module: each call into
/// the module (opening a session, an unwrap) holds it shared; finalising and initialising the
/// module again holds it alone, since `C_Finalize` while another thread is inside the module is
/// undefined behaviour for a PKCS#11 library.
pub(super) fn module_lock(path: &Path) -> Arc<RwLock<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<RwLock<()>>>>> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Arc::clone(locks.entry(path.to_owned()).or_default())
}

/// `C_Initialize`; a module that is already initialised (by this process) is fine.
pub(super) fn initialize(ctx: &Pkcs11) -> std::result::Result<(), CkError> {
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) | Ok(()) => Ok(()),
        Err(e) => Err(e),
    }
}

/// What a failed login means, naming the PIN.
pub(super) fn login_error(token: &str, e: &CkError) -> String {
    let why = match rv(e) {
        Some(RvError::PinIncorrect) => "the PIN is incorrect",
        Some(RvError::PinLocked) => "the PIN is locked (too many wrong attempts)",
        Some(RvError::PinExpired) => "the PIN has expired",
        Some(RvError::PinInvalid | RvError::PinLenRange) => "the PIN is not valid for this token",
        Some(RvError::UserPinNotInitialized) => "the token's user PIN is not initialised",
        _ => "the login failed",
    };
    format!("PKCS#11 login to {token} failed: {why} ({e})")
}

/// Logs `session` in as the user; already logged in (another session did) is fine.
pub(super) fn login(session: &Session, pin: Option<&AuthPin>, token: &str) -> Result<()> {
    let Some(pin) = pin else {
        return Ok(());
    };
    match session.login(UserType::User, Some(pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(e) => Err(Error::Key(login_error(token, &e))),
    }
}

/// The slot whose token matches the URI's token attributes.
pub(super) fn find_slot(ctx: &Pkcs11, uri: &Pkcs11Uri, module: &Path) -> Result<Slot> {
    let slots = ctx.get_slots_with_token().map_err(|e| {
        Error::Key(format!(
            "cannot list the tokens of {}: {e}",
            module.display()
        ))
    })?;
    let mut matching = Vec::new();
    let mut labels = Vec::new();
    for slot in slots {
        let Ok(info) = ctx.get_token_info(slot) else {
            continue;
        };
        labels.push(format!("{:?}", info.label()));
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        if eq(&uri.token, info.label())
            && eq(&uri.serial, info.serial_number())
            && eq(&uri.manufacturer, info.manufacturer_id())
            && eq(&uri.model, info.model())
            && uri.slot_id.is_none_or(|id| id == slot.id())
        {
            matching.push(slot);
        }
    }
    match matching.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::Key(format!(
            "no token in {} matches the URI ({}); tokens present: {}",
            module.display(),
            uri.describe(),
            if labels.is_empty() {
                "none".to_owned()
            } else {
                labels.join(", ")
            }
        ))),
        _ => Err(Error::Key(format!(
            "{} tokens in {} match the URI ({}): name one with token= or serial=",
            matching.len(),
            module.display(),
            uri.describe()
        ))),
    }
}

/// The one RSA private key the URI names, on a logged-in session.
pub(super) fn find_key(
    session: &Session,
    uri: &Pkcs11Uri,
    logged_in: bool,
) -> Result<ObjectHandle> {
    let mut template = vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::RSA),
    ];
    if let Some(label) = &uri.object {
        template.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        template.push(Attribute::Id(id.clone()));
    }
    let found = session
        .find_objects(&template)
        .map_err(|e| Error::Key(format!("cannot search the token for the key: {e}")))?;
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::Key(format!(
            "no RSA private key matches {} on the token{}",
            uri.describe(),
            if logged_in {
                ""
            } else {
                " (no PIN was given: private keys are visible only after login; use \
                 pin-source=file:PATH)"
            }
        ))),
        several => Err(Error::Key(format!(
            "{} RSA private keys match {}: add id= or object= to the URI",
            several.len(),
            uri.describe()
        ))),
    }
}

pub(super) fn bytes_attribute(
    session: &Session,
    object: ObjectHandle,
    ty: AttributeType,
) -> Result<Option<Vec<u8>>> {
    let attrs = session
        .get_attributes(object, &[ty])
        .map_err(|e| Error::Key(format!("cannot read the key's {ty}: {e}")))?;
    Ok(attrs.into_iter().find_map(|a| match a {
        Attribute::Modulus(v)
        | Attribute::Id(v)
        | Attribute::Value(v)
        | Attribute::PublicExponent(v) => Some(v),
        _ => None,
    }))
}

/// The certificate object with the key's `CKA_ID` (or, for a key without one, its label).
pub(super) fn find_certificate(
    session: &Session,
    key_id: Option<&[u8]>,
    label: Option<&str>,
) -> Result<Option<Certificate>> {
    let mut template = vec![
        Attribute::Class(ObjectClass::CERTIFICATE),
        Attribute::CertificateType(CertificateType::X_509),
    ];
    match (key_id, label) {
        (Some(id), _) => template.push(Attribute::Id(id.to_vec())),
        (None, Some(label)) => template.push(Attribute::Label(label.as_bytes().to_vec())),
        (None, None) => return Ok(None),
    }
    let found = session
        .find_objects(&template)
        .map_err(|e| Error::Key(format!("cannot search the token for the certificate: {e}")))?;
    let Some(&object) = found.first() else {
        return Ok(None);
    };
    match bytes_attribute(session, object, AttributeType::Value)? {
        Some(der) => Certificate::from_der(&der).map(Some),
        None => Ok(None),
    }
}
