//! Subscription bodies checked field by field against the requests Graph documents
//! (../shared/subscription-examples), and the lifecycle notifications of ../shared/samples.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use msgraph_notify::Certificate;
use msgraph_notify::model::ChangeNotificationCollection;
use msgraph_notify::resource::PathKind;
use msgraph_notify::subscription::{
    LifecycleAction, ResourceLimits, SubscriptionError, SubscriptionRequest, format_date_time,
    parse_date_time,
};
use serde_json::Value;

const URL: &str = "https://webhook.azurewebsites.net/api/resourceNotifications";
const LIFECYCLE: &str = "https://webhook.azurewebsites.net/api/lifecycleNotifications";

/// 2026-11-29T23:00:00Z.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_993_200)
}

fn cert() -> &'static Certificate {
    &test_support::keypair(2048).1
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

/// Graph's format: `YYYY-MM-DDTHH:MM:SS.fffffffZ`, as every documented request writes it.
fn assert_graph_date(text: &str) {
    let b = text.as_bytes();
    assert_eq!(b.len(), 28, "{text}");
    for (i, c) in b.iter().enumerate() {
        let want_digit = !matches!(i, 4 | 7 | 10 | 13 | 16 | 19 | 27);
        assert_eq!(c.is_ascii_digit(), want_digit, "{text} at {i}");
    }
    assert_eq!(
        (b[4], b[7], b[10], b[13], b[16], b[19], b[27]),
        (b'-', b'-', b'T', b':', b':', b'.', b'Z'),
        "{text}"
    );
}

