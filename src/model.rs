//! The wire types Graph POSTs: a collection of change notifications and their encrypted content.
//!
//! Reading is tolerant: every property the documentation calls optional is an `Option`, unknown
//! properties are kept in `extra`, and enumerations are open. Checking is strict where it matters
//! (base64, lengths, UTF-8), at the point the values are used.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::open_enum::open_enum;

/// The body of one POST: `changeNotificationCollection`.
///
/// ```
/// use msgraph_notify::model::ChangeNotificationCollection;
/// let body = r#"{"value":[{"subscriptionId":"s","changeType":"updated","resource":"r"}]}"#;
/// let collection: ChangeNotificationCollection = serde_json::from_str(body).unwrap();
/// assert_eq!(collection.value.len(), 1);
/// assert!(collection.validation_tokens.is_none());
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeNotificationCollection {
    /// The notifications.
    pub value: Vec<ChangeNotification>,
    /// The validation tokens (JWTs), one per (app, tenant) in `value`; absent for basic notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_tokens: Option<Vec<String>>,
    /// Properties this crate does not model, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One `changeNotification` (or lifecycle notification) inside a collection.
///
/// `Debug` shows every field but `clientState`, which it redacts: the secret must not reach a log
/// through a printed notification or outcome.
///
/// ```
/// use msgraph_notify::ChangeNotification;
/// let n: ChangeNotification =
///     serde_json::from_str(r#"{"subscriptionId":"s1","clientState":"hunter2"}"#)?;
/// let shown = format!("{n:?}");
/// assert!(shown.contains("s1") && !shown.contains("hunter2"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeNotification {
    /// The notification's id, when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The subscription this notification belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    /// When the subscription expires (ISO 8601, kept as sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_expiration_date_time: Option<String>,
    /// The tenant of the changed resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// What happened to the resource (change notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_type: Option<ChangeType>,
    /// What happened to the subscription (lifecycle notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_event: Option<LifecycleEvent>,
    /// The secret given when the subscription was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_state: Option<String>,
    /// The resource path, e.g. `communications/presences/{id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// `@odata.type`, `@odata.id` and `id` of the changed resource (an open object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_data: Option<Value>,
    /// The encrypted resource, for notifications with resource data.
    #[serde(
        default,
        alias = "EncryptedContent",
        skip_serializing_if = "Option::is_none"
    )]
    pub encrypted_content: Option<EncryptedContent>,
    /// The organization (tenant) id some examples carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    /// Properties this crate does not model, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl std::fmt::Debug for ChangeNotification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeNotification")
            .field("id", &self.id)
            .field("subscription_id", &self.subscription_id)
            .field(
                "subscription_expiration_date_time",
                &self.subscription_expiration_date_time,
            )
            .field("tenant_id", &self.tenant_id)
            .field("change_type", &self.change_type)
            .field("lifecycle_event", &self.lifecycle_event)
            .field(
                "client_state",
                &self.client_state.as_ref().map(|_| "<redacted>"),
            )
            .field("resource", &self.resource)
            .field("resource_data", &self.resource_data)
            .field("encrypted_content", &self.encrypted_content)
            .field("organization_id", &self.organization_id)
            .field("extra", &self.extra)
            .finish()
    }
}

impl ChangeNotification {
    /// Whether this is a lifecycle notification (it carries `lifecycleEvent`).
    pub fn is_lifecycle(&self) -> bool {
        self.lifecycle_event.is_some()
    }
}

