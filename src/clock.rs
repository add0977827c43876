//! Where the time comes from, for what runs on Graph's schedule: subscription lifetimes and
//! expiry in the emulator, renewals in the keeper. A [`ManualClock`] shared by a test, the
//! emulator and the keeper makes an hour pass in a millisecond. Access-token lifetimes stay on
//! real time.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A source of "now" for subscription lifetimes, shareable between the emulator and the code
/// under test.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// Moves the clock `by` ahead, if it can be moved (the system clock cannot: it returns
    /// `false`).
    fn advance(&self, by: Duration) -> bool {
        let _ = by;
        false
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The system clock plus an offset that only grows: [`Clock::advance`] (or the control API's
/// `POST /_emulator/clock`) moves it ahead, by at most [`ManualClock::MAX_OFFSET`] in all. Clones
/// share the offset, so a test gives one clone to the emulator and one to the code under test.
///
/// ```
/// use std::time::Duration;
/// use msgraph_notify::clock::{Clock, ManualClock};
/// let clock = ManualClock::new();
/// let shared = clock.clone();
/// let before = shared.now();
/// clock.advance(Duration::from_secs(3600));
/// assert!(shared.now().duration_since(before).unwrap() >= Duration::from_secs(3600));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    offset: Arc<Mutex<Duration>>,
}

impl ManualClock {
    /// The furthest the clock goes ahead of the system's: 100 years (so no date overflows).
    pub const MAX_OFFSET: Duration = Duration::from_secs(100 * 366 * 24 * 3600);

    /// A clock at the system's time, not yet advanced.
    pub fn new() -> Self {
        Self::default()
    }

    /// How far the clock has been moved ahead of the system's.
    pub fn offset(&self) -> Duration {
        *self.offset.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        SystemTime::now() + self.offset()
    }

    fn advance(&self, by: Duration) -> bool {
        let mut offset = self.offset.lock().unwrap_or_else(|e| e.into_inner());
        *offset = offset.saturating_add(by).min(Self::MAX_OFFSET);
        true
    }
}
