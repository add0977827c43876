//! The JSON lines on standard output: one object per item, as `decrypt`, `serve` and `consume`
//! print them (the item's own fields from the library's `Item::to_json`, plus where it came
//! from: a JSON Lines input's `line`, a Kafka record's `partition` and `offset`), and the line of
//! a record refused whole.

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
    let mut rejected = false;
    for it in items {
        rejected |= it.outcome.is_rejected();
        writeln!(out, "{}", with_fields(item(it), fields.clone()))?;
    }
    Ok(rejected)
}

/// Prints one JSON line per item on stdout and flushes; returns whether any item was rejected.
pub fn write_items(items: &[Item]) -> std::io::Result<bool> {
    let mut out = std::io::stdout().lock();
    let rejected = write_lines(&mut out, items, [])?;
    out.flush()?;
    Ok(rejected)
}
