//! Bodies that are not what the receiver expects, as people give them: a JWKS, a bare item, a bare
//! encryptedContent, `[]`, JSON Lines, a byte-order mark. Each error says what was expected and
//! what was found, and never names one of the crate's types.

use msgraph_notify::model::BodyShape;
use msgraph_notify::receiver::{Receiver, dangerous};
use msgraph_notify::testing::{GraphEncryptor, NotificationSpec, TokenIssuer};
use msgraph_notify::{Decryptor, Error};
use serde_json::json;

fn receiver() -> Receiver {
    let (key, cert) = test_support::keypair(2048);
    let decryptor = Decryptor::with_key(test_support::copy_key(key), Some(cert.clone())).unwrap();
    dangerous::skip_token_validation(Receiver::builder(decryptor))
        .build()
        .unwrap()
}

fn item() -> serde_json::Value {
    let (_, cert) = test_support::keypair(2048);
    let spec = NotificationSpec::new("tenant-1", "communications/presences/u1");
    let n = GraphEncryptor::new(cert, "cert-1")
        .notification(&json!({"@odata.type": "#microsoft.graph.presence"}), &spec)
        .unwrap();
    serde_json::to_value(n).unwrap()
}

/// The error `receive` gives for `body`, checked for the house rule: no type names.
fn refusal(body: &[u8]) -> String {
    let err = match receiver().receive(None, body) {
        Err(e @ Error::Malformed { .. }) => e.to_string(),
        other => panic!("expected a malformed-body error, got {other:?}"),
    };
    for internal in [
        "RawCollection",
        "struct",
        "ChangeNotification",
        "Value",
        "elements",
    ] {
        assert!(!err.contains(internal), "{internal:?} in {err:?}");
    }
    assert!(err.contains("expected a notification collection"), "{err}");
    err
}

#[test]
fn each_wrong_shape_is_named() {
    let collection = json!({"value": [item()]});
    let jwks = TokenIssuer::new().unwrap().jwks_json();
    let bare_item = item().to_string();
    let content = item()["encryptedContent"].to_string();
    let lines = format!("{collection}\n{collection}\n");
    for (body, found) in [
        (jwks.as_str(), "found a JWKS"),
        (bare_item.as_str(), "found a single notification item"),
        (content.as_str(), "found a bare encryptedContent object"),
        ("[]", "found an empty JSON array"),
        (
            lines.as_str(),
            "found 2 JSON documents, one per line (JSON Lines)",
        ),
        ("{}", "found an empty JSON object"),
        (
            "{\"values\": []}",
            "found a JSON object without \"value\" (its keys: values)",
        ),
        ("\"text\"", "found a JSON string"),
        ("", "found an empty body"),
        (
            "{\"value\": [",
            "found text that is not JSON (EOF while parsing",
        ),
    ] {
        let err = refusal(body.as_bytes());
        assert!(err.contains(found), "{body:?}: {err}");
    }
    // A collection with a byte-order mark: told to remove it.
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(collection.to_string().as_bytes());
    let err = refusal(&bom);
    assert!(err.contains("byte-order mark"), "{err}");
}

#[test]
fn the_shapes_a_tool_chooses_by() {
    let collection = json!({"value": []}).to_string();
    assert_eq!(BodyShape::of(collection.as_bytes()), BodyShape::Collection);
    assert_eq!(
        BodyShape::of(item().to_string().as_bytes()),
        BodyShape::Item
    );
    // The docs' chatMessage example shape: an item whose lifecycle/changes are in the usual keys.
    let doc_item = json!({"subscriptionId": "s", "changeType": "created", "resource": "chats('19:x')/messages('1')",
        "encryptedContent": {"data": "x", "dataKey": "y", "dataSignature": "z"}});
    assert_eq!(
        BodyShape::of(doc_item.to_string().as_bytes()),
        BodyShape::Item
    );
    assert_eq!(
        BodyShape::of(format!("{collection}\r\n\r\n{collection}\r\n{collection}").as_bytes()),
        BodyShape::JsonLines { documents: 3 }
    );
    assert!(matches!(BodyShape::of(b"{} x"), BodyShape::NotJson(_)));
    assert!(BodyShape::has_bom(b"\xEF\xBB\xBF{}"));
}
