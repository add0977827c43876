//! The worker threads: they take bodies off the queue, verify and decrypt them (CPU work, off
//! the async threads), print one JSON line per item, and retry items the replay store could not
//! check. Plus the progress line on a terminal.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use msgraph_notify::Error;
use msgraph_notify::receiver::{Item, Outcome, Receiver, Reply};
use msgraph_notify::token::fetch::KeyFetcher;
use tokio::sync::mpsc;

use super::Stats;
use super::admin::Metrics;
use super::http::Job;
use crate::retry::Backoff;
use crate::{Fail, fail};

/// What every worker shares.
pub struct Pool {
    pub receiver: Arc<Receiver>,
    pub fetcher: Option<Arc<KeyFetcher>>,
    pub stats: Arc<Stats>,
    pub metrics: Arc<Metrics>,
}

impl Pool {
    /// Starts `workers` threads on the queue `rx`; they stop once it is closed and empty.
    pub fn start(
        self,
        workers: usize,
        rx: mpsc::Receiver<Job>,
    ) -> Result<Vec<JoinHandle<()>>, Fail> {
        let rx = Arc::new(Mutex::new(rx));
        let pool = Arc::new(self);
        let handle = tokio::runtime::Handle::current();
        let mut threads = Vec::with_capacity(workers);
        for n in 0..workers {
            let (rx, pool, handle) = (Arc::clone(&rx), Arc::clone(&pool), handle.clone());
            let thread = std::thread::Builder::new()
                .name(format!("msgraph-notify-worker-{n}"))
                .spawn(move || pool.work(&rx, &handle))
                .map_err(|e| fail!("cannot start a worker thread: {e}"))?;
            threads.push(thread);
        }
        Ok(threads)
    }

    /// A worker: takes bodies off the queue until it is closed and empty.
    fn work(&self, rx: &Mutex<mpsc::Receiver<Job>>, handle: &tokio::runtime::Handle) {
        let (receiver, stats, metrics) = (&*self.receiver, &*self.stats, &*self.metrics);
        let warn_refused = crate::log::RateLimited::new();
        let warn_rejected = crate::log::RateLimited::new();
        loop {
            let job = {
                let mut rx = rx.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                rx.blocking_recv()
            };
            let Some(job) = job else { return };
            metrics.queue_depth.dec();
            if let Some(fetcher) = &self.fetcher {
                for kid in receiver.unknown_kids(&job.body) {
                    handle.block_on(fetcher.ensure_kid(&kid));
                }
            }
            match receiver.receive(None, &job.body) {
                Ok(Reply::Notifications(mut items)) => {
                    // Items the replay store could not check were acknowledged (202): retry them
                    // until it answers, rather than lose them.
                    retry_unchecked(receiver, &job.body, &mut items);
                    let rejected = items.iter().filter(|i| i.outcome.is_rejected()).count();
                    stats.items.fetch_add(items.len() as u64, Ordering::Relaxed);
                    stats.rejected.fetch_add(rejected as u64, Ordering::Relaxed);
                    if let Err(e) = crate::output::write_items(&items) {
                        crate::log::warn(&format!("cannot write to stdout: {e}"));
                    }
                    metrics.items(&items, job.arrived.elapsed());
                    log_rejections(&items, job.id, &warn_rejected);
                }
                Ok(_) => {}
                Err(e) => {
                    stats.refused_bodies.fetch_add(1, Ordering::Relaxed);
                    let hint = if matches!(e, Error::TooMany { .. }) {
                        " (--max-items raises the item limit)"
                    } else {
                        ""
                    };
                    if let Some(suppressed) = warn_refused.admit() {
                        tracing::warn!(
                            request_id = job.id,
                            path = %job.path,
                            suppressed,
                            "body refused: {e}{hint}"
                        );
                    }
                }
            }
            // The body's share of the byte budget is released here, with the job.
        }
    }
}

/// Joins every worker thread, even after a failed one; whether all ended well.
pub async fn join(threads: Vec<JoinHandle<()>>) -> bool {
    tokio::task::spawn_blocking(move || {
        let failed = threads
            .into_iter()
            .map(|t| t.join())
            .filter(Result::is_err)
            .count();
        failed == 0
    })
    .await
    .unwrap_or(false)
}

