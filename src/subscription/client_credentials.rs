//! The OAuth 2.0 client-credentials grant at Entra ID's token endpoint (feature `manage`), with a
//! certificate assertion (Microsoft identity platform, "Certificate credentials") or a client
//! secret.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use zeroize::Zeroizing;

use super::access_token::{AccessToken, GRAPH_SCOPE, TokenFuture, TokenSource};
use super::http::{HttpClient, service_error};
use crate::error::GraphError;
use crate::keys::{Certificate, Sign};

/// How long a client assertion is valid: Entra ID accepts at most 10 minutes.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(5 * 60);

enum Credential {
    Secret(Zeroizing<String>),
    Assertion {
        signer: Arc<dyn Sign>,
        x5t_s256: String,
    },
}

/// The OAuth 2.0 client-credentials grant at Entra ID's token endpoint,
/// `{authority}/{tenant}/oauth2/v2.0/token`, with a certificate assertion or a client secret.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use msgraph_notify::{Certificate, PrivateKey};
/// use msgraph_notify::subscription::{ClientCredentials, DEFAULT_AUTHORITY};
/// let key = PrivateKey::generate(2048)?;
/// let certificate = Certificate::self_signed(&key, "my-app", 365)?;
/// let credentials = ClientCredentials::with_certificate(
///     DEFAULT_AUTHORITY, "contoso.onmicrosoft.com", "11111111-2222-3333-4444-555555555555",
///     key, &certificate)?;
/// assert_eq!(credentials.token_url(),
///     "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token");
/// // The assertion: three base64url parts, header {"alg":"PS256","x5t#S256":…}.
/// let assertion = credentials.client_assertion(std::time::SystemTime::now())?;
/// assert_eq!(assertion.split('.').count(), 3);
/// # Ok(()) }
/// ```
pub struct ClientCredentials {
    http: HttpClient,
    token_url: String,
    client_id: String,
    scope: String,
    credential: Credential,
}

impl ClientCredentials {
    /// With a client secret.
    pub fn with_secret(
        authority: &str,
        tenant: &str,
        client_id: &str,
        secret: impl Into<String>,
    ) -> Result<Self, GraphError> {
        Self::new(
            authority,
            tenant,
            client_id,
            Credential::Secret(Zeroizing::new(secret.into())),
        )
    }

    /// With a certificate assertion signed by `key`, the private key of `certificate` (the
    /// certificate registered with the application).
    pub fn with_certificate(
        authority: &str,
        tenant: &str,
        client_id: &str,
        key: impl Sign + 'static,
        certificate: &Certificate,
    ) -> Result<Self, GraphError> {
        use sha2::Digest;
        let x5t_s256 = crate::crypto::b64url_encode(&sha2::Sha256::digest(certificate.der()));
        Self::new(
            authority,
            tenant,
            client_id,
            Credential::Assertion {
                signer: Arc::new(key),
                x5t_s256,
            },
        )
    }

    fn new(
        authority: &str,
        tenant: &str,
        client_id: &str,
        credential: Credential,
    ) -> Result<Self, GraphError> {
        let path_safe = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        };
        if !path_safe(tenant) {
            return Err(GraphError::Response {
                url: authority.to_owned(),
                status: 0,
                reason: format!(
                    "the tenant {tenant:?} is not a tenant id or domain name (letters, digits, '-', '.', '_')"
                ),
            });
        }
        Ok(ClientCredentials {
            http: HttpClient::new()?,
            token_url: format!(
                "{}/{tenant}/oauth2/v2.0/token",
                authority.trim_end_matches('/')
            ),
            client_id: client_id.to_owned(),
            scope: GRAPH_SCOPE.to_owned(),
            credential,
        })
    }

    /// Another scope than [`GRAPH_SCOPE`] (a national cloud's Graph, say).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// The token endpoint's URL, which is also the assertion's `aud`.
    pub fn token_url(&self) -> &str {
        &self.token_url
    }

    /// The client assertion made at `now` (a certificate credential only): a JWT with header
    /// `{"alg":"PS256","typ":"JWT","x5t#S256":…}` and claims `aud`, `iss`, `sub`, `jti`, `nbf`,
    /// `iat`, `exp` (5 minutes on).
    pub fn client_assertion(&self, now: SystemTime) -> Result<String, GraphError> {
        let Credential::Assertion { signer, x5t_s256 } = &self.credential else {
            return Err(GraphError::Signing {
                reason: "these credentials are a client secret, not a certificate".to_owned(),
                transient: false,
            });
        };
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256);
        header.x5t_s256 = Some(x5t_s256.clone());
        let iat = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = serde_json::json!({
            "aud": self.token_url,
            "iss": self.client_id,
            "sub": self.client_id,
            "jti": random_id(),
            "nbf": iat,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME.as_secs(),
        });
        let message = format!("{}.{}", b64_json(&header)?, b64_json(&claims)?);
        let signature =
            signer
                .sign_pss_sha256(message.as_bytes())
                .map_err(|e| GraphError::Signing {
                    transient: e.is_transient(),
                    reason: e.to_string(),
                })?;
        Ok(format!(
            "{message}.{}",
            crate::crypto::b64url_encode(&signature)
        ))
    }

    async fn request_token(&self) -> Result<AccessToken, GraphError> {
        let assertion = match &self.credential {
            Credential::Secret(_) => None,
            Credential::Assertion { .. } => Some(self.client_assertion(SystemTime::now())?),
        };
        let body = Zeroizing::new({
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &self.client_id)
                .append_pair("scope", &self.scope);
            if let Credential::Secret(secret) = &self.credential {
                form.append_pair("client_secret", secret);
            }
            if let Some(assertion) = &assertion {
                form.append_pair(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                )
                .append_pair("client_assertion", assertion);
            }
            form.finish()
        });
        let answer = self
            .http
            .send(
                self.http
                    .inner()
                    .post(&self.token_url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.as_bytes().to_vec()),
                &self.token_url,
            )
            .await?;
        if !(200..300).contains(&answer.status) {
            return Err(service_error("Entra ID", &self.token_url, &answer));
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: String,
            expires_in: u64,
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&answer.body).map_err(|e| GraphError::Response {
                url: self.token_url.clone(),
                status: answer.status,
                reason: format!("not Entra ID's token response: {e}"),
            })?;
        Ok(AccessToken {
            secret: Zeroizing::new(parsed.access_token),
            expires_at: Instant::now() + Duration::from_secs(parsed.expires_in),
        })
    }
}

