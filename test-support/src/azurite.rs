//! Azurite, Microsoft's storage emulator, started on a free port of 127.0.0.1 for one test, and
//! a minimal Shared Key client to create containers and write blobs in it. The client is written
//! here, independently of the crate's reader (object_store), so a test does not check the reader
//! against itself.
//!
//! Azurite is found through `MSGRAPH_NOTIFY_AZURITE` (the path of `azurite-blob`) or
//! `azurite-blob` on PATH (`npm install azurite@3`). Without it a test is skipped with a note,
//! except under `CI=true`, where its absence fails it (.ci/run installs it).
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::net::{free_port, wait_for_port};

/// The emulator's well-known account and key (published by Microsoft for Azurite).
pub const ACCOUNT: &str = "devstoreaccount1";
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The storage service version the client speaks.
const VERSION: &str = "2021-08-06";

/// An Azurite blob service, stopped (and its directory removed) on drop.
pub struct Azurite {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
}

impl Azurite {
    /// Starts Azurite, or `None` (with a note) when it is not installed outside CI.
    pub fn start() -> Option<Azurite> {
        let binary = crate::process::tool(
            "MSGRAPH_NOTIFY_AZURITE",
            "azurite-blob",
            "Azurite",
            "`npm install azurite@3` and set MSGRAPH_NOTIFY_AZURITE to its azurite-blob; .ci/run installs it",
        )?;
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "msgraph-notify-azurite-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("azurite dir");
        let log = std::fs::File::create(dir.join("azurite.log")).expect("azurite log");
        let child = Command::new(binary)
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &port.to_string(),
                "--location",
                dir.to_str().expect("utf-8 temp dir"),
                "--disableTelemetry",
                // object_store may speak a newer service version than this Azurite knows.
                "--skipApiVersionCheck",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start azurite-blob");
        let azurite = Azurite {
            port,
            child: Some(child),
            dir,
        };
        wait_for_port(port, Duration::from_secs(60), "Azurite", || {
            std::fs::read_to_string(azurite.dir.join("azurite.log")).unwrap_or_default()
        });
        Some(azurite)
    }

    /// The blob endpoint, path-style as Azurite serves it.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// The account's connection string, as the Azure portal gives one (with the emulator's
    /// endpoint).
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};BlobEndpoint={};",
            self.endpoint()
        )
    }

    /// Freezes the emulator (SIGSTOP): connections are accepted by the kernel and never
    /// answered, as a storage account that hangs.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws the emulator (SIGCONT): it answers again, its blobs intact.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        crate::process::signal(self.child.as_ref().expect("azurite running").id(), signal);
    }

    /// Stops the emulator (the port then refuses connections).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// An account SAS token for the blob service (version 2019-12-12, as the Shared Access
    /// Signature documentation defines it), with these permissions (`r` to read), valid until
    /// 2030, for http and https.
    pub fn account_sas(&self, permissions: &str) -> String {
        let (version, expiry) = ("2019-12-12", "2030-01-01T00:00:00Z");
        let to_sign =
            format!("{ACCOUNT}\n{permissions}\nb\nsco\n\n{expiry}\n\nhttps,http\n{version}\n");
        let key = STANDARD.decode(ACCOUNT_KEY).expect("account key");
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("hmac key");
        mac.update(to_sign.as_bytes());
        let signature = STANDARD.encode(mac.finalize().into_bytes());
        format!(
            "sv={version}&ss=b&srt=sco&sp={permissions}&se={}&spr=https,http&sig={}",
            expiry.replace(':', "%3A"),
            encode_path(&signature)
        )
    }

    pub fn create_container(&self, container: &str) {
        let status = self.request(
            "PUT",
            &format!("/{container}"),
            &[("restype", "container")],
            &[],
            b"",
        );
        assert_eq!(status, 201, "create container {container}");
    }

    /// Writes a block blob; `name` is percent-encoded per segment.
    pub fn put_blob(&self, container: &str, name: &str, content: &[u8]) {
        let path = format!("/{container}/{}", encode_path(name));
        let status = self.request(
            "PUT",
            &path,
            &[],
            &[("x-ms-blob-type", "BlockBlob")],
            content,
        );
        assert_eq!(status, 201, "put blob {name}");
    }

    /// One request signed with the account key (Shared Key, as the Blob service documents it);
    /// returns the status code.
    fn request(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> u16 {
        let date = http_date();
        let full_path = format!("/{ACCOUNT}{path}");
        let mut ms_headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
            .chain([
                ("x-ms-date".to_owned(), date.clone()),
                ("x-ms-version".to_owned(), VERSION.to_owned()),
            ])
            .collect();
        ms_headers.sort();
        let length = if body.is_empty() {
            String::new()
        } else {
            body.len().to_string()
        };
        let mut to_sign = format!("{method}\n\n\n{length}\n\n\n\n\n\n\n\n\n");
        for (k, v) in &ms_headers {
            to_sign.push_str(&format!("{k}:{v}\n"));
        }
        to_sign.push_str(&format!("/{ACCOUNT}{full_path}"));
        let mut sorted_query = query.to_vec();
        sorted_query.sort();
        for (k, v) in &sorted_query {
            to_sign.push_str(&format!("\n{k}:{v}"));
        }
        let key = STANDARD.decode(ACCOUNT_KEY).expect("account key");
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("hmac key");
        mac.update(to_sign.as_bytes());
        let signature = STANDARD.encode(mac.finalize().into_bytes());

        let query_string: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let target = if query_string.is_empty() {
            full_path
        } else {
            format!("{full_path}?{}", query_string.join("&"))
        };
        let mut request = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n\
             Authorization: SharedKey {ACCOUNT}:{signature}\r\nConnection: close\r\n",
            self.port,
            body.len()
        );
        for (k, v) in &ms_headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect azurite");
        stream.write_all(request.as_bytes()).expect("write");
        stream.write_all(body).expect("write body");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("read answer");
        let answer = String::from_utf8_lossy(&answer);
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP status in {answer:?}"));
        if !(200..300).contains(&status) {
            eprintln!("azurite answered {method} {target}: {answer}");
        }
        status
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Each `/`-separated segment percent-encoded (everything but unreserved characters).
pub fn encode_path(name: &str) -> String {
    name.split('/')
        .map(|segment| {
            segment
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    other => format!("%{other:02X}"),
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Now, as an RFC 1123 date (`x-ms-date`).
fn http_date() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let days = now.div_euclid(86_400);
    let secs = now.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let month_name = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!(
        "{weekday}, {day:02} {month_name} {year} {:02}:{:02}:{:02} GMT",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}
