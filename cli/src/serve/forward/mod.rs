//! `serve --forward kafka://HOST:PORT/TOPIC`: the webhook as a thin, safe ingress. Each POST is
//! screened while its validation tokens are valid ([`Receiver::screen`]: size, JSON, clientState,
//! the tokens that must cover each encrypted item), then what passed is produced to the topic
//! with `acks=all` from an idempotent producer, and only then answered 202. A broker that cannot
//! take it within Graph's 3-second budget gets the POST answered 503, so Graph retries and
//! nothing acknowledged is lost. Like any POST, a forwarded one is answered 503 while the signing
//! keys are not loaded, and when an item could not be screened for a passing reason
//! ([`Error::is_transient`]). `msgraph-notify consume` decrypts the topic.
//!
//! The brokers are reached as `consume` reaches them ([`KafkaOpts`]: Event Hubs, TLS, SASL). A
//! producer that librdkafka declares failed for good (a fatal error: the broker lost the
//! idempotent producer's state, its epoch was fenced) is replaced by a new one, said in a
//! warning; the POST that met it is answered 503 and Graph's retry goes through the new one. So
//! is a producer that has had nothing acknowledged for [`STUCK_AFTER`] while POSTs kept failing:
//! a broker restarted without its state (tansu's memory storage, a wiped volume) leaves
//! librdkafka's idempotent producer waiting for ever without a fatal error. A replaced producer's
//! unsent records are dropped: their POSTs were answered 503, and Graph sends them again.
//! Items carrying `additionalPayloadStorageId` (Graph offloads large payloads to blob storage
//! only for Event Hubs deliveries) are not forwarded: each is reported on stdout as rejected and
//! the rest of the body is forwarded.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use msgraph_notify::Error;
use msgraph_notify::receiver::{Outcome, Receiver};
use msgraph_notify::token::fetch::KeyFetcher;
use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer as Future, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::opts::{KafkaLog, KafkaOpts};

use offloaded::without_offloaded;

mod offloaded;
use crate::{Fail, fail};

/// How long a POST may wait for the broker's acknowledgement, from its arrival: under Graph's
/// 3 seconds, with room for the answer to travel.
pub const FORWARD_BUDGET: Duration = Duration::from_millis(2500);

/// How long a producer may go without an acknowledgement, POSTs failing, before it is replaced
/// by a new one. A broker that is down meanwhile costs a new client every so often, nothing else.
const STUCK_AFTER: Duration = Duration::from_secs(10);

/// Kafka's default largest record batch a broker takes (message.max.bytes: 1 MiB plus the
/// 12 bytes of the log's offset and size fields).
const BROKER_MESSAGE_MAX_BYTES: usize = 1_048_588;
/// What a record batch of one record adds to the record's value, at most: the batch header
/// (61 bytes) and the record's own header (length, attributes, timestamp and offset deltas,
/// key length, value length and header count, as varints: 23 bytes at most).
const RECORD_OVERHEAD: usize = 61 + 23;
/// `--max-body`'s default under `--forward`: the largest body that still fits, as one record, in
/// a broker's default message.max.bytes.
pub const FORWARD_MAX_BODY: usize = BROKER_MESSAGE_MAX_BYTES - RECORD_OVERHEAD;

/// `serve`'s forwarding options.
#[derive(clap::Args, Debug, Clone)]
pub struct ForwardOpts {
    /// Hand each POST to this Kafka topic instead of decrypting it here:
    /// kafka://HOST:PORT[,HOST:PORT…]/TOPIC (kafka:///HUB with --event-hubs-connection-string-env:
    /// the namespace's endpoint). A POST is answered 202 only once the brokers acknowledged it
    /// (acks=all, idempotent producer), 503 when they cannot within 2.5 s. Validation tokens are
    /// checked here, while they are valid; only items they cover are forwarded, and no item
    /// with additionalPayloadStorageId (Graph offloads payloads only for Event Hubs). Decrypt the
    /// topic with `msgraph-notify consume`, giving it at least this --max-body and --max-items.
    /// --max-body defaults here to 1,048,504 bytes: a broker's default message.max.bytes
    /// (1,048,588) less a one-record batch's overhead (84 bytes); a topic that takes larger
    /// messages allows a larger --max-body, and a body the broker refuses is answered 503.
    #[arg(
        long,
        value_name = "kafka://HOST:PORT/TOPIC",
        env = "MSGRAPH_NOTIFY_FORWARD"
    )]
    pub forward: Option<String>,

    /// How the producer connects (the same options as `consume`'s).
    #[command(flatten)]
    pub kafka: KafkaOpts,
}

