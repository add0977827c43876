//! Secrets are wiped before their memory is given back: while a check is armed, this binary's
//! global allocator scans every block freed through Rust's allocator for the bytes of a secret
//! (the symmetric key, the plaintext). Finding one is a copy that was freed without wiping.
//!
//! The scan sees the crate's own buffers and those of its Rust dependencies (base64, the `rsa`
//! backend, serde); aws-lc allocates through C `malloc` and wipes with `OPENSSL_cleanse`, out of
//! this scan's reach. The typed `Resource` and `Item::to_json` are not wiped by design
//! (SECURITY.md §5), so these tests stop at `Plaintext`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use msgraph_notify::testing::GraphEncryptor;
use msgraph_notify::{Decryptor, EncryptedContent, Error};

/// Up to two secrets searched for, each 16 to 64 bytes (or none), set while disarmed.
static mut SECRET_BYTES: [[u8; 64]; 2] = [[0; 64]; 2];
static SECRET_LENS: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];
thread_local! {
    /// Armed on the one thread that runs a check: other test threads' frees are not scanned, so
    /// the secrets are only ever read by the thread that wrote them.
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

fn armed() -> bool {
    ARMED.try_with(Cell::get).unwrap_or(false)
}
static FOUND: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];
/// One armed window at a time (the test harness runs tests on several threads).
static WINDOW: Mutex<()> = Mutex::new(());

struct Scanning;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

impl Scanning {
    /// # Safety
    /// `ptr` must be a live block of `size` bytes from this allocator (every byte of which is
    /// initialised: blocks are handed out zeroed).
    unsafe fn scan(ptr: *mut u8, size: usize) {
        if !armed() {
            return;
        }
        // SAFETY: the block is live, `size` bytes long and fully initialised (zeroed at `alloc`,
        // and `realloc` copies into a zeroed block).
        let block = unsafe { std::slice::from_raw_parts(ptr, size) };
        for (i, found) in FOUND.iter().enumerate() {
            let len = SECRET_LENS[i].load(Ordering::SeqCst);
            // SAFETY: only the armed thread gets here, and it wrote SECRET_BYTES before arming.
            let all: &[[u8; 64]; 2] = unsafe { &*std::ptr::addr_of!(SECRET_BYTES) };
            let secret = &all[i][..len];
            if contains(block, secret) {
                found.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // Zeroed, so that a block's never-written bytes (spare capacity) can be read by `scan`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe {
            Self::scan(ptr, layout.size());
            System.dealloc(ptr, layout)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Moving a block frees the old one with its contents: allocate, copy, then free through
        // `dealloc` so that the old block is scanned too.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            let new = System.alloc_zeroed(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[global_allocator]
static ALLOCATOR: Scanning = Scanning;

/// Runs `f` armed for `secrets`; returns how many freed blocks held each secret.
fn freed_copies(secrets: [&[u8]; 2], f: impl FnOnce()) -> [usize; 2] {
    let _window = WINDOW.lock().unwrap_or_else(|e| e.into_inner());
    for (i, secret) in secrets.iter().enumerate() {
        assert!((16..=64).contains(&secret.len()) || secret.is_empty());
        // SAFETY: this thread is disarmed and holds WINDOW; no other thread reads the secrets
        // (only an armed thread scans, and only the WINDOW holder arms itself).
        unsafe {
            let all: &mut [[u8; 64]; 2] = &mut *std::ptr::addr_of_mut!(SECRET_BYTES);
            all[i][..secret.len()].copy_from_slice(secret);
        }
        SECRET_LENS[i].store(secret.len(), Ordering::SeqCst);
        FOUND[i].store(0, Ordering::SeqCst);
    }
    ARMED.with(|a| a.set(true));
    f();
    ARMED.with(|a| a.set(false));
    [
        FOUND[0].load(Ordering::SeqCst),
        FOUND[1].load(Ordering::SeqCst),
    ]
}

fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).unwrap();
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A decryptor, and an item whose plaintext holds `marker`, under `key`.
fn item(plaintext: &[u8], key: &[u8; 32]) -> (Decryptor, EncryptedContent) {
    let (private, cert) = test_support::keypair(2048);
    let content = GraphEncryptor::new(cert, "cert-1")
        .symmetric_key(key)
        .encrypt(plaintext)
        .unwrap();
    let decryptor =
        Decryptor::with_key(test_support::copy_key(private), Some(cert.clone())).unwrap();
    (decryptor, content)
}

#[test]
fn the_plaintext_and_the_key_are_wiped_after_a_successful_decrypt() {
    let key: [u8; 32] = random();
    let marker = hex(&random::<16>());
    // Large enough that base64 decoding and AES work in bulk on the heap.
    let plaintext = format!(
        r#"{{"id":"1","body":{{"content":"{}{marker}{}"}}}}"#,
        "a".repeat(5000),
        "b".repeat(5000)
    );
    let (decryptor, content) = item(plaintext.as_bytes(), &key);
    let found = freed_copies([&key, marker.as_bytes()], || {
        let decrypted = decryptor.decrypt(&content).unwrap();
        assert!(decrypted.as_str().contains(&marker));
        drop(decrypted);
    });
    assert_eq!(found, [0, 0], "freed unwiped copies of [key, plaintext]");
}

#[test]
fn the_key_is_wiped_when_the_signature_fails() {
    let key: [u8; 32] = random();
    let (decryptor, mut content) = item(br#"{"id":"1"}"#, &key);
    // A valid-length signature that does not match: the key is unwrapped, then refused.
    content.data_signature = Some("A".repeat(43) + "=");
    let found = freed_copies([&key, &[]], || {
        assert!(matches!(
            decryptor.decrypt(&content),
            Err(Error::Verification)
        ));
    });
    assert_eq!(found[0], 0, "freed unwiped copies of the key");
}

#[test]
fn a_plaintext_refused_after_decryption_is_wiped_too() {
    let key: [u8; 32] = random();
    let marker = random::<32>();
    // Verifies and decrypts, then fails the UTF-8 check: the decrypted bytes must still be wiped.
    let mut plaintext = vec![0xFF, 0xFE];
    plaintext.extend_from_slice(&marker);
    let (decryptor, content) = item(&plaintext, &key);
    let found = freed_copies([&key, &marker], || {
        assert!(matches!(
            decryptor.decrypt(&content),
            Err(Error::Plaintext("UTF-8"))
        ));
    });
    assert_eq!(found, [0, 0], "freed unwiped copies of [key, plaintext]");
}

/// The scan is not blind: an ordinary `Vec` holding the secret, freed, is found.
#[test]
fn the_scan_finds_an_unwiped_copy() {
    let secret = random::<32>();
    let found = freed_copies([&secret, &[]], || {
        let mut copy = Vec::with_capacity(100);
        copy.extend_from_slice(b"prefix");
        copy.extend_from_slice(&secret);
        drop(std::hint::black_box(copy));
    });
    assert_eq!(found[0], 1);
    let found = freed_copies([&secret, &[]], || {
        let copy = zeroize::Zeroizing::new(secret.to_vec());
        drop(std::hint::black_box(copy));
    });
    assert_eq!(found[0], 0);
}
