//! The clientState options (`--client-state`, `--client-state-file` and the environment
//! variable MSGRAPH_NOTIFY_CLIENT_STATE) of every command that receives notifications.

use crate::{Fail, Secret};

/// The environment variable holding clientState secrets, separated by commas.
pub const CLIENT_STATE_ENV: &str = "MSGRAPH_NOTIFY_CLIENT_STATE";

/// The subscription's clientState secrets.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientStateOpts {
    /// The subscription's clientState secret: every item must carry one of them. Repeatable
    /// (rotation). Visible to other users in the process list: prefer --client-state-file or
    /// the environment variable MSGRAPH_NOTIFY_CLIENT_STATE (several secrets separated by
    /// commas). All three sources add up.
    #[arg(long = "client-state", value_name = "S")]
    pub client_states: Vec<Secret>,

    /// A file of clientState secrets, one per line (blank lines ignored). Repeatable.
    #[arg(
        long = "client-state-file",
        value_name = "FILE",
        env = "MSGRAPH_NOTIFY_CLIENT_STATE_FILE"
    )]
    pub client_state_files: Vec<String>,
}

impl ClientStateOpts {
    /// Every clientState secret: --client-state, --client-state-file and the environment.
    pub fn secrets(&self) -> Result<Vec<Secret>, Fail> {
        let mut secrets = self.client_states.clone();
        for path in &self.client_state_files {
            secrets.extend(crate::secret::lines("--client-state-file", path)?);
        }
        secrets.extend(crate::secret::env_list(CLIENT_STATE_ENV)?);
        if secrets.iter().any(|s| s.expose().trim().is_empty()) {
            return Err(crate::fail!(
                "an empty clientState secret would accept items that carry none"
            ));
        }
        Ok(secrets)
    }
}
