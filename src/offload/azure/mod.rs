//! [`AzureBlobStore`]: offloaded payloads read from an Azure Storage account (feature
//! `azure-blob`), through the `object_store` crate's Azure client (Shared Key or SAS signing,
//! retries, timeouts).

use std::fmt;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, RetryConfig};
use zeroize::Zeroizing;

use super::{DEFAULT_CONTAINER, PayloadError, PayloadStore, check_blob_name};

mod connection;
mod fault;

use connection::{Parsed, config};
use fault::{Fault, read};

/// The storage emulator's well-known account (Azurite; "UseDevelopmentStorage=true").
const EMULATOR_ACCOUNT: &str = "devstoreaccount1";
/// The storage emulator's well-known account key, published by Microsoft for Azurite.
const EMULATOR_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The default deadline of one fetch, retries included: 30 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads offloaded payloads from an Azure Storage account's blob service.
///
/// Made from the storage account's connection string: the string Graph's `blobStoreUrl` secret
/// holds, or one with fewer rights (read on the container is enough). Recognised
/// (case-insensitive keys, `;`-separated, as Azure's SDKs read them):
/// - `AccountName` and `AccountKey` (Shared Key), or `SharedAccessSignature` (a SAS token);
/// - `BlobEndpoint`, or else `DefaultEndpointsProtocol` (`https` by default) with
///   `EndpointSuffix` (`core.windows.net` by default): `https://{account}.blob.{suffix}`;
/// - `UseDevelopmentStorage=true`: Azurite at `http://127.0.0.1:10000/devstoreaccount1`.
///
/// Plain `http` is used only when the connection string names it. The container is
/// [`DEFAULT_CONTAINER`] unless [`AzureBlobStore::container`] says otherwise. Each fetch runs on
/// the store's own one-thread runtime and blocks the caller until it ends: at most the
/// [`AzureBlobStore::timeout`] (default [`DEFAULT_TIMEOUT`]), with two retries of a failed
/// request inside it. `Debug` shows the account, endpoint and container, never the credential.
///
/// ```
/// use msgraph_notify::offload::azure::AzureBlobStore;
///
/// let store = AzureBlobStore::from_connection_string(
///     "DefaultEndpointsProtocol=https;AccountName=contoso;AccountKey=c2VjcmV0;EndpointSuffix=core.windows.net",
/// )?;
/// let shown = format!("{store:?}");
/// assert!(shown.contains("https://contoso.blob.core.windows.net"));
/// assert!(shown.contains("microsoft-graph-change-notifications"));
/// assert!(!shown.contains("c2VjcmV0"));
/// assert!(AzureBlobStore::from_connection_string("AccountName=contoso").is_err());
/// # Ok::<(), msgraph_notify::offload::PayloadError>(())
/// ```
pub struct AzureBlobStore {
    settings: Settings,
    store: Arc<MicrosoftAzure>,
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

/// What the client is built from.
struct Settings {
    account: String,
    endpoint: String,
    container: String,
    credential: Credential,
    timeout: Duration,
}

enum Credential {
    AccountKey(Zeroizing<String>),
    Sas(Zeroizing<String>),
}

impl fmt::Debug for AzureBlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        f.debug_struct("AzureBlobStore")
            .field("account", &s.account)
            .field("endpoint", &s.endpoint)
            .field("container", &s.container)
            .field(
                "credential",
                &match s.credential {
                    Credential::AccountKey(_) => "account key (redacted)",
                    Credential::Sas(_) => "SAS token (redacted)",
                },
            )
            .field("timeout", &s.timeout)
            .finish_non_exhaustive()
    }
}

