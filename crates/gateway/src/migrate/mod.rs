//! `peregrine-gateway migrate --from-falcosidekick config.yaml`: a Falcosidekick configuration
//! (its file and its environment variables, as Falcosidekick reads them) turned into a
//! Peregrine configuration, and every setting that could not be carried over, with why.
//!
//! Secrets are not copied into the new file: a webhook URL, API key, password, or any URL with
//! a password in it becomes `${NAME}` with Falcosidekick's own variable name
//! (`${SLACK_WEBHOOKURL}`), so the environment that ran Falcosidekick runs Peregrine, and the
//! notes say which values to move there. Values that are secret by content only (a token in a
//! URL's query, say) cannot be told apart and are copied.

mod outputs;
mod source;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde_yaml_ng::{Mapping, Value};

use outputs::{OutputMap, OUTPUTS, UNSUPPORTED};
use source::{Setting, Source};

/// The new configuration, and what the user should know about it.
pub struct Migration {
    pub config: String,
    pub notes: Vec<String>,
}

/// What the migration tells the user, one line per setting.
#[derive(Default)]
pub struct Notes(Vec<String>);

impl Notes {
    fn dropped(&mut self, key: &str, why: &str) {
        self.0.push(format!("{key}: not carried over: {why}"));
    }

    fn changed(&mut self, key: &str, how: &str) {
        self.0.push(format!("{key}: {how}"));
    }

    /// A secret written as `${NAME}`: where its value must come from now.
    fn secret(&mut self, setting: &Setting) {
        let line = if setting.from_env {
            format!(
                "{}: written as ${{{}}}; it is already in the environment",
                setting.env_name, setting.env_name
            )
        } else {
            format!(
                "{}: written as ${{{}}}; set that variable in the gateway's environment (the value was in the Falcosidekick file and is not copied)",
                setting.env_name, setting.env_name
            )
        };
        self.0.push(line);
    }

    /// A URL setting with a password in it, written as `${NAME}` like a secret.
    fn secret_url(&mut self, setting: &Setting) {
        self.0.push(format!(
            "{}: the URL holds a password, so it is written as ${{{}}}; keep the URL in that variable",
            setting.env_name, setting.env_name
        ));
    }
}

/// Falcosidekick's defaults for per-output settings: left at them, nothing needs saying.
const DEFAULTS: &[(&str, &str)] = &[
    ("checkcert", "true"),
    ("mutualtls", "false"),
    ("outputformat", "all"),
    ("maxconcurrentrequests", "1"),
    ("minimumpriority", "debug"),
];

/// Migrates Falcosidekick's `file` (YAML text; may be empty) with `env` (its environment).
pub fn from_falcosidekick(file: &str, env: BTreeMap<String, String>) -> Result<Migration, String> {
    let src = Source::new(file, env)?;
    let mut notes = Notes::default();
    let mut root = Mapping::new();
    globals(&src, &mut root, &mut notes);
    let mut list = Vec::new();
    for map in OUTPUTS {
        if let Some(output) = output(&src, map, &mut notes) {
            list.push(Value::Mapping(output));
        }
    }
    for (section, enabling) in UNSUPPORTED {
        let enabled = enabling.iter().any(|k| {
            src.get(&format!("{section}.{k}"))
                .is_some_and(|s| s.text != "false")
        });
        if enabled {
            notes.dropped(section, "Peregrine has no output of this kind (docs/migrating-from-falcosidekick.md lists the alternatives)");
        }
    }
    if list.is_empty() {
        notes.changed(
            "outputs",
            "no Falcosidekick output is enabled: the config prints alerts to stdout",
        );
        let mut stdout = Mapping::new();
        stdout.insert("name".into(), "console".into());
        stdout.insert("type".into(), "stdout".into());
        list.push(Value::Mapping(stdout));
    }
    root.insert("outputs".into(), Value::Sequence(list));
    let config = serde_yaml_ng::to_string(&Value::Mapping(root)).map_err(|e| e.to_string())?;
    let header = "# Migrated from Falcosidekick by `peregrine-gateway migrate --from-falcosidekick`.\n# Check it with `peregrine-gateway --check-config --config FILE`.\n";
    Ok(Migration {
        config: format!("{header}{}\n", config.trim_end()),
        notes: notes.0,
    })
}

