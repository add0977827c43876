//! Subscription bodies for change notifications with resource data: what to `POST /subscriptions`,
//! what to `PATCH /subscriptions/{id}` to renew, when to renew, and what a lifecycle notification
//! asks for. Pure functions: no HTTP, no clock (the time is always an argument).
//!
//! ## What Graph accepts, per resource
//!
//! | kind | resource paths (examples) | change types | max lifetime | `lifecycleNotificationUrl` |
//! |---|---|---|---|---|
//! | `presence` | `/communications/presences/{id}`, `/communications/presences?$filter=id in (…)` | updated | 60 min | optional |
//! | `callEvent` | `/communications/onlineMeetings(joinWebUrl='…')/meetingCallEvents` | updated | 4,230 min | over 1 h |
//! | `chatMessage` | `/chats/{id}/messages`, `/chats/getAllMessages`, `/teams/getAllMessages`, `/teams/{id}/channels/{id}/messages`, `/users/{id}/chats/getAllMessages` | created, updated, deleted | 4,230 min | over 1 h |
//! | `callRecording` | `communications/onlineMeetings/getAllRecordings`, `…/onlineMeetings/{id}/recordings` | created | 4,230 min | over 1 h |
//! | `callTranscript` | `communications/onlineMeetings/getAllTranscripts`, `…/onlineMeetings/{id}/transcripts` | created | 4,230 min | over 1 h |
//! | `chat` | `/chats`, `/chats/{id}`, `/users/{id}/chats` | created, updated | 4,230 min | over 1 h |
//! | `team` | `/teams`, `/teams/{id}` | created, updated, deleted | 4,230 min | over 1 h |
//! | `channel` | `/teams/getAllChannels`, `/teams/{id}/channels` | created, updated, deleted | 4,230 min | over 1 h |
//! | `conversationMember` | `/teams/{id}/members`, `/chats/{id}/members`, `/chats/getAllMembers` | created, updated, deleted | 4,230 min | over 1 h |
//! | `aiInteraction` | `copilot/interactionHistory/getAllEnterpriseInteractions`, `copilot/users/{id}/interactionHistory/getAllEnterpriseInteractions` | created, updated, deleted | 4,230 min | over 1 h |
//! | `message`, `event`, `contact` | `/users/{id}/messages?$select=…`, `/users/{id}/events?$select=…`, `/users/{id}/contacts?$select=…` | created, updated, deleted | 1,440 min | optional |
//!
//! Sources (Microsoft Graph documentation, learn.microsoft.com/graph):
//! - `api/resources/subscription` ("Subscription lifetime" table): presence 60 minutes; Teams
//!   resources 4,230 minutes (under 3 days); `clientState` at most 128 characters;
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

use std::fmt;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

pub use crate::error::SubscriptionError;
use crate::keys::Certificate;
use crate::model::{ChangeNotification, LifecycleEvent};
use crate::resource::PathKind;

const MINUTE: u64 = 60;
/// Above this lifetime, Teams and Copilot resources require a `lifecycleNotificationUrl`.
pub const LIFECYCLE_URL_REQUIRED_OVER: Duration = Duration::from_secs(60 * MINUTE);
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

const ALL: &[&str] = &["created", "updated", "deleted"];
const TEAMS_MAX: Duration = Duration::from_secs(4230 * MINUTE);

const fn teams(kind: PathKind, change_types: &'static [&'static str]) -> ResourceLimits {
    ResourceLimits {
        kind,
        max_lifetime: TEAMS_MAX,
        change_types,
        lifecycle_url_required_over_one_hour: true,
        requires_select: false,
    }
}

const fn outlook(kind: PathKind) -> ResourceLimits {
    ResourceLimits {
        kind,
        max_lifetime: Duration::from_secs(1440 * MINUTE),
        change_types: ALL,
        lifecycle_url_required_over_one_hour: false,
        requires_select: true,
    }
}

