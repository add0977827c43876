//! Where Graph is and how the application gets its access tokens (`subscriptions`): Entra ID's
//! client-credentials grant with a certificate assertion (`--client-credential`) or a client
//! secret (`--client-secret-file`), or a command that prints a delegated token
//! (`--graph-token-command`). No secret is taken on the command line.

use msgraph_notify::keys::Sign;
use msgraph_notify::subscription::{
    ClientCredentials, DEFAULT_AUTHORITY, DEFAULT_GRAPH_URL, GraphClient, TokenCommand, TokenSource,
};
use msgraph_notify::{Certificate, PrivateKey};

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

    /// The application's private key: a file holding it and the certificate registered for it
    /// in Entra ID (PEM with both, or PKCS#12), or pkcs11:URI of a key in a token (signing with
    /// CKM_SHA256_RSA_PKCS_PSS; the certificate from the token or --client-certificate). Tokens
    /// come from the client-credentials grant with a PS256 certificate assertion.
    #[arg(
        long,
        value_name = "FILE|pkcs11:URI",
        env = "MSGRAPH_NOTIFY_CLIENT_CREDENTIAL"
    )]
    pub client_credential: Option<String>,

    /// The certificate registered in Entra ID, when --client-credential does not hold it (a
    /// PKCS#11 key whose certificate is not in the token, or a key file alone).
    #[arg(long, value_name = "FILE")]
    pub client_certificate: Option<String>,

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
    /// A Graph client with the one credential given, for the application `client_id` of
    /// `tenant` (both needed by the client-credentials grant, not by a token command).
    pub fn client(
        &self,
        tenant: Option<&str>,
        client_id: Option<&str>,
    ) -> Result<GraphClient, Fail> {
        let source = self.token_source(tenant, client_id)?;
        GraphClient::new(self.graph_url.as_str(), source).map_err(|e| fail!("{e}"))
    }

    fn token_source(
        &self,
        tenant: Option<&str>,
        client_id: Option<&str>,
    ) -> Result<Box<dyn TokenSource>, Fail> {
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
        let (tenant, client_id) = match (tenant, client_id) {
            (Some(t), Some(c)) => (t, c),
            _ => {
                return Err(fail!(
                    "--tenant and --client-id are needed with --client-credential and \
                     --client-secret-file (the app registration's directory and application ids)"
                ));
            }
        };
        if let Some(credential) = &self.client_credential {
            let source = self.certificate_credentials(credential, tenant, client_id)?;
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

    /// The client credentials of `--client-credential`: a key file, or a PKCS#11 key.
    fn certificate_credentials(
        &self,
        credential: &str,
        tenant: &str,
        client_id: &str,
    ) -> Result<ClientCredentials, Fail> {
        let given = match &self.client_certificate {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| fail!("cannot read --client-certificate {path}: {e}"))
                    .and_then(|b| {
                        Certificate::load(&b)
                            .map_err(|e| fail!("--client-certificate {path} does not load: {e}"))
                    })?,
            ),
            None => None,
        };
        let missing = |what: &str| {
            fail!(
                "--client-credential {what} holds no certificate: give --client-certificate FILE, \
                 the certificate registered for the application in Entra ID"
            )
        };
        let make = |key: Box<dyn Sign>, certificate: &Certificate| {
            ClientCredentials::with_certificate(
                &self.authority,
                tenant,
                client_id,
                key,
                certificate,
            )
            .map_err(|e| fail!("{e}"))
        };
        if credential.starts_with("pkcs11:") {
            let key = pkcs11_key(credential)?;
            let certificate = given
                .or_else(|| key.certificate().cloned())
                .ok_or_else(|| missing("(the token)"))?;
            return make(key, &certificate);
        }
        let password = match &self.client_credential_password_file {
            Some(file) => Some(crate::secret::first_line(
                "--client-credential-password-file",
                file,
            )?),
            None => None,
        };
        let bytes = zeroize::Zeroizing::new(
            std::fs::read(credential).map_err(|e| fail!("cannot read {credential}: {e}"))?,
        );
        let (key, own) = PrivateKey::load(&bytes, password.as_ref().map(crate::Secret::expose))
            .map_err(|e| fail!("--client-credential {credential} does not load: {e}"))?;
        let certificate = given.or(own).ok_or_else(|| missing(credential))?;
        make(Box::new(key), &certificate)
    }
}

/// A key in a PKCS#11 token that signs client assertions.
#[cfg(feature = "pkcs11")]
fn pkcs11_key(uri: &str) -> Result<Box<Pkcs11Signer>, Fail> {
    msgraph_notify::keys::pkcs11::Pkcs11Key::open(uri)
        .map(Box::new)
        .map_err(|e| fail!("--client-credential pkcs11: {e}"))
}

#[cfg(feature = "pkcs11")]
type Pkcs11Signer = msgraph_notify::keys::pkcs11::Pkcs11Key;

#[cfg(not(feature = "pkcs11"))]
fn pkcs11_key(_: &str) -> Result<Box<NoPkcs11>, Fail> {
    Err(fail!(
        "--client-credential pkcs11:...: this msgraph-notify was built without the `pkcs11` feature"
    ))
}

/// Never made: the build has no PKCS#11.
#[cfg(not(feature = "pkcs11"))]
enum NoPkcs11 {}

#[cfg(not(feature = "pkcs11"))]
impl NoPkcs11 {
    fn certificate(&self) -> Option<&Certificate> {
        match *self {}
    }
}

#[cfg(not(feature = "pkcs11"))]
impl Sign for NoPkcs11 {
    fn sign_pss_sha256(&self, _: &[u8]) -> msgraph_notify::Result<Vec<u8>> {
        match *self {}
    }
}
