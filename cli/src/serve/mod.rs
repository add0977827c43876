//! `serve`: an HTTP receiver. Answers at once, verifies and decrypts afterwards on worker threads.
//!
//! The async runtime only moves bytes: it answers the handshake, reads each body (up to the
//! limit) and queues it. CPU work (token signatures, RSA, AES) runs on dedicated worker threads
//! fed by a bounded queue, so a burst never delays the `202` answers of other POSTs.
//!
//! What an attacker who knows the URL can hold, and what bounds it:
//! - connections: at most `--max-connections` (kept below the open-file limit, whose soft value
//!   is raised to the hard one at start); when full, the oldest connection that is not inside a
//!   request (idle, or still sending its request head) is closed to make room, so idle or
//!   half-sent connections can never lock Graph out;
//! - request heads: `--header-timeout` from the moment a connection waits for a head (new, or
//!   idle between keep-alive requests) until the head is complete; each connection buffers at
//!   most [`CONN_BUFFER`] bytes of head;
//! - bodies: the bytes actually buffered — bodies being read *and* bodies queued for the
//!   workers — share one budget, `--max-buffered`; a POST that would exceed it gets `503` (Graph
//!   retries). A slow sender holds only the bytes it has sent, so a thousand trickling bodies
//!   cannot starve a genuine POST or the handshake (which needs no budget at all). A body must
//!   arrive within [`BODY_TIMEOUT`];
//! - per body: `--max-body` bytes, `--max-items` items and the receiver's token limit, refused
//!   whole while parsing.

//!
//! The rooms, in the order `serve` starts them: [`tls`] (the certificate, reloaded on SIGHUP),
//! [`spool`] (`--spool`: bodies kept on disk from the 202 until output), [`health`] (what a POST
//! needs before it is answered 202), [`admin`] (`/healthz`, `/readyz`, `/metrics`), [`worker`]
//! (the threads that decrypt, and wait out passing failures),
//! [`forward`] (`--forward`, feature `kafka`), [`http`] (one request: handshake, body, queue) and
//! [`accept`] (the connection table, eviction, the drain). This file keeps the start-up order
//! and the shutdown.

mod accept;
mod admin;
mod announce;
#[cfg(feature = "kafka")]
pub mod forward;
mod health;
mod http;
#[cfg(feature = "manage")]
mod keeper;
mod spool;
mod tls;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use msgraph_notify::receiver::DEFAULT_MAX_BODY_BYTES;
use msgraph_notify::replay::RedisReplayStore;
use msgraph_notify::token::fetch::KeyFetcher;
use tokio::sync::{Semaphore, mpsc};

use crate::opts::{ReceiverOpts, ReplayOpts};
use crate::signal::{Hangup, Shutdown};
use crate::{Fail, fail};

use admin::{ADMIN_CONNECTIONS, Metrics, Readiness};
#[cfg(feature = "kafka")]
pub(crate) use admin::{
    Endpoints, ItemMetrics, listen_on_own_thread, register_certificates, render,
};
#[cfg(feature = "kafka")]
pub(crate) use announce::keys as describe_keys;

/// How long open connections may linger after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// File descriptors kept free for everything but client connections (workers, key fetches,
/// output, the listener).
/// The admin listener's connections ([`ADMIN_CONNECTIONS`]) come out of this reserve.
const RESERVED_FDS: u64 = 64;
const _: () = assert!(2 * ADMIN_CONNECTIONS as u64 <= RESERVED_FDS);

/// Run an HTTP receiver for Graph change notifications (POST on any path).
///
/// Answers the validation handshake (200, text/plain, the decoded token); answers notification
/// POSTs 202 at once, then verifies and decrypts them on worker threads, printing one JSON line
/// per item on stdout (as `decrypt` does). Bodies over --max-body get 413. Replayed items are
/// reported as duplicates (--replay). On SIGTERM or SIGINT it stops accepting, drains the queue,
/// flushes and exits 0.
///
/// Memory stays under about --max-buffered + --max-connections × 48 KiB + --workers × 10 ×
/// --max-body (+ 16 MiB of spool cache with --spool), whatever arrives (SECURITY.md gives the
/// measurement). A POST is answered 202 only when what it needs is there (signing keys, the
/// replay store, the keys of items already waiting), else 503 with Retry-After; an accepted item
/// that meets a passing failure waits and is retried, never dropped (README, "What a 202
/// promises").
#[derive(clap::Args, Debug)]
#[command(after_help = "Example:\n  \
    msgraph-notify serve --listen 0.0.0.0:8443 --key cert-2026=keys/key.pem \\\n      \
    --tls-cert /etc/msgraph-notify/tls/fullchain.pem --tls-key /etc/msgraph-notify/tls/key.pem \\\n      \
    --app-id $APP_ID --client-state-file /run/secrets/client-state >> notifications.jsonl\n  \
    # notificationUrl: https://your-host.example:8443/graph (Graph requires HTTPS: --tls-cert, or a proxy)\n  \
    kill -HUP $PID   # after renewing the certificate files")]
