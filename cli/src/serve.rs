//! `serve`: an HTTP receiver. Answers at once, verifies and decrypts afterwards on worker threads.
//!
//! The async runtime only moves bytes: it answers the handshake, reads each body (up to the
//! limit) and queues it. CPU work (token signatures, RSA, AES) runs on dedicated worker threads
//! fed by a bounded queue, so a burst never delays the `202` answers of other POSTs, and memory
//! stays bounded: when the queue stays full, or too many requests are being read at once, the POST
//! is answered `503` (Graph retries later).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use msgraph_notify::receiver::{DEFAULT_MAX_BODY_BYTES, Receiver, Reply};
use msgraph_notify::token::fetch::KeyFetcher;
use tokio::sync::{Notify, Semaphore, mpsc};

use crate::opts::ReceiverOpts;
use crate::{Fail, fail};

/// How long a POST waits for room in the queue before it is answered 503.
const QUEUE_WAIT: Duration = Duration::from_secs(1);
/// How long one request may take to arrive and be queued.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long open connections may linger after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Run an HTTP receiver for Graph change notifications (POST on any path).
///
/// Answers the validation handshake (200, text/plain, the decoded token); answers notification
/// POSTs 202 at once, then verifies and decrypts them on worker threads, printing one JSON line
/// per item on stdout (as `decrypt` does). Bodies over --max-body get 413. On SIGTERM or SIGINT it
/// stops accepting, drains the queue, flushes and exits 0.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example:\n  \
    msgraph-notify serve --listen 0.0.0.0:8080 --key cert-2026=keys/key.pem \\\n      \
    --app-id $APP_ID --client-state $SECRET >> notifications.jsonl\n  \
    # notificationUrl: https://your-host.example/graph (put TLS in front: Graph requires HTTPS)")]
pub struct Args {
    /// The address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port; the address is
    /// printed on stderr).
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,

    #[command(flatten)]
    receiver: ReceiverOpts,

    /// The largest body accepted, in bytes; larger ones are answered 413.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    max_body: usize,

    /// How many bodies may wait for a worker. Memory stays under about --queue × --max-body.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    queue: u32,

    /// How many requests may be read at once; more are answered 503 at once. With --queue this
    /// bounds memory to about (--queue + --max-in-flight) × --max-body.
    #[arg(long, value_name = "N", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_in_flight: u32,

    /// Worker threads that verify and decrypt. Default: the number of CPUs.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    workers: Option<u32>,
}

/// One queued POST body.
struct Job {
    path: String,
    body: Bytes,
}

#[derive(Default)]
struct Stats {
    posts: AtomicU64,
    items: AtomicU64,
    rejected: AtomicU64,
    refused_bodies: AtomicU64,
}

#[derive(Clone)]
struct AppState {
    queue: mpsc::Sender<Job>,
    stats: Arc<Stats>,
}

