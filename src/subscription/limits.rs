//! What Graph accepts per kind of resource: change types, lifetimes, lengths.

use std::time::Duration;

use super::MINUTE;
use crate::resource::PathKind;

/// Above this lifetime, Teams and Copilot resources require a `lifecycleNotificationUrl`.
pub const LIFECYCLE_URL_REQUIRED_OVER: Duration = Duration::from_secs(60 * MINUTE);
/// An `expirationDateTime` less than this far ahead is raised to it by Graph (source:
/// learn.microsoft.com/graph/api/resources/subscription, "Subscription lifetime": "if the
/// requested expirationDateTime is less than the minimum, it defaults to 45 minutes").
pub const MIN_LIFETIME: Duration = Duration::from_secs(45 * MINUTE);
/// How long Graph waits for the answer to a validation request (`?validationToken=…`) before
/// failing the create or update with 400 (source:
/// learn.microsoft.com/graph/change-notifications-delivery-webhooks, "Notification endpoint
/// validation": "respond within 10 seconds").
pub const VALIDATION_TIMEOUT: Duration = Duration::from_secs(10);
/// A delivery not answered 2xx within this is retried (source:
/// learn.microsoft.com/graph/change-notifications-delivery-webhooks, "Processing the change
/// notification": "respond … within 3 seconds").
pub const DELIVERY_ANSWER_TIMEOUT: Duration = Duration::from_secs(3);
/// How long Graph keeps retrying a delivery with exponential backoff before dropping it (source:
/// learn.microsoft.com/graph/change-notifications-delivery-webhooks: "retries … for up to 4
/// hours").
pub const DELIVERY_RETRY_WINDOW: Duration = Duration::from_secs(4 * 60 * MINUTE);
/// The longest `clientState` Graph accepts, in characters.
pub const MAX_CLIENT_STATE_CHARS: usize = 128;
/// The longest `encryptionCertificateId` Graph accepts, in characters.
pub const MAX_CERTIFICATE_ID_CHARS: usize = 128;
/// The most user ids a presence subscription's `$filter=id in (…)` may name.
pub const MAX_PRESENCE_IDS: usize = 650;

/// What Graph accepts for subscriptions with resource data on one kind of resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResourceLimits {
    /// The kind of resource.
    pub kind: PathKind,
    /// The longest subscription Graph accepts (and the default lifetime here).
    pub max_lifetime: Duration,
    /// The change types Graph supports, in Graph's spelling; the default is all of them.
    pub change_types: &'static [&'static str],
    /// Whether a lifetime over [`LIFECYCLE_URL_REQUIRED_OVER`] needs a `lifecycleNotificationUrl`.
    pub lifecycle_url_required_over_one_hour: bool,
    /// Whether the resource path must carry `$select` (Outlook resources).
    pub requires_select: bool,
}

pub(super) const ALL: &[&str] = &["created", "updated", "deleted"];
pub(super) const TEAMS_MAX: Duration = Duration::from_secs(4320 * MINUTE);

pub(super) const fn teams(kind: PathKind, change_types: &'static [&'static str]) -> ResourceLimits {
    ResourceLimits {
        kind,
        max_lifetime: TEAMS_MAX,
        change_types,
        lifecycle_url_required_over_one_hour: true,
        requires_select: false,
    }
}

pub(super) const fn outlook(kind: PathKind) -> ResourceLimits {
    ResourceLimits {
        kind,
        max_lifetime: Duration::from_secs(1440 * MINUTE),
        change_types: ALL,
        lifecycle_url_required_over_one_hour: false,
        requires_select: true,
    }
}

pub(super) const LIMITS: &[ResourceLimits] = &[
    ResourceLimits {
        kind: PathKind::Presence,
        max_lifetime: Duration::from_secs(60 * MINUTE),
        change_types: &["updated"],
        lifecycle_url_required_over_one_hour: true,
        requires_select: false,
    },
    teams(PathKind::CallEvent, &["updated"]),
    teams(PathKind::ChatMessage, ALL),
    teams(PathKind::CallRecording, &["created"]),
    teams(PathKind::CallTranscript, &["created"]),
    teams(PathKind::Chat, &["created", "updated"]),
    teams(PathKind::Team, ALL),
    teams(PathKind::Channel, ALL),
    teams(PathKind::ConversationMember, ALL),
    teams(PathKind::AiInteraction, ALL),
    outlook(PathKind::Message),
    outlook(PathKind::Event),
    outlook(PathKind::Contact),
];

impl ResourceLimits {
    /// The limits for the resource `path` names (see [`PathKind`]), or `None` for a path that
    /// names no resource with resource data.
    ///
    /// ```
    /// use std::time::Duration;
    /// use msgraph_notify::subscription::ResourceLimits;
    /// let chat = ResourceLimits::of("/chats/getAllMessages").unwrap();
    /// assert_eq!(chat.max_lifetime, Duration::from_secs(4320 * 60));
    /// assert_eq!(chat.change_types, ["created", "updated", "deleted"]);
    /// assert!(ResourceLimits::of("/users/u/drive/root").is_none());
    /// ```
    pub fn of(path: &str) -> Option<&'static ResourceLimits> {
        Self::for_kind(PathKind::of(path))
    }

    /// The limits for `kind` (`None` for [`PathKind::Other`]).
    pub fn for_kind(kind: PathKind) -> Option<&'static ResourceLimits> {
        LIMITS.iter().find(|l| l.kind == kind)
    }

    /// Whether a subscription of `lifetime` needs a `lifecycleNotificationUrl`.
    pub fn lifecycle_url_required(&self, lifetime: Duration) -> bool {
        self.lifecycle_url_required_over_one_hour && lifetime > LIFECYCLE_URL_REQUIRED_OVER
    }
}