const LIMITS: &[ResourceLimits] = &[
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
    /// assert_eq!(chat.max_lifetime, Duration::from_secs(4230 * 60));
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

/// A subscription with resource data to create, renew and keep alive.
///
/// Built with [`SubscriptionRequest::new`], which checks the resource path, the URL and the
/// certificate id; the optional parts are set with the builder methods, each checked when set.
/// `clientState` is a secret: it is never shown by `Debug`.
#[derive(Clone)]
pub struct SubscriptionRequest {
    resource: String,
    limits: &'static ResourceLimits,
    notification_url: String,
    lifecycle_notification_url: Option<String>,
    change_types: Vec<&'static str>,
    encryption_certificate: String,
    encryption_certificate_id: String,
    client_state: Option<zeroize::Zeroizing<String>>,
    lifetime: Option<Duration>,
}

impl fmt::Debug for SubscriptionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionRequest")
            .field("resource", &self.resource)
            .field("kind", &self.limits.kind)
            .field("notification_url", &self.notification_url)
            .field(
                "lifecycle_notification_url",
                &self.lifecycle_notification_url,
            )
            .field("change_types", &self.change_types)
            .field("encryption_certificate_id", &self.encryption_certificate_id)
            .field(
                "client_state",
                &self.client_state.as_ref().map(|_| "<redacted>"),
            )
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl SubscriptionRequest {
    /// A subscription to `resource` delivered to `notification_url`, with resource data
    /// encrypted for `certificate` (sent as `encryptionCertificate`, the base64 of its DER) under
    /// `certificate_id` (`encryptionCertificateId`). By default it asks for every change type
    /// the resource supports, for the resource's longest lifetime, with no lifecycle URL and no
    /// clientState.
    ///
    /// # Errors
    ///
    /// [`SubscriptionError::UnsupportedResource`], [`SubscriptionError::SelectRequired`] and
    /// [`SubscriptionError::TooManyPresenceIds`] for the path, [`SubscriptionError::Url`] for
    /// the URL, [`SubscriptionError::Length`] for the certificate id.
    pub fn new(
        resource: &str,
        notification_url: &str,
        certificate: &Certificate,
        certificate_id: &str,
    ) -> Result<Self, SubscriptionError> {
        let limits = ResourceLimits::of(resource)
            .ok_or_else(|| SubscriptionError::UnsupportedResource(resource.to_owned()))?;
        if limits.requires_select && !has_query_option(resource, "$select") {
            return Err(SubscriptionError::SelectRequired(limits.kind.as_str()));
        }
        if limits.kind == PathKind::Presence {
            let count = presence_filter_ids(resource);
            if count > MAX_PRESENCE_IDS {
                return Err(SubscriptionError::TooManyPresenceIds {
                    count,
                    max: MAX_PRESENCE_IDS,
                });
            }
        }
        check_url("notificationUrl", notification_url)?;
        check_length(
            "encryptionCertificateId",
            certificate_id,
            MAX_CERTIFICATE_ID_CHARS,
        )?;
        Ok(SubscriptionRequest {
            resource: resource.to_owned(),
            limits,
            notification_url: notification_url.to_owned(),
            lifecycle_notification_url: None,
            change_types: limits.change_types.to_vec(),
            encryption_certificate: certificate.encryption_certificate(),
            encryption_certificate_id: certificate_id.to_owned(),
            client_state: None,
            lifetime: None,
        })
    }

    /// Sets `lifecycleNotificationUrl`.
    ///
    /// # Errors
    ///
    /// [`SubscriptionError::Url`] when it is not HTTPS.
    pub fn lifecycle_url(mut self, url: &str) -> Result<Self, SubscriptionError> {
        check_url("lifecycleNotificationUrl", url)?;
        self.lifecycle_notification_url = Some(url.to_owned());
        Ok(self)
    }

    /// Sets the change types (`created`, `updated`, `deleted`; case-insensitive, duplicates
    /// merged).
    ///
    /// # Errors
    ///
    /// [`SubscriptionError::ChangeType`] for an empty list or a type the resource does not support.
    pub fn change_types<S: AsRef<str>>(mut self, types: &[S]) -> Result<Self, SubscriptionError> {
        let supported = self.limits.change_types;
        let refuse = |given: &str| SubscriptionError::ChangeType {
            kind: self.limits.kind.as_str(),
            given: given.to_owned(),
            supported: supported.join(","),
        };
        if types.is_empty() {
            return Err(refuse(""));
        }
        let mut chosen: Vec<&'static str> = Vec::new();
        for given in types {
            let given = given.as_ref().trim();
            let known = supported
                .iter()
                .find(|s| s.eq_ignore_ascii_case(given))
                .ok_or_else(|| refuse(given))?;
            if !chosen.contains(known) {
                chosen.push(known);
            }
        }
        // Graph's order, whatever the order given.
        chosen.sort_by_key(|c| supported.iter().position(|s| s == c));
        self.change_types = chosen;
        Ok(self)
    }

    /// Sets `clientState`, the secret Graph echoes in every notification.
    ///
    /// # Errors
    ///
    /// [`SubscriptionError::Length`] when empty or over [`MAX_CLIENT_STATE_CHARS`].
    pub fn client_state(mut self, secret: &str) -> Result<Self, SubscriptionError> {
        check_length("clientState", secret, MAX_CLIENT_STATE_CHARS)?;
        self.client_state = Some(zeroize::Zeroizing::new(secret.to_owned()));
        Ok(self)
    }

    /// Sets the lifetime (default: the resource's maximum). Checked when a body is built, against
    /// the maximum and the lifecycle URL.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = Some(lifetime);
        self
    }

    /// The limits of the resource.
    pub fn limits(&self) -> &'static ResourceLimits {
        self.limits
    }

    /// The lifetime asked for, checked.
    ///
    /// # Errors
    ///
    /// [`SubscriptionError::Lifetime`] when zero or over the maximum;
    /// [`SubscriptionError::LifecycleUrlRequired`] when over one hour without a lifecycle URL on a
    /// resource that requires one.
    pub fn checked_lifetime(&self) -> Result<Duration, SubscriptionError> {
        let lifetime = self.lifetime.unwrap_or(self.limits.max_lifetime);
        let kind = self.limits.kind.as_str();
        let minutes = lifetime.as_secs() / MINUTE;
        if lifetime.is_zero() || lifetime > self.limits.max_lifetime {
            return Err(SubscriptionError::Lifetime {
                kind,
                minutes,
                max_minutes: self.limits.max_lifetime.as_secs() / MINUTE,
            });
        }
        if self.lifecycle_notification_url.is_none() && self.limits.lifecycle_url_required(lifetime)
        {
            return Err(SubscriptionError::LifecycleUrlRequired { kind, minutes });
        }
        Ok(lifetime)
    }

    /// The JSON body of `POST /subscriptions`: `changeType`, `notificationUrl`,
    /// `lifecycleNotificationUrl` (when set), `resource`, `includeResourceData: true`,
    /// `encryptionCertificate`, `encryptionCertificateId`, `expirationDateTime` (`now` plus the
    /// lifetime) and `clientState` (when set).
    ///
    /// # Errors
    ///
    /// Those of [`SubscriptionRequest::checked_lifetime`].
    pub fn create_body(&self, now: SystemTime) -> Result<Value, SubscriptionError> {
        let expiration = self.expiration(now)?;
        let mut body = Map::new();
        body.insert("changeType".into(), self.change_types.join(",").into());
        body.insert(
            "notificationUrl".into(),
            self.notification_url.clone().into(),
        );
        if let Some(url) = &self.lifecycle_notification_url {
            body.insert("lifecycleNotificationUrl".into(), url.clone().into());
        }
        body.insert("resource".into(), self.resource.clone().into());
        body.insert("includeResourceData".into(), true.into());
        body.insert(
            "encryptionCertificate".into(),
            self.encryption_certificate.clone().into(),
        );
        body.insert(
            "encryptionCertificateId".into(),
            self.encryption_certificate_id.clone().into(),
        );
        body.insert("expirationDateTime".into(), expiration.into());
        if let Some(secret) = &self.client_state {
            body.insert("clientState".into(), secret.as_str().into());
        }
        Ok(Value::Object(body))
    }

    /// The JSON body of `PATCH /subscriptions/{id}` that renews the subscription for its lifetime
    /// from `now`: `{"expirationDateTime": "…"}`. Renewing also reauthorizes it.
    ///
    /// # Errors
    ///
    /// Those of [`SubscriptionRequest::checked_lifetime`].
    pub fn renew_body(&self, now: SystemTime) -> Result<Value, SubscriptionError> {
        Ok(json!({ "expirationDateTime": self.expiration(now)? }))
    }

    /// Whether, at `now`, a subscription expiring at `expiration` should be renewed: when less
    /// than a quarter of its lifetime is left (at least 5 minutes and at most a day before it
    /// expires), or it has expired.
    pub fn should_renew(&self, now: SystemTime, expiration: SystemTime) -> bool {
        let lifetime = self.lifetime.unwrap_or(self.limits.max_lifetime);
        now >= renew_at(expiration, lifetime)
    }

    /// What to do about a lifecycle notification of this subscription, received at `now`.
    ///
    /// - `reauthorizationRequired`: [`LifecycleAction::Renew`], with the `PATCH` body that renews
    ///   and so reauthorizes it (Graph also accepts `POST /subscriptions/{id}/reauthorize`).
    /// - `subscriptionRemoved`: [`LifecycleAction::Recreate`], with the `POST /subscriptions` body;
    ///   then resynchronise, as notifications may have been missed.
    /// - `missed`: [`LifecycleAction::Resync`].
    /// - anything else (a change notification, a new lifecycle event): [`LifecycleAction::None`].
    ///
    /// # Errors
    ///
    /// [`SubscriptionError::NoSubscriptionId`] for a renewal without a subscription id; those of
    /// [`SubscriptionRequest::checked_lifetime`].
    pub fn on_lifecycle(
        &self,
        notification: &ChangeNotification,
        now: SystemTime,
    ) -> Result<LifecycleAction, SubscriptionError> {
        Ok(match &notification.lifecycle_event {
            Some(LifecycleEvent::ReauthorizationRequired) => {
                let id = notification
                    .subscription_id
                    .as_deref()
                    .filter(|id| !id.is_empty())
                    .ok_or(SubscriptionError::NoSubscriptionId)?;
                LifecycleAction::Renew {
                    path: format!("/subscriptions/{id}"),
                    body: self.renew_body(now)?,
                }
            }
            Some(LifecycleEvent::SubscriptionRemoved) => LifecycleAction::Recreate {
                body: self.create_body(now)?,
            },
            Some(LifecycleEvent::Missed) => LifecycleAction::Resync,
            _ => LifecycleAction::None,
        })
    }

    fn expiration(&self, now: SystemTime) -> Result<String, SubscriptionError> {
        let lifetime = self.checked_lifetime()?;
        Ok(format_date_time(now + lifetime))
    }
}

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