/// On a terminal: a progress line on stderr, once a second.
pub fn show_progress(stats: Arc<Stats>, tx: mpsc::WeakSender<Job>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let queued = tx.upgrade().map_or(0, |t| t.max_capacity() - t.capacity());
            use std::io::Write as _;
            let _ = write!(
                std::io::stderr(),
                "\r{} POSTs, {} items ({} rejected), {} queued   ",
                stats.posts.load(Ordering::Relaxed),
                stats.items.load(Ordering::Relaxed),
                stats.rejected.load(Ordering::Relaxed),
                queued
            );
        }
    });
}

/// How long a worker keeps retrying items the replay store could not check.
const REPLAY_RETRY_FOR: Duration = Duration::from_secs(60);

/// Whether `item` was rejected only because the replay store could not answer, and can be sent
/// again (its notification was read).
///
/// The policy is [`Error::is_transient`]; `serve` keeps, for now, its narrower retry: only
/// the replay store (`Error::ReplayStore`), not `KeyUnavailable`, transient `Payload` errors or
/// `Token(KeysUnavailable)`, which `is_transient()` also counts (a later issue decides).
fn unchecked(item: &Item) -> bool {
    matches!(&item.outcome, Outcome::Rejected(r)
        if r.error.is_transient()
            && matches!(r.error, Error::ReplayStore(_))
            && r.notification.is_some())
}

/// Re-runs the items of `items` that were rejected only because the replay store could not
/// answer ([`unchecked`]), as a body of just those items with the original tokens, with
/// back-off, for up to [`REPLAY_RETRY_FOR`]; each outcome replaces the rejection at its index.
/// Items still unchecked after that keep their rejection (logged, and counted).
fn retry_unchecked(receiver: &Receiver, body: &[u8], items: &mut [Item]) {
    let pending_in = |items: &[Item]| -> Vec<usize> {
        items
            .iter()
            .enumerate()
            .filter(|(_, i)| unchecked(i))
            .map(|(at, _)| at)
            .collect()
    };
    let mut pending = pending_in(items);
    if pending.is_empty() {
        return;
    }
    let tokens = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|mut v| v.get_mut("validationTokens").map(serde_json::Value::take))
        .unwrap_or(serde_json::Value::Null);
    let start = Instant::now();
    let mut backoff = Backoff::new(Duration::from_millis(250));
    while !pending.is_empty() && start.elapsed() < REPLAY_RETRY_FOR {
        backoff.sleep();
        let values: Vec<serde_json::Value> = pending
            .iter()
            .filter_map(|&at| match &items[at].outcome {
                Outcome::Rejected(r) => r
                    .notification
                    .as_ref()
                    .and_then(|n| serde_json::to_value(n).ok()),
                _ => None,
            })
            .collect();
        if values.len() != pending.len() {
            return;
        }
        let retry = serde_json::json!({"value": values, "validationTokens": tokens}).to_string();
        let Ok(Reply::Notifications(outcomes)) = receiver.receive(None, retry.as_bytes()) else {
            return;
        };
        for (&at, outcome) in pending.iter().zip(outcomes) {
            items[at].outcome = outcome.outcome;
        }
        pending = pending_in(items);
    }
}

/// One log event per rejected item (at most one a second, with the count of those suppressed):
/// the request, the item's index, subscription, tenant and the reason. Never the clientState,
/// never data.
fn log_rejections(items: &[Item], request_id: u64, limit: &crate::log::RateLimited) {
    for item in items {
        let Outcome::Rejected(r) = &item.outcome else {
            continue;
        };
        let Some(suppressed) = limit.admit() else {
            continue;
        };
        let n = r.notification.as_ref();
        tracing::info!(
            request_id,
            item_index = item.index,
            subscription = n.and_then(|n| n.subscription_id.as_deref()).unwrap_or(""),
            tenant = n.and_then(|n| n.tenant_id.as_deref()).unwrap_or(""),
            reason = r.error.label(),
            suppressed,
            "item rejected: {}",
            r.error
        );
    }
}
