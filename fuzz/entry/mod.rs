//! The fuzz entry points, shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`, nightly)
//! and the stable regression test (`tests/decrypt/fuzz_regression.rs`), which replays every seed and
//! every saved crash input through the same functions.
//!
//! Each function takes the fuzzer's bytes, must never panic on its own, and ignores the
//! library's `Result`s; the few `assert!`s are oracles on properties the library promises.
//!
//! Keys are generated once per process. So that committed seeds still decrypt and validate under
//! a fresh key, inputs may carry placeholders, replaced before use (see [`expand`]):
//! `@@DATAKEY@@` (the fixed symmetric key [`KEY`] wrapped for this process's certificate),
//! `@@THUMBPRINT@@`, `@@TOKEN@@` / `@@TOKEN1@@` (a valid v2.0 / v1.0 validation token for
//! [`APP`] in [`TENANT`]). `data` and `dataSignature` under [`KEY`] need no placeholder.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use msgraph_notify::model::{ChangeNotification, ChangeNotificationCollection, EncryptedContent};
use msgraph_notify::offload::{MemoryPayloadStore, PayloadStore};
use msgraph_notify::receiver::Receiver;
use msgraph_notify::testing::{GraphEncryptor, NotificationSpec, TokenIssuer};
use msgraph_notify::token::{Jwks, TokenValidator, TokenVersion, Validation};
use msgraph_notify::{Certificate, Decryptor, PrivateKey, Resource};

/// The symmetric key of every fixture: fixed, so the fuzzer's data can be re-signed.
pub const KEY: [u8; 32] = *b"fuzz-fixed-aes-256-key-32-bytes!";
/// The receiving app of the fixtures' tokens.
pub const APP: &str = "fuzz-app";
/// The tenant of the fixtures.
pub const TENANT: &str = "fuzz-tenant";
/// The receiver's clientState.
pub const CLIENT_STATE: &str = "fuzz-secret";
/// The certificate id of the fixtures.
pub const CERT_ID: &str = "fuzz-cert";
/// The resource path of the fixtures.
pub const RESOURCE: &str = "communications/presences/fuzz-user";

/// A fuzz entry point.
pub type Entry = fn(&[u8]);

/// Every target: its name (the folder under `fuzz/seeds` and `fuzz/regressions`) and entry.
pub const TARGETS: &[(&str, Entry)] = &[
    ("collection_json", collection_json),
    ("resource_json", resource_json),
    ("encrypted_content", encrypted_content),
    ("token", token),
    ("key_load", key_load),
    ("receiver", receiver),
    ("offloaded_payload", offloaded_payload),
];

/// The blob name the offloaded record names.
pub const BLOB: &str = "fuzz-blob";
/// The subscription of the offloaded record.
pub const OFFLOADED_SUBSCRIPTION: &str = "fuzz-subscription";

