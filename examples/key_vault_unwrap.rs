//! The private key in Azure Key Vault, never in this process: Key Vault's `unwrapKey` operation
//! (algorithm `RSA-OAEP`, which is OAEP with SHA-1 and MGF1-SHA-1, Graph's wrapping) behind the
//! crate's [`Unwrap`] trait.
//!
//! **This example cannot run in the project's CI or test suite**: it needs a real vault, a key
//! in it and a credential. CI only compiles it (`cargo build --examples --features fetch`).
//!
//! What it needs:
//! - `KEY_VAULT_KEY_URL`: the key's URL with its version,
//!   `https://NAME.vault.azure.net/keys/KEY/VERSION` (the key of the certificate given to Graph
//!   as `encryptionCertificate`; create the certificate in Key Vault with a non-exportable key).
//!   The identity needs the `unwrapKey` permission on it (role "Key Vault Crypto User").
//! - a token for `https://vault.azure.net`: `AZURE_ACCESS_TOKEN` (e.g. from
//!   `az account get-access-token --resource https://vault.azure.net --query accessToken -o tsv`),
//!   or, when that is unset, the machine's managed identity (Azure IMDS at 169.254.169.254).
//! - `CERT_PEM`: the certificate (public part, downloaded from Key Vault) so that notifications'
//!   thumbprints are checked.
//!
//! Then: `cargo run --example key_vault_unwrap --features fetch -- body.json` decrypts the
//! encrypted items of a captured notification collection (tokens are not checked here: this is
//! the key-store seam only; a service puts the same key ring into its `Receiver`).
//!
//! What a vault call costs: one HTTPS round trip per encrypted item (milliseconds in the same
//! region, against tens to hundreds of microseconds for an in-process or local-HSM unwrap; see
//! BENCHMARKS.md), and each `unwrapKey` is a billed, throttled Key Vault transaction (Key Vault's
//! "service limits" page gives the transactions per 10 seconds per vault and key type). Forged
//! items never reach it: the receiver checks tokens and clientState before any unwrap.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use msgraph_notify::keys::{KeyRing, Unwrap};
use msgraph_notify::model::ChangeNotificationCollection;
use msgraph_notify::{Certificate, Decryptor, Error};
use zeroize::Zeroizing;

const API_VERSION: &str = "7.4";
const IMDS: &str = "http://169.254.169.254/metadata/identity/oauth2/token\
                    ?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net";

/// A Key Vault RSA key used through its `unwrapKey` REST operation.
struct KeyVaultKey {
    key_url: String,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    /// A bearer token and when it stops being used (a minute before it expires).
    token: Mutex<Option<(Zeroizing<String>, Instant)>>,
}

impl KeyVaultKey {
    fn new(key_url: String) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::KeyUnavailable(format!("no async runtime: {e}")))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::KeyUnavailable(format!("no HTTP client: {e}")))?;
        Ok(KeyVaultKey {
            key_url: key_url.trim_end_matches('/').to_owned(),
            client,
            runtime,
            token: Mutex::new(None),
        })
    }

    /// `AZURE_ACCESS_TOKEN`, else a managed-identity token from IMDS (cached until a minute
    /// before it expires).
    async fn bearer(&self) -> Result<Zeroizing<String>, Error> {
        if let Ok(token) = std::env::var("AZURE_ACCESS_TOKEN") {
            return Ok(Zeroizing::new(token));
        }
        if let Ok(guard) = self.token.lock()
            && let Some((token, until)) = guard.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let unavailable = |why: String| Error::KeyUnavailable(format!("managed identity: {why}"));
        let response = self
            .client
            .get(IMDS)
            .header("Metadata", "true")
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("IMDS answered {}", response.status())));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let json: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| unavailable(e.to_string()))?;
        let token = json["access_token"]
            .as_str()
            .ok_or_else(|| unavailable("no access_token in the answer".into()))?;
        let lifetime = json["expires_in"]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(300);
        let token = Zeroizing::new(token.to_owned());
        let until = Instant::now() + Duration::from_secs(lifetime.saturating_sub(60));
        if let Ok(mut guard) = self.token.lock() {
            *guard = Some((token.clone(), until));
        }
        Ok(token)
    }

    /// `POST {key}/unwrapkey` with `{"alg":"RSA-OAEP","value":base64url(wrapped)}`.
    async fn unwrap_remote(&self, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let url = format!("{}/unwrapkey?api-version={API_VERSION}", self.key_url);
        let body = serde_json::json!({ "alg": "RSA-OAEP", "value": b64url.encode(wrapped) });
        let response = self
            .client
            .post(&url)
            .bearer_auth(self.bearer().await?.as_str())
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| Error::KeyUnavailable(format!("Key Vault unreachable: {e}")))?;
        let status = response.status();
        if status == reqwest::StatusCode::BAD_REQUEST {
            // The vault refused the ciphertext: the uniform error, and nothing of its message.
            return Err(Error::Verification);
        }
        if !status.is_success() {
            // 401/403 (credential, permission), 404 (key), 429 (throttled), 5xx: the vault's own.
            return Err(Error::KeyUnavailable(format!(
                "Key Vault answered {status}"
            )));
        }
        let bytes = Zeroizing::new(
            response
                .bytes()
                .await
                .map_err(|e| Error::KeyUnavailable(format!("Key Vault answer: {e}")))?
                .to_vec(),
        );
        let json: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|_| Error::KeyUnavailable("Key Vault answered no JSON".into()))?;
        let value = json["value"]
            .as_str()
            .ok_or_else(|| Error::KeyUnavailable("Key Vault answered no value".into()))?;
        b64url.decode(value).map(Zeroizing::new).map_err(|_| {
            Error::KeyUnavailable("Key Vault answered a value that is not base64url".into())
        })
    }
}

impl Unwrap for KeyVaultKey {
    fn unwrap_key(&self, wrapped: &[u8]) -> msgraph_notify::Result<Zeroizing<Vec<u8>>> {
        // The receiver calls this from its worker threads, which may belong to an async runtime
        // already: run the request on a thread of its own rather than nest runtimes.
        std::thread::scope(|scope| {
            scope
                .spawn(|| self.runtime.block_on(self.unwrap_remote(wrapped)))
                .join()
                .unwrap_or_else(|_| Err(Error::KeyUnavailable("the request thread failed".into())))
        })
    }

    fn describe(&self) -> String {
        format!("Azure Key Vault key {}", self.key_url)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key_url = std::env::var("KEY_VAULT_KEY_URL").map_err(|_| {
        "set KEY_VAULT_KEY_URL=https://NAME.vault.azure.net/keys/KEY/VERSION (this example needs a real vault)"
    })?;
    let cert = match std::env::var("CERT_PEM") {
        Ok(path) => Some(Certificate::load(&std::fs::read(path)?)?),
        Err(_) => None,
    };
    let body_path = std::env::args()
        .nth(1)
        .ok_or("usage: key_vault_unwrap BODY.json")?;
    let collection: ChangeNotificationCollection =
        serde_json::from_slice(&std::fs::read(body_path)?)?;

    let mut ring = KeyRing::new();
    ring.add_unwrapper_without_id(KeyVaultKey::new(key_url)?, cert)?;
    let decryptor = Decryptor::new(ring);
    for (index, notification) in collection.value.iter().enumerate() {
        match decryptor.decrypt_notification(notification) {
            Ok(d) => println!("{index}: {} {}", d.resource.kind(), d.plaintext.as_str()),
            Err(e) => println!("{index}: {e}"),
        }
    }
    Ok(())
}