#[test]
fn presence_body_is_what_graph_documents_and_lasts_60_minutes_at_most() {
    let request = SubscriptionRequest::new(
        "/communications/presences/4f3e8b2a-9d1c-4e5f-a6b7-c8d9e0f1a2b3",
        "https://webhook.contoso.com/api",
        cert(),
        "receiver-2026",
    )
    .unwrap()
    .lifecycle_url("https://webhook.contoso.com/api")
    .unwrap()
    .client_state("s3cret-state")
    .unwrap();
    let body = request.create_body(now()).unwrap();
    assert_eq!(body["changeType"], "updated");
    assert_eq!(body["notificationUrl"], "https://webhook.contoso.com/api");
    assert_eq!(
        body["lifecycleNotificationUrl"],
        "https://webhook.contoso.com/api"
    );
    assert_eq!(
        body["resource"],
        "/communications/presences/4f3e8b2a-9d1c-4e5f-a6b7-c8d9e0f1a2b3"
    );
    assert_eq!(body["includeResourceData"], true);
    assert_eq!(body["encryptionCertificateId"], "receiver-2026");
    assert_eq!(body["clientState"], "s3cret-state");
    // The certificate is the base64 of its DER, which loads back to the same certificate.
    let der = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(body["encryptionCertificate"].as_str().unwrap())
            .unwrap()
    };
    assert_eq!(
        Certificate::load(&der).unwrap().thumbprint(),
        cert().thumbprint()
    );
    // 60 minutes on, in Graph's format.
    let expiration = body["expirationDateTime"].as_str().unwrap();
    assert_graph_date(expiration);
    assert_eq!(expiration, "2026-11-30T00:00:00.0000000Z");
    assert_eq!(
        parse_date_time(expiration),
        Some(now() + Duration::from_secs(3600))
    );
    // The same fields as the documented request, no more, no fewer.
    if let Some(shared) = test_support::shared_dir() {
        let doc: Value = serde_json::from_slice(
            &std::fs::read(
                shared.join("subscription-examples/presence-subscription-request-single-user.json"),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(keys(&body), keys(&doc));
        assert_eq!(body["changeType"], doc["changeType"]);
        assert_graph_date(doc["expirationDateTime"].as_str().unwrap());
    }
    // One minute more is refused, with the reason.
    let err = request
        .clone()
        .lifetime(Duration::from_secs(61 * 60))
        .create_body(now())
        .unwrap_err();
    assert_eq!(
        err,
        SubscriptionError::Lifetime {
            kind: "presence",
            minutes: 61,
            max_minutes: 60
        }
    );
    assert!(err.to_string().contains("at most 60 minutes"), "{err}");
    // Presence supports `updated` only.
    let err = request.clone().change_types(&["created"]).unwrap_err();
    assert!(
        matches!(
            err,
            SubscriptionError::ChangeType {
                kind: "presence",
                ..
            }
        ),
        "{err}"
    );
    // A shorter lifetime is kept.
    let short = request
        .lifetime(Duration::from_secs(45 * 60))
        .create_body(now())
        .unwrap();
    assert_eq!(short["expirationDateTime"], "2026-11-29T23:45:00.0000000Z");
}

#[test]
fn all_chats_messages_body_is_what_graph_documents() {
    let base = SubscriptionRequest::new("/chats/getAllMessages", URL, cert(), "{customId}")
        .unwrap()
        .client_state("{secretClientState}")
        .unwrap();
    // Over one hour without a lifecycle URL: Graph refuses, so do we.
    let err = base.create_body(now()).unwrap_err();
    assert_eq!(
        err,
        SubscriptionError::LifecycleUrlRequired {
            kind: "chatMessage",
            minutes: 4320
        }
    );
    assert!(
        err.to_string().contains("lifecycleNotificationUrl"),
        "{err}"
    );
    // Within one hour, none is needed.
    let hour = base
        .clone()
        .lifetime(Duration::from_secs(3600))
        .create_body(now())
        .unwrap();
    assert_eq!(hour["expirationDateTime"], "2026-11-30T00:00:00.0000000Z");
    assert!(hour.get("lifecycleNotificationUrl").is_none());
    // With one, the full 4,320 minutes.
    let body = base
        .clone()
        .lifecycle_url(LIFECYCLE)
        .unwrap()
        .create_body(now())
        .unwrap();
    assert_eq!(body["changeType"], "created,updated,deleted");
    assert_eq!(body["resource"], "/chats/getAllMessages");
    assert_eq!(body["notificationUrl"], URL);
    assert_eq!(body["lifecycleNotificationUrl"], LIFECYCLE);
    assert_eq!(body["includeResourceData"], true);
    assert_eq!(
        body["encryptionCertificate"],
        cert().encryption_certificate()
    );
    assert_eq!(body["encryptionCertificateId"], "{customId}");
    assert_eq!(body["clientState"], "{secretClientState}");
    let expiration = body["expirationDateTime"].as_str().unwrap();
    assert_graph_date(expiration);
    assert_eq!(expiration, "2026-12-02T23:00:00.0000000Z");
    // 4,321 minutes is refused.
    let err = base
        .clone()
        .lifecycle_url(LIFECYCLE)
        .unwrap()
        .lifetime(Duration::from_secs(4321 * 60))
        .create_body(now())
        .unwrap_err();
    assert!(
        matches!(
            err,
            SubscriptionError::Lifetime {
                max_minutes: 4320,
                ..
            }
        ),
        "{err}"
    );
    if let Some(shared) = test_support::shared_dir() {
        let doc: Value = serde_json::from_slice(
            &std::fs::read(
                shared
                    .join("subscription-examples/chatmessage-subscription-request-all-chats.json"),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(keys(&hour), keys(&doc));
        for field in [
            "changeType",
            "notificationUrl",
            "resource",
            "includeResourceData",
            "encryptionCertificateId",
            "clientState",
        ] {
            assert_eq!(hour[field], doc[field], "{field}");
        }
    }
    // Change types: order and case normalised, duplicates merged, unknown ones refused.
    let types = base
        .clone()
        .change_types(&["Deleted", "created", "created"])
        .unwrap();
    assert_eq!(
        types
            .lifetime(Duration::from_secs(60))
            .create_body(now())
            .unwrap()["changeType"],
        "created,deleted"
    );
    assert!(base.clone().change_types(&["moved"]).is_err());
    assert!(base.clone().change_types::<&str>(&[]).is_err());
}

/// Every documented request with resource data is rebuilt with the same fields and values.
#[test]
fn every_documented_request_is_rebuilt_field_for_field() {
    let Some(shared) = test_support::shared_dir() else {
        return;
    };
    let mut rebuilt = 0;
    for entry in std::fs::read_dir(shared.join("subscription-examples")).unwrap() {
        let path = entry.unwrap().path();
        let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        if doc["includeResourceData"] != true || doc.get("encryptionCertificate").is_none() {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let resource = doc["resource"].as_str().unwrap();
        let mut request = SubscriptionRequest::new(
            resource,
            doc["notificationUrl"].as_str().unwrap(),
            cert(),
            doc["encryptionCertificateId"].as_str().unwrap(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .change_types(
            &doc["changeType"]
                .as_str()
                .unwrap()
                .split(',')
                .collect::<Vec<_>>(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .lifetime(Duration::from_secs(3600));
        if let Some(url) = doc["lifecycleNotificationUrl"].as_str() {
            request = request.lifecycle_url(url).unwrap();
        }
        if let Some(state) = doc["clientState"].as_str() {
            request = request.client_state(state).unwrap();
        }
        let body = request.create_body(now()).unwrap();
        assert_eq!(keys(&body), keys(&doc), "{name}");
        for (field, value) in doc.as_object().unwrap() {
            match field.as_str() {
                "encryptionCertificate" => {
                    assert_eq!(body[field], cert().encryption_certificate())
                }
                "expirationDateTime" => {
                    assert_graph_date(value.as_str().unwrap());
                    assert_graph_date(body[field].as_str().unwrap());
                }
                _ => assert_eq!(&body[field], value, "{name}: {field}"),
            }
        }
        rebuilt += 1;
    }
    assert!(rebuilt >= 8, "only {rebuilt} documented requests");
}

#[test]
fn what_graph_would_refuse_is_refused_with_a_reason() {
    let refuse = |resource: &str, url: &str, id: &str| {
        SubscriptionRequest::new(resource, url, cert(), id).unwrap_err()
    };
    assert!(matches!(
        refuse("/users/u/drive/root", URL, "c"),
        SubscriptionError::UnsupportedResource(_)
    ));
    assert!(matches!(
        refuse("/users/u/messages", URL, "c"),
        SubscriptionError::SelectRequired("message")
    ));
    assert!(matches!(
        refuse("/chats/getAllMessages", "http://x.example/n", "c"),
        SubscriptionError::Url {
            field: "notificationUrl",
            ..
        }
    ));
    assert!(matches!(
        refuse("/chats/getAllMessages", "https://", "c"),
        SubscriptionError::Url { .. }
    ));
    assert!(matches!(
        refuse("/chats/getAllMessages", URL, &"x".repeat(129)),
        SubscriptionError::Length {
            field: "encryptionCertificateId",
            len: 129,
            max: 128
        }
    ));
    assert!(matches!(
        refuse("/chats/getAllMessages", URL, ""),
        SubscriptionError::Length { .. }
    ));
    let ids = (0..651)
        .map(|i| format!("'{i}'"))
        .collect::<Vec<_>>()
        .join(",");
    assert!(matches!(
        refuse(
            &format!("/communications/presences?$filter=id in ({ids})"),
            URL,
            "c"
        ),
        SubscriptionError::TooManyPresenceIds {
            count: 651,
            max: 650
        }
    ));
    let ok = SubscriptionRequest::new("/chats/getAllMessages", URL, cert(), "c").unwrap();
    assert!(ok.clone().client_state(&"s".repeat(129)).is_err());
    assert!(ok.clone().lifecycle_url("ftp://x").is_err());
    assert!(
        ok.clone()
            .lifetime(Duration::ZERO)
            .create_body(now())
            .is_err()
    );
    // Event Hubs and Event Grid deliveries are accepted as notification URLs.
    for url in [
        "EventHub:https://vault.vault.azure.net/secrets/hub?tenantId=contoso.com",
        "EventGrid:?azuresubscriptionid=8aa&resourcegroup=rg&partnertopic=t&location=us",
    ] {
        assert!(
            SubscriptionRequest::new("/chats/getAllMessages", url, cert(), "c").is_ok(),
            "{url}"
        );
    }
    // Outlook, with $select: at most a day, no lifecycle URL needed.
    let mail = SubscriptionRequest::new(
        "/users/u/messages?$select=subject,bodyPreview,from",
        URL,
        cert(),
        "c",
    )
    .unwrap();
    assert_eq!(
        mail.create_body(now()).unwrap()["expirationDateTime"],
        "2026-11-30T23:00:00.0000000Z"
    );
    assert!(
        mail.lifetime(Duration::from_secs(1441 * 60))
            .create_body(now())
            .is_err()
    );
}

#[test]
fn every_kind_with_resource_data_has_limits() {
    for kind in [
        PathKind::Presence,
        PathKind::ChatMessage,
        PathKind::CallEvent,
        PathKind::CallRecording,
        PathKind::CallTranscript,
        PathKind::Chat,
        PathKind::Team,
        PathKind::Channel,
        PathKind::ConversationMember,
        PathKind::AiInteraction,
        PathKind::Message,
        PathKind::Event,
        PathKind::Contact,
    ] {
        let limits = ResourceLimits::for_kind(kind).unwrap();
        assert!(!limits.change_types.is_empty());
        assert!(limits.max_lifetime >= Duration::from_secs(3600));
    }
    assert!(ResourceLimits::for_kind(PathKind::Other).is_none());
    let recordings = ResourceLimits::of("communications/onlineMeetings/getAllRecordings").unwrap();
    assert_eq!(recordings.change_types, ["created"]);
}

#[test]
fn lifecycle_notifications_say_which_body_to_send_next() {
    let Some(shared) = test_support::shared_dir() else {
        return;
    };
    let request = SubscriptionRequest::new("/chats/getAllMessages", URL, cert(), "c")
        .unwrap()
        .lifecycle_url(LIFECYCLE)
        .unwrap();
    let read = |name: &str| -> ChangeNotificationCollection {
        serde_json::from_slice(&std::fs::read(shared.join("samples/lifecycle").join(name)).unwrap())
            .unwrap()
    };
    let reauth = read("lifecycle-reauthorizationRequired.json");
    match request.on_lifecycle(&reauth.value[0], now()).unwrap() {
        LifecycleAction::Renew { path, body } => {
            assert_eq!(path, "/subscriptions/e3898f08-5cd0-4a6a-80fc-6addbfb73b7b");
            assert_eq!(keys(&body), ["expirationDateTime"]);
            assert_eq!(body, request.renew_body(now()).unwrap());
            assert_eq!(body["expirationDateTime"], "2026-12-02T23:00:00.0000000Z");
        }
        other => panic!("{other:?}"),
    }
    let removed = read("lifecycle-subscriptionRemoved.json");
    assert_eq!(
        request.on_lifecycle(&removed.value[0], now()).unwrap(),
        LifecycleAction::Recreate {
            body: request.create_body(now()).unwrap()
        }
    );
    let missed = read("lifecycle-missed.json");
    assert_eq!(
        request.on_lifecycle(&missed.value[0], now()).unwrap(),
        LifecycleAction::Resync
    );
    // A renewal needs the subscription id.
    let mut anonymous = reauth.value[0].clone();
    anonymous.subscription_id = None;
    assert_eq!(
        request.on_lifecycle(&anonymous, now()),
        Err(SubscriptionError::NoSubscriptionId)
    );
    // The renew body has the documented shape.
    let doc: Value = serde_json::from_slice(
        &std::fs::read(shared.join("subscription-examples/subscription-renew-patch-body.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(keys(&request.renew_body(now()).unwrap()), keys(&doc));
}

#[test]
fn renewal_is_due_in_the_last_quarter_of_the_lifetime() {
    let presence =
        SubscriptionRequest::new("/communications/presences/u", URL, cert(), "c").unwrap();
    // The expiration Graph echoes in each notification.
    let expires = parse_date_time("2026-11-30T00:00:00.0000000+00:00").unwrap();
    assert_eq!(format_date_time(expires), "2026-11-30T00:00:00.0000000Z");
    let minutes = |m: u64| now() + Duration::from_secs(m * 60);
    assert!(!presence.should_renew(minutes(44), expires));
    assert!(presence.should_renew(minutes(45), expires));
    assert!(presence.should_renew(minutes(90), expires));
}
