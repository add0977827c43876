//! The subscription keeper (feature `manage`): given the subscriptions an application wants, it
//! creates what is missing, renews each when a quarter of the lifetime Graph granted remains,
//! answers lifecycle notifications (`reauthorizationRequired`: reauthorize;
//! `subscriptionRemoved` or a 404: create again; `missed`: a [`KeeperEvent::Resync`] for the
//! application's delta query), patches a new encryption certificate when the one for an id
//! changes, and remembers the ids it keeps ([`StateStore`]) so a restart adopts them instead of
//! creating duplicates.
//!
//! Renewals are scheduled from the `expirationDateTime` Graph answered, never from the documented
//! limits (Graph may grant less than asked). Graph's rule that a subscription is not both
//! reauthorized and patched within 10 minutes is kept: a renewal due within 10 minutes of a
//! reauthorization waits (unless the expiry would come first), and a `reauthorizationRequired`
//! within 10 minutes of a renewal needs nothing (the renewal reauthorized).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use zeroize::Zeroizing;

use super::{GraphClient, Subscription, SubscriptionRequest};
use crate::clock::{Clock, SystemClock};
use crate::error::{GraphError, KeeperError};
use crate::keys::Certificate;
use crate::model::{ChangeNotification, LifecycleEvent};

mod desired;
mod event;
mod state;

pub use desired::DesiredSubscription;
pub use event::KeeperEvent;
pub use state::{FileState, KeptSubscription, MemoryState, StateStore};

/// Graph's rule: no reauthorize and PATCH of one subscription within this time of each other.
const REAUTHORIZE_GAP: Duration = Duration::from_secs(10 * 60);
/// After a failure, the entry is tried again this much later (Graph's own retries come first).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);
/// The longest the run loop sleeps between two passes.
const MAX_SLEEP: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Inner {
    kept: BTreeMap<String, KeptSubscription>,
    retry_at: BTreeMap<String, SystemTime>,
}

/// Keeps the desired subscriptions alive. See the [module](self) for what it does.
///
/// ```no_run
/// # async fn run(graph: msgraph_notify::subscription::GraphClient,
/// #              certificate: msgraph_notify::Certificate) -> Result<(), Box<dyn std::error::Error>> {
/// use msgraph_notify::subscription::{DesiredSubscription, FileState, Keeper};
/// let desired = DesiredSubscription::from_json(&std::fs::read_to_string("subscriptions.json")?)?;
/// let keeper = Keeper::new(graph, desired, FileState::new("subscription-state.json"))
///     .certificate("cert-2026", certificate)
///     .client_state("the receiver's clientState");
/// let (_lifecycle_tx, lifecycle_rx) = tokio::sync::mpsc::channel(64);
/// keeper.run(lifecycle_rx, std::future::pending(), |event| println!("{}", event.to_json())).await;
/// # Ok(()) }
/// ```
pub struct Keeper {
    graph: GraphClient,
    clock: Arc<dyn Clock>,
    desired: Vec<DesiredSubscription>,
    certificates: RwLock<BTreeMap<String, Certificate>>,
    client_state: Option<Zeroizing<String>>,
    store: Box<dyn StateStore>,
    inner: tokio::sync::Mutex<Inner>,
}

impl Keeper {
    /// A keeper of `desired` through `graph`, remembering in `store`, on the system clock.
    pub fn new(
        graph: GraphClient,
        desired: Vec<DesiredSubscription>,
        store: impl StateStore + 'static,
    ) -> Self {
        Keeper {
            graph,
            clock: Arc::new(SystemClock),
            desired,
            certificates: RwLock::new(BTreeMap::new()),
            client_state: None,
            store: Box::new(store),
            inner: tokio::sync::Mutex::new(Inner::default()),
        }
    }

