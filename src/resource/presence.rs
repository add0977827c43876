use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::open_enum::open_enum;

/// `#microsoft.graph.presence`: a user's availability and activity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Presence {
    /// The user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Base presence: `Available`, `Busy`, `Away`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<Availability>,
    /// What the user is doing: `InACall`, `InAMeeting`, `Presenting`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<Activity>,
    /// Ordering of presence changes (newer payloads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<String>,
    /// The status message (an object in Graph).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<Value>,
    /// Out-of-office settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_office_settings: Option<Value>,
    /// Work location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_location: Option<Value>,
    /// Other properties, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

open_enum! {
    /// `availability` of a presence.
    pub enum Availability {
        Available => "Available",
        AvailableIdle => "AvailableIdle",
        Away => "Away",
        BeRightBack => "BeRightBack",
        Busy => "Busy",
        BusyIdle => "BusyIdle",
        DoNotDisturb => "DoNotDisturb",
        Offline => "Offline",
        PresenceUnknown => "PresenceUnknown",
    }
}

open_enum! {
    /// `activity` of a presence.
    pub enum Activity {
        Available => "Available",
        Away => "Away",
        BeRightBack => "BeRightBack",
        Busy => "Busy",
        DoNotDisturb => "DoNotDisturb",
        InACall => "InACall",
        InAConferenceCall => "InAConferenceCall",
        Inactive => "Inactive",
        InAMeeting => "InAMeeting",
        Offline => "Offline",
        OffWork => "OffWork",
        OutOfOffice => "OutOfOffice",
        PresenceUnknown => "PresenceUnknown",
        Presenting => "Presenting",
        UrgentInterruptionsOnly => "UrgentInterruptionsOnly",
    }
}
