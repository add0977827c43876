//! `serve --subscriptions FILE` (feature `manage`): the library's subscription keeper inside
//! `serve`. It creates the desired subscriptions once the listener is bound (so Graph's handshake
//! reaches this process), renews them, and answers the lifecycle notifications that arrive here;
//! a `missed` becomes a `resync` line in the output. With `--replay redis://` and no
//! `--subscription-state`, its state and a lease live in that Redis, so replicas keep each
//! subscription once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use msgraph_notify::ChangeNotification;
use msgraph_notify::subscription::{
    DesiredSubscription, FileState, Keeper, KeeperError, KeeperEvent, parse_date_time,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;

use crate::opts::{GraphOpts, ReceiverOpts};
use crate::{Fail, fail};

type Labels = Vec<(String, String)>;

/// The keeper's options of `serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct KeeperArgs {
    /// Keep these subscriptions alive: a JSON array of objects with Graph's property names
    /// (resource, changeType, notificationUrl, lifecycleNotificationUrl, includeResourceData,
    /// encryptionCertificateId, expirationMinutes). Needs one of the Graph credentials below.
    #[arg(long, value_name = "FILE", env = "MSGRAPH_NOTIFY_SUBSCRIPTIONS")]
    pub subscriptions: Option<String>,

    /// Where the keeper remembers the subscription ids (replaced atomically), so a restart adopts
    /// them. Default with --replay redis://: in that Redis, with a lease shared by replicas.
    #[arg(long, value_name = "FILE")]
    pub subscription_state: Option<String>,

    /// The application (client) id that creates the subscriptions; default: the one --app-id.
    #[arg(long, value_name = "ID", env = "MSGRAPH_NOTIFY_CLIENT_ID")]
    pub client_id: Option<String>,

    #[command(flatten)]
    pub graph: GraphOpts,
}

/// What serve's other rooms see of the keeper.
pub struct Kept {
    lifecycle: mpsc::Sender<ChangeNotification>,
    status: Arc<Status>,
    keeper: Arc<Keeper>,
}

impl Kept {
    /// Hands a lifecycle notification to the keeper. Called from a worker thread: when 1,024
    /// wait, the worker waits too (its queue fills and POSTs get 503), so none is dropped.
    pub fn lifecycle(&self, notification: &ChangeNotification) {
        let event = notification
            .lifecycle_event
            .as_ref()
            .map_or("other", |e| e.as_str());
        self.status
            .lifecycle
            .get_or_create(&vec![("event".to_owned(), event.to_owned())])
            .inc();
        if self.lifecycle.blocking_send(notification.clone()).is_err() {
            crate::log::warn(
                "the subscription keeper has stopped: a lifecycle notification was not answered",
            );
        }
    }

    /// A notification item arrived (for `last_notification_timestamp_seconds`).
    pub fn notified(&self) {
        let now = unix(SystemTime::now());
        self.status.last_notification.set(now);
    }

    /// `/readyz`: `Err(why)` when no desired subscription is alive, else `Ok(the ones not
    /// alive)`. A replica that is not the keeper (another holds the lease) is ready: it receives,
    /// and the keeper keeps.
    pub fn readiness(&self) -> Result<Vec<String>, String> {
        if !self.keeper.is_keeper() {
            return Ok(Vec::new());
        }
        self.status.readiness()
    }
}

struct Status {
    /// By desired key: the subscription id and its expiry.
    alive: Mutex<BTreeMap<String, (String, SystemTime)>>,
    desired: Vec<String>,
    expiry: Family<Labels, Gauge>,
    actions: Family<Labels, Counter>,
    failures: Family<Labels, Counter>,
    lifecycle: Family<Labels, Counter>,
    last_notification: Gauge,
}

