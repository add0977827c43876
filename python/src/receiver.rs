//! `Receiver`, `Reply` and `Item`: one POST in, one outcome per item out.

use std::sync::Arc;
use std::time::Duration;

use msgraph_notify::Decryptor;
use msgraph_notify::receiver::{
    self as crate_receiver, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_ITEMS, Outcome, Reply as CrateReply,
};
use msgraph_notify::replay::ReplayGuard;
use msgraph_notify::token::Validation;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyDict, PyString, PyType};
use serde_json::Value;

use crate::errors::{class_of, to_py};
use crate::keys::{KeyRing, Refresher, SigningKeys, runtime};

/// Verifies and decrypts Graph's change notifications: give it each POST's body (and query
/// string), get back what to answer and one `Item` per notification.
///
/// Build it once at start-up and share it between threads and requests. `keys`: the
/// decryption keys. `app_ids`: the app ids (client ids) whose validation tokens are accepted
/// (the token's `aud`). `client_state`: the secret(s) given as `clientState` when subscribing
/// (a `str`, or a list during rotation); when given, every item must carry one. `signing_keys`:
/// the keys tokens are checked against; `None` fetches Microsoft's (`SigningKeys.fetch()`).
/// `replay`: report items already accepted as duplicates (remembering `replay_capacity` items
/// for `replay_ttl` seconds). `tenants`: accept tokens of these tenants only.
/// `insecure_skip_token_validation`: accept encrypted items without validation tokens, ONLY to
/// open a captured body offline (anyone holding your certificate can forge an item).
/// Raises MalformedError for unusable options.
///
/// Memory: a body over `max_body_bytes` (default 1 MiB) or with more than `max_items` items
/// (default 1000) is refused before any per-item work; the replay memory holds at most
/// `replay_capacity` fingerprints (32 bytes each). A `Reply` holds each decrypted resource as
/// `data`, `plaintext` and the line of `to_dict()`, so about three times the decrypted size.
#[pyclass(module = "msgraph_notify._native", frozen)]
pub struct Receiver {
    inner: Arc<crate_receiver::Receiver>,
    refresher: Option<Arc<Refresher>>,
}

/// A `str`, or a sequence of `str`.
fn strings(value: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
    match value {
        None => Ok(Vec::new()),
        Some(v) if v.is_none() => Ok(Vec::new()),
        Some(v) if v.is_instance_of::<PyString>() => Ok(vec![v.extract()?]),
        Some(v) => v.extract(),
    }
}

