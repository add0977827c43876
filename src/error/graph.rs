//! The errors of talking to Microsoft Graph and Entra ID, and of keeping subscriptions (feature
//! `manage`).

use super::{HttpFailure, SubscriptionError};

/// Why a request to Microsoft Graph (the subscription API) or to Entra ID (an access token)
/// failed. [`GraphError::is_transient`] tells a failure worth retrying from a refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    /// The service answered with an error: Graph's `{"error":{"code","message","innerError"}}`,
    /// or Entra ID's `{"error","error_description"}` (whose `AADSTS…` code starts the message).
    #[error("{service} answered HTTP {status} {code}: {message}{}", request_id.as_ref().map(|id| format!(" (request-id {id})")).unwrap_or_default())]
    Api {
        /// `"Microsoft Graph"` or `"Entra ID"`.
        service: &'static str,
        /// The HTTP status.
        status: u16,
        /// Graph's `error.code` (`InvalidRequest`, `ExtensionError`, `ResourceNotFound`, …) or
        /// Entra's `error` (`invalid_client`, `unauthorized_client`, …).
        code: String,
        /// The service's message, as it wrote it.
        message: String,
        /// `innerError.request-id` (Graph) or `trace_id` (Entra ID): quote it to Microsoft.
        request_id: Option<String>,
        /// The `Retry-After` the service asked for, in seconds.
        retry_after: Option<u64>,
    },
    /// No answer: name resolution, connection, TLS or a timeout.
    #[error("request to {url} failed: {cause}: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// Which kind of failure.
        cause: HttpFailure,
        /// What failed, as the HTTP stack tells it.
        reason: String,
    },
    /// An answer that is not what the API documents (not JSON, a field missing, too large).
    #[error("{url} answered HTTP {status} with an unexpected body: {reason}")]
    Response {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// What was wrong.
        reason: String,
    },
    /// The access-token command (`--graph-token-command`) failed or printed no token.
    #[error(
        "the access-token command failed: {0}; run it by hand to see why (is the session logged in?)"
    )]
    TokenCommand(String),
    /// The client assertion could not be signed (the key is unusable or unavailable).
    #[error("the client assertion could not be signed: {reason}")]
    Signing {
        /// Why.
        reason: String,
        /// Whether the key may come back (a PKCS#11 token that went away).
        transient: bool,
    },
}

impl GraphError {
    /// Whether trying again later may succeed: no answer, a throttling answer (429), a server
    /// error (500, 502, 503, 504) or a request timeout (408), or a signing key that is only
    /// unavailable. A refusal (400, 401 after a fresh token, 403 quota, 404, 409) is not.
    ///
    /// ```
    /// use msgraph_notify::GraphError;
    /// let throttled = GraphError::Api {
    ///     service: "Microsoft Graph", status: 429, code: "TooManyRequests".into(),
    ///     message: "Too many requests".into(), request_id: None, retry_after: Some(2),
    /// };
    /// assert!(throttled.is_transient());
    /// let quota = GraphError::Api {
    ///     service: "Microsoft Graph", status: 403, code: "ExtensionError".into(),
    ///     message: "Subscription quota exceeded".into(), request_id: None, retry_after: None,
    /// };
    /// assert!(!quota.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        match self {
            GraphError::Api { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
            GraphError::Http { .. } => true,
            GraphError::Response { status, .. } => *status >= 500,
            GraphError::TokenCommand(_) => false,
            GraphError::Signing { transient, .. } => *transient,
        }
    }

    /// The HTTP status the service answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            GraphError::Api { status, .. } | GraphError::Response { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Graph's (or Entra's) error code, if the service answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            GraphError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Why the subscription keeper could not do what a desired subscription needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeeperError {
    /// Graph or Entra ID refused or could not be reached.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// The desired subscription cannot be asked for as written.
    #[error(transparent)]
    Request(#[from] SubscriptionError),
    /// No certificate is configured for the desired `encryptionCertificateId`.
    #[error(
        "no certificate has the id {0:?}: add the key and certificate with that id to the receiver's keys"
    )]
    NoCertificate(String),
    /// The desired-subscriptions file is not what the keeper reads.
    #[error("the desired subscriptions: {0}")]
    Desired(String),
    /// The keeper's state could not be read or written.
    #[error("the subscription state {0}")]
    State(String),
}

impl KeeperError {
    /// Whether trying again later may succeed: Graph's passing failures (see
    /// [`GraphError::is_transient`]). A refusal, a bad desired entry or an unwritable state is
    /// not.
    pub fn is_transient(&self) -> bool {
        matches!(self, KeeperError::Graph(e) if e.is_transient())
    }
}