    /// Another clock (a test's [`ManualClock`](crate::clock::ManualClock), shared with the
    /// emulator).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The certificate Graph encrypts for under `certificate_id` (the receiver's, whose key it
    /// holds).
    pub fn certificate(self, certificate_id: &str, certificate: Certificate) -> Self {
        self.set_certificate(certificate_id, certificate);
        self
    }

    /// Replaces the certificate of `certificate_id`: the next pass patches it onto every kept
    /// subscription that uses the id. Keep the old key in the receiver until notifications stop
    /// naming the old certificate.
    pub fn set_certificate(&self, certificate_id: &str, certificate: Certificate) {
        if let Ok(mut certificates) = self.certificates.write() {
            certificates.insert(certificate_id.to_owned(), certificate);
        }
    }

    /// The receiver's `clientState`, sent with each create.
    pub fn client_state(mut self, secret: &str) -> Self {
        self.client_state = Some(Zeroizing::new(secret.to_owned()));
        self
    }

    /// What is kept now.
    pub async fn kept(&self) -> Vec<KeptSubscription> {
        self.inner.lock().await.kept.values().cloned().collect()
    }

    /// Reads the state and adopts what it names: each kept subscription still desired is looked
    /// up (`GET`, one per subscription, never a list); one Graph no longer has is forgotten (the
    /// next pass creates it); one no longer desired is deleted.
    pub async fn start(&self) -> Vec<KeeperEvent> {
        let mut events = Vec::new();
        let loaded = match self.store.load() {
            Ok(loaded) => loaded,
            Err(error) => {
                events.push(KeeperEvent::Failed {
                    key: String::new(),
                    action: "adopt",
                    error,
                });
                return events;
            }
        };
        let mut inner = self.inner.lock().await;
        for kept in loaded {
            if !self.desired.iter().any(|d| d.key() == kept.key) {
                match self.graph.delete(&kept.id).await {
                    Ok(()) | Err(GraphError::Api { status: 404, .. }) => {
                        events.push(KeeperEvent::Deleted {
                            key: kept.key.clone(),
                            id: kept.id.clone(),
                        })
                    }
                    Err(e) => {
                        events.push(failed(&kept.key, "delete", e));
                        inner.kept.insert(kept.key.clone(), kept);
                    }
                }
                continue;
            }
            match self.graph.get(&kept.id).await {
                Ok(subscription) => {
                    let mut kept = kept;
                    kept.expiration_date_time = subscription.expiration_date_time.clone();
                    events.push(KeeperEvent::Adopted {
                        key: kept.key.clone(),
                        id: kept.id.clone(),
                        expiration: kept.expiration_date_time.clone(),
                    });
                    inner.kept.insert(kept.key.clone(), kept);
                }
                Err(GraphError::Api { status: 404, .. }) => {}
                Err(e) => {
                    // Graph is unreachable: keep the id and find out at the next renewal.
                    events.push(failed(&kept.key, "adopt", e));
                    inner.kept.insert(kept.key.clone(), kept);
                }
            }
        }
        self.save(&inner, &mut events);
        events
    }

    /// One pass: creates what is missing, patches changed certificates, renews what is due.
    pub async fn reconcile(&self) -> Vec<KeeperEvent> {
        let mut events = Vec::new();
        let mut inner = self.inner.lock().await;
        let now = self.clock.now();
        for desired in &self.desired {
            let key = desired.key();
            if inner.retry_at.get(&key).is_some_and(|at| *at > now) {
                continue;
            }
            let result = match inner.kept.get(&key).cloned() {
                None => self.create(desired, now).await.map(|kept| {
                    events.push(KeeperEvent::Created {
                        key: key.clone(),
                        id: kept.id.clone(),
                        expiration: kept.expiration_date_time.clone(),
                    });
                    Some(kept)
                }),
                Some(kept) => self.maintain(desired, kept, now, &mut events).await,
            };
            match result {
                Ok(Some(kept)) => {
                    inner.retry_at.remove(&key);
                    inner.kept.insert(key, kept);
                }
                Ok(None) => {}
                Err((action, error)) => {
                    inner
                        .retry_at
                        .insert(key.clone(), now + RETRY_AFTER_FAILURE);
                    events.push(KeeperEvent::Failed { key, action, error });
                }
            }
        }
        self.save(&inner, &mut events);
        events
    }

