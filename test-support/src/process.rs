//! Child processes: tools found by an environment variable or on PATH, a command run to its end
//! with its input fed, signals, and a running child whose output lines are captured as they come.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The program named by `$env_var`, else `default` on PATH, if `--version` runs; otherwise
/// [`crate::missing`] (skip with a note, a failure under `CI=true`) with `hint`.
pub fn tool(env_var: &str, default: &str, what: &str, hint: &str) -> Option<PathBuf> {
    let candidate = std::env::var_os(env_var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    match Command::new(&candidate)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Some(candidate),
        other => crate::missing(
            &format!(
                "{what} is not installed ({}: {other:?})",
                candidate.display()
            ),
            &format!("{hint}, or set {env_var}"),
        ),
    }
}

/// Runs `command` to its end with `stdin` fed from a thread (a closed pipe ignored: a command
/// that refuses its options exits before it reads its input, and a large input must not block
/// its output); stdout and stderr captured.
pub fn run(command: &mut Command, stdin: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the command");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait for the command");
    let _ = writer.join();
    out
}

/// Bytes as text, lossily.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Sends `signal` (`-TERM`, `-STOP`, …) to process `pid` through kill(1); asserts it was sent.
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal} {pid}");
}

/// Lines read from one of a child's pipes, and whether the pipe has closed.
#[derive(Clone, Default)]
pub struct Lines {
    lines: Arc<Mutex<Vec<String>>>,
    closed: Arc<AtomicBool>,
}

impl Lines {
    fn read_from(&self, pipe: impl std::io::Read + Send + 'static) -> JoinHandle<()> {
        let this = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                this.lines.lock().unwrap().push(line);
            }
            this.closed.store(true, Ordering::SeqCst);
        })
    }

    /// The lines so far, locked (as a `Mutex` would give them).
    pub fn lock(&self) -> std::sync::LockResult<std::sync::MutexGuard<'_, Vec<String>>> {
        self.lines.lock()
    }

    /// A copy of the lines so far.
    pub fn snapshot(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn len(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

/// A running child with its stdout and stderr read line by line as they come; killed on drop
/// unless it was stopped.
pub struct Captured {
    pub child: Option<Child>,
    pub stdout: Lines,
    pub stderr: Lines,
    readers: Vec<JoinHandle<()>>,
}

impl Captured {
    /// Starts `command` with no input and both outputs captured.
    pub fn spawn(command: &mut Command, what: &str) -> Captured {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let (stdout, stderr) = (Lines::default(), Lines::default());
        let readers = vec![
            stdout.read_from(child.stdout.take().expect("stdout")),
            stderr.read_from(child.stderr.take().expect("stderr")),
        ];
        Captured {
            child: Some(child),
            stdout,
            stderr,
            readers,
        }
    }

    /// The process id, while it runs.
    pub fn id(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Waits for the first stderr line for which `find` gives a value; fails with the lines so
    /// far when stderr closes first (the child exited) or after `patience`.
    pub fn wait_stderr<T>(
        &self,
        what: &str,
        patience: Duration,
        find: impl Fn(&str) -> Option<T>,
    ) -> T {
        let start = Instant::now();
        let mut seen = 0;
        loop {
            let closed = self.stderr.is_closed();
            let lines = self.stderr.snapshot();
            if let Some(found) = lines[seen..].iter().find_map(|l| find(l)) {
                return found;
            }
            seen = lines.len();
            assert!(!closed, "{what}: the process ended first: {lines:?}");
            assert!(
                start.elapsed() < patience,
                "{what}: not within {patience:?}: {lines:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// stdout's lines, each parsed as JSON.
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .snapshot()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
            .collect()
    }

    /// Waits until stdout has at least `n` lines (or the deadline passes); returns them as JSON.
    pub fn wait_lines(&self, n: usize, deadline: Duration) -> Vec<Value> {
        let start = Instant::now();
        while self.stdout.len() < n && start.elapsed() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.json_lines()
    }

    /// Waits until `done` holds for stdout's JSON lines so far; fails with them (and stderr) as
    /// `what` after `patience`.
    pub fn wait_for(
        &self,
        what: &str,
        patience: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let lines = self.json_lines();
            if done(&lines) {
                return lines;
            }
            if start.elapsed() > patience {
                panic!(
                    "{what} did not happen; stdout {lines:?}; stderr {:?}",
                    self.stderr.snapshot()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `sig` and waits for the exit (failing after `patience`); returns the exit code. The
    /// output is fully read after.
    pub fn stop_with(&mut self, sig: &str, patience: Duration) -> Option<i32> {
        let mut child = self.child.take().expect("running");
        signal(child.id(), sig);
        let start = Instant::now();
        let code = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status.code();
            }
            if start.elapsed() > patience {
                let _ = child.kill();
                panic!("the process did not stop within {patience:?} of kill {sig}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        code
    }
}

impl Drop for Captured {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A child killed (and reaped) on drop: for servers the tests start and never read.
pub struct Guarded(pub Option<Child>);

impl Guarded {
    /// Kills and reaps the child now (no-op when already stopped).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn id(&self) -> Option<u32> {
        self.0.as_ref().map(Child::id)
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.stop();
    }
}
