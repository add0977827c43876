//! `consume`: read notification collections from a Kafka topic (Graph's Event Hubs delivery, or
//! the topic `serve --forward` writes), decrypt them as a trusted transport and print one JSON
//! line per item. At least once: offsets are committed only after the lines are flushed.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use msgraph_notify::Decryptor;
use msgraph_notify::offload::azure::AzureBlobStore;
use msgraph_notify::offload::{DEFAULT_CONTAINER, DEFAULT_MAX_PAYLOAD_BYTES, PayloadStore};
use msgraph_notify::receiver::{DEFAULT_MAX_BODY_BYTES, Item, Outcome, Receiver};
use msgraph_notify::replay::ReplayStore;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use deferred::Deferred;
use group::GroupLog;

use crate::opts::{ClientStateOpts, ItemLimit, KafkaOpts, KeyOpts, ReplayOpts};
use crate::retry::Backoff;
use crate::signal::Shutdown;
use crate::{Fail, fail};

mod admin;
mod batch;
mod deferred;
mod group;

/// The consumer, with the context that logs its group's rebalances.
type KafkaConsumer = BaseConsumer<GroupLog>;

/// Records between two commits at most (and [`COMMIT_EVERY`] at most between two).
const COMMIT_RECORDS: usize = 500;
/// Bytes of output held before they are written, at most (and one record's lines past it).
const COMMIT_BYTES: usize = 1 << 20;
/// The longest time printed lines wait for their offsets to be committed.
const COMMIT_EVERY: Duration = Duration::from_millis(200);
/// How long one poll waits for a record.
const POLL: Duration = Duration::from_millis(100);
/// The first pause before a record, or the recording of printed items, is retried.
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// librdkafka's prefetch queue, in KiB: with `--max-body`, what bounds memory.
const QUEUE_KIB: u32 = 32 * 1024;

/// Read Graph's notifications from a Kafka topic and decrypt them: Azure Event Hubs (Graph's
/// delivery for high volumes, through the hub's Kafka endpoint) or the topic `serve --forward`
/// writes.
///
/// The topic is a trusted transport: its records carry no validation tokens (Graph sends none
/// to Event Hubs; `serve --forward` checked them at the door), so none are required; clientState,
/// the key choice and the signature are checked as always. Prints one JSON line per item as
/// `decrypt` does (`status` also `validation` for Event Hubs' reachability message), with the
/// record's `partition` and `offset`. A notification over 1 MB, which Graph keeps in the
/// subscriber's blob storage (`additionalPayloadStorageId`), is read from it with
/// --blob-connection-string-env and decrypted like the others (its line names the blob);
/// without that option it is printed with `status` `offloaded` and the blob's name.
/// A record that cannot be read (not JSON, over --max-body, no value) is reported as one line
/// with `status` `refused` and skipped.
///
/// The group's join, each partition assignment and each revocation are logged on stderr. The
/// consumer is a static member of its group (Kafka's group.instance.id, --group-instance-id):
/// restarted with the same id within --session-timeout, it gets its partitions back at once,
/// without a rebalance of the group.
///
/// Offsets are committed only after the lines are flushed: a crash re-reads what was not
/// committed (at least once), and the replay store (--replay; Redis to survive restarts) turns
/// what was already printed into `duplicate` rejections. A record whose replay store, key or
/// blob store does not answer is retried, never skipped. On SIGTERM or SIGINT it commits what
/// was printed and exits 0. Memory: about 32 MiB of prefetched records; the
/// records of one batch decided in parallel (at most 64 records and 8 MiB, a record naming an
/// offloaded payload counted at --max-payload, 16 MiB; one record alone may be larger), each
/// item's plaintext and its line; and up to 1 MiB of output (plus one batch's lines) between two
/// commits.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    msgraph-notify consume --brokers 127.0.0.1:9092 --topic graph --group decrypt \\\n      \
    --key cert-2026=keys/key.pem --client-state-file /run/secrets/client-state --replay redis://127.0.0.1/0\n  \
    # Azure Event Hubs (Standard tier or above), the connection string in an environment variable:\n  \
    EVENTHUB_CS='Endpoint=sb://NS.servicebus.windows.net/;...' msgraph-notify consume \\\n      \
    --event-hubs-connection-string-env EVENTHUB_CS --topic HUB --group \\$Default --key keys/key.pem \\\n      \
    --blob-connection-string-env BLOB_CS   # the storage account of the subscription's blobStoreUrl")]
