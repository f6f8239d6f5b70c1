//! What every Kafka client here shares — brokers, SASL, TLS and free-form librdkafka
//! properties — for the Kafka output and the gateway's Kafka input alike.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use rdkafka::ClientConfig;
use serde::Deserialize;

use crate::secret::Secret;
use crate::settings::SettingsError;

/// Broker addresses: a YAML list or a comma-separated string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brokers(pub Vec<String>);

impl<'de> Deserialize<'de> for Brokers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = crate::list::StringList::deserialize(d)?.0;
        if list.is_empty() {
            return Err(serde::de::Error::custom("needs at least one broker"));
        }
        if let Some(bad) = list.iter().find(|b| {
            b.rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
        }) {
            return Err(serde::de::Error::custom(format!(
                "'{bad}' is not host:port"
            )));
        }
        Ok(Brokers(list))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sasl {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: Secret,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaTls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Free-form librdkafka properties; values print as `***` (they may hold credentials).
#[derive(Clone, Default, Deserialize)]
pub struct Properties(pub BTreeMap<String, String>);

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "***")))
            .finish()
    }
}

/// The librdkafka settings for these keys, with `overrides` (the caller's defaults) applied
/// before the user's free-form properties, which win.
pub fn client_config(
    brokers: &Brokers,
    sasl: Option<&Sasl>,
    tls: Option<&KafkaTls>,
    properties: &Properties,
    defaults: &[(&str, &str)],
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers.0.join(","));
    let protocol = match (sasl.is_some(), tls.is_some()) {
        (false, false) => "plaintext",
        (false, true) => "ssl",
        (true, false) => "sasl_plaintext",
        (true, true) => "sasl_ssl",
    };
    c.set("security.protocol", protocol);
    if let Some(s) = sasl {
        let mechanism = match s.mechanism {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        };
        c.set("sasl.mechanism", mechanism)
            .set("sasl.username", &s.username)
            .set("sasl.password", s.password.expose());
    }
    if let Some(t) = tls {
        if let Some(p) = &t.ca_file {
            c.set("ssl.ca.location", p.display().to_string());
        }
        if let Some(p) = &t.cert_file {
            c.set("ssl.certificate.location", p.display().to_string());
        }
        if let Some(p) = &t.key_file {
            c.set("ssl.key.location", p.display().to_string());
        }
        if t.insecure_skip_verify {
            c.set("enable.ssl.certificate.verification", "false")
                .set("ssl.endpoint.identification.algorithm", "none");
        }
    }
    for (k, v) in defaults {
        c.set(*k, *v);
    }
    for (k, v) in &properties.0 {
        c.set(k, v);
    }
    c
}

/// Checks TLS files exist, so a typo is a config error rather than a connection failure.
pub fn check_tls(tls: Option<&KafkaTls>) -> Result<(), SettingsError> {
    let Some(t) = tls else { return Ok(()) };
    for (key, path) in [
        ("tls.ca_file", &t.ca_file),
        ("tls.cert_file", &t.cert_file),
        ("tls.key_file", &t.key_file),
    ] {
        if let Some(p) = path {
            if !p.is_file() {
                return Err(SettingsError::new(
                    key,
                    format!("{} is not a readable file", p.display()),
                ));
            }
        }
    }
    if t.cert_file.is_some() != t.key_file.is_some() {
        return Err(SettingsError::new(
            "tls.key_file",
            "cert_file and key_file go together",
        ));
    }
    Ok(())
}

/// Kafka's own rule for topic names, so a typo is a config error rather than a broker refusal.
pub fn check_topic(topic: &str) -> Result<(), SettingsError> {
    let valid = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(SettingsError::new(
            "topic",
            format!("'{topic}' is not a valid topic name (letters, digits, '.', '_', '-')"),
        ))
    }
}

/// A client-creation error without the property's value (which may be a credential).
pub fn creation_error(e: &rdkafka::error::KafkaError) -> String {
    match e {
        rdkafka::error::KafkaError::ClientConfig(_, desc, key, _) => {
            format!("librdkafka refused '{key}': {desc}")
        }
        other => other.to_string(),
    }
}
