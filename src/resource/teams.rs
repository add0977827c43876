//! The Teams resources besides presence, call events and messages: meeting recordings and
//! transcripts, chats, teams, channels and their members.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::chat_message::IdentitySet;
use crate::open_enum::open_enum;

/// A meeting artifact (Graph's `callRecording` and `callTranscript` have the same properties but
/// the content URL's name): one definition for both, so the two cannot drift apart.
macro_rules! meeting_artifact {
    ($(#[$doc:meta])* $name:ident, $what:literal, $url:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            #[doc = concat!("The ", $what, " id.")]
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub id: Option<String>,
            /// The online meeting's id.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub meeting_id: Option<String>,
            /// The call's id.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub call_id: Option<String>,
            /// Who organised the meeting.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub meeting_organizer: Option<IdentitySet>,
            #[doc = concat!("When the ", $what, " was created (ISO 8601).")]
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub created_date_time: Option<String>,
            #[doc = concat!("When the ", $what, " ended (ISO 8601).")]
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub end_date_time: Option<String>,
            #[doc = concat!("The URL of the ", $what, "'s content.")]
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub $url: Option<String>,
            #[doc = concat!("Links the ", $what, " with its counterpart (a recording with its transcript).")]
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub content_correlation_id: Option<String>,
            /// Other properties, kept as received.
            #[serde(flatten)]
            pub extra: Map<String, Value>,
        }
    };
}

meeting_artifact! {
    /// `#microsoft.graph.callRecording`: a meeting recording is available. The payload has no
    /// `@odata.type`; `recordingContentUrl` is where to GET the content.
    CallRecording, "recording", recording_content_url
}

meeting_artifact! {
    /// `#microsoft.graph.callTranscript`: a meeting transcript is available. The payload has no
    /// `@odata.type`; `transcriptContentUrl` is where to GET the content.
    CallTranscript, "transcript", transcript_content_url
}

/// `#microsoft.graph.chat`: a one-on-one, group or meeting chat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Chat {
    /// The chat id (`19:…@thread.v2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The subject, for group chats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// `oneOnOne`, `group`, `meeting`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_type: Option<ChatType>,
    /// When it was created (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time: Option<String>,
    /// When it was last renamed or its members changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_date_time: Option<String>,
    /// The chat's tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// A link to the chat in Teams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_url: Option<String>,
    /// The meeting of a meeting chat, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_meeting_info: Option<Value>,
    /// Other properties, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `#microsoft.graph.team`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    /// The team id (the group's id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `public`, `private`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<TeamVisibility>,
    /// When it was created (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time: Option<String>,
    /// Whether the team is archived (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_archived: Option<bool>,
    /// The team's tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// The classification (e.g. a sensitivity label name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
    /// A link to the team in Teams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_url: Option<String>,
    /// Other properties, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `#microsoft.graph.channel`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    /// The channel id (`19:…@thread.tacv2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `standard`, `private`, `shared`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership_type: Option<ChannelMembershipType>,
    /// When it was created (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time: Option<String>,
    /// The channel's e-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The tenant of the team that hosts the channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Whether the channel is archived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_archived: Option<bool>,
    /// A link to the channel in Teams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_url: Option<String>,
    /// Other properties, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `#microsoft.graph.conversationMember` (usually `#microsoft.graph.aadUserConversationMember`):
/// a member of a team, channel or chat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationMember {
    /// The membership id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The member's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `owner`, `guest`; empty for members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// From when the member sees the chat's history (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible_history_start_date_time: Option<String>,
    /// The user's id (`aadUserConversationMember`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The user's e-mail address (`aadUserConversationMember`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The user's tenant (`aadUserConversationMember`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Other properties, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

open_enum! {
    /// `chatType` of a chat.
    pub enum ChatType {
        OneOnOne => "oneOnOne",
        Group => "group",
        Meeting => "meeting",
        UnknownFutureValue => "unknownFutureValue",
    }
}

open_enum! {
    /// `visibility` of a team.
    pub enum TeamVisibility {
        Private => "private",
        Public => "public",
        HiddenMembership => "hiddenMembership",
        UnknownFutureValue => "unknownFutureValue",
    }
}

open_enum! {
    /// `membershipType` of a channel.
    pub enum ChannelMembershipType {
        Standard => "standard",
        Private => "private",
        Shared => "shared",
        UnknownFutureValue => "unknownFutureValue",
    }
}
