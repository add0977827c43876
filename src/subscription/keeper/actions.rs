//! The keeper's requests to Graph for one desired subscription: create, recreate, rotate the
//! certificate, renew; and when a renewal is due.

use std::time::{Duration, SystemTime};

use super::{DesiredSubscription, KeeperEvent, KeptSubscription, REAUTHORIZE_GAP, since, unix};
use crate::error::{GraphError, KeeperError};
use crate::keys::Certificate;
use crate::subscription::{Subscription, SubscriptionRequest};

impl super::Keeper {
    pub(super) fn request(
        &self,
        desired: &DesiredSubscription,
    ) -> Result<SubscriptionRequest, KeeperError> {
        let certificate = self
            .certificates
            .read()
            .ok()
            .and_then(|c| c.get(&desired.encryption_certificate_id).cloned())
            .ok_or_else(|| KeeperError::NoCertificate(desired.encryption_certificate_id.clone()))?;
        let mut request = SubscriptionRequest::new(
            &desired.resource,
            &desired.notification_url,
            &certificate,
            &desired.encryption_certificate_id,
        )?;
        if let Some(url) = &desired.lifecycle_notification_url {
            request = request.lifecycle_url(url)?;
        }
        if let Some(types) = &desired.change_type {
            request = request.change_types(&types.split(',').collect::<Vec<_>>())?;
        }
        if let Some(secret) = &self.client_state {
            request = request.client_state(secret)?;
        }
        if let Some(lifetime) = desired.lifetime() {
            request = request.lifetime(lifetime);
        }
        Ok(request)
    }

    pub(super) fn thumbprint(&self, desired: &DesiredSubscription) -> Option<String> {
        self.certificates
            .read()
            .ok()?
            .get(&desired.encryption_certificate_id)
            .map(Certificate::thumbprint)
    }

    /// Creates the subscription, or, after a create that got no answer, first looks for the one
    /// Graph may have made then (one list, only in that case) and adopts it.
    pub(super) async fn create_or_find(
        &self,
        desired: &DesiredSubscription,
        uncertain: bool,
        now: SystemTime,
        events: &mut Vec<KeeperEvent>,
    ) -> Result<KeptSubscription, (&'static str, KeeperError)> {
        if uncertain {
            let found = self
                .graph
                .list()
                .await
                .map_err(|e| ("create", e.into()))?
                .into_iter()
                .find(|s| {
                    s.resource == desired.resource
                        && s.notification_url == desired.notification_url
                        && s.lifecycle_notification_url == desired.lifecycle_notification_url
                });
            if let Some(subscription) = found {
                let kept = KeptSubscription {
                    key: desired.key(),
                    id: subscription.id.clone(),
                    resource: subscription.resource.clone(),
                    lifetime_seconds: granted(&subscription, now),
                    expiration_date_time: subscription.expiration_date_time.clone(),
                    last_patch: unix(now),
                    last_reauthorization: None,
                    certificate_thumbprint: self.thumbprint(desired).unwrap_or_default(),
                    reauthorize_pending: false,
                };
                events.push(KeeperEvent::Adopted {
                    key: kept.key.clone(),
                    id: kept.id.clone(),
                    expiration: kept.expiration_date_time.clone(),
                });
                return Ok(kept);
            }
        }
        let kept = self.create(desired, now).await?;
        events.push(KeeperEvent::Created {
            key: kept.key.clone(),
            id: kept.id.clone(),
            expiration: kept.expiration_date_time.clone(),
        });
        Ok(kept)
    }

    pub(super) async fn create(
        &self,
        desired: &DesiredSubscription,
        now: SystemTime,
    ) -> Result<KeptSubscription, (&'static str, KeeperError)> {
        let body = self
            .request(desired)
            .and_then(|r| r.create_body(now).map_err(KeeperError::from))
            .map_err(|e| ("create", e))?;
        let subscription = self
            .graph
            .create(&body)
            .await
            .map_err(|e| ("create", e.into()))?;
        Ok(KeptSubscription {
            key: desired.key(),
            id: subscription.id.clone(),
            resource: subscription.resource.clone(),
            expiration_date_time: subscription.expiration_date_time.clone(),
            lifetime_seconds: granted(&subscription, now),
            last_patch: unix(now),
            last_reauthorization: None,
            certificate_thumbprint: self.thumbprint(desired).unwrap_or_default(),
            reauthorize_pending: false,
        })
    }