impl TokenSource for ClientCredentials {
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(self.request_token())
    }

    fn describe(&self) -> String {
        let how = match &self.credential {
            Credential::Secret(_) => "a client secret".to_owned(),
            Credential::Assertion { signer, .. } => {
                format!("a certificate assertion signed by {}", signer.describe())
            }
        };
        format!(
            "client credentials of {} at {} with {how}",
            self.client_id, self.token_url
        )
    }
}

/// 128 random bits as 32 hex digits: a client assertion's `jti`.
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    // getrandom fails only where the OS has no random source at all; a zero jti is then
    // refused by Entra ID as reused, which names the problem.
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// base64url of a JSON part of the assertion.
fn b64_json<T: serde::Serialize>(value: &T) -> Result<String, GraphError> {
    let json = serde_json::to_vec(value).map_err(|e| GraphError::Signing {
        reason: format!("cannot serialise the assertion: {e}"),
        transient: false,
    })?;
    Ok(crate::crypto::b64url_encode(&json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subscription::DEFAULT_AUTHORITY;

    /// The assertion verifies as PS256 under the certificate's key, names the certificate by
    /// its SHA-256 thumbprint and carries the claims Entra ID checks.
    #[cfg(feature = "aws-lc")]
    #[test]
    fn client_assertion_is_a_ps256_jwt_entra_accepts() {
        use crate::{Certificate, PrivateKey};
        use sha2::Digest;
        crate::crypto::install_jwt_provider();
        let key = PrivateKey::generate(2048).unwrap();
        let public = key.public_key_pkcs1_der();
        let certificate = Certificate::self_signed(&key, "app", 30).unwrap();
        let credentials = ClientCredentials::with_certificate(
            DEFAULT_AUTHORITY,
            "contoso",
            "client-1",
            key,
            &certificate,
        )
        .unwrap();
        let now = SystemTime::now();
        let assertion = credentials.client_assertion(now).unwrap();
        let header = jsonwebtoken::decode_header(&assertion).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::PS256);
        assert_eq!(
            header.x5t_s256.as_deref(),
            Some(crate::crypto::b64url_encode(&sha2::Sha256::digest(certificate.der())).as_str())
        );
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::PS256);
        validation.set_audience(&[credentials.token_url()]);
        validation.set_issuer(&["client-1"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(
            &assertion,
            &jsonwebtoken::DecodingKey::from_rsa_der(&public),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(claims["sub"], "client-1");
        let (iat, exp) = (
            claims["iat"].as_u64().unwrap(),
            claims["exp"].as_u64().unwrap(),
        );
        assert!(exp > iat && exp - iat <= 600);
        assert_eq!(claims["jti"].as_str().unwrap().len(), 32);
        let other = credentials.client_assertion(now).unwrap();
        assert_ne!(
            jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(&other)
                .unwrap()
                .claims["jti"],
            claims["jti"],
            "a jti is never reused"
        );
        // A tampered assertion does not verify.
        let mut forged = assertion.into_bytes();
        let at = forged.len() - 5;
        forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
        assert!(
            jsonwebtoken::decode::<serde_json::Value>(
                std::str::from_utf8(&forged).unwrap(),
                &jsonwebtoken::DecodingKey::from_rsa_der(&public),
                &validation,
            )
            .is_err()
        );
    }
}
