use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::open_enum::open_enum;

/// `#microsoft.graph.callEvent`: an event of an online meeting's call (meetingCallEvents, beta).
///
/// Older payloads (`#Microsoft.Graph.onlineMeeting` with `eventType`
/// `Microsoft.Communication.CallStarted`, `activeParticipants@joined`...) parse too: their
/// participant lists land in [`CallEvent::active_participants_joined`] and
/// [`CallEvent::active_participants_exited`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallEvent {
    /// The event id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `callStarted`, `callEnded`, `rosterUpdated`; the resource page calls it `callEventType`.
    #[serde(
        default,
        alias = "callEventType",
        skip_serializing_if = "Option::is_none"
    )]
    pub event_type: Option<CallEventType>,
    /// When the event happened (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_date_time: Option<String>,
    /// The participants that changed (`participants@delta`).
    #[serde(
        default,
        rename = "participants@delta",
        alias = "participants",
        skip_serializing_if = "Option::is_none"
    )]
    pub participants: Option<Vec<Participant>>,
    /// `state` of older payloads (`active`, `inactive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// `activeParticipants@joined` of older payloads, as sent.
    #[serde(
        default,
        rename = "activeParticipants@joined",
        skip_serializing_if = "Option::is_none"
    )]
    pub active_participants_joined: Option<Vec<Value>>,
    /// `activeParticipants@exited` of older payloads, as sent.
    #[serde(
        default,
        rename = "activeParticipants@exited",
        skip_serializing_if = "Option::is_none"
    )]
    pub active_participants_exited: Option<Vec<Value>>,
    /// Other properties, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One participant of `participants@delta`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    /// The participant id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `info.identity`: who it is, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Value>,
    /// Whether the participant waits in the lobby.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_in_lobby: Option<bool>,
    /// Present when the participant left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_state: Option<RemovedState>,
    /// Other properties, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Participant {
    /// Whether the participant left the call (`removedState` is present).
    pub fn has_left(&self) -> bool {
        self.removed_state.is_some()
    }
}

/// Why a participant was removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedState {
    /// The reason, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Other properties, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

open_enum! {
    /// `eventType` of a call event.
    pub enum CallEventType {
        CallStarted => "callStarted",
        CallEnded => "callEnded",
        RosterUpdated => "rosterUpdated",
        /// The older spelling of `callStarted`.
        LegacyCallStarted => "Microsoft.Communication.CallStarted",
        /// The older spelling of `callEnded`.
        LegacyCallEnded => "Microsoft.Communication.CallEnded",
        /// The older spelling of `rosterUpdated`.
        LegacyCallRosterUpdate => "Microsoft.Communication.CallRosterUpdate",
        UnknownFutureValue => "unknownFutureValue",
    }
}
