//! The session pool: sessions taken and given back per unwrap, a lost connection re-established
//! and the unwrap retried once.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{AttributeType, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use super::super::{Certificate, Sign, Unwrap, strip_zeros};
use super::*;
use crate::error::{Error, Result};
/// Lets go of a session of a lost connection without `C_CloseSession`: after the module was
/// re-initialised its handle number may belong to a new session (ours or another user's of the
/// module), which closing would destroy. What is left behind is a handle number and a reference
/// to the module, a few bytes per lost session.
pub(super) fn forget_lost(session: Session) {
    std::mem::forget(session);
}

/// The PKCS#11 return value of an error, if it has one.
pub(super) fn rv(e: &CkError) -> Option<RvError> {
    match e {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

/// Errors after which the session, the login or the object handle is gone: reconnect.
pub(super) fn is_lost(e: &CkError) -> bool {
    matches!(
        rv(e),
        Some(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized
                | RvError::CryptokiNotInitialized
                | RvError::ObjectHandleInvalid
                | RvError::KeyHandleInvalid
                | RvError::UserNotLoggedIn
                | RvError::SlotIdInvalid
        )
    )
}

/// Errors that say the key or the token cannot do the operation at all (configuration, not
/// data): reported as the key's own failure.
pub(super) fn is_key_fault(e: &CkError) -> bool {
    matches!(
        rv(e),
        Some(
            RvError::MechanismInvalid
                | RvError::MechanismParamInvalid
                | RvError::KeyFunctionNotPermitted
                | RvError::KeyTypeInconsistent
                | RvError::PinLocked
                | RvError::PinExpired
                | RvError::PinIncorrect
                | RvError::SessionCount
                | RvError::HostMemory
                | RvError::DeviceMemory
        )
    ) || rv(e).is_none()
}

/// The live connection: module, slot and the key's handle, renewed after a loss.
pub(super) struct Conn {
    pub(super) ctx: Pkcs11,
    pub(super) slot: Slot,
    pub(super) key: ObjectHandle,
    pub(super) generation: u64,
    /// Set while the connection is lost and could not be re-established: why, and when to try
    /// again. Unwraps meanwhile fail at once with [`Error::KeyUnavailable`].
    pub(super) down: Option<Down>,
    /// Set for good when the token refused the PIN: never tried again (a wrong PIN retried
    /// locks the token). The message names the PIN, never its value.
    pub(super) pin_refused: Option<String>,
}

/// A lost connection waiting for its next attempt.
pub(super) struct Down {
    pub(super) why: String,
    pub(super) retry_at: Instant,
    pub(super) backoff: Duration,
}

/// The first wait after a failed re-connection; doubled after each failure up to
/// [`MAX_BACKOFF`].
pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// The longest wait between two attempts to find a lost token again.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Return values that mean the PIN itself was refused: never retried.
pub(super) fn is_pin_refusal(e: &CkError) -> bool {
    matches!(
        rv(e),
        Some(
            RvError::PinIncorrect
                | RvError::PinLocked
                | RvError::PinExpired
                | RvError::PinInvalid
                | RvError::PinLenRange
        )
    )
}

/// Why a re-connection failed.
enum Failed {
    /// The token, the key or the module is not there (yet): try again later.
    Unavailable(String),
    /// The token refused the PIN: never tried again.
    Pin(String),
}

pub(super) struct Inner {
    pub(super) uri: Pkcs11Uri,
    pub(super) module_path: PathBuf,
    pub(super) pin: Option<AuthPin>,
    pub(super) modulus: Vec<u8>,
    pub(super) certificate: Option<Certificate>,
    pub(super) conn: Mutex<Conn>,
    /// The module's lock ([`module_lock`]): shared for each call, alone to re-initialise.
    pub(super) calls: std::sync::Arc<std::sync::RwLock<()>>,
    pub(super) idle: Mutex<Vec<(u64, Session)>>,
    pub(super) unwrap_calls: AtomicU64,
    pub(super) sessions_opened: AtomicU64,
    pub(super) reconnects: AtomicU64,
}

impl Pkcs11Key {
    pub(super) fn conn(&self) -> MutexGuard<'_, Conn> {
        self.inner
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn idle(&self) -> MutexGuard<'_, Vec<(u64, Session)>> {
        self.inner
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An idle session of the current connection, or a new one (logged in).
    pub(super) fn session(&self) -> std::result::Result<(u64, ObjectHandle, Session), CkError> {
        let (ctx, slot, key, generation) = {
            let c = self.conn();
            (c.ctx.clone(), c.slot, c.key, c.generation)
        };
        loop {
            let popped = self.idle().pop();
            match popped {
                Some((g, s)) if g == generation => return Ok((g, key, s)),
                Some((_, stale)) => forget_lost(stale),
                None => break,
            }
        }
        let session = ctx.open_ro_session(slot)?;
        self.inner.sessions_opened.fetch_add(1, Ordering::Relaxed);
        if let Some(pin) = &self.inner.pin {
            match session.login(UserType::User, Some(pin)) {
                Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((generation, key, session))
    }

    pub(super) fn give_back(&self, generation: u64, session: Session) {
        let mut idle = self.idle();
        if idle.len() < MAX_IDLE_SESSIONS {
            idle.push((generation, session));
        }
    }

    /// Re-establishes the connection after a loss seen on `generation` (once, whoever sees it
    /// first): the token and the key found again on the module as it is, and when they are not
    /// there, the module finalised and initialised again (a module reads its tokens when it is
    /// initialised: a token re-inserted is seen only then) and the search repeated; the modulus
    /// checked. A failure is remembered with a back-off (200 ms doubling to 10 s): until then
    /// unwraps fail at once with [`Error::KeyUnavailable`], without touching the module. A PIN
    /// the token refuses is [`Error::KeyRefused`], for good.
    pub(super) fn reconnect(&self, generation: u64) -> Result<()> {
        // Alone in the module (this process's calls into it wait), before the connection's lock:
        // the order every call keeps.
        let _alone = self
            .inner
            .calls
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut conn = self.conn();
        if let Some(why) = &conn.pin_refused {
            return Err(Error::KeyRefused(why.clone()));
        }
        if conn.generation != generation && conn.down.is_none() {
            return Ok(()); // another worker already did
        }
        if let Some(down) = &conn.down
            && Instant::now() < down.retry_at
        {
            return Err(Error::KeyUnavailable(format!(
                "{}: {}; trying again in {} ms",
                self.name(),
                down.why,
                down.retry_at
                    .saturating_duration_since(Instant::now())
                    .as_millis()
            )));
        }
        for (_, stale) in self.idle().drain(..) {
            forget_lost(stale);
        }
        let found = match self.find_again(&conn.ctx) {
            Ok(found) => Ok(found),
            Err(Failed::Unavailable(_)) => {
                // Finalise and initialise the module again, so that it looks for its tokens
                // anew. Every session of the module ends: other keys of this process on the
                // same module see their sessions lost and re-establish them in turn.
                let _ = conn.ctx.clone().finalize();
                match initialize(&conn.ctx) {
                    Ok(()) => self.find_again(&conn.ctx),
                    Err(e) => Err(Failed::Unavailable(format!(
                        "cannot re-initialise the PKCS#11 module: {e}"
                    ))),
                }
            }
            Err(pin) => Err(pin),
        };
        match found {
            Ok((slot, key, session)) => {
                conn.slot = slot;
                conn.key = key;
                conn.generation += 1;
                conn.down = None;
                self.inner.reconnects.fetch_add(1, Ordering::Relaxed);
                self.idle().push((conn.generation, session));
                Ok(())
            }
            Err(Failed::Pin(why)) => {
                let why = format!(
                    "{}: {why}; not tried again (a wrong PIN retried locks the token): correct \
                     the PIN and restart",
                    self.name()
                );
                conn.pin_refused = Some(why.clone());
                Err(Error::KeyRefused(why))
            }
            Err(Failed::Unavailable(why)) => {
                let backoff = conn
                    .down
                    .as_ref()
                    .map_or(FIRST_BACKOFF, |d| (d.backoff * 2).min(MAX_BACKOFF));
                conn.down = Some(Down {
                    why: why.clone(),
                    retry_at: Instant::now() + backoff,
                    backoff,
                });
                Err(Error::KeyUnavailable(format!(
                    "{}: {why}; trying again in {} ms",
                    self.name(),
                    backoff.as_millis()
                )))
            }
        }
    }

    /// The token, a logged-in session and the key, found again on `ctx` and checked to be the
    /// key that was opened.
    fn find_again(
        &self,
        ctx: &Pkcs11,
    ) -> std::result::Result<(Slot, ObjectHandle, Session), Failed> {
        let unavailable = |e: Error| Failed::Unavailable(e.to_string());
        let slot = find_slot(ctx, &self.inner.uri, &self.inner.module_path).map_err(unavailable)?;
        let session = ctx
            .open_ro_session(slot)
            .map_err(|e| Failed::Unavailable(format!("cannot open a session: {e}")))?;
        self.inner.sessions_opened.fetch_add(1, Ordering::Relaxed);
        if let Some(pin) = &self.inner.pin {
            match session.login(UserType::User, Some(pin)) {
                Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
                Err(e) if is_pin_refusal(&e) => {
                    drop(session); // a live session of this module: closed
                    return Err(Failed::Pin(login_error(&self.inner.uri.describe(), &e)));
                }
                Err(e) => {
                    return Err(Failed::Unavailable(login_error(
                        &self.inner.uri.describe(),
                        &e,
                    )));
                }
            }
        }
        let key =
            find_key(&session, &self.inner.uri, self.inner.pin.is_some()).map_err(unavailable)?;
        let modulus = bytes_attribute(&session, key, AttributeType::Modulus)
            .map_err(unavailable)?
            .map(|m| strip_zeros(&m).to_vec());
        if modulus.as_deref() != Some(self.inner.modulus.as_slice()) {
            return Err(Failed::Unavailable(
                "the key the URI names is no longer the key that was opened".into(),
            ));
        }
        Ok((slot, key, session))
    }

    pub(super) fn name(&self) -> String {
        format!("PKCS#11 key ({})", self.inner.uri.describe())
    }

    /// One attempt of `op`: `Ok(Ok(out))`, `Ok(Err(e))` a final error, `Err(generation)` a lost
    /// connection to re-establish.
    fn attempt(&self, op: &Operation<'_>) -> std::result::Result<Result<Zeroizing<Vec<u8>>>, u64> {
        // Shared with every other call into the module; released before any reconnect.
        let _shared = self
            .inner
            .calls
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (generation, key, session) = match self.session() {
            Ok(s) => s,
            Err(e) if is_lost(&e) => return Err(self.conn().generation),
            Err(e) if is_pin_refusal(&e) => {
                let why = format!(
                    "{}: {}; not tried again (a wrong PIN retried locks the token): correct \
                     the PIN and restart",
                    self.name(),
                    login_error(&self.inner.uri.describe(), &e)
                );
                self.conn().pin_refused = Some(why.clone());
                return Ok(Err(Error::KeyRefused(why)));
            }
            Err(e) => {
                return Ok(Err(Error::KeyUnavailable(format!(
                    "{}: cannot open a session: {e}",
                    self.name()
                ))));
            }
        };
        match (op.run)(&session, key) {
            Ok(out) => {
                self.give_back(generation, session);
                Ok(Ok(Zeroizing::new(out)))
            }
            Err(e) if is_lost(&e) => {
                forget_lost(session);
                Err(generation)
            }
            // For a signature the key's own refusals (no CKA_SIGN, no PSS mechanism) are
            // permanent: `op.other` names them.
            Err(e) if is_key_fault(&e) && op.what == "unwrap" => {
                self.give_back(generation, session);
                Ok(Err(Error::KeyUnavailable(format!(
                    "{}: the token refused the {}: {e}",
                    self.name(),
                    op.what
                ))))
            }
            // A failed operation ends it; the session is reusable.
            Err(e) => {
                self.give_back(generation, session);
                Ok(Err((op.other)(&e)))
            }
        }
    }

    /// `op` on a pooled session. A lost session or token is re-established and `op` retried
    /// once; a token still missing is looked for again (the module finalised and re-initialised)
    /// with a back-off, on later calls; a PIN the token refused is never tried again.
    fn run(&self, op: &Operation<'_>) -> Result<Zeroizing<Vec<u8>>> {
        let lost = {
            let conn = self.conn();
            if let Some(why) = &conn.pin_refused {
                return Err(Error::KeyRefused(why.clone()));
            }
            conn.down.is_some().then_some(conn.generation)
        };
        // Still lost: find the token again first (or wait out the back-off).
        if let Some(generation) = lost {
            self.reconnect(generation)?;
        }
        match self.attempt(op) {
            Ok(result) => result,
            Err(generation) => {
                self.reconnect(generation)?;
                match self.attempt(op) {
                    Ok(result) => result,
                    Err(_) => Err(Error::KeyUnavailable(format!(
                        "{}: the session was lost again right after reconnecting",
                        self.name()
                    ))),
                }
            }
        }
    }
}

/// The call into the module: the session and the key, the output or the token's error.
type RunOnKey<'a> = dyn Fn(&Session, ObjectHandle) -> std::result::Result<Vec<u8>, CkError> + 'a;

/// One private-key operation on the token, and how its failures that are neither a lost
/// session nor the token's own fault are told.
struct Operation<'a> {
    /// `unwrap` or `signature`, for messages.
    what: &'static str,
    run: &'a RunOnKey<'a>,
    other: &'a dyn Fn(&CkError) -> Error,
}

impl Unwrap for Pkcs11Key {
    /// `C_Decrypt` with `CKM_RSA_PKCS_OAEP` (SHA-1, MGF1-SHA-1, no label) on a pooled session.
    /// A lost session or token is re-established and the unwrap retried once; a token still
    /// missing is looked for again (the module finalised and re-initialised) with a back-off, on
    /// later unwraps. Errors: [`Error::Verification`] for anything that may depend on `wrapped`
    /// (the token's `CKR_ENCRYPTED_DATA_INVALID`, `CKR_ENCRYPTED_DATA_LEN_RANGE`, and any code
    /// not known to be the token's own); [`Error::KeyUnavailable`] (transient) for the token's
    /// own failures (lost and not yet found again, mechanism not offered);
    /// [`Error::KeyRefused`] (permanent) once the token refused the PIN.
    fn unwrap_key(&self, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let params = PkcsOaepParams::new(
            MechanismType::SHA1,
            PkcsMgfType::MGF1_SHA1,
            PkcsOaepSource::empty(),
        );
        self.run(&Operation {
            what: "unwrap",
            run: &|session, key| {
                self.inner.unwrap_calls.fetch_add(1, Ordering::Relaxed);
                session.decrypt(&Mechanism::RsaPkcsOaep(params), key, wrapped)
            },
            // Anything else may depend on the ciphertext: one uniform error, no detail.
            other: &|_| Error::Verification,
        })
    }

    fn rsa_modulus(&self) -> Option<Vec<u8>> {
        Some(self.inner.modulus.clone())
    }

    fn describe(&self) -> String {
        self.name()
    }
}

impl Sign for Pkcs11Key {
    /// `C_Sign` with `CKM_SHA256_RSA_PKCS_PSS` (SHA-256, MGF1-SHA-256, a 32-byte salt) on a
    /// pooled session, recovering as [`Pkcs11Key::unwrap_key`](Unwrap::unwrap_key) does. The
    /// key needs `CKA_SIGN` (keys made by `keygen --pkcs11` have it). Errors:
    /// [`Error::KeyUnavailable`] (transient) while the token is away; [`Error::Key`] when the
    /// token refuses to sign with the key or does not offer the mechanism.
    fn sign_pss_sha256(&self, message: &[u8]) -> Result<Vec<u8>> {
        let params = PkcsPssParams {
            hash_alg: MechanismType::SHA256,
            mgf: PkcsMgfType::MGF1_SHA256,
            s_len: 32u64.into(),
        };
        self.run(&Operation {
            what: "signature",
            run: &|session, key| session.sign(&Mechanism::Sha256RsaPkcsPss(params), key, message),
            other: &|e| {
                Error::Key(format!(
                    "{}: the token cannot sign with this key (CKM_SHA256_RSA_PKCS_PSS): {e}",
                    self.name()
                ))
            },
        })
        .map(|signature| signature.to_vec())
    }

    fn describe(&self) -> String {
        self.name()
    }
}
