//! The token options (`--jwks`, `--jwks-url`, `--metadata-url`, `--app-id`, `--tenant`,
//! `--subscription-app`, `--only-bound-subscriptions`) of the commands that check validation
//! tokens (`decrypt`, `serve`), and what they set on the receiver.

use std::sync::Arc;

use msgraph_notify::receiver::{ReceiverBuilder, dangerous};
use msgraph_notify::token::fetch::{FetchConfig, KeyFetcher};
use msgraph_notify::token::{Jwks, SigningKeys, Validation};

use crate::{Fail, fail};

/// Where the token signing keys come from, and which tokens are accepted.
#[derive(clap::Args, Debug, Clone)]
pub struct TokenOpts {
    /// Check validation tokens against the signing keys in this JWKS file.
    #[arg(
        long,
        value_name = "FILE",
        group = "signing",
        env = "MSGRAPH_NOTIFY_JWKS"
    )]
    pub jwks: Option<String>,

    /// Fetch the token signing keys from this JWKS URL (refetched on an unknown `kid`,
    /// rate-limited).
    #[arg(
        long,
        value_name = "URL",
        group = "signing",
        env = "MSGRAPH_NOTIFY_JWKS_URL"
    )]
    pub jwks_url: Option<String>,

    /// Fetch the signing keys through this OpenID metadata URL (national clouds). Default:
    /// Microsoft's public-cloud metadata, used when neither --jwks nor --jwks-url is given.
    #[arg(
        long,
        value_name = "URL",
        group = "signing",
        env = "MSGRAPH_NOTIFY_METADATA_URL"
    )]
    pub metadata_url: Option<String>,

    /// A receiving application id: a token's `aud` must be one of them. Repeatable; required
    /// unless --insecure-skip-tokens.
    #[arg(
        long = "app-id",
        value_name = "ID",
        env = "MSGRAPH_NOTIFY_APP_ID",
        value_delimiter = ','
    )]
    pub app_ids: Vec<String>,

    /// Accept tokens only from this tenant. Repeatable. Default: any tenant.
    #[arg(
        long = "tenant",
        value_name = "ID",
        env = "MSGRAPH_NOTIFY_TENANT",
        value_delimiter = ','
    )]
    pub tenants: Vec<String>,

    /// Bind a subscription to the app that created it: its encrypted items then need a valid
    /// token issued to that app, not just one for their tenant. Repeatable; the app must be
    /// one of --app-id.
    #[arg(
        long = "subscription-app",
        value_name = "SUBSCRIPTION=APP",
        env = "MSGRAPH_NOTIFY_SUBSCRIPTION_APP",
        value_delimiter = ','
    )]
    pub subscription_apps: Vec<String>,

    /// Reject encrypted items of subscriptions not bound with --subscription-app.
    #[arg(
        long,
        requires = "subscription_apps",
        env = "MSGRAPH_NOTIFY_ONLY_BOUND_SUBSCRIPTIONS"
    )]
    pub only_bound_subscriptions: bool,
}

/// The warning printed for --insecure-skip-tokens.
const SKIP_TOKENS_WARNING: &str = "--insecure-skip-tokens: validation tokens are NOT checked; \
anyone holding your certificate can forge notifications that decrypt. Use this only to open a captured payload offline.";

impl TokenOpts {
    /// The checks of the options alone, before anything loads.
    pub fn check(&self, insecure_http: bool) -> Result<(), Fail> {
        if let Some(empty) = self.app_ids.iter().find(|a| a.trim().is_empty()) {
            return Err(fail!(
                "--app-id {empty:?}: an empty app id would accept tokens without an audience"
            ));
        }
        if let Some(empty) = self.tenants.iter().find(|t| t.trim().is_empty()) {
            return Err(fail!("--tenant {empty:?}: a tenant id may not be empty"));
        }
        for (option, url) in [
            ("--jwks-url", &self.jwks_url),
            ("--metadata-url", &self.metadata_url),
        ] {
            if let Some(url) = url {
                check_key_url(option, url, insecure_http)?;
            }
        }
        Ok(())
    }

