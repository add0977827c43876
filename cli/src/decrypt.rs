//! `decrypt`: verify and decrypt captured changeNotificationCollections.

use std::io::Write;
use std::ops::ControlFlow;
use std::process::ExitCode;

use msgraph_notify::model::{BodyShape, strip_bom};
use msgraph_notify::receiver::{Item, Reply};
use rayon::prelude::*;

use crate::opts::{Built, ReceiverOpts};
use crate::output::Lines;
use crate::{Fail, fail};

/// Verify and decrypt one notification collection (a captured POST body), a single captured
/// notification item, or a JSON Lines file of captured bodies (one per line).
///
/// Prints one JSON object per line for each item of `value`, in order: `index`, `status`
/// (decrypted, basic, lifecycle, rejected; offloaded for an item kept in blob storage), and
/// `data` (the decrypted resource), `lifecycleEvent`, `additionalPayloadStorageId` or `error`, with
/// the item's subscriptionId, tenantId, changeType and resource. For JSON Lines
/// input each output line also carries `line`, the body's line number (from 1). A leading UTF-8
/// byte-order mark is ignored. A single item has no validation tokens beside it: it decrypts only
/// with --insecure-skip-tokens.
///
/// JSON Lines input: each line is its own body. The usable lines are decrypted and printed; a
/// line that is not JSON (a capture cut short), or JSON that is not a collection or an item, is
/// reported on stderr by its number and the others go on.
///
/// When done, one line on stderr sums up: the items by status, the lines read and unusable, the
/// time taken.
///
/// Exit status: 0 when no item was rejected, 1 when any was, 2 when the input or the options are
/// unusable (the reason on stderr; with JSON Lines, after the usable lines were processed). When
/// standard output is closed early (`| head`), the command stops quietly with 0.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    msgraph-notify decrypt --key cert-2026=keys/key.pem --app-id $APP_ID --client-state $SECRET body.json\n  \
    msgraph-notify decrypt --key graph.pfx --password rich --insecure-skip-tokens - < captured.json\n  \
    msgraph-notify decrypt --key keys/key.pem --jwks jwks.json --app-id $APP_ID captured.jsonl | head -5")]
pub struct Args {
    #[command(flatten)]
    receiver: ReceiverOpts,

    /// The largest input accepted, in bytes. Default: no limit (a capture is trusted input).
    #[arg(long, value_name = "BYTES", env = "MSGRAPH_NOTIFY_MAX_BODY")]
    max_body: Option<usize>,

    /// The collection JSON (or one item, or JSON Lines of bodies): a file, or `-` for standard
    /// input.
    #[arg(value_name = "FILE|-")]
    input: String,
}

/// How a run ended, before it becomes an exit code.
#[derive(Default)]
struct Tally {
    rejected: bool,
    /// The numbers of the JSON Lines input's lines that could not be used.
    unusable_lines: Vec<usize>,
    /// The non-blank lines of a JSON Lines input.
    lines: usize,
    counts: crate::output::Counts,
}

