//! Validation-token checks: v1.0 and v2.0 accepted, each failure rejected with its own reason.
//! Some tokens come from `jsonwebtoken`'s encoder rather than the crate's test kit, so the kit and
//! the checker cannot share a mistake.

use std::sync::OnceLock;
use std::time::Duration;

use msgraph_notify::testing::{TokenFlaw, TokenIssuer};
use msgraph_notify::token::{
    GRAPH_CHANGE_TRACKING_APP_ID, Jwks, SigningKeys, TokenError, TokenValidator, TokenVersion,
    Validation,
};
use serde_json::json;
use test_support::issuer;

const APP: &str = "7d3b5f2a-0000-4000-8000-00000000a11e";
const TENANT: &str = "8afd02d6-ebdd-4270-a515-c749898ea5c5";

fn validator() -> TokenValidator {
    TokenValidator::new(Validation::new([APP]), issuer().signing_keys())
}

fn check(token: &str) -> Result<(), TokenError> {
    validator().validate(token).map(|_| ())
}

#[test]
fn v1_and_v2_tokens_are_accepted() {
    for version in [TokenVersion::V1, TokenVersion::V2] {
        let valid = validator()
            .validate(&issuer().token(version, APP, TENANT))
            .unwrap();
        assert_eq!(valid.tenant_id, TENANT);
        assert_eq!(valid.app_id, APP);
        assert_eq!(valid.version, version);
    }
}

#[test]
fn several_apps_may_share_an_endpoint() {
    let v = TokenValidator::new(Validation::new(["other-app", APP]), issuer().signing_keys());
    assert!(
        v.validate(&issuer().token(TokenVersion::V2, APP, TENANT))
            .is_ok()
    );
}

#[test]
fn each_flaw_has_its_own_reason() {
    use TokenFlaw::*;
    for version in [TokenVersion::V1, TokenVersion::V2] {
        let t = |flaw| issuer().flawed_token(version, APP, TENANT, flaw);
        assert_eq!(check(&t(Expired)), Err(TokenError::Expired));
        assert_eq!(check(&t(NotYetValid)), Err(TokenError::NotYetValid));
        assert!(matches!(
            check(&t(WrongAudience)),
            Err(TokenError::Audience(a)) if a == "00000000-0000-0000-0000-000000000bad"
        ));
        assert!(
            matches!(check(&t(WrongPublisher)), Err(TokenError::Publisher(p)) if p.starts_with("11111111"))
        );
        assert!(
            matches!(check(&t(PublisherInOtherVersionsClaim)), Err(TokenError::Publisher(p)) if p.contains(version.publisher_claim())),
            "{version:?}"
        );
        assert!(
            matches!(check(&t(IssuerContainingTenant)), Err(TokenError::Issuer(i)) if i.contains(TENANT))
        );
        assert!(matches!(
            check(&t(OtherTenantsIssuer)),
            Err(TokenError::Issuer(_))
        ));
        assert_eq!(
            check(&t(AlgNone)),
            Err(TokenError::Algorithm("none".into()))
        );
        assert_eq!(
            check(&t(Hs256WithPublicKey)),
            Err(TokenError::Algorithm("HS256".into()))
        );
        assert_eq!(
            check(&t(UnknownKid)),
            Err(TokenError::UnknownKey("unknown-kid".into()))
        );
        assert_eq!(check(&t(ForeignSignature)), Err(TokenError::Signature));
        assert_eq!(
            check(&t(UnknownVersion)),
            Err(TokenError::Version("3.0".into()))
        );
    }
}

#[test]
fn a_v1_token_with_only_azp_is_rejected() {
    // Built by hand: ver 1.0, publisher in azp, no appid.
    let mut claims = issuer().claims(TokenVersion::V1, APP, TENANT);
    claims.as_object_mut().unwrap().remove("appid");
    claims["azp"] = GRAPH_CHANGE_TRACKING_APP_ID.into();
    let err = check(&issuer().sign(&claims)).unwrap_err();
    assert_eq!(err, TokenError::Publisher("<no appid claim>".into()));
}

#[test]
fn leeway_is_applied_and_configurable() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = issuer().claims(TokenVersion::V2, APP, TENANT);
    claims["exp"] = (now - 120).into(); // two minutes ago: inside the default 5-minute leeway
    let token = issuer().sign(&claims);
    assert!(check(&token).is_ok());
    let strict = TokenValidator::new(
        Validation::new([APP]).leeway(Duration::from_secs(30)),
        issuer().signing_keys(),
    );
    assert_eq!(strict.validate(&token).unwrap_err(), TokenError::Expired);
}

