//! The gateway's YAML configuration.
//!
//! Every problem is reported with the path of the key that has it (`outputs[2].retry.max_backoff`),
//! and all problems are collected before giving up, so one `--check-config` run shows them all.
//! `${VAR}` in any string value reads an environment variable; interpolation happens after YAML
//! parsing, so a variable's value can never change the file's structure.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use peregrine_engine::Priority;
use peregrine_outputs::duration::ConfigDuration;
use peregrine_outputs::fingerprint::Fingerprint;
use peregrine_outputs::list::StringList;
use peregrine_outputs::retry::RetryPolicy;
use peregrine_outputs::secret::Secret;
use peregrine_outputs::size::ByteSize;
use peregrine_outputs::SettingsError;
use peregrine_outputs::{output_type, CheckedSettings, OutputType};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::console::config::{RawUi, UiConfig};
use crate::deadletter::DeadLetterLimits;
use crate::front::limits::{Limits, RawLimits};
use crate::front::tls::{ListenerTls, TlsFiles};
use crate::input::InputConfig;
use crate::routing::Route;
use crate::spool::SpoolOptions;
use crate::worker::{BacklogLimit, BacklogPolicy, StormConfig};

pub const DEFAULT_LISTEN: &str = "0.0.0.0:2801";

/// A validated configuration.
/// The largest `max_body_bytes`: a spool record holds at most 64 MiB, and the stored form of an
/// alert (with its uuid and custom fields) can be larger than the body that carried it.
const MAX_BODY_BYTES: usize = 32 << 20;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// TLS on the listener (mutual TLS with a client CA); plaintext without it.
    pub tls: Option<ListenerTls>,
    pub limits: Limits,
    pub max_body_bytes: usize,
    /// When set, `POST` routes need `Authorization: Bearer <token>`.
    pub bearer_token: Option<Secret>,
    pub spool: SpoolOptions,
    /// Added to every alert's `output_fields`.
    pub custom_fields: Map<String, Value>,
    /// How long in-flight deliveries may finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// How much each output's dead-letter files may hold.
    pub dead_letter: DeadLetterLimits,
    pub outputs: Vec<OutputConfig>,
    /// Where alerts come from besides `POST /`.
    pub inputs: Vec<InputConfig>,
    /// The web console, when `ui.enabled` is true.
    pub ui: Option<UiConfig>,
    /// Tells whether the `inputs` section changed between two loads (its keys hashed in memory).
    pub inputs_fingerprint: u64,
    /// The start of the SHA-256 of the file's text, as `sha256sum` prints it: which
    /// configuration is running (`peregrine_config_info`).
    pub hash: String,
}

/// One configured output instance.
#[derive(Debug, Clone)]
pub struct OutputConfig {
    /// Unique; names the cursor and dead-letter files and the `output` metrics label.
    pub name: String,
    /// The `type:` key.
    pub output_type: &'static OutputType,
    pub settings: CheckedSettings,
    pub route: Route,
    pub policy: RetryPolicy,
    pub max_in_flight: usize,
    /// Storm control (`dedup`), for chat and paging outputs.
    pub storm: Option<StormConfig>,
    /// `max_backlog` and `on_backlog_full`.
    pub backlog: BacklogLimit,
    /// Tells whether the output's keys changed between two loads (hashed in memory, never shown):
    /// a reload restarts only outputs whose fingerprint changed.
    pub fingerprint: u64,
}

