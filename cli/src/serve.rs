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

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use msgraph_notify::Error;
use msgraph_notify::receiver::{DEFAULT_MAX_BODY_BYTES, Receiver, Reply};
use msgraph_notify::replay::RedisReplayStore;
use msgraph_notify::token::fetch::KeyFetcher;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use crate::admin::{Metrics, Readiness};
use crate::opts::{ReceiverOpts, ReplayOpts};
use crate::{Fail, fail};

/// How long a POST waits for room in the queue before it is answered 503.
const QUEUE_WAIT: Duration = Duration::from_secs(1);
/// How long a request body may take to arrive, once its head is complete.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long open connections may linger after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// The most bytes of request head (and of one read) a connection buffers.
pub const CONN_BUFFER: usize = 16 * 1024;
/// File descriptors kept free for everything but client connections (workers, key fetches,
/// output, the listener).
const RESERVED_FDS: u64 = 64;

/// Run an HTTP receiver for Graph change notifications (POST on any path).
///
/// Answers the validation handshake (200, text/plain, the decoded token); answers notification
/// POSTs 202 at once, then verifies and decrypts them on worker threads, printing one JSON line
/// per item on stdout (as `decrypt` does). Bodies over --max-body get 413. Replayed items are
/// reported as duplicates (--replay). On SIGTERM or SIGINT it stops accepting, drains the queue,
/// flushes and exits 0.
///
/// Memory stays under about --max-buffered + --max-connections × 48 KiB + --workers × 10 ×
/// --max-body, whatever arrives (SECURITY.md gives the measurement).
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
    #[arg(long, value_name = "ADDR", env = "MSGRAPH_NOTIFY_LISTEN")]
    listen: SocketAddr,

    #[command(flatten)]
    receiver: ReceiverOpts,

    #[command(flatten)]
    replay: ReplayOpts,

    /// The largest body accepted, in bytes; larger ones are answered 413.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES, env = "MSGRAPH_NOTIFY_MAX_BODY")]
    max_body: usize,

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

    /// Log lines on stderr: `json` (one object per line: timestamp, level, message, fields) or
    /// `text`. Default: text on a terminal, JSON otherwise.
    #[arg(long, value_name = "FORMAT", env = "MSGRAPH_NOTIFY_LOG_FORMAT")]
    log_format: Option<crate::log::Format>,

    /// Serve `GET /healthz`, `/readyz` and `/metrics` (Prometheus) on this address, e.g.
    /// 127.0.0.1:9090. Never on the public listener.
    #[arg(long, value_name = "ADDR", env = "MSGRAPH_NOTIFY_ADMIN_LISTEN")]
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

    #[cfg(feature = "kafka")]
    #[command(flatten)]
    forward: crate::forward::ForwardOpts,
}

/// One queued POST body, with the share of the byte budget it holds until it is processed.
struct Job {
    /// The POST's number since start (`request_id` in the logs).
    id: u64,
    arrived: Instant,
    path: String,
    body: Vec<u8>,
    _budget: OwnedSemaphorePermit,
}

#[derive(Default)]
struct Stats {
    posts: AtomicU64,
    items: AtomicU64,
    rejected: AtomicU64,
    refused_bodies: AtomicU64,
}

/// What every request handler shares.
struct Shared {
    metrics: Arc<Metrics>,
    next_request: AtomicU64,
    /// The fail-closed replay store: while it is unavailable, POSTs are answered 503.
    replay_down: Option<Arc<RedisReplayStore>>,
    queue: mpsc::Sender<Job>,
    budget: Arc<Semaphore>,
    max_body: usize,
    stats: Arc<Stats>,
    warn_busy: crate::log::RateLimited,
    /// `--forward`: POSTs are screened and produced to a topic instead of queued.
    #[cfg(feature = "kafka")]
    forward: Option<Arc<crate::forward::Forward>>,
}

/// One open client connection, as the accept loop sees it.
struct ConnEntry {
    /// Inside a request (head complete, body or answer under way): never evicted.
    busy: Arc<AtomicBool>,
    /// Told to close the connection.
    close: Arc<tokio::sync::Notify>,
}

