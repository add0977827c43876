//! `demo`: the whole flow in memory, with no files and no network.

use std::process::ExitCode;

use msgraph_notify::model::ChangeType;
use msgraph_notify::receiver::{Item, Outcome, Receiver, Reply};
use msgraph_notify::resource::Resource;
use msgraph_notify::testing::{GraphEncryptor, NotificationSpec, TokenIssuer};
use msgraph_notify::token::{GRAPH_CHANGE_TRACKING_APP_ID, TokenVersion, Validation};
use msgraph_notify::{Certificate, Decryptor, PrivateKey};
use serde_json::{Value, json};

use crate::{Fail, fail};

const APP_ID: &str = "3c5ae9b2-7a0e-4f1d-9a43-5b8d2f6c1e07";
const TENANT: &str = "6a1f0c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b";
const CERT_ID: &str = "demo-cert-2026";
const CLIENT_STATE: &str = "demo-client-state-b3f1";

/// Run the whole flow in memory: no files, no network.
///
/// Makes a key, a certificate and a stand-in for Microsoft's token issuer; encrypts a presence
/// change, a meeting rosterUpdated event and a chat message as Graph would; runs them through the
/// receiver, printing what it sees at each step; then shows forged notifications being rejected
/// and why. Exit status 0 when every check behaved as it should.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example:\n  msgraph-notify demo\n  \
    cargo run --release --bin msgraph-notify -- demo   # from the repository")]
pub struct Args {}

