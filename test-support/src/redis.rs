//! A throw-away `redis-server` on a free port of 127.0.0.1, no persistence; stopped on drop, and
//! stopped and started again on the same port by the outage tests (coming back empty, as a
//! Redis without persistence does), flushed, or started with a password.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::net::{free_port, wait_for_port};
use crate::process::Guarded;

pub struct RedisServer {
    child: Guarded,
    pub port: u16,
    /// Further `redis-server` arguments (e.g. `--requirepass`), kept for every (re)start.
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts one, or `None` (with a note) when `redis-server` is not installed outside CI.
    pub fn start() -> Option<RedisServer> {
        Self::start_with(&[])
    }

    /// Starts one with further `redis-server` arguments (`["--requirepass", "secret"]`), or
    /// `None` as [`RedisServer::start`].
    pub fn start_with(extra: &[&str]) -> Option<RedisServer> {
        let mut server = RedisServer {
            child: Guarded(None),
            port: free_port(),
            extra: extra.iter().map(|a| a.to_string()).collect(),
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
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(&self.extra)
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

    /// Stops the server and starts it again on its port: without persistence, it comes back
    /// empty (what a Redis without `appendonly yes` does on a restart).
    pub fn restart_empty(&mut self) {
        self.stop();
        self.spawn().expect("redis-server starts again");
    }

    /// `FLUSHALL` through `redis-cli` (with the `--requirepass` password, if any): every key of
    /// every database gone.
    pub fn flushall(&self) {
        let mut cli = Command::new("redis-cli");
        cli.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(i) = self.extra.iter().position(|a| a == "--requirepass") {
            cli.arg("--no-auth-warning")
                .arg("-a")
                .arg(&self.extra[i + 1]);
        }
        let out = cli.arg("FLUSHALL").output().expect("redis-cli runs");
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "OK",
            "redis-cli FLUSHALL: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}
