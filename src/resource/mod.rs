//! The decrypted Teams resources: presence, chatMessage and onlineMeeting call events.
//!
//! Every field is optional and every enumeration open: Graph adds properties and values over time,
//! and the documentation's examples disagree on case. Unknown properties are kept in `extra`.

mod call_event;
mod chat_message;
mod presence;

pub use call_event::{CallEvent, CallEventType, Participant, RemovedState};
pub use chat_message::{
    ChannelIdentity, ChatMessage, ChatMessageImportance, ChatMessageType, Identity, IdentitySet,
    ItemBody,
};
pub use presence::{Activity, Availability, Presence};

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// A decrypted resource, typed by its `@odata.type` (case-insensitive) or, without one, by the
/// notification's resource path.
///
/// ```
/// use msgraph_notify::resource::{Availability, Resource};
/// let json = br##"{"@odata.type":"#microsoft.graph.presence","availability":"Busy","activity":"InACall"}"##;
/// match Resource::from_json(json, Some("communications/presences/abc")).unwrap() {
///     Resource::Presence(p) => assert_eq!(p.availability, Some(Availability::Busy)),
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Resource {
    /// `#microsoft.graph.presence`.
    Presence(Presence),
    /// A Teams chat or channel message.
    ChatMessage(Box<ChatMessage>),
    /// `#microsoft.graph.callEvent`: an onlineMeeting's meetingCallEvents.
    CallEvent(CallEvent),
    /// Any other resource, as JSON.
    Other(Value),
}

/// Which kind of resource a notification carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Presence,
    ChatMessage,
    CallEvent,
    Other,
}

fn kind_of_type(odata_type: &str) -> Kind {
    let t = odata_type.trim_start_matches('#');
    if t.eq_ignore_ascii_case("microsoft.graph.presence") {
        Kind::Presence
    } else if t.eq_ignore_ascii_case("microsoft.graph.chatMessage") {
        Kind::ChatMessage
    } else if t.eq_ignore_ascii_case("microsoft.graph.callEvent")
        || t.eq_ignore_ascii_case("microsoft.graph.onlineMeeting")
    {
        Kind::CallEvent
    } else {
        Kind::Other
    }
}

fn kind_of_path(resource: &str) -> Kind {
    let lower = resource.to_ascii_lowercase();
    if lower.contains("presences") || lower.ends_with("/presence") {
        Kind::Presence
    } else if lower.contains("meetingcallevents") || lower.contains("onlinemeetings") {
        Kind::CallEvent
    } else if lower.contains("messages") || lower.contains("/replies") {
        Kind::ChatMessage
    } else {
        Kind::Other
    }
}

impl Resource {
    /// Types decrypted JSON. `resource_path` is the notification's `resource`, used when the JSON
    /// has no `@odata.type` (the chatMessage payload has none).
    ///
    /// The result is the same as [`Resource::from_value`] of the parsed JSON; only the way there
    /// is faster when the path names the kind.
    pub fn from_json(json: &[u8], resource_path: Option<&str>) -> Result<Self> {
        let text = std::str::from_utf8(json).map_err(|_| Error::Plaintext("UTF-8"))?;
        Self::from_json_str(text, resource_path)
    }

    /// [`Resource::from_json`] of text already checked to be UTF-8.
    ///
    /// When the resource path names a kind, the JSON is first parsed straight into that type:
    /// one pass, no intermediate `Value`, each string copied once instead of twice (1.1-2.2x
    /// faster than through a `Value`, the most for small resources; BENCHMARKS.md, `json_typed`). The result stands only if the JSON is an object
    /// that fits the type and its `@odata.type`, if any, names the same kind or none we know;
    /// otherwise the JSON is typed through a `Value` exactly as [`Resource::from_value`] does.
    pub(crate) fn from_json_str(text: &str, resource_path: Option<&str>) -> Result<Self> {
        if let Some(hint) = resource_path.map(kind_of_path)
            && text.trim_start().starts_with('{')
            && let Some(resource) = Self::parse_as(hint, text)
        {
            return Ok(resource);
        }
        let value: Value = serde_json::from_str(text).map_err(|_| Error::Plaintext("JSON"))?;
        Ok(Self::from_value(value, resource_path))
    }

    /// `text` parsed as `kind`, if it fits and its `@odata.type` does not name another kind.
    fn parse_as(kind: Kind, text: &str) -> Option<Self> {
        /// `text` as a `T` whose `extra` (the unknown properties) holds no `@odata.type` of
        /// another known kind. One that is not a string is ignored, as `from_value` does.
        fn fits<T: serde::de::DeserializeOwned>(
            text: &str,
            kind: Kind,
            extra: impl Fn(&T) -> &serde_json::Map<String, Value>,
        ) -> Option<T> {
            let typed: T = serde_json::from_str(text).ok()?;
            let named = extra(&typed)
                .get("@odata.type")
                .and_then(Value::as_str)
                .map(kind_of_type);
            match named {
                Some(other) if other != Kind::Other && other != kind => None,
                _ => Some(typed),
            }
        }
        match kind {
            Kind::Presence => fits(text, kind, |p: &Presence| &p.extra).map(Resource::Presence),
            Kind::ChatMessage => fits(text, kind, |m: &ChatMessage| &m.extra)
                .map(|m| Resource::ChatMessage(Box::new(m))),
            Kind::CallEvent => fits(text, kind, |e: &CallEvent| &e.extra).map(Resource::CallEvent),
            Kind::Other => None,
        }
    }

    /// Types an already parsed JSON value (see [`Resource::from_json`]).
    pub fn from_value(value: Value, resource_path: Option<&str>) -> Self {
        if !value.is_object() {
            return Resource::Other(value);
        }
        let by_type = value
            .get("@odata.type")
            .and_then(Value::as_str)
            .map(kind_of_type)
            .filter(|k| *k != Kind::Other);
        let kind = by_type
            .or_else(|| resource_path.map(kind_of_path))
            .unwrap_or(Kind::Other);
        // A verified resource is never lost: one whose fields do not fit the typed model (a
        // property whose JSON type changed, say) is kept as JSON.
        let typed = match kind {
            Kind::Presence => Presence::deserialize(&value).map(Resource::Presence),
            Kind::ChatMessage => {
                ChatMessage::deserialize(&value).map(|m| Resource::ChatMessage(Box::new(m)))
            }
            Kind::CallEvent => CallEvent::deserialize(&value).map(Resource::CallEvent),
            Kind::Other => return Resource::Other(value),
        };
        typed.unwrap_or(Resource::Other(value))
    }

    /// A short name for the kind: `presence`, `chatMessage`, `callEvent` or `other`.
    pub fn kind(&self) -> &'static str {
        match self {
            Resource::Presence(_) => "presence",
            Resource::ChatMessage(_) => "chatMessage",
            Resource::CallEvent(_) => "callEvent",
            Resource::Other(_) => "other",
        }
    }
}