/// One enabled output, or `None` when its enabling setting is empty.
fn output(src: &Source, map: &OutputMap, notes: &mut Notes) -> Option<Mapping> {
    let section = map.section;
    src.get(&format!("{section}.{}", map.enabled_by))?;
    let mut out = Mapping::new();
    out.insert("name".into(), section.replace('.', "-").into());
    out.insert("type".into(), map.kind.into());
    for field in map.fields {
        if let Some(setting) = src.get(&format!("{section}.{}", field.from)) {
            outputs::put(&mut out, field.to, &setting, field.how, notes);
        }
    }
    if let Some(special) = map.special {
        special(src, section, &mut out, notes);
    }
    common(src, map, &mut out, notes);
    for (key, why) in map.dropped {
        let key = format!("{section}.{key}");
        if src.get(&key).is_some() || !src.get_map(&key).is_empty() {
            notes.dropped(&key, why);
        }
    }
    for (key, value) in src.unread(section) {
        let suffix = key.rsplit('.').next().unwrap_or_default();
        if !DEFAULTS.contains(&(suffix, value.as_str())) {
            notes.dropped(&key, "no Peregrine equivalent");
        }
    }
    Some(out)
}

/// Outputs with a `tls: {insecure_skip_verify}` block (the HTTP outputs and Kafka).
const SKIP_VERIFY: &[&str] = &[
    "slack",
    "teams",
    "discord",
    "googlechat",
    "mattermost",
    "rocketchat",
    "telegram",
    "pagerduty",
    "opsgenie",
    "grafana_oncall",
    "gotify",
    "elasticsearch",
    "loki",
    "alertmanager",
    "datadog",
    "splunk",
    "otlp",
    "webhook",
    "kafka",
];

/// The settings every Falcosidekick output has.
fn common(src: &Source, map: &OutputMap, out: &mut Mapping, notes: &mut Notes) {
    let section = map.section;
    if let Some(priority) = src.get(&format!("{section}.minimumpriority")) {
        if priority.text != "debug" {
            out.insert(
                "min_priority".into(),
                priority.text.to_ascii_lowercase().into(),
            );
        }
    }
    if let Some(n) = src.get(&format!("{section}.maxconcurrentrequests")) {
        if let Ok(n) = n.text.parse::<u64>() {
            if n > 1 {
                out.insert("max_in_flight".into(), n.into());
            }
        }
    }
    let key = format!("{section}.checkcert");
    if src.get(&key).is_some_and(|c| c.text == "false") {
        if SKIP_VERIFY.contains(&map.kind) {
            let tls = out
                .entry("tls".into())
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            if let Value::Mapping(tls) = tls {
                tls.insert("insecure_skip_verify".into(), true.into());
            }
            notes.changed(&key, "written as `tls: {insecure_skip_verify: true}`; better: give the destination's CA with `tls: {ca_file}`");
        } else {
            notes.dropped(&key, "this output always verifies certificates: give the destination's CA with its `ca_file` or `tls: {ca_file}`");
        }
    }
    let key = format!("{section}.mutualtls");
    if src.get(&key).is_some_and(|c| c.text == "true") {
        notes.dropped(&key, "set the client certificate with the output's `tls: {cert_file, key_file}` (Falcosidekick's mutualtlsclient files)");
    }
}