    /// Answers a lifecycle notification about a kept subscription (others are ignored).
    pub async fn on_lifecycle(&self, notification: &ChangeNotification) -> Vec<KeeperEvent> {
        let mut events = Vec::new();
        let Some(id) = notification.subscription_id.as_deref() else {
            return events;
        };
        let mut inner = self.inner.lock().await;
        let Some(kept) = inner.kept.values().find(|k| k.id == id).cloned() else {
            return events;
        };
        let Some(desired) = self.desired.iter().find(|d| d.key() == kept.key) else {
            return events;
        };
        let now = self.clock.now();
        let result = match &notification.lifecycle_event {
            Some(LifecycleEvent::ReauthorizationRequired) => {
                if since(now, kept.last_patch) < REAUTHORIZE_GAP {
                    Ok(None) // the renewal a moment ago reauthorized it
                } else {
                    match self.graph.reauthorize(&kept.id).await {
                        Ok(()) => {
                            events.push(KeeperEvent::Reauthorized {
                                id: kept.id.clone(),
                            });
                            let mut kept = kept.clone();
                            kept.last_reauthorization = Some(unix(now));
                            Ok(Some(kept))
                        }
                        Err(GraphError::Api { status: 404, .. }) => {
                            self.recreate(desired, &kept, "not found", now, &mut events)
                                .await
                        }
                        Err(e) => Err(("reauthorize", e.into())),
                    }
                }
            }
            Some(LifecycleEvent::SubscriptionRemoved) => {
                self.recreate(desired, &kept, "subscriptionRemoved", now, &mut events)
                    .await
            }
            Some(LifecycleEvent::Missed) => {
                events.push(KeeperEvent::Resync {
                    subscription_id: kept.id.clone(),
                    resource: kept.resource.clone(),
                });
                Ok(None)
            }
            _ => Ok(None),
        };
        match result {
            Ok(Some(updated)) => {
                inner.kept.insert(updated.key.clone(), updated);
            }
            Ok(None) => {}
            Err((action, error)) => {
                inner
                    .retry_at
                    .insert(kept.key.clone(), now + RETRY_AFTER_FAILURE);
                events.push(KeeperEvent::Failed {
                    key: kept.key.clone(),
                    action,
                    error,
                });
            }
        }
        self.save(&inner, &mut events);
        events
    }

    /// When the next pass has something to do: the earliest renewal or retry (or now, when an
    /// entry is not created yet).
    pub async fn next_due(&self) -> SystemTime {
        let inner = self.inner.lock().await;
        let now = self.clock.now();
        self.desired
            .iter()
            .map(|d| {
                let key = d.key();
                let due = inner.kept.get(&key).map_or(now, renew_due);
                inner.retry_at.get(&key).map_or(due, |r| due.max(*r))
            })
            .min()
            .unwrap_or(now + MAX_SLEEP)
    }

