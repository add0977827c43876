//! Where Graph is and how the application gets its access tokens (`subscriptions`): Entra ID's
//! client-credentials grant with a certificate assertion (`--client-credential`) or a client
//! secret (`--client-secret-file`), or a command that prints a delegated token
//! (`--graph-token-command`). No secret is taken on the command line.

use msgraph_notify::PrivateKey;
use msgraph_notify::subscription::{
    ClientCredentials, DEFAULT_AUTHORITY, DEFAULT_GRAPH_URL, GraphClient, TokenCommand, TokenSource,
};

use crate::{Fail, fail};

/// The variable that may hold the client secret instead of `--client-secret-file`.
pub const CLIENT_SECRET_ENV: &str = "MSGRAPH_NOTIFY_CLIENT_SECRET";

/// Graph's address and the application's credential.
#[derive(clap::Args, Debug, Clone)]
pub struct GraphOpts {
    /// Microsoft Graph's base URL: a national cloud's (https://graph.microsoft.us/v1.0), or an
    /// emulator's (http://127.0.0.1:PORT/v1.0).
    #[arg(long, value_name = "URL", default_value = DEFAULT_GRAPH_URL, env = "MSGRAPH_NOTIFY_GRAPH_URL")]
    pub graph_url: String,

    /// Entra ID's authority: https://login.microsoftonline.us for US Government, an emulator's
    /// base URL for tests.
    #[arg(long, value_name = "URL", default_value = DEFAULT_AUTHORITY, env = "MSGRAPH_NOTIFY_AUTHORITY")]
    pub authority: String,

    /// The tenant (directory) id or domain, for --client-credential and --client-secret-file.
    #[arg(long, value_name = "ID", env = "MSGRAPH_NOTIFY_TENANT")]
    pub tenant: Option<String>,

    /// The application (client) id, for --client-credential and --client-secret-file.
    #[arg(long, value_name = "ID", env = "MSGRAPH_NOTIFY_CLIENT_ID")]
    pub client_id: Option<String>,

    /// A file holding the application's private key and the certificate registered for it in
    /// Entra ID (PEM with both, or PKCS#12): tokens come from the client-credentials grant with
    /// a PS256 certificate assertion.
    #[arg(long, value_name = "FILE", env = "MSGRAPH_NOTIFY_CLIENT_CREDENTIAL")]
    pub client_credential: Option<String>,

    /// The password of an encrypted --client-credential file, read from this file's first line.
    #[arg(long, value_name = "FILE")]
    pub client_credential_password_file: Option<String>,

    /// A file holding the client secret (or set MSGRAPH_NOTIFY_CLIENT_SECRET): the
    /// client-credentials grant with a secret.
    #[arg(long, value_name = "FILE")]
    pub client_secret_file: Option<String>,

    /// A command that prints an access token (run by sh -c), for delegated tokens: presence
    /// subscriptions accept only delegated Presence.Read.All. E.g. `az account get-access-token
    /// --resource https://graph.microsoft.com --query accessToken -o tsv`.
    #[arg(long, value_name = "CMD", env = "MSGRAPH_NOTIFY_GRAPH_TOKEN_COMMAND")]
    pub graph_token_command: Option<String>,
}

impl GraphOpts {
    /// A Graph client with the one credential given.
    pub fn client(&self) -> Result<GraphClient, Fail> {
        let source = self.token_source()?;
        GraphClient::new(self.graph_url.as_str(), source).map_err(|e| fail!("{e}"))
    }

    fn token_source(&self) -> Result<Box<dyn TokenSource>, Fail> {
        let secret_env = crate::secret::env(CLIENT_SECRET_ENV);
        let given = [
            self.client_credential.is_some(),
            self.client_secret_file.is_some() || secret_env.is_some(),
            self.graph_token_command.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given != 1 {
            return Err(fail!(
                "give exactly one credential for Graph: --client-credential FILE (a certificate \
                 assertion), --client-secret-file FILE (or {CLIENT_SECRET_ENV}), or \
                 --graph-token-command CMD (a delegated token); {given} given"
            ));
        }
        if let Some(command) = &self.graph_token_command {
            return Ok(Box::new(TokenCommand::new(command.as_str())));
        }
        let (tenant, client_id) = match (&self.tenant, &self.client_id) {
            (Some(t), Some(c)) => (t.as_str(), c.as_str()),
            _ => {
                return Err(fail!(
                    "--tenant and --client-id are needed with --client-credential and \
                     --client-secret-file (the app registration's directory and application ids)"
                ));
            }
        };
        if let Some(path) = &self.client_credential {
            let password = match &self.client_credential_password_file {
                Some(file) => Some(crate::secret::first_line(
                    "--client-credential-password-file",
                    file,
                )?),
                None => None,
            };
            let bytes = zeroize::Zeroizing::new(
                std::fs::read(path).map_err(|e| fail!("cannot read {path}: {e}"))?,
            );
            let (key, certificate) =
                PrivateKey::load(&bytes, password.as_ref().map(crate::Secret::expose))
                    .map_err(|e| fail!("--client-credential {path} does not load: {e}"))?;
            let certificate = certificate.ok_or_else(|| {
                fail!(
                    "--client-credential {path} holds no certificate: put the certificate \
                     registered in Entra ID in the same file (PEM after the key, or PKCS#12)"
                )
            })?;
            let source = ClientCredentials::with_certificate(
                &self.authority,
                tenant,
                client_id,
                key,
                &certificate,
            )
            .map_err(|e| fail!("{e}"))?;
            return Ok(Box::new(source));
        }
        let secret = match (&self.client_secret_file, secret_env) {
            (Some(path), _) => crate::secret::first_line("--client-secret-file", path)?
                .expose()
                .to_owned(),
            (None, Some(value)) => value.trim_end().to_owned(),
            (None, None) => return Err(fail!("no credential for Graph")),
        };
        ClientCredentials::with_secret(&self.authority, tenant, client_id, secret)
            .map(|s| Box::new(s) as Box<dyn TokenSource>)
            .map_err(|e| fail!("{e}"))
    }
}
