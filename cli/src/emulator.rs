//! `emulator`: Microsoft Graph's subscription API, Entra ID's token endpoint and Graph's
//! deliveries on a local port, for testing receivers and subscription clients without a tenant
//! (the library's `emulator::Emulator`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use msgraph_notify::Certificate;
use msgraph_notify::emulator::{DEFAULT_TENANT, Emulator};
use zeroize::Zeroizing;

use crate::{Fail, fail, read_input};

/// Run a Microsoft Graph change-notification emulator: Entra ID's token endpoint, Graph's
/// subscription API (/v1.0 and /beta) with its validation handshake, encrypted deliveries with
/// validation tokens signed by the emulator's keys (published at /common/discovery/keys), and a
/// control API for tests under /_emulator/ (changes, lifecycle, clock, faults, deliveries).
///
/// Prints `emulator listening on http://ADDR` on stderr, and runs until SIGTERM or SIGINT.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example:\n  \
    msgraph-notify emulator --listen 127.0.0.1:8090 --app 3c5ae9b2-7a0e-4f1d-9a43-5b8d2f6c1e07=app-cert.pem --allow-http\n  \
    # then: serve --jwks-url http://127.0.0.1:8090/common/discovery/keys ...\n  \
    # and:  curl -X POST http://127.0.0.1:8090/_emulator/changes -d '{\"resource\":\"communications/presences/u1\",\"count\":1}'")]
pub struct Args {
    /// The address to listen on (port 0: a free port, printed on stderr).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,

    /// Register an application: APP_ID=CERT_FILE (its client assertions are signed by that
    /// certificate's key) or APP_ID:SECRET_FILE (a client secret, read from the file so it is
    /// not in the process list). Repeatable.
    #[arg(long = "app", value_name = "APP_ID=CERT_FILE|APP_ID:SECRET_FILE")]
    apps: Vec<String>,

    /// Accept http:// notification and lifecycle URLs to the loopback (Graph requires HTTPS).
    #[arg(long)]
    allow_http: bool,

    /// Grant subscriptions at most this many seconds, even below Graph's 45-minute floor, so a
    /// client's renewals can be watched in real time.
    #[arg(long, value_name = "SECONDS")]
    max_lifetime: Option<u64>,

    /// The tenant id of the token endpoint, the issuer and the notifications.
    #[arg(long, value_name = "ID", default_value = DEFAULT_TENANT)]
    tenant: String,
}

/// One `--app` value.
enum App {
    Certificate(String, Certificate),
    Secret(String, Zeroizing<String>),
}

fn parse_app(value: &str) -> Result<App, Fail> {
    let cert = value.split_once('=');
    let secret = value.split_once(':');
    // The separator that comes first decides: an app id has neither.
    let pick_cert = match (cert, secret) {
        (Some((a, _)), Some((b, _))) => a.len() < b.len(),
        (Some(_), None) => true,
        (None, Some(_)) => false,
        (None, None) => {
            return Err(fail!(
                "--app {value:?}: give APP_ID=CERT_FILE or APP_ID:SECRET_FILE"
            ));
        }
    };
    if pick_cert {
        let (id, path) = cert.unwrap_or_default();
        let bytes = read_input(path)?;
        let certificate =
            Certificate::load(&bytes).map_err(|e| fail!("--app {id}: {path}: {e}"))?;
        Ok(App::Certificate(id.to_owned(), certificate))
    } else {
        let (id, path) = secret.unwrap_or_default();
        let bytes = Zeroizing::new(read_input(path)?);
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| fail!("--app {id}: {path} is not UTF-8 text"))?;
        let text = text.strip_suffix('\n').unwrap_or(text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.is_empty() {
            return Err(fail!("--app {id}: {path} holds no secret"));
        }
        Ok(App::Secret(id.to_owned(), Zeroizing::new(text.to_owned())))
    }
}

/// Runs the emulator until SIGTERM or SIGINT.
pub fn run(args: Args) -> Result<ExitCode, Fail> {
    let mut builder = Emulator::builder()
        .listen(args.listen)
        .tenant(&args.tenant)
        .allow_http(args.allow_http);
    for value in &args.apps {
        builder = match parse_app(value)? {
            App::Certificate(id, cert) => builder.app_with_certificate(&id, cert),
            App::Secret(id, secret) => builder.app_with_secret(&id, &secret),
        };
    }
    if let Some(seconds) = args.max_lifetime {
        if seconds == 0 {
            return Err(fail!("--max-lifetime must be at least 1 second"));
        }
        builder = builder.max_lifetime(Duration::from_secs(seconds));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| fail!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async move {
        let shutdown = crate::signal::Shutdown::register();
        let emulator = builder
            .start()
            .await
            .map_err(|e| fail!("cannot listen on {}: {e}", args.listen))?;
        errln!("emulator listening on {}", emulator.base_url());
        errln!(
            "emulator: tenant {}, token endpoint {}, signing keys {}",
            emulator.tenant_id(),
            emulator.token_url(),
            emulator.jwks_url()
        );
        shutdown.received().await;
        emulator.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}