/// `encryptedContent`: the resource, encrypted for the subscriber's certificate.
///
/// `data`, `dataKey` and `dataSignature` are base64 (standard alphabet, padded). They are kept as
/// strings here and decoded once, strictly, when decrypting.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptedContent {
    /// The AES-CBC ciphertext, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The symmetric key wrapped with RSA-OAEP, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_key: Option<String>,
    /// HMAC-SHA256 of the ciphertext, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_signature: Option<String>,
    /// The subscriber's own id for the certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_certificate_id: Option<String>,
    /// SHA-1 of the certificate's DER, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_certificate_thumbprint: Option<String>,
    /// Properties this crate does not model, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl std::fmt::Debug for EncryptedContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The ciphertext and wrapped key are not secret, but they are long and useless in logs.
        f.debug_struct("EncryptedContent")
            .field(
                "data",
                &self
                    .data
                    .as_ref()
                    .map(|d| format!("<{} base64 chars>", d.len())),
            )
            .field("encryption_certificate_id", &self.encryption_certificate_id)
            .field(
                "encryption_certificate_thumbprint",
                &self.encryption_certificate_thumbprint,
            )
            .finish_non_exhaustive()
    }
}

open_enum! {
    /// `changeType`: an open set (Event Hubs puts free text here).
    pub enum ChangeType {
        Created => "created",
        Updated => "updated",
        Deleted => "deleted",
        UnknownFutureValue => "unknownFutureValue",
    }
}

open_enum! {
    /// `lifecycleEvent`: what happened to the subscription.
    pub enum LifecycleEvent {
        /// Reauthorize or renew the subscription.
        ReauthorizationRequired => "reauthorizationRequired",
        /// Recreate the subscription and resync.
        SubscriptionRemoved => "subscriptionRemoved",
        /// Notifications were missed: resync.
        Missed => "missed",
    }
}

/// What a request body holds, judged from its JSON shape: a notification collection, or one of
/// the things people give in its place. [`Receiver::receive`](crate::receiver::Receiver::receive)
/// names the shape when a body is not a collection; a tool that accepts other shapes (a captured
/// single item, JSON Lines of captured bodies) can choose by it.
///
/// ```
/// use msgraph_notify::model::BodyShape;
/// assert_eq!(BodyShape::of(br#"{"value":[]}"#), BodyShape::Collection);
/// assert_eq!(BodyShape::of(br#"{"keys":[]}"#), BodyShape::Jwks);
/// assert_eq!(BodyShape::of(b"[]"), BodyShape::Array { len: 0 });
/// assert_eq!(BodyShape::of(b"{\"value\":[]}\n{\"value\":[]}\n"), BodyShape::JsonLines { documents: 2 });
/// // A byte-order mark is looked past (and reported by `has_bom`):
/// assert_eq!(BodyShape::of(b"\xEF\xBB\xBF{\"value\":[]}"), BodyShape::Collection);
/// println!("{}", BodyShape::of(br#"{"keys":[]}"#)); // "a JWKS (token signing keys)..."
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyShape {
    /// An object with `value`: a notification collection.
    Collection,
    /// One notification item: an object with `subscriptionId`, `changeType`, `lifecycleEvent`,
    /// `encryptedContent`, `resource` or `clientState`, and no `value`.
    Item,
    /// A bare `encryptedContent` object (`data`, `dataKey`, `dataSignature`).
    EncryptedContent,
    /// A JSON Web Key Set, `{"keys": [...]}`.
    Jwks,
    /// A JSON array of `len` elements.
    Array {
        /// The number of elements.
        len: usize,
    },
    /// Several JSON documents, one per line (JSON Lines): `documents` non-blank lines.
    JsonLines {
        /// The number of non-blank lines.
        documents: usize,
    },
    /// Another JSON object; its first few keys.
    OtherObject {
        /// Up to five of its keys, in order.
        keys: Vec<String>,
    },
    /// A JSON string, number, boolean or null (named).
    Scalar(&'static str),
    /// Nothing, or only white space.
    Empty,
    /// Not JSON: the parser's reason, with line and column.
    NotJson(String),
}

/// The keys that make an object a notification item.
const ITEM_KEYS: [&str; 7] = [
    "subscriptionId",
    "changeType",
    "lifecycleEvent",
    "encryptedContent",
    "EncryptedContent",
    "resource",
    "clientState",
];

/// A JSON document's [`BodyShape`], found in one pass over its bytes without building a tree:
/// the top-level keys are read, every value is skipped.
struct ShapeScan(BodyShape);

impl<'de> Deserialize<'de> for ShapeScan {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_any(ShapeVisitor).map(ShapeScan)
    }
}