pub fn run(args: Args) -> Result<ExitCode, Fail> {
    let started = std::time::Instant::now();
    let built = args.receiver.build(crate::opts::Limits {
        max_body: args.max_body.unwrap_or(usize::MAX),
        max_items: args.receiver.max_items(),
        parallel: true,
        replay: None,
        decrypts: true,
    })?;
    let input = crate::read_input(&args.input)?;
    let body = strip_bom(&input);
    let runtime = match &built.fetcher {
        Some(_) => Some(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| fail!("cannot start the async runtime: {e}"))?,
        ),
        None => None,
    };
    let receive_body = |body: &[u8]| -> Result<Vec<Item>, String> {
        match receive(&built, runtime.as_ref(), body) {
            Ok(Reply::Notifications(items)) => Ok(items),
            Ok(_) => Err("not a notification collection".to_owned()),
            Err(e) => Err(describe(e)),
        }
    };
    // A single captured item is decrypted as a collection of one. Its shape is looked at only
    // when the body is refused: a large collection is not scanned once more before its parse.
    let decrypt = |body: &[u8]| -> Result<Vec<Item>, String> {
        receive_body(body).or_else(|e| match as_collection(body) {
            Some(wrapped) => receive_body(&wrapped),
            None => Err(e),
        })
    };
    let mut tally = Tally::default();
    let written = if is_json_lines(body) {
        let lines: Vec<(usize, &[u8])> = body
            .split(|&b| b == b'\n')
            .enumerate()
            .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
            .map(|(number, line)| (number + 1, line))
            .collect();
        tally.lines = lines.len();
        pipeline(&lines, &decrypt, &args.input, &mut tally)
    } else {
        collection(&built, runtime.as_ref(), body, &mut tally)
            .or_else(|e| match as_collection(body) {
                Some(wrapped) => collection(&built, runtime.as_ref(), &wrapped, &mut tally),
                None => Err(e),
            })
            .map_err(|e| {
                let hint = match BodyShape::of(body) {
                    BodyShape::Jwks => "; a key set is given with --jwks FILE",
                    _ => "",
                };
                fail!("{}: {e}{hint}", args.input)
            })?
    };
    if let (Some(fetcher), Some(runtime)) = (&built.fetcher, &runtime)
        && let Some(e) = runtime.block_on(fetcher.last_error())
    {
        errln!(
            "warning: fetching the token signing keys failed: {e}; to check tokens offline, \
             give the signing keys as a file: --jwks FILE"
        );
    }
    match written {
        Ok(()) => {}
        // `decrypt … | head -1`: the reader has what it wanted; end quietly, as Unix tools do.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(fail!("cannot write the output: {e}")),
    }
    errln!("{}", summary(&args.input, &tally, started.elapsed()));
    if !tally.unusable_lines.is_empty() {
        return Err(fail!(
            "{}: {} of {} lines unusable ({}); the other lines were decrypted",
            args.input,
            tally.unusable_lines.len(),
            tally.lines,
            line_list(&tally.unusable_lines)
        ));
    }
    Ok(if tally.rejected {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// How many bodies of a JSON Lines input are decrypted (in parallel) before their lines are
/// handed to the writer: large enough that the threads rarely wait for one another at the end
/// of a slice, small enough to bound what waits in memory (three slices' lines at most: one
/// being written, one handed over, one being decrypted).
const LINES_PER_SLICE: usize = 128;

/// One body in, its items or why it is unusable.
type DecryptBody<'a> = dyn Fn(&[u8]) -> Result<Vec<Item>, String> + Sync + 'a;

/// How many items' lines are made by one task of a collection's output.
const ITEMS_PER_TASK: usize = 64;

/// How many items of one collection are decided together before their lines go to the writer:
/// enough that the threads rarely wait for one another at the end of a slice, few enough that
/// memory holds one slice's decrypted items and at most three slices' lines (one being written,
/// one handed over, one being made), not the whole collection's.
const COLLECTION_SLICE: usize = 512;

/// One collection through its ordered pipeline: slices of its items decided by the receiver (in
/// parallel), their lines made in parallel where the items are dropped (their plaintexts wiped),
/// and written in order by one thread while the next slice is decided. `Err` when the body is
/// unusable as a whole (nothing was written); otherwise how writing ended.
fn collection(
    built: &Built,
    runtime: Option<&tokio::runtime::Runtime>,
    body: &[u8],
    tally: &mut Tally,
) -> Result<std::io::Result<()>, String> {
    fetch_unknown_kids(built, runtime, body);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Lines>>(1);
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut out = std::io::stdout().lock();
            for slice in rx {
                for lines in &slice {
                    write_lines(&mut out, lines, tally)?;
                }
            }
            out.flush()
        });
        let received = built
            .receiver
            .receive_in_slices(body, COLLECTION_SLICE, |items| {
                let rendered: Vec<Lines> = items
                    .into_par_iter()
                    .chunks(ITEMS_PER_TASK)
                    .map(|slice| Lines::of(&slice, &[]))
                    .collect();
                match tx.send(rendered) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(_) => ControlFlow::Break(()), // the writer stopped: it says why
                }
            });
        drop(tx);
        let written = join_writer(writer);
        received.map(|()| written).map_err(describe)
    })
}

/// One body's lines out, counted.
fn write_lines(out: &mut impl Write, lines: &Lines, tally: &mut Tally) -> std::io::Result<()> {
    tally.rejected |= lines.rejected;
    tally.counts.merge(&lines.counts);
    out.write_all(&lines.bytes)
}

/// How the writer thread ended.
fn join_writer(
    writer: std::thread::ScopedJoinHandle<'_, std::io::Result<()>>,
) -> std::io::Result<()> {
    writer
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the writer thread panicked")))
}

/// What a refused body is told, with the option that helps when there is one.
fn describe(e: msgraph_notify::Error) -> String {
    match e {
        e @ msgraph_notify::Error::TooMany { .. } => {
            format!("{e}; --max-items raises the item limit")
        }
        e => e.to_string(),
    }
}