/// What every target shares, made once per process.
pub struct Fixture {
    pub key: PrivateKey,
    pub cert: Certificate,
    pub decryptor: Decryptor,
    pub issuer: TokenIssuer,
    pub validator: TokenValidator,
    pub receiver: Receiver,
    /// `@@DATAKEY@@`: [`KEY`] wrapped for `cert`, base64.
    pub data_key: String,
    pub token_v2: String,
    pub token_v1: String,
    /// A valid presence notification under [`KEY`].
    pub notification: ChangeNotification,
    /// A trusted-transport receiver reading offloaded payloads from [`Fixture::blob`].
    pub offload_receiver: Receiver,
    /// The store `offload_receiver` reads: the fuzzer's input is stored under [`BLOB`].
    pub blob: Arc<MemoryPayloadStore>,
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = PrivateKey::generate(2048).expect("key");
        let cert = Certificate::self_signed(&key, "fuzz", 30).expect("certificate");
        let decryptor = Decryptor::with_key(
            PrivateKey::from_der(&key.to_pkcs8_der()).expect("key"),
            Some(cert.clone()),
        )
        .expect("decryptor");
        let issuer = TokenIssuer::new().expect("issuer");
        let validator = TokenValidator::new(Validation::new([APP]), issuer.signing_keys());
        let receiver = Receiver::builder(
            Decryptor::with_key(
                PrivateKey::from_der(&key.to_pkcs8_der()).expect("key"),
                Some(cert.clone()),
            )
            .expect("decryptor"),
        )
        .validation(Validation::new([APP]))
        .signing_keys(issuer.signing_keys())
        .client_state(CLIENT_STATE)
        .max_body_bytes(256 * 1024)
        .build()
        .expect("receiver");
        let blob = Arc::new(MemoryPayloadStore::new());
        let offload_receiver = Receiver::builder(
            Decryptor::with_key(
                PrivateKey::from_der(&key.to_pkcs8_der()).expect("key"),
                Some(cert.clone()),
            )
            .expect("decryptor"),
        )
        .trusted_transport_only()
        .client_state(CLIENT_STATE)
        .max_payload_bytes(256 * 1024)
        .payload_store(Arc::clone(&blob) as Arc<dyn PayloadStore>)
        .build()
        .expect("offload receiver");
        let enc = encryptor(&cert);
        let mut spec = NotificationSpec::new(TENANT, RESOURCE);
        spec.client_state = Some(CLIENT_STATE.into());
        let notification = enc.notification(&presence(), &spec).expect("notification");
        let data_key = notification
            .encrypted_content
            .as_ref()
            .and_then(|c| c.data_key.clone())
            .expect("dataKey");
        Fixture {
            token_v2: issuer.token(TokenVersion::V2, APP, TENANT),
            token_v1: issuer.token(TokenVersion::V1, APP, TENANT),
            key,
            cert,
            decryptor,
            issuer,
            validator,
            receiver,
            data_key,
            notification,
            offload_receiver,
            blob,
        }
    })
}

/// The test kit's encryptor with the fixed key.
pub fn encryptor(cert: &Certificate) -> GraphEncryptor<'_> {
    GraphEncryptor::new(cert, CERT_ID).symmetric_key(&KEY)
}

pub fn presence() -> serde_json::Value {
    serde_json::json!({
        "@odata.type": "#microsoft.graph.presence",
        "id": "fuzz-user",
        "availability": "Busy",
        "activity": "InACall"
    })
}

