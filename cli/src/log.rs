//! Diagnostics on stderr. `serve` and `consume` log through `tracing` (`--log-format json|text`: one JSON
//! object per line with `timestamp`, `level`, `message` and the event's fields, or text); the
//! one-shot commands, which install no subscriber, print plain `warning: …` lines. No secret
//! and no plaintext is ever passed to these functions.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How `serve` writes its log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// `--log-format`, the same option for `serve` and `consume`.
#[derive(clap::Args, Debug, Clone)]
pub struct LogOpts {
    /// Log lines on stderr: `json` (one object per line: timestamp, level, message, fields) or
    /// `text`. Default: text on a terminal, JSON otherwise.
    #[arg(long, value_name = "FORMAT", env = "MSGRAPH_NOTIFY_LOG_FORMAT")]
    pub log_format: Option<Format>,
}

/// Installs the `tracing` subscriber for `serve` and `consume`: `format`, or text when stderr is a terminal
/// and JSON otherwise. Level: info.
pub fn init(format: Option<Format>) {
    let format = format.unwrap_or(if crate::stderr_is_terminal() {
        Format::Text
    } else {
        Format::Json
    });
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .with_target(false);
    // A second call (tests in one process) keeps the first subscriber.
    let _ = match format {
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        Format::Text => builder.with_ansi(false).try_init(),
    };
}

fn logging() -> bool {
    tracing::dispatcher::has_been_set()
}

/// A warning.
pub fn warn(message: &str) {
    if logging() {
        tracing::warn!("{message}");
    } else {
        errln!("warning: {message}");
    }
}

/// A notice (start-up, shutdown).
pub fn info(message: &str) {
    if logging() {
        tracing::info!("{message}");
    } else {
        errln!("msgraph-notify: {message}");
    }
}

/// A warning printed at most once a second; the ones suppressed meanwhile are counted and
/// reported with the next one (`suppressed` field).
pub struct RateLimited {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl RateLimited {
    pub fn new() -> Self {
        RateLimited {
            last: Mutex::new(None),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether to log now; when true, how many were suppressed since the last one.
    pub fn admit(&self) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(Instant::now());
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }

    pub fn warn(&self, message: &str) {
        let Some(suppressed) = self.admit() else {
            return;
        };
        if logging() {
            tracing::warn!(suppressed, "{message}");
        } else if suppressed == 0 {
            errln!("warning: {message}");
        } else {
            errln!("warning: {message} ({suppressed} more like it in the last second)");
        }
    }
}