/// One problem, at a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Reads and validates the file at `path`, with `${VAR}` from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                path: String::new(),
                message: format!("cannot read {}: {e}", path.display()),
            }])
        })?;
        Config::parse(&text, &|name| std::env::var(name).ok())
    }

    /// Parses and validates configuration text. `env` resolves `${VAR}`.
    pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
        let mut errors = Errors::default();
        let mut root = read_root(text, env, &mut errors)?;
        let listen = parse_listen(root.remove("listen"), &mut errors);
        let max_body_bytes = parse_max_body_bytes(root.remove("max_body_bytes"), &mut errors);
        let tls = parse_tls(root.remove("tls"), &mut errors);
        let limits = parse_limits(root.remove("limits"), max_body_bytes, &mut errors);
        let bearer_token = parse_auth(root.remove("auth"), &mut errors);
        let spool = parse_spool(root.remove("spool"), max_body_bytes, &mut errors);
        let custom_fields = parse_custom_fields(root.remove("custom_fields"), &mut errors);
        let shutdown_grace = errors
            .section::<ConfigDuration>("shutdown_grace", root.remove("shutdown_grace"))
            .map_or(Duration::from_secs(10), |d| d.0);

        let dead_letter = parse_dead_letter(root.remove("dead_letter"), &mut errors);
        let outputs = parse_outputs(root.remove("outputs"), &spool, &mut errors);
        let raw_inputs = root.remove("inputs");
        let inputs_fingerprint = fingerprint(raw_inputs.as_ref().unwrap_or(&Value::Null));
        let inputs = parse_inputs(raw_inputs, &mut errors);
        let ui = parse_ui(root.remove("ui"), &spool, &mut errors);
        let mutual = tls.as_ref().is_some_and(ListenerTls::is_mutual);
        if ui
            .as_ref()
            .is_some_and(|u| !u.client_certificates.is_empty())
            && !mutual
        {
            errors.push(
                "ui.client_certificates",
                "needs a listener that asks for client certificates (tls.client_ca_file)",
            );
        }

        errors.finish(Config {
            listen,
            tls,
            limits,
            max_body_bytes,
            bearer_token,
            spool,
            custom_fields,
            shutdown_grace,
            dead_letter,
            outputs,
            inputs,
            inputs_fingerprint,
            ui,
            hash: short_sha256(text.as_bytes()),
        })
    }
}

/// The top-level keys.
const KEYS: [&str; 12] = [
    "listen",
    "dead_letter",
    "tls",
    "limits",
    "max_body_bytes",
    "auth",
    "spool",
    "custom_fields",
    "shutdown_grace",
    "outputs",
    "inputs",
    "ui",
];

/// The YAML as a map of known top-level keys, with `${VAR}` resolved everywhere. Text that is
/// not a YAML mapping is the one error that stops the check at once.
fn read_root(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Errors,
) -> Result<Map<String, Value>, ConfigErrors> {
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            path: String::new(),
            message: format!("not valid YAML: {e}"),
        }])
    })?;
    let mut root = match serde_json::to_value(&yaml) {
        Ok(Value::Object(map)) => map,
        Ok(Value::Null) => Map::new(),
        Ok(_) => {
            let message = "the configuration must be a mapping of keys";
            return Err(std::mem::take(errors).fail("", message));
        }
        Err(e) => {
            let message = format!("unsupported YAML: {e}");
            return Err(std::mem::take(errors).fail("", message));
        }
    };
    for (key, value) in root.iter_mut() {
        interpolate(value, key, env, errors);
    }
    for key in root.keys() {
        if !KEYS.contains(&key.as_str()) {
            errors.push(
                key,
                format!("unknown key (expected one of {})", KEYS.join(", ")),
            );
        }
    }
    Ok(root)
}

/// `tls`: the listener's certificate and key (and client CA), read and checked now.
fn parse_tls(value: Option<Value>, errors: &mut Errors) -> Option<ListenerTls> {
    let files = errors.section::<TlsFiles>("tls", value)?;
    match ListenerTls::load(files) {
        Ok(tls) => Some(tls),
        Err((key, message)) => {
            errors.push(format!("tls.{key}"), message);
            None
        }
    }
}

/// `limits`: the front door's bounds (connections, deadlines, body budget).
fn parse_limits(value: Option<Value>, max_body_bytes: usize, errors: &mut Errors) -> Limits {
    errors
        .section::<RawLimits>("limits", value)
        .unwrap_or_default()
        .check(max_body_bytes)
        .unwrap_or_else(|(key, message)| {
            errors.push(format!("limits.{key}"), message);
            Limits::default()
        })
}

/// `listen`: an address:port.
fn parse_listen(value: Option<Value>, errors: &mut Errors) -> SocketAddr {
    let listen = errors
        .section::<String>("listen", value)
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let listen = match listen.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            errors.push(
                "listen",
                format!("'{listen}' is not an address:port such as 127.0.0.1:2801"),
            );
            DEFAULT_LISTEN.parse().expect("default parses")
        }
    };
    listen
}

/// `max_body_bytes`: bounded by what one spool record can hold.
fn parse_max_body_bytes(value: Option<Value>, errors: &mut Errors) -> usize {
    let max_body_bytes = errors
        .section::<ByteSize>("max_body_bytes", value)
        .map(|b| b.0)
        .unwrap_or(1024 * 1024);
    if max_body_bytes == 0 {
        errors.push("max_body_bytes", "must be greater than 0");
    }
    if max_body_bytes > MAX_BODY_BYTES {
        errors.push(
            "max_body_bytes",
            format!(
                "must be at most {}MiB: one alert is one spool record, and records are at most 64MiB",
                MAX_BODY_BYTES >> 20
            ),
        );
    }
    max_body_bytes
}

