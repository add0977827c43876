//! A large body handed over in slices (`Receiver::receive_in_slices`): the same outcomes as
//! `receive`, in order and with the body's indices, whatever the slice size; the tokens judged
//! for the whole body; the replay store consulted in item order across slices; a stop leaves the
//! later items undecrypted and unrecorded; a body refused whole calls back nothing; the copy of a
//! forged item is rejected in any slice.

use std::ops::ControlFlow;
use std::time::Duration;

use msgraph_notify::receiver::{Item, Outcome, Receiver, Reply};
use msgraph_notify::replay::ReplayGuard;
use msgraph_notify::testing::{GraphEncryptor, NotificationSpec};
use msgraph_notify::token::TokenVersion;
use msgraph_notify::{ChangeNotification, Error};
use serde_json::{Value, json};
use test_support::issuer;

const APP: &str = "11111111-aaaa-4bbb-8ccc-000000000001";
const TENANT: &str = "22222222-aaaa-4bbb-8ccc-000000000002";
const SECRET: &str = "client-state-secret";

fn receiver(parallel: bool) -> Receiver {
    test_support::webhook(test_support::decryptor(), &[APP], SECRET)
        .replay_guard(ReplayGuard::new(1000, Duration::from_secs(3600)))
        .parallel(parallel)
        .build()
        .unwrap()
}

fn presence(n: usize) -> ChangeNotification {
    let (_, cert) = test_support::keypair(2048);
    let mut spec = NotificationSpec::new(TENANT, &format!("communications/presences/u{n}"));
    spec.client_state = Some(SECRET.into());
    let presence = json!({"@odata.type": "#microsoft.graph.presence", "id": format!("u{n}")});
    GraphEncryptor::new(cert, "cert-1")
        .notification(&presence, &spec)
        .unwrap()
}

/// 40 items of every kind: decrypted, forged (another item's signature), a wrong clientState,
/// a lifecycle event, a basic notification, an item that is no object, and one copy of an
/// earlier item (a duplicate), in a fixed order.
fn mixed() -> Vec<Value> {
    let mut values: Vec<Value> = Vec::new();
    for n in 0..40 {
        let value = match n % 8 {
            1 => {
                let mut forged = serde_json::to_value(presence(n)).unwrap();
                forged["encryptedContent"]["dataSignature"] = serde_json::to_value(presence(
                    n + 100,
                ))
                .unwrap()["encryptedContent"]["dataSignature"]
                    .clone();
                forged
            }
            3 => json!({"subscriptionId": "s", "tenantId": TENANT, "clientState": "wrong",
                        "encryptedContent": serde_json::to_value(presence(n)).unwrap()["encryptedContent"]}),
            4 => json!({"subscriptionId": "s", "tenantId": TENANT, "clientState": SECRET,
                        "lifecycleEvent": "reauthorizationRequired"}),
            5 => json!({"subscriptionId": "s", "changeType": "updated", "tenantId": TENANT,
                        "clientState": SECRET, "resource": "users/u1/messages/m1"}),
            6 => json!(n),
            7 => values[n - 5].clone(), // a copy of item n-5, three slices of 2 earlier
            _ => serde_json::to_value(presence(n)).unwrap(),
        };
        values.push(value);
    }
    values
}

fn body(values: &[Value], token: bool) -> Vec<u8> {
    let tokens: Vec<String> = if token {
        vec![issuer().token(TokenVersion::V2, APP, TENANT)]
    } else {
        Vec::new()
    };
    json!({"value": values, "validationTokens": tokens})
        .to_string()
        .into_bytes()
}

/// Each item's index and what became of it (a duplicate named as such).
fn summary(items: &[Item]) -> Vec<(usize, String)> {
    items
        .iter()
        .map(|item| {
            let what = match &item.outcome {
                Outcome::Rejected(r) if matches!(r.error, Error::Duplicate) => "duplicate".into(),
                Outcome::Rejected(r) => format!("rejected: {}", r.error),
                other => other.status().to_owned(),
            };
            (item.index, what)
        })
        .collect()
}

fn in_slices(receiver: &Receiver, body: &[u8], slice: usize) -> Vec<Vec<Item>> {
    let mut slices = Vec::new();
    receiver
        .receive_in_slices(body, slice, |items| {
            slices.push(items);
            ControlFlow::Continue(())
        })
        .expect("a well-formed body");
    slices
}

