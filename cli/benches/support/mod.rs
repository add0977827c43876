//! What the command benchmarks share: their items, and a `serve` process fed POSTs on real
//! sockets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `count` encrypted presence notifications of about 1 KiB each (a 904-character status
/// message), for `user-00000` on, in `tenant` with `client_state`, encrypted for `cert`.
pub fn presences(
    cert: &msgraph_notify::Certificate,
    count: usize,
    tenant: &str,
    client_state: &str,
) -> Vec<serde_json::Value> {
    use msgraph_notify::testing::{GraphEncryptor, NotificationSpec};
    let filler = "x".repeat(1024 - 120);
    let encryptor = GraphEncryptor::new(cert, "bench");
    (0..count)
        .map(|n| {
            let resource = serde_json::json!({
                "@odata.type": "#microsoft.graph.presence",
                "id": format!("user-{n:05}"),
                "availability": "Busy",
                "activity": "InACall",
                "statusMessage": {"message": {"content": filler, "contentType": "text"}},
            });
            let mut spec =
                NotificationSpec::new(tenant, &format!("communications/presences/user-{n:05}"));
            spec.client_state = Some(client_state.into());
            serde_json::to_value(encryptor.notification(&resource, &spec).expect("encrypt"))
                .expect("json")
        })
        .collect()
}

/// The status of a decrypted item's line, quoted.
const DECRYPTED: &[u8] = b"\"decrypted\"";

/// A running `serve`, its lines counted as they come.
pub struct Serve {
    child: Child,
    addr: SocketAddr,
    done: mpsc::Receiver<Instant>,
}

impl Serve {
    /// Starts `command` (a `serve` with its options) and waits for its address; a thread reads
    /// its output, checks each line is a decrypted item, and notes when the `items`-th arrives.
    pub fn start(mut command: Command, items: usize) -> Serve {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let addr: SocketAddr = loop {
            let mut line = String::new();
            assert!(
                stderr.read_line(&mut line).expect("stderr") > 0,
                "serve exited"
            );
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest
                    .split_whitespace()
                    .next()
                    .and_then(|a| a.parse().ok())
                    .expect("address");
            }
        };
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = stderr.read_to_string(&mut sink);
        });
        let mut stdout = BufReader::with_capacity(1 << 20, child.stdout.take().expect("stdout"));
        let (done_tx, done) = mpsc::channel();
        // As light as it can be: on two cores this thread shares the CPUs with `serve`. Each line
        // is checked where its status is (`{"index":N,"status":"decrypted",…`), not parsed.
        std::thread::spawn(move || {
            let (mut n, mut line) = (0, Vec::with_capacity(4096));
            while stdout
                .read_until(b'\n', &mut line)
                .is_ok_and(|read| read > 0)
            {
                let head = &line[..line.len().min(48)];
                assert!(
                    head.windows(DECRYPTED.len()).any(|w| w == DECRYPTED),
                    "not decrypted: {}",
                    String::from_utf8_lossy(&line)
                );
                line.clear();
                n += 1;
                if n == items {
                    let _ = done_tx.send(Instant::now());
                }
            }
        });
        Serve { child, addr, done }
    }

    /// POSTs `bodies` over `connections` keep-alive connections, each sending its next POST
    /// when the previous one was answered (202, or the run fails). Returns when the first byte
    /// was sent and the slowest answer.
    pub fn post(&self, bodies: &[Vec<u8>], connections: usize) -> (Instant, Duration) {
        let addr = self.addr;
        let mut conns: Vec<TcpStream> = (0..connections)
            .map(|_| {
                let s = TcpStream::connect(addr).expect("connect");
                s.set_nodelay(true).expect("nodelay");
                s.set_read_timeout(Some(Duration::from_secs(30)))
                    .expect("timeout");
                s
            })
            .collect();
        // Each request made whole before the clock starts, and sent in one write; the answers read
        // through a buffer (not a read per byte): on two cores this client shares the CPUs with
        // `serve`, and what it costs is counted against `serve`.
        let requests: Vec<Vec<u8>> = bodies
            .iter()
            .map(|body| {
                let mut request = format!(
                    "POST /graph HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                request.extend_from_slice(body);
                request
            })
            .collect();
        let requests = &requests;
        let start = Instant::now();
        let slowest = std::thread::scope(|scope| {
            let handles: Vec<_> = conns
                .iter_mut()
                .enumerate()
                .map(|(c, conn)| {
                    scope.spawn(move || {
                        let mut answers = BufReader::new(conn.try_clone().expect("clone"));
                        let mut worst = Duration::ZERO;
                        for request in requests.iter().skip(c).step_by(connections) {
                            let sent = Instant::now();
                            conn.write_all(request).expect("send");
                            let answer =
                                test_support::net::read_answer(&mut answers).expect("read answer");
                            worst = worst.max(sent.elapsed());
                            assert_eq!(answer.status, 202, "a POST was not accepted");
                        }
                        worst
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("client"))
                .fold(Duration::ZERO, Duration::max)
        });
        (start, slowest)
    }

    /// Waits for the last line, stops `serve` (SIGTERM) and returns when the last line was read
    /// and the CPU time (user and system, all threads) `serve` had used by then, start-up
    /// included.
    pub fn finish(mut self) -> (Instant, Duration) {
        let end = self
            .done
            .recv_timeout(Duration::from_secs(300))
            .expect("all items out");
        let cpu = cpu_time(self.child.id());
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        (end, cpu)
    }
}

/// A process's user and system time, from `/proc/PID/stat` (fields 14 and 15, in clock ticks of
/// 1/100 s: Linux's USER_HZ on every architecture it runs this bench on).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11..13]
        .iter()
        .map(|f| f.parse::<u64>().expect("ticks"))
        .sum();
    Duration::from_millis(ticks * 10)
}