/// The ordered pipeline of a JSON Lines input: slices of the bodies decrypted in parallel (and
/// their lines made where they were decrypted), handed in order to one writer thread that prints
/// them and reports the unusable lines, while the next slice is decrypted. Returns how writing
/// ended; stops early when the writer cannot write.
fn pipeline(
    lines: &[(usize, &[u8])],
    decrypt: &DecryptBody<'_>,
    input: &str,
    tally: &mut Tally,
) -> std::io::Result<()> {
    type Done = Vec<(usize, Result<Lines, String>)>;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Done>(1);
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut out = std::io::stdout().lock();
            for slice in rx {
                for (line_number, done) in slice {
                    match done {
                        Ok(lines) => write_lines(&mut out, &lines, tally)?,
                        Err(e) => {
                            errln!("msgraph-notify: {input} line {line_number}: {e}");
                            tally.unusable_lines.push(line_number);
                        }
                    }
                }
            }
            out.flush()
        });
        for slice in lines.chunks(LINES_PER_SLICE) {
            let done: Done = slice
                .par_iter()
                .map(|&(line_number, line)| {
                    let fields = [("line", &serde_json::Value::from(line_number))];
                    let done = decrypt(strip_bom(line)).map(|items| Lines::of(&items, &fields));
                    (line_number, done)
                })
                .collect();
            if tx.send(done).is_err() {
                break; // the writer stopped: it says why
            }
        }
        drop(tx);
        join_writer(writer)
    })
}

/// Whether the input is JSON Lines, one body per line: its first non-blank line is a JSON
/// document by itself and more non-blank lines follow (several documents on their lines, or a
/// capture whose last line was cut short, say). A pretty-printed document starts with a line
/// (`{`) that is no JSON alone, so it stays one document and its parse error is reported as
/// such; a one-line document has no second line. Only the first line is parsed.
fn is_json_lines(body: &[u8]) -> bool {
    let mut lines = body
        .split(|&b| b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace));
    match (lines.next(), lines.next()) {
        (Some(first), Some(_)) => {
            serde_json::from_slice::<serde_json::Value>(strip_bom(first)).is_ok()
        }
        _ => false,
    }
}

/// The one line on stderr when a run is done: the items by status, the lines of a JSON Lines
/// input (and how many were unusable), the time taken.
fn summary(input: &str, tally: &Tally, elapsed: std::time::Duration) -> String {
    let lines = match tally.lines {
        0 => String::new(),
        n => format!(
            " from {n} line{}, {} unusable",
            if n == 1 { "" } else { "s" },
            tally.unusable_lines.len()
        ),
    };
    format!(
        "msgraph-notify: decrypt {input}: {}{lines}, in {:.3} s",
        tally.counts,
        elapsed.as_secs_f64()
    )
}

/// `3, 7, 9` (at most ten numbers, then `…`).
fn line_list(numbers: &[usize]) -> String {
    let mut text: Vec<String> = numbers.iter().take(10).map(ToString::to_string).collect();
    if numbers.len() > 10 {
        text.push("…".into());
    }
    format!(
        "line{} {}",
        if numbers.len() == 1 { "" } else { "s" },
        text.join(", ")
    )
}

/// One body through the receiver, fetching unknown signing keys first when they are fetched.
fn receive(
    built: &Built,
    runtime: Option<&tokio::runtime::Runtime>,
    body: &[u8],
) -> msgraph_notify::Result<Reply> {
    fetch_unknown_kids(built, runtime, body);
    built.receiver.receive(None, body)
}

/// Fetches the signing keys the body's tokens name and the key set lacks, when they are fetched.
/// Only the fetch is awaited; the receiver's work, parallel itself, runs outside the runtime (a
/// rayon thread waiting inside `block_on` could be handed another body that blocks on it).
fn fetch_unknown_kids(built: &Built, runtime: Option<&tokio::runtime::Runtime>, body: &[u8]) {
    if let (Some(fetcher), Some(runtime)) = (&built.fetcher, runtime) {
        let unknown = built.receiver.unknown_kids(body);
        if !unknown.is_empty() {
            runtime.block_on(async {
                for kid in &unknown {
                    fetcher.ensure_kid(kid).await;
                }
            });
        }
    }
}

/// A single captured item as a collection, `{"value":[item]}`; `None` for any other body (the
/// receiver's refusal of it stands).
fn as_collection(body: &[u8]) -> Option<Vec<u8>> {
    if BodyShape::of(body) != BodyShape::Item {
        return None;
    }
    let mut wrapped = Vec::with_capacity(body.len() + 12);
    wrapped.extend_from_slice(b"{\"value\":[");
    wrapped.extend_from_slice(body);
    wrapped.extend_from_slice(b"]}");
    Some(wrapped)
}