pub fn run(args: Args) -> Result<ExitCode, Fail> {
    crate::log::init(args.log_format);
    if args.max_body as u64 > args.max_buffered {
        return Err(fail!(
            "--max-body {} exceeds --max-buffered {}: bodies between the two could never be read",
            args.max_body,
            args.max_buffered
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("msgraph-notify-io")
        .build()
        .map_err(|e| fail!("cannot start the async runtime: {e}"))?;
    // SIGHUP before the keys load (PKCS#11 tokens, a JWKS fetch can take a while): a
    // certificate-renewal `kill -HUP` during start-up must not end the process (the default
    // action). Registered whether or not there is TLS.
    #[cfg(unix)]
    let hangup = {
        let _in_runtime = runtime.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
    };
    #[cfg(not(unix))]
    let hangup = None::<()>;
    // Forwarding, the consumer of the topic keeps the replay store.
    #[cfg(feature = "kafka")]
    let replay = match args.forward.forward {
        Some(_) => crate::opts::Replay {
            store: None,
            fail_closed: None,
            unchecked: None,
        },
        None => args.replay.store()?,
    };
    #[cfg(not(feature = "kafka"))]
    let replay = args.replay.store()?;
    let built = args.receiver.build(crate::opts::Limits {
        max_body: args.max_body,
        max_items: args.receiver.max_items as usize,
        parallel: false,
        replay: replay.store,
        #[cfg(feature = "kafka")]
        decrypts: args.forward.forward.is_none(),
        #[cfg(not(feature = "kafka"))]
        decrypts: true,
    })?;
    let fail_closed = replay.fail_closed;
    let unchecked = replay.unchecked;
    let workers = args.workers.map_or_else(
        || std::thread::available_parallelism().map_or(2, |n| n.get()),
        |n| n as usize,
    );
    runtime.block_on(serve(args, built, workers, fail_closed, unchecked, hangup))
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

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

async fn serve(
    args: Args,
    built: crate::opts::Built,
    workers: usize,
    replay_down: Option<Arc<RedisReplayStore>>,
    unchecked: Option<prometheus_client::metrics::counter::Counter>,
    hangup: Hangup,
) -> Result<ExitCode, Fail> {
    let shutdown = ShutdownSignal::register();
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(crate::tls::Tls::load(cert, key).map_err(Fail)?)),
        _ => None,
    };
    let file_limit = raise_file_limit();
    let max_connections = u64::from(args.max_connections)
        .min(file_limit.saturating_sub(RESERVED_FDS))
        .max(1) as usize;
    if max_connections < args.max_connections as usize {
        crate::log::info(&format!(
            "msgraph-notify serve: at most {max_connections} connections (the open-file limit is {file_limit})"
        ));
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| fail!("cannot listen on {}: {e}", args.listen))?;
    let local = listener
        .local_addr()
        .map_err(|e| fail!("cannot read the listening address: {e}"))?;
    let mut metrics = Metrics::new();
    if let Some(counter) = unchecked {
        metrics = metrics.with_replay_unchecked(counter);
    }
    let metrics = Arc::new(metrics);
    let readiness = Arc::new(Readiness::default());
    if let Some(admin) = args.admin_listen {
        if admin.port() != 0 && (admin == local || admin == args.listen) {
            return Err(fail!("--admin-listen must differ from --listen"));
        }
        let admin = tokio::net::TcpListener::bind(admin)
            .await
            .map_err(|e| fail!("cannot listen on --admin-listen {admin}: {e}"))?;
        let at = admin
            .local_addr()
            .map_err(|e| fail!("cannot read the admin address: {e}"))?;
        tokio::spawn(crate::admin::serve_admin(
            admin,
            Arc::clone(&metrics),
            Arc::clone(&readiness),
        ));
        crate::log::info(&format!(
            "msgraph-notify serve: admin on http://{at} (/healthz, /readyz, /metrics)"
        ));
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    crate::log::info(&format!(
        "msgraph-notify serve: listening on {scheme}://{local}"
    ));
    #[cfg(unix)]
    if let Some(mut hangup) = hangup {
        let (tls, metrics) = (tls.clone(), Arc::clone(&metrics));
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                let Some(tls) = &tls else {
                    crate::log::info("SIGHUP: nothing to reload (no --tls-cert)");
                    continue;
                };
                let tls = Arc::clone(tls);
                match tokio::task::spawn_blocking(move || tls.reload()).await {
                    Ok(Ok(())) => {
                        metrics.tls_reloaded(true);
                        crate::log::info(
                            "SIGHUP: the TLS certificate was reloaded; new connections use it",
                        );
                    }
                    Ok(Err(e)) => {
                        metrics.tls_reloaded(false);
                        crate::log::warn(&format!(
                            "SIGHUP: the TLS certificate was not reloaded, the previous one stays: {e}"
                        ));
                    }
                    Err(_) => metrics.tls_reloaded(false),
                }
            }
        });
    }

    let receiver = Arc::new(built.receiver);
    let fetcher = built.fetcher;
    if let Some(fetcher) = &fetcher {
        if let Err(e) = fetcher.refresh().await {
            crate::log::warn(&format!(
                "fetching the token signing keys failed: {e} (retrying in the background)"
            ));
        }
        // Refreshes at the TTL, and after a failure every min_refresh_interval.
        Arc::clone(fetcher).spawn_refresher();
    }

    let stats = Arc::new(Stats::default());
    let (tx, rx) = mpsc::channel::<Job>(args.queue as usize);
    let rx = Arc::new(Mutex::new(rx));
    let handle = tokio::runtime::Handle::current();
    let mut threads = Vec::with_capacity(workers);
    for n in 0..workers {
        let (rx, receiver, fetcher, stats, handle, metrics) = (
            Arc::clone(&rx),
            Arc::clone(&receiver),
            fetcher.clone(),
            Arc::clone(&stats),
            handle.clone(),
            Arc::clone(&metrics),
        );
        let thread = std::thread::Builder::new()
            .name(format!("msgraph-notify-worker-{n}"))
            .spawn(move || {
                work(
                    &rx,
                    &receiver,
                    fetcher.as_deref(),
                    &stats,
                    &metrics,
                    &handle,
                );
            })
            .map_err(|e| fail!("cannot start a worker thread: {e}"))?;
        threads.push(thread);
    }

    if crate::stderr_is_terminal() {
        let stats = Arc::clone(&stats);
        let tx = tx.downgrade();
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

    if let Some(store) = &replay_down {
        // Fail-closed: while Redis is unreachable POSTs get 503; probe it back to health.
        let store = Arc::clone(store);
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
    // Ready once the workers run and the signing keys are loaded (fetched keys may come later).
    {
        let (readiness, keys) = (
            Arc::clone(&readiness),
            receiver.token_validator().map(|v| v.signing_keys().clone()),
        );
        tokio::spawn(async move {
            while keys.as_ref().is_some_and(|k| k.snapshot().is_empty()) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            readiness.ready.store(true, Ordering::Release);
        });
    }
    #[cfg(feature = "kafka")]
    let forward = match &args.forward.forward {
        Some(target) => Some(Arc::new(crate::forward::Forward::new(
            target,
            args.max_body,
            Arc::clone(&receiver),
            fetcher.clone(),
        )?)),
        None => None,
    };
    let shared = Arc::new(Shared {
        metrics: Arc::clone(&metrics),
        next_request: AtomicU64::new(1),
        replay_down,
        queue: tx,
        budget: Arc::new(Semaphore::new(
            usize::try_from(args.max_buffered).unwrap_or(usize::MAX >> 4),
        )),
        max_body: args.max_body,
        stats: Arc::clone(&stats),
        warn_busy: crate::log::RateLimited::new(),
        #[cfg(feature = "kafka")]
        forward,
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(args.header_timeout))
        .max_buf_size(CONN_BUFFER)
        .keep_alive(true);

    let (stop_tx, stop_rx) = watch::channel(false);
    let conns: Arc<Mutex<BTreeMap<u64, ConnEntry>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    let mut next_id: u64 = 0;
    let warn_accept = crate::log::RateLimited::new();
    let signal = shutdown.received();
    tokio::pin!(signal);
    loop {
        let stream = tokio::select! {
            () = &mut signal => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors or similar: back off briefly, keep serving.
                    warn_accept.warn(&format!("cannot accept a connection: {e}"));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let id = next_id;
        next_id += 1;
        let busy = Arc::new(AtomicBool::new(false));
        let close = Arc::new(tokio::sync::Notify::new());
        {
            let mut table = conns.lock().unwrap_or_else(|p| p.into_inner());
            table.insert(
                id,
                ConnEntry {
                    busy: Arc::clone(&busy),
                    close: Arc::clone(&close),
                },
            );
            if table.len() > max_connections {
                // Make room: close the oldest connection that is not inside a request; when all
                // older ones are (slow bodies), the oldest of those. Never the new connection:
                // a table full of slow senders must not turn Graph away at the door.
                let older = || table.iter().filter(|(k, _)| **k != id);
                let victim = older()
                    .find(|(_, c)| !c.busy.load(Ordering::Acquire))
                    .or_else(|| older().next())
                    .map(|(k, _)| *k);
                if let Some(entry) = victim.and_then(|k| table.remove(&k)) {
                    entry.close.notify_one();
                }
            }
        }
        let (shared, conns, http, mut stop_rx, tls) = (
            Arc::clone(&shared),
            Arc::clone(&conns),
            http.clone(),
            stop_rx.clone(),
            tls.clone(),
        );
        let handshake_timeout = Duration::from_secs(args.header_timeout);
        tasks.spawn(async move {
            match tls {
                None => {
                    let io = TokioIo::new(stream);
                    connection(io, &http, &shared, &busy, &close, &mut stop_rx).await;
                }
                Some(tls) => {
                    // The handshake counts as waiting for a head: bounded by --header-timeout,
                    // and the connection stays evictable (not busy) until a request begins.
                    let handshake =
                        tokio::time::timeout(handshake_timeout, tls.acceptor().accept(stream));
                    let accepted = tokio::select! {
                        done = handshake => done.ok().and_then(Result::ok),
                        () = close.notified() => None,
                        () = stopped(&mut stop_rx) => None,
                    };
                    if let Some(stream) = accepted {
                        let io = TokioIo::new(stream);
                        connection(io, &http, &shared, &busy, &close, &mut stop_rx).await;
                    }
                }
            }
            conns.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        });
    }

    // Stop accepting; let open requests finish (each connection closes after its answer).
    readiness.draining.store(true, Ordering::Release);
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        crate::log::warn(&format!(
            "msgraph-notify serve: connections still open after {SHUTDOWN_GRACE:?}: closing them"
        ));
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    // Every sender of the queue is gone: the workers drain what is queued, then stop.
    drop(shared);
    crate::log::info("msgraph-notify serve: stopping; draining the queue");
    let joined = tokio::task::spawn_blocking(move || {
        // Join every thread, even after a failed one.
        let failed = threads
            .into_iter()
            .map(|t| t.join())
            .filter(Result::is_err)
            .count();
        failed == 0
    })
    .await
    .unwrap_or(false);
    use std::io::Write;
    let _ = std::io::stdout().lock().flush();
    crate::log::info(&format!(
        "msgraph-notify serve: stopped after {} POSTs, {} items ({} rejected), {} bodies refused",
        stats.posts.load(Ordering::Relaxed),
        stats.items.load(Ordering::Relaxed),
        stats.rejected.load(Ordering::Relaxed),
        stats.refused_bodies.load(Ordering::Relaxed),
    ));
    if !joined {
        return Err(fail!("a worker thread failed"));
    }
    Ok(ExitCode::SUCCESS)
}

/// Serves one connection (plain or TLS) until it ends, is evicted, or the server stops.
async fn connection<I>(
    io: I,
    http: &hyper::server::conn::http1::Builder,
    shared: &Arc<Shared>,
    busy: &Arc<AtomicBool>,
    close: &tokio::sync::Notify,
    stop_rx: &mut watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = {
        let (shared, busy) = (Arc::clone(shared), Arc::clone(busy));
        hyper::service::service_fn(move |request| {
            let (shared, busy) = (Arc::clone(&shared), Arc::clone(&busy));
            async move {
                let _busy = BusyGuard::enter(&busy);
                let start = Instant::now();
                let answer = handle_request(&shared, request).await;
                shared.metrics.answered(answer.status(), start.elapsed());
                Ok::<_, Infallible>(answer)
            }
        })
    };
    let connection = http.serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = close.notified() => {}
        () = stopped(stop_rx) => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.as_mut().await;
        }
    }
}

/// Resolves once the shutdown flag is set (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        let set = *stop.borrow_and_update();
        if set || stop.changed().await.is_err() {
            return;
        }
    }
}

