//! The decrypted resources: Teams presence, chat messages, meeting call events, recordings and
//! transcripts, chats, teams, channels and members, Copilot interactions, and Outlook messages,
//! events and contacts.
//!
//! Every field is optional and every enumeration open: Graph adds properties and values over time,
//! and the documentation's examples disagree on case. Unknown properties are kept in `extra`.
//!
//! A resource is typed by its `@odata.type` when it has one Graph names here (case-insensitive);
//! otherwise by the grammar of the notification's resource path ([`PathKind`]). A type and a path
//! that disagree keep the type; a path the grammar does not know is [`Resource::Other`].

mod call_event;
mod chat_message;
mod copilot;
mod outlook;
mod path;
mod presence;
mod teams;

pub use call_event::{CallEvent, CallEventType, Participant, RemovedState};
pub use chat_message::{
    ChannelIdentity, ChatMessage, ChatMessageImportance, ChatMessageType, Identity, IdentitySet,
    ItemBody,
};
pub use copilot::{AiInteraction, AiInteractionType};
pub use outlook::{
    Contact, DateTimeTimeZone, EmailAddress, Event, Importance, Message, OutlookBody, Recipient,
};
pub use path::PathKind;
pub use presence::{Activity, Availability, Presence};
pub use teams::{
    CallRecording, CallTranscript, Channel, ChannelMembershipType, Chat, ChatType,
    ConversationMember, Team, TeamVisibility,
};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// A decrypted resource, typed by its `@odata.type` (case-insensitive) or, without one, by the
/// notification's resource path (see [`PathKind`]).
///
/// ```
/// use msgraph_notify::resource::{Availability, Resource};
/// let json = br##"{"@odata.type":"#microsoft.graph.presence","availability":"Busy","activity":"InACall"}"##;
/// match Resource::from_json(json, Some("communications/presences/abc")).unwrap() {
///     Resource::Presence(p) => assert_eq!(p.availability, Some(Availability::Busy)),
///     other => panic!("unexpected {other:?}"),
/// }
/// // A transcript carries no @odata.type: its path types it.
/// let json = br#"{"id":"t1","meetingId":"m1","transcriptContentUrl":"https://graph.microsoft.com/x"}"#;
/// let path = "communications/onlineMeetings('m1')/transcripts('t1')";
/// assert_eq!(Resource::from_json(json, Some(path)).unwrap().kind(), "callTranscript");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Resource {
    /// `#microsoft.graph.presence`.
    Presence(Presence),
    /// A Teams chat or channel message.
    ChatMessage(Box<ChatMessage>),
    /// `#microsoft.graph.callEvent`: an onlineMeeting's meetingCallEvents (and the older
    /// `#microsoft.graph.onlineMeeting` payloads that carry an `eventType`).
    CallEvent(CallEvent),
    /// `#microsoft.graph.callRecording`: a meeting recording.
    CallRecording(Box<CallRecording>),
    /// `#microsoft.graph.callTranscript`: a meeting transcript.
    CallTranscript(Box<CallTranscript>),
    /// `#microsoft.graph.chat`.
    Chat(Box<Chat>),
    /// `#microsoft.graph.team`.
    Team(Box<Team>),
    /// `#microsoft.graph.channel`.
    Channel(Box<Channel>),
    /// `#microsoft.graph.conversationMember` and its kinds (`aadUserConversationMember`...).
    ConversationMember(Box<ConversationMember>),
    /// `#microsoft.graph.aiInteraction`: a Copilot prompt or response.
    AiInteraction(Box<AiInteraction>),
    /// `#microsoft.graph.message` (and its kinds, `eventMessage`...): an Outlook e-mail.
    Message(Box<Message>),
    /// `#microsoft.graph.event`: an Outlook event.
    Event(Box<Event>),
    /// `#microsoft.graph.contact`: an Outlook contact.
    Contact(Box<Contact>),
    /// Any other resource, as JSON.
    Other(Value),
}

/// What an `@odata.type` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Named {
    /// A kind this crate types.
    Kind(PathKind),
    /// `#microsoft.graph.onlineMeeting`: a call event when it carries an `eventType` (the older
    /// meeting call events), otherwise an onlineMeeting, which is [`Resource::Other`].
    OnlineMeeting,
    /// A type this crate does not know: the path decides.
    Unknown,
}