impl AzureBlobStore {
    /// A store for the account a connection string names (see [`AzureBlobStore`]).
    ///
    /// # Errors
    ///
    /// [`PayloadError::Config`] with the reason when the string lacks the account name or a
    /// credential, or names an unusable endpoint, or when the client's runtime cannot start.
    /// The message never holds the credential.
    pub fn from_connection_string(connection_string: &str) -> Result<Self, PayloadError> {
        let parsed = Parsed::new(connection_string)?;
        let settings = Settings {
            account: parsed.account,
            endpoint: parsed.endpoint,
            container: DEFAULT_CONTAINER.to_owned(),
            credential: parsed.credential,
            timeout: DEFAULT_TIMEOUT,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("msgraph-blob")
            .enable_all()
            .build()
            .map_err(|e| config(format!("cannot start the blob client's runtime: {e}")))?;
        Ok(Self {
            store: Arc::new(settings.client()?),
            settings,
            runtime: Some(runtime),
        })
    }

    /// Reads from `container` instead of [`DEFAULT_CONTAINER`].
    ///
    /// # Errors
    ///
    /// [`PayloadError::Config`] when the client cannot be rebuilt with that name.
    pub fn container(mut self, container: impl Into<String>) -> Result<Self, PayloadError> {
        self.settings.container = container.into();
        self.store = Arc::new(self.settings.client()?);
        Ok(self)
    }

    /// The deadline of one fetch, retries included. Default: [`DEFAULT_TIMEOUT`].
    ///
    /// # Errors
    ///
    /// [`PayloadError::Config`] when the client cannot be rebuilt.
    pub fn timeout(mut self, timeout: Duration) -> Result<Self, PayloadError> {
        self.settings.timeout = timeout;
        self.store = Arc::new(self.settings.client()?);
        Ok(self)
    }

    /// The container read from.
    pub fn container_name(&self) -> &str {
        &self.settings.container
    }
}

impl Settings {
    fn client(&self) -> Result<MicrosoftAzure, PayloadError> {
        // One request may take the whole deadline: a 16 MiB body on a slow link needs it.
        let request_timeout = self.timeout;
        let mut builder = MicrosoftAzureBuilder::new()
            .with_account(&self.account)
            .with_container_name(&self.container)
            .with_endpoint(self.endpoint.clone())
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(self.endpoint.starts_with("http://"))
                    .with_timeout(request_timeout)
                    .with_connect_timeout(request_timeout.min(Duration::from_secs(5))),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(2),
                    base: 2.0,
                },
                max_retries: 2,
                retry_timeout: self.timeout,
            });
        builder = match &self.credential {
            Credential::AccountKey(key) => builder.with_access_key(key.as_str()),
            Credential::Sas(sas) => builder.with_sas_authorization(
                form_urlencoded::parse(sas.trim_start_matches('?').as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect::<Vec<_>>(),
            ),
        };
        builder
            .build()
            .map_err(|e| config(self.redact(&e.to_string())))
    }

    /// `message` with every credential in it replaced.
    fn redact(&self, message: &str) -> String {
        let mut out = message.to_owned();
        let secret = match &self.credential {
            Credential::AccountKey(k) | Credential::Sas(k) => k.as_str(),
        };
        if !secret.is_empty() {
            out = out.replace(secret, "<redacted>");
        }
        if let Credential::Sas(sas) = &self.credential {
            for (key, value) in form_urlencoded::parse(sas.trim_start_matches('?').as_bytes()) {
                if key == "sig" && !value.is_empty() {
                    out = out.replace(value.as_ref(), "<redacted>");
                    let encoded: String =
                        form_urlencoded::byte_serialize(value.as_bytes()).collect();
                    out = out.replace(&encoded, "<redacted>");
                }
            }
        }
        out
    }
}

impl PayloadStore for AzureBlobStore {
    fn fetch(&self, storage_id: &str, max_bytes: usize) -> Result<Vec<u8>, PayloadError> {
        check_blob_name(storage_id)?;
        let path = Path::parse(storage_id).map_err(|e| PayloadError::InvalidName(e.to_string()))?;
        let Some(runtime) = &self.runtime else {
            return Err(PayloadError::Unavailable(
                "the blob client is shut down".into(),
            ));
        };
        let store = Arc::clone(&self.store);
        let deadline = self.settings.timeout;
        let (tx, rx) = mpsc::sync_channel(1);
        runtime.spawn(async move {
            let result = match tokio::time::timeout(deadline, read(&store, &path, max_bytes)).await
            {
                Ok(result) => result,
                Err(_) => Err(Fault::Other(format!(
                    "no answer within {} ms",
                    deadline.as_millis()
                ))),
            };
            let _ = tx.send(result);
        });
        match rx.recv() {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(Fault::NotFound)) => Err(PayloadError::NotFound),
            Ok(Err(Fault::TooLarge)) => Err(PayloadError::TooLarge { limit: max_bytes }),
            Ok(Err(Fault::Refused(message))) => Err(PayloadError::Refused(format!(
                "reading blob {storage_id:?} of container {:?}: {}",
                self.settings.container,
                self.settings.redact(&message)
            ))),
            Ok(Err(Fault::Other(message))) => Err(PayloadError::Unavailable(format!(
                "reading blob {storage_id:?} of container {:?}: {}",
                self.settings.container,
                self.settings.redact(&message)
            ))),
            Err(_) => Err(PayloadError::Unavailable(
                "the blob client's task ended without an answer".into(),
            )),
        }
    }
}

impl Drop for AzureBlobStore {
    fn drop(&mut self) {
        // Without blocking: dropping a runtime may happen inside another (async) context.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_in_every_form() {
        let settings = |credential| Settings {
            account: "a".into(),
            endpoint: "https://a.blob.core.windows.net".into(),
            container: DEFAULT_CONTAINER.into(),
            credential,
            timeout: DEFAULT_TIMEOUT,
        };
        let key = settings(Credential::AccountKey(Zeroizing::new("S2V5S2V5".into())));
        assert_eq!(
            key.redact("bad key S2V5S2V5 here"),
            "bad key <redacted> here"
        );
        let sas = settings(Credential::Sas(Zeroizing::new(
            "sv=2019-12-12&sp=r&sig=ab%2Bc%2F%3D".into(),
        )));
        for shown in [
            "url ...?sv=2019-12-12&sp=r&sig=ab%2Bc%2F%3D",
            "decoded sig ab+c/=",
            "encoded sig ab%2Bc%2F%3D",
        ] {
            let out = sas.redact(shown);
            assert!(
                !out.contains("ab+c/=") && !out.contains("ab%2Bc%2F%3D"),
                "{out}"
            );
        }
    }
}
