//! `consume --admin-listen`: `/healthz`, `/readyz` and `/metrics` (the listener of `serve`,
//! with its connection cap and timeouts), on a thread of their own beside the polling loop.
//!
//! Ready while the brokers answer, partitions are assigned (not during the group's join or a
//! rebalance that took them all) and no record waits on the replay store, the key or the blob
//! store. The metrics that mean what `serve`'s mean carry their names
//! (`msgraph_notify_items_total{status}`, `msgraph_notify_rejected_items_total{reason}`,
//! `msgraph_notify_private_key_operations_total`,
//! `msgraph_notify_certificate_expiry_timestamp_seconds`); `consume`'s own are the records
//! (`msgraph_notify_records_total{result}`), the partitions assigned and the waiting records.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use msgraph_notify::receiver::{Item, Outcome};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::Fail;
use crate::serve::{Endpoints, ItemMetrics, register_certificates, render};

/// How often the polling loop looks at the assignment.
const LOOK_EVERY: Duration = Duration::from_millis(500);
/// While the brokers are unreachable, how long one probe for them waits.
const PROBE: Duration = Duration::from_secs(1);

type Labels = Vec<(&'static str, String)>;

/// What the polling loop tells the admin endpoints, and the metrics.
pub struct Admin {
    registry: Registry,
    items: ItemMetrics,
    records: Family<Labels, Counter>,
    assigned_gauge: Gauge,
    waiting_records: Gauge,
    /// Partitions assigned to this member.
    assigned: AtomicUsize,
    /// librdkafka said all brokers are down; cleared by a record or a successful probe.
    brokers_down: AtomicBool,
    /// What a record waits on (`replay_store`, `key`, `payload`), while one does.
    waiting: Mutex<Option<&'static str>>,
    /// The last look at the assignment.
    looked: Mutex<Option<Instant>>,
}

impl Admin {
    /// Says the keys loaded (id, certificate, notAfter); the state and metrics; with `listen`,
    /// the admin endpoints served there from now on.
    pub fn start(
        listen: Option<SocketAddr>,
        ring: &msgraph_notify::KeyRing,
    ) -> Result<Arc<Admin>, Fail> {
        crate::log::info(&format!(
            "msgraph-notify consume: {}",
            crate::serve::describe_keys(ring)
        ));
        let mut registry = Registry::with_prefix("msgraph_notify");
        let items = ItemMetrics::register(&mut registry);
        register_certificates(&mut registry, ring);
        let records = Family::<Labels, Counter>::default();
        registry.register(
            "records",
            "Kafka records read, by result (processed: its items printed; refused: not a notification collection, over --max-body or empty)",
            records.clone(),
        );
        for result in ["processed", "refused"] {
            let _ = records.get_or_create(&vec![("result", result.to_owned())]);
        }
        let assigned_gauge = Gauge::default();
        registry.register(
            "assigned_partitions",
            "Partitions of the topic assigned to this member of the group",
            assigned_gauge.clone(),
        );
        let waiting_records = Gauge::default();
        registry.register(
            "waiting_records",
            "1 while a record waits, retried with back-off, for the replay store, the key or the blob store",
            waiting_records.clone(),
        );
        let admin = Arc::new(Admin {
            registry,
            items,
            records,
            assigned_gauge,
            waiting_records,
            assigned: AtomicUsize::new(0),
            brokers_down: AtomicBool::new(false),
            waiting: Mutex::new(None),
            looked: Mutex::new(None),
        });
        if let Some(address) = listen {
            crate::serve::listen_on_own_thread(address, "consume", Arc::clone(&admin) as _)?;
        }
        Ok(admin)
    }

    /// After each poll: a record proves the brokers answer; "all brokers down" says they do
    /// not; at most every [`LOOK_EVERY`], the assignment is read (a local call), and while the
    /// brokers are down they are probed (a metadata request, [`PROBE`] at most).
    pub fn polled<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        error: Option<&KafkaError>,
        record: bool,
    ) {
        if record {
            self.brokers_down.store(false, Ordering::Release);
        }
        if let Some(KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown)) = error {
            self.brokers_down.store(true, Ordering::Release);
        }
        {
            let mut looked = self.looked.lock().unwrap_or_else(|p| p.into_inner());
            if looked.is_some_and(|at| at.elapsed() < LOOK_EVERY) {
                return;
            }
            *looked = Some(Instant::now());
        }
        let assigned = consumer.assignment().map_or(0, |list| list.count());
        self.assigned.store(assigned, Ordering::Release);
        self.assigned_gauge
            .set(i64::try_from(assigned).unwrap_or(i64::MAX));
        if self.brokers_down.load(Ordering::Acquire) && consumer.fetch_metadata(None, PROBE).is_ok()
        {
            self.brokers_down.store(false, Ordering::Release);
        }
    }

    /// A record's items, printed.
    pub fn processed(&self, items: &[Item]) {
        self.records
            .get_or_create(&vec![("result", "processed".to_owned())])
            .inc();
        for item in items {
            self.items.record(item);
        }
        self.wait(None);
    }

    /// A record refused and skipped.
    pub fn refused(&self) {
        self.records
            .get_or_create(&vec![("result", "refused".to_owned())])
            .inc();
    }

    /// A record waits for what `items` could not reach (their first passing failure); `None`:
    /// nothing waits any more.
    pub fn waits_for(&self, items: &[Item]) {
        let on = items.iter().find_map(|item| match &item.outcome {
            Outcome::Rejected(r) if r.error.is_transient() => Some(r.error.label()),
            _ => None,
        });
        self.wait(on);
    }

    fn wait(&self, on: Option<&'static str>) {
        self.waiting_records.set(i64::from(on.is_some()));
        *self.waiting.lock().unwrap_or_else(|p| p.into_inner()) = on;
    }
}

impl Endpoints for Admin {
    fn readiness(&self) -> Result<String, String> {
        if self.brokers_down.load(Ordering::Acquire) {
            return Err("unavailable: brokers (all unreachable)\n".into());
        }
        if self.assigned.load(Ordering::Acquire) == 0 {
            return Err("joining: no partition assigned yet\n".into());
        }
        if let Some(on) = *self.waiting.lock().unwrap_or_else(|p| p.into_inner()) {
            return Err(format!("unavailable: {on} (a record waits for it)\n"));
        }
        Ok("ready\n".into())
    }

    fn metrics(&self) -> String {
        render(&self.registry)
    }
}