/// The producer's context: librdkafka's warnings and errors (a broker out of reach, a TLS
/// handshake or a SASL login that fails, a fatal error) logged on stderr.
pub struct ProducerLog(KafkaLog);

impl ClientContext for ProducerLog {
    fn log(&self, level: RDKafkaLogLevel, _: &str, message: &str) {
        self.0.line(level, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.0.error(&error, reason);
    }
}

/// The producer, with its logging context.
type FutureProducer = Future<ProducerLog>;

/// A new producer from `config`.
fn create(config: &ClientConfig) -> rdkafka::error::KafkaResult<FutureProducer> {
    config.create_with_context(ProducerLog(KafkaLog::new("--forward: ")))
}

/// A configured forwarder.
pub struct Forward {
    /// The producer in use; replaced after a fatal error.
    producer: RwLock<Arc<FutureProducer>>,
    /// What makes a new producer.
    config: ClientConfig,
    topic: String,
    receiver: Arc<Receiver>,
    fetcher: Option<Arc<KeyFetcher>>,
    /// Producers replaced, since start.
    replaced: AtomicU64,
    /// Since when sends have failed without one success, if they do.
    failing_since: Mutex<Option<Instant>>,
}

/// What a forwarded POST is answered.
pub enum Forwarded {
    /// Handed on (or nothing in it to hand on): 202.
    Accepted,
    /// The body as a whole is unusable (not a collection, too many items): 400.
    Refused(Error),
    /// The brokers did not acknowledge in time: 503, Graph retries.
    Unavailable(String),
}

/// `kafka://HOST:PORT[,HOST:PORT…]/TOPIC` → (brokers, topic); `kafka:///TOPIC` → (None, topic),
/// for the brokers of an Event Hubs connection string.
pub fn parse_target(target: &str) -> Result<(Option<String>, String), Fail> {
    let rest = target
        .strip_prefix("kafka://")
        .ok_or_else(|| fail!("--forward {target:?}: expected kafka://HOST:PORT/TOPIC"))?;
    let (brokers, topic) = rest
        .split_once('/')
        .filter(|(_, t)| !t.is_empty() && !t.contains('/'))
        .ok_or_else(|| fail!("--forward {target:?}: expected kafka://HOST:PORT/TOPIC"))?;
    let brokers = (!brokers.is_empty()).then(|| brokers.to_owned());
    Ok((brokers, topic.to_owned()))
}

impl Forward {
    /// A producer for `opts`' target, bodies up to `max_body` bytes.
    pub fn new(
        opts: &ForwardOpts,
        target: &str,
        max_body: usize,
        receiver: Arc<Receiver>,
        fetcher: Option<Arc<KeyFetcher>>,
    ) -> Result<Forward, Fail> {
        let (brokers, topic) = parse_target(target)?;
        let mut config = ClientConfig::new();
        let brokers = opts.kafka.configure(
            &mut config,
            brokers.as_deref(),
            "--forward kafka://HOST:PORT/TOPIC",
        )?;
        config
            .set("bootstrap.servers", &brokers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            // Sent at once: a POST waits for its own acknowledgement.
            .set("linger.ms", "0")
            .set("message.timeout.ms", FORWARD_BUDGET.as_millis().to_string())
            // A body up to --max-body, plus the record's overhead.
            .set(
                "message.max.bytes",
                max_body
                    .saturating_add(64 * 1024)
                    .clamp(1 << 20, 1 << 30)
                    .to_string(),
            );
        // The configuration holds the connection string or password: never printed.
        let producer = create(&config).map_err(|e| {
            fail!(
                "--forward: cannot create the Kafka producer for {brokers} ({}): {e}",
                opts.kafka.describe()
            )
        })?;
        crate::log::info(&format!(
            "msgraph-notify serve: forwarding to topic {topic} on {brokers} ({})",
            opts.kafka.describe()
        ));
        Ok(Forward {
            producer: RwLock::new(Arc::new(producer)),
            config,
            topic,
            receiver,
            fetcher,
            replaced: AtomicU64::new(0),
            failing_since: Mutex::new(None),
        })
    }

    /// Producers replaced, since start.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn replaced(&self) -> u64 {
        self.replaced.load(Ordering::Relaxed)
    }

