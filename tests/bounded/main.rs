//! Every bounded structure stays bounded under a long adversarial sequence, measured in bytes by
//! a counting global allocator: the validated-token cache under expired lookups, the replay
//! memory under churn, and the receiver under an item flood.
//!
//! The tests of this binary run one at a time (a lock), so the allocator's count is theirs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use msgraph_notify::receiver::{Receiver, dangerous};
use msgraph_notify::replay::{Fingerprint, ReplayGuard, ReplayStore};
use msgraph_notify::token::{TokenCache, TokenVersion, ValidatedToken};
use msgraph_notify::{ChangeNotification, Decryptor, Error, PrivateKey};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn reset_peak() -> usize {
    let now = live();
    PEAK.store(now, Ordering::Relaxed);
    now
}

fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

fn validated(expires_at: u64) -> ValidatedToken {
    ValidatedToken {
        tenant_id: "22222222-aaaa-4bbb-8ccc-000000000002".into(),
        app_id: "11111111-aaaa-4bbb-8ccc-000000000001".into(),
        version: TokenVersion::V2,
        expires_at,
    }
}

#[test]
fn token_cache_stays_bounded_under_expired_lookups() {
    let _serial = serial();
    let cache = TokenCache::new(16);
    // Warm up the structures' own allocations.
    for i in 0..64 {
        cache.insert(&format!("warm-{i}"), validated(1));
        let _ = cache.get(&format!("warm-{i}"), 0);
    }
    let before = live();
    // 100,000 tokens that are expired by the time they are looked up: each is cached, found
    // expired and dropped from the map. The eviction order must drop it too.
    let token = |i: usize| {
        format!(
            "eyJhbGciOiJSUzI1NiJ9.expired-token-{i:08}.{}",
            "s".repeat(300)
        )
    };
    for i in 0..100_000 {
        cache.insert(&token(i), validated(1));
        assert!(cache.get(&token(i), 0).is_none());
        assert!(
            cache.slots_used() <= 16,
            "{} slots at {i}",
            cache.slots_used()
        );
    }
    assert_eq!(cache.len(), 0);
    let grown = live().saturating_sub(before);
    assert!(grown < 64 * 1024, "the cache grew by {grown} bytes");
    // Live tokens still evict in order, at the capacity.
    for i in 0..100 {
        cache.insert(&format!("live-{i}"), validated(u64::MAX / 2));
    }
    assert_eq!(cache.len(), 16);
    assert!(cache.get("live-99", 0).is_some());
    assert!(cache.get("live-0", 0).is_none());
}

fn fp(n: u64) -> Fingerprint {
    let item: ChangeNotification = serde_json::from_value(serde_json::json!({
        "encryptedContent": {"dataSignature": format!("sig-{n}")}
    }))
    .unwrap();
    Fingerprint::of(&item).unwrap()
}

#[test]
fn replay_memory_stays_bounded_and_churn_evicts_no_genuine_entry() {
    let _serial = serial();
    const CAPACITY: usize = 1000;
    let guard = ReplayGuard::new(CAPACITY, Duration::from_secs(24 * 3600));
    // 900 genuine entries.
    for n in 0..900 {
        assert_eq!(guard.insert_if_absent(&fp(n)), Ok(true));
    }
    let before = live();
    // 200,000 forged items recorded and then forgotten (they failed verification).
    for n in 1_000_000..1_200_000 {
        assert_eq!(guard.insert_if_absent(&fp(n)), Ok(true));
        guard.remove(&fp(n));
        assert!(guard.slots_used() <= CAPACITY);
    }
    // Not one genuine entry was pushed out by the churn.
    for n in 0..900 {
        assert_eq!(
            guard.insert_if_absent(&fp(n)),
            Ok(false),
            "entry {n} forgotten"
        );
    }
    assert_eq!(guard.len(), 900);
    let grown = live().saturating_sub(before);
    assert!(
        grown < 256 * 1024,
        "the replay memory grew by {grown} bytes"
    );
    // Past the capacity, live entries go oldest first, and memory stays put.
    let before = live();
    for n in 2_000_000..2_100_000 {
        guard.insert_if_absent(&fp(n)).unwrap();
    }
    assert_eq!(guard.len(), CAPACITY);
    assert!(live().saturating_sub(before) < 256 * 1024);
    assert_eq!(guard.insert_if_absent(&fp(2_099_999)), Ok(false));
    assert_eq!(guard.insert_if_absent(&fp(0)), Ok(true));
}