impl Status {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "subscription_expiry_timestamp_seconds",
            "When each desired subscription expires (Unix seconds), as Graph granted",
            self.expiry.clone(),
        );
        registry.register(
            "subscription_actions",
            "What the subscription keeper did, by action (created, adopted, renewed, reauthorized, recreated, certificateRotated, resync, deleted, failed)",
            self.actions.clone(),
        );
        registry.register(
            "subscription_failures",
            "Failed keeper actions, by Graph's (or Entra's) error code",
            self.failures.clone(),
        );
        registry.register(
            "lifecycle_events",
            "Lifecycle notifications received, by event",
            self.lifecycle.clone(),
        );
        registry.register(
            "last_notification_timestamp_seconds",
            "When the last notification item arrived (Unix seconds)",
            self.last_notification.clone(),
        );
        // Every known action and lifecycle event at 0 from the start.
        for action in [
            "created",
            "adopted",
            "renewed",
            "reauthorized",
            "recreated",
            "certificateRotated",
            "resync",
            "released",
            "failed",
        ] {
            let _ = self
                .actions
                .get_or_create(&vec![("action".to_owned(), action.to_owned())]);
        }
        for event in ["reauthorizationRequired", "subscriptionRemoved", "missed"] {
            let _ = self
                .lifecycle
                .get_or_create(&vec![("event".to_owned(), event.to_owned())]);
        }
    }

    fn record(&self, event: &KeeperEvent) {
        let json = event.to_json();
        let action = json["keeper"]
            .as_str()
            .or(json["status"].as_str())
            .unwrap_or("other");
        self.actions
            .get_or_create(&vec![("action".to_owned(), action.to_owned())])
            .inc();
        let mut alive = self.alive.lock().unwrap_or_else(|p| p.into_inner());
        let set = |alive: &mut BTreeMap<String, (String, SystemTime)>,
                   key: &str,
                   id: &str,
                   expiration: &str| {
            if let Some(at) = parse_date_time(expiration) {
                alive.insert(key.to_owned(), (id.to_owned(), at));
                self.expiry
                    .get_or_create(&vec![("subscription".to_owned(), key.to_owned())])
                    .set(unix(at));
            }
        };
        match event {
            KeeperEvent::Created {
                key,
                id,
                expiration,
            }
            | KeeperEvent::Adopted {
                key,
                id,
                expiration,
            }
            | KeeperEvent::Recreated {
                key,
                id,
                expiration,
                ..
            }
            | KeeperEvent::Renewed {
                key,
                id,
                expiration,
            }
            | KeeperEvent::CertificateRotated {
                key,
                id,
                expiration,
                ..
            } => set(&mut alive, key, id, expiration),
            KeeperEvent::Failed { error, .. } => {
                let code = match error {
                    KeeperError::Graph(e) => e.code().unwrap_or("no_answer"),
                    _ => "local",
                };
                self.failures
                    .get_or_create(&vec![("code".to_owned(), code.to_owned())])
                    .inc();
            }
            _ => {}
        }
    }

    fn readiness(&self) -> Result<Vec<String>, String> {
        let now = SystemTime::now();
        let alive = self.alive.lock().unwrap_or_else(|p| p.into_inner());
        let dead: Vec<String> = self
            .desired
            .iter()
            .filter(|key| alive.get(*key).is_none_or(|(_, at)| *at <= now))
            .cloned()
            .collect();
        if dead.len() == self.desired.len() && !dead.is_empty() {
            Err(format!("no subscription alive: {}", dead.join("; ")))
        } else {
            Ok(dead)
        }
    }
}

