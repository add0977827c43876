//! The subscription request: its checks, and the bodies to create and renew it.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use super::*;
use crate::keys::Certificate;
use crate::model::{ChangeNotification, LifecycleEvent};
use crate::resource::PathKind;

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
    /// The URL must be HTTPS, as Graph requires; plain `http://` is taken only to the loopback
    /// (`127.0.0.1`, `localhost`, `[::1]`), which only a local emulator can reach.
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
        let limits = check_resource(resource)?;
        check_receiver_url("notificationUrl", notification_url)?;
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
        check_receiver_url("lifecycleNotificationUrl", url)?;
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
        self.change_types = check_change_types(self.limits, types)?;
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

/// The limits of `resource`, checked as Graph checks the path: a kind with resource data,
/// `$select` on Outlook resources, at most [`MAX_PRESENCE_IDS`] presence ids. Shared by
/// [`SubscriptionRequest::new`] and the emulator (one source for both).
pub(crate) fn check_resource(resource: &str) -> Result<&'static ResourceLimits, SubscriptionError> {
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
    Ok(limits)
}

/// The change types `types` (case-insensitive, duplicates merged) checked against what `limits`
/// supports, in Graph's order. Shared by [`SubscriptionRequest::change_types`] and the emulator.
pub(crate) fn check_change_types<S: AsRef<str>>(
    limits: &ResourceLimits,
    types: &[S],
) -> Result<Vec<&'static str>, SubscriptionError> {
    let supported = limits.change_types;
    let refuse = |given: &str| SubscriptionError::ChangeType {
        kind: limits.kind.as_str(),
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
    Ok(chosen)
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
pub(crate) fn presence_filter_ids(resource: &str) -> usize {
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

/// A receiver's URL as [`SubscriptionRequest`] takes it: HTTPS (see [`check_url`]), or plain HTTP
/// to the loopback, which only a local emulator can reach (Graph refuses it, and could not reach
/// it).
fn check_receiver_url(field: &'static str, url: &str) -> Result<(), SubscriptionError> {
    if is_loopback_http(url) {
        Ok(())
    } else {
        check_url(field, url)
    }
}

/// Whether `url` is `http://` to 127.0.0.0/8, `localhost` or `[::1]` (any port and path).
pub(crate) fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("http://"))
        .and_then(|_| url.get(7..))
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') || url.chars().any(char::is_whitespace) {
        return false;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost")
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub(crate) fn check_url(field: &'static str, url: &str) -> Result<(), SubscriptionError> {
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

pub(crate) fn check_length(
    field: &'static str,
    value: &str,
    max: usize,
) -> Result<(), SubscriptionError> {
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
    fn plain_http_only_to_the_loopback() {
        for ok in [
            "http://127.0.0.1:8080/notify",
            "http://127.3.4.5/x",
            "HTTP://localhost:1/",
            "http://[::1]:9/n?a=b",
        ] {
            assert!(is_loopback_http(ok), "{ok}");
        }
        for refused in [
            "http://127.0.0.1.evil.example/",
            "http://user@127.0.0.1/",
            "http://10.0.0.1/",
            "https://127.0.0.1/",
            "http://localhost.example/",
            "http://",
        ] {
            assert!(!is_loopback_http(refused), "{refused}");
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
