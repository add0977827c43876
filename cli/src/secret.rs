//! Secrets given to the command (key passwords, clientState secrets, connection strings, the
//! Redis password): held in [`Secret`] (wiped on drop, never printed by `Debug`) or in
//! `Zeroizing` buffers, and read from files or environment variables rather than argv where
//! the user can.

use zeroize::Zeroizing;

use crate::{Fail, fail};

/// A secret given on the command line (a key password, a clientState): wiped on drop and shown as
/// `<redacted>` by `Debug`, so no derived `Debug` of the options can print it.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret's text.
    pub fn new(text: &str) -> Self {
        Secret(Zeroizing::new(text.to_owned()))
    }

    /// The secret's text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret::new(s))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A file of secrets, read whole into a buffer wiped on drop; `option` names it in errors.
fn read_file(option: &str, path: &str) -> Result<Zeroizing<String>, Fail> {
    Ok(Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| fail!("cannot read {option} {path}: {e}"))?,
    ))
}

/// The first line of a file (a systemd credential): an error when it is empty.
pub fn first_line(option: &str, path: &str) -> Result<Secret, Fail> {
    let text = read_file(option, path)?;
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if line.is_empty() {
        return Err(fail!("{option} {path} holds no password on its first line"));
    }
    Ok(Secret::new(line))
}

/// Every non-blank line of a file, one secret each: an error when there is none.
pub fn lines(option: &str, path: &str) -> Result<Vec<Secret>, Fail> {
    let text = read_file(option, path)?;
    let secrets: Vec<Secret> = text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .map(Secret::new)
        .collect();
    if secrets.is_empty() {
        return Err(fail!("{option} {path} holds no secret"));
    }
    Ok(secrets)
}

/// The secrets of an environment variable, separated by commas (none when it is unset).
pub fn env_list(var: &str) -> Result<Vec<Secret>, Fail> {
    let Some(value) = std::env::var_os(var) else {
        return Ok(Vec::new());
    };
    let value = Zeroizing::new(
        value
            .into_string()
            .map_err(|_| fail!("{var} is not UTF-8"))?,
    );
    Ok(value
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(Secret::new)
        .collect())
}

/// The secret held in an environment variable, if it is set (and UTF-8).
pub fn env(var: &str) -> Option<Zeroizing<String>> {
    std::env::var(var).ok().map(Zeroizing::new)
}

/// The secret held in the environment variable that `option` names: an error when it is unset.
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub fn env_named_by(option: &str, var: &str) -> Result<Zeroizing<String>, Fail> {
    env(var).ok_or_else(|| fail!("{option} {var}: the variable is not set (or not UTF-8)"))
}