/// Starts the keeper on its own thread when `--subscriptions` is given: `None` without it.
pub fn start(
    args: &KeeperArgs,
    receiver: &ReceiverOpts,
    replay_url: Option<&str>,
    registry: &mut Registry,
    stop: Arc<tokio::sync::Notify>,
) -> Result<Option<Kept>, Fail> {
    let Some(path) = &args.subscriptions else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail!("cannot read --subscriptions {path}: {e}"))?;
    let desired =
        DesiredSubscription::from_json(&text).map_err(|e| fail!("--subscriptions {path}: {e}"))?;
    let one = |values: &[String], option: &str| match values {
        [one] => Ok(one.clone()),
        _ => Err(fail!(
            "--subscriptions needs the application's {option}: give exactly one {option} (or \
             --client-id for the app)"
        )),
    };
    let tenant = one(&receiver.tokens.tenants, "--tenant")?;
    let client_id = match &args.client_id {
        Some(id) => id.clone(),
        None => one(&receiver.tokens.app_ids, "--app-id")?,
    };
    let graph = args.graph.client(Some(&tenant), Some(&client_id))?;
    let ring = receiver.keys.key_ring()?;
    let mut certificates = Vec::new();
    for entry in &desired {
        let id = &entry.encryption_certificate_id;
        let certificate = ring.certificate(id).ok_or_else(|| {
            fail!("--subscriptions {path}: no --key has the id {id} with a certificate")
        })?;
        certificates.push((id.clone(), certificate.clone()));
    }
    let keys: Vec<String> = desired.iter().map(DesiredSubscription::key).collect();
    let mut keeper = match (&args.subscription_state, replay_url) {
        (Some(state), _) => Keeper::new(graph, desired, FileState::new(state)),
        (None, Some(url)) => {
            let password = crate::secret::env("MSGRAPH_NOTIFY_REDIS_PASSWORD");
            let redis = Arc::new(
                msgraph_notify::subscription::RedisState::open_with_password(
                    url,
                    password.as_ref().map(|p| p.as_str()),
                )
                .map_err(|e| fail!("--subscriptions: {e}"))?,
            );
            Keeper::new(graph, desired, Arc::clone(&redis)).coordination(redis)
        }
        (None, None) => {
            return Err(fail!(
                "--subscriptions needs --subscription-state FILE (or --replay redis://…, which \
                 keeps the state in Redis): without it a restart would create every \
                 subscription again"
            ));
        }
    };
    for (id, certificate) in certificates {
        keeper = keeper.certificate(&id, certificate);
    }
    if let Some(secret) = receiver.client_state.secrets()?.first() {
        keeper = keeper.client_state(secret.expose());
    }
    let status = Arc::new(Status {
        alive: Mutex::new(BTreeMap::new()),
        desired: keys,
        expiry: Family::default(),
        actions: Family::default(),
        failures: Family::default(),
        lifecycle: Family::default(),
        last_notification: Gauge::default(),
    });
    status.register(registry);
    let (tx, rx) = mpsc::channel(1024);
    let recorder = Arc::clone(&status);
    let keeper = Arc::new(keeper);
    let running = Arc::clone(&keeper);
    // Its own thread and runtime: the keeper's state store, lease and hand-over calls (a file
    // synced to disk, Redis) and a client assertion signed in a PKCS#11 token block while they
    // last, and must not stall the connections' threads (one, by default on up to 7 CPUs).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("serve-keeper")
        .build()
        .map_err(|e| fail!("cannot start the subscription keeper's runtime: {e}"))?;
    std::thread::Builder::new()
        .name("serve-keeper".into())
        .spawn(move || {
            let kept = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                runtime.block_on(
                    running.run(rx, async move { stop.notified().await }, |event| {
                        recorder.record(&event);
                        report(&event);
                    }),
                );
            }));
            // A keeper that stopped on a bug must not go unnoticed while subscriptions expire.
            if kept.is_err() {
                tracing::error!(
                    "subscription keeper: stopped by a bug; subscriptions are no longer kept: \
                     restart serve"
                );
            }
        })
        .map_err(|e| fail!("cannot start the subscription keeper's thread: {e}"))?;
    Ok(Some(Kept {
        lifecycle: tx,
        status,
        keeper,
    }))
}

/// A resync goes to the output (the application runs its delta query); every event is logged
/// with its action, subscription and expiry as fields.
fn report(event: &KeeperEvent) {
    let json = event.to_json();
    if let KeeperEvent::Resync { .. } = event {
        outln!("{json}");
    }
    let field = |name: &str| json[name].as_str().unwrap_or("").to_owned();
    let action = json["keeper"].as_str().unwrap_or("resync");
    let (id, key, expiration) = (
        field("subscriptionId"),
        field("key"),
        field("expirationDateTime"),
    );
    match event {
        KeeperEvent::Failed { error, action, .. } => {
            let code = field("code");
            if error.is_transient() {
                tracing::warn!(
                    action,
                    key,
                    code,
                    "subscription keeper: {action} failed, retried later: {error}"
                );
            } else {
                tracing::error!(
                    action,
                    key,
                    code,
                    "subscription keeper: {action} failed: {error}"
                );
            }
        }
        _ => tracing::info!(
            action,
            subscription_id = id,
            key,
            expiration_date_time = expiration,
            "subscription keeper: {action}"
        ),
    }
}

fn unix(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
