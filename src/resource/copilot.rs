use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::chat_message::{IdentitySet, ItemBody};
use crate::open_enum::open_enum;

/// `#microsoft.graph.aiInteraction`: one Copilot prompt or response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AiInteraction {
    /// The interaction id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The Copilot session (thread) it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Links a prompt with its response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Which Copilot surface (e.g. `IPM.SkypeTeams.Message.Copilot.Teams`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_class: Option<String>,
    /// `userPrompt` or `aiResponse`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interaction_type: Option<AiInteractionType>,
    /// The kind of conversation (e.g. `appchat`, `bizchat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_type: Option<String>,
    /// When it happened (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time: Option<String>,
    /// The locale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// The version of the interaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Who sent it (a user for prompts, an application for responses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<IdentitySet>,
    /// The prompt or response text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<ItemBody>,
    /// Attachments, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<Value>>,
    /// Links, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<Value>>,
    /// Mentions, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mentions: Option<Vec<Value>>,
    /// Contexts (the documents or messages it was about), as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contexts: Option<Vec<Value>>,
    /// Other properties, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

open_enum! {
    /// `interactionType` of an AI interaction.
    pub enum AiInteractionType {
        UserPrompt => "userPrompt",
        AiResponse => "aiResponse",
        UnknownFutureValue => "unknownFutureValue",
    }
}
