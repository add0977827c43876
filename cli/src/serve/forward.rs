//! `serve --forward kafka://HOST:PORT/TOPIC`: the webhook as a thin, safe ingress. Each POST is
//! screened while its validation tokens are valid ([`Receiver::screen`]: size, JSON, clientState,
//! the tokens that must cover each encrypted item), then what passed is produced to the topic
//! with `acks=all` from an idempotent producer, and only then answered 202. A broker that cannot
//! take it within Graph's 3-second budget gets the POST answered 503, so Graph retries and
//! nothing acknowledged is lost. Like any POST, a forwarded one is answered 503 while the signing
//! keys are not loaded, and when an item could not be screened for a passing reason
//! ([`Error::is_transient`]). `msgraph-notify consume` decrypts the topic.

use std::sync::Arc;
use std::time::{Duration, Instant};

use msgraph_notify::Error;
use msgraph_notify::receiver::{Outcome, Receiver};
use msgraph_notify::token::fetch::KeyFetcher;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use crate::{Fail, fail};

/// How long a POST may wait for the broker's acknowledgement, from its arrival: under Graph's
/// 3 seconds, with room for the answer to travel.
pub const FORWARD_BUDGET: Duration = Duration::from_millis(2500);

/// `serve`'s forwarding option.
#[derive(clap::Args, Debug, Clone)]
pub struct ForwardOpts {
    /// Hand each POST to this Kafka topic instead of decrypting it here:
    /// kafka://HOST:PORT[,HOST:PORT…]/TOPIC. A POST is answered 202 only once the brokers
    /// acknowledged it (acks=all, idempotent producer), 503 when they cannot within 2.5 s.
    /// Validation tokens are checked here, while they are valid; only items they cover are
    /// forwarded. Decrypt the topic with `msgraph-notify consume`, giving it at least this
    /// --max-body and --max-items (a record it refuses is reported and skipped), and keep
    /// --max-body under the topic's largest message (Kafka's default message.max.bytes is
    /// about 1 MB; a larger body is refused by the broker and answered 503).
    #[arg(
        long,
        value_name = "kafka://HOST:PORT/TOPIC",
        env = "MSGRAPH_NOTIFY_FORWARD"
    )]
    pub forward: Option<String>,
}

/// A configured forwarder.
pub struct Forward {
    producer: FutureProducer,
    topic: String,
    receiver: Arc<Receiver>,
    fetcher: Option<Arc<KeyFetcher>>,
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

/// `kafka://HOST:PORT[,HOST:PORT…]/TOPIC` → (brokers, topic).
pub fn parse_target(target: &str) -> Result<(String, String), Fail> {
    let rest = target
        .strip_prefix("kafka://")
        .ok_or_else(|| fail!("--forward {target:?}: expected kafka://HOST:PORT/TOPIC"))?;
    let (brokers, topic) = rest
        .split_once('/')
        .filter(|(b, t)| !b.is_empty() && !t.is_empty() && !t.contains('/'))
        .ok_or_else(|| fail!("--forward {target:?}: expected kafka://HOST:PORT/TOPIC"))?;
    Ok((brokers.to_owned(), topic.to_owned()))
}

impl Forward {
    /// A producer for `target`, bodies up to `max_body` bytes.
    pub fn new(
        target: &str,
        max_body: usize,
        receiver: Arc<Receiver>,
        fetcher: Option<Arc<KeyFetcher>>,
    ) -> Result<Forward, Fail> {
        let (brokers, topic) = parse_target(target)?;
        let producer: FutureProducer = ClientConfig::new()
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
            )
            .create()
            .map_err(|e| fail!("--forward: cannot create the Kafka producer for {brokers}: {e}"))?;
        crate::log::info(&format!(
            "msgraph-notify serve: forwarding to topic {topic} on {brokers}"
        ));
        Ok(Forward {
            producer,
            topic,
            receiver,
            fetcher,
        })
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
        let screened = match tokio::task::spawn_blocking(move || receiver.screen(&body)).await {
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
        if !screened.refused.is_empty()
            && let Err(e) = crate::output::write_items(&screened.refused)
        {
            crate::log::warn(&format!("cannot write to stdout: {e}"));
        }
        let Some(payload) = screened.body else {
            return Forwarded::Accepted;
        };
        let left = FORWARD_BUDGET.saturating_sub(arrived.elapsed());
        let record = FutureRecord::<(), [u8]>::to(&self.topic).payload(&payload);
        let sent = tokio::time::timeout(left, self.producer.send(record, Timeout::After(left)));
        match sent.await {
            Ok(Ok(_)) => Forwarded::Accepted,
            Ok(Err((e, _))) => Forwarded::Unavailable(format!("the broker refused the body: {e}")),
            Err(_) => Forwarded::Unavailable(format!(
                "the broker did not acknowledge within {} ms",
                FORWARD_BUDGET.as_millis()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_target;

    #[test]
    fn targets_parse() {
        assert_eq!(
            parse_target("kafka://127.0.0.1:9092/graph").ok(),
            Some(("127.0.0.1:9092".into(), "graph".into()))
        );
        assert_eq!(
            parse_target("kafka://a:1,b:2/t").ok(),
            Some(("a:1,b:2".into(), "t".into()))
        );
        for bad in [
            "127.0.0.1:9092/graph",
            "kafka://host",
            "kafka:///t",
            "kafka://h:1/",
            "kafka://h:1/a/b",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }
}