/// `auth.bearer_token`.
fn parse_auth(value: Option<Value>, errors: &mut Errors) -> Option<Secret> {
    let bearer_token = errors
        .section::<RawAuth>("auth", value)
        .and_then(|a| a.bearer_token);
    if bearer_token.as_ref().is_some_and(|t| t.expose().is_empty()) {
        errors.push(
            "auth.bearer_token",
            "is empty (remove it to turn authentication off)",
        );
    }
    bearer_token
}

/// `spool`: segments sized to the spool, room for the largest body.
fn parse_spool(value: Option<Value>, max_body_bytes: usize, errors: &mut Errors) -> SpoolOptions {
    let raw_spool = errors
        .section::<RawSpool>("spool", value)
        .unwrap_or_default();
    let max_bytes = raw_spool.max_bytes.map_or(1 << 30, |b| b.0 as u64);
    let spool = SpoolOptions {
        dir: raw_spool
            .dir
            .unwrap_or_else(|| PathBuf::from("./data/spool")),
        max_bytes,
        // Space comes back a whole segment at a time, so a segment is a small part of the
        // spool (the writer also starts a new one when the spool is full, so that the one
        // it was writing can be released once the outputs are past it).
        segment_bytes: raw_spool
            .segment_bytes
            .map_or((max_bytes / 8).clamp(1, 64 << 20), |b| b.0 as u64),
    };
    if spool.segment_bytes == 0 {
        errors.push("spool.segment_bytes", "must be greater than 0");
    } else if spool.segment_bytes > max_bytes / 4 {
        errors.push(
            "spool.segment_bytes",
            format!(
                "must be at most a quarter of spool.max_bytes ({}): space is freed a whole segment at a time",
                max_bytes / 4
            ),
        );
    }
    if spool.max_bytes < max_body_bytes as u64 {
        errors.push(
            "spool.max_bytes",
            "must be at least max_body_bytes, or no request could ever be stored",
        );
    }
    spool
}

/// `custom_fields`: scalar values only.
fn parse_custom_fields(value: Option<Value>, errors: &mut Errors) -> Map<String, Value> {
    let custom_fields = errors
        .section::<Map<String, Value>>("custom_fields", value)
        .unwrap_or_default();
    for (k, v) in &custom_fields {
        if matches!(v, Value::Array(_) | Value::Object(_)) {
            errors.push(
                format!("custom_fields.{k}"),
                "must be a string, number, boolean or null",
            );
        }
    }
    custom_fields
}

/// `ui`: the web console (off unless `enabled: true`).
fn parse_ui(value: Option<Value>, spool: &SpoolOptions, errors: &mut Errors) -> Option<UiConfig> {
    let raw = errors.section::<RawUi>("ui", value)?;
    match raw.check(&spool.dir) {
        Ok(ui) => ui,
        Err(problems) => {
            for (path, message) in problems {
                errors.push(path, message);
            }
            None
        }
    }
}

/// `dead_letter`: per-output size bounds.
fn parse_dead_letter(value: Option<Value>, errors: &mut Errors) -> DeadLetterLimits {
    let raw_dead_letter = errors
        .section::<RawDeadLetter>("dead_letter", value)
        .unwrap_or_default();
    let defaults = DeadLetterLimits::default();
    let dead_letter = DeadLetterLimits {
        max_bytes: raw_dead_letter
            .max_bytes
            .map_or(defaults.max_bytes, |b| b.0 as u64),
        max_files: raw_dead_letter.max_files.unwrap_or(defaults.max_files),
    };
    if dead_letter.max_files < 2 {
        errors.push(
            "dead_letter.max_files",
            "must be at least 2 (the file being written and one rotated)",
        );
    }
    if dead_letter.max_bytes < 1 << 20 {
        errors.push("dead_letter.max_bytes", "must be at least 1MiB");
    }
    dead_letter
}

/// `outputs`: each checked at its index, names unique.
fn parse_outputs(
    value: Option<Value>,
    spool: &SpoolOptions,
    errors: &mut Errors,
) -> Vec<OutputConfig> {
    let mut outputs: Vec<OutputConfig> = Vec::new();
    match value {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                let path = format!("outputs[{i}]");
                let Some(output) = parse_output(&path, item, spool, errors) else {
                    continue;
                };
                if outputs.iter().any(|o| o.name == output.name) {
                    errors.push(
                        format!("{path}.name"),
                        format!("'{}' is already used by another output", output.name),
                    );
                }
                outputs.push(output);
            }
        }
        Some(_) => errors.push("outputs", "must be a list of outputs"),
    }
    outputs
}

