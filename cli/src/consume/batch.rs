//! `consume`'s ordered pipeline: the records of one poll are decrypted in parallel (each
//! record's lines made on the thread that decrypted it) and handed back in their order, to be
//! written by the one thread that commits. No serial stage is left between a record's bytes and
//! its lines but the poll itself and the write of finished lines.

use msgraph_notify::Error;
use msgraph_notify::receiver::{Item, Outcome, Receiver};
use rayon::prelude::*;
use serde_json::Value;

use super::deferred::Deferred;
use super::unchecked;
use crate::output::Lines;

/// The most records decided together.
pub const RECORDS: usize = 64;
/// The most bytes decided together, counting for a record naming an offloaded payload the most
/// that payload may take (one record more than this when it is alone).
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
/// passing failure (the replay store, the key or the blob store did not answer), or held a
/// duplicate: then nothing of the batch is kept (the items it remembered are forgotten), and the
/// caller takes its records one at a time, each retried until it can be finished.
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
    // A duplicate within the batch is settled in record order, not by which thread came first:
    // such a batch (rare) is taken again one record at a time, as is one that met a failure.
    let settled = |d: &Result<Decided, Vec<Item>>| match d {
        Ok(d) => !d.items.iter().any(is_duplicate),
        Err(_) => false,
    };
    if decided.iter().all(settled) {
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

/// An item refused as a copy of one already seen.
fn is_duplicate(item: &Item) -> bool {
    matches!(&item.outcome, Outcome::Rejected(r) if matches!(r.error, Error::Duplicate))
}

/// What a record may take in memory while it is decided: its bytes, and for one that names an
/// offloaded payload (`additionalPayloadStorageId`), the most that payload may take.
pub fn weight(payload: Option<&[u8]>, max_payload: usize) -> usize {
    let payload = payload.unwrap_or_default();
    let offloaded = memchr::memmem::find(payload, b"additionalPayloadStorageId").is_some();
    payload.len() + if offloaded { max_payload } else { 0 }
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
