//! The option groups of the commands, each a clap `Args` struct flattened into every command
//! that needs it: keys ([`KeyOpts`]), tokens ([`TokenOpts`]), client state
//! ([`ClientStateOpts`]), the item limit ([`ItemLimit`]), replay detection ([`ReplayOpts`])
//! and how a Kafka client connects (`KafkaOpts`, `consume` and `serve --forward`).
//! [`ReceiverOpts`] gathers those of `decrypt` and `serve`, and builds their receiver.

mod address;
mod client_state;
#[cfg(feature = "manage")]
mod graph;
#[cfg(feature = "kafka")]
mod kafka;
mod keys;
mod limits;
mod replay;
mod tokens;

use std::sync::Arc;

use msgraph_notify::receiver::Receiver;
use msgraph_notify::token::fetch::KeyFetcher;
use msgraph_notify::{Decryptor, KeyRing};

pub use address::socket_addr;
pub use client_state::{CLIENT_STATE_ENV, ClientStateOpts};
#[cfg(feature = "manage")]
pub use graph::GraphOpts;
#[cfg(feature = "kafka")]
pub use kafka::{KafkaLog, KafkaOpts};
pub use keys::{KeyOpts, warn_if_world_readable};
pub use limits::{ItemLimit, Limits};
pub use replay::{Replay, ReplayOpts};
pub use tokens::TokenOpts;

use crate::{Fail, fail};

/// Keys, signing keys and checks (`decrypt`, `serve`).
#[derive(clap::Args, Debug, Clone)]
pub struct ReceiverOpts {
    #[command(flatten)]
    pub keys: KeyOpts,

    #[command(flatten)]
    pub tokens: TokenOpts,

    #[command(flatten)]
    pub client_state: ClientStateOpts,

    #[command(flatten)]
    pub items: ItemLimit,

    /// Allow --jwks-url and --metadata-url over plain http:// to a host that is not the loopback
    /// interface. Anyone on the path could then substitute signing keys and forge tokens.
    #[arg(long, env = "MSGRAPH_NOTIFY_INSECURE_HTTP")]
    pub insecure_http: bool,

    /// Do not check validation tokens (prints a warning). Only for opening a captured payload
    /// offline: anyone holding your certificate can forge notifications that decrypt.
    #[arg(long, env = "MSGRAPH_NOTIFY_INSECURE_SKIP_TOKENS")]
    pub insecure_skip_tokens: bool,
}

/// A receiver and, when the signing keys are fetched, the fetcher that keeps them.
pub struct Built {
    pub receiver: Receiver,
    pub fetcher: Option<Arc<KeyFetcher>>,
}

impl ReceiverOpts {
    /// `--max-items`.
    pub fn max_items(&self) -> usize {
        self.items.get()
    }

    /// The key ring of `--key` and `--cert`, with a warning when it is empty and `decrypts`.
    fn key_ring(&self, decrypts: bool) -> Result<KeyRing, Fail> {
        let ring = self.keys.key_ring()?;
        if ring.is_empty() && decrypts {
            warn_no_key();
        }
        Ok(ring)
    }

    /// Builds the receiver.
    pub fn build(&self, limits: Limits) -> Result<Built, Fail> {
        self.tokens.check(self.insecure_http)?;
        let client_states = self.client_state.secrets()?;
        let ring = self.key_ring(limits.decrypts)?;
        if client_states.is_empty() {
            crate::log::warn(&format!(
                "no clientState secret is configured (--client-state-file, \
                 {CLIENT_STATE_ENV} or --client-state): items are accepted whatever clientState they carry"
            ));
        }
        let mut builder = Receiver::builder(Decryptor::new(ring))
            .max_body_bytes(limits.max_body)
            .max_items(limits.max_items)
            .parallel(limits.parallel);
        if let Some(store) = limits.replay {
            builder = builder.replay_store(store);
        }
        for secret in &client_states {
            builder = builder.client_state(secret.expose());
        }
        let (builder, fetcher) = self.tokens.apply(builder, self.insecure_skip_tokens)?;
        let receiver = builder.build().map_err(|e| fail!("{e}"))?;
        Ok(Built { receiver, fetcher })
    }
}

/// The warning for a command that decrypts with no key.
pub fn warn_no_key() {
    crate::log::warn("no --key given: items with encrypted content will be rejected");
}
