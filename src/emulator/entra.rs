//! Entra ID's side: the client-credentials token endpoint, the OpenID metadata and the signing
//! keys, which sign both the access tokens and the validation tokens of deliveries.
//!
//! Sources: learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow (the
//! request and the answer, `token_type`, `expires_in`, `access_token`; the error JSON `error`,
//! `error_description`, `error_codes`, `timestamp`, `trace_id`, `correlation_id`),
//! learn.microsoft.com/entra/identity-platform/certificate-credentials (the assertion: `alg`
//! RS256 with `x5t` or PS256 with `x5t#S256`; `aud` the token endpoint, `iss` = `sub` = the client
//! id, `jti`, `exp` at most 10 minutes after `nbf`), and
//! learn.microsoft.com/entra/identity-platform/reference-error-codes (the AADSTS codes).

use std::sync::Arc;
use std::time::SystemTime;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppCredential;
use super::state::{Shared, b64url, random_id, unix};
use crate::token::{GRAPH_CHANGE_TRACKING_APP_ID, TokenVersion};

/// The longest a client assertion may live: `exp` at most 10 minutes after `nbf` (source:
/// learn.microsoft.com/entra/identity-platform/certificate-credentials, "Claims (payload)").
const MAX_ASSERTION_LIFETIME_SECS: u64 = 600;
/// Clock skew allowed on assertion times (chosen; Entra documents none).
const SKEW_SECS: u64 = 300;
/// The audience of access tokens for Graph.
pub(crate) const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The form of a token request.
#[derive(Deserialize)]
pub(crate) struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    scope: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}

/// Entra's error answer.
fn entra_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let trace = random_id();
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description} Trace ID: {trace}"),
        "error_codes": [code],
        "timestamp": crate::subscription::format_date_time(SystemTime::now()),
        "trace_id": trace,
        "correlation_id": random_id(),
    });
    (status, axum::Json(body)).into_response()
}

fn invalid_client(code: u32, description: &str) -> Response {
    entra_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        code,
        description,
    )
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    Form(form): Form<TokenRequest>,
) -> Response {
    match issue(&shared, &tenant, form) {
        Ok(answer) => (StatusCode::OK, axum::Json(answer)).into_response(),
        Err(refusal) => refusal,
    }
}

fn issue(shared: &Shared, tenant: &str, form: TokenRequest) -> Result<Value, Response> {
    if !crate::token::ids_equal(tenant, &shared.config.tenant) {
        return Err(entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID."
            ),
        ));
    }
    let grant = form.grant_type.as_deref().unwrap_or("");
    if grant != "client_credentials" {
        return Err(entra_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            &format!(
                "The app requested an unsupported grant type '{grant}'; the emulator supports client_credentials."
            ),
        ));
    }
    let scope = form.scope.as_deref().unwrap_or("");
    if scope.is_empty() {
        return Err(entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        ));
    }
    if !scope
        .split(' ')
        .any(|s| s.eq_ignore_ascii_case("https://graph.microsoft.com/.default"))
    {
        return Err(entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (https://graph.microsoft.com/.default)."
            ),
        ));
    }
    let client_id = form.client_id.as_deref().unwrap_or("");
    if client_id.is_empty() {
        return Err(entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        ));
    }
    let Some((app_id, credential)) = shared
        .config
        .apps
        .iter()
        .find(|(id, _)| crate::token::ids_equal(id, client_id))
    else {
        return Err(entra_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. Register it with --app."
            ),
        ));
    };
    match (&form.client_secret, &form.client_assertion) {
        (Some(given), None) => match credential {
            AppCredential::Secret(secret)
                if bool::from(subtle::ConstantTimeEq::ct_eq(
                    given.as_bytes(),
                    secret.as_bytes(),
                )) => {}
            _ => {
                return Err(invalid_client(
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.",
                ));
            }
        },
        (None, Some(assertion)) => {
            if form.client_assertion_type.as_deref() != Some(JWT_BEARER) {
                return Err(entra_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    50027,
                    &format!("client_assertion_type must be {JWT_BEARER}."),
                ));
            }
            let AppCredential::Certificate(cert) = credential else {
                return Err(invalid_client(
                    700027,
                    "Client assertion failed signature validation: the app has no certificate registered.",
                ));
            };
            check_assertion(shared, app_id, cert, assertion)?;
        }
        _ => {
            return Err(invalid_client(
                7000216,
                "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
            ));
        }
    }
    let lifetime = shared.config.access_token_lifetime.as_secs();
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token(shared, app_id)?,
    }))
}

