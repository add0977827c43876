//! An access token from a command (feature `manage`): delegated tokens, as
//! `az account get-access-token` prints them.

use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use zeroize::Zeroizing;

use super::access_token::{AccessToken, TokenFuture, TokenSource};
use crate::error::GraphError;

/// A command that prints an access token on its standard output: the token alone on a line (as
/// `az account get-access-token --resource https://graph.microsoft.com --query accessToken -o
/// tsv` prints it), or Azure CLI's JSON (`accessToken`, `expires_on`). Run by `sh -c`, so the
/// command line is written as in a shell. The token's lifetime is read from its own `exp` claim
/// when it is a JWT (not verified: only for caching; Graph verifies it), else from `expires_on`,
/// else 10 minutes are assumed.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use msgraph_notify::subscription::{TokenCommand, TokenSource};
/// let token = TokenCommand::new("echo opaque-token").fetch().await?;
/// assert_eq!(token.secret(), "opaque-token");
/// # Ok::<(), msgraph_notify::GraphError>(()) }).unwrap();
/// ```
pub struct TokenCommand {
    command: String,
    timeout: Duration,
}

/// The largest output read from a token command: 64 KiB.
const MAX_COMMAND_OUTPUT: usize = 64 * 1024;

impl TokenCommand {
    /// The command, as a shell line. Default timeout: 60 seconds.
    pub fn new(command: impl Into<String>) -> Self {
        TokenCommand {
            command: command.into(),
            timeout: Duration::from_secs(60),
        }
    }

    /// How long the command may run.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn run(&self) -> Result<AccessToken, GraphError> {
        let fail = |reason: String| GraphError::TokenCommand(reason);
        let child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("cannot start sh: {e}")))?;
        let output = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| fail(format!("no answer within {} s", self.timeout.as_secs())))?
            .map_err(|e| fail(e.to_string()))?;
        if !output.status.success() {
            // Its standard error says why (not logged in, no such command); it holds no token.
            let stderr = String::from_utf8_lossy(&output.stderr);
            let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            return Err(fail(format!(
                "{} {}",
                output.status,
                first.chars().take(300).collect::<String>()
            )));
        }
        if output.stdout.len() > MAX_COMMAND_OUTPUT {
            return Err(fail(format!(
                "it printed more than {MAX_COMMAND_OUTPUT} bytes"
            )));
        }
        let stdout = Zeroizing::new(
            String::from_utf8(output.stdout)
                .map_err(|_| fail("it printed something that is not UTF-8".to_owned()))?,
        );
        parse_command_output(&stdout).ok_or_else(|| {
            fail(
                "it printed no token (expected the token on a line, or JSON with accessToken)"
                    .to_owned(),
            )
        })
    }
}

impl TokenSource for TokenCommand {
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(self.run())
    }

    fn describe(&self) -> String {
        "the access-token command".to_owned()
    }
}

/// The token (and its lifetime) from a command's output.
fn parse_command_output(stdout: &str) -> Option<AccessToken> {
    let trimmed = stdout.trim();
    let (secret, expires_on) = if trimmed.starts_with('{') {
        #[derive(Deserialize)]
        struct AzureCli {
            #[serde(rename = "accessToken", alias = "access_token")]
            access_token: String,
            expires_on: Option<serde_json::Value>,
        }
        let parsed: AzureCli = serde_json::from_str(trimmed).ok()?;
        let expires_on = parsed.expires_on.and_then(|v| match v {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        });
        (Zeroizing::new(parsed.access_token), expires_on)
    } else {
        let line = trimmed.lines().next()?.trim();
        (Zeroizing::new(line.to_owned()), None)
    };
    if secret.is_empty() || secret.chars().any(char::is_whitespace) {
        return None;
    }
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let expires = jwt_exp(&secret).or(expires_on);
    let lifetime = match expires {
        Some(exp) => Duration::from_secs(exp.saturating_sub(now)),
        None => Duration::from_secs(10 * 60),
    };
    Some(AccessToken {
        secret,
        expires_at: Instant::now() + lifetime,
    })
}

/// The `exp` claim of a JWT, read without verifying it.
fn jwt_exp(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = Zeroizing::new(crate::crypto::b64url_decode(payload)?);
    #[derive(Deserialize)]
    struct Exp {
        exp: u64,
    }
    serde_json::from_slice::<Exp>(&bytes).ok().map(|c| c.exp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_output_forms() {
        let token = parse_command_output("abc.def.ghi\n").unwrap();
        assert_eq!(token.secret(), "abc.def.ghi");
        let json = r#"{"accessToken":"tok","expires_on":4102444800,"tokenType":"Bearer"}"#;
        let token = parse_command_output(json).unwrap();
        assert_eq!(token.secret(), "tok");
        assert!(token.expires_at() > Instant::now() + Duration::from_secs(3600));
        assert!(parse_command_output("").is_none());
        assert!(parse_command_output("two words").is_none());
        assert!(parse_command_output(r#"{"nothing":1}"#).is_none());
    }

    #[test]
    fn jwt_exp_is_read_from_the_payload() {
        let payload = crate::crypto::b64url_encode(br#"{"exp":4102444800,"aud":"x"}"#);
        assert_eq!(jwt_exp(&format!("e30.{payload}.sig")), Some(4_102_444_800));
        assert_eq!(jwt_exp("not-a-jwt"), None);
    }
}