/// Marks a connection as inside a request while alive.
struct BusyGuard<'a>(&'a AtomicBool);

impl<'a> BusyGuard<'a> {
    fn enter(flag: &'a AtomicBool) -> Self {
        flag.store(true, Ordering::Release);
        BusyGuard(flag)
    }
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode, text: &'static str) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn busy() -> Answer {
    let mut response = answer(StatusCode::SERVICE_UNAVAILABLE, "busy\n");
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

async fn handle_request(shared: &Shared, request: Request<Incoming>) -> Answer {
    if request.method() != Method::POST {
        let mut response = answer(
            StatusCode::METHOD_NOT_ALLOWED,
            "Graph notifications are POSTed\n",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    // The handshake needs no body and no budget: it is answered whatever else is going on.
    if let Some(token) = request.uri().query().and_then(Receiver::handshake_token) {
        let mut response = Response::new(Full::new(Bytes::from(token)));
        let headers = response.headers_mut();
        // The token is reflected: never let a browser render it as anything but text.
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        return response;
    }
    shared.stats.posts.fetch_add(1, Ordering::Relaxed);
    let arrived = Instant::now();
    if shared
        .replay_down
        .as_ref()
        .is_some_and(|s| !s.is_available())
    {
        shared.stats.refused_bodies.fetch_add(1, Ordering::Relaxed);
        shared.warn_busy.warn(
            "the replay store is unavailable: answered 503 (Graph retries later; \
             --replay-unavailable open would process without the duplicate check)",
        );
        return busy();
    }
    let path = request.uri().path().to_owned();
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > shared.max_body as u64) {
        shared.stats.refused_bodies.fetch_add(1, Ordering::Relaxed);
        return answer(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n");
    }
    let read = tokio::time::timeout(
        BODY_TIMEOUT,
        read_body(
            request.into_body(),
            declared.and_then(|n| usize::try_from(n).ok()),
            shared.max_body,
            &shared.budget,
        ),
    )
    .await;
    let (body, budget) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(refusal)) => {
            shared.stats.refused_bodies.fetch_add(1, Ordering::Relaxed);
            return match refusal {
                Refusal::TooLarge => answer(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n"),
                Refusal::Budget => {
                    shared
                        .warn_busy
                        .warn("the body budget (--max-buffered) is spent: answered 503");
                    busy()
                }
                Refusal::Broken => answer(StatusCode::BAD_REQUEST, "incomplete body\n"),
            };
        }
        Err(_) => {
            shared.stats.refused_bodies.fetch_add(1, Ordering::Relaxed);
            return answer(StatusCode::REQUEST_TIMEOUT, "too slow\n");
        }
    };
    #[cfg(feature = "kafka")]
    if let Some(forward) = &shared.forward {
        return forwarded(shared, forward.forward(body, arrived).await);
    }
    let job = Job {
        id: shared.next_request.fetch_add(1, Ordering::Relaxed),
        arrived,
        path,
        body,
        _budget: budget,
    };
    // Counted before the send: the worker may take it off at once.
    shared.metrics.queue_depth.inc();
    match shared.queue.send_timeout(job, QUEUE_WAIT).await {
        Ok(()) => answer(StatusCode::ACCEPTED, ""),
        Err(_) => {
            shared.metrics.queue_depth.dec();
            shared.stats.refused_bodies.fetch_add(1, Ordering::Relaxed);
            shared
                .warn_busy
                .warn("the queue is full: answered 503 (Graph retries later)");
            busy()
        }
    }
}

/// The answer to a forwarded POST (`--forward`).
#[cfg(feature = "kafka")]
fn forwarded(shared: &Shared, outcome: crate::forward::Forwarded) -> Answer {
    use crate::forward::Forwarded;
    match outcome {
        Forwarded::Accepted => answer(StatusCode::ACCEPTED, ""),
        Forwarded::Refused(e) => {
            shared.stats.refused_bodies.fetch_add(1, Ordering::Relaxed);
            shared.warn_busy.warn(&format!("body refused: {e}"));
            answer(
                StatusCode::BAD_REQUEST,
                "not a usable notification collection\n",
            )
        }
        Forwarded::Unavailable(why) => {
            shared.stats.refused_bodies.fetch_add(1, Ordering::Relaxed);
            shared.warn_busy.warn(&format!(
                "--forward: {why}: answered 503 (Graph retries later)"
            ));
            busy()
        }
    }
}

enum Refusal {
    TooLarge,
    Budget,
    Broken,
}

/// Reads a body, holding budget permits for its buffer's capacity as bytes arrive: what a sender
/// has not sent costs nothing. The buffer grows by doubling, never past the declared length (at
/// most `limit`, checked before), so a body with a `Content-Length` ends holding exactly that.
async fn read_body(
    mut body: Incoming,
    declared: Option<usize>,
    limit: usize,
    budget: &Arc<Semaphore>,
) -> Result<(Vec<u8>, OwnedSemaphorePermit), Refusal> {
    let mut held = Arc::clone(budget)
        .try_acquire_many_owned(0)
        .map_err(|_| Refusal::Budget)?;
    // The declared length caps the growth (no doubling past it), but nothing is reserved before
    // the bytes arrive: a thousand heads declaring 1 MiB reserve nothing.
    let cap = declared.unwrap_or(limit).min(limit);
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(Refusal::Broken);
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let needed = buf.len().saturating_add(data.len());
        if needed > limit {
            return Err(Refusal::TooLarge);
        }
        let capacity = if needed > buf.capacity() {
            needed.max(buf.capacity().saturating_mul(2).max(4096).min(cap))
        } else {
            buf.capacity()
        };
        let more = capacity.saturating_sub(held.num_permits());
        if more > 0 {
            let permits = u32::try_from(more).map_err(|_| Refusal::TooLarge)?;
            let extra = Arc::clone(budget)
                .try_acquire_many_owned(permits)
                .map_err(|_| Refusal::Budget)?;
            held.merge(extra);
        }
        buf.reserve_exact(capacity - buf.len());
        buf.extend_from_slice(&data);
    }
    Ok((buf, held))
}

/// A worker: takes bodies off the queue until it is closed and empty.
fn work(
    rx: &Mutex<mpsc::Receiver<Job>>,
    receiver: &Receiver,
    fetcher: Option<&KeyFetcher>,
    stats: &Stats,
    metrics: &Metrics,
    handle: &tokio::runtime::Handle,
) {
    let warn_refused = crate::log::RateLimited::new();
    let warn_rejected = crate::log::RateLimited::new();
    loop {
        let job = {
            let mut rx = rx.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            rx.blocking_recv()
        };
        let Some(job) = job else { return };
        metrics.queue_depth.dec();
        if let Some(fetcher) = fetcher {
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
                if let Err(e) = crate::decrypt::write_items(&items) {
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

/// How long a worker keeps retrying items the replay store could not check.
const REPLAY_RETRY_FOR: Duration = Duration::from_secs(60);

/// Re-runs the items of `items` that were rejected only because the replay store could not
/// answer (`Error::ReplayStore`), as a body of just those items with the original tokens, with
/// back-off, for up to [`REPLAY_RETRY_FOR`]; each outcome replaces the rejection at its index.
/// Items still unchecked after that keep their rejection (logged, and counted).
fn retry_unchecked(receiver: &Receiver, body: &[u8], items: &mut [msgraph_notify::receiver::Item]) {
    use msgraph_notify::receiver::Outcome;
    let unchecked = |items: &[msgraph_notify::receiver::Item]| -> Vec<usize> {
        items
            .iter()
            .enumerate()
            .filter(|(_, i)| matches!(&i.outcome, Outcome::Rejected(r) if matches!(r.error, Error::ReplayStore(_)) && r.notification.is_some()))
            .map(|(at, _)| at)
            .collect()
    };
    let mut pending = unchecked(items);
    if pending.is_empty() {
        return;
    }
    let tokens = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|mut v| v.get_mut("validationTokens").map(serde_json::Value::take))
        .unwrap_or(serde_json::Value::Null);
    let start = Instant::now();
    let mut pause = Duration::from_millis(250);
    while !pending.is_empty() && start.elapsed() < REPLAY_RETRY_FOR {
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(5));
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
        pending = unchecked(items);
    }
}

/// One log event per rejected item (at most one a second, with the count of those suppressed):
/// the request, the item's index, subscription, tenant and the reason. Never the clientState,
/// never data.
fn log_rejections(
    items: &[msgraph_notify::receiver::Item],
    request_id: u64,
    limit: &crate::log::RateLimited,
) {
    for item in items {
        let msgraph_notify::receiver::Outcome::Rejected(r) = &item.outcome else {
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
            reason = crate::admin::reason(&r.error),
            suppressed,
            "item rejected: {}",
            r.error
        );
    }
}

/// SIGTERM and SIGINT, registered at once (so a signal that arrives during start-up, while the
/// signing keys are fetched, is not lost to the default action), awaited later.
struct ShutdownSignal {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignal {
    fn register() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            ShutdownSignal {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        ShutdownSignal {}
    }

    async fn received(mut self) {
        #[cfg(unix)]
        {
            let term = async {
                match &mut self.term {
                    Some(s) => drop(s.recv().await),
                    None => std::future::pending().await,
                }
            };
            let int = async {
                match &mut self.int {
                    Some(s) => drop(s.recv().await),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = term => {},
                () = int => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
