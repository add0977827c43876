//! Signing keys: a JWKS document, and the shared, refreshable set the validator reads.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use jsonwebtoken::DecodingKey;
use serde::Deserialize;

use crate::error::{Error, Result};

/// A parsed JSON Web Key Set: the RSA signing keys by `kid`. Keys of other types are skipped.
///
/// ```
/// use msgraph_notify::token::Jwks;
/// let jwks = Jwks::from_json(br#"{"keys":[{"kty":"RSA","kid":"k1","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"}]}"#).unwrap();
/// assert_eq!(jwks.len(), 1);
/// assert!(jwks.contains("k1"));
/// ```
#[derive(Clone, Default)]
pub struct Jwks {
    keys: HashMap<String, Arc<DecodingKey>>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<_> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("Jwks").field("kids", &kids).finish()
    }
}

#[derive(Deserialize)]
struct JwksDoc {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RsaJwk {
    kty: String,
    kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
}

impl Jwks {
    /// Parses a JWKS document (`{"keys":[...]}`), keeping the RSA signing keys that have a `kid`.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let doc: JwksDoc = serde_json::from_slice(bytes)
            .map_err(|e| Error::malformed("jwks", format!("not a JWKS document: {e}")))?;
        let mut jwks = Jwks::default();
        for value in doc.keys {
            let Ok(jwk) = serde_json::from_value::<RsaJwk>(value) else {
                continue;
            };
            if jwk.kty != "RSA" || jwk.use_.as_deref().is_some_and(|u| u != "sig") {
                continue;
            }
            let (Some(kid), Some(n), Some(e)) = (jwk.kid, jwk.n, jwk.e) else {
                continue;
            };
            let (Ok(n), Ok(e)) = (super::b64url(&n), super::b64url(&e)) else {
                return Err(Error::malformed(
                    "jwks",
                    format!("key {kid:?} has a modulus or exponent that is not base64url"),
                ));
            };
            jwks.insert(kid, &n, &e);
        }
        Ok(jwks)
    }

    /// Reads and parses a JWKS file.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| {
            Error::malformed("jwks", format!("cannot read {}: {e}", path.display()))
        })?;
        Self::from_json(&bytes)
    }

    /// Adds an RSA key from its big-endian modulus and exponent.
    pub fn insert(&mut self, kid: impl Into<String>, n: &[u8], e: &[u8]) {
        self.keys.insert(
            kid.into(),
            Arc::new(DecodingKey::from_rsa_raw_components(n, e)),
        );
    }

    /// Whether a key has this `kid`.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key ids, sorted.
    pub fn kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.keys.keys().cloned().collect();
        kids.sort();
        kids
    }
}

/// The signing keys a validator uses: shared, and replaced as a whole when they are refreshed
/// (by [`fetch`](crate::token) or by the application).
///
/// ```
/// use msgraph_notify::token::{Jwks, SigningKeys};
/// let keys = SigningKeys::new(Jwks::default());
/// let shared = keys.clone();
/// shared.replace(Jwks::default());
/// assert!(keys.snapshot().is_empty());
/// ```
#[derive(Debug, Clone, Default)]
pub struct SigningKeys {
    inner: Arc<RwLock<Arc<Jwks>>>,
    /// Why the last fetch of the keys failed, until keys are put in again.
    fetch_failure: Arc<RwLock<Option<String>>>,
}

impl SigningKeys {
    /// Shares `jwks`.
    pub fn new(jwks: Jwks) -> Self {
        SigningKeys {
            inner: Arc::new(RwLock::new(Arc::new(jwks))),
            fetch_failure: Arc::default(),
        }
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        self.snapshot().keys.get(kid).cloned()
    }

    /// Whether a key has this `kid`.
    pub fn contains(&self, kid: &str) -> bool {
        self.snapshot().contains(kid)
    }

    /// The current set.
    pub fn snapshot(&self) -> Arc<Jwks> {
        match self.inner.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the whole set (key rotation), and forgets a recorded fetch failure.
    pub fn replace(&self, jwks: Jwks) {
        let mut guard = match self.inner.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(jwks);
        drop(guard);
        *self.failure_slot() = None;
    }

    /// Records that fetching fresh keys failed, and why. Until the next [`replace`], a token
    /// whose `kid` is not in the set is rejected with
    /// [`TokenError::KeysUnavailable`](super::TokenError::KeysUnavailable), which says the key
    /// could not be had, rather than [`TokenError::UnknownKey`](super::TokenError::UnknownKey),
    /// which is what a forged token meets. The `fetch` feature's `KeyFetcher` calls this.
    ///
    /// [`replace`]: SigningKeys::replace
    ///
    /// ```
    /// use msgraph_notify::token::{Jwks, SigningKeys};
    /// let keys = SigningKeys::default();
    /// keys.set_fetch_failure("request to https://login.example failed: name resolution failed");
    /// assert!(keys.fetch_failure().is_some());
    /// keys.replace(Jwks::default());
    /// assert!(keys.fetch_failure().is_none());
    /// ```
    pub fn set_fetch_failure(&self, reason: impl Into<String>) {
        *self.failure_slot() = Some(reason.into());
    }

    /// Why the last fetch failed, when it did and no keys were put in since.
    pub fn fetch_failure(&self) -> Option<String> {
        match self.fetch_failure.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn failure_slot(&self) -> std::sync::RwLockWriteGuard<'_, Option<String>> {
        match self.fetch_failure.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}
