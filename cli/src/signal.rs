//! Signals, registered early and awaited later (linkerd2-proxy's `linkerd/signal`, axum's
//! `shutdown_signal()`): a signal that arrives during start-up (keys loading, a JWKS fetch) is
//! held until the command waits for it, instead of being lost to the default action (which ends
//! the process without draining or committing).
//!
//! `serve` awaits [`Shutdown::received`] inside its runtime and reloads TLS on [`hangup`];
//! `consume`, whose loop is blocking, has a flag set by [`Shutdown::set_on_signal`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{Fail, fail};

/// SIGTERM and SIGINT (Ctrl-C elsewhere), registered at once, awaited later.
pub struct Shutdown {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Shutdown {
    /// Registers both signals; one that cannot be handled keeps its default action. Call inside
    /// a Tokio runtime.
    pub fn register() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Shutdown {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Shutdown {}
    }

    /// As [`Shutdown::register`], but a signal that cannot be handled is an error that names it.
    fn require() -> Result<Self, Fail> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Shutdown {
                term: Some(
                    signal(SignalKind::terminate())
                        .map_err(|e| fail!("cannot handle SIGTERM: {e}"))?,
                ),
                int: Some(
                    signal(SignalKind::interrupt())
                        .map_err(|e| fail!("cannot handle SIGINT: {e}"))?,
                ),
            })
        }
        #[cfg(not(unix))]
        Ok(Shutdown {})
    }

    /// Resolves at the first SIGTERM or SIGINT received since registration.
    pub async fn received(mut self) {
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

    /// For a blocking loop: registers both signals now (failing if either cannot be handled)
    /// and sets `stop` from a thread of its own when one arrives.
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub fn set_on_signal(stop: Arc<AtomicBool>) -> Result<(), Fail> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| fail!("cannot start the signal handler: {e}"))?;
        let shutdown = {
            let _entered = runtime.enter();
            Shutdown::require()?
        };
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                runtime.block_on(shutdown.received());
                stop.store(true, Ordering::Release);
            })
            .map_err(|e| fail!("cannot start the signal handler: {e}"))?;
        Ok(())
    }
}

/// SIGHUP, registered (inside `runtime`) before the slow parts of start-up so that a
/// certificate-renewal `kill -HUP` then does not end the process; `None` where it cannot be
/// handled (and off Unix).
#[cfg(unix)]
pub type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
pub type Hangup = Option<()>;

/// Registers SIGHUP inside `runtime` (see [`Hangup`]).
pub fn hangup(runtime: &tokio::runtime::Runtime) -> Hangup {
    #[cfg(unix)]
    {
        let _in_runtime = runtime.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
    }
    #[cfg(not(unix))]
    {
        let _ = runtime;
        None
    }
}
