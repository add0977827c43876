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
    pub fn from_json(json: &[u8], resource_path: Option<&str>) -> Result<Self> {
        let value: Value = serde_json::from_slice(json).map_err(|_| Error::Plaintext("JSON"))?;
        Ok(Self::from_value(value, resource_path))
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