fn named_type(odata_type: &str) -> Named {
    let t = odata_type.trim_start_matches('#');
    let t = match (t.get(..16), t.get(16..)) {
        (Some(prefix), Some(rest)) if prefix.eq_ignore_ascii_case("microsoft.graph.") => rest,
        _ => return Named::Unknown,
    };
    const TYPES: &[(&str, PathKind)] = &[
        ("presence", PathKind::Presence),
        ("chatMessage", PathKind::ChatMessage),
        ("callEvent", PathKind::CallEvent),
        ("callRecording", PathKind::CallRecording),
        ("callTranscript", PathKind::CallTranscript),
        ("chat", PathKind::Chat),
        ("team", PathKind::Team),
        ("channel", PathKind::Channel),
        ("conversationMember", PathKind::ConversationMember),
        ("aadUserConversationMember", PathKind::ConversationMember),
        (
            "anonymousGuestConversationMember",
            PathKind::ConversationMember,
        ),
        (
            "azureCommunicationServicesUserConversationMember",
            PathKind::ConversationMember,
        ),
        (
            "microsoftAccountUserConversationMember",
            PathKind::ConversationMember,
        ),
        (
            "skypeForBusinessUserConversationMember",
            PathKind::ConversationMember,
        ),
        ("skypeUserConversationMember", PathKind::ConversationMember),
        ("aiInteraction", PathKind::AiInteraction),
        ("message", PathKind::Message),
        ("eventMessage", PathKind::Message),
        ("eventMessageRequest", PathKind::Message),
        ("eventMessageResponse", PathKind::Message),
        ("calendarSharingMessage", PathKind::Message),
        ("event", PathKind::Event),
        ("contact", PathKind::Contact),
    ];
    if t.eq_ignore_ascii_case("onlineMeeting") {
        return Named::OnlineMeeting;
    }
    TYPES
        .iter()
        .find(|(name, _)| t.eq_ignore_ascii_case(name))
        .map_or(Named::Unknown, |&(_, kind)| Named::Kind(kind))
}

/// A typed model of one kind.
trait Model: DeserializeOwned {
    /// The unknown properties (where `@odata.type` lands).
    fn extra(&self) -> &Map<String, Value>;
    /// The model as a [`Resource`].
    fn wrap(self) -> Resource;
}

macro_rules! model {
    ($($ty:ident => $wrap:expr),* $(,)?) => {$(
        impl Model for $ty {
            fn extra(&self) -> &Map<String, Value> {
                &self.extra
            }
            fn wrap(self) -> Resource {
                $wrap(self)
            }
        }
    )*};
}

model! {
    Presence => Resource::Presence,
    ChatMessage => |m| Resource::ChatMessage(Box::new(m)),
    CallEvent => Resource::CallEvent,
    CallRecording => |m| Resource::CallRecording(Box::new(m)),
    CallTranscript => |m| Resource::CallTranscript(Box::new(m)),
    Chat => |m| Resource::Chat(Box::new(m)),
    Team => |m| Resource::Team(Box::new(m)),
    Channel => |m| Resource::Channel(Box::new(m)),
    ConversationMember => |m| Resource::ConversationMember(Box::new(m)),
    AiInteraction => |m| Resource::AiInteraction(Box::new(m)),
    Message => |m| Resource::Message(Box::new(m)),
    Event => |m| Resource::Event(Box::new(m)),
    Contact => |m| Resource::Contact(Box::new(m)),
}

/// Calls `$f::<T>($args)` with the model type of `$kind`, or evaluates `$other` for
/// [`PathKind::Other`].
macro_rules! with_model {
    ($kind:expr, $f:ident($($args:expr),*), $other:expr) => {
        match $kind {
            PathKind::Presence => $f::<Presence>($($args),*),
            PathKind::ChatMessage => $f::<ChatMessage>($($args),*),
            PathKind::CallEvent => $f::<CallEvent>($($args),*),
            PathKind::CallRecording => $f::<CallRecording>($($args),*),
            PathKind::CallTranscript => $f::<CallTranscript>($($args),*),
            PathKind::Chat => $f::<Chat>($($args),*),
            PathKind::Team => $f::<Team>($($args),*),
            PathKind::Channel => $f::<Channel>($($args),*),
            PathKind::ConversationMember => $f::<ConversationMember>($($args),*),
            PathKind::AiInteraction => $f::<AiInteraction>($($args),*),
            PathKind::Message => $f::<Message>($($args),*),
            PathKind::Event => $f::<Event>($($args),*),
            PathKind::Contact => $f::<Contact>($($args),*),
            PathKind::Other => $other,
        }
    };
}

/// `text` as a `T`, if it fits and its `@odata.type` (one that is a string) names `kind` or a
/// type this crate does not know.
fn fits<T: Model>(text: &str, kind: PathKind) -> Option<Resource> {
    let typed: T = serde_json::from_str(text).ok()?;
    let named = typed
        .extra()
        .get("@odata.type")
        .and_then(Value::as_str)
        .map(named_type);
    match named {
        None | Some(Named::Unknown) => Some(typed.wrap()),
        Some(Named::Kind(k)) if k == kind => Some(typed.wrap()),
        Some(_) => None,
    }
}

