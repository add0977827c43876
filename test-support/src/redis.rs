//! A throw-away `redis-server` on a free port of 127.0.0.1, no persistence; stopped on drop, and
//! stopped and started again on the same port by the outage tests.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::net::{free_port, wait_for_port};
use crate::process::Guarded;

pub struct RedisServer {
    child: Guarded,
    pub port: u16,
}

impl RedisServer {
    /// Starts one, or `None` (with a note) when `redis-server` is not installed outside CI.
    pub fn start() -> Option<RedisServer> {
        let mut server = RedisServer {
            child: Guarded(None),
            port: free_port(),
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
