//! Back-off: the one helper every retry loop of the command uses (linkerd2-proxy keeps its
//! back-off in a small module of its own). Doubling pauses up to a ceiling; the blocking loops of
//! `serve`'s workers and of `consume` wait in short slices so that a shutdown signal is seen at
//! once. What is retried is decided by one policy, `Error::is_transient()`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Pauses that double from `first` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

/// The ceiling of every back-off in the command.
pub const MAX_PAUSE: Duration = Duration::from_secs(5);

/// How often an interruptible wait looks at its stop flag.
const SLICE: Duration = Duration::from_millis(50);

impl Backoff {
    /// Pauses of `first`, then twice as long each time, at most [`MAX_PAUSE`].
    pub fn new(first: Duration) -> Self {
        Backoff {
            next: first,
            max: MAX_PAUSE,
        }
    }

    /// The next pause (and doubles the one after it).
    pub fn next_pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(self.max);
        pause
    }

    /// Sleeps the next pause on this thread in short slices; returns `true` as soon as `stop`
    /// is found set before a slice (the wait is then cut short).
    pub fn sleep_unless(&mut self, stop: &AtomicBool) -> bool {
        let until = Instant::now() + self.next_pause();
        while Instant::now() < until {
            if stop.load(Ordering::Acquire) {
                return true;
            }
            std::thread::sleep(SLICE);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_ceiling() {
        let mut b = Backoff::new(Duration::from_millis(250));
        let pauses: Vec<u128> = (0..7).map(|_| b.next_pause().as_millis()).collect();
        assert_eq!(pauses, [250, 500, 1000, 2000, 4000, 5000, 5000]);
    }

    #[test]
    fn a_set_flag_cuts_the_wait_short() {
        let stop = AtomicBool::new(true);
        let start = Instant::now();
        assert!(Backoff::new(Duration::from_secs(5)).sleep_unless(&stop));
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