pub struct Args {
    /// The address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port; the address is
    /// printed on stderr).
    #[arg(long, value_name = "ADDR", env = "MSGRAPH_NOTIFY_LISTEN", value_parser = crate::opts::socket_addr)]
    listen: SocketAddr,

    #[command(flatten)]
    receiver: ReceiverOpts,

    #[command(flatten)]
    replay: ReplayOpts,

    #[cfg(feature = "manage")]
    #[command(flatten)]
    keeper: keeper::KeeperArgs,

    /// The largest body accepted, in bytes; larger ones are answered 413. Default: 1,048,576
    /// (1 MiB); with --forward, 1,048,504 (what fits in a broker's default message).
    #[arg(long, value_name = "BYTES", env = "MSGRAPH_NOTIFY_MAX_BODY")]
    max_body: Option<usize>,

    /// How many bodies may wait for a worker.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_000_000), env = "MSGRAPH_NOTIFY_QUEUE")]
    queue: u32,

    /// The most bytes of request bodies held at once, being read or queued for the workers;
    /// a POST that would exceed it is answered 503 (Graph retries). Counts bytes actually
    /// received, so slow senders hold only what they sent.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20, value_parser = clap::value_parser!(u64).range(1..=(1 << 32)), env = "MSGRAPH_NOTIFY_MAX_BUFFERED")]
    max_buffered: u64,

    /// The most client connections open at once (lowered to stay under the open-file limit).
    /// When full, the oldest connection that is idle or still sending its request head is
    /// closed to make room.
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000), env = "MSGRAPH_NOTIFY_MAX_CONNECTIONS")]
    max_connections: u32,

    /// Seconds a connection may take to send a complete request head, counted from the moment
    /// it waits for one (so also the idle time allowed between keep-alive requests).
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600), env = "MSGRAPH_NOTIFY_HEADER_TIMEOUT")]
    header_timeout: u64,

    #[command(flatten)]
    log: crate::log::LogOpts,

    /// Serve `GET /healthz`, `/readyz` and `/metrics` (Prometheus) on this address, e.g.
    /// 127.0.0.1:9090. Never on the public listener.
    #[arg(long, value_name = "ADDR", env = "MSGRAPH_NOTIFY_ADMIN_LISTEN", value_parser = crate::opts::socket_addr)]
    admin_listen: Option<SocketAddr>,

    /// Serve HTTPS with this certificate chain (PEM, leaf first), read again on SIGHUP: new
    /// connections get the new certificate, open ones are not dropped. Needs --tls-key.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        env = "MSGRAPH_NOTIFY_TLS_CERT"
    )]
    tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1), read again on SIGHUP.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        env = "MSGRAPH_NOTIFY_TLS_KEY"
    )]
    tls_key: Option<PathBuf>,

    /// Worker threads that verify and decrypt. Default: the number of CPUs.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024), env = "MSGRAPH_NOTIFY_WORKERS")]
    workers: Option<u32>,

    /// Threads that move bytes: connections, TLS, HTTP, --forward's producing (the admin
    /// listener has a thread of its own). Default: one per four CPUs, at least one. Verifying and decrypting run on
    /// --workers, and each thread more here costs them CPU time in wake-ups; raise it when many
    /// TLS handshakes keep it busy.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024), env = "MSGRAPH_NOTIFY_IO_THREADS")]
    io_threads: Option<u32>,

    /// Keep each accepted body in this directory (an embedded database, `spool.redb`), synced
    /// to disk before the POST is answered 202, until every item of it is written to stdout; at
    /// start, what it holds is processed first. A kill or a crash then loses nothing that was
    /// acknowledged. Not used with --forward (the topic keeps what was acknowledged).
    #[arg(long, value_name = "DIR", env = "MSGRAPH_NOTIFY_SPOOL")]
    spool: Option<PathBuf>,

    /// The most bytes of bodies the spool holds; when full, POSTs are answered 503.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 30, value_parser = clap::value_parser!(u64).range(1..), env = "MSGRAPH_NOTIFY_SPOOL_MAX_BYTES")]
    spool_max_bytes: u64,

    #[cfg(feature = "kafka")]
    #[command(flatten)]
    forward: forward::ForwardOpts,
}

