//! Outlook messages, events and contacts. A subscription with resource data names the properties
//! it wants (`$select`), so a payload holds only those: every field is optional, and the
//! `…@odata.type` annotations Graph adds beside them are kept in `extra`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::open_enum::open_enum;

/// `#microsoft.graph.message`: an Outlook e-mail.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// The message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The first 255 characters of the body, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_preview: Option<String>,
    /// The body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<OutlookBody>,
    /// `low`, `normal`, `high`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub importance: Option<Importance>,
    /// When it was received (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_date_time: Option<String>,
    /// When it was sent (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_date_time: Option<String>,
    /// When it was created (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time: Option<String>,
    /// When it was last changed (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_date_time: Option<String>,
    /// The mailbox owner it is from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Recipient>,
    /// The account that actually sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<Recipient>,
    /// `To:` recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_recipients: Option<Vec<Recipient>>,
    /// `Cc:` recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cc_recipients: Option<Vec<Recipient>>,
    /// `Bcc:` recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bcc_recipients: Option<Vec<Recipient>>,
    /// Whether it has attachments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_attachments: Option<bool>,
    /// Whether it was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_read: Option<bool>,
    /// Whether it is a draft.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_draft: Option<bool>,
    /// The conversation (thread) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// The `Message-ID` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_message_id: Option<String>,
    /// The folder it is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_folder_id: Option<String>,
    /// Categories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    /// A link to open it in Outlook on the web.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_link: Option<String>,
    /// Other properties, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `#microsoft.graph.event`: an Outlook calendar event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// The event id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The first characters of the body, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_preview: Option<String>,
    /// The body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<OutlookBody>,
    /// When it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<DateTimeTimeZone>,
    /// When it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTimeTimeZone>,
    /// The location, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Value>,
    /// The organizer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizer: Option<Recipient>,
    /// The attendees, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attendees: Option<Vec<Value>>,
    /// Whether it lasts all day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_all_day: Option<bool>,
    /// Whether it was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_cancelled: Option<bool>,
    /// Whether it is an online meeting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_online_meeting: Option<bool>,
    /// `free`, `busy`, `tentative`, `oof`... as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_as: Option<String>,
    /// `low`, `normal`, `high`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub importance: Option<Importance>,
    /// `singleInstance`, `occurrence`, `exception`, `seriesMaster`, as sent.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// The series master of an occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_master_id: Option<String>,
    /// The iCalendar UID shared by all calendars.
    #[serde(default, rename = "iCalUId", skip_serializing_if = "Option::is_none")]
    pub ical_uid: Option<String>,
    /// When it was created (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time: Option<String>,
    /// When it was last changed (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_date_time: Option<String>,
    /// Categories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    /// A link to open it in Outlook on the web.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_link: Option<String>,
    /// Other properties, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `#microsoft.graph.contact`: an Outlook personal contact.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    /// The contact id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// The surname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surname: Option<String>,
    /// E-mail addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_addresses: Option<Vec<EmailAddress>>,
    /// Business phone numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_phones: Option<Vec<String>>,
    /// The mobile phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile_phone: Option<String>,
    /// The company.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    /// The job title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_title: Option<String>,
    /// The folder it is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_folder_id: Option<String>,
    /// When it was created (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time: Option<String>,
    /// When it was last changed (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_date_time: Option<String>,
    /// Categories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    /// Other properties, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A sender or recipient: `{"emailAddress": {"name", "address"}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    /// The address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_address: Option<EmailAddress>,
    /// Other properties (`@odata.type`...), kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A name and an e-mail address.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailAddress {
    /// The display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Other properties, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An Outlook body: `contentType` (`text` or `html`) and `content`. The same Graph type
/// (`itemBody`) as a chat message's body: one Rust type, [`ItemBody`](super::ItemBody), under
/// both names.
pub use super::chat_message::ItemBody as OutlookBody;

/// A local date and time with its time zone: `{"dateTime": "2026-11-30T09:00:00.0000000",
/// "timeZone": "UTC"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DateTimeTimeZone {
    /// The date and time, without offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_time: Option<String>,
    /// The time zone (Windows or IANA name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Other properties, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

open_enum! {
    /// `importance` of an Outlook message or event.
    pub enum Importance {
        Low => "low",
        Normal => "normal",
        High => "high",
    }
}
