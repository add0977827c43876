//! `msgraph-notify`: make keys, encrypt fixtures, decrypt captured notifications, run a demo, and
//! serve a real receiver for Microsoft Graph change notifications with resource data.
//!
//! Every command calls only the public API of the `msgraph-notify` library.

/// `println!` that does not panic when stdout is closed (`| head`): the output is dropped.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!` that does not panic when stderr is closed.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

#[cfg(feature = "kafka")]
mod consume;
mod decrypt;
mod demo;
#[cfg(feature = "emulator")]
mod emulator;
mod encrypt;
mod keygen;
mod log;
mod opts;
mod output;
mod retry;
mod secret;
mod serve;
mod signal;
mod subscription;
#[cfg(feature = "manage")]
mod subscriptions;

pub use secret::Secret;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Verify and decrypt Microsoft Graph change notifications with resource data (Teams presence,
/// meeting call events, chat messages).
#[derive(Parser, Debug)]
#[command(
    name = "msgraph-notify",
    version,
    after_help = "Start with `msgraph-notify demo`: it runs the whole flow in memory, with no files and no network."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Keygen(keygen::Args),
    Encrypt(encrypt::Args),
    Decrypt(decrypt::Args),
    Demo(demo::Args),
    Serve(Box<serve::Args>),
    #[cfg(feature = "kafka")]
    Consume(consume::Args),
    Subscription(subscription::Args),
    #[cfg(feature = "manage")]
    Subscriptions(subscriptions::Args),
    #[cfg(feature = "emulator")]
    Emulator(emulator::Args),
}

/// A failure that makes the input or the options unusable: printed on stderr, exit code 2.
#[derive(Debug)]
pub struct Fail(pub String);

impl<E: std::fmt::Display> From<E> for Fail {
    fn from(e: E) -> Self {
        Fail(e.to_string())
    }
}

/// Builds a [`Fail`] from a format string.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => { $crate::Fail(format!($($arg)*)) };
}

/// Exit code of a failure (unusable input or options).
pub const EXIT_UNUSABLE: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if let Some(reason) = not_in_this_build(&e) {
                errln!("msgraph-notify: {reason}");
                return ExitCode::from(EXIT_UNUSABLE);
            }
            e.exit()
        }
    };
    let result = match cli.command {
        Command::Keygen(args) => keygen::run(args),
        Command::Encrypt(args) => encrypt::run(args),
        Command::Decrypt(args) => decrypt::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Serve(args) => serve::run(*args),
        #[cfg(feature = "kafka")]
        Command::Consume(args) => consume::run(args),
        Command::Subscription(args) => subscription::run(args),
        #[cfg(feature = "manage")]
        Command::Subscriptions(args) => subscriptions::run(args),
        #[cfg(feature = "emulator")]
        Command::Emulator(args) => emulator::run(args),
    };
    match result {
        Ok(code) => code,
        Err(Fail(reason)) => {
            errln!("msgraph-notify: {reason}");
            ExitCode::from(EXIT_UNUSABLE)
        }
    }
}

/// What to say instead of clap's "unrecognized subcommand" for a command this build left out:
/// `consume` needs the `kafka` feature.
fn not_in_this_build(e: &clap::Error) -> Option<String> {
    if cfg!(feature = "kafka") || e.kind() != clap::error::ErrorKind::InvalidSubcommand {
        return None;
    }
    let first = std::env::args_os().nth(1)?;
    (first == "consume").then(|| {
        "`consume` (Graph's notifications from Kafka or Azure Event Hubs) is not in this build: \
         it needs the `kafka` feature. Install a build that has it with \
         `cargo install --path cli --locked --features kafka` from a clone of the repository \
         (building librdkafka needs a C compiler, make and OpenSSL's headers: on Debian \
         `apt-get install build-essential libssl-dev`)"
            .to_owned()
    })
}

/// Reads a file, or standard input for `-`.
pub fn read_input(path: &str) -> Result<Vec<u8>, Fail> {
    use std::io::Read;
    if path == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .map_err(|e| fail!("cannot read standard input: {e}"))?;
        Ok(buf)
    } else {
        std::fs::read(path).map_err(|e| fail!("cannot read {path}: {e}"))
    }
}

/// Whether stderr is a terminal (progress is shown only then).
pub fn stderr_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}
