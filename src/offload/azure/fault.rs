//! What the service's answer means: not found, too large, refused for good, or passing.

use futures_util::StreamExt;
use object_store::ObjectStoreExt;
use object_store::azure::MicrosoftAzure;
use object_store::path::Path;

pub(super) enum Fault {
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
pub(super) const REFUSALS: [&str; 4] = [
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
pub(super) async fn read(
    store: &MicrosoftAzure,
    path: &Path,
    max_bytes: usize,
) -> Result<Vec<u8>, Fault> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        // Refusals about the blob asked for, for good.
        for (status, code) in [
            ("409 Conflict", "BlobArchived"),
            ("400 Bad Request", "InvalidUri"),
            ("414 URI Too Long", "x"),
        ] {
            assert_eq!(
                fault(generic(answered(status, code))),
                "refused",
                "{status}"
            );
        }
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
}