pub fn run(args: Args) -> Result<ExitCode, Fail> {
    let built = args.receiver.build(args.max_body, false)?;
    let workers = args.workers.map_or_else(
        || std::thread::available_parallelism().map_or(2, |n| n.get()),
        |n| n as usize,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("msgraph-notify-io")
        .build()
        .map_err(|e| fail!("cannot start the async runtime: {e}"))?;
    runtime.block_on(serve(args, built, workers))
}

async fn serve(args: Args, built: crate::opts::Built, workers: usize) -> Result<ExitCode, Fail> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| fail!("cannot listen on {}: {e}", args.listen))?;
    let local = listener
        .local_addr()
        .map_err(|e| fail!("cannot read the listening address: {e}"))?;
    errln!("msgraph-notify serve: listening on http://{local}");

    let receiver = Arc::new(built.receiver);
    let fetcher = built.fetcher;
    if let Some(fetcher) = &fetcher {
        if let Err(e) = fetcher.refresh().await {
            errln!(
                "warning: fetching the token signing keys failed: {e} (retrying in the background)"
            );
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
        let (rx, receiver, fetcher, stats, handle) = (
            Arc::clone(&rx),
            Arc::clone(&receiver),
            fetcher.clone(),
            Arc::clone(&stats),
            handle.clone(),
        );
        let thread = std::thread::Builder::new()
            .name(format!("msgraph-notify-worker-{n}"))
            .spawn(move || work(&rx, &receiver, fetcher.as_deref(), &stats, &handle))
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

    let state = AppState {
        queue: tx,
        stats: Arc::clone(&stats),
    };
    let app = Router::new()
        .fallback(handle_request)
        .with_state(state)
        .layer(DefaultBodyLimit::max(args.max_body))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(Semaphore::new(args.max_in_flight as usize)),
            limit_in_flight,
        ));

    let stopping = Arc::new(Notify::new());
    let signalled = Arc::clone(&stopping);
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        signalled.notify_one();
    });
    tokio::select! {
        result = server => result.map_err(|e| fail!("the server failed: {e}"))?,
        () = async {
            stopping.notified().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => errln!("msgraph-notify serve: connections still open after {SHUTDOWN_GRACE:?}: closing them"),
    }
    // The server and its queue sender are gone: the workers drain what is queued, then stop.
    errln!("msgraph-notify serve: stopping; draining the queue");
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
    errln!(
        "msgraph-notify serve: stopped after {} POSTs, {} items ({} rejected), {} bodies refused",
        stats.posts.load(Ordering::Relaxed),
        stats.items.load(Ordering::Relaxed),
        stats.rejected.load(Ordering::Relaxed),
        stats.refused_bodies.load(Ordering::Relaxed),
    );
    if !joined {
        return Err(fail!("a worker thread failed"));
    }
    Ok(ExitCode::SUCCESS)
}

async fn handle_request(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "POST")],
            "Graph notifications are POSTed\n",
        )
            .into_response();
    }
    if let Some(token) = query.as_deref().and_then(Receiver::handshake_token) {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain")],
            token,
        )
            .into_response();
    }
    state.stats.posts.fetch_add(1, Ordering::Relaxed);
    let job = Job {
        path: uri.path().to_owned(),
        body,
    };
    match state.queue.send_timeout(job, QUEUE_WAIT).await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(_) => {
            state.stats.refused_bodies.fetch_add(1, Ordering::Relaxed);
            errln!("warning: the queue is full: answered 503 (Graph retries later)");
            busy()
        }
    }
}

/// Refuses a request with 503 before its body is read when too many are in flight; times out
/// requests whose body takes too long to arrive.
async fn limit_in_flight(
    State(slots): State<Arc<Semaphore>>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(permit) = slots.try_acquire() else {
        return busy();
    };
    // A sender that trickles its body (slowloris) loses its slot after REQUEST_TIMEOUT.
    let response = tokio::time::timeout(REQUEST_TIMEOUT, next.run(request))
        .await
        .unwrap_or_else(|_| (StatusCode::REQUEST_TIMEOUT, "too slow\n").into_response());
    drop(permit);
    response
}

fn busy() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        "busy\n",
    )
        .into_response()
}

/// A worker: takes bodies off the queue until it is closed and empty.
fn work(
    rx: &Mutex<mpsc::Receiver<Job>>,
    receiver: &Receiver,
    fetcher: Option<&KeyFetcher>,
    stats: &Stats,
    handle: &tokio::runtime::Handle,
) {
    loop {
        let job = {
            let mut rx = rx.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            rx.blocking_recv()
        };
        let Some(job) = job else { return };
        if let Some(fetcher) = fetcher {
            for kid in receiver.unknown_kids(&job.body) {
                handle.block_on(fetcher.ensure_kid(&kid));
            }
        }
        match receiver.receive(None, &job.body) {
            Ok(Reply::Notifications(items)) => {
                let rejected = items.iter().filter(|i| i.outcome.is_rejected()).count();
                stats.items.fetch_add(items.len() as u64, Ordering::Relaxed);
                stats.rejected.fetch_add(rejected as u64, Ordering::Relaxed);
                if let Err(e) = crate::decrypt::write_items(&items) {
                    errln!("warning: cannot write to stdout: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => {
                stats.refused_bodies.fetch_add(1, Ordering::Relaxed);
                errln!("warning: POST {}: body refused: {e}", job.path);
            }
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
