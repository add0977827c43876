//! `subscription`: the JSON body of `POST /subscriptions` for change notifications with resource
//! data, checked against what Graph accepts for the resource.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use msgraph_notify::Certificate;
use msgraph_notify::subscription::SubscriptionRequest;
use zeroize::Zeroizing;

use crate::{Fail, Secret, fail, read_input};

/// Print the JSON body of `POST /subscriptions` for a subscription with resource data.
///
/// The body has `includeResourceData: true`, the certificate as `encryptionCertificate` (base64
/// DER), and `expirationDateTime` at the resource's longest lifetime (or `--minutes`), in the UTC
/// format Graph's examples use. What Graph would refuse (an unknown resource, a change type the
/// resource does not support, a lifetime over its maximum, over one hour without
/// `--lifecycle-url` where Graph requires one, an Outlook path without `$select`, a non-HTTPS URL)
/// is refused here with the reason, exit code 2.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    msgraph-notify subscription --resource /communications/presences/{user-id} \\\n    \
    --notification-url https://receiver.example/notify --cert keys/cert.pem --cert-id receiver-2026\n  \
    msgraph-notify subscription --resource /chats/getAllMessages --change-type created,updated \\\n    \
    --notification-url https://receiver.example/notify --lifecycle-url https://receiver.example/lifecycle \\\n    \
    --cert keys/cert.pem --cert-id receiver-2026 --client-state-file secret.txt")]
pub struct Args {
    /// The resource path to subscribe to, e.g. /chats/getAllMessages or
    /// /communications/presences/{id}.
    #[arg(long, value_name = "PATH")]
    resource: String,

    /// The HTTPS URL Graph posts notifications to (notificationUrl).
    #[arg(long, value_name = "URL")]
    notification_url: String,

    /// The HTTPS URL Graph posts lifecycle notifications to (lifecycleNotificationUrl); required
    /// by Teams and Copilot resources for lifetimes over 60 minutes.
    #[arg(long, value_name = "URL")]
    lifecycle_url: Option<String>,

    /// The certificate (PEM or DER) Graph encrypts resource data for.
    #[arg(long, value_name = "FILE")]
    cert: String,

    /// Your id for the certificate (encryptionCertificateId, ≤ 128 characters).
    #[arg(long, value_name = "ID")]
    cert_id: String,

    /// Comma-separated change types; default: all the resource supports.
    #[arg(long, value_name = "TYPES", value_delimiter = ',')]
    change_type: Vec<String>,

    /// A file holding the clientState secret (≤ 128 characters), read as `serve`, `decrypt`
    /// and `consume` read theirs: secrets are separated by line breaks and commas, white space
    /// around them is dropped, and this file must hold exactly one (so a clientState has no
    /// comma or line break). Read from a file so the secret is not in the process list.
    #[arg(long, value_name = "FILE")]
    client_state_file: Option<String>,

    /// The lifetime in minutes; default: the resource's maximum.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    minutes: Option<u64>,
}

pub fn run(args: Args) -> Result<ExitCode, Fail> {
    let cert_bytes = read_input(&args.cert)?;
    let cert = Certificate::load(&cert_bytes).map_err(|e| fail!("{}: {e}", args.cert))?;
    let mut request =
        SubscriptionRequest::new(&args.resource, &args.notification_url, &cert, &args.cert_id)?;
    if let Some(url) = &args.lifecycle_url {
        request = request.lifecycle_url(url)?;
    }
    if !args.change_type.is_empty() {
        request = request.change_types(&args.change_type)?;
    }
    if let Some(path) = &args.client_state_file {
        let secret = client_state(path)?;
        request = request.client_state(secret.expose())?;
    }
    if let Some(minutes) = args.minutes {
        let seconds = minutes
            .checked_mul(60)
            .ok_or_else(|| fail!("--minutes {minutes} is too large"))?;
        request = request.lifetime(Duration::from_secs(seconds));
    }
    let body = request.create_body(SystemTime::now())?;
    let text = Zeroizing::new(
        serde_json::to_string_pretty(&body).map_err(|e| fail!("cannot print the body: {e}"))?,
    );
    outln!("{}", text.as_str());
    Ok(ExitCode::SUCCESS)
}

/// The clientState of `--client-state-file`, read by the receiving side's rule
/// ([`crate::secret::split_list`]): a file that rule reads as several secrets, or as none, is
/// refused, since every notification of the subscription would then be rejected.
fn client_state(path: &str) -> Result<Secret, Fail> {
    let mut secrets = crate::secret::list_file("--client-state-file", path)?;
    if secrets.len() > 1 {
        return Err(fail!(
            "--client-state-file {path}: holds {} secrets, as serve, decrypt and consume read it \
             (line breaks and commas separate secrets), and a subscription has one clientState. \
             Give a file with only this subscription's secret and no comma; during rotation the \
             receiver takes both files (--client-state-file OLD --client-state-file NEW)",
            secrets.len()
        ));
    }
    secrets
        .pop()
        .ok_or_else(|| fail!("--client-state-file {path} holds no secret"))
}
