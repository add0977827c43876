//! The subscription keeper (feature `manage`): given the subscriptions an application wants, it
//! creates what is missing, renews each when a quarter of the lifetime Graph granted remains,
//! answers lifecycle notifications (`reauthorizationRequired`: reauthorize;
//! `subscriptionRemoved` or a 404: create again; `missed`: a [`KeeperEvent::Resync`] for the
//! application's delta query), patches a new encryption certificate when the one for an id
//! changes, and remembers the ids it keeps ([`StateStore`]) so a restart adopts them instead of
//! creating duplicates.
//!
//! A kept subscription that is no longer desired is released (forgotten, left to expire), never
//! deleted by the keeper: during a rolling deploy, another replica's file may still want it.
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

use super::GraphClient;
use crate::clock::{Clock, SystemClock};
use crate::error::{GraphError, KeeperError};
use crate::keys::Certificate;
use crate::model::{ChangeNotification, LifecycleEvent};

mod actions;

use actions::renew_due;
mod desired;
mod event;
#[cfg(feature = "redis")]
mod redis;
mod state;

pub use desired::DesiredSubscription;
pub use event::KeeperEvent;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::{Coordination, RedisState};
pub use state::{FileState, KeptSubscription, MemoryState, StateStore};

/// Graph's rule: no reauthorize and PATCH of one subscription within this time of each other.
const REAUTHORIZE_GAP: Duration = Duration::from_secs(10 * 60);
/// After a failure, the entry is tried again this much later (Graph's own retries come first).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);
/// The longest the run loop sleeps between two passes (a pass with nothing due sends nothing to
/// Graph; with coordination it extends the lease, which must outlast this).
const MAX_SLEEP: Duration = Duration::from_secs(10);
/// How often a replica that is not the keeper looks whether the lease is free.
const FOLLOWER_POLL: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Inner {
    kept: BTreeMap<String, KeptSubscription>,
    retry_at: BTreeMap<String, SystemTime>,
    /// The state was read: until it is, nothing is created (a state that could not be read is
    /// not an empty one, and creating then would duplicate every subscription).
    loaded: bool,
    /// Keys whose create failed with no answer to tell whether Graph made it: the next create
    /// looks for it first.
    uncertain: std::collections::BTreeSet<String>,
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
    #[cfg(feature = "redis")]
    coordination: Option<Box<dyn Coordination>>,
    /// Whether this replica held the lease at its last look (always, without coordination).
    leader: std::sync::atomic::AtomicBool,
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
            #[cfg(feature = "redis")]
            coordination: None,
            leader: std::sync::atomic::AtomicBool::new(true),
            inner: tokio::sync::Mutex::new(Inner::default()),
        }
    }

    /// Replicas sharing one [`RedisState`]: only the holder of its lease keeps the subscriptions
    /// (the others hand it their lifecycle notifications), so each desired subscription exists
    /// once whatever the number of replicas. Give the same `RedisState` as the store.
    ///
    /// ```no_run
    /// # fn build(graph: msgraph_notify::subscription::GraphClient) -> Result<(), msgraph_notify::KeeperError> {
    /// use std::sync::Arc;
    /// use msgraph_notify::subscription::{Keeper, RedisState};
    /// let redis = Arc::new(RedisState::open("redis://redis.internal:6379/")?);
    /// let keeper = Keeper::new(graph, Vec::new(), redis.clone()).coordination(redis);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn coordination(mut self, coordination: impl Coordination + 'static) -> Self {
        self.coordination = Some(Box::new(coordination));
        self.leader
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self
    }

    /// Whether this replica keeps the subscriptions now (always without coordination).
    pub fn is_keeper(&self) -> bool {
        self.leader.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Holds the lease when replicas coordinate: whether this replica is the keeper, with the
    /// events of a takeover (adoption) and of the handed-over lifecycle notifications.
    async fn lead(&self) -> (bool, Vec<KeeperEvent>) {
        #[cfg(feature = "redis")]
        if let Some(coordination) = &self.coordination {
            use std::sync::atomic::Ordering::SeqCst;
            let mut events = Vec::new();
            let held = coordination.hold_lease();
            let leading = matches!(held, Ok(true));
            // Without the lease's word (Redis unreachable), act as a follower: never two keepers.
            let was = self.leader.swap(leading, SeqCst);
            if let Err(error) = held {
                events.push(KeeperEvent::Failed {
                    key: String::new(),
                    action: "lease",
                    error,
                });
            }
            if leading {
                if !was || !self.inner.lock().await.loaded {
                    events.extend(self.adopt().await);
                }
                match coordination.take_handed_over() {
                    Ok(handed) => {
                        for notification in &handed {
                            events.extend(self.answer(notification).await);
                        }
                    }
                    Err(error) => events.push(KeeperEvent::Failed {
                        key: String::new(),
                        action: "lease",
                        error,
                    }),
                }
            }
            return (leading, events);
        }
        (true, Vec::new())
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
    /// next pass creates it); one no longer desired is released. Until the state is read, no
    /// pass creates anything.
    ///
    /// With [`coordination`](Self::coordination), only the replica that gets the lease adopts.
    pub async fn start(&self) -> Vec<KeeperEvent> {
        #[cfg(feature = "redis")]
        if self.coordination.is_some() {
            return self.lead().await.1;
        }
        self.adopt().await
    }

    async fn adopt(&self) -> Vec<KeeperEvent> {
        let mut events = Vec::new();
        let loaded = match self.store.load() {
            Ok(loaded) => loaded,
            Err(error) => {
                // Not read is not empty: nothing is created until it is (the next pass retries).
                self.inner.lock().await.loaded = false;
                events.push(KeeperEvent::Failed {
                    key: String::new(),
                    action: "adopt",
                    error,
                });
                return events;
            }
        };
        let mut inner = self.inner.lock().await;
        inner.kept.clear();
        for kept in loaded {
            if !self.desired.iter().any(|d| d.key() == kept.key) {
                // No longer desired (or desired by another version of the file during a rolling
                // deploy): let go, never deleted here; Graph ends it at its expiry.
                events.push(KeeperEvent::Released {
                    key: kept.key.clone(),
                    id: kept.id.clone(),
                });
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
        inner.loaded = true;
        self.save(&inner, &mut events);
        events
    }

    /// One pass: creates what is missing, patches changed certificates, renews what is due (with
    /// coordination: only on the replica holding the lease, which also answers the lifecycle
    /// notifications handed over to it).
    pub async fn reconcile(&self) -> Vec<KeeperEvent> {
        let (leading, mut events) = self.lead().await;
        if leading {
            events.extend(self.pass().await);
        }
        events
    }

    async fn pass(&self) -> Vec<KeeperEvent> {
        let mut events = Vec::new();
        if !self.inner.lock().await.loaded {
            events.extend(self.adopt().await);
        }
        let mut inner = self.inner.lock().await;
        if !inner.loaded {
            return events;
        }
        let now = self.clock.now();
        for desired in &self.desired {
            let key = desired.key();
            if inner.retry_at.get(&key).is_some_and(|at| *at > now) {
                continue;
            }
            // The lease is extended before each entry's requests: a pass may outlast it.
            if !self.still_keeper() {
                break;
            }
            let result = match inner.kept.get(&key).cloned() {
                None => {
                    let uncertain = inner.uncertain.contains(&key);
                    self.create_or_find(desired, uncertain, now, &mut events)
                        .await
                        .map(Some)
                }
                Some(kept) => self.maintain(desired, kept, now, &mut events).await,
            };
            self.settle(&mut inner, &key, now, result, &mut events);
        }
        self.save(&inner, &mut events);
        events
    }

    /// Records an entry's result: the subscription kept, or the failure (tried again later; a
    /// recreate that failed forgets the removed subscription, so the next try creates it; a
    /// create with no answer is looked for before it is made again).
    fn settle(
        &self,
        inner: &mut Inner,
        key: &str,
        now: SystemTime,
        result: Result<Option<KeptSubscription>, (&'static str, KeeperError)>,
        events: &mut Vec<KeeperEvent>,
    ) {
        match result {
            Ok(Some(kept)) => {
                inner.retry_at.remove(key);
                inner.uncertain.remove(key);
                inner.kept.insert(key.to_owned(), kept);
            }
            Ok(None) => {}
            Err((action, error)) => {
                if matches!(action, "create" | "recreate") {
                    inner.kept.remove(key);
                    if ambiguous(&error) {
                        inner.uncertain.insert(key.to_owned());
                    }
                }
                inner
                    .retry_at
                    .insert(key.to_owned(), now + RETRY_AFTER_FAILURE);
                events.push(KeeperEvent::Failed {
                    key: key.to_owned(),
                    action,
                    error,
                });
            }
        }
    }

    /// Whether this replica still holds the lease (extending it); always without coordination.
    fn still_keeper(&self) -> bool {
        #[cfg(feature = "redis")]
        if let Some(coordination) = &self.coordination {
            let held = matches!(coordination.hold_lease(), Ok(true));
            self.leader.store(held, std::sync::atomic::Ordering::SeqCst);
            return held;
        }
        true
    }

    /// Answers a lifecycle notification about a kept subscription (others are ignored). With
    /// coordination, it is handed over to the keeper replica, which answers it at its next pass.
    pub async fn on_lifecycle(&self, notification: &ChangeNotification) -> Vec<KeeperEvent> {
        #[cfg(feature = "redis")]
        if let Some(coordination) = &self.coordination {
            return match coordination.hand_over(notification) {
                Ok(()) => Vec::new(),
                // Redis is down: the keeper answers what reached it itself.
                Err(_) if self.is_keeper() => self.answer(notification).await,
                Err(error) => vec![KeeperEvent::Failed {
                    key: String::new(),
                    action: "hand over",
                    error,
                }],
            };
        }
        self.answer(notification).await
    }

    async fn answer(&self, notification: &ChangeNotification) -> Vec<KeeperEvent> {
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
                        Err(e) => {
                            // Answered by a renewal at the next pass instead (a PATCH also
                            // reauthorizes): a failed answer must not let it be removed.
                            let mut pending = kept.clone();
                            pending.reauthorize_pending = true;
                            inner.kept.insert(pending.key.clone(), pending);
                            Err(("reauthorize", e.into()))
                        }
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
        let key = kept.key.clone();
        // A failed reauthorization is retried as a renewal after the failure wait (`settle`).
        self.settle(&mut inner, &key, now, result, &mut events);
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
    /// (at least every 10 s; a follower replica looks at the lease every 5 s), and each lifecycle notification received on `lifecycle` answered
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
            let wait = if self.is_keeper() {
                self.next_due()
                    .await
                    .duration_since(self.clock.now())
                    .unwrap_or_default()
                    .clamp(Duration::from_millis(100), MAX_SLEEP)
            } else {
                FOLLOWER_POLL
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                Some(notification) = lifecycle.recv() => {
                    self.on_lifecycle(&notification).await.into_iter().for_each(&mut on_event);
                }
                () = &mut shutdown => return,
            }
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

fn unix(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn since(now: SystemTime, unix_seconds: u64) -> Duration {
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(unix_seconds))
        .and_then(|then| now.duration_since(then).ok())
        .unwrap_or_default()
}

/// Whether a failed create may have been made by Graph all the same: no answer, or a server
/// error (the request may have been processed before it failed).
fn ambiguous(error: &KeeperError) -> bool {
    match error {
        KeeperError::Graph(GraphError::Http { .. }) => true,
        KeeperError::Graph(GraphError::Api { status, .. }) => matches!(status, 500 | 502 | 504),
        _ => false,
    }
}