    pub(super) async fn recreate(
        &self,
        desired: &DesiredSubscription,
        old: &KeptSubscription,
        reason: &'static str,
        now: SystemTime,
        events: &mut Vec<KeeperEvent>,
    ) -> Result<Option<KeptSubscription>, (&'static str, KeeperError)> {
        // Best effort: a removed subscription is usually gone already.
        let _ = self.graph.delete(&old.id).await;
        let kept = self
            .create(desired, now)
            .await
            .map_err(|(_, e)| ("recreate", e))?;
        events.push(KeeperEvent::Recreated {
            key: kept.key.clone(),
            old_id: old.id.clone(),
            id: kept.id.clone(),
            reason,
            expiration: kept.expiration_date_time.clone(),
        });
        Ok(Some(kept))
    }

    /// A kept subscription: rotate its certificate if it changed, renew it if due.
    pub(super) async fn maintain(
        &self,
        desired: &DesiredSubscription,
        kept: KeptSubscription,
        now: SystemTime,
        events: &mut Vec<KeeperEvent>,
    ) -> Result<Option<KeptSubscription>, (&'static str, KeeperError)> {
        if let Some(thumbprint) = self.thumbprint(desired)
            && !thumbprint.eq_ignore_ascii_case(&kept.certificate_thumbprint)
            && since(now, kept.last_reauthorization.unwrap_or(0)) >= REAUTHORIZE_GAP
        {
            let certificate = self
                .certificates
                .read()
                .ok()
                .and_then(|c| c.get(&desired.encryption_certificate_id).cloned());
            if let Some(certificate) = certificate {
                return match self
                    .graph
                    .rotate_certificate(&kept.id, &certificate, &desired.encryption_certificate_id)
                    .await
                {
                    Ok(subscription) => {
                        events.push(KeeperEvent::CertificateRotated {
                            key: kept.key.clone(),
                            id: kept.id.clone(),
                            certificate_id: desired.encryption_certificate_id.clone(),
                            expiration: subscription.expiration_date_time.clone(),
                        });
                        Ok(Some(KeptSubscription {
                            expiration_date_time: subscription.expiration_date_time,
                            certificate_thumbprint: thumbprint,
                            last_patch: unix(now),
                            ..kept
                        }))
                    }
                    Err(GraphError::Api { status: 404, .. }) => {
                        self.recreate(desired, &kept, "not found", now, events)
                            .await
                    }
                    Err(e) => Err(("rotate", e.into())),
                };
            }
        }
        if now < renew_due(&kept) && !kept.reauthorize_pending {
            return Ok(None);
        }
        let body = self
            .request(desired)
            .and_then(|r| r.renew_body(now).map_err(KeeperError::from))
            .map_err(|e| ("renew", e))?;
        match self.graph.patch(&kept.id, &body).await {
            Ok(subscription) => {
                events.push(KeeperEvent::Renewed {
                    key: kept.key.clone(),
                    id: kept.id.clone(),
                    expiration: subscription.expiration_date_time.clone(),
                });
                Ok(Some(KeptSubscription {
                    lifetime_seconds: granted(&subscription, now),
                    expiration_date_time: subscription.expiration_date_time,
                    last_patch: unix(now),
                    reauthorize_pending: false,
                    ..kept
                }))
            }
            Err(GraphError::Api { status: 404, .. }) => {
                self.recreate(desired, &kept, "not found", now, events)
                    .await
            }
            Err(e) => Err(("renew", e.into())),
        }
    }
}

/// When a quarter of the granted lifetime remains; no sooner than 10 minutes after a
/// reauthorization unless the expiry would come first (then a minute before it).
pub(super) fn renew_due(kept: &KeptSubscription) -> SystemTime {
    let expiry = crate::subscription::parse_date_time(&kept.expiration_date_time)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let due = expiry
        - Duration::from_secs(kept.lifetime_seconds / 4).min(
            expiry
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        );
    match kept.last_reauthorization {
        Some(at) => {
            let gap_end = SystemTime::UNIX_EPOCH
                .checked_add(Duration::from_secs(at))
                .and_then(|t| t.checked_add(REAUTHORIZE_GAP))
                .unwrap_or(expiry);
            let last_moment = expiry
                .checked_sub(Duration::from_secs(60))
                .unwrap_or(expiry);
            due.max(gap_end.min(last_moment))
        }
        None => due,
    }
}

/// The lifetime Graph granted: its expiry minus the time of the request.
fn granted(subscription: &Subscription, now: SystemTime) -> u64 {
    subscription
        .expires_at()
        .and_then(|e| e.duration_since(now).ok())
        .map_or(0, |d| d.as_secs())
}