struct ShapeVisitor;

/// Whether a value is an array (its content skipped).
struct IsArray(bool);

impl<'de> Deserialize<'de> for IsArray {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = bool;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(true)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
                serde::de::IgnoredAny.visit_map(map).map(|_| false)
            }
            fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
                Ok(false)
            }
            fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
                Ok(false)
            }
            fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
                Ok(false)
            }
            fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
                Ok(false)
            }
            fn visit_str<E>(self, _: &str) -> Result<bool, E> {
                Ok(false)
            }
            fn visit_unit<E>(self) -> Result<bool, E> {
                Ok(false)
            }
        }
        de.deserialize_any(Visit).map(IsArray)
    }
}

impl<'de> serde::de::Visitor<'de> for ShapeVisitor {
    type Value = BodyShape;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<BodyShape, A::Error> {
        // Every key, sorted (as a parsed object's keys are); only the top level is read.
        let mut keys = std::collections::BTreeSet::new();
        let mut keys_array = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "keys" {
                keys_array = map.next_value::<IsArray>()?.0;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
            keys.insert(key.into_owned());
        }
        let has = |k: &str| keys.contains(k);
        Ok(if has("value") {
            BodyShape::Collection
        } else if keys_array {
            BodyShape::Jwks
        } else if ITEM_KEYS.iter().any(|k| has(k)) {
            BodyShape::Item
        } else if ["data", "dataKey", "dataSignature"].iter().any(|k| has(k)) {
            BodyShape::EncryptedContent
        } else {
            BodyShape::OtherObject {
                keys: keys.into_iter().take(5).collect(),
            }
        })
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<BodyShape, A::Error> {
        let mut len = 0;
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
            len += 1;
        }
        Ok(BodyShape::Array { len })
    }