#[derive(Deserialize)]
struct AssertionClaims {
    aud: Option<Value>,
    iss: Option<String>,
    sub: Option<String>,
    jti: Option<String>,
    exp: Option<u64>,
    nbf: Option<u64>,
}

fn check_assertion(
    shared: &Shared,
    app_id: &str,
    cert: &crate::keys::Certificate,
    assertion: &str,
) -> Result<(), Response> {
    use jsonwebtoken::Algorithm;
    use sha1::Digest as _;
    let malformed = |why: &str| {
        entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50027,
            &format!("JWT token is invalid or malformed: {why}."),
        )
    };
    let header = jsonwebtoken::decode_header(assertion).map_err(|e| malformed(&e.to_string()))?;
    let named = match header.alg {
        Algorithm::RS256 => header
            .x5t
            .as_deref()
            .is_some_and(|t| t == b64url(&sha1::Sha1::digest(cert.der()))),
        Algorithm::PS256 => header
            .x5t_s256
            .as_deref()
            .is_some_and(|t| t == b64url(&sha2::Sha256::digest(cert.der()))),
        other => return Err(malformed(&format!("alg {other:?} (RS256 or PS256)"))),
    };
    if !named {
        return Err(invalid_client(
            700027,
            "The certificate with identifier used to sign the client assertion is not registered on application (x5t for RS256, x5t#S256 for PS256).",
        ));
    }
    let rsa = rsa_public_key(cert.public_key_der()).ok_or_else(|| malformed("certificate key"))?;
    let mut rules = jsonwebtoken::Validation::new(header.alg);
    rules.validate_exp = false;
    rules.validate_aud = false;
    rules.required_spec_claims.clear();
    crate::crypto::install_jwt_provider();
    let data = jsonwebtoken::decode::<AssertionClaims>(
        assertion,
        &jsonwebtoken::DecodingKey::from_rsa_der(&rsa),
        &rules,
    )
    .map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidSignature => {
            invalid_client(700027, "Client assertion failed signature validation.")
        }
        _ => malformed(&e.to_string()),
    })?;
    let claims = data.claims;
    let token_url = shared.token_url();
    let aud_ok = match &claims.aud {
        Some(Value::String(a)) => a == &token_url,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(&token_url)),
        _ => false,
    };
    if !aud_ok {
        return Err(invalid_client(
            700023,
            &format!(
                "Client assertion audience claim does not match Realm issuer: aud must be {token_url}."
            ),
        ));
    }
    if claims.iss.as_deref() != Some(app_id) || claims.sub.as_deref() != Some(app_id) {
        return Err(invalid_client(
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter (iss and sub must both be the client id).",
        ));
    }
    let now = unix(SystemTime::now());
    let exp = claims.exp.unwrap_or(0);
    let nbf = claims.nbf.unwrap_or(now);
    if exp.saturating_add(SKEW_SECS) < now
        || nbf > now + SKEW_SECS
        || exp.saturating_sub(nbf) > MAX_ASSERTION_LIFETIME_SECS
        || exp > now + MAX_ASSERTION_LIFETIME_SECS + SKEW_SECS
    {
        return Err(invalid_client(
            700024,
            "Client assertion is not within its valid time range (exp at most 10 minutes after nbf).",
        ));
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty())
        .ok_or_else(|| malformed("no jti"))?;
    let fresh = shared.with_state(|s| {
        s.jtis
            .retain(|_, until| until.saturating_add(SKEW_SECS) >= now);
        s.jtis.insert(jti, exp).is_none()
    });
    if !fresh {
        // Entra documents no code for a replayed jti; the emulator answers as for a bad assertion.
        return Err(invalid_client(
            700027,
            "Client assertion contains a jti that was already used.",
        ));
    }
    Ok(())
}

