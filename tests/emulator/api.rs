//! Entra's token endpoint and Graph's subscription API: what is accepted, and a refusal with
//! Graph's (or Entra's) error code for every documented rule.

use std::time::Duration;

use serde_json::{Value, json};
use test_support::emulator::{Endpoint, assertion_with, client_assertion};

use crate::*;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const SCOPE: &str = "https://graph.microsoft.com/.default";

/// A token request's form, and the status, `error` and AADSTS code it must get.
type TokenCase = (Vec<(&'static str, String)>, u16, &'static str, u32);

fn assert_graph_error(status: u16, body: &Value, want_status: u16, code: &str, needle: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains(needle), "{needle:?} not in {message:?}");
    assert!(
        body["error"]["innerError"]["request-id"].is_string(),
        "{body}"
    );
    assert!(body["error"]["innerError"]["date"].is_string(), "{body}");
}

fn assert_entra_error(status: u16, body: &Value, want_status: u16, error: &str, aadsts: u32) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], json!([aadsts]), "{body}");
    let description = body["error_description"].as_str().unwrap_or("");
    assert!(
        description.starts_with(&format!("AADSTS{aadsts}:")),
        "{description}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_assertion_subscribes_after_the_handshake_of_both_urls() {
    let emulator = builder().start().await.unwrap();
    let token = access_token(&emulator).await;
    let receiver = Endpoint::echoing();
    let body = create_body(
        &emulator,
        "/chats/getAllMessages",
        "created,updated",
        &receiver.url("/notify?tag=1"),
        Some(&receiver.url("/lifecycle")),
        120,
    );
    let (status, created) = graph(&emulator, "POST", "/subscriptions", &token, Some(&body)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["resource"], "/chats/getAllMessages");
    assert_eq!(created["changeType"], "created,updated");
    assert_eq!(created["applicationId"], APP_ID);
    assert_eq!(created["includeResourceData"], true);
    assert_eq!(created["encryptionCertificateId"], CERT_ID);
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(seconds_until(created["expirationDateTime"].as_str().unwrap()) > 7000);

    // Both URLs were handshaken: a POST with the token in the query, echoed as text/plain. The
    // query already on the notification URL is kept.
    let handshakes = receiver.requests();
    assert_eq!(handshakes.len(), 2, "{handshakes:?}");
    assert!(handshakes.iter().all(|r| r.method == "POST"));
    assert!(
        handshakes[0]
            .target
            .starts_with("/notify?tag=1&validationToken=")
    );
    assert!(
        handshakes[1]
            .target
            .starts_with("/lifecycle?validationToken=")
    );
    assert!(
        handshakes[0]
            .validation_token()
            .unwrap()
            .starts_with("Validation: ")
    );

    // Read, list, renew (PATCH), reauthorize, delete.
    let (status, read) = graph(
        &emulator,
        "GET",
        &format!("/subscriptions/{id}"),
        &token,
        None,
    )
    .await;
    assert_eq!((status, &read["id"]), (200, &json!(id)));
    let (status, list) = graph(&emulator, "GET", "/subscriptions", &token, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    let renew = json!({"expirationDateTime": expires_in(&emulator, 3000)});
    let (status, renewed) = graph(
        &emulator,
        "PATCH",
        &format!("/subscriptions/{id}"),
        &token,
        Some(&renew),
    )
    .await;
    assert_eq!(status, 200, "{renewed}");
    assert!(seconds_until(renewed["expirationDateTime"].as_str().unwrap()) > 2900 * 60);
    let (status, _) = graph(
        &emulator,
        "POST",
        &format!("/subscriptions/{id}/reauthorize"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = graph(
        &emulator,
        "DELETE",
        &format!("/subscriptions/{id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, gone) = graph(
        &emulator,
        "GET",
        &format!("/subscriptions/{id}"),
        &token,
        None,
    )
    .await;
    assert_graph_error(status, &gone, 404, "ResourceNotFound", "not found");

    // A client secret works too; an RS256 assertion with x5t as well.
    let (status, body) = token_request(
        &emulator,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", SECRET_APP),
            ("scope", SCOPE),
            ("client_secret", SECRET),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (key, cert) = app_keys();
    let rs256 = client_assertion(&emulator.token_url(), APP_ID, key, cert, true);
    let (status, body) = token_request(
        &emulator,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", APP_ID),
            ("scope", SCOPE),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &rs256),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_does_not_echo_the_token_is_refused_as_graph_refuses_it() {
    let emulator = builder().start().await.unwrap();
    let token = access_token(&emulator).await;
    let cases: [(Endpoint, &str); 3] = [
        (
            Endpoint::start(|_| (200, "text/plain", "something else".into())),
            "exactly match",
        ),
        (
            Endpoint::start(|r| {
                (
                    200,
                    "application/json",
                    r.validation_token().unwrap_or_default(),
                )
            }),
            "exactly match",
        ),
        (
            Endpoint::start(|_| (503, "text/plain", String::new())),
            "200 OK",
        ),
    ];
    for (receiver, needle) in cases {
        let body = create_body(
            &emulator,
            "/chats/c1/messages",
            "created",
            &receiver.url("/"),
            None,
            50,
        );
        let (status, refused) =
            graph(&emulator, "POST", "/subscriptions", &token, Some(&body)).await;
        assert_graph_error(status, &refused, 400, "ValidationError", needle);
        assert_eq!(receiver.requests().len(), 1);
    }
    // Nobody listening: refused too, and nothing was created.
    let closed = format!("http://127.0.0.1:{}/", test_support::net::free_port());
    let body = create_body(
        &emulator,
        "/chats/c1/messages",
        "created",
        &closed,
        None,
        50,
    );
    let (status, refused) = graph(&emulator, "POST", "/subscriptions", &token, Some(&body)).await;
    assert_graph_error(
        status,
        &refused,
        400,
        "ValidationError",
        "Subscription validation request failed",
    );
    assert!(emulator.subscriptions().is_empty());
    let validations: Vec<_> = emulator
        .deliveries()
        .into_iter()
        .filter(|d| d.kind == "validation")
        .collect();
    assert_eq!(validations.len(), 4);
    assert!(validations.iter().all(|d| !d.delivered));
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscription_rule_has_its_refusal_in_graphs_format() {
    let emulator = builder().start().await.unwrap();
    let token = access_token(&emulator).await;
    let receiver = Endpoint::echoing();
    let url = receiver.url("/n");
    let ok = |resource: &str, types: &str, minutes: u64| {
        create_body(&emulator, resource, types, &url, None, minutes)
    };
    let mut cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            ok("/users/u/drive/root", "updated", 50),
            400,
            "InvalidRequest",
            "no resource named",
        ),
        (
            ok("/users/u/messages", "created", 50),
            400,
            "InvalidRequest",
            "$select",
        ),
        (
            ok("/communications/presences/u1", "created", 50),
            400,
            "InvalidRequest",
            "created",
        ),
        (
            ok("/chats/c1/messages", "created", 5000),
            400,
            "InvalidRequest",
            "4320 minutes",
        ),
        (
            ok("/chats/c1/messages", "created", 120),
            400,
            "InvalidRequest",
            "lifecycleNotificationUrl",
        ),
    ];
    let mut no_cert = ok("/chats/c1/messages", "created", 50);
    no_cert
        .as_object_mut()
        .unwrap()
        .remove("encryptionCertificate");
    cases.push((no_cert, 400, "InvalidRequest", "encryptionCertificate"));
    let mut no_cert_id = ok("/chats/c1/messages", "created", 50);
    no_cert_id
        .as_object_mut()
        .unwrap()
        .remove("encryptionCertificateId");
    cases.push((no_cert_id, 400, "InvalidRequest", "encryptionCertificateId"));
    let mut long_state = ok("/chats/c1/messages", "created", 50);
    long_state["clientState"] = "x".repeat(129).into();
    cases.push((long_state, 400, "InvalidRequest", "clientState"));
    let mut https_only = ok("/chats/c1/messages", "created", 50);
    https_only["notificationUrl"] = "http://receiver.example/n".into();
    cases.push((https_only, 400, "InvalidRequest", "https://"));
    let mut past = ok("/chats/c1/messages", "created", 50);
    past["expirationDateTime"] = "2020-01-01T00:00:00.0000000Z".into();
    cases.push((past, 400, "InvalidRequest", "in the past"));
    let mut missing = ok("/chats/c1/messages", "created", 50);
    missing.as_object_mut().unwrap().remove("resource");
    cases.push((missing, 400, "InvalidRequest", "'resource' is required"));
    for (body, status, code, needle) in &cases {
        let (got, refused) = graph(&emulator, "POST", "/subscriptions", &token, Some(body)).await;
        assert_graph_error(got, &refused, *status, code, needle);
    }
    // None of them reached the receiver.
    assert!(receiver.requests().is_empty());

    // The 45-minute floor: 10 minutes asked, 45 granted.
    let (status, short) = graph(
        &emulator,
        "POST",
        "/subscriptions",
        &token,
        Some(&ok("/chats/c1/messages", "created", 10)),
    )
    .await;
    assert_eq!(status, 201, "{short}");
    let left = seconds_until(short["expirationDateTime"].as_str().unwrap());
    assert!((44 * 60..=45 * 60).contains(&left), "{left}");
    // The quota: one subscription per app per chat.
    let (status, refused) = graph(
        &emulator,
        "POST",
        "/subscriptions",
        &token,
        Some(&ok("/chats/c1/messages", "created", 50)),
    )
    .await;
    assert_graph_error(
        status,
        &refused,
        403,
        "ExtensionError",
        "one per app per chat",
    );
    // A lifecycle URL cannot be added by PATCH.
    let id = short["id"].as_str().unwrap();
    let add = json!({"lifecycleNotificationUrl": receiver.url("/l")});
    let (status, refused) = graph(
        &emulator,
        "PATCH",
        &format!("/subscriptions/{id}"),
        &token,
        Some(&add),
    )
    .await;
    assert_graph_error(status, &refused, 400, "InvalidRequest", "cannot be added");
    // Copilot: one aiInteraction subscription per app.
    let ai = "/copilot/interactionHistory/getAllEnterpriseInteractions";
    let (status, _) = graph(
        &emulator,
        "POST",
        "/subscriptions",
        &token,
        Some(&ok(ai, "created", 50)),
    )
    .await;
    assert_eq!(status, 201);
    let (status, refused) = graph(
        &emulator,
        "POST",
        "/subscriptions",
        &token,
        Some(&ok(&format!("{ai}?x=1"), "created", 50)),
    )
    .await;
    assert_graph_error(status, &refused, 403, "ExtensionError", "aiInteraction");

    // Tokens: none, forged, another version path.
    let body = ok("/chats/c2/messages", "created", 50);
    let (status, refused) = graph(&emulator, "POST", "/subscriptions", "", Some(&body)).await;
    assert_graph_error(status, &refused, 401, "InvalidAuthenticationToken", "empty");
    let forged = format!("{}x", &token[..token.len() - 1]);
    let (status, refused) = graph(&emulator, "POST", "/subscriptions", &forged, Some(&body)).await;
    assert_graph_error(
        status,
        &refused,
        401,
        "InvalidAuthenticationToken",
        "validation failure",
    );
    let answer = reqwest::Client::new()
        .get(format!("{}/v2.0/subscriptions", emulator.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 400);
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_refused_for_app_tokens_and_http_refused_unless_allowed() {
    let emulator = builder()
        .allow_http(false)
        .refuse_app_only_presence(true)
        .start()
        .await
        .unwrap();
    let token = access_token(&emulator).await;
    let receiver = Endpoint::echoing();
    let body = create_body(
        &emulator,
        "/communications/presences/u1",
        "updated",
        "https://receiver.example/n",
        None,
        50,
    );
    let (status, refused) = graph(&emulator, "POST", "/subscriptions", &token, Some(&body)).await;
    assert_graph_error(status, &refused, 403, "ExtensionError", "delegated");
    let body = create_body(
        &emulator,
        "/chats/c1/messages",
        "created",
        &receiver.url("/n"),
        None,
        50,
    );
    let (status, refused) = graph(&emulator, "POST", "/subscriptions", &token, Some(&body)).await;
    assert_graph_error(status, &refused, 400, "InvalidRequest", "--allow-http");
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_refuses_each_bad_credential_with_entras_codes() {
    let emulator = builder().start().await.unwrap();
    let url = emulator.token_url();
    let (key, cert) = app_keys();
    let base = |assertion: &str| {
        vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", APP_ID.to_owned()),
            ("scope", SCOPE.to_owned()),
            ("client_assertion_type", JWT_BEARER.to_owned()),
            ("client_assertion", assertion.to_owned()),
        ]
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |aud: &str, iss: &str, exp: u64, jti: &str| json!({"aud": aud, "iss": iss, "sub": iss, "jti": jti, "nbf": now, "iat": now, "exp": exp});
    let ps256 = |c: &Value, k: &msgraph_notify::PrivateKey| {
        use base64::Engine;
        use sha2::Digest;
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256);
        h.x5t_s256 = Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(cert.der())),
        );
        assertion_with(&h, c, k)
    };
    let other_key = &test_support::keypair(2048).0;
    let replayed = ps256(&claims(&url, APP_ID, now + 300, "jti-once"), key);
    let cases: Vec<TokenCase> = vec![
        (
            base(&ps256(
                &claims(
                    "https://login.microsoftonline.com/x/oauth2/v2.0/token",
                    APP_ID,
                    now + 300,
                    "a",
                ),
                key,
            )),
            401,
            "invalid_client",
            700023,
        ),
        (
            base(&ps256(&claims(&url, SECRET_APP, now + 300, "b"), key)),
            401,
            "invalid_client",
            700021,
        ),
        (
            base(&ps256(&claims(&url, APP_ID, now + 3600, "c"), key)),
            401,
            "invalid_client",
            700024,
        ),
        (
            base(&ps256(&claims(&url, APP_ID, now - 3600, "d"), key)),
            401,
            "invalid_client",
            700024,
        ),
        (
            base(&ps256(&claims(&url, APP_ID, now + 300, "e"), other_key)),
            401,
            "invalid_client",
            700027,
        ),
        (
            base(&client_assertion(
                &url,
                APP_ID,
                other_key,
                &test_support::keypair(2048).1,
                false,
            )),
            401,
            "invalid_client",
            700027,
        ),
        (
            base(&ps256(&claims(&url, APP_ID, u64::MAX, "f"), key)),
            401,
            "invalid_client",
            700024,
        ),
        (base("not-a-jwt"), 400, "invalid_request", 50027),
        (base(&replayed), 200, "", 0),
        (base(&replayed), 401, "invalid_client", 700027),
    ];
    let mut secret = vec![
        ("grant_type", "client_credentials".to_owned()),
        ("client_id", SECRET_APP.to_owned()),
        ("scope", SCOPE.to_owned()),
        ("client_secret", "wrong".to_owned()),
    ];
    let mut all = cases;
    all.push((secret.clone(), 401, "invalid_client", 7000215));
    secret[1].1 = "00000000-0000-0000-0000-000000000001".into();
    all.push((secret.clone(), 400, "unauthorized_client", 700016));
    secret[1].1 = SECRET_APP.into();
    secret.pop();
    all.push((secret.clone(), 401, "invalid_client", 7000216));
    secret[2].1 = "https://graph.microsoft.com/User.Read".into();
    all.push((secret.clone(), 400, "invalid_scope", 1002012));
    secret[0].1 = "password".into();
    all.push((secret, 400, "unsupported_grant_type", 70003));
    for (form, status, error, code) in all {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (got, body) = token_request(&emulator, &form).await;
        if status == 200 {
            assert_eq!(got, 200, "{body}");
        } else {
            assert_entra_error(got, &body, status, error, code);
        }
    }
    // Another tenant.
    let answer = reqwest::Client::new()
        .post(url.replace(emulator.tenant_id(), "99999999-9999-9999-9999-999999999999"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    assert_entra_error(
        status,
        &answer.json().await.unwrap(),
        400,
        "invalid_request",
        90002,
    );
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_fail_the_next_matching_requests_then_stop() {
    let emulator = builder().start().await.unwrap();
    let token = access_token(&emulator).await;
    let client = reqwest::Client::new();
    let answer = client
        .post(format!("{}/_emulator/faults", emulator.base_url()))
        .json(&json!({"status": 429, "retryAfterSeconds": 2, "count": 2, "path": "/subscriptions"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 202);
    for _ in 0..2 {
        let answer = client
            .get(format!("{}/subscriptions", emulator.graph_url()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 429);
        assert_eq!(answer.headers()["retry-after"], "2");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["error"]["code"], "TooManyRequests");
    }
    let (status, _) = graph(&emulator, "GET", "/subscriptions", &token, None).await;
    assert_eq!(status, 200);
    // In-process, the same: a 503 on the token endpoint, once.
    emulator
        .inject(msgraph_notify::emulator::Fault::new(503).path("/"))
        .unwrap();
    let (status, body) = token_request(&emulator, &[("grant_type", "client_credentials")]).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("ServiceNotAvailable"))
    );
    assert!(
        emulator
            .inject(msgraph_notify::emulator::Fault::new(200))
            .is_err()
    );
    // The clock moves at most 100 years, whatever is asked, and the emulator goes on answering.
    let answer = client
        .post(format!("{}/_emulator/clock", emulator.base_url()))
        .json(&json!({"advanceSeconds": u64::MAX}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let now: Value = answer.json().await.unwrap();
    assert!(now["now"].as_str().unwrap().starts_with("21"), "{now}");
    let (status, _) = graph(&emulator, "GET", "/subscriptions", &token, None).await;
    assert_eq!(status, 200);
    // The control API is never faulted, and the OpenID metadata names the emulator's keys.
    let meta: Value = client
        .get(format!(
            "{}/{}/v2.0/.well-known/openid-configuration",
            emulator.base_url(),
            emulator.tenant_id()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["token_endpoint"], emulator.token_url());
    let keys: Value = client
        .get(meta["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys["keys"][0]["kty"], "RSA");
    let _ = Duration::ZERO;
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_lifetime_grants_less_than_the_floor_and_a_moved_url_is_handshaken_again() {
    let emulator = builder()
        .max_lifetime(Duration::from_secs(2))
        .start()
        .await
        .unwrap();
    let token = access_token(&emulator).await;
    let first = Endpoint::echoing();
    let body = create_body(
        &emulator,
        "/chats/c1/messages",
        "created",
        &first.url("/a"),
        None,
        50,
    );
    // Under /beta too.
    let answer = reqwest::Client::new()
        .post(format!("{}/beta/subscriptions", emulator.base_url()))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 201);
    let created: Value = answer.json().await.unwrap();
    let left = seconds_until(created["expirationDateTime"].as_str().unwrap());
    assert!((0..=2).contains(&left), "{left}");
    let id = created["id"].as_str().unwrap();

    // Moving it: the new URL is handshaken; a silent one is refused and the old URL stays.
    let second = Endpoint::echoing();
    let silent = Endpoint::start(|_| (200, "text/plain", String::new()));
    let to = |u: String| json!({"notificationUrl": u});
    let (status, refused) = graph(
        &emulator,
        "PATCH",
        &format!("/subscriptions/{id}"),
        &token,
        Some(&to(silent.url("/s"))),
    )
    .await;
    assert_graph_error(status, &refused, 400, "ValidationError", "exactly match");
    let (status, moved) = graph(
        &emulator,
        "PATCH",
        &format!("/subscriptions/{id}"),
        &token,
        Some(&to(second.url("/b"))),
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["notificationUrl"], second.url("/b"));
    assert_eq!(second.requests().len(), 1);
    // Two seconds later (real time: the granted lifetime) it is gone.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(emulator.subscriptions().is_empty());
    let (status, _) = graph(
        &emulator,
        "GET",
        &format!("/subscriptions/{id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 404);
    emulator.shutdown().await;
}
