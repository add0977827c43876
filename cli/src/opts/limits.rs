//! How large a body may be: `--max-items` (every command that receives), and the sizing each
//! command gives its receiver.

use std::sync::Arc;

use msgraph_notify::receiver::DEFAULT_MAX_ITEMS;
use msgraph_notify::replay::ReplayStore;

/// The item limit of one body.
#[derive(clap::Args, Debug, Clone)]
pub struct ItemLimit {
    /// The most items (`value` elements) one body may carry; a body with more is refused whole.
    /// Raise it to open a large trusted capture.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_ITEMS as u32, value_parser = clap::value_parser!(u32).range(1..=100_000_000), env = "MSGRAPH_NOTIFY_MAX_ITEMS")]
    pub max_items: u32,
}

impl ItemLimit {
    /// `--max-items`.
    pub fn get(&self) -> usize {
        self.max_items as usize
    }
}

/// How a command's receiver is sized.
pub struct Limits {
    /// The largest body, in bytes.
    pub max_body: usize,
    /// The most items per body.
    pub max_items: usize,
    /// Decrypt the items of one body in parallel.
    pub parallel: bool,
    /// Where accepted items are remembered (None: replays are not detected).
    pub replay: Option<Arc<dyn ReplayStore>>,
    /// Whether this process decrypts (false for `serve --forward`, which hands bodies on: no key
    /// is needed, and none is warned about).
    pub decrypts: bool,
}
