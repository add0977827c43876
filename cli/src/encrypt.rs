//! `encrypt`: wrap resource JSON into a changeNotificationCollection exactly as Graph would.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use msgraph_notify::model::ChangeType;
use msgraph_notify::testing::{GraphEncryptor, NotificationSpec, TokenIssuer};
use msgraph_notify::token::TokenVersion;
use msgraph_notify::{Certificate, PrivateKey};
use serde_json::{Value, json};

use crate::{Fail, fail};

/// The tenant used when --tenant is not given.
pub const DEFAULT_TENANT: &str = "6a1f0c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b";

/// Wrap resource JSON into a notification collection exactly as Graph would (for fixtures and
/// tests).
///
/// The input is one resource object, or an array of them (one notification each). Each gets a
/// fresh AES-256 key wrapped with RSA-OAEP-SHA1 for --cert, AES-CBC and an HMAC-SHA256 signature.
/// With --token-key, a validation token signed with that key is added, as the Microsoft identity
/// platform would sign it (write the matching JWKS with --jwks-out).
#[derive(clap::Args, Debug)]
#[command(after_help = "Example:\n  \
    echo '{\"@odata.type\":\"#microsoft.graph.presence\",\"id\":\"u1\",\"availability\":\"Busy\"}' \\\n    \
    | msgraph-notify encrypt --cert keys/cert.pem --cert-id receiver-2026 \\\n        \
    --token-key issuer.pem --app-id $APP_ID --jwks-out jwks.json - > body.json\n  \
    msgraph-notify decrypt --key keys/key.pem --jwks jwks.json --app-id $APP_ID body.json")]
pub struct Args {
    /// The subscriber's certificate (PEM or DER) to encrypt for.
    #[arg(long, value_name = "FILE")]
    cert: String,

    /// The encryptionCertificateId to put in each item.
    #[arg(long, value_name = "ID")]
    cert_id: String,

    /// The item's tenantId.
    #[arg(long, value_name = "T", default_value = DEFAULT_TENANT)]
    tenant: String,

    /// The item's resource path. Default: derived from the resource (presence, chat message),
    /// else `resource`.
    #[arg(long, value_name = "R")]
    resource: Option<String>,

    /// The item's changeType.
    #[arg(long, value_name = "C", default_value = "updated")]
    change_type: String,

    /// The item's subscriptionId.
    #[arg(long, value_name = "ID")]
    subscription_id: Option<String>,

    /// The item's clientState.
    #[arg(long, value_name = "S")]
    client_state: Option<String>,

    /// Sign a validation token with this RSA private key (any format --key of decrypt takes)
    /// and add it to validationTokens.
    #[arg(long, value_name = "FILE")]
    token_key: Option<String>,

    /// The `kid` of --token-key.
    #[arg(
        long,
        value_name = "KID",
        default_value = "msgraph-notify-test",
        requires = "token_key"
    )]
    token_kid: String,

    /// The token's audience: the receiving app id. Required with --token-key.
    #[arg(long, value_name = "ID", requires = "token_key")]
    app_id: Option<String>,

    /// The token's version: 1 (issuer sts.windows.net, `appid`) or 2 (issuer
    /// login.microsoftonline.com, `azp`).
    #[arg(long, value_name = "1|2", default_value = "2", value_parser = ["1", "2"], requires = "token_key")]
    token_version: String,

    /// How long the token is valid, in minutes from now (Graph's last an hour). A fixture meant
    /// for `decrypt` days later needs a longer one; the receiver refuses an expired token.
    #[arg(long, value_name = "N", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=5_256_000), requires = "token_key")]
    token_minutes: u64,

    /// Password of an encrypted --token-key.
    #[arg(long, value_name = "P", requires = "token_key")]
    token_key_password: Option<crate::Secret>,

    /// Write the JWKS of --token-key to this file (for `decrypt --jwks` or `serve --jwks`).
    #[arg(long, value_name = "FILE", requires = "token_key")]
    jwks_out: Option<String>,

    /// The resource JSON: a file, or `-` for standard input.
    #[arg(value_name = "FILE|-")]
    input: String,
}