#[pymethods]
impl Receiver {
    #[new]
    #[pyo3(signature = (
        keys, app_ids, *, client_state=None, signing_keys=None, replay=true, tenants=None,
        max_body_bytes=DEFAULT_MAX_BODY_BYTES, max_items=DEFAULT_MAX_ITEMS, parallel=false,
        replay_capacity=100_000, replay_ttl=86_400.0, insecure_skip_token_validation=false,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        keys: &KeyRing,
        app_ids: &Bound<'_, PyAny>,
        client_state: Option<&Bound<'_, PyAny>>,
        signing_keys: Option<SigningKeys>,
        replay: bool,
        tenants: Option<&Bound<'_, PyAny>>,
        max_body_bytes: usize,
        max_items: usize,
        parallel: bool,
        replay_capacity: usize,
        replay_ttl: f64,
        insecure_skip_token_validation: bool,
    ) -> PyResult<Self> {
        let mut builder = crate_receiver::Receiver::builder(Decryptor::new(keys.build()?))
            .max_body_bytes(max_body_bytes)
            .max_items(max_items)
            .parallel(parallel);
        let mut refresher = None;
        if insecure_skip_token_validation {
            builder = crate_receiver::dangerous::skip_token_validation(builder);
        } else {
            let signing_keys = match signing_keys {
                Some(k) => k,
                None => SigningKeys::fetch_default(py)?,
            };
            let mut validation = Validation::new(strings(Some(app_ids))?);
            let tenants = strings(tenants)?;
            if !tenants.is_empty() {
                validation = validation.allow_tenants(tenants);
            }
            refresher = signing_keys.refresher.clone();
            builder = builder
                .validation(validation)
                .signing_keys(signing_keys.keys);
        }
        for secret in strings(client_state)? {
            builder = builder.client_state(secret.as_bytes());
        }
        if replay {
            let ttl = Duration::try_from_secs_f64(replay_ttl).map_err(|_| {
                pyo3::exceptions::PyValueError::new_err(format!("replay_ttl: {replay_ttl}"))
            })?;
            builder = builder.replay_guard(ReplayGuard::new(replay_capacity, ttl));
        }
        Ok(Receiver {
            inner: Arc::new(builder.build().map_err(to_py)?),
            refresher,
        })
    }

    /// Handles one POST: `body` (the request's bytes) and `query` (the query string, with or
    /// without `?`; `None` when there is none). The GIL is released while it works, so threads
    /// use every core.
    ///
    /// Returns a `Reply`: `handshake` set when the query carries `validationToken` (answer 200,
    /// `text/plain`, that text), else one `Item` per notification (answer 202). One bad item
    /// never sinks the others: it is an `Item` with status `rejected`. A body that cannot be
    /// used at all raises: MalformedError (not JSON, no `value` array), BodyTooLargeError,
    /// TooManyError.
    #[pyo3(signature = (body, query=None))]
    fn receive(
        &self,
        py: Python<'_>,
        body: PyBackedBytes,
        query: Option<String>,
    ) -> PyResult<Reply> {
        let inner = &self.inner;
        let fetcher = self.refresher.as_ref().map(|r| Arc::clone(&r.fetcher));
        let got = py.detach(|| -> msgraph_notify::Result<Got> {
            let reply = match fetcher {
                Some(fetcher) if !inner.unknown_kids(&body).is_empty() => {
                    let rt =
                        runtime().map_err(|e| msgraph_notify::Error::Backend(e.to_string()))?;
                    rt.block_on(inner.receive_fetching_keys(&fetcher, query.as_deref(), &body))?
                }
                _ => inner.receive(query.as_deref(), &body)?,
            };
            Ok(match reply {
                CrateReply::Handshake(token) => Got::Handshake(token),
                CrateReply::Notifications(items) => Got::Items(
                    items
                        .into_iter()
                        .map(|item| (item.to_json(), item))
                        .collect(),
                ),
                _ => Got::Items(Vec::new()),
            })
        });
        match got.map_err(to_py)? {
            Got::Handshake(token) => Ok(Reply {
                handshake: Some(token),
                items: Vec::new(),
            }),
            Got::Items(lines) => Ok(Reply {
                handshake: None,
                items: lines
                    .into_iter()
                    .map(|(line, item)| Item::new(py, line, item).and_then(|i| Py::new(py, i)))
                    .collect::<PyResult<Vec<_>>>()?,
            }),
        }
    }

    /// `receive`, awaited: runs in a worker thread (`asyncio.to_thread`), off the event loop.
    #[pyo3(signature = (body, query=None))]
    fn areceive<'py>(
        slf: &Bound<'py, Self>,
        body: &Bound<'py, PyAny>,
        query: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let to_thread = py.import("asyncio")?.getattr("to_thread")?;
        to_thread.call1((slf.getattr("receive")?, body, query))
    }

    /// The handshake token of a query string (`validationToken=...`, decoded), or `None`.
    #[staticmethod]
    fn handshake_token(query: &str) -> Option<String> {
        crate_receiver::Receiver::handshake_token(query)
    }

    fn __repr__(&self) -> String {
        format!(
            "Receiver(max_body_bytes={}, tokens={})",
            self.inner.max_body_bytes(),
            if self.inner.token_validator().is_some() {
                "checked"
            } else {
                "NOT checked"
            }
        )
    }
}

/// What `receive` got, before it becomes Python objects (made without the GIL).
enum Got {
    Handshake(String),
    /// Each item with its JSON line.
    Items(Vec<(Value, crate_receiver::Item)>),
}

/// What to answer and what arrived.
#[pyclass(module = "msgraph_notify._native", frozen)]
pub struct Reply {
    /// The subscription handshake's token: answer 200, `text/plain`, exactly this text. `None`
    /// for a notification POST (answer 202).
    #[pyo3(get)]
    handshake: Option<String>,
    /// One `Item` per element of the body's `value`, in order (empty for a handshake).
    #[pyo3(get)]
    items: Vec<Py<Item>>,
}

#[pymethods]
impl Reply {
    /// The HTTP status to answer: 200 for the handshake, 202 for notifications.
    #[getter]
    fn status_code(&self) -> u16 {
        if self.handshake.is_some() { 200 } else { 202 }
    }