/// `inputs`: Kafka consumers.
fn parse_inputs(value: Option<Value>, errors: &mut Errors) -> Vec<InputConfig> {
    let mut inputs = Vec::new();
    match value {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                let path = format!("inputs[{i}]");
                let Value::Object(map) = item else {
                    errors.push(path, "must be a mapping with at least 'type'");
                    continue;
                };
                match InputConfig::parse(map) {
                    Ok(input) => inputs.push(input),
                    Err(e) => errors.push_below(&path, e),
                }
            }
        }
        Some(_) => errors.push("inputs", "must be a list of inputs"),
    }
    inputs
}

/// A hash of a section's keys and values, to tell whether it changed. It stays in memory: it
/// covers secrets, and is never printed.
fn fingerprint(value: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.to_string().hash(&mut hasher);
    hasher.finish()
}

/// The first 16 hex digits of the SHA-256 of `bytes` (what `sha256sum` prints, cut).
fn short_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    bearer_token: Option<Secret>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeadLetter {
    max_bytes: Option<ByteSize>,
    max_files: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpool {
    dir: Option<PathBuf>,
    max_bytes: Option<ByteSize>,
    segment_bytes: Option<ByteSize>,
}

/// The keys every output has, whatever its type.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommon {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    min_priority: Option<String>,
    #[serde(rename = "match")]
    matcher: Option<RawMatch>,
    timeout: Option<ConfigDuration>,
    retry: Option<RawRetry>,
    max_in_flight: Option<usize>,
    dedup: Option<RawDedup>,
    max_backlog: Option<ByteSize>,
    on_backlog_full: Option<String>,
}

