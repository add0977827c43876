//! What the Redis store knows of its server: why it cannot answer ([`RedisFault`]) and whether
//! its memory is whole ([`ReplayMemory`]), from a marker key that a restart without persistence
//! or a flush removes with everything else.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why the Redis replay store cannot answer: [`RedisReplayStore::fault`](super::RedisReplayStore::fault).
///
/// Each error message of the store starts with the same words, so a log line, a metric label
/// ([`RedisFault::label`]) and a readiness answer all name one cause.
///
/// ```
/// use msgraph_notify::replay::RedisFault;
/// assert_eq!(RedisFault::Authentication.label(), "authentication");
/// assert!(!RedisFault::Authentication.is_passing());
/// assert!(RedisFault::Refused.is_passing());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RedisFault {
    /// Redis refused our credentials (`NOAUTH`: a password is required and none was given;
    /// `WRONGPASS`: the password or user is wrong). Configuration, not a passing fault: fix the
    /// password; letting items through unchecked is not the fix.
    Authentication,
    /// The connection was refused: nothing listens at the address (Redis stopped or restarting,
    /// a wrong port).
    Refused,
    /// Connecting or a command took longer than the store's timeout (Redis overloaded, a network
    /// that drops packets, a firewall).
    Timeout,
    /// Redis closed an open connection (restarted, or a proxy between dropped it).
    Closed,
    /// The replay memory was lost (the marker is gone: Redis restarted without persistence, or
    /// flushed) and the replay window is unknown: see [`ReplayMemory::Lost`].
    MemoryLost,
    /// Anything else (the message names it).
    Other,
}

impl RedisFault {
    /// One word for a metric label or a readiness answer: `authentication`, `refused`,
    /// `timeout`, `closed`, `memory_lost` or `other`.
    pub fn label(self) -> &'static str {
        match self {
            RedisFault::Authentication => "authentication",
            RedisFault::Refused => "refused",
            RedisFault::Timeout => "timeout",
            RedisFault::Closed => "closed",
            RedisFault::MemoryLost => "memory_lost",
            RedisFault::Other => "other",
        }
    }

    /// Whether waiting may end the fault by itself: every cause but
    /// [`Authentication`](RedisFault::Authentication), which needs the operator.
    pub fn is_passing(self) -> bool {
        self != RedisFault::Authentication
    }

    /// What the cause is, in words, for the start of an error message.
    pub(super) fn words(self) -> &'static str {
        match self {
            RedisFault::Authentication => {
                "Redis refused our credentials (authentication failed: set the right password)"
            }
            RedisFault::Refused => "Redis refused the connection (nothing listens there)",
            RedisFault::Timeout => "Redis did not answer in time (timeout)",
            RedisFault::Closed => "Redis closed the connection",
            RedisFault::MemoryLost => "the replay memory in Redis was lost",
            RedisFault::Other => "Redis failed",
        }
    }

    /// The cause of a `redis` error.
    pub(super) fn of(e: &redis::RedisError) -> Self {
        if e.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
        {
            RedisFault::Authentication
        } else if e.is_connection_refusal() {
            RedisFault::Refused
        } else if e.is_timeout() {
            RedisFault::Timeout
        } else if e.is_connection_dropped() {
            RedisFault::Closed
        } else {
            RedisFault::Other
        }
    }
}

impl fmt::Display for RedisFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Whether the Redis store's memory holds every item of the replay window:
/// [`RedisReplayStore::memory`](super::RedisReplayStore::memory).
///
/// The store keeps a marker key beside the fingerprints (`{prefix}memory-marker`, no expiry,
/// naming when the memory began). A Redis restarted without persistence, or flushed, loses it
/// with everything else; the store notices at its next command (each check-and-insert tests
/// the marker in the same atomic script) and from then on its memory is younger than the
/// replay window: a POST captured before the loss would be taken as new.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayMemory {
    /// No command has reached Redis yet.
    Unchecked,
    /// The marker is in place: the memory holds every item remembered since `since`, and
    /// nothing was lost since this store first saw it. A marker this store had to create at
    /// its first contact (a first start, or a memory lost while no store was running: the two
    /// cannot be told apart) counts as whole.
    Whole {
        /// When the memory began (the marker's time).
        since: SystemTime,
    },
    /// The marker was gone: the memory was lost at `lost_at` and is whole again at
    /// `whole_at` (one time to live later). Until then the store refuses to answer
    /// ([`RedisFault::MemoryLost`]), unless an operator accepted the loss
    /// ([`RedisReplayStore::accept_loss`](super::RedisReplayStore::accept_loss)).
    Lost {
        /// When the loss was noticed (the new marker's time).
        lost_at: SystemTime,
        /// When the memory again covers the whole replay window.
        whole_at: SystemTime,
    },
}

