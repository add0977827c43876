//! The accept loop and the connection table: at most `--max-connections` open; when full, the
//! oldest connection that is not inside a request is closed to make room. TLS handshakes count
//! as waiting for a head (`--header-timeout`). On shutdown the listener closes and open
//! connections get [`SHUTDOWN_GRACE`](super::SHUTDOWN_GRACE) to finish their answers.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::http::{Shared, handle_request};
use super::tls::Tls;

/// The most bytes of request head (and of one read) a connection buffers.
pub const CONN_BUFFER: usize = 16 * 1024;

/// One open client connection, as the accept loop sees it.
struct ConnEntry {
    /// Inside a request (head complete, body or answer under way): never evicted.
    busy: Arc<AtomicBool>,
    /// Told to close the connection.
    close: Arc<Notify>,
}

/// The open connections of one listener, by the order they came in, at most `max`: the public
/// listener's (`--max-connections`) and the admin listener's
/// ([`ADMIN_CONNECTIONS`](super::ADMIN_CONNECTIONS)) follow this one rule.
#[derive(Clone)]
pub struct Table {
    conns: Arc<Mutex<BTreeMap<u64, ConnEntry>>>,
    next_id: Arc<AtomicU64>,
    max: usize,
}

/// The public listener and what each connection needs.
pub struct Accept {
    listener: TcpListener,
    http: hyper::server::conn::http1::Builder,
    shared: Arc<Shared>,
    tls: Option<Arc<Tls>>,
    table: Table,
    /// `--header-timeout`, which also bounds a TLS handshake.
    header_timeout: Duration,
}

/// The connections left open when accepting stopped, and the means to close them.
pub struct Open {
    listener: TcpListener,
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
}

impl Accept {
    pub fn new(
        listener: TcpListener,
        shared: Arc<Shared>,
        tls: Option<Arc<Tls>>,
        max_connections: usize,
        header_timeout: Duration,
    ) -> Self {
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_buf_size(CONN_BUFFER)
            .keep_alive(true);
        Accept {
            listener,
            http,
            shared,
            tls,
            table: Table::new(max_connections),
            header_timeout,
        }
    }

    /// Accepts connections until `signal` resolves.
    pub async fn until(self, signal: impl Future<Output = ()>) -> Open {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let warn_accept = crate::log::RateLimited::new();
        tokio::pin!(signal);
        loop {
            let stream = tokio::select! {
                () = &mut signal => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                accepted = self.listener.accept() => match accepted {
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
            let admitted = self.table.admit();
            tasks.spawn(self.connection(stream, admitted, stop_rx.clone()));
        }
        Open {
            listener: self.listener,
            tasks,
            stop: stop_tx,
        }
    }

    /// One connection's task: the TLS handshake if any, the connection, then its table entry
    /// goes.
    fn connection(
        &self,
        stream: TcpStream,
        admitted: Admitted,
        mut stop_rx: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (shared, http, tls) = (
            Arc::clone(&self.shared),
            self.http.clone(),
            self.tls.clone(),
        );
        let handshake_timeout = self.header_timeout;
        async move {
            let (busy, close) = (&admitted.busy, &admitted.close);
            match tls {
                None => {
                    let io = TokioIo::new(stream);
                    serve_connection(io, &http, &shared, busy, close, &mut stop_rx).await;
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
                        serve_connection(io, &http, &shared, busy, close, &mut stop_rx).await;
                    }
                }
            }
            drop(admitted);
        }
    }
}

impl Table {
    /// A table that holds at most `max` connections.
    pub fn new(max: usize) -> Self {
        Table {
            conns: Arc::default(),
            next_id: Arc::default(),
            max,
        }
    }

    /// Enters a new connection; when that makes the table too full, closes the oldest other
    /// connection that is not inside a request (when all are, the oldest of those). The
    /// connection's task holds the [`Admitted`] while it runs: dropping it leaves the table.
    pub fn admit(&self) -> Admitted {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let busy = Arc::new(AtomicBool::new(false));
        let close = Arc::new(Notify::new());
        let mut table = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        table.insert(
            id,
            ConnEntry {
                busy: Arc::clone(&busy),
                close: Arc::clone(&close),
            },
        );
        if table.len() > self.max {
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
        Admitted {
            id,
            busy,
            close,
            conns: Arc::clone(&self.conns),
        }
    }
}

/// One connection's place in a [`Table`]; leaves the table when dropped.
pub struct Admitted {
    id: u64,
    /// Inside a request: set through [`BusyGuard`] while one is served.
    pub busy: Arc<AtomicBool>,
    /// Notified when the table closes this connection to make room.
    pub close: Arc<Notify>,
    conns: Arc<Mutex<BTreeMap<u64, ConnEntry>>>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

impl Open {
    /// Stops accepting; lets open requests finish (each connection closes after its answer)
    /// for up to `grace`, then closes what is still open.
    pub async fn close(mut self, grace: Duration) {
        drop(self.listener);
        let _ = self.stop.send(true);
        let tasks = &mut self.tasks;
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            crate::log::warn(&format!(
                "msgraph-notify serve: connections still open after {grace:?}: closing them"
            ));
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
    }
}

/// Serves one connection (plain or TLS) until it ends, is evicted, or the server stops.
async fn serve_connection<I>(
    io: I,
    http: &hyper::server::conn::http1::Builder,
    shared: &Arc<Shared>,
    busy: &Arc<AtomicBool>,
    close: &Notify,
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