#[test]
fn interleaved_removals_are_compacted_before_evicting_genuine_entries() {
    let _serial = serial();
    const CAPACITY: usize = 1000;
    let guard = ReplayGuard::new(CAPACITY, Duration::from_secs(24 * 3600));
    // 700 genuine entries (under three quarters of the capacity).
    for n in 0..700 {
        assert_eq!(guard.insert_if_absent(&fp(n)), Ok(true));
    }
    // Forged items recorded in batches and removed oldest first (as a body's items are: all
    // recorded, then each removed when its unwrap fails), so the removed one is never the newest.
    for batch in 0..500u64 {
        let forged: Vec<Fingerprint> = (0..10).map(|i| fp(5_000_000 + batch * 10 + i)).collect();
        for f in &forged {
            assert_eq!(guard.insert_if_absent(f), Ok(true));
        }
        for f in &forged {
            guard.remove(f);
        }
        assert!(guard.slots_used() <= CAPACITY);
    }
    for n in 0..700 {
        assert_eq!(
            guard.insert_if_absent(&fp(n)),
            Ok(false),
            "entry {n} evicted"
        );
    }
}

#[test]
fn default_replay_memory_size_as_documented() {
    let _serial = serial();
    let before = live();
    let guard = ReplayGuard::default();
    for n in 0..100_000 {
        guard.insert_if_absent(&fp(n)).unwrap();
    }
    let used = live().saturating_sub(before);
    // ReplayGuard's docs promise under 16 MB for its default 100,000 entries.
    assert!(used < 16_000_000, "{used} bytes for 100,000 entries");
    drop(guard);
}

#[test]
fn an_item_flood_costs_a_parse_not_an_outcome_per_element() {
    let _serial = serial();
    let receiver = dangerous::skip_token_validation(Receiver::builder(
        Decryptor::with_key(PrivateKey::generate(2048).unwrap(), None).unwrap(),
    ))
    .build()
    .unwrap();
    let mut body = b"{\"value\":[0".to_vec();
    while body.len() < (1 << 20) - 4 {
        body.extend_from_slice(b",0");
    }
    body.extend_from_slice(b"]}");
    let start = reset_peak();
    for _ in 0..20 {
        assert!(matches!(
            receiver.receive(None, &body),
            Err(Error::TooMany { .. })
        ));
    }
    let extra = peak().saturating_sub(start);
    // 1,000 parsed elements at most, then the parse stops: well under 1 MiB beyond the body.
    assert!(extra < 1 << 20, "an item flood took {extra} bytes");
}

/// The key fetcher's bookkeeping under a stream of unknown `kid`s (each a forger's token naming a
/// key that does not exist): one fetch per interval, and no memory per `kid`.
#[cfg(feature = "fetch")]
#[test]
fn key_refetch_bookkeeping_stays_bounded_under_unknown_kids() {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use msgraph_notify::testing::TokenIssuer;
    use msgraph_notify::token::fetch::{FetchConfig, KeyFetcher};

    let _serial = serial();
    let jwks = TokenIssuer::new().unwrap().jwks_json();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/keys", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{jwks}",
                jwks.len()
            );
        }
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fetcher = KeyFetcher::new(FetchConfig::with_jwks_url(url)).unwrap();
    runtime.block_on(async {
        // Warm up: the first unknown kid fetches once.
        assert!(!fetcher.ensure_kid("warm-up").await);
        let before = live();
        for i in 0..10_000 {
            assert!(!fetcher.ensure_kid(&format!("forged-kid-{i}")).await);
        }
        let grown = live().saturating_sub(before);
        assert!(
            grown < 64 * 1024,
            "10,000 unknown kids grew memory by {grown} bytes"
        );
    });
    // One fetch for the warm-up; every later unknown kid was within min_refresh_interval.
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}
