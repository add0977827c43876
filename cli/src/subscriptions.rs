//! `subscriptions`: Graph's subscriptions of the application, for operators and cron jobs —
//! `list`, `ensure` (the keeper's one pass: create what is missing, renew what is due, adopt what
//! the state file names), `renew` and `delete`. Every answer is printed as JSON, one line each.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use msgraph_notify::subscription::{
    DesiredSubscription, FileState, GraphClient, Keeper, KeeperEvent, ResourceLimits,
};

use crate::opts::{ClientStateOpts, GraphOpts, KeyOpts};
use crate::{Fail, fail};

/// Manage the application's Graph subscriptions: list, ensure, renew, delete.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    msgraph-notify subscriptions list --tenant $TENANT_ID --client-id $APP_ID --client-credential app.pem\n  \
    msgraph-notify subscriptions ensure --subscriptions subscriptions.json --subscription-state state.json \\\n    \
    --key receiver-2026=keys/key.pem --client-state-file client-state.txt \\\n    \
    --tenant $TENANT_ID --client-id $APP_ID --client-credential app.pem\n  \
    msgraph-notify subscriptions renew --id 7f105c7d-2dc5-4530-97cd-4e7ae6534c07 --graph-token-command 'az account get-access-token --resource https://graph.microsoft.com --query accessToken -o tsv'")]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

/// The application whose subscriptions these are.
#[derive(clap::Args, Debug)]
struct App {
    /// The tenant (directory) id or domain, for --client-credential and --client-secret-file.
    #[arg(long, value_name = "ID", env = "MSGRAPH_NOTIFY_TENANT")]
    tenant: Option<String>,

    /// The application (client) id, for --client-credential and --client-secret-file.
    #[arg(long, value_name = "ID", env = "MSGRAPH_NOTIFY_CLIENT_ID")]
    client_id: Option<String>,

    #[command(flatten)]
    graph: GraphOpts,
}

impl App {
    fn client(&self) -> Result<GraphClient, Fail> {
        self.graph
            .client(self.tenant.as_deref(), self.client_id.as_deref())
    }
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Print every subscription of the application (GET /subscriptions), one JSON line each.
    List {
        #[command(flatten)]
        app: App,
    },
    /// One pass of the keeper: adopt the subscriptions the state file names, create the desired
    /// ones that are missing, renew those with a quarter of their lifetime left, patch a changed
    /// certificate; print what was done, one JSON line each (exit 1 if anything failed).
    Ensure {
        /// The desired subscriptions: a JSON array of objects with Graph's property names
        /// (resource, changeType, notificationUrl, lifecycleNotificationUrl,
        /// includeResourceData, encryptionCertificateId, expirationMinutes).
        #[arg(long, value_name = "FILE")]
        subscriptions: String,
        /// Where the ids of the kept subscriptions are remembered (replaced atomically), so the
        /// next run adopts them instead of creating duplicates.
        #[arg(long, value_name = "FILE")]
        subscription_state: String,
        #[command(flatten)]
        keys: KeyOpts,
        #[command(flatten)]
        client_state: ClientStateOpts,
        #[command(flatten)]
        app: App,
    },
    /// Renew one subscription (PATCH expirationDateTime) and print Graph's answer.
    Renew {
        /// The subscription id.
        #[arg(long, value_name = "ID")]
        id: String,
        /// The new lifetime in minutes; default: the resource's longest.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        minutes: Option<u64>,
        #[command(flatten)]
        app: App,
    },
    /// Delete subscriptions (DELETE /subscriptions/{id}).
    Delete {
        /// The subscription ids.
        #[arg(long = "id", value_name = "ID", required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        app: App,
    },
}

pub fn run(args: Args) -> Result<ExitCode, Fail> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        match args.action {
            Action::List { app } => list(&app.client()?).await,
            Action::Ensure {
                subscriptions,
                subscription_state,
                keys,
                client_state,
                app,
            } => {
                ensure(
                    &subscriptions,
                    &subscription_state,
                    &keys,
                    &client_state,
                    &app,
                )
                .await
            }
            Action::Renew { id, minutes, app } => renew(&app.client()?, &id, minutes).await,
            Action::Delete { ids, app } => {
                let client = app.client()?;
                for id in &ids {
                    client.delete(id).await.map_err(|e| fail!("{id}: {e}"))?;
                    print_json(serde_json::to_string(&serde_json::json!({"deleted": id})));
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// Prints a serialised answer, one line.
fn print_json(line: serde_json::Result<String>) {
    match line {
        Ok(line) => outln!("{line}"),
        Err(e) => errln!("msgraph-notify: cannot print an answer: {e}"),
    }
}

async fn list(client: &GraphClient) -> Result<ExitCode, Fail> {
    for subscription in client.list().await.map_err(|e| fail!("{e}"))? {
        print_json(serde_json::to_string(&subscription));
    }
    Ok(ExitCode::SUCCESS)
}

async fn renew(client: &GraphClient, id: &str, minutes: Option<u64>) -> Result<ExitCode, Fail> {
    let lifetime = match minutes {
        Some(m) => Duration::from_secs(m.saturating_mul(60)),
        None => {
            let current = client.get(id).await.map_err(|e| fail!("{id}: {e}"))?;
            ResourceLimits::of(&current.resource)
                .map(|l| l.max_lifetime)
                .ok_or_else(|| {
                    fail!(
                        "{id}: no known maximum lifetime for {}: give --minutes",
                        current.resource
                    )
                })?
        }
    };
    let renewed = client
        .renew(id, SystemTime::now() + lifetime)
        .await
        .map_err(|e| fail!("{id}: {e}"))?;
    print_json(serde_json::to_string(&renewed));
    Ok(ExitCode::SUCCESS)
}

async fn ensure(
    desired_path: &str,
    state_path: &str,
    keys: &KeyOpts,
    client_state: &ClientStateOpts,
    app: &App,
) -> Result<ExitCode, Fail> {
    let text = std::fs::read_to_string(desired_path)
        .map_err(|e| fail!("cannot read --subscriptions {desired_path}: {e}"))?;
    let desired =
        DesiredSubscription::from_json(&text).map_err(|e| fail!("{desired_path}: {e}"))?;
    let ring = keys.key_ring()?;
    let mut keeper = Keeper::new(app.client()?, desired.clone(), FileState::new(state_path));
    for entry in &desired {
        let id = &entry.encryption_certificate_id;
        let certificate = ring.certificate(id).ok_or_else(|| {
            fail!(
                "{desired_path}: no --key has the id {id} with a certificate: give --key {id}=FILE \
                 (with --cert FILE when the key file holds no certificate)"
            )
        })?;
        keeper = keeper.certificate(id, certificate.clone());
    }
    // Graph sends the first clientState back; the receiver accepts every one it is given.
    if let Some(secret) = client_state.secrets()?.first() {
        keeper = keeper.client_state(secret.expose());
    }
    let mut failed = false;
    let mut events = keeper.start().await;
    events.extend(keeper.reconcile().await);
    for event in &events {
        failed |= matches!(event, KeeperEvent::Failed { .. });
        print_json(serde_json::to_string(&event.to_json()));
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