#[test]
fn slices_give_what_one_receive_gives_whatever_their_size() {
    let values = mixed();
    let post = body(&values, true);
    let whole = match receiver(true).receive(None, &post).unwrap() {
        Reply::Notifications(items) => summary(&items),
        other => panic!("{other:?}"),
    };
    assert_eq!(whole.len(), 40);
    assert_eq!(whole.iter().filter(|(_, s)| s == "decrypted").count(), 10);
    assert_eq!(whole.iter().filter(|(_, s)| s == "duplicate").count(), 5);
    for parallel in [false, true] {
        for slice in [1, 2, 3, 7, 16, 40, 1000] {
            // A fresh replay memory each time: the duplicates are the body's own copies.
            let slices = in_slices(&receiver(parallel), &post, slice);
            assert!(slices.iter().all(|s| !s.is_empty() && s.len() <= slice));
            assert_eq!(slices.len(), 40usize.div_ceil(slice), "slice {slice}");
            let flat: Vec<Item> = slices.into_iter().flatten().collect();
            assert_eq!(summary(&flat), whole, "slice {slice}, parallel {parallel}");
        }
    }
}

#[test]
fn the_body_tokens_cover_every_slice_and_their_absence_rejects_every_slice() {
    let values: Vec<Value> = (0..6)
        .map(|n| serde_json::to_value(presence(n)).unwrap())
        .collect();
    let flat = |token| -> Vec<Item> {
        in_slices(&receiver(false), &body(&values, token), 2)
            .into_iter()
            .flatten()
            .collect()
    };
    assert!(flat(true).iter().all(|i| i.outcome.status() == "decrypted"));
    let refused = flat(false);
    assert_eq!(refused.len(), 6);
    assert!(refused.iter().all(|i| i.outcome.is_rejected()));
}

#[test]
fn a_stop_leaves_the_later_items_undecrypted_and_unrecorded() {
    let values: Vec<Value> = (0..6)
        .map(|n| serde_json::to_value(presence(n)).unwrap())
        .collect();
    let post = body(&values, true);
    let receiver = receiver(true);
    let mut seen = Vec::new();
    receiver
        .receive_in_slices(&post, 2, |items| {
            seen.extend(items.iter().map(|i| i.index));
            ControlFlow::Break(())
        })
        .unwrap();
    assert_eq!(seen, [0, 1]);
    // The same body again: the first two are duplicates, the four never reached are decrypted.
    let again: Vec<Item> = in_slices(&receiver, &post, 4)
        .into_iter()
        .flatten()
        .collect();
    let statuses: Vec<String> = summary(&again).into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        statuses,
        [
            "duplicate",
            "duplicate",
            "decrypted",
            "decrypted",
            "decrypted",
            "decrypted"
        ]
    );
}

#[test]
fn a_body_refused_whole_hands_over_nothing() {
    let receiver = test_support::webhook(test_support::decryptor(), &[APP], SECRET)
        .max_items(3)
        .build()
        .unwrap();
    let values: Vec<Value> = (0..4).map(|n| json!(n)).collect();
    for (bad, expected) in [
        (body(&values, true), "TooMany"),
        (b"{\"value\": 1}".to_vec(), "Malformed"),
        (b"not json".to_vec(), "Malformed"),
        (b"{}".to_vec(), "Malformed"),
    ] {
        let mut called = false;
        let error = receiver
            .receive_in_slices(&bad, 2, |_| {
                called = true;
                ControlFlow::Continue(())
            })
            .unwrap_err();
        assert!(!called);
        assert!(format!("{error:?}").starts_with(expected), "{error:?}");
    }
    // No items at all: nothing to hand over, and no error.
    let mut called = false;
    receiver
        .receive_in_slices(&body(&[], true), 2, |_| {
            called = true;
            ControlFlow::Continue(())
        })
        .unwrap();
    assert!(!called);
}

#[test]
fn the_copy_of_a_forged_item_is_rejected_in_its_slice_or_in_a_later_one() {
    let mut forged = serde_json::to_value(presence(1)).unwrap();
    forged["encryptedContent"]["dataSignature"] =
        serde_json::to_value(presence(2)).unwrap()["encryptedContent"]["dataSignature"].clone();
    let values = vec![
        forged.clone(),
        serde_json::to_value(presence(3)).unwrap(),
        forged,
    ];
    let post = body(&values, true);
    // In one slice the copy meets the forged item still remembered: a duplicate. In a later
    // slice the forged item was forgotten when it failed: the copy fails verification itself.
    const FORGED: &str = "rejected: the encrypted content failed verification";
    for (slice, copy) in [(3, "duplicate"), (2, FORGED)] {
        let flat: Vec<Item> = in_slices(&receiver(true), &post, slice)
            .into_iter()
            .flatten()
            .collect();
        let got = summary(&flat);
        assert!(got[0].1.starts_with(FORGED), "{got:?}");
        assert_eq!(got[1].1, "decrypted");
        assert!(got[2].1.starts_with(copy), "slice {slice}: {got:?}");
    }
}
