//! `consume`'s membership of its consumer group: the static member id (`group.instance.id`,
//! KIP-345) that lets a restarted consumer take its partitions back at once, and the log lines
//! of the join, each assignment and each revocation (librdkafka's rebalance callbacks), so the
//! operator sees what the consumer waits for during a join.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rdkafka::ClientContext;
use rdkafka::TopicPartitionList;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;

use crate::opts::KafkaLog;
use crate::{Fail, fail};

/// Kafka's limit on a `group.instance.id` (as on topic names).
const INSTANCE_ID_MAX: usize = 249;

/// The `group.instance.id` in force: `given` (`Some("")` turns static membership off), else
/// `msgraph-notify-HOST-GROUP` from the host name, stable across restarts. Characters Kafka does
/// not take in an id (anything but letters, digits, `.`, `_` and `-`) become `_`.
pub fn instance_id(given: Option<&str>, group: &str) -> Result<Option<String>, Fail> {
    match given {
        Some("") => Ok(None),
        Some(id) => {
            if id.len() > INSTANCE_ID_MAX || !id.chars().all(legal) {
                return Err(fail!(
                    "--group-instance-id {id:?}: Kafka takes at most {INSTANCE_ID_MAX} letters, \
                     digits, '.', '_' and '-'"
                ));
            }
            Ok(Some(id.to_owned()))
        }
        None => Ok(host_name().map(|host| {
            let id: String = format!("msgraph-notify-{host}-{group}")
                .chars()
                .map(|c| if legal(c) { c } else { '_' })
                .take(INSTANCE_ID_MAX)
                .collect();
            id
        })),
    }
}

fn legal(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// This machine's host name (a container's or a pod's own), if it has one.
fn host_name() -> Option<String> {
    let from_kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
    let name = from_kernel
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// `topic[0, 1, 2]` for each topic of `list`.
fn partitions(list: &TopicPartitionList) -> String {
    let mut topics: Vec<(String, Vec<i32>)> = Vec::new();
    for element in list.elements() {
        match topics.iter_mut().find(|(t, _)| t == element.topic()) {
            Some((_, partitions)) => partitions.push(element.partition()),
            None => topics.push((element.topic().to_owned(), vec![element.partition()])),
        }
    }
    topics
        .into_iter()
        .map(|(topic, mut partitions)| {
            partitions.sort_unstable();
            let listed: Vec<String> = partitions.iter().map(i32::to_string).collect();
            format!("{topic}[{}]", listed.join(", "))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The consumer's context: logs the group's join and rebalances on stderr, and librdkafka's
/// warnings and errors.
pub struct GroupLog {
    kafka: KafkaLog,
    group: String,
    member: String,
    started: Instant,
    joined: AtomicBool,
}

impl GroupLog {
    pub fn new(group: &str, instance: Option<&str>) -> Self {
        GroupLog {
            kafka: KafkaLog::new(""),
            group: group.to_owned(),
            member: instance.map_or_else(
                || "a dynamic member".to_owned(),
                |id| format!("static member {id}"),
            ),
            started: Instant::now(),
            joined: AtomicBool::new(false),
        }
    }

    /// The first line: what the consumer is waiting for.
    pub fn joining(&self, topic: &str, session_timeout: u32) {
        crate::log::info(&format!(
            "msgraph-notify consume: joining group {} as {} to read {topic} (the group \
             assigns partitions once its members have joined; a member gone silent is \
             replaced after --session-timeout {session_timeout} s)",
            self.group, self.member
        ));
    }
}

impl ClientContext for GroupLog {
    fn log(&self, level: RDKafkaLogLevel, _: &str, message: &str) {
        self.kafka.line(level, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.kafka.error(&error, reason);
    }
}

impl ConsumerContext for GroupLog {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) if list.count() > 0 => crate::log::info(&format!(
                "msgraph-notify consume: rebalance in group {}: partitions {} revoked",
                self.group,
                partitions(list)
            )),
            Rebalance::Revoke(_) | Rebalance::Assign(_) => {}
            Rebalance::Error(e) => crate::log::warn(&format!(
                "msgraph-notify consume: rebalance in group {} failed: {e}",
                self.group
            )),
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(list) = rebalance else {
            return;
        };
        let assigned = if list.count() == 0 {
            "no partition (the group has more members than the topic has partitions)".to_owned()
        } else {
            format!("partitions {}", partitions(list))
        };
        if self.joined.swap(true, Ordering::AcqRel) {
            crate::log::info(&format!(
                "msgraph-notify consume: rebalance in group {}: assigned {assigned}",
                self.group
            ));
        } else {
            crate::log::info(&format!(
                "msgraph-notify consume: joined group {} as {} after {:.1} s: assigned {assigned}",
                self.group,
                self.member,
                self.started.elapsed().as_secs_f64()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_instance_id_is_stable_and_legal() {
        let id = instance_id(None, "$Default").unwrap().unwrap();
        assert!(id.starts_with("msgraph-notify-"), "{id}");
        assert!(id.ends_with("-_Default"), "{id}");
        assert!(id.chars().all(legal), "{id}");
        assert_eq!(instance_id(None, "$Default").unwrap().unwrap(), id);
        assert_eq!(instance_id(Some(""), "g").unwrap(), None);
        assert_eq!(
            instance_id(Some("decrypt-0"), "g").unwrap().as_deref(),
            Some("decrypt-0")
        );
        assert!(instance_id(Some("a b"), "g").is_err());
        assert!(instance_id(Some(&"x".repeat(250)), "g").is_err());
    }

    #[test]
    fn partitions_are_listed_by_topic() {
        let mut list = TopicPartitionList::new();
        list.add_partition("graph", 2);
        list.add_partition("graph", 0);
        list.add_partition("other", 1);
        assert_eq!(partitions(&list), "graph[0, 2] other[1]");
    }
}
