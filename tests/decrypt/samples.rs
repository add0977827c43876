//! Every JSON file under ../shared/samples parses with the crate's types.

use std::path::Path;

use msgraph_notify::model::{ChangeNotification, ChangeNotificationCollection, ChangeType};
use msgraph_notify::resource::{CallEventType, Resource};
use serde_json::Value;

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

#[test]
fn every_sample_parses() {
    let Some(shared) = test_support::shared_dir() else {
        return;
    };
    let mut files = Vec::new();
    walk(&shared.join("samples"), &mut files);
    assert!(files.len() >= 20, "only {} samples found", files.len());
    let (mut collections, mut singles, mut resources) = (0, 0, 0);
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(path).unwrap();
        let value: Value =
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
        if value.get("value").is_some() {
            let c: ChangeNotificationCollection =
                serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!c.value.is_empty(), "{name}");
            collections += 1;
        } else if value.get("subscriptionId").is_some() {
            let n: ChangeNotification =
                serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(n.subscription_id.is_some(), "{name}");
            singles += 1;
        } else if name.contains("claims") {
            assert!(value.get("aud").is_some(), "{name}");
        } else {
            // A decrypted resource (or a historical participant shape).
            let path_hint = if name.contains("presence") {
                Some("communications/presences/x")
            } else if name.contains("chatmessage") {
                Some("chats('x')/messages('y')")
            } else if name.contains("onlinemeeting") || name.contains("legacy") {
                Some("communications/onlineMeetings(joinWebUrl='x')/meetingCallEvents")
            } else if name.contains("outlook") {
                // The path of the Outlook rich notification example.
                Some("Users('722effaf')/messages('AAMkAGUwNjQ4ZjIxLTQ3Y2Y8AAA=')")
            } else {
                None
            };
            let resource =
                Resource::from_json(&bytes, path_hint).unwrap_or_else(|e| panic!("{name}: {e}"));
            let expected = if name.contains("presence") {
                "presence"
            } else if name.contains("chatmessage") {
                "chatMessage"
            } else if name.contains("outlook") {
                // Only the `$select`ed properties, no `@odata.type`: the path types it.
                "message"
            } else if name.contains("participant-shape") {
                // One participant of an older event, not a whole event: kept as JSON or typed,
                // either is fine; it must only parse.
                resource.kind()
            } else {
                "callEvent"
            };
            assert_eq!(resource.kind(), expected, "{name}");
            // The direct typed parse and the parse through a `Value` agree, with any hint.
            for hint in [
                None,
                path_hint,
                Some("communications/presences/x"),
                Some("chats/x/messages/y"),
                Some("communications/onlineMeetings/x/meetingCallEvents"),
                Some("users/x/events"),
            ] {
                assert_eq!(
                    Resource::from_json(&bytes, hint).unwrap(),
                    Resource::from_value(value.clone(), hint),
                    "{name} with {hint:?}"
                );
            }
            resources += 1;
        }
    }
    assert!(
        collections >= 8 && singles >= 1 && resources >= 8,
        "{collections} {singles} {resources}"
    );
}

#[test]
fn doc_quirks_are_tolerated() {
    let Some(shared) = test_support::shared_dir() else {
        return;
    };
    let s = shared.join("samples");
    // Free text in changeType (Event Hubs) is kept.
    let c: ChangeNotificationCollection = serde_json::from_slice(
        &std::fs::read(s.join("collection/eventhubs-validation-message.json")).unwrap(),
    )
    .unwrap();
    assert!(
        matches!(&c.value[0].change_type, Some(ChangeType::Other(t)) if t.starts_with("Validation:"))
    );
    // The chatMessage example has no dataSignature, yet parses.
    let c: ChangeNotificationCollection = serde_json::from_slice(
        &std::fs::read(s.join("chatmessage/chatmessage-rich-notification-chat-encrypted.json"))
            .unwrap(),
    )
    .unwrap();
    let content = c.value[0].encrypted_content.as_ref().unwrap();
    assert!(content.data_signature.is_none() && content.data.is_some());
    // organizationId, which the schema lacks, is kept.
    let c: ChangeNotificationCollection = serde_json::from_slice(
        &std::fs::read(s.join("presence/presence-rich-notification-encrypted.json")).unwrap(),
    )
    .unwrap();
    assert!(c.value[0].organization_id.is_some());
}

#[test]
fn call_events_type_and_keep_participants() {
    let Some(shared) = test_support::shared_dir() else {
        return;
    };
    let bytes = std::fs::read(
        shared.join("samples/onlinemeeting/onlinemeeting-decrypted-rosterUpdated-exit.json"),
    )
    .unwrap();
    let Resource::CallEvent(event) = Resource::from_json(&bytes, None).unwrap() else {
        panic!("not a call event");
    };
    assert_eq!(event.event_type, Some(CallEventType::RosterUpdated));
    let participants = event.participants.unwrap();
    assert_eq!(participants.len(), 1);
    assert!(participants[0].has_left());
    let legacy = std::fs::read(
        shared.join("samples/onlinemeeting/historical/legacy-v2-decrypted-CallRosterUpdate.json"),
    )
    .unwrap();
    let Resource::CallEvent(event) = Resource::from_json(&legacy, None).unwrap() else {
        panic!("not a call event");
    };
    assert_eq!(
        event.event_type,
        Some(CallEventType::LegacyCallRosterUpdate)
    );
    assert_eq!(event.active_participants_joined.unwrap().len(), 1);
}

