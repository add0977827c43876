//! A throw-away `redis-server` on a free port of 127.0.0.1, persistent as SECURITY.md asks
//! (append-only file, fsync on every write, in a directory of its own removed on drop): stopped
//! (SIGKILL) and started again on the same port by the outage tests, it comes back with its
//! memory; [`RedisServer::restart_empty`] is a Redis without persistence restarting, and
//! [`RedisServer::flushall`] a flush. Can be started with a password.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::net::{free_port, wait_for_port};
use crate::process::Guarded;

pub struct RedisServer {
    child: Guarded,
    pub port: u16,
    /// Further `redis-server` arguments (e.g. `--requirepass`), kept for every (re)start.
    extra: Vec<String>,
    /// Its working directory: the append-only file.
    dir: std::path::PathBuf,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.child.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl RedisServer {
    /// Starts one, or `None` (with a note) when `redis-server` is not installed outside CI.
    pub fn start() -> Option<RedisServer> {
        Self::start_with(&[])
    }

    /// [`RedisServer::start`]: every server here already runs with persistence (AOF, synced at
    /// each write, in its own directory), so a stop and a start keep what was stored, as
    /// SECURITY.md requires of production.
    pub fn start_persistent() -> Option<RedisServer> {
        Self::start()
    }

    /// Starts one with further `redis-server` arguments (`["--requirepass", "secret"]`), or
    /// `None` as [`RedisServer::start`].
    pub fn start_with(extra: &[&str]) -> Option<RedisServer> {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "msgraph-notify-redis-{}-{port}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory for redis-server");
        let mut server = RedisServer {
            child: Guarded(None),
            port,
            extra: extra.iter().map(|a| a.to_string()).collect(),
            dir,
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
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
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

    /// Stops the server and starts it again on its port with its files gone: it comes back
    /// empty, as a Redis without persistence does on a restart.
    pub fn restart_empty(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
        std::fs::create_dir_all(&self.dir).expect("a directory for redis-server");
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
