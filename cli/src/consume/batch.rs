//! `consume`'s ordered pipeline: the records of one poll are decrypted in parallel (each
//! record's lines made on the thread that decrypted it) and handed back in their order, to be
//! written by the one thread that commits. No serial stage is left between a record's bytes and
//! its lines but the poll itself and the write of finished lines.

use msgraph_notify::Error;
use msgraph_notify::receiver::{Item, Receiver};
use rayon::prelude::*;
use serde_json::Value;

use super::deferred::Deferred;
use super::unchecked;
use crate::output::Lines;

/// The most records decided together.
pub const RECORDS: usize = 64;
/// The most payload bytes decided together (one record more than this when it is alone).
pub const BYTES: usize = 8 << 20;

/// One record as polled.
pub struct Record<'a> {
    pub partition: i32,
    pub offset: i64,
    pub payload: Option<&'a [u8]>,
}

/// What became of one record: its lines, or the reason it was refused whole (its one line is
/// in `lines` too).
pub struct Decided {
    pub lines: Lines,
    /// The record's items (none when refused whole), for the metrics.
    pub items: Vec<Item>,
    pub refused: Option<String>,
}

/// Each record through the receiver, in parallel, in order. `None` when any record met a
/// passing failure (the replay store, the key or the blob store did not answer): then nothing
/// of the batch is kept (the items it remembered are forgotten), and the caller takes its
/// records one at a time, each retried until it can be finished.
pub fn decide(
    receiver: &Receiver,
    deferred: Option<&Deferred>,
    records: &[Record<'_>],
    max_body: usize,
) -> Option<Vec<Decided>> {
    let before = deferred.map_or(0, |d| d.pending().len());
    let decided: Vec<Result<Decided, Vec<Item>>> = records
        .par_iter()
        .map(|record| decide_one(receiver, record, max_body))
        .collect();
    if decided.iter().all(Result::is_ok) {
        return Some(decided.into_iter().flatten().collect());
    }
    if let Some(d) = deferred {
        d.pending().truncate(before);
    }
    None
}

/// One record; `Err` with its items when one met a passing failure.
pub fn decide_one(
    receiver: &Receiver,
    record: &Record<'_>,
    max_body: usize,
) -> Result<Decided, Vec<Item>> {
    let fields = position(record);
    let fields = [("partition", &fields[0]), ("offset", &fields[1])];
    let Some(payload) = record.payload else {
        return Ok(refused(record, "the record has no value".to_owned()));
    };
    if payload.len() > max_body {
        return Ok(refused(
            record,
            format!(
                "the record is {} bytes, over --max-body {max_body}",
                payload.len()
            ),
        ));
    }
    match receiver.receive_trusted_transport(payload) {
        Ok(items) if items.iter().any(unchecked) => Err(items),
        Ok(items) => Ok(Decided {
            lines: Lines::of(&items, &fields),
            items,
            refused: None,
        }),
        Err(e @ Error::TooMany { .. }) => Ok(refused(
            record,
            format!("{e} (--max-items raises the item limit)"),
        )),
        Err(e) => Ok(refused(record, e.to_string())),
    }
}

/// A record's `partition` and `offset`, as its lines carry them.
pub fn position(record: &Record<'_>) -> [Value; 2] {
    [record.partition.into(), record.offset.into()]
}

/// The one line of a record refused whole.
pub fn refused(record: &Record<'_>, reason: String) -> Decided {
    let [partition, offset] = position(record);
    let line = crate::output::with_fields(
        crate::output::refused(&reason),
        [("partition", partition), ("offset", offset)],
    );
    let mut lines = Lines::default();
    lines.bytes = format!("{line}\n").into_bytes();
    Decided {
        lines,
        items: Vec::new(),
        refused: Some(reason),
    }
}