    /// Runs until `shutdown` completes: [`start`](Self::start), then a pass whenever one is due
    /// (at least once a minute), and each lifecycle notification received on `lifecycle` answered
    /// at once. Every event goes to `on_event`.
    pub async fn run(
        &self,
        mut lifecycle: tokio::sync::mpsc::Receiver<ChangeNotification>,
        shutdown: impl std::future::Future<Output = ()>,
        mut on_event: impl FnMut(KeeperEvent),
    ) {
        self.start().await.into_iter().for_each(&mut on_event);
        tokio::pin!(shutdown);
        loop {
            self.reconcile().await.into_iter().for_each(&mut on_event);
            let wait = self
                .next_due()
                .await
                .duration_since(self.clock.now())
                .unwrap_or_default()
                .clamp(Duration::from_millis(100), MAX_SLEEP);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                Some(notification) = lifecycle.recv() => {
                    self.on_lifecycle(&notification).await.into_iter().for_each(&mut on_event);
                }
                () = &mut shutdown => return,
            }
        }
    }

    fn request(&self, desired: &DesiredSubscription) -> Result<SubscriptionRequest, KeeperError> {
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

    fn thumbprint(&self, desired: &DesiredSubscription) -> Option<String> {
        self.certificates
            .read()
            .ok()?
            .get(&desired.encryption_certificate_id)
            .map(Certificate::thumbprint)
    }

    async fn create(
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
        })
    }

    async fn recreate(
        &self,
        desired: &DesiredSubscription,
        old: &KeptSubscription,
        reason: &'static str,
        now: SystemTime,
        events: &mut Vec<KeeperEvent>,
    ) -> Result<Option<KeptSubscription>, (&'static str, KeeperError)> {
        // Best effort: a removed subscription is usually gone already.
        let _ = self.graph.delete(&old.id).await;
        let kept = self.create(desired, now).await?;
        events.push(KeeperEvent::Recreated {
            key: kept.key.clone(),
            old_id: old.id.clone(),
            id: kept.id.clone(),
            reason,
        });
        Ok(Some(kept))
    }

    /// A kept subscription: rotate its certificate if it changed, renew it if due.
    async fn maintain(
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
                            id: kept.id.clone(),
                            certificate_id: desired.encryption_certificate_id.clone(),
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
        if now < renew_due(&kept) {
            return Ok(None);
        }
        let body = self
            .request(desired)
            .and_then(|r| r.renew_body(now).map_err(KeeperError::from))
            .map_err(|e| ("renew", e))?;
        match self.graph.patch(&kept.id, &body).await {
            Ok(subscription) => {
                events.push(KeeperEvent::Renewed {
                    id: kept.id.clone(),
                    expiration: subscription.expiration_date_time.clone(),
                });
                Ok(Some(KeptSubscription {
                    lifetime_seconds: granted(&subscription, now),
                    expiration_date_time: subscription.expiration_date_time,
                    last_patch: unix(now),
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

    fn save(&self, inner: &Inner, events: &mut Vec<KeeperEvent>) {
        let kept: Vec<KeptSubscription> = inner.kept.values().cloned().collect();
        if let Err(error) = self.store.save(&kept) {
            events.push(KeeperEvent::Failed {
                key: String::new(),
                action: "save",
                error,
            });
        }
    }
}

impl std::fmt::Debug for Keeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keeper")
            .field("graph", &self.graph)
            .field("desired", &self.desired)
            .finish_non_exhaustive()
    }
}

fn failed(key: &str, action: &'static str, error: GraphError) -> KeeperEvent {
    KeeperEvent::Failed {
        key: key.to_owned(),
        action,
        error: error.into(),
    }
}

/// When a quarter of the granted lifetime remains; no sooner than 10 minutes after a
/// reauthorization unless the expiry would come first (then a minute before it).
fn renew_due(kept: &KeptSubscription) -> SystemTime {
    let expiry =
        super::parse_date_time(&kept.expiration_date_time).unwrap_or(SystemTime::UNIX_EPOCH);
    let due = expiry
        - Duration::from_secs(kept.lifetime_seconds / 4).min(
            expiry
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        );
    match kept.last_reauthorization {
        Some(at) => {
            let gap_end = SystemTime::UNIX_EPOCH + Duration::from_secs(at) + REAUTHORIZE_GAP;
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

fn unix(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn since(now: SystemTime, unix_seconds: u64) -> Duration {
    now.duration_since(SystemTime::UNIX_EPOCH + Duration::from_secs(unix_seconds))
        .unwrap_or_default()
}
