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

/// What separates the clientState secrets of a list, in every source (`--client-state`,
/// `--client-state-file`, MSGRAPH_NOTIFY_CLIENT_STATE, and `subscription --client-state-file`):
/// commas and line breaks. A clientState therefore holds neither, and white space around each
/// one is dropped; `subscription` refuses one that would not read back as itself.
pub const LIST_SEPARATORS: [char; 3] = [',', '\n', '\r'];

/// The secrets of a list: split at [`LIST_SEPARATORS`], each trimmed, blanks dropped.
pub fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(LIST_SEPARATORS)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The secrets of a file, one per line (or separated by commas): an error when there is none.
pub fn list_file(option: &str, path: &str) -> Result<Vec<Secret>, Fail> {
    let text = read_file(option, path)?;
    let secrets: Vec<Secret> = split_list(&text).map(Secret::new).collect();
    if secrets.is_empty() {
        return Err(fail!("{option} {path} holds no secret"));
    }
    Ok(secrets)
}

/// The secrets of an environment variable, separated by commas or line breaks (none when it is
/// unset).
pub fn env_list(var: &str) -> Result<Vec<Secret>, Fail> {
    let Some(value) = std::env::var_os(var) else {
        return Ok(Vec::new());
    };
    let value = Zeroizing::new(
        value
            .into_string()
            .map_err(|_| fail!("{var} is not UTF-8"))?,
    );
    Ok(split_list(&value).map(Secret::new).collect())
}

/// The secret held in an environment variable, if it is set (and UTF-8).
pub fn env(var: &str) -> Option<Zeroizing<String>> {
    std::env::var(var).ok().map(Zeroizing::new)
}

/// The secret held in the environment variable that `option` names: an error when it is unset,
/// or when `var` is no variable name at all. A value pasted where the name belongs (a
/// connection string, `Endpoint=…;SharedAccessKey=…`) is recognised and never printed back.
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub fn env_named_by(option: &str, var: &str) -> Result<Zeroizing<String>, Fail> {
    check_var_name(option, var)?;
    env(var).ok_or_else(|| fail!("{option} {var}: the variable is not set (or not UTF-8)"))
}

/// An environment variable's name as POSIX writes them: letters, digits and `_`, not starting
/// with a digit, at most 256 characters. Anything else is refused without being printed: it is
/// most likely the secret itself.
fn check_var_name(option: &str, var: &str) -> Result<(), Fail> {
    let is_name = !var.is_empty()
        && var.len() <= 256
        && !var.starts_with(|c: char| c.is_ascii_digit())
        && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if is_name {
        return Ok(());
    }
    let looks_like = if var.contains(['=', ';']) {
        "it holds `=` or `;`, as a connection string does"
    } else {
        "it is not letters, digits and `_`"
    };
    Err(fail!(
        "{option} takes the NAME of an environment variable that holds the secret, and the value \
         given is not a variable name ({looks_like}; {} characters, not printed here in case it is \
         the secret itself). Put the secret in a variable and name it: \
         export MY_CONNECTION_STRING='…' and {option} MY_CONNECTION_STRING",
        var.chars().count()
    ))
}

#[cfg(test)]
mod tests {
    use super::{check_var_name, split_list};

    #[test]
    fn a_connection_string_where_a_name_belongs_is_refused_and_not_printed() {
        let pasted = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=listen;\
                      SharedAccessKey=c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0";
        let err = check_var_name("--event-hubs-connection-string-env", pasted)
            .unwrap_err()
            .0;
        assert!(
            err.contains("takes the NAME of an environment variable"),
            "{err}"
        );
        assert!(err.contains("connection string"), "{err}");
        for part in ["Endpoint", "servicebus", "SharedAccessKey", "c2VjcmV0"] {
            assert!(!err.contains(part), "{part} echoed: {err}");
        }
        for bad in ["", "1ABC", "A-B", "a b", "x=y", "x;y"] {
            assert!(check_var_name("--x-env", bad).is_err(), "{bad:?}");
        }
        for good in ["EVENT_HUBS", "_x", "a1"] {
            assert!(check_var_name("--x-env", good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn one_rule_splits_every_list() {
        let split = |t| split_list(t).collect::<Vec<_>>();
        assert_eq!(split("a\r\nb\n\n"), ["a", "b"]);
        assert_eq!(split("a,b , c"), ["a", "b", "c"]);
        assert_eq!(split(" \n,\n"), Vec::<&str>::new());
    }
}
