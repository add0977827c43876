//! The JSON lines on standard output: one object per item, as `decrypt`, `serve` and `consume`
//! print them (the item's own fields from the library's `Item::to_json`, plus where it came
//! from: a JSON Lines input's `line`, a Kafka record's `partition` and `offset`), and the line of
//! a record refused whole.

use std::collections::BTreeMap;
use std::io::Write;

use msgraph_notify::receiver::Item;
use serde_json::{Value, json};

/// Adds `fields` to the object `line` (anything else is left as it is).
pub fn with_fields<const N: usize>(mut line: Value, fields: [(&str, Value); N]) -> Value {
    if let Some(object) = line.as_object_mut() {
        for (name, value) in fields {
            object.insert(name.into(), value);
        }
    }
    line
}

/// The line of an item.
pub fn item(item: &Item) -> Value {
    item.to_json()
}

/// The line of a body or record refused whole (`status` `refused`, the reason in `error`).
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub fn refused(reason: &str) -> Value {
    json!({"status": "refused", "error": reason})
}

/// Writes one line per item to `out`, each with `fields`; returns whether any item was
/// rejected.
pub fn write_lines<const N: usize>(
    out: &mut impl Write,
    items: &[Item],
    fields: [(&str, Value); N],
) -> std::io::Result<bool> {
    write_counted(out, items, fields, &mut Counts::default())
}

/// [`write_lines`], counting the items written by `status` into `counts`.
pub fn write_counted<const N: usize>(
    out: &mut impl Write,
    items: &[Item],
    fields: [(&str, Value); N],
    counts: &mut Counts,
) -> std::io::Result<bool> {
    let mut rejected = false;
    for it in items {
        rejected |= it.outcome.is_rejected();
        let line = with_fields(item(it), fields.clone());
        writeln!(out, "{line}")?;
        counts.add(
            line.get("status")
                .and_then(Value::as_str)
                .unwrap_or("other"),
        );
    }
    Ok(rejected)
}

/// How many items were written, by `status` (the words of the output lines).
#[derive(Debug, Default)]
pub struct Counts(BTreeMap<String, u64>);

impl Counts {
    fn add(&mut self, status: &str) {
        *self.0.entry(status.to_owned()).or_default() += 1;
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
pub fn write_items(items: &[Item]) -> std::io::Result<bool> {
    let mut out = std::io::stdout().lock();
    let rejected = write_lines(&mut out, items, [])?;
    out.flush()?;
    Ok(rejected)
}