/// The PKCS#1 `RSAPublicKey` DER inside a SubjectPublicKeyInfo.
fn rsa_public_key(spki: &[u8]) -> Option<Vec<u8>> {
    use x509_parser::prelude::FromDer;
    let (_, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki).ok()?;
    Some(info.subject_public_key.data.to_vec())
}

/// Signs `claims` with RS256 under the emulator's `kid`.
pub(crate) fn sign(shared: &Shared, claims: &Value) -> Result<String, crate::Error> {
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": shared.kid});
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = shared.key.sign_pkcs1_sha256(input.as_bytes())?;
    Ok(format!("{input}.{}", b64url(&signature)))
}

fn access_token(shared: &Shared, app_id: &str) -> Result<String, Response> {
    let now = unix(SystemTime::now());
    let tenant = &shared.config.tenant;
    let claims = json!({
        "aud": GRAPH_AUDIENCE,
        "iss": TokenVersion::V1.issuer(tenant),
        "iat": now, "nbf": now,
        "exp": now + shared.config.access_token_lifetime.as_secs(),
        "appid": app_id, "appidacr": "2", "idtyp": "app",
        "tid": tenant, "ver": "1.0",
        "oid": app_id, "sub": app_id,
        "roles": ["Subscription.ReadWrite.All"],
    });
    sign(shared, &claims).map_err(|_| {
        entra_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "temporarily_unavailable",
            50000,
            "There was an error issuing a token; try again.",
        )
    })
}

/// The app id and `exp` of a valid access token of this emulator, or why not.
pub(crate) fn check_access_token(shared: &Shared, token: &str) -> Result<(String, u64), String> {
    #[derive(Deserialize)]
    struct Claims {
        appid: String,
        exp: u64,
    }
    let (n, e) = shared.key.public_components();
    let key = jsonwebtoken::DecodingKey::from_rsa_raw_components(n, e);
    let mut rules = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    rules.set_audience(&[GRAPH_AUDIENCE]);
    rules.set_issuer(&[TokenVersion::V1.issuer(&shared.config.tenant)]);
    rules.leeway = 0;
    crate::crypto::install_jwt_provider();
    jsonwebtoken::decode::<Claims>(token, &key, &rules)
        .map(|d| (d.claims.appid, d.claims.exp))
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                "Lifetime validation failed, the token is expired.".to_owned()
            }
            _ => {
                "Access token validation failure. Invalid audience, issuer or signature.".to_owned()
            }
        })
}

/// A validation token for a delivery to `app_id`'s subscription, as Graph's change-tracking app
/// gets them: tenant-bound issuer, audience the app, `appid`/`azp` the publisher.
pub(crate) fn validation_token(shared: &Shared, app_id: &str) -> Result<String, crate::Error> {
    let version = shared.config.token_version;
    let tenant = &shared.config.tenant;
    let now = unix(SystemTime::now());
    let mut claims = json!({
        "aud": app_id,
        "iss": version.issuer(tenant),
        "iat": now, "nbf": now, "exp": now + 3600,
        "tid": tenant,
        "ver": version.as_str(),
        "idp": version.issuer(tenant),
        "oid": random_id(),
        "sub": random_id(),
    });
    claims[version.publisher_claim()] = GRAPH_CHANGE_TRACKING_APP_ID.into();
    sign(shared, &claims)
}

/// The JWKS document.
pub(crate) fn jwks(shared: &Shared) -> Value {
    let (n, e) = shared.key.public_components();
    json!({"keys": [{
        "kty": "RSA", "use": "sig", "kid": shared.kid, "x5t": shared.kid,
        "n": b64url(n), "e": b64url(e),
        "issuer": TokenVersion::V2.issuer("{tenantid}"),
    }]})
}

/// `GET /common/discovery/keys` and the other key paths.
pub(crate) async fn keys(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(jwks(&shared)).into_response()
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
pub(crate) async fn openid_configuration(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
) -> Response {
    let base = &shared.base_url;
    axum::Json(json!({
        "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "issuer": TokenVersion::V2.issuer(&shared.config.tenant),
        "tenant_region_scope": "EU",
        "cloud_instance_name": "emulator",
    }))
    .into_response()
}