#[test]
fn tenant_allow_list() {
    let v = TokenValidator::new(
        Validation::new([APP]).allow_tenants(["only-this-tenant"]),
        issuer().signing_keys(),
    );
    let err = v
        .validate(&issuer().token(TokenVersion::V2, APP, TENANT))
        .unwrap_err();
    assert_eq!(err, TokenError::Tenant(TENANT.into()));
    assert!(
        v.validate(&issuer().token(TokenVersion::V2, APP, "only-this-tenant"))
            .is_ok()
    );
}

#[test]
fn garbage_strings_are_malformed() {
    for garbage in [
        "",
        "abc",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "....",
        "eyJhbGciOiJSUzI1NiJ9",
        "eyJhbGciOiJSUzI1NiJ9.eyJ9.x",
        "!!!.???.***",
        "\u{0}\u{1}.\u{2}.\u{3}",
    ] {
        match check(garbage) {
            Err(TokenError::Malformed(_)) | Err(TokenError::Algorithm(_)) => {}
            other => panic!("{garbage:?}: {other:?}"),
        }
    }
    // A header without kid.
    let t = "eyJhbGciOiJSUzI1NiJ9.e30.AAAA";
    assert!(matches!(check(t), Err(TokenError::Malformed(m)) if m.contains("kid")));
}

/// The independent encoder: jsonwebtoken signs with the issuer key's PKCS#1 DER.
fn jsonwebtoken_encode(
    claims: &serde_json::Value,
    kid: &str,
    key: &msgraph_notify::PrivateKey,
) -> String {
    let _ = validator(); // installs jsonwebtoken's crypto provider
    let der = key.to_pkcs8_der();
    let info = pkcs8::PrivateKeyInfoRef::try_from(der.as_slice()).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let encoding = jsonwebtoken::EncodingKey::from_rsa_der(info.private_key.as_bytes());
    jsonwebtoken::encode(&header, claims, &encoding).unwrap()
}

fn external_key() -> &'static (msgraph_notify::PrivateKey, SigningKeys) {
    static K: OnceLock<(msgraph_notify::PrivateKey, SigningKeys)> = OnceLock::new();
    K.get_or_init(|| {
        let key = msgraph_notify::PrivateKey::generate(2048).unwrap();
        // The JWKS is written by hand from the public key (n, e), as the identity platform would.
        let pkcs1 = key.public_key_pkcs1_der();
        let public = pkcs1::RsaPublicKey::<pkcs1::UintRef<'_>>::try_from(pkcs1.as_slice()).unwrap();
        let b64 = |b: &[u8]| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
        };
        let jwks = json!({"keys": [
            {"kty": "EC", "kid": "ec-key", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "RSA", "use": "sig", "kid": "external", "x5t": "ignored",
             "n": b64(public.modulus.as_bytes()), "e": b64(public.public_exponent.as_bytes())}
        ]});
        let jwks = Jwks::from_json(jwks.to_string().as_bytes()).unwrap();
        assert_eq!(jwks.kids(), ["external"]);
        (key, SigningKeys::new(jwks))
    })
}

#[test]
fn tokens_from_an_independent_encoder() {
    let (key, keys) = external_key();
    let v = TokenValidator::new(Validation::new([APP]), keys.clone());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // The v1.0 claims of the Graph docs' example, with live times and our tenant and app.
    let v1 = json!({
        "aud": APP, "iss": format!("https://sts.windows.net/{TENANT}/"),
        "iat": now - 10, "nbf": now - 10, "exp": now + 3600,
        "aio": "E2ZgYGjnuFglnX7mtjJzwR5lYaWvAA==", "appid": GRAPH_CHANGE_TRACKING_APP_ID,
        "appidacr": "2", "idp": format!("https://sts.windows.net/{TENANT}/"),
        "oid": "1e7d79fa-7893-4d50-bdde-164260d9c5ba", "sub": "1e7d79fa-7893-4d50-bdde-164260d9c5ba",
        "tid": TENANT, "uti": "z4A1V2HEf06G9w0IK8uJAA", "ver": "1.0"
    });
    let token = jsonwebtoken_encode(&v1, "external", key);
    let valid = v.validate(&token).unwrap();
    assert_eq!(
        (valid.version, valid.tenant_id.as_str()),
        (TokenVersion::V1, TENANT)
    );
    let v2 = json!({
        "aud": APP, "iss": format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
        "iat": now - 10, "nbf": now - 10, "exp": now + 3600,
        "azp": GRAPH_CHANGE_TRACKING_APP_ID, "azpacr": "2", "tid": TENANT, "ver": "2.0"
    });
    assert_eq!(
        v.validate(&jsonwebtoken_encode(&v2, "external", key))
            .unwrap()
            .version,
        TokenVersion::V2
    );
    // The same claims with the v1 issuer under ver 2.0 fail on the issuer.
    let mut mixed = v2.clone();
    mixed["iss"] = format!("https://sts.windows.net/{TENANT}/").into();
    assert!(matches!(
        v.validate(&jsonwebtoken_encode(&mixed, "external", key)),
        Err(TokenError::Issuer(_))
    ));
    // Signed by the external key but naming the kit's kid: wrong signature.
    let forged = jsonwebtoken_encode(&v2, issuer().kid(), key);
    assert_eq!(
        validator().validate(&forged).unwrap_err(),
        TokenError::Signature
    );
}

