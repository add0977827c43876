//! The pieces of an item's JSON line, written straight into a buffer: no `serde_json::Value`
//! tree, and the decrypted resource copied as the verified bytes it is (already parsed as JSON
//! when it was typed), not parsed and printed again.

use serde::Serialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use crate::model::ChangeNotification;

/// `,"name":` and `value` as JSON, for each of `fields`.
pub(super) fn fields(out: &mut Vec<u8>, fields: &[(&str, &Value)]) {
    for (name, value) in fields {
        key(out, name);
        // A `Value` always serializes (its map keys are strings).
        let _ = serde_json::to_writer(&mut *out, value);
    }
}

/// The notification's `subscriptionId`, `tenantId`, `changeType` and `resource`, when present.
pub(super) fn meta(out: &mut Vec<u8>, n: &ChangeNotification) {
    for (name, value) in [
        ("subscriptionId", n.subscription_id.as_deref()),
        ("tenantId", n.tenant_id.as_deref()),
        ("changeType", n.change_type.as_ref().map(|c| c.as_str())),
        ("resource", n.resource.as_deref()),
    ] {
        if let Some(value) = value {
            field(out, name, value);
        }
    }
}

pub(super) fn key(out: &mut Vec<u8>, name: &str) {
    out.push(b',');
    string(out, name);
    out.push(b':');
}

pub(super) fn field(out: &mut Vec<u8>, name: &str, value: &str) {
    key(out, name);
    string(out, value);
}

/// A JSON string, escaped by serde_json.
fn string(out: &mut Vec<u8>, text: &str) {
    let mut serializer = serde_json::Serializer::new(&mut *out);
    // Writing a `str` into a `Vec` cannot fail.
    let _ = text.serialize(&mut serializer);
}

/// A decrypted resource on one line: its bytes when they are JSON (parsed whole when the
/// resource was typed, else checked here), `null` otherwise (a plaintext from
/// `Decryptor::decrypt`, checked to be UTF-8 only, put into an item by hand).
pub(super) fn one_line(out: &mut Vec<u8>, plaintext: &crate::decrypt::Plaintext) {
    let json = plaintext.as_bytes();
    if plaintext.parsed_as_json() || serde_json::from_slice::<IgnoredAny>(json).is_ok() {
        json_one_line(out, json);
    } else {
        out.extend_from_slice(b"null");
    }
}

/// JSON bytes on one line. JSON strings cannot hold a raw line break, so a text without `\n`
/// and `\r` is one line as it is and is copied whole (the common case: Graph sends compact
/// JSON); otherwise the whitespace between tokens is left out.
fn json_one_line(out: &mut Vec<u8>, json: &[u8]) {
    if memchr::memchr2(b'\n', b'\r', json).is_none() {
        out.extend_from_slice(json);
        return;
    }
    out.reserve(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            continue;
        } else if b == b'"' {
            in_string = true;
        }
        out.push(b);
    }
}

#[cfg(test)]
mod tests {
    use super::json_one_line as one_line;

    #[test]
    fn pretty_json_becomes_one_line_and_strings_keep_their_spaces() {
        let pretty = b"{\r\n  \"a\" : \"x y \\\" \\\\\",\n\t\"b\": [1, 2]\n}";
        let mut out = Vec::new();
        one_line(&mut out, pretty);
        assert_eq!(out, br#"{"a":"x y \" \\","b":[1,2]}"#);
        let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            parsed,
            serde_json::from_slice::<serde_json::Value>(pretty).unwrap()
        );
    }

    #[test]
    fn compact_json_is_copied_byte_for_byte() {
        let compact = br#"{"b":1, "a":"text with  spaces"}"#;
        let mut out = Vec::new();
        one_line(&mut out, compact);
        assert_eq!(out, compact);
    }
}