/// What the workers and the request handlers count, for the progress line and the last log line.
#[derive(Default)]
pub struct Stats {
    pub posts: AtomicU64,
    pub items: AtomicU64,
    pub rejected: AtomicU64,
    pub refused_bodies: AtomicU64,
}

impl Stats {
    /// The last log line.
    fn log_stopped(&self) {
        crate::log::info(&format!(
            "msgraph-notify serve: stopped after {} POSTs, {} items ({} rejected), {} bodies refused",
            self.posts.load(Ordering::Relaxed),
            self.items.load(Ordering::Relaxed),
            self.rejected.load(Ordering::Relaxed),
            self.refused_bodies.load(Ordering::Relaxed),
        ));
    }
}

impl Args {
    /// --max-body, or its default: 1 MiB, or with --forward the largest body a broker's default
    /// message.max.bytes takes as one record.
    fn max_body(&self) -> usize {
        #[cfg(feature = "kafka")]
        if forwarding(self) {
            return self.max_body.unwrap_or(forward::FORWARD_MAX_BODY);
        }
        self.max_body.unwrap_or(DEFAULT_MAX_BODY_BYTES)
    }
}

/// The replay store as `serve` watches it.
pub(crate) struct ReplayWatch {
    /// The fail-closed Redis store: while it is unavailable, POSTs are answered 503.
    down: Option<Arc<RedisReplayStore>>,
    /// `--replay-unavailable open`: the items let through unchecked.
    unchecked: Option<prometheus_client::metrics::counter::Counter>,
    /// The Redis store, fail-closed or fail-open: its fault and forgotten memories are named in
    /// `/readyz`, the warnings and the metrics.
    redis: Option<Arc<RedisReplayStore>>,
}

pub fn run(args: Args) -> Result<ExitCode, Fail> {
    crate::log::init(args.log.log_format);
    if args.max_body() as u64 > args.max_buffered {
        return Err(fail!(
            "--max-body {} exceeds --max-buffered {}: bodies between the two could never be read",
            args.max_body(),
            args.max_buffered
        ));
    }
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let io_threads = args.io_threads.map_or((cpus / 4).max(1), |n| n as usize);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(io_threads)
        .enable_all()
        .thread_name("serve-io")
        .build()
        .map_err(|e| fail!("cannot start the async runtime: {e}"))?;
    // SIGHUP before the keys load (PKCS#11 tokens, a JWKS fetch can take a while): a
    // certificate-renewal `kill -HUP` during start-up must not end the process (the default
    // action). Registered whether or not there is TLS.
    let hangup = crate::signal::hangup(&runtime);
    // Forwarding, the consumer of the topic keeps the replay store.
    let forwarding = forwarding(&args);
    let replay = if forwarding {
        crate::opts::Replay::off()
    } else {
        args.replay.store()?
    };
    let built = args.receiver.build(crate::opts::Limits {
        max_body: args.max_body(),
        max_items: args.receiver.max_items(),
        parallel: false,
        replay: replay.store,
        decrypts: !forwarding,
    })?;
    let watch = ReplayWatch {
        down: replay.fail_closed,
        unchecked: replay.unchecked,
        redis: replay.redis,
    };
    let workers = args.workers.map_or(cpus, |n| n as usize);
    runtime.block_on(serve(args, built, (workers, io_threads), watch, hangup))
}

/// Raises the soft open-file limit to the hard one; returns the limit in force.
fn raise_file_limit() -> u64 {
    #[cfg(unix)]
    {
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => limit,
            Err(_) => rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft),
        }
    }
    #[cfg(not(unix))]
    {
        u64::MAX
    }
}

/// `--max-connections`, lowered to stay under the open-file limit (said when lowered).
fn max_connections(wanted: u32) -> usize {
    let file_limit = raise_file_limit();
    let max_connections = u64::from(wanted)
        .min(file_limit.saturating_sub(RESERVED_FDS))
        .max(1) as usize;
    if max_connections < wanted as usize {
        crate::log::info(&format!(
            "msgraph-notify serve: at most {max_connections} connections (the open-file limit is {file_limit})"
        ));
    }
    max_connections
}