pub fn run(args: Args) -> Result<ExitCode, Fail> {
    let cert_bytes =
        std::fs::read(&args.cert).map_err(|e| fail!("cannot read {}: {e}", args.cert))?;
    let cert = Certificate::load(&cert_bytes)
        .map_err(|e| fail!("certificate {} does not load: {e}", args.cert))?;
    let input = crate::read_input(&args.input)?;
    let resources: Vec<Value> = match serde_json::from_slice(&input) {
        Ok(Value::Array(items)) => items,
        Ok(value @ Value::Object(_)) => vec![value],
        Ok(_) => {
            return Err(fail!(
                "{}: expected a JSON object or an array of objects",
                args.input
            ));
        }
        Err(e) => return Err(fail!("{}: not JSON: {e}", args.input)),
    };
    if resources.is_empty() {
        return Err(fail!("{}: the array holds no resource", args.input));
    }

    let encryptor = GraphEncryptor::new(&cert, &args.cert_id);
    let mut items = Vec::with_capacity(resources.len());
    for resource in &resources {
        let mut spec = NotificationSpec::new(
            &args.tenant,
            &args
                .resource
                .clone()
                .unwrap_or_else(|| default_resource_path(resource)),
        );
        spec.change_type = ChangeType::from(args.change_type.as_str());
        spec.client_state = args.client_state.clone();
        if let Some(id) = &args.subscription_id {
            spec.subscription_id = id.clone();
        }
        let item = encryptor
            .notification(resource, &spec)
            .map_err(|e| fail!("encryption failed: {e}"))?;
        items.push(serde_json::to_value(item).map_err(|e| fail!("{e}"))?);
    }

    let mut body = json!({ "value": items });
    if let Some(path) = &args.token_key {
        let app_id = args
            .app_id
            .as_deref()
            .ok_or_else(|| fail!("--token-key needs --app-id (the token's audience)"))?;
        let bytes = zeroize::Zeroizing::new(
            std::fs::read(path).map_err(|e| fail!("cannot read {path}: {e}"))?,
        );
        let (key, _) = PrivateKey::load(
            &bytes,
            args.token_key_password.as_ref().map(crate::Secret::expose),
        )
        .map_err(|e| fail!("token key {path} does not load: {e}"))?;
        let issuer = TokenIssuer::from_key(key, &args.token_kid);
        let version = if args.token_version == "1" {
            TokenVersion::V1
        } else {
            TokenVersion::V2
        };
        let mut claims = issuer.claims(version, app_id, &args.tenant);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| fail!("the clock is before 1970: {e}"))?
            .as_secs();
        claims["exp"] = now.saturating_add(args.token_minutes * 60).into();
        body["validationTokens"] = json!([issuer.sign(&claims)]);
        if let Some(out) = &args.jwks_out {
            std::fs::write(out, issuer.jwks_json())
                .map_err(|e| fail!("cannot write {out}: {e}"))?;
        }
    }
    let text = serde_json::to_string_pretty(&body).map_err(|e| fail!("{e}"))?;
    outln!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// A plausible resource path for a resource: Graph's paths for presence and chat messages.
fn default_resource_path(resource: &Value) -> String {
    let text = |k: &str| resource.get(k).and_then(Value::as_str);
    let kind = text("@odata.type").unwrap_or("").to_ascii_lowercase();
    let id = text("id").unwrap_or("unknown");
    if kind.ends_with(".presence") {
        format!("communications/presences/{id}")
    } else if kind.ends_with(".callevent") {
        "communications/onlineMeetings/meetingCallEvents".into()
    } else if let Some(chat) = text("chatId") {
        format!("chats('{chat}')/messages('{id}')")
    } else {
        "resource".into()
    }
}