#[test]
fn unknown_properties_and_the_capitalised_key_survive() {
    let body =
        br#"{"value":[{"subscriptionId":"s","changeType":"UPDATED","lifecycleEvent":"somethingNew",
        "newProperty":{"a":1},"EncryptedContent":{"data":"AA==","dataKey":"AA==","future":true}}],
        "validationTokens":["t"],"extraTop":5}"#;
    let c: ChangeNotificationCollection = serde_json::from_slice(body).unwrap();
    let n = &c.value[0];
    assert_eq!(n.change_type, Some(ChangeType::Updated));
    assert_eq!(n.lifecycle_event.as_ref().unwrap().as_str(), "somethingNew");
    assert_eq!(n.extra["newProperty"]["a"], 1);
    let content = n.encrypted_content.as_ref().unwrap();
    assert_eq!(content.extra["future"], true);
    assert_eq!(c.extra["extraTop"], 5);
    // Round trip keeps everything.
    let again: Value = serde_json::to_value(&c).unwrap();
    assert_eq!(again["value"][0]["newProperty"]["a"], 1);
    assert_eq!(again["value"][0]["encryptedContent"]["future"], true);
}

#[test]
fn a_resource_that_does_not_fit_its_type_is_kept_as_json() {
    // `availability` as a number: not the typed model, but a verified resource is never lost.
    let json = br##"{"@odata.type":"#microsoft.graph.presence","availability":5,"id":"u"}"##;
    match Resource::from_json(json, None).unwrap() {
        Resource::Other(v) => assert_eq!(v["availability"], 5),
        other => panic!("{other:?}"),
    }
    assert!(Resource::from_json(b"{not json", None).is_err());
}

/// `Resource::from_json` parses straight into the type the resource path names; whenever that
/// shortcut does not apply, the result is still exactly what typing through a `Value` gives.
#[test]
fn direct_typing_agrees_with_value_typing() {
    let cases: &[&str] = &[
        // The path says chatMessage, the JSON says presence: the JSON wins.
        r##"{"@odata.type":"#microsoft.graph.presence","availability":"Busy","body":{"content":"x"}}"##,
        // An @odata.type we do not know: the path decides.
        r##"{"@odata.type":"#microsoft.graph.somethingNew","id":"1","body":{"content":"x"}}"##,
        // An @odata.type that is not a string is ignored, as by `from_value`.
        r#"{"@odata.type":7,"id":"1"}"#,
        // A known field twice: serde refuses it, a `Value` keeps the last.
        r#"{"id":"1","id":"2","body":{"content":"x"}}"#,
        // A field of the wrong JSON type: kept as JSON.
        r#"{"id":5,"body":{"content":"x"}}"#,
        r#"{"availability":["Busy"]}"#,
        // Not an object.
        r#"["id","1"]"#,
        r#""text""#,
        "null",
        // Unknown fields everywhere, nested.
        r#"{"id":"1","from":{"user":{"id":"u","x":{"y":[1,2]}},"z":null},"q":1.5}"#,
        "  {\"id\":\"\\u00e9\\ud83d\\ude00\"}  ",
    ];
    let paths = [
        None,
        Some("chats('x')/messages('y')"),
        Some("communications/presences/x"),
        Some("communications/onlineMeetings/x/meetingCallEvents"),
        Some("users/x/messages"),
        Some("users/x/events"),
    ];
    for json in cases {
        let value: Value = serde_json::from_str(json).unwrap();
        for path in paths {
            assert_eq!(
                Resource::from_json(json.as_bytes(), path).unwrap(),
                Resource::from_value(value.clone(), path),
                "{json} with {path:?}"
            );
        }
    }
    let chat = Some("chats('x')/messages('y')");
    let conflicting = cases[0].as_bytes();
    assert_eq!(
        Resource::from_json(conflicting, chat).unwrap().kind(),
        "presence"
    );
    assert_eq!(
        Resource::from_json(cases[3].as_bytes(), chat)
            .unwrap()
            .kind(),
        "chatMessage"
    );
    assert_eq!(
        Resource::from_json(cases[4].as_bytes(), chat)
            .unwrap()
            .kind(),
        "other"
    );
    // Bytes that are not UTF-8, or not JSON, are errors.
    assert!(Resource::from_json(b"{\"id\":\"\xff\"}", chat).is_err());
    assert!(Resource::from_json(b"{\"id\":", chat).is_err());
}