    /// The producer to send with: the one in use, or a new one when it has a fatal error.
    fn producer(&self) -> Arc<FutureProducer> {
        let current = match self.producer.read() {
            Ok(p) => Arc::clone(&p),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        match current.client().fatal_error() {
            None => current,
            Some((code, reason)) => self.replace(
                &current,
                &format!("it failed for good (librdkafka's fatal error {code}: {reason})"),
            ),
        }
    }

    /// Replaces `current` by a new producer (unless another POST did already), saying `why`;
    /// returns the producer in use after.
    fn replace(&self, current: &Arc<FutureProducer>, why: &str) -> Arc<FutureProducer> {
        let mut slot = match self.producer.write() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !Arc::ptr_eq(&slot, current) {
            return Arc::clone(&slot);
        }
        match create(&self.config) {
            Ok(fresh) => {
                crate::log::warn(&format!(
                    "--forward: the Kafka producer is replaced by a new one: {why}"
                ));
                let old = std::mem::replace(&mut *slot, Arc::new(fresh));
                self.replaced.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut failing) = self.failing_since.lock() {
                    *failing = None;
                }
                retire(old);
                Arc::clone(&slot)
            }
            Err(e) => {
                crate::log::warn(&format!(
                    "--forward: the Kafka producer should be replaced ({why}) but a new one \
                     cannot be made: {e}"
                ));
                Arc::clone(current)
            }
        }
    }

    /// Notes the outcome of a send through `producer`: a producer that has had nothing
    /// acknowledged for [`STUCK_AFTER`] while POSTs kept coming is replaced.
    fn note(&self, producer: &Arc<FutureProducer>, delivered: bool) {
        let stuck = {
            let Ok(mut failing) = self.failing_since.lock() else {
                return;
            };
            match (*failing, delivered) {
                (_, true) => {
                    *failing = None;
                    false
                }
                (None, false) => {
                    *failing = Some(Instant::now());
                    false
                }
                (Some(since), false) => since.elapsed() >= STUCK_AFTER,
            }
        };
        if stuck {
            self.replace(
                producer,
                &format!(
                    "nothing was acknowledged for {} s (a broker restarted without its state \
                     can leave an idempotent producer waiting for ever)",
                    STUCK_AFTER.as_secs()
                ),
            );
        }
    }

