//! Where the time comes from, for what runs on Graph's schedule (subscription lifetimes, renewals,
//! the emulator's expiries): the system clock in a service, a [`ManualClock`] that a test moves
//! ahead and shares between the code under test and the emulator, so 48 hours pass in a second.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// A source of the wall-clock time.
///
/// ```
/// use std::time::Duration;
/// use msgraph_notify::clock::{Clock, ManualClock, SystemClock};
/// let clock = ManualClock::new(SystemClock.now());
/// let start = clock.now();
/// clock.advance(Duration::from_secs(3600));
/// assert_eq!(clock.now().duration_since(start).unwrap(), Duration::from_secs(3600));
/// ```
pub trait Clock: Send + Sync {
    /// The time now.
    fn now(&self) -> SystemTime;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told (tests). Cloning shares the clock.
#[derive(Debug, Clone)]
pub struct ManualClock {
    start: SystemTime,
    /// Nanoseconds since `start`.
    elapsed: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: SystemTime) -> Self {
        ManualClock {
            start,
            elapsed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Moves the clock ahead by `by` (at most about 584 years in all).
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .elapsed
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |e| {
                Some(e.saturating_add(nanos))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.start + Duration::from_nanos(self.elapsed.load(Ordering::SeqCst))
    }
}

impl<T: Clock + ?Sized> Clock for Arc<T> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }
}
