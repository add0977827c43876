//! The worker threads: they take bodies off the queue, verify and decrypt them (CPU work, off
//! the async threads) and print one JSON line per item. An item that meets a passing failure
//! ([`Error::is_transient`], the one policy) was acknowledged: it waits, retried with back-off,
//! until it succeeds or `serve` is told to stop; only a verdict on the item ends it as
//! rejected. While it waits, the dependency it waits on counts as missing ([`Health`]) and new
//! POSTs are answered 503. Plus the progress line on a terminal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use msgraph_notify::Error;
use msgraph_notify::receiver::{Item, Outcome, Receiver, Reply};
use msgraph_notify::token::fetch::KeyFetcher;
use tokio::sync::mpsc;

use super::Stats;
use super::admin::Metrics;
use super::health::{Dependency, Health, Waiting};
use super::http::Job;
use super::spool::Spool;
use crate::retry::Backoff;
use crate::{Fail, fail};

/// The first pause before an item that met a passing failure is tried again (then doubling, up
/// to [`crate::retry::MAX_PAUSE`]).
const RETRY_FIRST: Duration = Duration::from_millis(250);

/// What every worker shares.
pub struct Pool {
    pub receiver: Arc<Receiver>,
    pub fetcher: Option<Arc<KeyFetcher>>,
    pub stats: Arc<Stats>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub spool: Option<Arc<Spool>>,
    /// Set on SIGTERM/SIGINT: waiting items stop waiting (a spooled body keeps what is left).
    pub stop: Arc<AtomicBool>,
    /// Held while a body's lines are written and its spool entry goes: one body at a time is
    /// between the two, so a kill repeats at most one body's lines.
    pub output: Mutex<()>,
    /// The subscription keeper (`--subscriptions`): lifecycle notifications go to it.
    #[cfg(feature = "manage")]
    pub kept: Option<Arc<super::keeper::Kept>>,
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
                .name(format!("serve-work-{n}"))
                .spawn(move || pool.work(&rx, &handle))
                .map_err(|e| fail!("cannot start a worker thread: {e}"))?;
            threads.push(thread);
        }
        Ok(threads)
    }

    /// A worker: takes bodies off the queue until it is closed and empty.
    fn work(&self, rx: &Mutex<mpsc::Receiver<Job>>, handle: &tokio::runtime::Handle) {
        let warn_refused = crate::log::RateLimited::new();
        let warn_rejected = crate::log::RateLimited::new();
        loop {
            let job = {
                let mut rx = rx.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                rx.blocking_recv()
            };
            let Some(job) = job else { return };
            self.metrics.queue_depth.dec();
            self.process(&job, handle, &warn_refused, &warn_rejected);
            // The body's share of the byte budget is released here, with the job.
        }
    }

    /// One body: decrypted, its waiting items retried, its lines written, its spool entry gone.
    fn process(
        &self,
        job: &Job,
        handle: &tokio::runtime::Handle,
        warn_refused: &crate::log::RateLimited,
        warn_rejected: &crate::log::RateLimited,
    ) {
        let (receiver, stats) = (&*self.receiver, &*self.stats);
        self.fetch_unknown_kids(&job.body, handle);
        match receive(receiver, &job.body, job.accepted_at) {
            Ok(Reply::Notifications(mut items)) => {
                let left = self.wait_for_transient(&job.body, job.accepted_at, &mut items, handle);
                let (mut done, mut waiting) = (Vec::new(), Vec::new());
                for (at, item) in items.into_iter().enumerate() {
                    if left.contains(&at) {
                        waiting.push(item);
                    } else {
                        done.push(item);
                    }
                }
                let left = waiting;
                let rejected = done.iter().filter(|i| i.outcome.is_rejected()).count();
                stats.items.fetch_add(done.len() as u64, Ordering::Relaxed);
                stats.rejected.fetch_add(rejected as u64, Ordering::Relaxed);
                // Made here, on this worker, in parallel with the other workers; only the write
                // (and the spool's settling, which must follow it) is one at a time.
                let lines = crate::output::Lines::of(&done, &[]);
                {
                    let _one_at_a_time = self.output.lock().unwrap_or_else(|p| p.into_inner());
                    if let Err(e) = lines.write_to_stdout() {
                        crate::log::warn(&format!("cannot write to stdout: {e}"));
                    }
                    self.settle(job, &left);
                }
                self.metrics.items(&done, job.arrived.elapsed());
                #[cfg(feature = "manage")]
                if let Some(kept) = &self.kept {
                    if !done.is_empty() {
                        kept.notified();
                    }
                    for item in &done {
                        if let Outcome::Lifecycle(notice) = &item.outcome {
                            kept.lifecycle(&notice.notification);
                        }
                    }
                }
                log_rejections(&done, job.id, warn_rejected);
            }
            Ok(_) => self.settle(job, &[]),
            Err(e) => {
                self.settle(job, &[]);
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
    }

    /// Fetches the signing keys a body's tokens name, when unknown (rate-limited by the fetcher).
    fn fetch_unknown_kids(&self, body: &[u8], handle: &tokio::runtime::Handle) {
        if let Some(fetcher) = &self.fetcher {
            for kid in self.receiver.unknown_kids(body) {
                handle.block_on(fetcher.ensure_kid(&kid));
            }
        }
    }

    /// The body's spool entry once its lines are written: gone when nothing is `left` (items
    /// still waiting when `serve` stopped), else replaced by a body of just those, processed at
    /// the next start. Without a spool, what is left is said on stderr.
    fn settle(&self, job: &Job, left: &[Item]) {
        let Some(spool) = &self.spool else {
            if !left.is_empty() {
                crate::log::warn(&format!(
                    "msgraph-notify serve: stopping with {} accepted items of request {} not \
                     finished (a dependency is unavailable): they are not written (--spool keeps \
                     them for the next start)",
                    left.len(),
                    job.id
                ));
            }
            return;
        };
        let Some(id) = job.spool_id else { return };
        let len = job.body.len() as u64;
        let done = match retry_body(&job.body, left) {
            None => spool.remove_blocking(id, len),
            Some(rest) => spool.replace_blocking(id, len, rest.into_bytes()),
        };
        if let Err(e) = done {
            crate::log::warn(&format!(
                "msgraph-notify serve: cannot update the spool after request {}: {e} (its items \
                 are output again at the next start)",
                job.id
            ));
        }
    }

    /// Retries the items of `items` that met a passing failure ([`waits`]), as a body of just
    /// those items with the original tokens, with back-off, until none is left or `serve` stops;
    /// each outcome replaces the earlier one at its index. Returns the indices still waiting
    /// (only when stopped).
    fn wait_for_transient(
        &self,
        body: &[u8],
        accepted_at: SystemTime,
        items: &mut [Item],
        handle: &tokio::runtime::Handle,
    ) -> Vec<usize> {
        let mut pending = pending_in(items);
        let mut backoff = Backoff::new(RETRY_FIRST);
        let warn = crate::log::RateLimited::new();
        while !pending.is_empty() {
            // The dependencies waited on count as missing meanwhile: new POSTs get 503.
            let _waiting = self.waiting(items, &pending);
            if let Some(first) = pending.first().map(|&at| &items[at].outcome)
                && let Outcome::Rejected(r) = first
            {
                warn.warn(&format!(
                    "msgraph-notify serve: {} accepted items wait: {} (retrying with back-off)",
                    pending.len(),
                    r.error
                ));
            }
            if backoff.sleep_unless(&self.stop) {
                return pending;
            }
            let Some(retry) = retry_body(body, pending.iter().map(|&at| &items[at])) else {
                return Vec::new();
            };
            self.fetch_unknown_kids(retry.as_bytes(), handle);
            // Judged as of the acceptance: a wait longer than a token's hour loses nothing.
            let Ok(outcomes) = self
                .receiver
                .receive_accepted_at(retry.as_bytes(), accepted_at)
            else {
                // The items were read once; a body of them cannot be refused now. If it were,
                // keep waiting rather than drop them.
                continue;
            };
            for (&at, outcome) in pending.iter().zip(outcomes) {
                items[at].outcome = outcome.outcome;
            }
            pending = pending_in(items);
        }
        Vec::new()
    }

    /// Marks the dependencies of the waiting items as missing while the guards live.
    fn waiting(&self, items: &[Item], pending: &[usize]) -> Vec<Waiting<'_>> {
        let mut by: Vec<(Dependency, u64)> = Vec::new();
        for &at in pending {
            if let Outcome::Rejected(r) = &items[at].outcome
                && let Some(d) = Dependency::of(&r.error)
            {
                match by.iter_mut().find(|(x, _)| *x == d) {
                    Some(entry) => entry.1 += 1,
                    None => by.push((d, 1)),
                }
            }
        }
        by.into_iter()
            .map(|(d, n)| self.health.wait(d, n))
            .collect()
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

/// Whether `item` met a passing failure ([`Error::is_transient`]) and can be sent again (its
/// notification was read): it waits, never dropped.
fn waits(item: &Item) -> bool {
    matches!(&item.outcome, Outcome::Rejected(r)
        if r.error.is_transient() && r.notification.is_some())
}

fn pending_in(items: &[Item]) -> Vec<usize> {
    items
        .iter()
        .enumerate()
        .filter(|(_, i)| waits(i))
        .map(|(at, _)| at)
        .collect()
}

/// A body of just the `items` given (their notifications), with the validation tokens of
/// `body`; `None` when there are none.
fn retry_body<'a>(body: &[u8], items: impl IntoIterator<Item = &'a Item>) -> Option<String> {
    let values: Vec<serde_json::Value> = items
        .into_iter()
        .filter_map(|i| match &i.outcome {
            Outcome::Rejected(r) => r
                .notification
                .as_ref()
                .and_then(|n| serde_json::to_value(n).ok()),
            _ => None,
        })
        .collect();
    if values.is_empty() {
        return None;
    }
    let tokens = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|mut v| v.get_mut("validationTokens").map(serde_json::Value::take))
        .unwrap_or(serde_json::Value::Null);
    Some(serde_json::json!({"value": values, "validationTokens": tokens}).to_string())
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

/// How long after its acceptance a body is judged as of then rather than now: past the tokens'
/// clock-skew leeway, the token cache (which judges as of now) no longer serves it.
const LATE: Duration = Duration::from_secs(60);

/// A body's items: as of now, or, for a body processed late (read back from the spool, or
/// queued behind an outage), with its tokens' lifetimes judged as of its acceptance.
fn receive(
    receiver: &Receiver,
    body: &[u8],
    accepted_at: SystemTime,
) -> msgraph_notify::Result<Reply> {
    let late = SystemTime::now()
        .duration_since(accepted_at)
        .is_ok_and(|waited| waited > LATE);
    if late {
        receiver
            .receive_accepted_at(body, accepted_at)
            .map(Reply::Notifications)
    } else {
        receiver.receive(None, body)
    }
}