    /// Screens one POST body and produces what passed; `arrived` starts the budget.
    pub async fn forward(&self, body: Vec<u8>, arrived: Instant) -> Forwarded {
        if let Some(fetcher) = &self.fetcher {
            for kid in self.receiver.unknown_kids(&body) {
                fetcher.ensure_kid(&kid).await;
            }
        }
        // Token signatures are CPU work: off the async threads.
        let receiver = Arc::clone(&self.receiver);
        let screened = tokio::task::spawn_blocking(move || {
            let (body, offloaded) = without_offloaded(body);
            receiver.screen(&body).map(|s| (s, offloaded))
        })
        .await;
        let (mut screened, offloaded) = match screened {
            Ok(Ok(screened)) => screened,
            Ok(Err(e)) => return Forwarded::Refused(e),
            Err(e) => return Forwarded::Unavailable(format!("screening failed: {e}")),
        };
        // An item refused for a passing reason (the signing keys could not be had) is not
        // judged: the whole POST is answered 503 so that Graph keeps it, nothing is produced.
        if let Some(e) = screened.refused.iter().find_map(|i| match &i.outcome {
            Outcome::Rejected(r) if r.error.is_transient() => Some(r.error.to_string()),
            _ => None,
        }) {
            return Forwarded::Unavailable(e);
        }
        for item in &mut screened.refused {
            item.index = offloaded.original_index(item.index);
        }
        if !screened.refused.is_empty()
            && let Err(e) = crate::output::write_items(&screened.refused)
        {
            crate::log::warn(&format!("cannot write to stdout: {e}"));
        }
        offloaded.report();
        let Some(payload) = screened.body else {
            return Forwarded::Accepted;
        };
        let producer = self.producer();
        let left = FORWARD_BUDGET.saturating_sub(arrived.elapsed());
        let record = FutureRecord::<(), [u8]>::to(&self.topic).payload(&payload);
        let sent = tokio::time::timeout(left, producer.send(record, Timeout::After(left)));
        let outcome = match sent.await {
            Ok(Ok(_)) => Forwarded::Accepted,
            Ok(Err((e, _))) => Forwarded::Unavailable(format!("the broker refused the body: {e}")),
            Err(_) => Forwarded::Unavailable(format!(
                "the broker did not acknowledge within {} ms",
                FORWARD_BUDGET.as_millis()
            )),
        };
        if let Forwarded::Unavailable(why) = &outcome
            && let Some((code, reason)) = producer.client().fatal_error()
        {
            // Replaced now, so that Graph's retry goes through a working producer.
            self.replace(
                &producer,
                &format!("it failed for good (librdkafka's fatal error {code}: {reason})"),
            );
            return Forwarded::Unavailable(format!(
                "{why} (the producer failed for good: {code}: {reason}; it was replaced)"
            ));
        }
        self.note(&producer, matches!(outcome, Forwarded::Accepted));
        outcome
    }
}

/// Drops a replaced producer on a thread of its own once no POST uses it any more: dropping
/// one purges and flushes it, which blocks.
fn retire(old: Arc<FutureProducer>) {
    let spawned = std::thread::Builder::new()
        .name("forward-retire".into())
        .spawn(move || {
            // Each POST holds it at most FORWARD_BUDGET.
            let until = Instant::now() + FORWARD_BUDGET * 4;
            while Arc::strong_count(&old) > 1 && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(100));
            }
            drop(old);
        });
    if let Err(e) = spawned {
        crate::log::warn(&format!(
            "--forward: cannot start a thread to drop the failed producer: {e}"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(
            parse_target("kafka://127.0.0.1:9092/graph").ok(),
            Some((Some("127.0.0.1:9092".into()), "graph".into()))
        );
        assert_eq!(
            parse_target("kafka://a:1,b:2/t").ok(),
            Some((Some("a:1,b:2".into()), "t".into()))
        );
        // The brokers of an Event Hubs connection string.
        assert_eq!(
            parse_target("kafka:///hub").ok(),
            Some((None, "hub".into()))
        );
        for bad in [
            "127.0.0.1:9092/graph",
            "kafka://host",
            "kafka://h:1/",
            "kafka://h:1/a/b",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_max_body_fits_a_default_broker_message() {
        assert_eq!(FORWARD_MAX_BODY, 1_048_504);
    }

    /// librdkafka's fatal errors come from brokers in states tansu cannot be put in (an
    /// idempotent producer's sequence lost, its epoch fenced); librdkafka's own test hook,
    /// `rd_kafka_test_fatal_error`, raises one on a real producer connected to a real broker,
    /// exactly as the broker's answer would.
    #[test]
    fn a_producer_with_a_fatal_error_is_replaced_and_the_new_one_delivers() {
        use msgraph_notify::{Decryptor, KeyRing};
        use rdkafka::types::RDKafkaRespErr;

        let Some(broker) = test_support::tansu::Broker::start(Duration::from_secs(90)) else {
            return;
        };
        broker.create_topic("fatal", 1);
        let target = format!("kafka://{}/fatal", broker.address());
        let opts = ForwardOpts {
            forward: Some(target.clone()),
            kafka: KafkaOpts::default(),
        };
        let receiver = Receiver::builder(Decryptor::new(KeyRing::new()))
            .trusted_transport_only()
            .build()
            .unwrap();
        let forward =
            Forward::new(&opts, &target, FORWARD_MAX_BODY, Arc::new(receiver), None).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let send = |producer: &FutureProducer, payload: &[u8]| {
            runtime
                .block_on(producer.send(
                    FutureRecord::<(), [u8]>::to("fatal").payload(payload),
                    Duration::from_secs(30),
                ))
                .map_err(|(e, _)| e)
        };
        let first = forward.producer();
        send(&first, b"before").expect("the first producer delivers");
        // SAFETY: the producer is alive (held by `first`); the reason is a C string literal.
        let raised = unsafe {
            rdkafka::bindings::rd_kafka_test_fatal_error(
                first.client().native_ptr(),
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                c"the broker lost the producer's sequence".as_ptr(),
            )
        };
        assert_eq!(raised, RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR);
        assert!(first.client().fatal_error().is_some());
        assert!(
            send(&first, b"through the failed one").is_err(),
            "a producer with a fatal error delivers nothing"
        );
        let second = forward.producer();
        assert!(!Arc::ptr_eq(&first, &second), "replaced");
        assert_eq!(forward.replaced(), 1);
        assert!(Arc::ptr_eq(&second, &forward.producer()), "replaced once");
        drop(first);
        send(&second, b"after").expect("the new producer delivers");
    }
}