pub struct Args {
    /// The brokers, HOST:PORT[,HOST:PORT…]. With --event-hubs-connection-string-env, defaults to
    /// the namespace's Kafka endpoint (NAMESPACE.servicebus.windows.net:9093).
    #[arg(long, value_name = "HOST:PORT", env = "MSGRAPH_NOTIFY_BROKERS")]
    brokers: Option<String>,

    /// The topic (for Event Hubs: the hub's name).
    #[arg(long, value_name = "TOPIC", env = "MSGRAPH_NOTIFY_TOPIC")]
    topic: String,

    /// The consumer group; members of one group share the partitions.
    #[arg(long, value_name = "GROUP", env = "MSGRAPH_NOTIFY_GROUP")]
    group: String,

    /// This member's static id in the group (Kafka's group.instance.id): a consumer restarted
    /// with the same id within --session-timeout takes its partitions back at once, without a
    /// rebalance. Default: msgraph-notify-HOST-GROUP (the host name, stable across restarts;
    /// a pod's name in Kubernetes: use a StatefulSet). Two consumers of one group on one host
    /// need distinct ids: a second member with the same id fences the first out (it stops with
    /// an error). An empty value makes the consumer a dynamic member (it leaves the group when
    /// it stops).
    #[arg(long, value_name = "ID", env = "MSGRAPH_NOTIFY_GROUP_INSTANCE_ID")]
    group_instance_id: Option<String>,

    #[command(flatten)]
    kafka: KafkaOpts,

    /// Read offloaded payloads (notifications over 1 MB, `additionalPayloadStorageId`) from the
    /// Azure Storage account whose connection string is held in this environment variable: the
    /// account of the subscription's `blobStoreUrl` (AccountName and AccountKey, or a
    /// SharedAccessSignature with read rights; `UseDevelopmentStorage=true` for Azurite). Never
    /// give the connection string itself on the command line.
    #[arg(long, value_name = "VAR")]
    blob_connection_string_env: Option<String>,

    /// The blob container of offloaded payloads.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_CONTAINER, env = "MSGRAPH_NOTIFY_BLOB_CONTAINER")]
    blob_container: String,

    /// How long one offloaded payload may take to read, retries included, in seconds; past it
    /// the record is retried like one whose blob store is out of reach.
    /// At most 120: the record's fetches run between two polls of the group, and Kafka's
    /// max.poll.interval.ms (300 s) ends the membership of a member that polls no more.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=120), env = "MSGRAPH_NOTIFY_BLOB_TIMEOUT")]
    blob_timeout: u64,

    /// The most bytes of offloaded payloads read for one record, its items together (one blob at
    /// a time); an item whose blob is larger than what is left is rejected without being read
    /// whole. At most 1 GiB.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_PAYLOAD_BYTES as u64, value_parser = clap::value_parser!(u64).range(1..=(1 << 30)), env = "MSGRAPH_NOTIFY_MAX_PAYLOAD")]
    max_payload: u64,

    #[command(flatten)]
    keys: KeyOpts,

    #[command(flatten)]
    client_state: ClientStateOpts,

    #[command(flatten)]
    items: ItemLimit,

    /// The largest record accepted, in bytes; larger ones are refused and skipped.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES, env = "MSGRAPH_NOTIFY_MAX_BODY")]
    max_body: usize,

    /// Seconds without a heartbeat after which the group gives this member's partitions to
    /// another (Kafka's session.timeout.ms; Event Hubs accepts 6 to 300); also how long a
    /// stopped static member (--group-instance-id) keeps its partitions waiting for its
    /// restart. The broker bounds it (group.min/max.session.timeout.ms, 6 s to 30 min by
    /// default).
    #[arg(long, value_name = "SECS", default_value_t = 45, value_parser = clap::value_parser!(u32).range(1..=3600), env = "MSGRAPH_NOTIFY_SESSION_TIMEOUT")]
    session_timeout: u32,

    #[command(flatten)]
    replay: ReplayOpts,

    #[command(flatten)]
    log: crate::log::LogOpts,

    /// Serve `GET /healthz`, `/readyz` (ready while the brokers answer, partitions are assigned
    /// and no record waits on the replay store, the key or the blob store) and `/metrics`
    /// (Prometheus) on this address, e.g. 127.0.0.1:9090.
    #[arg(long, value_name = "ADDR", env = "MSGRAPH_NOTIFY_ADMIN_LISTEN", value_parser = crate::opts::socket_addr)]
    admin_listen: Option<std::net::SocketAddr>,
}

