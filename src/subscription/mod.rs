//! Subscription bodies for change notifications with resource data: what to `POST /subscriptions`,
//! what to `PATCH /subscriptions/{id}` to renew, when to renew, and what a lifecycle notification
//! asks for. Pure functions: no HTTP, no clock (the time is always an argument).
//!
//! ## What Graph accepts, per resource
//!
//! | kind | resource paths (examples) | change types | max lifetime | `lifecycleNotificationUrl` |
//! |---|---|---|---|---|
//! | `presence` | `/communications/presences/{id}`, `/communications/presences?$filter=id in (…)` | updated | 60 min | optional |
//! | `callEvent` | `/communications/onlineMeetings(joinWebUrl='…')/meetingCallEvents` | updated | 4,320 min | over 1 h |
//! | `chatMessage` | `/chats/{id}/messages`, `/chats/getAllMessages`, `/teams/getAllMessages`, `/teams/{id}/channels/{id}/messages`, `/users/{id}/chats/getAllMessages` | created, updated, deleted | 4,320 min | over 1 h |
//! | `callRecording` | `communications/onlineMeetings/getAllRecordings`, `…/onlineMeetings/{id}/recordings` | created | 4,320 min | over 1 h |
//! | `callTranscript` | `communications/onlineMeetings/getAllTranscripts`, `…/onlineMeetings/{id}/transcripts` | created | 4,320 min | over 1 h |
//! | `chat` | `/chats`, `/chats/{id}`, `/users/{id}/chats` | created, updated | 4,320 min | over 1 h |
//! | `team` | `/teams`, `/teams/{id}` | created, updated, deleted | 4,320 min | over 1 h |
//! | `channel` | `/teams/getAllChannels`, `/teams/{id}/channels` | created, updated, deleted | 4,320 min | over 1 h |
//! | `conversationMember` | `/teams/{id}/members`, `/chats/{id}/members`, `/chats/getAllMembers` | created, updated, deleted | 4,320 min | over 1 h |
//! | `aiInteraction` | `copilot/interactionHistory/getAllEnterpriseInteractions`, `copilot/users/{id}/interactionHistory/getAllEnterpriseInteractions` | created, updated, deleted | 4,320 min | over 1 h |
//! | `message`, `event`, `contact` | `/users/{id}/messages?$select=…`, `/users/{id}/events?$select=…`, `/users/{id}/contacts?$select=…` | created, updated, deleted | 1,440 min | optional |
//!
//! Sources (Microsoft Graph documentation, learn.microsoft.com/graph):
//! - `api/resources/subscription` ("Subscription lifetime" table): presence 60 minutes; Teams
//!   resources 4,320 minutes (under 3 days); `clientState` at most 128 characters;
//!   `encryptionCertificate` required when `includeResourceData` is true; `notificationUrl` and
//!   `lifecycleNotificationUrl` must be HTTPS. Copilot `aiInteraction` is given the Teams value.
//! - `teams-changenotifications-chatmessage`, `-chat`, `-team-and-channel`, `-teammembership`,
//!   `-chatmembership`, `-callrecording-and-calltranscript`, and `aiinteraction-changenotifications`:
//!   "If you request a subscription expirationDateTime that is more than 1 hour in the future, you
//!   must subscribe to lifecycle notifications by including a lifecycleNotificationUrl"; the change
//!   types each page lists.
//! - `teams-changenotifications-presence` (presence: `updated` only; at most 650 ids in a `$filter`)
//!   and `changenotifications-for-onlinemeeting` (meeting call events: `updated` only).
//! - `outlook-change-notifications-overview` and `change-notifications-with-resource-data`:
//!   Outlook resources deliver resource data only for a `$select`ed set of properties, and a
//!   subscription that includes resource data lasts at most 1 day (1,440 minutes; 10,080 without
//!   resource data).
//! - `change-notifications-lifecycle-events`: `reauthorizationRequired` (all resources) is answered
//!   by reauthorizing or renewing; `subscriptionRemoved` (Outlook, Teams chatMessage) by creating
//!   the subscription again; `missed` (Outlook) by resynchronising.
//! - SPEC.md §1 (`encryptionCertificateId` at most 128 characters) and §5, §8.
//!
//! `expirationDateTime` is written as Graph's examples write it: UTC with seven fractional digits,
//! `2026-11-29T23:00:00.0000000Z`. A lifetime at the maximum is measured from the given `now`:
//! Graph checks it against its own clock when the request arrives, a little later, so it holds
//! unless the local clock runs ahead of Graph's.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::{Duration, UNIX_EPOCH};
//! use msgraph_notify::{Certificate, PrivateKey};
//! use msgraph_notify::subscription::SubscriptionRequest;
//! let key = PrivateKey::generate(2048)?;
//! let cert = Certificate::self_signed(&key, "receiver.example", 30)?;
//! let now = UNIX_EPOCH + Duration::from_secs(1_795_992_400); // 2026-11-29T22:46:40Z
//! let request = SubscriptionRequest::new(
//!     "/communications/presences/4f3e8b2a", "https://receiver.example/notify", &cert, "cert-2026")?;
//! let body = request.create_body(now)?;
//! assert_eq!(body["changeType"], "updated");
//! assert_eq!(body["includeResourceData"], true);
//! assert_eq!(body["expirationDateTime"], "2026-11-29T23:46:40.0000000Z"); // 60 minutes on
//! // 50 minutes in, it is time to renew, with this PATCH body:
//! assert!(request.should_renew(now + Duration::from_secs(50 * 60), now + Duration::from_secs(3600)));
//! let renew = request.renew_body(now + Duration::from_secs(50 * 60))?;
//! assert_eq!(renew["expirationDateTime"], "2026-11-30T00:36:40.0000000Z");
//! # Ok(()) }
//! ```

