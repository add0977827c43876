//! Items carrying `additionalPayloadStorageId` are taken out of a POST before it is forwarded:
//! Graph offloads a payload to blob storage only for Event Hubs deliveries, never through a
//! webhook, so such an item on the webhook is not Graph's to hand on. Each is reported on stdout
//! as `rejected` with its position in the POST and the reason; the rest of the body is forwarded.

use std::io::Write;

use serde::de::IgnoredAny;
use serde_json::{Value, json};

/// The item property naming an offloaded payload's blob.
const ADDITIONAL_PAYLOAD: &str = "additionalPayloadStorageId";

/// The items taken out of a body because they carry `additionalPayloadStorageId`.
#[derive(Default)]
pub struct Offloaded {
    /// The original index of each item removed, in order, with its line.
    removed: Vec<(usize, Value)>,
}

impl Offloaded {
    /// The index in the original body of the item at `index` of the body without them.
    pub fn original_index(&self, index: usize) -> usize {
        let mut original = index;
        for &(at, _) in &self.removed {
            if at <= original {
                original += 1;
            }
        }
        original
    }

    /// One line on stdout for each item removed, and one warning.
    pub fn report(&self) {
        if self.removed.is_empty() {
            return;
        }
        let mut out = std::io::stdout().lock();
        let written = self
            .removed
            .iter()
            .try_for_each(|(_, line)| writeln!(out, "{line}"))
            .and_then(|()| out.flush());
        if let Err(e) = written {
            crate::log::warn(&format!("cannot write to stdout: {e}"));
        }
        crate::log::warn(&format!(
            "--forward: {} item(s) with {ADDITIONAL_PAYLOAD} not forwarded: Graph offloads \
             payloads only for Event Hubs deliveries, never through a webhook",
            self.removed.len()
        ));
    }
}

/// The collection of `body` without its items that carry `additionalPayloadStorageId` (the
/// body itself when there is none), and those items. A body that is not a collection is left
/// as it is, for `Receiver::screen` to refuse with its own reason.
pub fn without_offloaded(body: Vec<u8>) -> (Vec<u8>, Offloaded) {
    /// One item, its other properties skipped unread.
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "additionalPayloadStorageId")]
        storage_id: Option<IgnoredAny>,
    }
    #[derive(serde::Deserialize)]
    struct Collection {
        #[serde(default)]
        value: Vec<Probe>,
    }
    let Ok(collection) = serde_json::from_slice::<Collection>(&body) else {
        return (body, Offloaded::default());
    };
    if !collection.value.iter().any(|i| i.storage_id.is_some()) {
        return (body, Offloaded::default());
    }
    let Ok(mut whole) = serde_json::from_slice::<serde_json::Map<String, Value>>(&body) else {
        return (body, Offloaded::default());
    };
    let Some(Value::Array(items)) = whole.get_mut("value") else {
        return (body, Offloaded::default());
    };
    let mut offloaded = Offloaded::default();
    let mut kept = Vec::with_capacity(items.len());
    for (index, item) in std::mem::take(items).into_iter().enumerate() {
        match item.get(ADDITIONAL_PAYLOAD) {
            Some(id) if !id.is_null() => {
                let mut line = json!({
                    "index": index,
                    "status": "rejected",
                    ADDITIONAL_PAYLOAD: id,
                    "error": "not forwarded: the item's payload is offloaded to blob storage \
                              (additionalPayloadStorageId), which Graph does only for Event Hubs \
                              deliveries, never through a webhook",
                });
                for key in ["subscriptionId", "tenantId", "changeType", "resource"] {
                    if let Some(v) = item.get(key).filter(|v| v.is_string()) {
                        line[key] = v.clone();
                    }
                }
                offloaded.removed.push((index, line));
            }
            _ => kept.push(item),
        }
    }
    *items = kept;
    // A map of JSON values always serializes; an empty body would be refused by the screening.
    let body = serde_json::to_vec(&whole).unwrap_or_default();
    (body, offloaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offloaded_items_are_taken_out_and_indices_map_back() {
        let body = json!({"value": [
            {"subscriptionId": "s", "changeType": "created", "additionalPayloadStorageId": "blob-1"},
            {"subscriptionId": "s", "changeType": "updated"},
            {"subscriptionId": "s", "additionalPayloadStorageId": "blob-2"},
            {"subscriptionId": "s", "changeType": "deleted", "additionalPayloadStorageId": null},
        ], "validationTokens": ["t"]});
        let (kept, offloaded) = without_offloaded(body.to_string().into_bytes());
        let kept: Value = serde_json::from_slice(&kept).unwrap();
        assert_eq!(kept["validationTokens"], json!(["t"]));
        let types: Vec<&str> = kept["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["changeType"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["updated", "deleted"]);
        let removed: Vec<usize> = offloaded.removed.iter().map(|(i, _)| *i).collect();
        assert_eq!(removed, [0, 2]);
        assert_eq!(offloaded.removed[0].1[ADDITIONAL_PAYLOAD], "blob-1");
        assert_eq!(offloaded.removed[0].1["status"], "rejected");
        assert_eq!(offloaded.removed[0].1["changeType"], "created");
        // Index 0 of the kept body was 1 of the original; index 1 was 3.
        assert_eq!(offloaded.original_index(0), 1);
        assert_eq!(offloaded.original_index(1), 3);

        // A body without any is passed on byte for byte.
        let plain = br#"{"value":[{"a":1}]}"#.to_vec();
        let (same, none) = without_offloaded(plain.clone());
        assert_eq!(same, plain);
        assert!(none.removed.is_empty());
        // Not a collection: left for the screening to refuse.
        let (same, _) = without_offloaded(b"[1,2]".to_vec());
        assert_eq!(same, b"[1,2]");
    }
}