/// How the marker was made: its value is `{kind} {unix milliseconds}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MarkerKind {
    /// Created at a store's first contact: a new memory.
    New,
    /// Created when a store that had seen the marker found it gone.
    Lost,
    /// A loss an operator accepted.
    Accepted,
}

impl MarkerKind {
    pub(super) fn word(self) -> &'static str {
        match self {
            MarkerKind::New => "new",
            MarkerKind::Lost => "lost",
            MarkerKind::Accepted => "accepted",
        }
    }

    /// The marker's value for a memory that begins now.
    pub(super) fn value_now(self) -> String {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        format!("{} {ms}", self.word())
    }
}

/// The memory a marker value tells, for a store whose time to live is `ttl`. A value this crate
/// did not write counts as a new memory begun now.
pub(super) fn read_marker(value: &str, ttl: Duration) -> ReplayMemory {
    let mut parts = value.split(' ');
    let kind = match parts.next() {
        Some("lost") => MarkerKind::Lost,
        Some("accepted") => MarkerKind::Accepted,
        _ => MarkerKind::New,
    };
    let since = parts
        .next()
        .and_then(|ms| ms.parse::<u64>().ok())
        .map_or_else(SystemTime::now, |ms| UNIX_EPOCH + Duration::from_millis(ms));
    match kind {
        MarkerKind::Lost if SystemTime::now() < since + ttl => ReplayMemory::Lost {
            lost_at: since,
            whole_at: since + ttl,
        },
        _ => ReplayMemory::Whole { since },
    }
}

/// Check-and-insert, in one atomic script: `-1` when the marker (`KEYS[1]`) is gone (nothing
/// recorded), else `1` when the fingerprint (`KEYS[2]`) was recorded now, `0` when it was there.
pub(super) const INSERT: &str = "\
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return 1 end
return 0";

/// Records every fingerprint of `KEYS[2..]`; `-1` (nothing recorded) when the marker is gone.
pub(super) const INSERT_ALL: &str = "\
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
for i = 2, #KEYS do redis.call('SET', KEYS[i], '1', 'NX', 'PX', ARGV[1]) end
return 0";

/// Writes the marker `KEYS[1]` as `ARGV[1]` unless one is there; answers the value in place.
pub(super) const WRITE_MARKER: &str = "\
local old = redis.call('GET', KEYS[1])
if old then return old end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]";

/// Whether the fingerprint `KEYS[2]` is remembered; `-1` when the marker is gone.
pub(super) const CONTAINS: &str = "\
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('EXISTS', KEYS[2])";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_tells_the_memory() {
        let day = Duration::from_secs(86_400);
        assert!(matches!(
            read_marker(&MarkerKind::New.value_now(), day),
            ReplayMemory::Whole { .. }
        ));
        assert!(matches!(
            read_marker(&MarkerKind::Lost.value_now(), day),
            ReplayMemory::Lost { .. }
        ));
        assert!(matches!(
            read_marker(&MarkerKind::Accepted.value_now(), day),
            ReplayMemory::Whole { .. }
        ));
        // A loss older than the window is whole again.
        assert!(matches!(
            read_marker("lost 1000", day),
            ReplayMemory::Whole { .. }
        ));
        assert!(matches!(
            read_marker("something else", day),
            ReplayMemory::Whole { .. }
        ));
    }
}