/// The gateway-wide settings: listener, TLS, custom fields.
fn globals(src: &Source, root: &mut Mapping, notes: &mut Notes) {
    let address = src
        .get("listenaddress")
        .map_or("0.0.0.0".to_string(), |a| a.text);
    let port = src.get("listenport").map_or("2801".to_string(), |p| p.text);
    root.insert("listen".into(), format!("{address}:{port}").into());
    if src
        .get("tlsserver.deploy")
        .is_some_and(|d| d.text == "true")
    {
        let mut tls = Mapping::new();
        for (from, to) in [("certfile", "cert_file"), ("keyfile", "key_file")] {
            if let Some(file) = src.get(&format!("tlsserver.{from}")) {
                tls.insert(to.into(), file.text.into());
            }
        }
        if src
            .get("tlsserver.mutualtls")
            .is_some_and(|m| m.text == "true")
        {
            if let Some(ca) = src.get("tlsserver.cacertfile") {
                tls.insert("client_ca_file".into(), ca.text.into());
            }
        }
        root.insert("tls".into(), Value::Mapping(tls));
        for key in ["tlsserver.notlsport", "tlsserver.notlspaths"] {
            if src.get(key).is_some() {
                notes.dropped(key, "Peregrine serves every route on its one listener");
            }
        }
    }
    let fields = src.get_map("customfields");
    if !fields.is_empty() {
        let map = fields
            .into_iter()
            .map(|(k, v)| {
                let v = custom_value(&k, v, notes);
                (Value::String(k), Value::String(v))
            })
            .collect();
        root.insert("custom_fields".into(), Value::Mapping(map));
    }
    let spool = Mapping::from_iter([("dir".into(), "/var/lib/peregrine/spool".into())]);
    root.insert("spool".into(), Value::Mapping(spool));
    global_notes(src, notes);
}

/// A custom field's value: Falcosidekick reads `%VAR` from the environment, Peregrine `${VAR}`.
fn custom_value(key: &str, value: String, notes: &mut Notes) -> String {
    match value.strip_prefix('%') {
        Some(var) if !var.is_empty() => {
            notes.changed(
                &format!("customfields.{key}"),
                &format!("%{var} written as ${{{var}}}: the gateway reads it from its environment"),
            );
            format!("${{{var}}}")
        }
        _ => value,
    }
}

/// Gateway-wide Falcosidekick settings Peregrine does not have, and why.
fn global_notes(src: &Source, notes: &mut Notes) {
    if !src.get_map("templatedfields").is_empty() {
        notes.dropped(
            "templatedfields",
            "Go templates are not supported; add fixed values under custom_fields",
        );
    }
    const DROPPED: &[(&str, &str)] = &[
        ("customtags", "Peregrine adds no tags of its own; route on the rules' tags with `match: {tags}`"),
        ("outputfieldformat", "the alert's output line is kept as Falco wrote it"),
        ("bracketreplacer", "not supported"),
        ("debug", "set PEREGRINE_LOG=debug in the gateway's environment for debug logs"),
        ("mutualtlsfilespath", "set client certificates per output with `tls: {cert_file, key_file, ca_file}`"),
        ("mutualtlsclient.certfile", "set client certificates per output with `tls: {cert_file, key_file}`"),
        ("mutualtlsclient.keyfile", "set client certificates per output with `tls: {cert_file, key_file}`"),
        ("mutualtlsclient.cacertfile", "set CAs per output with `tls: {ca_file}`"),
        ("tlsclient.cacertfile", "set CAs per output with `tls: {ca_file}`"),
        ("aws.accesskeyid", "Peregrine uses the standard AWS credential chain: set AWS_ACCESS_KEY_ID in its environment"),
        ("aws.secretaccesskey", "Peregrine uses the standard AWS credential chain: set AWS_SECRET_ACCESS_KEY in its environment"),
        ("aws.checkidentity", "not needed: credentials are checked by the first request"),
        ("prometheus.extralabels", "Peregrine's metrics have fixed labels (docs/migrating-from-falcosidekick.md maps the names)"),
    ];
    for (key, why) in DROPPED {
        let default = matches!(
            (*key, src.get(key).map(|s| s.text).as_deref()),
            ("debug", Some("false"))
                | ("mutualtlsfilespath", Some("/etc/certs"))
                | ("aws.checkidentity", Some("true"))
        );
        if src.get(key).is_some() && !default {
            notes.dropped(key, why);
        }
        src.mark(key);
    }
}
