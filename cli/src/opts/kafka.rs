//! How a Kafka client reaches its brokers, one set of options for `consume` and
//! `serve --forward`: Azure Event Hubs' Kafka endpoint from a connection string, or any cluster
//! with TLS (`security.protocol` `ssl`, a CA file) and SASL (`PLAIN`, `SCRAM-SHA-256`,
//! `SCRAM-SHA-512`, the password read from a file). librdkafka's own names are used:
//! `security.protocol`, `sasl.mechanism`, `sasl.username`, `ssl.ca.location`. No secret is
//! taken on the command line, and none is ever printed ([`KafkaOpts::describe`] names the
//! protocol, the mechanism and the user only).

use std::path::PathBuf;

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;

use crate::{Fail, fail};

/// Kafka's `security.protocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum SecurityProtocol {
    /// No TLS, no SASL.
    Plaintext,
    /// TLS, no SASL.
    Ssl,
    /// SASL without TLS (the password crosses the network in the clear with PLAIN).
    SaslPlaintext,
    /// SASL over TLS (Event Hubs, most managed clusters).
    SaslSsl,
}

impl SecurityProtocol {
    fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// Kafka's `sasl.mechanism` (those built into librdkafka without Cyrus SASL).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SaslMechanism {
    #[value(name = "PLAIN")]
    Plain,
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
    #[value(name = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// The user name of Event Hubs' Kafka endpoint; the password is the connection string.
const EVENT_HUBS_USER: &str = "$ConnectionString";

/// How the Kafka client connects: Event Hubs, or TLS and SASL options for any cluster.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct KafkaOpts {
    /// Connect to Azure Event Hubs' Kafka endpoint with the connection string held in this
    /// environment variable (SASL_SSL, PLAIN, user `$ConnectionString`). Never give the
    /// connection string itself on the command line.
    #[arg(long, value_name = "VAR", conflicts_with_all = ["kafka_security_protocol", "kafka_sasl_mechanism", "kafka_sasl_username"])]
    pub event_hubs_connection_string_env: Option<String>,

    /// Kafka's security.protocol: plaintext, ssl (TLS), sasl_plaintext or sasl_ssl (SASL over
    /// TLS). Default: sasl_ssl with --kafka-sasl-username, ssl with --kafka-ssl-ca-location,
    /// plaintext otherwise. TLS checks the brokers' certificates and host names.
    #[arg(
        long,
        value_name = "PROTOCOL",
        env = "MSGRAPH_NOTIFY_KAFKA_SECURITY_PROTOCOL"
    )]
    pub kafka_security_protocol: Option<SecurityProtocol>,

    /// Kafka's sasl.mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512. Default: PLAIN.
    #[arg(
        long,
        value_name = "MECHANISM",
        env = "MSGRAPH_NOTIFY_KAFKA_SASL_MECHANISM"
    )]
    pub kafka_sasl_mechanism: Option<SaslMechanism>,

    /// Kafka's sasl.username; its password is read from --kafka-sasl-password-file.
    #[arg(
        long,
        value_name = "USER",
        requires = "kafka_sasl_password_file",
        env = "MSGRAPH_NOTIFY_KAFKA_SASL_USERNAME"
    )]
    pub kafka_sasl_username: Option<String>,

    /// The file whose first line is the SASL password of --kafka-sasl-username.
    #[arg(
        long,
        value_name = "FILE",
        requires = "kafka_sasl_username",
        env = "MSGRAPH_NOTIFY_KAFKA_SASL_PASSWORD_FILE"
    )]
    pub kafka_sasl_password_file: Option<String>,

    /// Kafka's ssl.ca.location: the CA certificates (PEM) that sign the brokers' certificates.
    /// Default: the system's trust store.
    #[arg(
        long,
        value_name = "FILE",
        env = "MSGRAPH_NOTIFY_KAFKA_SSL_CA_LOCATION"
    )]
    pub kafka_ssl_ca_location: Option<PathBuf>,
}

impl KafkaOpts {
    /// The `security.protocol` in force.
    pub fn protocol(&self) -> SecurityProtocol {
        if self.event_hubs_connection_string_env.is_some() {
            return SecurityProtocol::SaslSsl;
        }
        self.kafka_security_protocol.unwrap_or(
            match (&self.kafka_sasl_username, &self.kafka_ssl_ca_location) {
                (Some(_), _) => SecurityProtocol::SaslSsl,
                (None, Some(_)) => SecurityProtocol::Ssl,
                (None, None) => SecurityProtocol::Plaintext,
            },
        )
    }