pub fn run(_args: Args) -> Result<ExitCode, Fail> {
    outln!(
        "msgraph-notify demo: a Graph subscriber and a Graph-like sender, in memory (no files, no network).\n"
    );

    // 1. The subscriber's key and certificate.
    let key = PrivateKey::generate(2048).map_err(|e| fail!("key generation failed: {e}"))?;
    let cert = Certificate::self_signed(&key, "msgraph-notify-demo", 30)
        .map_err(|e| fail!("certificate generation failed: {e}"))?;
    let pem_cert = cert.encryption_certificate();
    outln!(
        "1. The subscriber makes a {}-bit RSA key and a self-signed certificate.",
        key.bits()
    );
    outln!("   thumbprint {}", cert.thumbprint());
    outln!("   The subscription request carries (abridged):");
    outln!(
        "   {}",
        json!({
            "changeType": "updated",
            "resource": "/communications/presences/{id}",
            "includeResourceData": true,
            "encryptionCertificate": abridge(&pem_cert),
            "encryptionCertificateId": CERT_ID,
            "clientState": CLIENT_STATE,
        })
    );

    // 2. The identity platform stand-in.
    let issuer = TokenIssuer::new().map_err(|e| fail!("token issuer: {e}"))?;
    outln!(
        "\n2. A stand-in for the Microsoft identity platform signs validation tokens (RS256, kid {}).",
        issuer.kid()
    );

    let receiver =
        Receiver::builder(Decryptor::with_key(key, Some(cert.clone())).map_err(|e| fail!("{e}"))?)
            .validation(Validation::new([APP_ID]))
            .signing_keys(issuer.signing_keys())
            .client_state(CLIENT_STATE)
            .build()
            .map_err(|e| fail!("{e}"))?;
    outln!(
        "   The receiver accepts tokens for app {APP_ID}, published by Graph change tracking ({GRAPH_CHANGE_TRACKING_APP_ID}),\n   \
         and items whose clientState is the subscription's secret."
    );

    // 3. Handshake.
    let query = "validationToken=Validation%3A%20Testing%20client%20application%20reachability%20for%20subscription%20Request-Id%3A%207b1a2c3d";
    outln!("\n3. Graph checks the notification URL: POST ?{query}");
    match receiver.receive(Some(query), b"") {
        Ok(Reply::Handshake(token)) => {
            outln!("   The receiver answers 200 text/plain with the decoded token: {token:?}")
        }
        _ => return Err(fail!("the handshake was not recognised")),
    }

    // 4 and 5. Three genuine changes, through the receiver.
    let encryptor = GraphEncryptor::new(&cert, CERT_ID);
    let token = issuer.token(TokenVersion::V2, APP_ID, TENANT);
    let genuine = genuine_post(&receiver, &encryptor, &token)?;

    // 6. Forgeries.
    let forged = forgeries(&receiver, &encryptor, &genuine.value, &token)?;

    outln!(
        "\n{} genuine items decrypted; {} of {} forged items rejected.",
        genuine.decrypted,
        forged.rejected,
        forged.cases
    );
    let ok = genuine.ok && forged.ok && forged.rejected == forged.cases;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What the genuine POST gave: its items as sent, and how they came out.
struct Genuine {
    value: Vec<Value>,
    decrypted: usize,
    ok: bool,
}

/// Steps 4 and 5: Graph encrypts three changes and POSTs them with a token; every item must
/// decrypt.
fn genuine_post(
    receiver: &Receiver,
    encryptor: &GraphEncryptor,
    token: &str,
) -> Result<Genuine, Fail> {
    let genuine = genuine_items();
    let mut value = Vec::new();
    for (resource, path, change) in &genuine {
        let mut spec = NotificationSpec::new(TENANT, path);
        spec.change_type = change.clone();
        spec.client_state = Some(CLIENT_STATE.into());
        let item = encryptor
            .notification(resource, &spec)
            .map_err(|e| fail!("{e}"))?;
        value.push(serde_json::to_value(item).map_err(|e| fail!("{e}"))?);
    }
    let body = json!({ "value": value, "validationTokens": [token] });
    let body_bytes = body.to_string().into_bytes();
    outln!(
        "\n4. Graph encrypts three changes for the certificate and POSTs them ({} bytes):",
        body_bytes.len()
    );
    outln!(
        "   a presence change, a meeting rosterUpdated event, a new chat message. Each item has a fresh AES-256 key"
    );
    outln!(
        "   wrapped with RSA-OAEP-SHA1, AES-CBC ciphertext and an HMAC-SHA256 signature. The first item (abridged):"
    );
    outln!("   {}", abridge_json(&body["value"][0]));
    outln!("   validationTokens: one JWT (ver 2.0, aud {APP_ID}, tid {TENANT}).");

    // 5. Through the receiver.
    outln!(
        "\n5. The receiver answers 202 at once, then checks the token, the clientState and each signature, and only then decrypts:"
    );
    let items = notifications(receiver, &body_bytes)?;
    let mut ok = items.len() == genuine.len();
    for item in &items {
        ok &= matches!(item.outcome, Outcome::Decrypted(_));
        outln!("   [{}] {}", item.index, describe(item));
    }
    outln!("   As JSON lines (what `decrypt` and `serve` print):");
    for item in &items {
        outln!("   {}", item.to_json());
    }

    let decrypted = items
        .iter()
        .filter(|i| matches!(i.outcome, Outcome::Decrypted(_)))
        .count();
    Ok(Genuine {
        value,
        decrypted,
        ok,
    })
}

/// How the forgeries fared.
struct Forged {
    rejected: usize,
    cases: usize,
    ok: bool,
}

/// Step 6: what a forger holding the public certificate can send, and what stops each.
fn forgeries(
    receiver: &Receiver,
    encryptor: &GraphEncryptor,
    value: &[Value],
    token: &str,
) -> Result<Forged, Fail> {
    outln!(
        "\n6. A forger holds the certificate (it is public: it went into the subscription request), so it can"
    );
    outln!("   encrypt an item whose signature verifies. What stops it:");
    let fake = json!({
        "id": "1700000009999", "messageType": "message", "chatId": "19:demo-chat@thread.v2",
        "from": {"user": {"displayName": "IT Support"}},
        "body": {"contentType": "text", "content": "Your password expires today: sign in at https://evil.example"},
    });
    let mut spec = NotificationSpec::new(
        TENANT,
        "chats('19:demo-chat@thread.v2')/messages('1700000009999')",
    );
    spec.change_type = ChangeType::Created;
    spec.client_state = Some(CLIENT_STATE.into());
    let forged = serde_json::to_value(
        encryptor
            .notification(&fake, &spec)
            .map_err(|e| fail!("{e}"))?,
    )
    .map_err(|e| fail!("{e}"))?;
    let forger = TokenIssuer::new().map_err(|e| fail!("token issuer: {e}"))?;
    let mut wrong_state = forged.clone();
    wrong_state["clientState"] = json!("guessed-secret");
    let mut tampered = value[2].clone();
    if let Some(data) = tampered["encryptedContent"]["data"].as_str() {
        // Flip one base64 character of the ciphertext (keeping it valid base64).
        let mut chars: Vec<char> = data.chars().collect();
        if let Some(c) = chars.get_mut(8) {
            *c = if *c == 'A' { 'B' } else { 'A' };
        }
        tampered["encryptedContent"]["data"] = json!(chars.into_iter().collect::<String>());
    }
    let cases = [
        ("a) no validation token", json!({"value": [forged.clone()]})),
        (
            "b) a token the forger signed with its own key",
            json!({"value": [forged.clone()], "validationTokens": [forger.token(TokenVersion::V2, APP_ID, TENANT)]}),
        ),
        (
            "c) a genuine token replayed, with a guessed clientState",
            json!({"value": [wrong_state], "validationTokens": [token]}),
        ),
        (
            "d) a genuine item with one byte of ciphertext changed",
            json!({"value": [tampered], "validationTokens": [token]}),
        ),
    ];
    let mut rejected = 0;
    let mut ok = true;
    for (what, body) in &cases {
        let items = notifications(receiver, body.to_string().as_bytes())?;
        for item in &items {
            if let Outcome::Rejected(r) = &item.outcome {
                rejected += 1;
                outln!("   {what}: rejected: {}", r.error);
            } else {
                ok = false;
                outln!("   {what}: NOT rejected ({})", item.outcome.status());
            }
        }
    }

    Ok(Forged {
        rejected,
        cases: cases.len(),
        ok,
    })
}

fn notifications(receiver: &Receiver, body: &[u8]) -> Result<Vec<Item>, Fail> {
    match receiver.receive(None, body) {
        Ok(Reply::Notifications(items)) => Ok(items),
        Ok(_) => Err(fail!("unexpected handshake reply")),
        Err(e) => Err(fail!("the body was refused: {e}")),
    }
}

/// The three genuine changes: resource JSON, resource path, change type.
fn genuine_items() -> Vec<(Value, String, ChangeType)> {
    let user = "8b081ef6-4792-4def-b2c9-c363a1bf41d5";
    let chat = "19:8b081ef6-4792-4def-b2c9-c363a1bf41d5_5031bb31@unq.gbl.spaces";
    let join = "https%3A%2F%2Fteams.microsoft.com%2Fl%2Fmeetup-join%2F19%253ameeting_demo%2540thread.v2%2F0";
    vec![
        (
            json!({"@odata.type": "#Microsoft.Graph.presence", "id": user,
                   "availability": "Busy", "activity": "InACall"}),
            format!("communications/presences/{user}"),
            ChangeType::Updated,
        ),
        (
            json!({"@odata.type": "#microsoft.graph.callEvent", "id": "a7e1f2c3-0d4b-4a5e-9f60-7b8c9d0e1f2a",
                   "eventDateTime": "2026-03-02T09:01:12.3456789Z", "eventType": "rosterUpdated",
                   "participants@delta": [
                       {"id": "p1", "info": {"identity": {"user": {"displayName": "Adele Vance"}}}},
                       {"id": "p2", "info": {"identity": {"user": {"displayName": "Alex Wilber"}}},
                        "removedState": {"reason": "left"}}]}),
            format!("communications/onlineMeetings(joinWebUrl='{join}')/meetingCallEvents"),
            ChangeType::Updated,
        ),
        (
            json!({"id": "1709370072405", "etag": "1709370072405", "messageType": "message",
                   "createdDateTime": "2026-03-02T09:01:12.405Z", "chatId": chat, "importance": "normal",
                   "from": {"user": {"id": user, "displayName": "Adele Vance", "userIdentityType": "aadUser"}},
                   "body": {"contentType": "html", "content": "<p>Lunch at noon?</p>"}}),
            format!("chats('{chat}')/messages('1709370072405')"),
            ChangeType::Created,
        ),
    ]
}

/// One line about an item, as an application would use it.
fn describe(item: &Item) -> String {
    match &item.outcome {
        Outcome::Decrypted(d) => match &d.resource {
            Resource::Presence(p) => format!(
                "decrypted presence of {}: availability {}, activity {}",
                p.id.as_deref().unwrap_or("?"),
                p.availability.as_ref().map_or("?", |a| a.as_str()),
                p.activity.as_ref().map_or("?", |a| a.as_str()),
            ),
            Resource::CallEvent(e) => {
                let participants = e.participants.as_deref().unwrap_or_default();
                let left = participants
                    .iter()
                    .filter(|p| p.removed_state.is_some())
                    .count();
                format!(
                    "decrypted meeting call event: {} at {}, {} participants changed ({} left)",
                    e.event_type.as_ref().map_or("?", |t| t.as_str()),
                    e.event_date_time.as_deref().unwrap_or("?"),
                    participants.len(),
                    left,
                )
            }
            Resource::ChatMessage(m) => format!(
                "decrypted chat message {} from {}: {}",
                m.id.as_deref().unwrap_or("?"),
                m.from
                    .as_ref()
                    .and_then(|f| f.user.as_ref())
                    .and_then(|u| u.display_name.as_deref())
                    .unwrap_or("?"),
                m.body
                    .as_ref()
                    .and_then(|b| b.content.as_deref())
                    .unwrap_or(""),
            ),
            other => format!("decrypted {}", other.kind()),
        },
        other => other.status().to_string(),
    }
}

/// `abc…(1234 chars)` for long strings.
fn abridge(s: &str) -> String {
    if s.chars().count() <= 48 {
        return s.to_owned();
    }
    let head: String = s.chars().take(24).collect();
    format!("{head}…({} chars)", s.chars().count())
}

/// The JSON with every long string abridged.
fn abridge_json(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(abridge(s)),
        Value::Array(a) => Value::Array(a.iter().map(abridge_json).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), abridge_json(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}