/// Replaces the placeholders (see the module docs) in `data`.
pub fn expand(data: &[u8]) -> Vec<u8> {
    let f = fixture();
    let thumbprint = f.cert.thumbprint();
    let pairs: [(&[u8], &[u8]); 4] = [
        (b"@@DATAKEY@@", f.data_key.as_bytes()),
        (b"@@THUMBPRINT@@", thumbprint.as_bytes()),
        (b"@@TOKEN1@@", f.token_v1.as_bytes()),
        (b"@@TOKEN@@", f.token_v2.as_bytes()),
    ];
    let mut out = data.to_vec();
    for (from, to) in pairs {
        out = replace(&out, from, to);
    }
    out
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

/// A cursor over the fuzzer's bytes: small choices first, the rest as a payload.
pub struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    pub fn u16(&mut self) -> u16 {
        u16::from(self.byte()) << 8 | u16::from(self.byte())
    }
    /// A length-prefixed chunk (one byte of length).
    pub fn chunk(&mut self) -> &'a [u8] {
        let n = usize::from(self.byte()).min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

/// The collection JSON: parse, and when it parses, serialize and parse again to the same items;
/// type each item's JSON as a resource too.
pub fn collection_json(data: &[u8]) {
    let data = expand(data);
    let _ = serde_json::from_slice::<ChangeNotification>(&data);
    if let Ok(c) = serde_json::from_slice::<ChangeNotificationCollection>(&data) {
        let again = serde_json::to_vec(&c).expect("a parsed collection serializes");
        let back: ChangeNotificationCollection =
            serde_json::from_slice(&again).expect("a serialized collection parses");
        assert_eq!(back.value, c.value, "the collection does not round-trip");
        for n in &c.value {
            let _ = n.is_lifecycle();
            if let Some(content) = &n.encrypted_content {
                let _ = fixture().decryptor.decrypt(content);
            }
        }
    }
}

/// The resource paths [`resource_json`] picks from, by its first byte modulo their number: one
/// of each kind, in the spellings notifications use. [`PATH_FROM_DATA`] takes the path from the
/// data instead.
pub const RESOURCE_PATHS: &[Option<&str>] = &[
    None,
    Some("communications/presences/u1"),
    Some("chats('19:x')/messages('1')"),
    Some("communications/onlineMeetings(joinWebUrl='x')/meetingCallEvents"),
    Some("users/u1/events"),
    Some("communications/onlineMeetings('m')/transcripts('t')"),
    Some("communications/onlineMeetings('m')/recordings('r')"),
    Some("chats('19:x')"),
    Some("teams('t')"),
    Some("teams('t')/channels('19:c')"),
    Some("chats('19:x')/members('m')"),
    Some("copilot/interactionHistory/interactions('1')"),
    Some("Users/u1/Messages/m1"),
    Some("users('u1')/contacts('c1')"),
    Some("teams('t')/channels('19:c')/messages('1')/replies('2')"),
];

/// The first-byte value (modulo `RESOURCE_PATHS.len() + 1`) at which [`resource_json`] reads the
/// resource path from the data: the bytes up to the first newline, then the JSON.
pub const PATH_FROM_DATA: u8 = RESOURCE_PATHS.len() as u8;

/// Decrypted JSON into a typed resource; the first byte picks the notification's resource path
/// (see [`RESOURCE_PATHS`], [`PATH_FROM_DATA`]).
pub fn resource_json(data: &[u8]) {
    let mut b = Bytes(data);
    let choice = b.byte() % (PATH_FROM_DATA + 1);
    let rest = b.rest();
    let (path, bytes) = if choice == PATH_FROM_DATA {
        let (path, json) = match rest.iter().position(|&c| c == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        let path = std::str::from_utf8(path).ok();
        // The grammar never panics and names the same kind however often it is asked.
        if let Some(p) = path {
            let kind = msgraph_notify::resource::PathKind::of(p);
            assert_eq!(kind, msgraph_notify::resource::PathKind::of(p));
        }
        (path, json)
    } else {
        (RESOURCE_PATHS[usize::from(choice)], rest)
    };
    let typed = Resource::from_json(bytes, path);
    // The one-pass typing must give exactly what typing through a `Value` gives.
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(value) => match &typed {
            Ok(r) => assert_eq!(
                *r,
                Resource::from_value(value, path),
                "one-pass typing differs"
            ),
            Err(e) => panic!("valid JSON refused by Resource::from_json: {e}"),
        },
        Err(_) => assert!(
            typed.is_err(),
            "invalid JSON accepted by Resource::from_json"
        ),
    }
}

/// One `encryptedContent` through the fixed decryptor. The first byte picks a mode:
///
/// - 0: the rest is the JSON of an `encryptedContent` or of a notification (placeholders expanded);
/// - 1: the rest is a plaintext, encrypted with the fixed key: it must come back exactly when it
///   is UTF-8, and be refused otherwise;
/// - 2: the rest is whole blocks encrypted without padding, correctly signed (padding checks);
/// - 3: the rest is a ciphertext, correctly signed (decryption and padding of arbitrary blocks);
/// - otherwise: structure-aware mutation of a valid notification: a list of (field, mutation)
///   pairs, then optionally a re-signing of the mutated `data` under the fixed key.
pub fn encrypted_content(data: &[u8]) {
    let f = fixture();
    let mut b = Bytes(data);
    match b.byte() {
        0 => {
            let json = expand(b.rest());
            if let Ok(c) = serde_json::from_slice::<EncryptedContent>(&json) {
                check_plaintext(f.decryptor.decrypt(&c));
            }
            if let Ok(n) = serde_json::from_slice::<ChangeNotification>(&json) {
                let _ = f.decryptor.decrypt_notification(&n);
            }
        }
        1 => {
            let plaintext = b.rest();
            let c = encryptor(&f.cert).encrypt(plaintext).expect("encrypt");
            match f.decryptor.decrypt(&c) {
                Ok(p) => assert_eq!(p.as_bytes(), plaintext, "a round trip changed the bytes"),
                Err(e) => assert!(
                    std::str::from_utf8(plaintext).is_err(),
                    "a valid UTF-8 plaintext was refused: {e}"
                ),
            }
        }
        2 => {
            let mut blocks = b.rest().to_vec();
            blocks.truncate(blocks.len() / 16 * 16);
            if let Ok(c) = encryptor(&f.cert).encrypt_without_padding(&blocks) {
                check_plaintext(f.decryptor.decrypt(&c));
            }
        }
        3 => {
            if let Ok(c) = encryptor(&f.cert).seal_ciphertext(b.rest()) {
                check_plaintext(f.decryptor.decrypt(&c));
            }
        }
        _ => {
            let mut n = f.notification.clone();
            let resign = b.byte() & 1 == 1;
            if let Some(c) = n.encrypted_content.as_mut() {
                for _ in 0..(b.byte() % 4 + 1) {
                    mutate(c, &mut b);
                }
                if resign {
                    resign_data(c);
                }
            }
            if let Some(c) = &n.encrypted_content {
                check_plaintext(f.decryptor.decrypt(c));
            }
            let _ = f.decryptor.decrypt_notification(&n);
        }
    }
}

/// A decrypted plaintext is UTF-8 (the library checks it before it hands it out).
fn check_plaintext(result: msgraph_notify::Result<msgraph_notify::Plaintext>) {
    if let Ok(p) = result {
        assert!(std::str::from_utf8(p.as_bytes()).is_ok());
        assert_eq!(p.as_str().len(), p.len());
    }
}

/// Applies one (field, mutation) pair read from `b` to `c`.
fn mutate(c: &mut EncryptedContent, b: &mut Bytes<'_>) {
    let field = match b.byte() % 5 {
        0 => &mut c.data,
        1 => &mut c.data_key,
        2 => &mut c.data_signature,
        3 => &mut c.encryption_certificate_id,
        _ => &mut c.encryption_certificate_thumbprint,
    };
    let op = b.byte();
    let at = usize::from(b.u16());
    let chunk = b.chunk();
    let Some(text) = field.as_mut() else {
        *field = Some(String::from_utf8_lossy(chunk).into_owned());
        return;
    };
    match op % 9 {
        // Remove the field.
        0 => *field = None,
        // Replace the text.
        1 => *text = String::from_utf8_lossy(chunk).into_owned(),
        // Truncate (at a char boundary).
        2 => {
            let mut cut = at % (text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        // Insert text.
        3 => {
            let mut pos = at % (text.len() + 1);
            while !text.is_char_boundary(pos) {
                pos -= 1;
            }
            text.insert_str(pos, &String::from_utf8_lossy(chunk));
        }
        // Replace with the base64 of the chunk.
        4 => *text = STANDARD.encode(chunk),
        // Flip a bit, or append bytes, or keep a prefix, of the decoded value.
        5..=7 => {
            if let Ok(mut bytes) = STANDARD.decode(text.as_bytes()) {
                match op % 9 {
                    5 if !bytes.is_empty() => {
                        let i = at % bytes.len();
                        bytes[i] ^= 1 << (op % 8);
                    }
                    6 => bytes.extend_from_slice(chunk),
                    _ => bytes.truncate(at % (bytes.len() + 1)),
                }
                *text = STANDARD.encode(&bytes);
            }
        }
        // Upper/lower case (the thumbprint is compared case-insensitively).
        _ => *text = text.to_lowercase(),
    }
}

/// Signs `data` (when it is base64) under the fixed key, so mutations get past the MAC.
fn resign_data(c: &mut EncryptedContent) {
    use hmac::{KeyInit, Mac};
    let Some(Ok(data)) = c.data.as_deref().map(|d| STANDARD.decode(d)) else {
        return;
    };
    let Ok(mut mac) = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&KEY) else {
        return;
    };
    mac.update(&data);
    c.data_signature = Some(STANDARD.encode(mac.finalize().into_bytes()));
}

/// A validation token. The first byte picks a mode:
///
/// - 0: the rest is the token's text;
/// - 1: the rest is the claims JSON, signed by the issuer (past the signature to the claims);
/// - 2: the rest is a JWKS document;
/// - otherwise: a valid token, mutated (one of its three parts replaced, bytes flipped or cut).
pub fn token(data: &[u8]) {
    let f = fixture();
    let mut b = Bytes(data);
    let text = match b.byte() {
        0 => String::from_utf8_lossy(&expand(b.rest())).into_owned(),
        1 => match serde_json::from_slice::<serde_json::Value>(b.rest()) {
            Ok(claims) => f.issuer.sign(&claims),
            Err(_) => return,
        },
        2 => {
            if let Ok(jwks) = Jwks::from_json(b.rest()) {
                let _ = (jwks.len(), jwks.kids());
            }
            return;
        }
        mode => {
            let valid = if mode & 1 == 0 {
                &f.token_v2
            } else {
                &f.token_v1
            };
            let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
            let part = usize::from(b.byte() % 3);
            let op = b.byte();
            let at = usize::from(b.u16());
            let chunk = String::from_utf8_lossy(b.rest()).into_owned();
            let p = &mut parts[part];
            match op % 4 {
                0 => *p = chunk,
                1 => p.truncate(at % (p.len() + 1)),
                2 => p.insert_str(at % (p.len() + 1), &chunk),
                _ => {
                    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
                    *p = URL_SAFE_NO_PAD.encode(chunk.as_bytes());
                }
            }
            parts.join(".")
        }
    };
    let _ = TokenValidator::peek_kid(&text);
    let _ = TokenValidator::peek_tenant(&text);
    if let Ok(valid) = f.validator.validate(&text) {
        assert_eq!(valid.app_id, APP, "a token for another app was accepted");
        assert!(!valid.tenant_id.is_empty());
    }
}

/// Key and certificate loading. The first byte picks the password: none, empty, or `fuzz`; the
/// rest goes to `PrivateKey::load`, `Certificate::load` and `PrivateKey::from_pkcs12`.
pub fn key_load(data: &[u8]) {
    let mut b = Bytes(data);
    let password = match b.byte() % 3 {
        0 => None,
        1 => Some(""),
        _ => Some("fuzz"),
    };
    let bytes = b.rest();
    if let Ok((key, cert)) = PrivateKey::load(bytes, password) {
        assert!((2048..=4096).contains(&key.bits()));
        if let Some(cert) = cert {
            assert!(cert.matches(&key));
        }
    }
    if let Ok(cert) = Certificate::load(bytes) {
        assert_eq!(cert.thumbprint().len(), 40);
    }
    let _ = PrivateKey::from_pkcs12(bytes, password.unwrap_or("fuzz"));
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = PrivateKey::from_encrypted_pem(text, password.unwrap_or("fuzz"));
    }
}

/// The whole receiver call. The first byte's low bit says whether a query string comes first (up
/// to the first newline); the rest is the body, placeholders expanded.
pub fn receiver(data: &[u8]) {
    let f = fixture();
    let mut b = Bytes(data);
    let flags = b.byte();
    let mut rest = b.rest();
    let mut query = None;
    if flags & 1 == 1 {
        let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
        query = Some(String::from_utf8_lossy(&rest[..end]).into_owned());
        rest = rest.get(end + 1..).unwrap_or_default();
    }
    let body = expand(rest);
    let _ = f.receiver.unknown_kids(&body);
    if let Ok(msgraph_notify::receiver::Reply::Notifications(items)) =
        f.receiver.receive(query.as_deref(), &body)
    {
        for (i, item) in items.iter().enumerate() {
            assert_eq!(item.index, i);
            let _ = item.to_json();
        }
    }
}

/// An offloaded payload: the fuzzer's bytes (placeholders expanded) are the blob an Event Hubs
/// record names; the receiver reads it, fills in the notification and verifies and decrypts it.
/// Oracles: one outcome; a decrypted item keeps the record's subscription, tenant and
/// clientState, whatever the blob holds.
pub fn offloaded_payload(data: &[u8]) {
    let f = fixture();
    f.blob.insert(BLOB, expand(data));
    let record = serde_json::json!({"value": [{
        "subscriptionId": OFFLOADED_SUBSCRIPTION, "tenantId": TENANT, "clientState": CLIENT_STATE,
        "changeType": "created", "additionalPayloadStorageId": BLOB,
    }]});
    let items = f
        .offload_receiver
        .receive_trusted_transport(record.to_string().as_bytes())
        .expect("the record itself is well-formed");
    assert_eq!(items.len(), 1);
    if let msgraph_notify::receiver::Outcome::Decrypted(d) = &items[0].outcome {
        let n = &d.notification;
        assert_eq!(n.subscription_id.as_deref(), Some(OFFLOADED_SUBSCRIPTION));
        assert_eq!(n.tenant_id.as_deref(), Some(TENANT));
        assert_eq!(n.client_state.as_deref(), Some(CLIENT_STATE));
    }
    let _ = items[0].to_json();
}