pub fn run(args: Args) -> Result<ExitCode, Fail> {
    crate::log::init(args.log.log_format);
    // Registered before anything else, so a signal during start-up is not lost to the default
    // action (which would end the process without committing).
    let stop = Arc::new(AtomicBool::new(false));
    Shutdown::set_on_signal(Arc::clone(&stop))?;

    let ring = args.keys.key_ring()?;
    if ring.is_empty() {
        crate::opts::warn_no_key();
    }
    let client_states = args.client_state.secrets()?;
    if client_states.is_empty() {
        crate::log::warn(
            "no clientState secret is configured: items are accepted whatever clientState they carry",
        );
    }
    // One replay memory per consumer group (its own Redis key prefix).
    let replay = args.replay.store_for_group(&args.group)?;
    let deferred = replay.store.map(|inner| Arc::new(Deferred::new(inner)));
    let mut builder = Receiver::builder(Decryptor::new(ring))
        .trusted_transport_only()
        .max_body_bytes(args.max_body)
        .max_items(args.items.get())
        .parallel(true);
    for secret in &client_states {
        builder = builder.client_state(secret.expose());
    }
    if let Some(store) = &deferred {
        builder = builder.replay_store(Arc::clone(store) as Arc<dyn ReplayStore>);
    }
    if let Some(store) = blob_store(&args)? {
        builder = builder
            .payload_store(store)
            .max_payload_bytes(usize::try_from(args.max_payload).unwrap_or(usize::MAX));
    }
    let receiver = builder.build().map_err(|e| fail!("{e}"))?;
    let admin = admin::Admin::start(args.admin_listen, receiver.decryptor().keys())?;

    let instance = group::instance_id(args.group_instance_id.as_deref(), &args.group)?;
    let consumer = connect(&args, instance.as_deref())?;
    consumer
        .context()
        .joining(&args.topic, args.session_timeout);
    consumer
        .subscribe(&[&args.topic])
        .map_err(|e| fail!("cannot subscribe to {}: {e}", args.topic))?;

    let mut run = Run {
        args: &args,
        receiver: &receiver,
        deferred: deferred.as_deref(),
        consumer: &consumer,
        admin: &admin,
        out: std::io::stdout().lock(),
        buffer: Vec::new(),
        offsets: Vec::new(),
        uncommitted: 0,
        since: Instant::now(),
        records: 0,
        items: 0,
    };
    let result = run.poll_until(&stop);
    // Whatever stopped the loop, what was printed is committed (unless the output failed).
    let committed = match &result {
        Ok(()) => run.commit(&stop, CommitMode::Sync),
        Err(_) => Ok(()),
    };
    crate::log::info(&format!(
        "msgraph-notify consume: stopped after {} records, {} items",
        run.records, run.items
    ));
    result.and(committed)?;
    Ok(ExitCode::SUCCESS)
}

/// The blob store of --blob-connection-string-env, if given.
fn blob_store(args: &Args) -> Result<Option<Arc<dyn PayloadStore>>, Fail> {
    let Some(var) = &args.blob_connection_string_env else {
        return Ok(None);
    };
    let connection_string = crate::secret::env_named_by("--blob-connection-string-env", var)?;
    let store = AzureBlobStore::from_connection_string(&connection_string)
        .and_then(|s| s.container(args.blob_container.as_str()))
        .and_then(|s| s.timeout(Duration::from_secs(args.blob_timeout)))
        .map_err(|e| fail!("--blob-connection-string-env {var}: {e}"))?;
    crate::log::info(&format!("offloaded payloads are read from {store:?}"));
    Ok(Some(Arc::new(store)))
}

fn connect(args: &Args, instance: Option<&str>) -> Result<KafkaConsumer, Fail> {
    let mut config = ClientConfig::new();
    let brokers =
        args.kafka
            .configure(&mut config, args.brokers.as_deref(), "--brokers HOST:PORT")?;
    if let Some(id) = instance {
        config.set("group.instance.id", id);
    }
    // A record over --max-body is fetched (and refused) whole: let the fetch hold it.
    let fetch_max = args
        .max_body
        .saturating_add(64 * 1024)
        .clamp(1 << 20, 1 << 30);
    config
        .set("bootstrap.servers", &brokers)
        .set("group.id", &args.group)
        .set(
            "session.timeout.ms",
            (u64::from(args.session_timeout) * 1000).to_string(),
        )
        // A third of the session, at most Kafka's default 3 s: a member hears of a rebalance
        // through its heartbeat.
        .set(
            "heartbeat.interval.ms",
            (u64::from(args.session_timeout) * 1000 / 3)
                .clamp(100, 3000)
                .to_string(),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("queued.max.messages.kbytes", QUEUE_KIB.to_string())
        .set("fetch.message.max.bytes", fetch_max.to_string())
        .set(
            "receive.message.max.bytes",
            fetch_max.saturating_mul(2).max(100_000_000).to_string(),
        );
    // The configuration holds the connection string or password: never printed.
    config
        .create_with_context(GroupLog::new(&args.group, instance))
        .map_err(|e| {
            fail!(
                "cannot create the Kafka consumer for {brokers} ({}): {e}",
                args.kafka.describe()
            )
        })
}

struct Run<'a, W: Write> {
    args: &'a Args,
    receiver: &'a Receiver,
    deferred: Option<&'a Deferred>,
    consumer: &'a KafkaConsumer,
    admin: &'a admin::Admin,
    out: W,
    /// Lines not yet written: they leave the process only in [`Run::commit`], so that no line
    /// is out before its items are recorded right after (a `BufWriter` would write when full).
    buffer: Vec<u8>,
    /// (partition, next offset) of the last record printed from each partition still assigned,
    /// kept across commits: each commit names them all, so a commit that failed is made good by
    /// the next one.
    offsets: Vec<(i32, i64)>,
    uncommitted: usize,
    since: Instant,
    records: u64,
    items: u64,
}

