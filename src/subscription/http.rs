//! The HTTP plumbing that Graph's subscription API and Entra ID's token endpoint share (feature
//! `manage`): one reqwest client (rustls), answers read within a byte limit, and the services'
//! error bodies turned into [`GraphError`].

use std::time::Duration;

use serde::Deserialize;

use crate::error::GraphError;
use crate::token::fetch::{http_failure, reasons};

/// The largest answer read from Graph or Entra ID: 4 MiB. A page of subscriptions is a few
/// hundred KiB at most; a larger answer is refused rather than read into memory.
pub const MAX_RESPONSE_BYTES: usize = 4 << 20;

/// What a service answered.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    /// `Retry-After`, in seconds (Graph sends seconds, never an HTTP date).
    pub(crate) retry_after: Option<u64>,
    /// `request-id` (Graph's header), for errors whose body lacks it.
    pub(crate) request_id: Option<String>,
}

#[derive(Clone)]
pub(crate) struct HttpClient(reqwest::Client);

impl HttpClient {
    /// A client with a 30-second timeout per request.
    pub(crate) fn new() -> Result<Self, GraphError> {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map(HttpClient)
            .map_err(|e| GraphError::Http {
                url: String::new(),
                cause: http_failure(&e),
                reason: reasons(&e),
            })
    }

    pub(crate) fn inner(&self) -> &reqwest::Client {
        &self.0
    }

    /// Sends `request` and reads the answer, at most [`MAX_RESPONSE_BYTES`].
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<Answer, GraphError> {
        let http = |e: reqwest::Error| GraphError::Http {
            url: url.to_owned(),
            cause: http_failure(&e),
            reason: reasons(&e),
        };
        let mut response = request.send().await.map_err(http)?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after = header("retry-after").and_then(|v| v.trim().parse().ok());
        let request_id = header("request-id");
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(http)? {
            if chunk.len() > MAX_RESPONSE_BYTES.saturating_sub(body.len()) {
                return Err(GraphError::Response {
                    url: url.to_owned(),
                    status,
                    reason: format!("more than {MAX_RESPONSE_BYTES} bytes: refused"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            body,
            retry_after,
            request_id,
        })
    }
}

/// The error an unsuccessful answer carries: Graph's `{"error":{"code","message","innerError":
/// {"request-id"}}}` or Entra ID's `{"error","error_description","trace_id"}`; a body of neither
/// shape keeps the status and a short excerpt.
pub(crate) fn service_error(service: &'static str, url: &str, answer: &Answer) -> GraphError {
    #[derive(Deserialize)]
    struct GraphBody {
        error: GraphInner,
    }
    #[derive(Deserialize)]
    struct GraphInner {
        code: String,
        #[serde(default)]
        message: String,
        #[serde(rename = "innerError", default)]
        inner: Option<InnerError>,
    }
    #[derive(Deserialize)]
    struct InnerError {
        #[serde(rename = "request-id")]
        request_id: Option<String>,
    }
    #[derive(Deserialize)]
    struct EntraBody {
        error: String,
        #[serde(default)]
        error_description: String,
        trace_id: Option<String>,
    }
    let api = |code: String, message: String, request_id: Option<String>| GraphError::Api {
        service,
        status: answer.status,
        code,
        message,
        request_id: request_id.or_else(|| answer.request_id.clone()),
        retry_after: answer.retry_after,
    };
    if let Ok(graph) = serde_json::from_slice::<GraphBody>(&answer.body) {
        let request_id = graph.error.inner.and_then(|i| i.request_id);
        return api(graph.error.code, graph.error.message, request_id);
    }
    if let Ok(entra) = serde_json::from_slice::<EntraBody>(&answer.body) {
        return api(entra.error, entra.error_description, entra.trace_id);
    }
    if answer.body.is_empty() || answer.status >= 500 || answer.status == 429 {
        return api(
            format!("HTTP{}", answer.status),
            String::from_utf8_lossy(&answer.body)
                .chars()
                .take(200)
                .collect(),
            None,
        );
    }
    GraphError::Response {
        url: url.to_owned(),
        status: answer.status,
        reason: format!(
            "not {service}'s error format: {}",
            String::from_utf8_lossy(&answer.body)
                .chars()
                .take(200)
                .collect::<String>()
        ),
    }
}