/// `value` as a `T`; a verified resource is never lost: one whose fields do not fit the typed
/// model (a property whose JSON type changed, say) is kept as JSON.
fn typed_value<T: Model>(value: Value) -> Resource {
    match T::deserialize(&value) {
        Ok(typed) => typed.wrap(),
        Err(_) => Resource::Other(value),
    }
}

impl Resource {
    /// Types decrypted JSON. `resource_path` is the notification's `resource`, used when the JSON
    /// has no `@odata.type` this crate knows (chatMessage, recording and transcript payloads have
    /// none; Outlook payloads carry only the `$select`ed properties).
    ///
    /// The result is the same as [`Resource::from_value`] of the parsed JSON; only the way there
    /// is faster when the path names the kind.
    ///
    /// # Errors
    ///
    /// [`Error::Plaintext`] when `json` is not UTF-8 or not JSON.
    pub fn from_json(json: &[u8], resource_path: Option<&str>) -> Result<Self> {
        let text = std::str::from_utf8(json).map_err(|_| Error::Plaintext("UTF-8"))?;
        Self::from_json_str(text, resource_path)
    }

    /// [`Resource::from_json`] of text already checked to be UTF-8.
    ///
    /// When the resource path names a kind, the JSON is first parsed straight into that type:
    /// one pass, no intermediate `Value`, each string copied once instead of twice (1.1-2.2x
    /// faster than through a `Value`, the most for small resources; BENCHMARKS.md, `json_typed`).
    /// The result stands only if the JSON is an object that fits the type and its `@odata.type`,
    /// if any, names the same kind or none we know; otherwise the JSON is typed through a `Value`
    /// exactly as [`Resource::from_value`] does.
    pub(crate) fn from_json_str(text: &str, resource_path: Option<&str>) -> Result<Self> {
        if let Some(hint) = resource_path.map(PathKind::of)
            && hint != PathKind::Other
            && text.trim_start().starts_with('{')
            && let Some(resource) = with_model!(hint, fits(text, hint), None)
        {
            return Ok(resource);
        }
        let value: Value = serde_json::from_str(text).map_err(|_| Error::Plaintext("JSON"))?;
        Ok(Self::from_value(value, resource_path))
    }

    /// Types an already parsed JSON value (see [`Resource::from_json`]).
    pub fn from_value(value: Value, resource_path: Option<&str>) -> Self {
        if !value.is_object() {
            return Resource::Other(value);
        }
        let named = value
            .get("@odata.type")
            .and_then(Value::as_str)
            .map_or(Named::Unknown, named_type);
        let kind = match named {
            Named::Kind(kind) => kind,
            Named::OnlineMeeting => {
                return match CallEvent::deserialize(&value) {
                    Ok(event) if event.event_type.is_some() => Resource::CallEvent(event),
                    _ => Resource::Other(value),
                };
            }
            Named::Unknown => resource_path.map_or(PathKind::Other, PathKind::of),
        };
        with_model!(kind, typed_value(value), Resource::Other(value))
    }

    /// The Graph entity name of the kind, in camelCase: `presence`, `chatMessage`, `callEvent`,
    /// `callRecording`, `callTranscript`, `chat`, `team`, `channel`, `conversationMember`,
    /// `aiInteraction`, `message`, `event`, `contact`, or `other`.
    pub fn kind(&self) -> &'static str {
        self.path_kind().as_str()
    }

    /// The kind, as the [`PathKind`] of the same name ([`PathKind::Other`] for
    /// [`Resource::Other`]).
    pub fn path_kind(&self) -> PathKind {
        match self {
            Resource::Presence(_) => PathKind::Presence,
            Resource::ChatMessage(_) => PathKind::ChatMessage,
            Resource::CallEvent(_) => PathKind::CallEvent,
            Resource::CallRecording(_) => PathKind::CallRecording,
            Resource::CallTranscript(_) => PathKind::CallTranscript,
            Resource::Chat(_) => PathKind::Chat,
            Resource::Team(_) => PathKind::Team,
            Resource::Channel(_) => PathKind::Channel,
            Resource::ConversationMember(_) => PathKind::ConversationMember,
            Resource::AiInteraction(_) => PathKind::AiInteraction,
            Resource::Message(_) => PathKind::Message,
            Resource::Event(_) => PathKind::Event,
            Resource::Contact(_) => PathKind::Contact,
            Resource::Other(_) => PathKind::Other,
        }
    }
}
