//! `serve --spool DIR`: every accepted body is written to an embedded database (redb, one file:
//! `DIR/spool.redb`) and synced before the POST is answered 202; it leaves once each of its items
//! is written to the output. At start, what the spool holds is processed first.
//!
//! Why redb: a well-kept, pure-Rust, single-file store with ACID transactions whose commit is
//! durable when it returns (copy-on-write B-trees, a checksummed commit slot, fsync), that
//! recovers by itself after a crash and needs no background threads or compaction (an LSM store
//! such as fjall would add both). Our access is a queue by key, which a B-tree serves well.
//!
//! One thread owns the database and commits in groups: every append and removal waiting when a
//! transaction begins goes into it, so N concurrent POSTs cost one sync, not N.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use crate::{Fail, fail};

/// Body id → the POST body.
const BODIES: TableDefinition<u64, &[u8]> = TableDefinition::new("bodies");
/// When each body was accepted (Unix milliseconds): its validation tokens are judged as of then,
/// so a body kept through an outage longer than a token's hour is not lost to its expiry.
const ACCEPTED: TableDefinition<u64, u64> = TableDefinition::new("accepted");

/// redb's page cache (its default is 1 GiB): bodies are written once and read once, at start.
const CACHE_BYTES: usize = 16 << 20;

/// The most operations one transaction takes.
const GROUP: usize = 512;

/// Why a body could not be spooled (the POST is answered 503).
#[derive(Debug)]
pub enum SpoolError {
    /// The spool holds `--spool-max-bytes` already.
    Full,
    /// The write or the sync failed (disk full, read-only, I/O error).
    Unwritable(String),
}

impl std::fmt::Display for SpoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpoolError::Full => write!(f, "the spool is full (--spool-max-bytes)"),
            SpoolError::Unwritable(e) => write!(f, "the spool cannot be written: {e}"),
        }
    }
}

enum Op {
    /// Keep `body` under `id`, accepted at this time (Unix ms; `None`: keep the time held).
    Put(u64, std::sync::Arc<[u8]>, Option<u64>),
    /// Forget `id`.
    Remove(u64),
}

/// The spool: cheap to share; the database lives on its own thread.
pub struct Spool {
    ops: std_mpsc::Sender<(Op, oneshot::Sender<Result<(), String>>)>,
    next_id: AtomicU64,
    /// Bytes of the bodies held now.
    held: AtomicU64,
    max_bytes: u64,
    /// Ids held at start, in order: processed first.
    at_start: Vec<(u64, u64)>,
    db: std::sync::Arc<Database>,
}

impl Spool {
    /// Opens (or creates) `dir/spool.redb`, holding at most `max_bytes` of bodies.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, Fail> {
        // The bodies carry each item's clientState and validation tokens: a directory made here
        // is the owner's only (an existing one keeps its mode), the file always is.
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|e| {
            fail!(
                "--spool {}: cannot create the directory: {e}",
                dir.display()
            )
        })?;
        let path = dir.join("spool.redb");
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| fail!("--spool: cannot open {}: {e}", path.display()))?;
        restrict(&path, 0o600)?;
        let table_error = |e: redb::Error| fail!("--spool: cannot read {}: {e}", path.display());
        let txn = db.begin_write().map_err(|e| table_error(e.into()))?;
        txn.open_table(BODIES).map_err(|e| table_error(e.into()))?;
        txn.open_table(ACCEPTED)
            .map_err(|e| table_error(e.into()))?;
        txn.commit().map_err(|e| table_error(e.into()))?;
        let mut at_start = Vec::new();
        {
            let read = db.begin_read().map_err(|e| table_error(e.into()))?;
            let table = read.open_table(BODIES).map_err(|e| table_error(e.into()))?;
            for entry in table.iter().map_err(|e| table_error(e.into()))? {
                let (id, body) = entry.map_err(|e| table_error(e.into()))?;
                at_start.push((id.value(), body.value().len() as u64));
            }
        }
        let held = at_start.iter().map(|(_, len)| len).sum();
        let next_id = at_start.last().map_or(1, |(id, _)| id + 1);
        let db = std::sync::Arc::new(db);
        let (tx, rx) = std_mpsc::channel();
        let owner = std::sync::Arc::clone(&db);
        std::thread::Builder::new()
            .name("serve-spool".into())
            .spawn(move || commit_loop(&owner, &rx))
            .map_err(|e| fail!("cannot start the spool thread: {e}"))?;
        Ok(Spool {
            ops: tx,
            next_id: AtomicU64::new(next_id),
            held: AtomicU64::new(held),
            max_bytes,
            at_start,
            db,
        })
    }

    /// The ids and sizes of the bodies held at start, oldest first.
    pub fn at_start(&self) -> &[(u64, u64)] {
        &self.at_start
    }

    /// Reads a body held at start.
    pub fn read(&self, id: u64) -> Result<Option<Vec<u8>>, String> {
        let read = self.db.begin_read().map_err(|e| e.to_string())?;
        let table = read.open_table(BODIES).map_err(|e| e.to_string())?;
        let body = table.get(id).map_err(|e| e.to_string())?;
        Ok(body.map(|b| b.value().to_vec()))
    }

    /// When a body held at start was accepted (`None` for a spool written before the time was
    /// kept).
    pub fn accepted_at(&self, id: u64) -> Option<std::time::SystemTime> {
        let read = self.db.begin_read().ok()?;
        let table = read.open_table(ACCEPTED).ok()?;
        let ms = table.get(id).ok()??.value();
        Some(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
    }

    /// Writes `body` and waits until it is synced; its id.
    pub async fn append(&self, body: &std::sync::Arc<[u8]>) -> Result<u64, SpoolError> {
        let len = body.len() as u64;
        let held = self.held.fetch_add(len, Ordering::AcqRel);
        if held.saturating_add(len) > self.max_bytes {
            self.held.fetch_sub(len, Ordering::AcqRel);
            return Err(SpoolError::Full);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let accepted = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        match self
            .send(Op::Put(id, std::sync::Arc::clone(body), Some(accepted)))
            .await
        {
            Ok(()) => Ok(id),
            Err(e) => {
                self.held.fetch_sub(len, Ordering::AcqRel);
                Err(SpoolError::Unwritable(e))
            }
        }
    }

    /// Replaces body `id` (of `old_len` bytes) with `body` (what is left of it), synced; from
    /// a worker thread.
    pub fn replace_blocking(&self, id: u64, old_len: u64, body: Vec<u8>) -> Result<(), String> {
        let len = body.len() as u64;
        let (tx, rx) = oneshot::channel();
        self.ops
            .send((Op::Put(id, body.into(), None), tx))
            .map_err(|_| "the spool thread stopped".to_owned())?;
        let done = rx
            .blocking_recv()
            .unwrap_or_else(|_| Err("the spool thread stopped".to_owned()));
        if done.is_ok() {
            self.held.fetch_add(len, Ordering::AcqRel);
            self.held.fetch_sub(old_len, Ordering::AcqRel);
        }
        done
    }

    /// Forgets body `id` (of `len` bytes) and waits until that is synced; from a worker thread.
    pub fn remove_blocking(&self, id: u64, len: u64) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.ops
            .send((Op::Remove(id), tx))
            .map_err(|_| "the spool thread stopped".to_owned())?;
        let done = rx
            .blocking_recv()
            .unwrap_or_else(|_| Err("the spool thread stopped".to_owned()));
        if done.is_ok() {
            self.held.fetch_sub(len, Ordering::AcqRel);
        }
        done
    }

    async fn send(&self, op: Op) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.ops
            .send((op, tx))
            .map_err(|_| "the spool thread stopped".to_owned())?;
        rx.await
            .unwrap_or_else(|_| Err("the spool thread stopped".to_owned()))
    }
}