    /// Sets the subscriptions' apps and the token checks on `builder` (or skips the checks, with
    /// a warning, for `--insecure-skip-tokens`); with fetched signing keys, also their fetcher.
    pub fn apply(
        &self,
        mut builder: ReceiverBuilder,
        insecure_skip_tokens: bool,
    ) -> Result<(ReceiverBuilder, Option<Arc<KeyFetcher>>), Fail> {
        for spec in &self.subscription_apps {
            let Some((subscription, app)) = spec
                .split_once('=')
                .filter(|(s, a)| !s.trim().is_empty() && !a.trim().is_empty())
            else {
                return Err(fail!(
                    "--subscription-app {spec:?}: expected SUBSCRIPTION=APP"
                ));
            };
            builder = builder.subscription_app(subscription, app);
        }
        if self.only_bound_subscriptions {
            builder = builder.only_bound_subscriptions();
        }
        if insecure_skip_tokens {
            crate::log::warn(SKIP_TOKENS_WARNING);
            return Ok((dangerous::skip_token_validation(builder), None));
        }
        if self.app_ids.is_empty() {
            return Err(fail!(
                "--app-id is required to check validation tokens (the id of the app that created the \
                 subscription); --insecure-skip-tokens skips the checks for offline use"
            ));
        }
        let mut validation = Validation::new(&self.app_ids);
        if !self.tenants.is_empty() {
            validation = validation.allow_tenants(&self.tenants);
        }
        builder = builder.validation(validation);
        let mut fetcher = None;
        let keys = if let Some(path) = &self.jwks {
            let jwks =
                Jwks::from_file(path).map_err(|e| fail!("JWKS {path} does not load: {e}"))?;
            if jwks.is_empty() {
                return Err(fail!("JWKS {path} holds no RSA signing key"));
            }
            SigningKeys::new(jwks)
        } else {
            let config = match (&self.jwks_url, &self.metadata_url) {
                (Some(url), _) => FetchConfig::with_jwks_url(url),
                (None, Some(url)) => FetchConfig::with_metadata_url(url),
                (None, None) => FetchConfig::default(),
            };
            let f = KeyFetcher::with_keys(config, SigningKeys::default())
                .map_err(|e| fail!("cannot set up fetching the signing keys: {e}"))?;
            let keys = f.signing_keys();
            fetcher = Some(Arc::new(f));
            keys
        };
        Ok((builder.signing_keys(keys), fetcher))
    }
}

/// Whether `url` may carry signing keys: https, or http to the loopback interface.
fn check_key_url(option: &str, url: &str, insecure_http: bool) -> Result<(), Fail> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Ok(());
    }
    if !lower.starts_with("http://") {
        return Err(fail!("{option} {url:?}: expected an https:// URL"));
    }
    if insecure_http {
        return Ok(());
    }
    // The host as the HTTP client will see it (WHATWG parsing, as reqwest's `url`: `\` is a path
    // separator, userinfo is dropped), not as a string split would.
    let parsed = url::Url::parse(url).map_err(|e| fail!("{option} {url:?}: not a URL: {e}"))?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if loopback {
        Ok(())
    } else {
        Err(fail!(
            "{option} {url:?}: plain http to another host lets anyone on the path substitute the \
             signing keys and forge validation tokens; use https, or --insecure-http to allow it"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::check_key_url;

    #[test]
    fn key_urls() {
        for ok in [
            "https://login.microsoftonline.com/common/discovery/v2.0/keys",
            "http://127.0.0.1:8080/keys",
            "http://localhost/keys",
            "http://[::1]:9/keys",
            "HTTP://127.0.0.2/keys",
        ] {
            assert!(check_key_url("--jwks-url", ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "http://keys.example/keys",
            "http://127.0.0.1.evil.example/keys",
            "http://localhost.evil.example/",
            "http://10.0.0.1/keys",
            "http://evil.example\\@127.0.0.1/keys",
            "http://evil.example%5C@127.0.0.1.evil/keys",
            "ftp://x/keys",
        ] {
            assert!(check_key_url("--jwks-url", bad, false).is_err(), "{bad}");
            assert_eq!(
                check_key_url("--jwks-url", bad, true).is_ok(),
                bad.starts_with("http:"),
                "{bad}"
            );
        }
    }
}