    /// Sets the connection's security on `config` and returns the brokers: `brokers`, or with
    /// Event Hubs and no `brokers` the namespace's Kafka endpoint. `option` shows where the
    /// brokers are given (`--brokers HOST:PORT`), for the error when there are none.
    pub fn configure(
        &self,
        config: &mut ClientConfig,
        brokers: Option<&str>,
        option: &str,
    ) -> Result<String, Fail> {
        let mut brokers = brokers.map(str::to_owned);
        let protocol = self.protocol();
        // librdkafka's warnings reach the client's context (`KafkaLog`): a failed TLS handshake
        // or SASL login is said in its own words.
        config.set_log_level(RDKafkaLogLevel::Warning);
        config.set("security.protocol", protocol.as_str());
        if let Some(var) = &self.event_hubs_connection_string_env {
            let connection_string =
                crate::secret::env_named_by("--event-hubs-connection-string-env", var)?;
            if brokers.is_none() {
                brokers = Some(event_hubs_brokers(&connection_string).ok_or_else(|| {
                    fail!(
                        "the connection string in {var} has no Endpoint=sb://NAMESPACE.servicebus.windows.net/; \
                         give {option}, HOST:PORT being NAMESPACE.servicebus.windows.net:9093"
                    )
                })?);
            }
            config
                .set("sasl.mechanisms", SaslMechanism::Plain.as_str())
                .set("sasl.username", EVENT_HUBS_USER)
                .set("sasl.password", connection_string.as_str());
        } else if protocol.sasl() {
            let (Some(user), Some(file)) =
                (&self.kafka_sasl_username, &self.kafka_sasl_password_file)
            else {
                return Err(fail!(
                    "--kafka-security-protocol {} needs --kafka-sasl-username USER and \
                     --kafka-sasl-password-file FILE",
                    protocol.as_str()
                ));
            };
            let password = crate::secret::first_line("--kafka-sasl-password-file", file)?;
            config
                .set(
                    "sasl.mechanisms",
                    self.kafka_sasl_mechanism
                        .unwrap_or(SaslMechanism::Plain)
                        .as_str(),
                )
                .set("sasl.username", user)
                .set("sasl.password", password.expose());
        } else if self.kafka_sasl_username.is_some() {
            return Err(fail!(
                "--kafka-sasl-username is used only with --kafka-security-protocol sasl_ssl or \
                 sasl_plaintext (not {})",
                protocol.as_str()
            ));
        }
        if let Some(ca) = &self.kafka_ssl_ca_location {
            if matches!(
                protocol,
                SecurityProtocol::Plaintext | SecurityProtocol::SaslPlaintext
            ) {
                return Err(fail!(
                    "--kafka-ssl-ca-location is used only with TLS (--kafka-security-protocol \
                     ssl or sasl_ssl, not {})",
                    protocol.as_str()
                ));
            }
            std::fs::metadata(ca).map_err(|e| {
                fail!(
                    "--kafka-ssl-ca-location {}: cannot read it: {e}",
                    ca.display()
                )
            })?;
            config.set("ssl.ca.location", ca.display().to_string());
        }
        brokers.ok_or_else(|| {
            fail!("{option} is required (or --event-hubs-connection-string-env VAR)")
        })
    }

    /// The connection's security in words, for the start-up line: never a secret.
    pub fn describe(&self) -> String {
        let protocol = self.protocol();
        if self.event_hubs_connection_string_env.is_some() {
            return "Event Hubs (sasl_ssl, PLAIN)".to_owned();
        }
        match (&self.kafka_sasl_username, protocol.sasl()) {
            (Some(user), true) => format!(
                "{} ({}, user {user})",
                protocol.as_str(),
                self.kafka_sasl_mechanism
                    .unwrap_or(SaslMechanism::Plain)
                    .as_str()
            ),
            _ => protocol.as_str().to_owned(),
        }
    }
}

/// librdkafka's own warnings and errors (a broker out of reach, a failed TLS handshake or SASL
/// login, a fatal error), logged on stderr at most once a second. librdkafka never puts a
/// password in them.
pub struct KafkaLog {
    /// What the line is about (`--forward: `, or nothing for `consume`).
    prefix: &'static str,
    limit: crate::log::RateLimited,
}

impl KafkaLog {
    pub fn new(prefix: &'static str) -> Self {
        KafkaLog {
            prefix,
            limit: crate::log::RateLimited::new(),
        }
    }

    /// One of librdkafka's log lines: warnings and worse are logged.
    pub fn line(&self, level: RDKafkaLogLevel, message: &str) {
        if (level as i32) <= RDKafkaLogLevel::Warning as i32 {
            self.limit.warn(&format!("{}Kafka: {message}", self.prefix));
        }
    }