    fn __repr__(&self) -> String {
        match &self.handshake {
            Some(_) => "Reply(handshake=...)".to_owned(),
            None => format!("Reply(items={})", self.items.len()),
        }
    }
}

/// The outcome of one notification of a body.
#[pyclass(module = "msgraph_notify._native", frozen)]
pub struct Item {
    /// The item's position in the body's `value`.
    #[pyo3(get)]
    index: usize,
    /// `decrypted`, `basic` (no resource data), `lifecycle`, `rejected`, `validation` or
    /// `offloaded`.
    #[pyo3(get)]
    status: &'static str,
    /// The decrypted resource's kind (`presence`, `chatMessage`, `callRecord`...), when
    /// decrypted.
    #[pyo3(get)]
    resource_kind: Option<String>,
    /// The decrypted resource, as parsed from its JSON, when decrypted.
    #[pyo3(get)]
    data: Option<Py<PyAny>>,
    /// The decrypted plaintext, byte for byte, when decrypted.
    #[pyo3(get)]
    plaintext: Option<Py<PyBytes>>,
    /// `subscriptionId`.
    #[pyo3(get)]
    subscription_id: Option<String>,
    /// `tenantId`.
    #[pyo3(get)]
    tenant_id: Option<String>,
    /// `changeType`.
    #[pyo3(get)]
    change_type: Option<String>,
    /// `resource` (the resource's path).
    #[pyo3(get)]
    resource: Option<String>,
    /// `lifecycleEvent` of a lifecycle notification.
    #[pyo3(get)]
    lifecycle_event: Option<String>,
    /// Why the item was rejected (the crate's message), when rejected.
    #[pyo3(get)]
    error: Option<String>,
    /// The exception class of the rejection (TokenError, VerificationError...), when rejected.
    #[pyo3(get)]
    error_type: Option<Py<PyType>>,
    /// Whether the rejection is passing (key, replay store or signing keys out of reach): the
    /// item was not judged and must be retried, not dropped.
    #[pyo3(get)]
    transient: bool,
    line: Value,
}

fn text(line: &Value, key: &str) -> Option<String> {
    line.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl Item {
    fn new(py: Python<'_>, line: Value, item: crate_receiver::Item) -> PyResult<Self> {
        let (data, plaintext, error_type, transient) = match &item.outcome {
            Outcome::Decrypted(d) => (
                match line.get("data") {
                    Some(v) => Some(pythonize::pythonize(py, v)?.unbind()),
                    None => None,
                },
                Some(PyBytes::new(py, d.plaintext.as_bytes()).unbind()),
                None,
                false,
            ),
            Outcome::Rejected(r) => (
                None,
                None,
                Some(class_of(py, &r.error).unbind()),
                r.error.is_transient(),
            ),
            _ => (None, None, None, false),
        };
        Ok(Item {
            index: item.index,
            status: item.outcome.status(),
            resource_kind: text(&line, "resourceKind"),
            data,
            plaintext,
            subscription_id: text(&line, "subscriptionId"),
            tenant_id: text(&line, "tenantId"),
            change_type: text(&line, "changeType"),
            resource: text(&line, "resource"),
            lifecycle_event: text(&line, "lifecycleEvent"),
            error: text(&line, "error"),
            error_type,
            transient,
            line,
        })
    }
}

#[pymethods]
impl Item {
    /// The item as the JSON object `msgraph-notify decrypt` prints for it, one line per item
    /// (the crate's `Item::to_json`): `index`, `status`, `subscriptionId`, `tenantId`,
    /// `changeType`, `resource`, and `resourceKind` and `data`, `lifecycleEvent`, or `error`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        Ok(pythonize::pythonize(py, &self.line)?.cast_into::<PyDict>()?)
    }

    /// Whether the item was rejected.
    #[getter]
    fn rejected(&self) -> bool {
        self.status == "rejected"
    }

    fn __repr__(&self) -> String {
        match &self.error {
            Some(e) => format!(
                "Item(index={}, status={:?}, error={e:?})",
                self.index, self.status
            ),
            None => format!(
                "Item(index={}, status={:?}, resource_kind={:?})",
                self.index, self.status, self.resource_kind
            ),
        }
    }
}
