//! A throw-away `redis-server` on a free port of 127.0.0.1, no persistence; stopped on drop, and
//! stopped and started again on the same port by the outage tests.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::net::{free_port, wait_for_port};
use crate::process::Guarded;

pub struct RedisServer {
    child: Guarded,
    pub port: u16,
    /// Set by [`RedisServer::start_persistent`]: the AOF directory, kept across restarts.
    persist: Option<std::path::PathBuf>,
}

impl RedisServer {
    /// Starts one, or `None` (with a note) when `redis-server` is not installed outside CI.
    pub fn start() -> Option<RedisServer> {
        Self::start_with(None)
    }

    /// Like [`RedisServer::start`], with persistence (AOF, synced at each write, in a fresh
    /// directory under the temp dir): a stop and a start keep what was stored, as SECURITY.md
    /// requires of production.
    pub fn start_persistent() -> Option<RedisServer> {
        let dir = std::env::temp_dir().join(format!(
            "msgraph-notify-redis-{}-{}",
            std::process::id(),
            free_port()
        ));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        Self::start_with(Some(dir))
    }

    fn start_with(persist: Option<std::path::PathBuf>) -> Option<RedisServer> {
        let mut server = RedisServer {
            child: Guarded(None),
            port: free_port(),
            persist,
        };
        match server.spawn() {
            Ok(()) => Some(server),
            Err(e) => crate::missing(
                &format!("redis-server is not installed ({e})"),
                "apt-get install redis-server",
            ),
        }
    }

    /// Starts the server (again) on its port and waits until it accepts connections.
    pub fn spawn(&mut self) -> std::io::Result<()> {
        let mut command = Command::new("redis-server");
        command.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"]);
        match &self.persist {
            None => command.args(["--save", "", "--appendonly", "no"]),
            Some(dir) => command
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                ])
                .arg("--dir")
                .arg(dir),
        };
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Guarded(Some(child));
        wait_for_port(
            self.port,
            Duration::from_secs(60),
            "redis-server",
            String::new,
        );
        Ok(())
    }

    /// Stops the server: the port refuses connections until [`RedisServer::spawn`].
    pub fn stop(&mut self) {
        self.child.stop();
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.child.stop();
        if let Some(dir) = &self.persist {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