/// When to renew a subscription of `lifetime` that expires at `expiration`: a quarter of its
/// lifetime before, but at least 5 minutes and at most 24 hours before.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let expires = UNIX_EPOCH + Duration::from_secs(10_000);
/// let at = msgraph_notify::subscription::renew_at(expires, Duration::from_secs(3600));
/// assert_eq!(expires.duration_since(at).unwrap(), Duration::from_secs(900));
/// ```
pub fn renew_at(expiration: SystemTime, lifetime: Duration) -> SystemTime {
    let margin = (lifetime / 4).clamp(
        Duration::from_secs(5 * MINUTE),
        Duration::from_secs(24 * 60 * MINUTE),
    );
    expiration.checked_sub(margin).unwrap_or(expiration)
}

/// `time` as Graph writes `expirationDateTime`: UTC, seven fractional digits,
/// `2026-11-29T23:00:00.0000000Z`. Times before 1970 are written as 1970-01-01.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let t = UNIX_EPOCH + Duration::from_nanos(1_795_993_200_123_456_789);
/// assert_eq!(msgraph_notify::subscription::format_date_time(t), "2026-11-29T23:00:00.1234567Z");
/// ```
pub fn format_date_time(time: SystemTime) -> String {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:07}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_nanos() / 100
    )
}