/// Sets `path`'s permission bits to `mode` (Unix; elsewhere the directory's own ACLs apply).
fn restrict(path: &Path, mode: u32) -> Result<(), Fail> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| {
            fail!(
                "--spool: cannot restrict {} to its owner: {e}",
                path.display()
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// The spool thread: takes every waiting operation, commits them in one synced transaction,
/// answers each. Ends when every sender is gone.
fn commit_loop(db: &Database, rx: &std_mpsc::Receiver<(Op, oneshot::Sender<Result<(), String>>)>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < GROUP {
            match rx.try_recv() {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        let result = commit(db, group.iter().map(|(op, _)| op)).map_err(|e| e.to_string());
        for (_, reply) in group {
            let _ = reply.send(result.clone());
        }
    }
}

/// One transaction of `ops`, durable when it returns (redb's default, `Durability::Immediate`).
fn commit<'a>(db: &Database, ops: impl Iterator<Item = &'a Op>) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut table = txn.open_table(BODIES)?;
        let mut accepted = txn.open_table(ACCEPTED)?;
        for op in ops {
            match op {
                Op::Put(id, body, at) => {
                    table.insert(*id, &body[..])?;
                    if let Some(at) = at {
                        accepted.insert(*id, *at)?;
                    }
                }
                Op::Remove(id) => {
                    table.remove(*id)?;
                    accepted.remove(*id)?;
                }
            }
        }
    }
    txn.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body's acceptance time is kept with it across a restart, kept when the body is
    /// rewritten, and goes with it.
    #[test]
    fn the_acceptance_time_is_kept_with_the_body() {
        let dir = std::env::temp_dir().join(format!("spool-accepted-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let before = std::time::SystemTime::now();
        let spool = Spool::open(&dir, 1 << 20).unwrap();
        let body: std::sync::Arc<[u8]> = b"{\"value\":[]}".to_vec().into();
        let id = runtime.block_on(spool.append(&body)).unwrap();
        drop(spool);
        // The commit thread lets go of the file when its channel closes.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let spool = Spool::open(&dir, 1 << 20).unwrap();
        let at = spool.accepted_at(id).unwrap();
        let after = std::time::SystemTime::now();
        assert!(at + std::time::Duration::from_millis(1) >= before && at <= after);
        spool
            .replace_blocking(id, body.len() as u64, b"{}".to_vec())
            .unwrap();
        assert_eq!(spool.accepted_at(id), Some(at));
        spool.remove_blocking(id, 2).unwrap();
        assert_eq!(spool.accepted_at(id), None);
        drop(spool);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