    fn visit_str<E>(self, _: &str) -> Result<BodyShape, E> {
        Ok(BodyShape::Scalar("string"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<BodyShape, E> {
        Ok(BodyShape::Scalar("number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<BodyShape, E> {
        Ok(BodyShape::Scalar("number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<BodyShape, E> {
        Ok(BodyShape::Scalar("number"))
    }

    fn visit_bool<E>(self, _: bool) -> Result<BodyShape, E> {
        Ok(BodyShape::Scalar("boolean"))
    }

    fn visit_unit<E>(self) -> Result<BodyShape, E> {
        Ok(BodyShape::Scalar("null"))
    }
}

/// The UTF-8 byte-order mark some editors and PowerShell put before text.
const BOM: &[u8] = b"\xEF\xBB\xBF";

impl BodyShape {
    /// The shape of `body` (a leading UTF-8 byte-order mark is skipped).
    pub fn of(body: &[u8]) -> BodyShape {
        let body = strip_bom(body);
        if body.iter().all(u8::is_ascii_whitespace) {
            return BodyShape::Empty;
        }
        // Scanned, not parsed into a tree: a capture can hold thousands of items.
        match serde_json::from_slice::<ShapeScan>(body) {
            Ok(ShapeScan(shape)) => shape,
            Err(e) => {
                let documents = body
                    .split(|&b| b == b'\n')
                    .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
                    .try_fold(0usize, |n, line| {
                        serde_json::from_slice::<serde::de::IgnoredAny>(line)
                            .ok()
                            .map(|_| n + 1)
                    });
                match documents {
                    Some(documents) if documents > 1 => BodyShape::JsonLines { documents },
                    _ => BodyShape::NotJson(e.to_string()),
                }
            }
        }
    }

    /// The shape of a parsed JSON value.
    pub fn of_value(value: &Value) -> BodyShape {
        match value {
            Value::Object(map) if map.contains_key("value") => BodyShape::Collection,
            Value::Object(map) if map.get("keys").is_some_and(Value::is_array) => BodyShape::Jwks,
            Value::Object(map) if ITEM_KEYS.iter().any(|k| map.contains_key(*k)) => BodyShape::Item,
            Value::Object(map)
                if ["data", "dataKey", "dataSignature"]
                    .iter()
                    .any(|k| map.contains_key(*k)) =>
            {
                BodyShape::EncryptedContent
            }
            Value::Object(map) => BodyShape::OtherObject {
                keys: map.keys().take(5).cloned().collect(),
            },
            Value::Array(items) => BodyShape::Array { len: items.len() },
            Value::String(_) => BodyShape::Scalar("string"),
            Value::Number(_) => BodyShape::Scalar("number"),
            Value::Bool(_) => BodyShape::Scalar("boolean"),
            Value::Null => BodyShape::Scalar("null"),
        }
    }

    /// Whether `body` starts with a UTF-8 byte-order mark.
    pub fn has_bom(body: &[u8]) -> bool {
        body.starts_with(BOM)
    }

    /// The error for a body that is not a usable collection: what was expected and what was
    /// found, without the names of the crate's types. `parse_error` is the parser's message, used
    /// when the body looks like a collection and still does not parse (a duplicate key, say).
    pub(crate) fn not_a_collection(
        body: &[u8],
        parse_error: Option<&dyn std::fmt::Display>,
    ) -> crate::Error {
        let shape = Self::of(body);
        let found = match (&shape, parse_error) {
            (BodyShape::Collection, _) if Self::has_bom(body) => {
                "a collection preceded by a UTF-8 byte-order mark, which JSON over HTTP does not \
                 carry (RFC 8259): remove it"
                    .to_owned()
            }
            (BodyShape::Collection, Some(e)) => {
                format!("an object with \"value\" that does not parse: {e}")
            }
            _ => shape.to_string(),
        };
        crate::Error::malformed(
            "body",
            format!(
                "expected a notification collection, an object {{\"value\": [...], \
                 \"validationTokens\": [...]}}; found {found}"
            ),
        )
    }
}

/// `body` without a leading UTF-8 byte-order mark.
///
/// ```
/// assert_eq!(msgraph_notify::model::strip_bom(b"\xEF\xBB\xBF{}"), b"{}");
/// ```
pub fn strip_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(BOM).unwrap_or(body)
}

impl std::fmt::Display for BodyShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyShape::Collection => f.write_str("a notification collection"),
            BodyShape::Item => f.write_str(
                "a single notification item, not a collection (Graph POSTs the items inside \
                 \"value\", with the validation tokens beside it)",
            ),
            BodyShape::EncryptedContent => f.write_str(
                "a bare encryptedContent object (data, dataKey, dataSignature), not a \
                 collection: it belongs inside an item, under \"encryptedContent\"",
            ),
            BodyShape::Jwks => f.write_str(
                "a JWKS (token signing keys, {\"keys\": [...]}), not a notification collection",
            ),
            BodyShape::Array { len: 0 } => f.write_str("an empty JSON array"),
            BodyShape::Array { len } => write!(
                f,
                "a JSON array of {len} elements (the items of a collection belong inside its \
                 \"value\")"
            ),
            BodyShape::JsonLines { documents } => write!(
                f,
                "{documents} JSON documents, one per line (JSON Lines), not one collection"
            ),
            BodyShape::OtherObject { keys } if keys.is_empty() => {
                f.write_str("an empty JSON object")
            }
            BodyShape::OtherObject { keys } => {
                write!(
                    f,
                    "a JSON object without \"value\" (its keys: {})",
                    keys.join(", ")
                )
            }
            BodyShape::Scalar(kind) => write!(f, "a JSON {kind}"),
            BodyShape::Empty => f.write_str("an empty body"),
            BodyShape::NotJson(reason) => write!(f, "text that is not JSON ({reason})"),
        }
    }
}