impl<W: Write> Run<'_, W> {
    fn poll_until(&mut self, stop: &AtomicBool) -> Result<(), Fail> {
        let warn_kafka = crate::log::RateLimited::new();
        let consumer = self.consumer;
        while !stop.load(Ordering::Acquire) {
            // What the client has already fetched, up to a batch, after one wait for the first.
            let (mut messages, mut bytes, mut wait) = (Vec::new(), 0, POLL);
            while messages.len() < batch::RECORDS && bytes < batch::BYTES {
                let polled = consumer.poll(wait);
                let error = polled.as_ref().and_then(|p| p.as_ref().err());
                self.admin
                    .polled(consumer, error, matches!(polled, Some(Ok(_))));
                match polled {
                    None => break,
                    Some(Err(e)) => {
                        if let Some((code, reason)) = consumer.client().fatal_error() {
                            return Err(fatal(code, &reason));
                        }
                        warn_kafka.warn(&format!("Kafka: {e}"));
                        break;
                    }
                    Some(Ok(message)) => {
                        let max_payload =
                            usize::try_from(self.args.max_payload).unwrap_or(usize::MAX);
                        bytes += batch::weight(message.payload(), max_payload);
                        messages.push(message);
                        wait = Duration::ZERO;
                    }
                }
            }
            let records: Vec<batch::Record<'_>> = messages
                .iter()
                .map(|m| batch::Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    payload: m.payload(),
                })
                .collect();
            match batch::decide(self.receiver, self.deferred, &records, self.args.max_body) {
                Some(decided) => {
                    for (record, decided) in records.iter().zip(decided) {
                        self.print(record, decided);
                    }
                }
                // A dependency did not answer: the records one at a time, each retried.
                None => {
                    for record in &records {
                        let Some(decided) = self.decide(record, stop) else {
                            // Stopped while the replay store was down: not printed, not committed.
                            return Ok(());
                        };
                        self.print(record, decided);
                    }
                }
            }
            if self.uncommitted >= COMMIT_RECORDS
                || self.buffer.len() >= COMMIT_BYTES
                || (self.uncommitted > 0 && self.since.elapsed() >= COMMIT_EVERY)
            {
                self.commit(stop, CommitMode::Async)?;
            }
        }
        Ok(())
    }

    /// A decided record's lines into the output, its offset to be committed.
    fn print(&mut self, record: &batch::Record<'_>, decided: batch::Decided) {
        let (partition, offset) = (record.partition, record.offset);
        if let Some(reason) = &decided.refused {
            crate::log::warn(&format!(
                "record refused (partition {partition}, offset {offset}): {reason}"
            ));
            self.admin.refused();
        } else {
            self.admin.processed(&decided.items);
        }
        self.buffer.extend_from_slice(&decided.lines.bytes);
        self.items += decided.items.len() as u64;
        self.records += 1;
        match self.offsets.iter_mut().find(|(p, _)| *p == partition) {
            Some(entry) => entry.1 = offset + 1,
            None => self.offsets.push((partition, offset + 1)),
        }
        self.uncommitted += 1;
    }

    /// One record, retried until it can be finished; `None` when stopped first.
    fn decide(&mut self, record: &batch::Record<'_>, stop: &AtomicBool) -> Option<batch::Decided> {
        let mut backoff = Backoff::new(RETRY_FIRST);
        loop {
            let before = self.deferred.map_or(0, |d| d.pending().len());
            let waiting = match batch::decide_one(self.receiver, record, self.args.max_body) {
                Ok(decided) => return Some(decided),
                Err(items) => items,
            };
            self.admin.waits_for(&waiting);
            let why = waiting
                .iter()
                .find_map(|item| match &item.outcome {
                    Outcome::Rejected(r) if r.error.is_transient() => Some(r.error.to_string()),
                    _ => None,
                })
                .unwrap_or_default();
            // The replay store, the key or the blob store did not answer: print nothing of this
            // record (its decrypted items are forgotten, to be decrypted again), wait and retry;
            // never skip it.
            if let Some(d) = self.deferred {
                d.pending().truncate(before);
            }
            crate::log::warn(&format!(
                "the replay store, the key or the blob store is unavailable ({why}); retrying the \
                 record (partition {}, offset {})",
                record.partition, record.offset
            ));
            if backoff.sleep_unless(stop) {
                return None;
            }
        }
    }

    /// Writes and flushes the output, records the printed items in the replay store, then
    /// commits the offsets: in that order, so nothing is committed before it is printed. A crash
    /// between the write and the recording (one write and one store round trip) would print
    /// those items again after the restart: the one window of at-least-once output.
    ///
    /// While running, the commit is `Async`: decrypting goes on while the broker answers. A
    /// failed one is reported by librdkafka's own log (`COMMITFAIL`, on stderr) and made good by
    /// the next, which names every assigned partition's last printed offset again; a retried
    /// older commit landing after a newer one can only make records be read again, never
    /// skipped. The last, on stopping, is `Sync`: the process exits once the broker has the
    /// offsets (or said why not).
    fn commit(&mut self, stop: &AtomicBool, mode: CommitMode) -> Result<(), Fail> {
        self.out
            .write_all(&self.buffer)
            .and_then(|()| self.out.flush())
            .map_err(|e| fail!("cannot write the output: {e}"))?;
        // The lines hold decrypted resources: wiped, not only forgotten.
        zeroize::Zeroize::zeroize(self.buffer.as_mut_slice());
        self.buffer.clear();
        if let Some(d) = self.deferred {
            let mut backoff = Backoff::new(RETRY_FIRST);
            while let Err(e) = d.record() {
                if stop.load(Ordering::Acquire) {
                    // Stopping while the store is down: commit nothing. The records are read
                    // again after the restart and their items, printed but not recorded, are
                    // printed again (at least once, never lost).
                    crate::log::warn(&format!(
                        "stopping while the replay store cannot record printed items ({e}): \
                         their offsets are not committed; they will be printed again"
                    ));
                    self.offsets.clear();
                    return Ok(());
                }
                crate::log::warn(&format!(
                    "cannot record printed items in the replay store: {e}; retrying"
                ));
                backoff.sleep_unless(stop);
            }
        }
        // Only the partitions still assigned: a revoked one's new owner reads from the last
        // commit (the replay store reports what was printed here as duplicates).
        if let Ok(assigned) = self.consumer.assignment() {
            let topic = &self.args.topic;
            self.offsets
                .retain(|&(partition, _)| assigned.find_partition(topic, partition).is_some());
        }
        if self.offsets.is_empty() {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for &(partition, next) in &self.offsets {
            list.add_partition_offset(&self.args.topic, partition, Offset::Offset(next))
                .map_err(|e| fail!("cannot list offsets: {e}"))?;
        }
        if let Err(e) = self.consumer.commit(&list, mode) {
            crate::log::warn(&format!(
                "committing offsets failed: {e}; the next commit names them again (on a restart \
                 before it, the records since the last commit are read again)"
            ));
        }
        self.uncommitted = 0;
        self.since = Instant::now();
        Ok(())
    }
}

/// The error `consume` stops with when librdkafka reports a fatal error (the consumer cannot go
/// on; a restart makes a new one).
fn fatal(code: RDKafkaErrorCode, reason: &str) -> Fail {
    let hint = if code == RDKafkaErrorCode::FencedInstanceId {
        ": another consumer of the group uses the same --group-instance-id; give each its own"
    } else {
        "; restart the consumer"
    };
    fail!("Kafka: fatal error ({code}): {reason}{hint}")
}

/// An item that failed for a passing reason, not for what it is: the replay store could not
/// check it, the key could not be used (a PKCS#11 token removed, a vault unreachable), or its
/// offloaded payload could not be read (the storage account out of reach). Its record is
/// retried, never skipped.
///
/// The policy is [`msgraph_notify::Error::is_transient`], the same as `serve`'s (a trusted transport checks no
/// validation tokens, so the signing keys never hold a record up here).
fn unchecked(item: &Item) -> bool {
    matches!(&item.outcome, Outcome::Rejected(r) if r.error.is_transient())
}