#[test]
fn the_kit_token_verifies_under_an_independent_jwks_parse() {
    // The kit's JWKS JSON, parsed, verifies the kit's tokens; another kit's does not.
    let jwks = Jwks::from_json(issuer().jwks_json().as_bytes()).unwrap();
    let v = TokenValidator::new(Validation::new([APP]), SigningKeys::new(jwks));
    assert!(
        v.validate(&issuer().token(TokenVersion::V1, APP, TENANT))
            .is_ok()
    );
    let stranger = TokenIssuer::new().unwrap();
    assert!(matches!(
        v.validate(&stranger.token(TokenVersion::V1, APP, TENANT)),
        Err(TokenError::UnknownKey(_))
    ));
}

/// The classic confusion attack with jsonwebtoken's own HMAC encoder. Only with aws-lc: the
/// crate's rust-crypto provider signs RS256 alone, and the kit's `TokenFlaw::Hs256WithPublicKey`
/// covers both backends.
#[cfg(feature = "aws-lc")]
#[test]
fn hs256_signed_with_the_jwks_modulus_bytes_is_refused() {
    let _ = validator();
    let claims = issuer().claims(TokenVersion::V2, APP, TENANT);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(issuer().kid().to_owned());
    let secret = issuer().jwks_json();
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    assert_eq!(check(&token), Err(TokenError::Algorithm("HS256".into())));
}

#[test]
fn jwks_documents_that_are_not_jwks_are_errors() {
    let bad_modulus: &[u8] =
        b"{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"k\",\"n\":\"!!\",\"e\":\"AQAB\"}]}";
    for &bad in test_support::NOT_THE_DOCUMENT.iter().chain([&bad_modulus]) {
        assert!(
            Jwks::from_json(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    assert!(Jwks::from_json(b"{\"keys\":[]}").unwrap().is_empty());
}

/// The crate installs jsonwebtoken's process-wide crypto provider; on either backend its JWK
/// helpers answer (jsonwebtoken's placeholder for custom providers panics instead).
#[test]
fn the_installed_provider_supports_jwk_helpers() {
    let _ = validator(); // installs the provider
    let key = msgraph_notify::PrivateKey::generate(2048).unwrap();
    let der = key.to_pkcs8_der();
    let info = pkcs8::PrivateKeyInfoRef::try_from(der.as_slice()).unwrap();
    let encoding = jsonwebtoken::EncodingKey::from_rsa_der(info.private_key.as_bytes());
    let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, jsonwebtoken::Algorithm::RS256)
        .unwrap();
    let pkcs1 = key.public_key_pkcs1_der();
    let public = pkcs1::RsaPublicKey::<pkcs1::UintRef<'_>>::try_from(pkcs1.as_slice()).unwrap();
    let b64 = |b: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    };
    let jsonwebtoken::jwk::AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
        panic!("not an RSA JWK: {jwk:?}");
    };
    assert_eq!(rsa.n, b64(public.modulus.as_bytes()));
    assert_eq!(rsa.e, b64(public.public_exponent.as_bytes()));
    // The RFC 7638 thumbprint goes through the provider's digest.
    let thumbprint = jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256);
    assert_eq!(thumbprint.unwrap().len(), 43);
    // Keys the provider cannot handle are errors, not panics.
    let not_a_key = jsonwebtoken::EncodingKey::from_rsa_der(b"not a key");
    assert!(
        jsonwebtoken::jwk::Jwk::from_encoding_key(&not_a_key, jsonwebtoken::Algorithm::RS256)
            .is_err()
    );
}
