//! What the keeper remembers of the subscriptions it keeps, and where: a file written atomically,
//! or memory (tests). A restart reads it back and adopts the same subscriptions instead of
//! creating duplicates.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::KeeperError;

type Result<T> = std::result::Result<T, KeeperError>;

/// One kept subscription, by the key of the desired entry it fulfils.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct KeptSubscription {
    /// The desired entry's key: `changeType resource -> notificationUrl`.
    pub key: String,
    /// Graph's subscription id.
    pub id: String,
    /// The resource path.
    pub resource: String,
    /// The expiry Graph granted, as Graph wrote it.
    pub expiration_date_time: String,
    /// The lifetime Graph granted at the last create or renewal, in seconds (the keeper renews
    /// when a quarter of it remains).
    pub lifetime_seconds: u64,
    /// When the subscription was last created or patched (Unix seconds).
    pub last_patch: u64,
    /// When it was last reauthorized (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reauthorization: Option<u64>,
    /// The SHA-1 thumbprint of the encryption certificate it was created or patched with.
    pub certificate_thumbprint: String,
    /// A `reauthorizationRequired` whose answer failed: renewed (a PATCH also reauthorizes) at
    /// the next pass.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reauthorize_pending: bool,
}

/// Where the keeper's state lives.
///
/// ```
/// use msgraph_notify::subscription::{FileState, StateStore};
/// let dir = std::env::temp_dir().join(format!("keeper-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let state = FileState::new(dir.join("subscriptions.json"));
/// assert!(state.load().unwrap().is_empty()); // no file yet: nothing kept
/// state.save(&[]).unwrap();
/// assert!(state.load().unwrap().is_empty());
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub trait StateStore: Send + Sync {
    /// Everything kept (empty when nothing was saved yet).
    fn load(&self) -> Result<Vec<KeptSubscription>>;
    /// Replaces what is kept, atomically: a crash leaves the old state or the new one.
    fn save(&self, kept: &[KeptSubscription]) -> Result<()>;
}

/// State in memory: lost with the process (tests, or a keeper that may create anew).
#[derive(Debug, Default)]
pub struct MemoryState(Mutex<Vec<KeptSubscription>>);

impl StateStore for MemoryState {
    fn load(&self) -> Result<Vec<KeptSubscription>> {
        Ok(self.0.lock().map(|k| k.clone()).unwrap_or_default())
    }

    fn save(&self, kept: &[KeptSubscription]) -> Result<()> {
        if let Ok(mut guard) = self.0.lock() {
            *guard = kept.to_vec();
        }
        Ok(())
    }
}

/// State in a JSON file, replaced atomically: written to a temporary file beside it, synced,
/// renamed over it, and the directory synced, so a `kill -9` or a power cut at any moment leaves
/// the old state or the new one, never a torn file.
#[derive(Debug, Clone)]
pub struct FileState {
    path: PathBuf,
}

impl FileState {
    /// State at `path` (created on the first save; its directory must exist).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileState { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn fail(&self, what: &str, e: impl std::fmt::Display) -> KeeperError {
        KeeperError::State(format!(
            "{}: cannot {what}: {e}; check the path and its permissions",
            self.path.display()
        ))
    }
}

impl StateStore for FileState {
    fn load(&self) -> Result<Vec<KeptSubscription>> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.fail("read it", e)),
        };
        #[derive(Deserialize)]
        struct File {
            subscriptions: Vec<KeptSubscription>,
        }
        serde_json::from_slice::<File>(&bytes)
            .map(|f| f.subscriptions)
            .map_err(|e| self.fail("parse it (delete it to start afresh)", e))
    }

    fn save(&self, kept: &[KeptSubscription]) -> Result<()> {
        let json = serde_json::to_vec_pretty(&serde_json::json!({ "subscriptions": kept }))
            .map_err(|e| self.fail("serialise it", e))?;
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // A name of this write's own: two writers (serve and a cron job) never share a temp file.
        let mut nonce = [0u8; 6];
        let _ = getrandom::fill(&mut nonce);
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(format!(
            ".{}.{}.tmp",
            std::process::id(),
            nonce.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ));
        let tmp = PathBuf::from(tmp);
        let mut file = std::fs::File::create(&tmp).map_err(|e| self.fail("write it", e))?;
        file.write_all(&json)
            .and_then(|()| file.sync_all())
            .map_err(|e| self.fail("write it", e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.fail("replace it", e))?;
        // The rename is durable once the directory is synced.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl<T: StateStore + ?Sized> StateStore for std::sync::Arc<T> {
    fn load(&self) -> Result<Vec<KeptSubscription>> {
        (**self).load()
    }

    fn save(&self, kept: &[KeptSubscription]) -> Result<()> {
        (**self).save(kept)
    }
}