const COMMON_KEYS: [&str; 10] = [
    "name",
    "type",
    "min_priority",
    "match",
    "timeout",
    "retry",
    "max_in_flight",
    "dedup",
    "max_backlog",
    "on_backlog_full",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDedup {
    window: ConfigDuration,
    #[serde(default)]
    fields: Option<Fingerprint>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    rules: Option<StringList>,
    tags: Option<StringList>,
    sources: Option<StringList>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    max_attempts: Option<u32>,
    initial_backoff: Option<ConfigDuration>,
    max_backoff: Option<ConfigDuration>,
}

/// One `outputs[i]` entry: the keys every output shares here, the rest by its type.
fn parse_output(
    path: &str,
    item: Value,
    spool: &SpoolOptions,
    errors: &mut Errors,
) -> Option<OutputConfig> {
    let fingerprint = fingerprint(&item);
    let Value::Object(mut map) = item else {
        errors.push(path, "must be a mapping with at least 'name' and 'type'");
        return None;
    };
    let mut common = Map::new();
    for key in COMMON_KEYS {
        if let Some(v) = map.remove(key) {
            common.insert(key.to_string(), v);
        }
    }
    let raw: RawCommon = errors.at(path, Value::Object(common))?;
    check_output_name(path, &raw.name, errors);
    let output_type = match output_type(&raw.kind) {
        Ok(t) => t,
        Err(message) => {
            errors.push(format!("{path}.type"), message);
            return None;
        }
    };
    let settings = match output_type.parse(Value::Object(map)) {
        Ok(s) => s,
        Err(e) => {
            errors.push_below(path, e);
            return None;
        }
    };
    let route = parse_route(path, raw.min_priority.as_deref(), raw.matcher, errors)?;
    let policy = parse_retry_policy(path, raw.retry, raw.timeout, errors);
    let max_in_flight = raw
        .max_in_flight
        .unwrap_or(output_type.max_in_flight.unwrap_or(4));
    if max_in_flight == 0 {
        errors.push(format!("{path}.max_in_flight"), "must be at least 1");
    }
    if let Some(limit) = output_type.max_in_flight.filter(|&l| max_in_flight > l) {
        errors.push(
            format!("{path}.max_in_flight"),
            format!("must be at most {limit} for type {output_type}"),
        );
    }
    let storm = parse_storm(path, raw.dedup, output_type, errors);
    let backlog = parse_backlog(path, raw.max_backlog, raw.on_backlog_full, spool, errors);
    Some(OutputConfig {
        name: raw.name,
        output_type,
        settings,
        route,
        policy,
        max_in_flight,
        storm,
        backlog,
        fingerprint,
    })
}

/// An output's name becomes file names and a metrics label: keep it short and plain.
fn check_output_name(path: &str, name: &str, errors: &mut Errors) {
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !name.starts_with('.');
    if !plain {
        errors.push(format!("{path}.name"), format!("'{name}' must be 1-64 letters, digits, '-', '_' or '.' (it names files and metric labels)"));
    }
}

/// `min_priority` and `match`: which alerts the output receives.
fn parse_route(
    path: &str,
    min_priority: Option<&str>,
    matcher: Option<RawMatch>,
    errors: &mut Errors,
) -> Option<Route> {
    let min_priority = match min_priority {
        None => Priority::Debug,
        Some(text) => text.parse::<Priority>().unwrap_or_else(|e| {
            errors.push(format!("{path}.min_priority"), e.to_string());
            Priority::Debug
        }),
    };
    let matcher = matcher.unwrap_or_default();
    let list = |l: Option<StringList>| l.map(|l| l.0).unwrap_or_default();
    Route::new(
        min_priority,
        list(matcher.rules),
        list(matcher.tags),
        list(matcher.sources),
    )
    .map_err(|e| errors.push(format!("{path}.match.rules"), e))
    .ok()
}

/// `retry` and `timeout`, over the defaults.
fn parse_retry_policy(
    path: &str,
    retry: Option<RawRetry>,
    timeout: Option<ConfigDuration>,
    errors: &mut Errors,
) -> RetryPolicy {
    let defaults = RetryPolicy::default();
    let retry = retry.unwrap_or_default();
    let policy = RetryPolicy {
        max_attempts: retry.max_attempts.unwrap_or(defaults.max_attempts),
        initial_backoff: retry
            .initial_backoff
            .map_or(defaults.initial_backoff, |d| d.0),
        max_backoff: retry.max_backoff.map_or(defaults.max_backoff, |d| d.0),
        timeout: timeout.map_or(defaults.timeout, |d| d.0),
    };
    if policy.max_attempts == 0 {
        errors.push(format!("{path}.retry.max_attempts"), "must be at least 1");
    }
    if policy.initial_backoff > policy.max_backoff {
        errors.push(
            format!("{path}.retry.max_backoff"),
            "must not be shorter than initial_backoff",
        );
    }
    if policy.timeout.is_zero() {
        errors.push(format!("{path}.timeout"), "must be greater than 0");
    }
    policy
}

/// `dedup`: storm control, which only outputs a person reads take.
fn parse_storm(
    path: &str,
    dedup: Option<RawDedup>,
    output_type: &OutputType,
    errors: &mut Errors,
) -> Option<StormConfig> {
    let dedup = dedup?;
    if !output_type.is_for_people() {
        errors.push(
            format!("{path}.dedup"),
            format!(
                "storm control is for chat, paging and plugin outputs ({}); a {output_type} output receives every alert",
                peregrine_outputs::OUTPUT_TYPES
                    .iter()
                    .filter(|t| t.is_for_people())
                    .map(|t| t.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        return None;
    }
    if dedup.window.0.is_zero() {
        errors.push(format!("{path}.dedup.window"), "must be greater than 0");
        return None;
    }
    Some(StormConfig {
        window: dedup.window.0,
        fingerprint: dedup.fields.unwrap_or_default(),
    })
}

/// `max_backlog` and `on_backlog_full`. With `dead_letter_oldest` the limit must leave the spool
/// two segments of room (space comes back a segment at a time), or the spool would fill before
/// shedding freed any; without `max_backlog` it is half the spool.
fn parse_backlog(
    path: &str,
    max_backlog: Option<ByteSize>,
    on_full: Option<String>,
    spool: &SpoolOptions,
    errors: &mut Errors,
) -> BacklogLimit {
    let policy = match on_full.as_deref().map(str::parse::<BacklogPolicy>) {
        None => BacklogPolicy::Block,
        Some(Ok(p)) => p,
        Some(Err(message)) => {
            errors.push(format!("{path}.on_backlog_full"), message);
            BacklogPolicy::Block
        }
    };
    let max_bytes = match (max_backlog, policy) {
        (Some(b), _) => Some(b.0 as u64),
        (None, BacklogPolicy::DeadLetterOldest) => Some(spool.max_bytes / 2),
        (None, BacklogPolicy::Block) => None,
    };
    let room = spool.max_bytes.saturating_sub(2 * spool.segment_bytes);
    match (max_bytes, policy) {
        (Some(0), _) => errors.push(format!("{path}.max_backlog"), "must be greater than 0"),
        (Some(max), BacklogPolicy::DeadLetterOldest) if max > room => errors.push(
            format!("{path}.max_backlog"),
            format!("must be at most {room} bytes with dead_letter_oldest (spool.max_bytes less two segments), so that shedding frees space before the spool is full"),
        ),
        (Some(max), BacklogPolicy::Block) if max > spool.max_bytes => errors.push(
            format!("{path}.max_backlog"),
            format!("is more than spool.max_bytes ({}): the spool would be full first", spool.max_bytes),
        ),
        _ => {}
    }
    BacklogLimit { max_bytes, policy }
}

/// Replaces `${VAR}` in every string below `value`.
fn interpolate(
    value: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Errors,
) {
    match value {
        Value::String(s) if s.contains("${") => match expand(s, env) {
            Ok(expanded) => *s = expanded,
            Err(message) => errors.push(path, message),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, &format!("{path}[{i}]"), env, errors);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                interpolate(v, &format!("{path}.{k}"), env, errors);
            }
        }
        _ => {}
    }
}

/// Resolves `${NAME}` and `${NAME:-default}` (the default when NAME is unset or empty, as in
/// a shell or Compose). Only the braced form: a bare `$` stays as written, so a password or a
/// pattern holding `$` needs no escaping. Kept here rather than taking `shellexpand`, which
/// expands bare `$NAME` too.
/// The forms of `${…}`, as a shell has them: `${NAME}`, `${NAME:-default}` (unset or empty →
/// the default), `${NAME:?message}` (unset or empty → a config error with the message).
enum Reference<'a> {
    Plain,
    Default(&'a str),
    Required(&'a str),
}

fn parse_reference(reference: &str) -> (&str, Reference<'_>) {
    if let Some((name, default)) = reference.split_once(":-") {
        (name, Reference::Default(default))
    } else if let Some((name, message)) = reference.split_once(":?") {
        (name, Reference::Required(message))
    } else {
        (reference, Reference::Plain)
    }
}

fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err("unclosed '${' (write ${NAME})".to_string());
        };
        let reference = &after[..end];
        let (name, form) = parse_reference(reference);
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!(
                "'${{{reference}}}' is not a valid variable reference"
            ));
        }
        let value = env(name);
        match form {
            Reference::Plain => match value {
                Some(v) => out.push_str(&v),
                None => return Err(format!("environment variable {name} is not set")),
            },
            Reference::Default(default) => match value.filter(|v| !v.is_empty()) {
                Some(v) => out.push_str(&v),
                None => out.push_str(default),
            },
            Reference::Required(message) => match value.filter(|v| !v.is_empty()) {
                Some(v) => out.push_str(&v),
                None if message.is_empty() => {
                    return Err(format!("environment variable {name} is not set or empty"))
                }
                None => return Err(format!("{name}: {message}")),
            },
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Collects problems while the rest of the file is still checked.
#[derive(Default)]
struct Errors(Vec<ConfigError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Records an output's or input's own problem below that entry's path (`outputs[2]`).
    fn push_below(&mut self, path: &str, e: SettingsError) {
        let at = if e.path.is_empty() {
            path.to_string()
        } else {
            format!("{path}.{}", e.path)
        };
        self.push(at, e.message);
    }

    fn fail(mut self, path: &str, message: impl Into<String>) -> ConfigErrors {
        self.push(path, message);
        ConfigErrors(self.0)
    }

    /// Deserialises an optional top-level section, recording its problem.
    fn section<T: DeserializeOwned>(&mut self, path: &str, value: Option<Value>) -> Option<T> {
        match value {
            None | Some(Value::Null) => None,
            Some(v) => self.at(path, v),
        }
    }

    /// Deserialises `value`, recording a problem under `path` plus the failing key's own path.
    fn at<T: DeserializeOwned>(&mut self, path: &str, value: Value) -> Option<T> {
        match serde_path_to_error::deserialize(value) {
            Ok(v) => Some(v),
            Err(e) => {
                let sub = e.path().to_string();
                let at = match (path.is_empty(), sub == ".") {
                    (_, true) => path.to_string(),
                    (true, false) => sub,
                    (false, false) => format!("{path}.{sub}"),
                };
                self.push(at, e.into_inner().to_string());
                None
            }
        }
    }

    fn finish(self, config: Config) -> Result<Config, ConfigErrors> {
        if self.0.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(self.0))
        }
    }
}

#[cfg(test)]
mod tests;
