//! [`AzureBlobStore`]: offloaded payloads read from an Azure Storage account (feature
//! `azure-blob`), through the `object_store` crate's Azure client (Shared Key or SAS signing,
//! retries, timeouts).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, ObjectStoreExt, RetryConfig};
use zeroize::Zeroizing;

use super::{DEFAULT_CONTAINER, PayloadError, PayloadStore, check_blob_name};

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
            .thread_name("msgraph-notify-blob")
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

enum Fault {
    NotFound,
    TooLarge,
    /// Refused for what the request names, for good.
    Refused(String),
    /// Anything that may pass.
    Other(String),
}

/// The service's error codes that are about the blob asked for, for good: asking again gets the
/// same answer. Any other refusal may be the account's or the set-up's (a SAS parameter, an API
/// version, an account being created, a proxy) and is transient.
const REFUSALS: [&str; 4] = [
    "<Code>BlobArchived</Code>",
    "<Code>InvalidResourceName</Code>",
    "<Code>InvalidUri</Code>",
    "<Code>BlobTierInadequateForContentLength</Code>",
];

impl From<object_store::Error> for Fault {
    fn from(e: object_store::Error) -> Self {
        // The service's answer is read from the request error (the source), never from the
        // outer message, which repeats the blob's name as given: a name holding an error code
        // must not pass for the service's answer. The request's URI comes before the status,
        // without spaces, so the marker below cannot come from the name either.
        let detail = std::error::Error::source(&e).map(ToString::to_string);
        // One line: the service's XML error body is kept (it names the cause), its newlines not.
        let message = detail
            .as_deref()
            .unwrap_or(&e.to_string())
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let answer = detail
            .as_deref()
            .and_then(|d| d.split_once("non-2xx status code: "))
            .map(|(_, answer)| answer);
        let status = answer
            .and_then(|a| a.get(..3))
            .and_then(|code| code.parse::<u16>().ok());
        let says = |code: &str| answer.is_some_and(|a| a.contains(code));
        match e {
            // A missing container is the deployment's mistake, not the item's: transient, so
            // a consumer waits for it to be fixed instead of refusing every offloaded item.
            object_store::Error::NotFound { .. } if says("<Code>ContainerNotFound</Code>") => {
                Fault::Other(format!(
                    "the container does not exist (ContainerNotFound): {message}"
                ))
            }
            // Any other 404, and a name that is a directory (hierarchical namespace): no blob.
            object_store::Error::NotFound { .. } => Fault::NotFound,
            _ if status == Some(414) || REFUSALS.iter().any(|code| says(code)) => {
                Fault::Refused(message)
            }
            // Credentials, throttling, timeouts, the service's failures, set-up refusals, and no
            // answer at all (connection refused, reset, a deadline): may pass.
            _ => Fault::Other(message),
        }
    }
}