/// Start-up, in order (TLS, the listener, admin, SIGHUP, the signing keys, workers, readiness,
/// forwarding), the accept loop until SIGTERM or SIGINT, then the drain.
async fn serve(
    args: Args,
    built: crate::opts::Built,
    (workers, io_threads): (usize, usize),
    replay: ReplayWatch,
    hangup: Hangup,
) -> Result<ExitCode, Fail> {
    let shutdown = Shutdown::register();
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(tls::Tls::load(cert, key).map_err(Fail)?)),
        _ => None,
    };
    let max_connections = max_connections(args.max_connections);
    let spool = match &args.spool {
        Some(_) if forwarding(&args) => {
            crate::log::info(
                "msgraph-notify serve: --spool is not used with --forward (the topic keeps what \
                 was acknowledged)",
            );
            None
        }
        Some(dir) => Some(Arc::new(spool::Spool::open(dir, args.spool_max_bytes)?)),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| fail!("cannot listen on {}: {e}", args.listen))?;
    let local = listener
        .local_addr()
        .map_err(|e| fail!("cannot read the listening address: {e}"))?;
    let receiver = Arc::new(built.receiver);
    // Signing keys are needed unless the transport is trusted (no validation tokens).
    let keys = receiver.token_validator().map(|v| v.signing_keys().clone());
    let health = Arc::new(health::Health::new(
        keys,
        replay.down.clone(),
        replay.redis.clone(),
    ));
    let mut metrics = Metrics::new(&health, receiver.decryptor().keys());
    if let Some(counter) = replay.unchecked {
        metrics = metrics.with_replay_unchecked(counter);
    }
    // The keeper starts once the listener is bound: Graph's handshake for what it creates
    // reaches this process.
    #[cfg(feature = "manage")]
    let stop_keeper = Arc::new(tokio::sync::Notify::new());
    #[cfg(feature = "manage")]
    let kept = {
        let redis_url = Some(args.replay.replay.as_str())
            .filter(|u| u.starts_with("redis://") || u.starts_with("rediss://"));
        keeper::start(
            &args.keeper,
            &args.receiver,
            redis_url,
            metrics.registry_mut(),
            Arc::clone(&stop_keeper),
        )?
        .map(Arc::new)
    };
    let metrics = Arc::new(metrics);
    #[cfg_attr(not(feature = "manage"), allow(unused_mut))]
    let mut readiness = Readiness::new(Arc::clone(&health));
    #[cfg(feature = "manage")]
    if let Some(kept) = &kept {
        readiness = readiness.with_subscriptions(Arc::clone(kept));
    }
    let readiness = Arc::new(readiness);
    if let Some(admin) = args.admin_listen {
        admin::start(admin, [local, args.listen], &metrics, &readiness)?;
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    crate::log::info(&format!(
        "msgraph-notify serve: listening on {scheme}://{local}"
    ));
    announce::start(
        receiver.decryptor().keys(),
        &args.replay.replay,
        forward_target(&args),
        spool.as_ref().and(args.spool.as_deref()),
        (workers, io_threads),
    );
    tls::reload_on_hangup(hangup, tls.clone(), Arc::clone(&metrics));

    let fetcher = built.fetcher;
    if let Some(fetcher) = &fetcher {
        start_fetching_keys(fetcher).await;
    }

    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<http::Job>(args.queue as usize);
    let pool = worker::Pool {
        receiver: Arc::clone(&receiver),
        fetcher: fetcher.clone(),
        stats: Arc::clone(&stats),
        metrics: Arc::clone(&metrics),
        health: Arc::clone(&health),
        spool: spool.clone(),
        stop: Arc::clone(&stop),
        output: std::sync::Mutex::new(()),
        #[cfg(feature = "manage")]
        kept: kept.clone(),
    };
    let threads = pool.start(workers, rx)?;
    if crate::stderr_is_terminal() {
        worker::show_progress(Arc::clone(&stats), tx.downgrade());
    }
    if let Some(store) = &replay.down {
        probe_replay_store(Arc::clone(store));
    }
    readiness.started.store(true, Ordering::Release);
    let budget = Arc::new(Semaphore::new(
        usize::try_from(args.max_buffered).unwrap_or(usize::MAX >> 4),
    ));
    let next_request = Arc::new(AtomicU64::new(1));
    if let Some(spool) = &spool {
        spool_feed(
            Arc::clone(spool),
            tx.clone(),
            Arc::clone(&budget),
            Arc::clone(&next_request),
            Arc::clone(&metrics),
            Arc::clone(&stop),
        );
    }
    #[cfg(feature = "kafka")]
    let forward = match &args.forward.forward {
        Some(target) => Some(Arc::new(forward::Forward::new(
            &args.forward,
            target,
            args.max_body(),
            Arc::clone(&receiver),
            fetcher.clone(),
        )?)),
        None => None,
    };
    let shared = Arc::new(http::Shared {
        metrics: Arc::clone(&metrics),
        next_request,
        health,
        spool,
        queue: tx,
        budget,
        max_body: args.max_body(),
        stats: Arc::clone(&stats),
        warn_busy: crate::log::RateLimited::new(),
        #[cfg(feature = "kafka")]
        forward,
    });
    let accept = accept::Accept::new(
        listener,
        Arc::clone(&shared),
        tls,
        max_connections,
        Duration::from_secs(args.header_timeout),
    );
    let open = accept.until(shutdown.received()).await;

    // Stop accepting; let open requests finish (each connection closes after its answer).
    // Items waiting for a dependency stop waiting (a spooled body keeps what is left of it).
    readiness.draining.store(true, Ordering::Release);
    stop.store(true, Ordering::Release);
    #[cfg(feature = "manage")]
    stop_keeper.notify_one();
    open.close(SHUTDOWN_GRACE).await;
    // Every sender of the queue is gone: the workers drain what is queued, then stop.
    drop(shared);
    crate::log::info("msgraph-notify serve: stopping; draining the queue");
    let joined = worker::join(threads).await;
    use std::io::Write;
    let _ = std::io::stdout().lock().flush();
    stats.log_stopped();
    if !joined {
        return Err(fail!("a worker thread failed"));
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether `serve` forwards to a topic (`--forward`) rather than decrypting.
fn forwarding(args: &Args) -> bool {
    forward_target(args).is_some()
}

/// `--forward`'s target, when given.
fn forward_target(args: &Args) -> Option<&str> {
    #[cfg(feature = "kafka")]
    {
        args.forward.forward.as_deref()
    }
    #[cfg(not(feature = "kafka"))]
    {
        let _ = args;
        None
    }
}

/// Feeds the bodies the spool held at start to the workers, oldest first, each with its share
/// of the byte budget (waiting for room); stops early on shutdown (the rest stays spooled).
fn spool_feed(
    spool: Arc<spool::Spool>,
    queue: mpsc::Sender<http::Job>,
    budget: Arc<Semaphore>,
    next_request: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) {
    let held = spool.at_start().to_vec();
    if held.is_empty() {
        return;
    }
    crate::log::info(&format!(
        "msgraph-notify serve: processing {} bodies kept in the spool first",
        held.len()
    ));
    let total = budget.available_permits();
    tokio::spawn(async move {
        for (id, len) in held {
            if stop.load(Ordering::Acquire) {
                return;
            }
            let read = {
                let spool = Arc::clone(&spool);
                tokio::task::spawn_blocking(move || {
                    spool
                        .read(id)
                        .map(|b| b.map(|b| (b, spool.accepted_at(id))))
                })
                .await
            };
            let (body, accepted_at) = match read {
                Ok(Ok(Some((body, at)))) => (body, at.unwrap_or_else(std::time::SystemTime::now)),
                Ok(Ok(None)) => continue,
                Ok(Err(e)) => {
                    crate::log::warn(&format!("cannot read body {id} from the spool: {e}"));
                    continue;
                }
                Err(_) => return,
            };
            let permits = u32::try_from(len.min(total as u64)).unwrap_or(u32::MAX);
            let Ok(permit) = Arc::clone(&budget).acquire_many_owned(permits).await else {
                return;
            };
            let request = next_request.fetch_add(1, Ordering::Relaxed);
            metrics.queue_depth.inc();
            if queue
                .send(http::Job::spooled(id, request, body, accepted_at, permit))
                .await
                .is_err()
            {
                metrics.queue_depth.dec();
                return;
            }
        }
    });
}

/// The first fetch of the token signing keys (a failure is retried in the background), then
/// the refresher: at the TTL, and after a failure every min_refresh_interval.
async fn start_fetching_keys(fetcher: &Arc<KeyFetcher>) {
    if let Err(e) = fetcher.refresh().await {
        crate::log::warn(&format!(
            "fetching the token signing keys failed: {e} (retrying in the background)"
        ));
    }
    Arc::clone(fetcher).spawn_refresher();
}

/// Fail-closed: while Redis is unreachable POSTs get 503; probe it back to health.
fn probe_replay_store(store: Arc<RedisReplayStore>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if !store.is_available() {
                let probe = Arc::clone(&store);
                let _ = tokio::task::spawn_blocking(move || probe.ping()).await;
            }
        }
    });
}