    /// One of librdkafka's errors.
    pub fn error(&self, error: &KafkaError, reason: &str) {
        self.limit
            .warn(&format!("{}Kafka: {error}: {reason}", self.prefix));
    }
}

/// The Event Hubs namespace's Kafka endpoint, from `Endpoint=sb://NS.servicebus.windows.net/`.
fn event_hubs_brokers(connection_string: &str) -> Option<String> {
    let endpoint = connection_string.split(';').find_map(|part| {
        let (key, value) = part.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("Endpoint")
            .then(|| value.trim())
    })?;
    let host = endpoint
        .strip_prefix("sb://")
        .unwrap_or(endpoint)
        .trim_end_matches('/');
    (!host.is_empty() && !host.contains(['/', ':'])).then(|| format!("{host}:9093"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(opts: &KafkaOpts) -> Result<ClientConfig, Fail> {
        let mut config = ClientConfig::new();
        opts.configure(&mut config, Some("b:9093"), "--brokers HOST:PORT")?;
        Ok(config)
    }

    #[test]
    fn the_kafka_endpoint_comes_from_the_connection_string() {
        assert_eq!(
            event_hubs_brokers(
                "Endpoint=sb://ns1.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=x;EntityPath=hub"
            )
            .as_deref(),
            Some("ns1.servicebus.windows.net:9093")
        );
        assert_eq!(event_hubs_brokers("SharedAccessKey=x"), None);
        assert_eq!(event_hubs_brokers("Endpoint=sb://a/b/;"), None);
    }

    #[test]
    fn plaintext_by_default_and_tls_with_a_ca_file() {
        let config = configured(&KafkaOpts::default()).unwrap();
        assert_eq!(config.get("security.protocol"), Some("plaintext"));
        assert_eq!(config.get("sasl.username"), None);

        let ca = tempfile::NamedTempFile::new().unwrap();
        let opts = KafkaOpts {
            kafka_ssl_ca_location: Some(ca.path().to_owned()),
            ..KafkaOpts::default()
        };
        let config = configured(&opts).unwrap();
        assert_eq!(config.get("security.protocol"), Some("ssl"));
        assert_eq!(
            config.get("ssl.ca.location"),
            Some(ca.path().display().to_string().as_str())
        );
        assert_eq!(opts.describe(), "ssl");
    }

    #[test]
    fn sasl_reads_its_password_from_a_file_and_never_describes_it() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "s3cret-pass\nignored\n").unwrap();
        let opts = KafkaOpts {
            kafka_sasl_mechanism: Some(SaslMechanism::ScramSha512),
            kafka_sasl_username: Some("svc".into()),
            kafka_sasl_password_file: Some(file.path().display().to_string()),
            ..KafkaOpts::default()
        };
        let config = configured(&opts).unwrap();
        assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(config.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(config.get("sasl.username"), Some("svc"));
        assert_eq!(config.get("sasl.password"), Some("s3cret-pass"));
        assert_eq!(opts.describe(), "sasl_ssl (SCRAM-SHA-512, user svc)");

        // SASL without TLS, asked for explicitly.
        let plain = KafkaOpts {
            kafka_security_protocol: Some(SecurityProtocol::SaslPlaintext),
            ..opts.clone()
        };
        assert_eq!(
            configured(&plain).unwrap().get("security.protocol"),
            Some("sasl_plaintext")
        );
    }

    #[test]
    fn inconsistent_choices_are_refused_with_what_to_do() {
        let sasl_without_user = KafkaOpts {
            kafka_security_protocol: Some(SecurityProtocol::SaslSsl),
            ..KafkaOpts::default()
        };
        let e = configured(&sasl_without_user).err().unwrap();
        assert!(e.0.contains("--kafka-sasl-username"), "{}", e.0);

        let ca_in_the_clear = KafkaOpts {
            kafka_security_protocol: Some(SecurityProtocol::Plaintext),
            kafka_ssl_ca_location: Some("/etc/hostname".into()),
            ..KafkaOpts::default()
        };
        let e = configured(&ca_in_the_clear).err().unwrap();
        assert!(e.0.contains("only with TLS"), "{}", e.0);

        let no_brokers = KafkaOpts::default()
            .configure(&mut ClientConfig::new(), None, "--brokers HOST:PORT")
            .err()
            .unwrap();
        assert!(
            no_brokers.0.contains("--brokers HOST:PORT"),
            "{}",
            no_brokers.0
        );
    }
}