/// The blob, read as a stream and abandoned as soon as it exceeds `max_bytes`.
async fn read(store: &MicrosoftAzure, path: &Path, max_bytes: usize) -> Result<Vec<u8>, Fault> {
    let result = store.get(path).await?;
    let size = usize::try_from(result.meta.size).unwrap_or(usize::MAX);
    if size > max_bytes {
        return Err(Fault::TooLarge);
    }
    // The size is the server's word: grow past 1 MiB only as the bytes arrive.
    let mut out = Vec::with_capacity(size.min(1 << 20));
    let mut stream = result.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if out.len().saturating_add(chunk.len()) > max_bytes {
            return Err(Fault::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn config(reason: String) -> PayloadError {
    PayloadError::Config(reason)
}

/// A connection string's parts.
struct Parsed {
    account: String,
    endpoint: String,
    credential: Credential,
}

impl Parsed {
    fn new(connection_string: &str) -> Result<Self, PayloadError> {
        let mut parts: HashMap<String, Zeroizing<String>> = HashMap::new();
        for part in connection_string.split(';') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let Some((key, value)) = part.split_once('=') else {
                return Err(config(
                    "a part is not KEY=VALUE (the string is `Key=Value;Key=Value`)".into(),
                ));
            };
            parts.insert(
                key.trim().to_ascii_lowercase(),
                Zeroizing::new(value.trim().to_owned()),
            );
        }
        let get = |key: &str| parts.get(key).map(|v| v.as_str()).filter(|v| !v.is_empty());
        if get("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(Parsed {
                account: EMULATOR_ACCOUNT.to_owned(),
                endpoint: format!("http://127.0.0.1:10000/{EMULATOR_ACCOUNT}"),
                credential: Credential::AccountKey(Zeroizing::new(EMULATOR_KEY.to_owned())),
            });
        }
        let endpoint = match (get("blobendpoint"), get("accountname")) {
            (Some(endpoint), _) => endpoint.trim_end_matches('/').to_owned(),
            (None, Some(account)) => {
                let protocol = get("defaultendpointsprotocol").unwrap_or("https");
                let suffix = get("endpointsuffix").unwrap_or("core.windows.net");
                format!("{protocol}://{account}.blob.{suffix}")
            }
            (None, None) => return Err(config("AccountName is missing".into())),
        };
        let url = match url::Url::parse(&endpoint) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.username().is_empty()
                    && u.password().is_none()
                    && u.query().is_none()
                    && u.fragment().is_none() =>
            {
                u
            }
            // Not echoed: a pasted SAS or a user:password would be in it.
            _ => {
                return Err(config(
                    "BlobEndpoint is not an http(s) URL of the blob service alone (no user \
                     information, query or fragment: a SAS goes in SharedAccessSignature)"
                        .into(),
                ));
            }
        };
        // A SAS connection string names no AccountName (nor needs one: the SAS signs, and the
        // endpoint is given): the endpoint's host names it (`ACCOUNT.blob.core.windows.net`,
        // `ACCOUNT.privatelink.blob…`) or, path-style (Azurite), its first segment. Shared Key
        // signs with the account's name: that needs AccountName.
        let account = match (get("accountname"), get("accountkey")) {
            (Some(account), _) => account.to_owned(),
            (None, Some(_)) => return Err(config("AccountName is missing".into())),
            (None, None) => url
                .host_str()
                .filter(|host| host.contains(".blob."))
                .and_then(|host| host.split('.').next())
                .map(str::to_owned)
                .or_else(|| {
                    url.path_segments()
                        .and_then(|mut segments| segments.next())
                        .filter(|segment| !segment.is_empty())
                        .map(str::to_owned)
                })
                .ok_or_else(|| {
                    config(
                        "AccountName is missing and BlobEndpoint does not name the account".into(),
                    )
                })?,
        };
        let credential = match (get("accountkey"), get("sharedaccesssignature")) {
            (Some(key), _) => Credential::AccountKey(Zeroizing::new(key.to_owned())),
            (None, Some(sas)) => Credential::Sas(Zeroizing::new(sas.to_owned())),
            (None, None) => {
                return Err(config(
                    "neither AccountKey nor SharedAccessSignature is given".into(),
                ));
            }
        };
        Ok(Parsed {
            account,
            endpoint,
            credential,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_come_from_the_connection_string_as_azure_reads_it() {
        let p = Parsed::new("AccountName=a;AccountKey=k").unwrap();
        assert_eq!(p.endpoint, "https://a.blob.core.windows.net");
        let p = Parsed::new(
            "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=k;EndpointSuffix=core.chinacloudapi.cn;",
        )
        .unwrap();
        assert_eq!(p.endpoint, "http://a.blob.core.chinacloudapi.cn");
        let p = Parsed::new(
            "accountname=devstoreaccount1;accountkey=k;blobendpoint=http://127.0.0.1:10000/devstoreaccount1/",
        )
        .unwrap();
        assert_eq!(p.endpoint, "http://127.0.0.1:10000/devstoreaccount1");
        let p = Parsed::new(
            "BlobEndpoint=https://contoso.blob.core.windows.net/;SharedAccessSignature=sv=2022&sig=x",
        )
        .unwrap();
        assert_eq!(p.account, "contoso");
        let p = Parsed::new(
            "BlobEndpoint=https://contoso.privatelink.blob.core.windows.net;SharedAccessSignature=sig=x",
        )
        .unwrap();
        assert_eq!(p.account, "contoso");
        let p = Parsed::new(
            "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;SharedAccessSignature=sig=x",
        )
        .unwrap();
        assert_eq!(p.account, "devstoreaccount1");
        let p = Parsed::new("UseDevelopmentStorage=true").unwrap();
        assert_eq!(p.account, "devstoreaccount1");
        assert!(matches!(
            Parsed::new("AccountName=a;SharedAccessSignature=sv=2022&sig=x")
                .unwrap()
                .credential,
            Credential::Sas(_)
        ));
    }

    #[test]
    fn unusable_connection_strings_are_refused_without_echoing_the_key() {
        for bad in [
            "",
            "AccountKey=topsecret",
            "AccountName=a",
            "AccountName=a;AccountKey=topsecret;BlobEndpoint=ftp://x",
            "AccountName=a;AccountKey=k;BlobEndpoint=https://a.blob.core.windows.net/?sig=topsecret",
            "AccountName=a;AccountKey=k;BlobEndpoint=https://u:topsecret@a.blob.core.windows.net",
            "AccountName=a;AccountKey=topsecret;garbage",
            "AccountKey=topsecret;BlobEndpoint=https://a.blob.core.windows.net",
        ] {
            let e = Parsed::new(bad).err().expect(bad);
            assert!(!e.to_string().contains("topsecret"), "{e}");
            assert!(matches!(e, PayloadError::Config(_)), "{e:?}");
        }
    }

    fn fault(e: object_store::Error) -> &'static str {
        match Fault::from(e) {
            Fault::NotFound => "not found",
            Fault::TooLarge => "too large",
            Fault::Refused(_) => "refused",
            Fault::Other(_) => "transient",
        }
    }

    /// What object_store's request error prints: the URI (no spaces), then the service's answer.
    fn answered(status: &str, code: &str) -> Box<dyn std::error::Error + Send + Sync> {
        format!(
            "Error performing GET http://127.0.0.1:10000/devstoreaccount1/c/b in 2ms - Server \
             returned non-2xx status code: {status}: <?xml version=\"1.0\"?>\n<Error>\n  \
             <Code>{code}</Code>\n</Error>"
        )
        .into()
    }

    #[test]
    fn the_service_answer_decides_and_never_the_blob_name() {
        use object_store::Error as E;
        let not_found = |source| E::NotFound {
            path: "<Code>ContainerNotFound</Code> non-2xx status code: 404".into(),
            source,
        };
        let generic = |source| E::Generic {
            store: "MicrosoftAzure",
            source,
        };
        assert_eq!(
            fault(not_found(answered("404 Not Found", "BlobNotFound"))),
            "not found"
        );
        assert_eq!(
            fault(not_found(answered("404 Not Found", "ContainerNotFound"))),
            "transient"
        );
        // A directory of a hierarchical-namespace account: no status in the text, still a 404.
        assert_eq!(
            fault(not_found(
                "Not a file, got x-ms-resource-type: directory".into()
            )),
            "not found"
        );
        assert_eq!(
            fault(generic(answered("409 Conflict", "BlobArchived"))),
            "refused"
        );
        assert_eq!(
            fault(generic(answered("400 Bad Request", "InvalidUri"))),
            "refused"
        );
        assert_eq!(fault(generic(answered("414 URI Too Long", "x"))), "refused");
        // The set-up's or the account's refusals, and failures, may pass.
        for (status, code) in [
            ("400 Bad Request", "InvalidQueryParameterValue"),
            ("409 Conflict", "AccountBeingCreated"),
            ("403 Forbidden", "AuthorizationFailure"),
            ("429 Too Many Requests", "ServerBusy"),
            ("503 Service Unavailable", "ServerBusy"),
        ] {
            assert_eq!(
                fault(generic(answered(status, code))),
                "transient",
                "{status}"
            );
        }
        assert_eq!(
            fault(generic(
                "HTTP error: error sending request: connection refused".into()
            )),
            "transient"
        );
        // No source at all, the name in the message: never read for an answer.
        assert_eq!(
            fault(E::NotImplemented {
                operation: "x <Code>BlobArchived</Code> non-2xx status code: 409".into(),
                implementer: "y".into(),
            }),
            "transient"
        );
    }

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