/// Parses an ISO 8601 date-time with an offset as Graph writes them (`subscriptionExpirationDateTime`):
/// `YYYY-MM-DDTHH:MM:SS`, 0 to 7 fractional digits, then `Z` or `±HH:MM`. `None` for anything
/// else or a time before 1970.
///
/// ```
/// use msgraph_notify::subscription::{format_date_time, parse_date_time};
/// let t = parse_date_time("2021-12-31T16:16:44.9907405+05:30").unwrap();
/// assert_eq!(format_date_time(t), "2021-12-31T10:46:44.9907405Z");
/// assert!(parse_date_time("2021-12-31").is_none());
/// ```
pub fn parse_date_time(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<u64> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0u64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u64::from(c - b'0'))
        })
    };
    let sep = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(sep(4, b'-') && sep(7, b'-') && (sep(10, b'T') || sep(10, b't')) && sep(13, b':'))
        || !sep(16, b':')
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u64;
    if sep(i, b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || digits > 7 {
            return None;
        }
        nanos = num(start..i)? * 10u64.pow(9 - digits as u32);
    }
    let offset_secs: i64 = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let h = num(i + 1..i + 3)?;
            let m = num(i + 4..i + 6)?;
            if h > 23 || m > 59 {
                return None;
            }
            let secs = i64::try_from(h * 3600 + m * 60).ok()?;
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day)?;
    let local = i64::try_from(days * 86_400 + hour * 3600 + minute * 60 + second).ok()?;
    let utc = u64::try_from(local.checked_sub(offset_secs)?).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(utc, u32::try_from(nanos).ok()?))
}

fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date from 1970 on.
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    if year < 1970 {
        return None;
    }
    let years: u64 = (1970..year)
        .map(|y| if is_leap(y) { 366 } else { 365 })
        .sum();
    let months: u64 = (1..month).map(|m| days_in_month(year, m)).sum();
    Some(years + months + day - 1)
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(mut days: u64) -> (u64, u64, u64) {
    let mut year = 1970;
    loop {
        let len = if is_leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let mut month = 1;
    while days >= days_in_month(year, month) {
        days -= days_in_month(year, month);
        month += 1;
    }
    (year, month, days + 1)
}

/// Whether the query of `resource` has the option `name` (case-insensitive).
fn has_query_option(resource: &str, name: &str) -> bool {
    resource.split_once('?').is_some_and(|(_, query)| {
        query.split('&').any(|option| {
            option.split_once('=').is_some_and(|(key, value)| {
                key.trim().eq_ignore_ascii_case(name) && !value.trim().is_empty()
            })
        })
    })
}

/// How many quoted ids a presence `$filter=id in ('…','…')` names (0 without a filter).
fn presence_filter_ids(resource: &str) -> usize {
    let Some((_, query)) = resource.split_once('?') else {
        return 0;
    };
    // Quotes come in pairs around each id; `''` inside an id is an escaped quote.
    let quotes = query
        .matches('\'')
        .count()
        .saturating_sub(2 * query.matches("''").count());
    quotes / 2
}

fn check_url(field: &'static str, url: &str) -> Result<(), SubscriptionError> {
    let lower = url
        .get(..10)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let https = |s: &str| {
        s.len() > "https://".len()
            && s.get(..8)
                .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
    };
    let ok = https(url)
        || (lower.starts_with("eventhub:") && url.get(9..).is_some_and(https))
        || (lower.starts_with("eventgrid:") && url.len() > 10);
    if ok && !url.chars().any(char::is_whitespace) {
        Ok(())
    } else {
        Err(SubscriptionError::Url {
            field,
            url: url.to_owned(),
        })
    }
}

fn check_length(field: &'static str, value: &str, max: usize) -> Result<(), SubscriptionError> {
    let len = value.chars().count();
    if len == 0 || len > max {
        Err(SubscriptionError::Length { field, len, max })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_through_leap_years_and_offsets() {
        for text in [
            "1970-01-01T00:00:00.0000000Z",
            "2024-02-29T23:59:59.9999999Z",
            "2026-11-29T23:00:00.0000000Z",
            "2100-03-01T00:00:00.0000000Z",
        ] {
            let t = parse_date_time(text).unwrap();
            assert_eq!(format_date_time(t), text);
        }
        assert_eq!(
            format_date_time(parse_date_time("2019-09-18T00:52:45.9696658+00:00").unwrap()),
            "2019-09-18T00:52:45.9696658Z"
        );
        assert_eq!(
            format_date_time(parse_date_time("2016-03-19T22:11:09.952-08:00").unwrap()),
            "2016-03-20T06:11:09.9520000Z"
        );
        for bad in [
            "2023-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-29T24:00:00Z",
            "2026-11-29T23:00:00",
            "2026-11-29T23:00:00.Z",
            "2026-11-29T23:00:00.12345678Z",
            "2026-11-29T23:00:00+5:30",
            "1969-12-31T23:59:59Z",
            "NA",
            "",
        ] {
            assert!(parse_date_time(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn presence_ids_and_select_are_counted_from_the_query() {
        assert_eq!(presence_filter_ids("/communications/presences/x"), 0);
        assert_eq!(
            presence_filter_ids("/communications/presences?$filter=id in ('a', 'b','c')"),
            3
        );
        assert!(has_query_option("/me/messages?$select=subject", "$select"));
        assert!(has_query_option(
            "/me/messages?$top=1&$SELECT=a,b",
            "$select"
        ));
        assert!(!has_query_option("/me/messages?$select=", "$select"));
        assert!(!has_query_option("/me/messages", "$select"));
    }
}
