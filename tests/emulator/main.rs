//! The Graph emulator (feature `emulator`) over real sockets: Entra's token endpoint, the
//! subscription API and its refusals, the handshake, deliveries, retries, expiry and lifecycle.
//!
//! One test binary for the area; each file below is a module.

mod api;
mod deliveries;

use std::time::{Duration, SystemTime};

use msgraph_notify::emulator::{Emulator, EmulatorBuilder};
use msgraph_notify::subscription::format_date_time;
use msgraph_notify::{Certificate, PrivateKey};
use serde_json::{Value, json};
use test_support::emulator::client_assertion;

pub const APP_ID: &str = "3c5ae9b2-7a0e-4f1d-9a43-5b8d2f6c1e07";
pub const SECRET_APP: &str = "7d1e2f3a-4b5c-4d6e-8f90-a1b2c3d4e5f6";
pub const SECRET: &str = "emulator app secret";
pub const CERT_ID: &str = "emulator-test-cert";

/// The app's credential key pair (its certificate registered with the emulator).
pub fn app_keys() -> &'static (PrivateKey, Certificate) {
    test_support::other_keypair()
}

/// The receiver's encryption key pair.
pub fn receiver_keys() -> &'static (PrivateKey, Certificate) {
    test_support::keypair(2048)
}

/// A builder with both apps registered and http:// to the loopback allowed.
pub fn builder() -> EmulatorBuilder {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    Emulator::builder()
        .app_with_certificate(APP_ID, app_keys().1.clone())
        .app_with_secret(SECRET_APP, SECRET)
        .allow_http(true)
}

/// POSTs the form to the token endpoint; (status, JSON).
pub async fn token_request(emulator: &Emulator, form: &[(&str, &str)]) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .post(emulator.token_url())
        .form(form)
        .send()
        .await
        .expect("token endpoint");
    let status = answer.status().as_u16();
    (status, answer.json().await.expect("JSON"))
}

/// An access token for [`APP_ID`] got with a PS256 certificate assertion.
pub async fn access_token(emulator: &Emulator) -> String {
    let (key, cert) = app_keys();
    let assertion = client_assertion(&emulator.token_url(), APP_ID, key, cert, false);
    let (status, body) = token_request(
        emulator,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", APP_ID),
            ("scope", "https://graph.microsoft.com/.default"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &assertion),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// A Graph request with the bearer `token`; (status, JSON or null).
pub async fn graph(
    emulator: &Emulator,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", emulator.graph_url()))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    let answer = request.send().await.expect("Graph request");
    let status = answer.status().as_u16();
    let text = answer.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `expirationDateTime` `minutes` from the emulator's now.
pub fn expires_in(emulator: &Emulator, minutes: u64) -> String {
    format_date_time(emulator.clock().now() + Duration::from_secs(minutes * 60))
}

/// A create body with resource data for `resource`, delivered to `url`.
pub fn create_body(
    emulator: &Emulator,
    resource: &str,
    change_type: &str,
    url: &str,
    lifecycle: Option<&str>,
    minutes: u64,
) -> Value {
    let mut body = json!({
        "changeType": change_type,
        "notificationUrl": url,
        "resource": resource,
        "includeResourceData": true,
        "encryptionCertificate": receiver_keys().1.encryption_certificate(),
        "encryptionCertificateId": CERT_ID,
        "expirationDateTime": expires_in(emulator, minutes),
        "clientState": "emulator-client-state",
    });
    if let Some(l) = lifecycle {
        body["lifecycleNotificationUrl"] = l.into();
    }
    body
}

/// The seconds from now to `date_time`.
pub fn seconds_until(date_time: &str) -> i64 {
    let t = msgraph_notify::subscription::parse_date_time(date_time).expect("date-time");
    match t.duration_since(SystemTime::now()) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap(),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap(),
    }
}
