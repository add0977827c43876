//! The clientState options (`--client-state`, `--client-state-file` and the environment
//! variable MSGRAPH_NOTIFY_CLIENT_STATE) of every command that receives notifications.
//!
//! One rule for every spelling: each source is a list of secrets separated by line breaks or
//! commas, white space around each dropped ([`crate::secret::LIST_SEPARATORS`]). So a file
//! holds one secret per line (rotation: old and new), the variable holds `old,new`, and
//! `subscription --client-state-file` reads its file by the same rule and refuses one that does
//! not hold exactly one secret: what Graph is given is always what the receiver compares.

use crate::{Fail, Secret};

/// The environment variable holding clientState secrets, separated by commas or line breaks.
pub const CLIENT_STATE_ENV: &str = "MSGRAPH_NOTIFY_CLIENT_STATE";

/// The subscription's clientState secrets.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientStateOpts {
    /// The subscription's clientState secret: every item must carry one of them. Repeatable
    /// (rotation); commas separate secrets here as in every source, so a clientState holds no
    /// comma or line break. Visible to other users in the process list: prefer
    /// --client-state-file or the environment variable MSGRAPH_NOTIFY_CLIENT_STATE (several
    /// secrets separated by commas). All three sources add up.
    #[arg(long = "client-state", value_name = "S")]
    pub client_states: Vec<Secret>,

    /// A file of clientState secrets, one per line (commas separate too; blank lines and white
    /// space around each ignored). Repeatable.
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
        let mut secrets = Vec::new();
        for given in &self.client_states {
            let before = secrets.len();
            secrets.extend(crate::secret::split_list(given.expose()).map(Secret::new));
            if secrets.len() == before {
                return Err(crate::fail!(
                    "--client-state: an empty clientState secret would accept items that carry none"
                ));
            }
        }
        for path in &self.client_state_files {
            super::warn_if_world_readable("--client-state-file", path);
            secrets.extend(crate::secret::list_file("--client-state-file", path)?);
        }
        secrets.extend(crate::secret::env_list(CLIENT_STATE_ENV)?);
        Ok(secrets)
    }
}
