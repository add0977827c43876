//! `decrypt`: verify and decrypt one captured changeNotificationCollection.

use std::io::Write;
use std::process::ExitCode;

use msgraph_notify::receiver::{Item, Reply};

use crate::opts::ReceiverOpts;
use crate::{Fail, fail};

/// Verify and decrypt one notification collection (a captured POST body).
///
/// Prints one JSON object per line for each item of `value`, in order: `index`, `status`
/// (decrypted, basic, lifecycle or rejected), and `data` (the decrypted resource), `lifecycleEvent`
/// or `error`, with the item's subscriptionId, tenantId, changeType and resource.
///
/// Exit status: 0 when no item was rejected, 1 when any was, 2 when the input or the options are
/// unusable (the reason on stderr).
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    msgraph-notify decrypt --key cert-2026=keys/key.pem --app-id $APP_ID --client-state $SECRET body.json\n  \
    msgraph-notify decrypt --key graph.pfx --password rich --insecure-skip-tokens - < captured.json")]
pub struct Args {
    #[command(flatten)]
    receiver: ReceiverOpts,

    /// The largest input accepted, in bytes. Default: no limit (a capture is trusted input).
    #[arg(long, value_name = "BYTES")]
    max_body: Option<usize>,

    /// The collection JSON: a file, or `-` for standard input.
    #[arg(value_name = "FILE|-")]
    input: String,
}

pub fn run(args: Args) -> Result<ExitCode, Fail> {
    let built = args.receiver.build(crate::opts::Limits {
        max_body: args.max_body.unwrap_or(usize::MAX),
        max_items: args.receiver.max_items as usize,
        parallel: true,
        replay: None,
    })?;
    let body = crate::read_input(&args.input)?;
    let reply = match &built.fetcher {
        Some(fetcher) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| fail!("cannot start the async runtime: {e}"))?;
            let reply =
                runtime.block_on(built.receiver.receive_fetching_keys(fetcher, None, &body));
            if let Some(e) = runtime.block_on(fetcher.last_error()) {
                errln!("warning: fetching the token signing keys failed: {e}");
            }
            reply
        }
        None => built.receiver.receive(None, &body),
    };
    let items = match reply {
        Ok(Reply::Notifications(items)) => items,
        Ok(_) => return Err(fail!("{}: not a notification collection", args.input)),
        Err(e @ msgraph_notify::Error::TooMany { .. }) => {
            return Err(fail!(
                "{}: {e}; --max-items raises the item limit",
                args.input
            ));
        }
        Err(e) => return Err(fail!("{}: {e}", args.input)),
    };
    let rejected = write_items(&items).map_err(|e| fail!("cannot write the output: {e}"))?;
    Ok(if rejected {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints one JSON line per item and flushes; returns whether any item was rejected.
pub fn write_items(items: &[Item]) -> std::io::Result<bool> {
    let mut out = std::io::stdout().lock();
    let mut rejected = false;
    for item in items {
        rejected |= item.outcome.is_rejected();
        writeln!(out, "{}", item.to_json())?;
    }
    out.flush()?;
    Ok(rejected)
}
