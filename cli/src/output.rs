//! The JSON lines on standard output: one object per item, as `decrypt`, `serve` and `consume`
//! print them (the item's own fields from the library's `Item::write_json`, plus where it came
//! from: a JSON Lines input's `line`, a Kafka record's `partition` and `offset`), and the line of
//! a record refused whole.
//!
//! Lines are rendered into a buffer where the items were decrypted (on the worker threads, in
//! parallel) and written whole by one writer, in order.

use std::collections::BTreeMap;
use std::io::Write;

use msgraph_notify::receiver::Item;
use serde_json::{Value, json};

/// Adds `fields` to the object `line` (anything else is left as it is).
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub fn with_fields<const N: usize>(mut line: Value, fields: [(&str, Value); N]) -> Value {
    if let Some(object) = line.as_object_mut() {
        for (name, value) in fields {
            object.insert(name.into(), value);
        }
    }
    line
}

/// The line of a body or record refused whole (`status` `refused`, the reason in `error`).
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub fn refused(reason: &str) -> Value {
    json!({"status": "refused", "error": reason})
}

/// A body's lines, rendered and ready to be written whole: one line per item, each with the
/// same `fields`, and what they were. The bytes hold decrypted resources: they are wiped when
/// the lines are dropped, as the plaintexts they were copied from are.
#[derive(Default)]
pub struct Lines {
    /// The lines, each ending in `\n`.
    pub bytes: Vec<u8>,
    /// Whether any item was rejected.
    pub rejected: bool,
    /// The items by `status`.
    pub counts: Counts,
}

impl Lines {
    /// Renders one line per item of `items`, each with `fields`.
    pub fn of(items: &[Item], fields: &[(&str, &Value)]) -> Lines {
        let mut lines = Lines {
            // About what a 1 KiB resource's line takes; grown when more is needed.
            bytes: Vec::with_capacity(items.len() * 1536),
            rejected: false,
            counts: Counts::default(),
        };
        for item in items {
            lines.rejected |= item.outcome.is_rejected();
            item.write_json(&mut lines.bytes, fields);
            lines.bytes.push(b'\n');
            lines.counts.add(item.outcome.status());
        }
        lines
    }

    /// Writes the lines whole on standard output, and flushes.
    pub fn write_to_stdout(&self) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(&self.bytes)?;
        out.flush()
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        // In bulk: a slice is wiped many times faster than a `Zeroizing` vector, byte by byte.
        zeroize::Zeroize::zeroize(self.bytes.as_mut_slice());
    }
}

/// How many items were written, by `status` (the words of the output lines).
#[derive(Debug, Default)]
pub struct Counts(BTreeMap<&'static str, u64>);

impl Counts {
    fn add(&mut self, status: &'static str) {
        *self.0.entry(status).or_default() += 1;
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Counts) {
        for (status, n) in &other.0 {
            *self.0.entry(status).or_default() += n;
        }
    }

    /// Every item counted.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

/// `3 items (2 decrypted, 1 rejected)`, or `0 items`.
impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total = self.total();
        write!(f, "{total} item{}", if total == 1 { "" } else { "s" })?;
        for (i, (status, n)) in self.0.iter().enumerate() {
            let open = if i == 0 { " (" } else { ", " };
            write!(f, "{open}{n} {status}")?;
        }
        if !self.0.is_empty() {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// Prints one JSON line per item on stdout and flushes; returns whether any item was rejected.
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub fn write_items(items: &[Item]) -> std::io::Result<bool> {
    let lines = Lines::of(items, &[]);
    lines.write_to_stdout()?;
    Ok(lines.rejected)
}