use serde_json::Value;

mod date_time;
mod limits;
mod request;

#[cfg(feature = "manage")]
mod access_token;
#[cfg(feature = "manage")]
mod client;
#[cfg(feature = "manage")]
mod client_credentials;
#[cfg(feature = "manage")]
mod http;
#[cfg(feature = "manage")]
mod keeper;
#[cfg(feature = "manage")]
mod token_command;

pub use crate::error::SubscriptionError;
pub use date_time::{format_date_time, parse_date_time, renew_at};
pub use limits::{
    DELIVERY_ANSWER_TIMEOUT, DELIVERY_RETRY_WINDOW, LIFECYCLE_URL_REQUIRED_OVER,
    MAX_CERTIFICATE_ID_CHARS, MAX_CLIENT_STATE_CHARS, MAX_PRESENCE_IDS, MIN_LIFETIME,
    ResourceLimits, VALIDATION_TIMEOUT,
};
pub use request::SubscriptionRequest;
#[cfg(feature = "emulator")]
pub(crate) use request::{check_change_types, check_length, check_resource, check_url};

#[cfg(all(feature = "manage", feature = "redis"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "manage", feature = "redis"))))]
pub use keeper::{Coordination, RedisState};
#[cfg(feature = "manage")]
#[cfg_attr(docsrs, doc(cfg(feature = "manage")))]
pub use {
    crate::error::{GraphError, KeeperError},
    access_token::{
        AccessToken, CachedToken, DEFAULT_AUTHORITY, GRAPH_SCOPE, TokenFuture, TokenSource,
    },
    client::{DEFAULT_GRAPH_URL, GraphClient, RetryPolicy, Subscription},
    client_credentials::ClientCredentials,
    http::MAX_RESPONSE_BYTES,
    keeper::{
        DesiredSubscription, FileState, Keeper, KeeperEvent, KeptSubscription, MemoryState,
        StateStore,
    },
    token_command::TokenCommand,
};

const MINUTE: u64 = 60;

/// What a lifecycle notification asks for (see [`SubscriptionRequest::on_lifecycle`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LifecycleAction {
    /// Send `PATCH {path}` (`/subscriptions/{id}`) with `body`.
    Renew {
        /// `/subscriptions/{id}`.
        path: String,
        /// `{"expirationDateTime": "…"}`.
        body: Value,
    },
    /// Send `POST /subscriptions` with `body`, then resynchronise.
    Recreate {
        /// The create body.
        body: Value,
    },
    /// Resynchronise the resource (GET it, or its delta): notifications were missed.
    Resync,
    /// Nothing to do.
    None,
}
