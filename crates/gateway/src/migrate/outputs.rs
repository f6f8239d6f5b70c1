//! Falcosidekick's outputs and the Peregrine output each becomes: one table row per output,
//! with the settings copied as they are, the ones whose vocabulary changes, and the ones that
//! have no Peregrine equivalent and why.

use serde_yaml_ng::{Mapping, Value};

use super::source::{Setting, Source};
use super::Notes;

/// How a Falcosidekick setting becomes a Peregrine key.
#[derive(Clone, Copy)]
pub enum How {
    /// The value as a string, as written (`"007"` stays a string). A URL with a password in it
    /// is treated as a secret.
    Plain,
    /// `true`, `42` as YAML booleans and numbers, for keys Peregrine reads as such.
    Typed,
    /// `${ENV_NAME}` in the config, the value in the gateway's environment.
    Secret,
    /// A comma-separated list becomes a YAML list.
    List,
}

pub struct Field {
    pub from: &'static str,
    pub to: &'static str,
    pub how: How,
}

const fn field(from: &'static str, to: &'static str, how: How) -> Field {
    Field { from, to, how }
}

/// One Falcosidekick output and its Peregrine counterpart.
pub struct OutputMap {
    /// Its section in Falcosidekick's config (`slack`, `aws.sqs`).
    pub section: &'static str,
    /// The setting whose presence enables it.
    pub enabled_by: &'static str,
    /// The Peregrine output type.
    pub kind: &'static str,
    pub fields: &'static [Field],
    /// Settings that need more than a rename (combined keys, changed vocabulary).
    pub special: Option<fn(&Source, &str, &mut Mapping, &mut Notes)>,
    /// Settings with no Peregrine equivalent, and why.
    pub dropped: &'static [(&'static str, &'static str)],
}

use How::{List, Plain, Secret, Typed};

const TEMPLATE: &str = "Falcosidekick's Go templates are not carried over: Peregrine builds the message from the alert (see the output's `template` key where it has one)";
const FOOTER: &str = "Peregrine's messages have no footer";
const ICON: &str = "not carried over: set the output's icon or avatar key by hand where it has one";
const FORMAT: &str =
    "Peregrine's message layout has its own `format` choices (see the output's README section)";

pub const OUTPUTS: &[OutputMap] = &[
    OutputMap {
        section: "slack",
        enabled_by: "webhookurl",
        kind: "slack",
        fields: &[field("webhookurl", "webhook_url", Secret), field("channel", "channel", Plain), field("username", "username", Plain)],
        special: Some(slack_format),
        dropped: &[("messageformat", TEMPLATE), ("footer", FOOTER), ("icon", ICON)],
    },
    OutputMap {
        section: "teams",
        enabled_by: "webhookurl",
        kind: "teams",
        fields: &[field("webhookurl", "webhook_url", Secret)],
        special: None,
        dropped: &[("outputformat", FORMAT), ("activityimage", ICON)],
    },
    OutputMap {
        section: "discord",
        enabled_by: "webhookurl",
        kind: "discord",
        fields: &[field("webhookurl", "webhook_url", Secret)],
        special: None,
        dropped: &[("icon", ICON)],
    },
    OutputMap {
        section: "googlechat",
        enabled_by: "webhookurl",
        kind: "googlechat",
        fields: &[field("webhookurl", "webhook_url", Secret)],
        special: None,
        dropped: &[("messageformat", TEMPLATE), ("outputformat", FORMAT)],
    },
    OutputMap {
        section: "mattermost",
        enabled_by: "webhookurl",
        kind: "mattermost",
        fields: &[field("webhookurl", "webhook_url", Secret), field("username", "username", Plain)],
        special: None,
        dropped: &[("messageformat", TEMPLATE), ("footer", FOOTER), ("icon", ICON), ("outputformat", FORMAT)],
    },
    OutputMap {
        section: "rocketchat",
        enabled_by: "webhookurl",
        kind: "rocketchat",
        fields: &[field("webhookurl", "webhook_url", Secret), field("username", "alias", Plain)],
        special: None,
        dropped: &[("messageformat", TEMPLATE), ("footer", FOOTER), ("icon", ICON), ("outputformat", FORMAT)],
    },
    OutputMap {
        section: "telegram",
        enabled_by: "token",
        kind: "telegram",
        fields: &[field("token", "token", Secret), field("chatid", "chat_id", Typed), field("messagethreadid", "message_thread_id", Typed), field("host", "api_url", Plain)],
        special: None,
        dropped: &[],
    },
    OutputMap {
        section: "pagerduty",
        enabled_by: "routingkey",
        kind: "pagerduty",
        fields: &[field("routingkey", "routing_key", Secret), field("region", "region", Plain)],
        special: None,
        dropped: &[],
    },
    OutputMap {
        section: "opsgenie",
        enabled_by: "apikey",
        kind: "opsgenie",
        fields: &[field("apikey", "api_key", Secret), field("region", "region", Plain)],
        special: None,
        dropped: &[],
    },
    OutputMap {
        section: "grafanaoncall",
        enabled_by: "webhookurl",
        kind: "grafana_oncall",
        fields: &[field("webhookurl", "webhook_url", Secret)],
        special: None,
        dropped: &[],
    },
    OutputMap {
        section: "gotify",
        enabled_by: "hostport",
        kind: "gotify",
        fields: &[field("hostport", "url", Plain), field("token", "token", Secret)],
        special: None,
        dropped: &[("format", FORMAT)],
    },
    OutputMap {
        section: "smtp",
        enabled_by: "hostport",
        kind: "smtp",
        fields: &[field("user", "username", Plain), field("password", "password", Secret), field("from", "from", Plain), field("to", "to", List)],
        special: Some(smtp_host),
        dropped: &[("outputformat", FORMAT), ("authmechanism", "Peregrine authenticates with PLAIN or LOGIN as the server offers"), ("token", "OAuth tokens are not supported; use a password"), ("identity", "not supported"), ("trace", "not supported")],
    },
    OutputMap {
        section: "webui",
        enabled_by: "url",
        kind: "falcosidekick_ui",
        fields: &[field("url", "url", Plain)],
        special: None,
        dropped: &[],
    },
    OutputMap {
        section: "elasticsearch",
        enabled_by: "hostport",
        kind: "elasticsearch",
        fields: &[field("hostport", "url", Plain), field("index", "index", Plain), field("username", "username", Plain), field("password", "password", Secret), field("apikey", "api_key", Secret), field("pipeline", "pipeline", Plain), field("flattenfields", "flatten_fields", Typed), field("createindextemplate", "create_index_template", Typed), field("enablecompression", "gzip", Typed)],
        special: Some(elasticsearch_extras),
        dropped: &[("type", "document types are gone from Elasticsearch 8; Peregrine writes _doc"), ("numberofshards", "the index template leaves shards to the cluster's defaults"), ("numberofreplicas", "the index template leaves replicas to the cluster's defaults"), ("customheaders", "not supported")],
    },
    OutputMap {
        section: "loki",
        enabled_by: "hostport",
        kind: "loki",
        fields: &[field("hostport", "url", Plain), field("user", "username", Plain), field("apikey", "password", Secret), field("tenant", "tenant", Plain)],
        special: Some(loki_line),
        dropped: &[("endpoint", "Peregrine posts to /loki/api/v1/push under url"), ("extralabels", "labels from alert fields are not supported: Peregrine's `labels` are static"), ("customheaders", "not supported")],
    },
    OutputMap {
        section: "aws.sns",
        enabled_by: "topicarn",
        kind: "sns",
        fields: &[field("topicarn", "topic_arn", Plain)],
        special: Some(aws_common),
        dropped: &[("rawjson", "Peregrine publishes the alert's JSON (format: json) with message attributes")],
    },
    OutputMap {
        section: "aws.sqs",
        enabled_by: "url",
        kind: "sqs",
        fields: &[field("url", "queue_url", Plain)],
        special: Some(aws_common),
        dropped: &[],
    },
    OutputMap {
        section: "aws.kinesis",
        enabled_by: "streamname",
        kind: "kinesis",
        fields: &[field("streamname", "stream_name", Plain)],
        special: Some(aws_common),
        dropped: &[],
    },
    OutputMap {
        section: "aws.cloudwatchlogs",
        enabled_by: "loggroup",
        kind: "cloudwatch_logs",
        fields: &[field("loggroup", "log_group", Plain), field("logstream", "log_stream", Plain)],
        special: Some(aws_common),
        dropped: &[],
    },
    OutputMap {
        section: "aws.s3",
        enabled_by: "bucket",
        kind: "s3",
        fields: &[field("bucket", "bucket", Plain), field("prefix", "prefix", Plain), field("endpoint", "endpoint_url", Plain)],
        special: Some(aws_common),
        dropped: &[("objectcannedacl", "Peregrine sets no ACL: the bucket's owner owns the objects (S3's default since 2023)")],
    },
    OutputMap {
        section: "kafka",
        enabled_by: "hostport",
        kind: "kafka",
        fields: &[field("hostport", "brokers", Plain), field("topic", "topic", Plain)],
        special: Some(kafka_extras),
        dropped: &[("balancer", "Peregrine partitions by its `key` (default {rule}|{hostname})"), ("clientid", "set librdkafka's client.id under `librdkafka` if needed"), ("async", "Peregrine always waits for the broker's acknowledgement"), ("requiredacks", "Peregrine's producer is idempotent with acks: all"), ("topiccreation", "create the topic beforehand")],
    },
    OutputMap {
        section: "alertmanager",
        enabled_by: "hostport",
        kind: "alertmanager",
        fields: &[field("hostport", "urls", List)],
        special: Some(alertmanager_labels),
        dropped: &[("endpoint", "Peregrine posts to Alertmanager's API v2"), ("extraannotations", "not supported"), ("customseveritymap", "Peregrine sends no severity label: match on the `priority` label (Falco's priority name) or add a static one under `labels`"), ("dropeventdefaultpriority", "not supported"), ("dropeventthresholds", "not supported"), ("customheaders", "not supported")],
    },
    OutputMap {
        section: "syslog",
        enabled_by: "host",
        kind: "syslog",
        fields: &[],
        special: Some(syslog_address),
        dropped: &[("format", "Peregrine writes RFC 5424 (or 3164) lines whose message is the alert's JSON or output; CEF is not supported")],
    },
    OutputMap {
        section: "redis",
        enabled_by: "address",
        kind: "redis",
        fields: &[],
        special: Some(redis_url),
        dropped: &[],
    },
    OutputMap {
        section: "rabbitmq",
        enabled_by: "url",
        kind: "rabbitmq",
        fields: &[field("url", "url", Secret), field("queue", "routing_key", Plain)],
        special: Some(rabbitmq_default_exchange),
        dropped: &[],
    },
    OutputMap {
        section: "mqtt",
        enabled_by: "broker",
        kind: "mqtt",
        fields: &[field("topic", "topic", Plain), field("qos", "qos", Typed), field("retained", "retain", Typed)],
        special: Some(mqtt_url),
        dropped: &[],
    },
    OutputMap {
        section: "nats",
        enabled_by: "hostport",
        kind: "nats",
        fields: &[field("hostport", "url", Plain)],
        special: Some(nats_subject),
        dropped: &[],
    },
    OutputMap {
        section: "datadoglogs",
        enabled_by: "apikey",
        kind: "datadog",
        fields: &[field("apikey", "api_key", Secret), field("service", "service", Plain)],
        special: Some(datadog_site),
        dropped: &[],
    },
    OutputMap {
        section: "splunk",
        enabled_by: "host",
        kind: "splunk",
        fields: &[field("token", "token", Secret)],
        special: Some(splunk_url),
        dropped: &[("customheaders", "not supported")],
    },
    OutputMap {
        section: "otlp.logs",
        enabled_by: "endpoint",
        kind: "otlp",
        fields: &[],
        special: Some(otlp_endpoint),
        dropped: &[("headers", "header values may be secrets: add `headers:` with ${VAR} values by hand"), ("timeout", "set the output's `timeout` (a duration) by hand"), ("tls", "Peregrine uses TLS when the endpoint is https://"), ("extraenvvars", "not supported")],
    },
    OutputMap {
        section: "webhook",
        enabled_by: "address",
        kind: "webhook",
        fields: &[field("address", "url", Plain), field("method", "method", Plain)],
        special: None,
        dropped: &[("customheaders", "header values may be secrets: add `headers:` with ${VAR} values by hand")],
    },
];

/// Falcosidekick outputs Peregrine has no counterpart for, with the settings that enable them.
pub const UNSUPPORTED: &[(&str, &[&str])] = &[
    ("datadog", &["apikey"]),
    ("webex", &["webhookurl"]),
    ("cliq", &["webhookurl"]),
    ("influxdb", &["hostport"]),
    ("quickwit", &["hostport"]),
    ("stan", &["hostport"]),
    ("statsd", &["forwarder"]),
    ("dogstatsd", &["forwarder"]),
    ("aws.lambda", &["functionname"]),
    ("aws.securitylake", &["bucket"]),
    ("azure.eventhub", &["name"]),
    ("gcp.pubsub", &["topic", "projectid"]),
    ("gcp.storage", &["bucket"]),
    ("gcp.cloudfunctions", &["name"]),
    ("gcp.cloudrun", &["endpoint"]),
    ("gcp.chronicle", &["apikey", "region"]),
    ("kafkarest", &["address"]),
    ("kubeless", &["function"]),
    ("openfaas", &["functionname"]),
    ("fission", &["function"]),
    ("tekton", &["eventlistener"]),
    ("wavefront", &["endpointhost"]),
    ("grafana", &["hostport"]),
    ("policyreport", &["enabled"]),
    ("yandex.s3", &["bucket"]),
    ("yandex.datastreams", &["streamname"]),
    ("zincsearch", &["hostport"]),
    ("spyderbat", &["orguid"]),
    ("timescaledb", &["host"]),
    ("nodered", &["address"]),
    ("cloudevents", &["address"]),
    ("n8n", &["address"]),
    ("openobserve", &["hostport"]),
    ("dynatrace", &["apitoken"]),
    ("sumologic", &["receiverurl"]),
    ("otlp.traces", &["endpoint"]),
    ("otlp.metrics", &["endpoint"]),
    ("talon", &["address"]),
    ("logstash", &["address"]),
];

/// Writes `value` under `to`, as Peregrine reads it.
pub fn put(out: &mut Mapping, to: &str, setting: &Setting, how: How, notes: &mut Notes) {
    let value = match how {
        How::Plain if has_password(&setting.text) => {
            notes.secret_url(setting);
            Value::String(format!("${{{}}}", setting.env_name))
        }
        How::Plain => Value::String(setting.text.clone()),
        How::Typed => typed(&setting.text),
        How::Secret => {
            notes.secret(setting);
            Value::String(format!("${{{}}}", setting.env_name))
        }
        How::List => Value::Sequence(
            setting
                .text
                .split(',')
                .map(|s| Value::String(s.trim().to_string()))
                .filter(|v| v.as_str() != Some(""))
                .collect(),
        ),
    };
    out.insert(Value::String(to.to_string()), value);
}

/// Whether `text` is a URL with credentials in it (`https://user:password@host/`).
fn has_password(text: &str) -> bool {
    let Some((_, rest)) = text.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// `true`, `false` and whole numbers as YAML booleans and numbers; anything else as a string.
fn typed(text: &str) -> Value {
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => text
            .parse::<i64>()
            .map(|n| Value::Number(n.into()))
            .unwrap_or_else(|_| Value::String(text.to_string())),
    }
}

fn set(out: &mut Mapping, key: &str, value: impl Into<Value>) {
    out.insert(Value::String(key.to_string()), value.into());
}

fn slack_format(src: &Source, section: &str, out: &mut Mapping, _: &mut Notes) {
    if src
        .get(&format!("{section}.outputformat"))
        .is_some_and(|f| f.text == "text")
    {
        set(out, "format", "text");
    }
}

fn smtp_host(src: &Source, section: &str, out: &mut Mapping, notes: &mut Notes) {
    let Some(hostport) = src.get(&format!("{section}.hostport")) else {
        return;
    };
    match hostport.text.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => {
            set(out, "host", host);
            set(out, "port", typed(port));
            let encryption = match (port, src.get(&format!("{section}.tls"))) {
                ("465", _) => "tls",
                (_, Some(tls)) if tls.text == "false" => "none",
                _ => "starttls",
            };
            set(out, "encryption", encryption);
        }
        _ => set(out, "host", hostport.text.as_str()),
    }
    notes.changed(
        &format!("{section}.hostport"),
        "split into host and port; encryption from the port and smtp.tls (465: tls, else starttls unless tls is false)",
    );
}

fn elasticsearch_extras(src: &Source, section: &str, out: &mut Mapping, notes: &mut Notes) {
    let password = src.get(&format!("{section}.password")).is_some();
    if password && src.get(&format!("{section}.username")).is_none() {
        set(out, "username", "elastic");
        notes.changed(
            &format!("{section}.username"),
            "was empty with a password set; Peregrine needs one, so `elastic` is written: check it",
        );
    }
    if let Some(suffix) = src.get(&format!("{section}.suffix")) {
        let suffix = if suffix.text == "annually" {
            "yearly"
        } else {
            suffix.text.as_str()
        };
        set(out, "index_suffix", suffix);
    }
    let enabled = src.get(&format!("{section}.batching.enabled"));
    if enabled.as_ref().is_some_and(|b| b.text == "false") {
        notes.changed(
            &format!("{section}.batching.enabled"),
            "Peregrine always uses the _bulk API, in batches",
        );
    }
    let mut batch = Mapping::new();
    if let Some(size) = src.get(&format!("{section}.batching.batchsize")) {
        set(&mut batch, "max_bytes", typed(&size.text));
    }
    if let Some(interval) = src.get(&format!("{section}.batching.flushinterval")) {
        set(&mut batch, "max_wait", interval.text.as_str());
    }
    if !batch.is_empty() {
        set(out, "batch", Value::Mapping(batch));
    }
}

fn loki_line(src: &Source, section: &str, out: &mut Mapping, _: &mut Notes) {
    let json = src
        .get(&format!("{section}.format"))
        .is_some_and(|f| f.text == "json");
    set(out, "line", if json { "json" } else { "output" });
}

fn aws_common(src: &Source, _: &str, out: &mut Mapping, notes: &mut Notes) {
    for (from, to) in [
        ("aws.region", "region"),
        ("aws.rolearn", "role_arn"),
        ("aws.externalid", "external_id"),
    ] {
        if let Some(setting) = src.get(from) {
            put(out, to, &setting, How::Plain, notes);
        }
    }
}

fn kafka_extras(src: &Source, section: &str, out: &mut Mapping, notes: &mut Notes) {
    let key = format!("{section}.compression");
    if let Some(compression) = src.get(&key) {
        match compression.text.to_ascii_lowercase().as_str() {
            c @ ("none" | "gzip" | "snappy" | "lz4") => set(out, "compression", c),
            "" | "null" => {}
            other => notes.dropped(&key, &format!("Peregrine compresses with none, gzip, snappy or lz4, not {other}; messages are sent uncompressed")),
        }
    }
    if src
        .get(&format!("{section}.tls"))
        .is_some_and(|t| t.text == "true")
    {
        set(out, "tls", Value::Mapping(Mapping::new()));
    }
    kafka_sasl(src, section, out, notes);
}

fn kafka_sasl(src: &Source, section: &str, out: &mut Mapping, notes: &mut Notes) {
    let Some(mechanism) = src.get(&format!("{section}.sasl")) else {
        return;
    };
    let mechanism = match mechanism.text.to_ascii_uppercase().as_str() {
        "SCRAM_SHA256" | "SCRAM-SHA-256" => "SCRAM-SHA-256",
        "SCRAM_SHA512" | "SCRAM-SHA-512" => "SCRAM-SHA-512",
        _ => "PLAIN",
    };
    let mut sasl = Mapping::new();
    set(&mut sasl, "mechanism", mechanism);
    if let Some(user) = src.get(&format!("{section}.username")) {
        put(&mut sasl, "username", &user, How::Plain, notes);
    }
    if let Some(password) = src.get(&format!("{section}.password")) {
        put(&mut sasl, "password", &password, How::Secret, notes);
    }
    set(out, "sasl", Value::Mapping(sasl));
}

fn alertmanager_labels(src: &Source, section: &str, out: &mut Mapping, notes: &mut Notes) {
    let labels = src.get_map(&format!("{section}.extralabels"));
    if !labels.is_empty() {
        let map = labels
            .into_iter()
            .map(|(k, v)| (Value::String(k), Value::String(v)))
            .collect();
        set(out, "labels", Value::Mapping(map));
    }
    match src.get(&format!("{section}.expiresafter")) {
        Some(seconds) if seconds.text != "0" => {
            set(out, "expire_after", format!("{}s", seconds.text));
            notes.changed(
                &format!("{section}.expiresafter"),
                "seconds written as a duration",
            );
        }
        // Falcosidekick sends no endsAt then; Peregrine's default would be 5 minutes.
        _ => set(out, "expire_after", "0s"),
    }
    notes.changed(
        section,
        "Falcosidekick made every output field a label; Peregrine sends alertname, rule, priority, hostname and source: list the fields your routes and inhibitions match on under `label_fields`",
    );
}

fn syslog_address(src: &Source, section: &str, out: &mut Mapping, notes: &mut Notes) {
    let host = src
        .get(&format!("{section}.host"))
        .map(|s| s.text)
        .unwrap_or_default();
    let port = src
        .get(&format!("{section}.port"))
        .map_or("514".to_string(), |s| s.text);
    let protocol = src
        .get(&format!("{section}.protocol"))
        .map_or("tcp".to_string(), |s| s.text.to_ascii_lowercase());
    set(out, "address", format!("{protocol}://{host}:{port}"));
    notes.changed(
        &format!("{section}.host"),
        "host, port and protocol joined into address",
    );
}

fn redis_url(src: &Source, section: &str, out: &mut Mapping, notes: &mut Notes) {
    let address = src
        .get(&format!("{section}.address"))
        .map(|s| s.text)
        .unwrap_or_default();
    let database = src
        .get(&format!("{section}.database"))
        .map_or("0".to_string(), |s| s.text);
    let credentials = match src.get(&format!("{section}.password")) {
        Some(password) => {
            notes.secret(&password);
            format!(":${{{}}}@", password.env_name)
        }
        None => String::new(),
    };
    set(
        out,
        "url",
        format!("redis://{credentials}{address}/{database}"),
    );
    let key = src
        .get(&format!("{section}.key"))
        .map_or("falco".to_string(), |k| k.text);
    match src.get(&format!("{section}.storagetype")).map(|s| s.text) {
        Some(kind) if kind == "hashmap" => {
            set(out, "list", key);
            notes.changed(
                &format!("{section}.storagetype"),
                "hashmap is not supported: alerts go to a list of that key instead",
            );
        }
        _ => set(out, "list", key),
    }
    src.mark(&format!("{section}.checkcert"));
}

fn rabbitmq_default_exchange(src: &Source, section: &str, out: &mut Mapping, notes: &mut Notes) {
    if src.get(&format!("{section}.queue")).is_some() {
        set(out, "exchange", "");
        notes.changed(
            &format!("{section}.queue"),
            "published to the default exchange with the queue's name as routing key, as Falcosidekick does",
        );
    }
}

fn mqtt_url(src: &Source, section: &str, out: &mut Mapping, notes: &mut Notes) {
    let Some(broker) = src.get(&format!("{section}.broker")) else {
        return;
    };
    let (secure, rest) = match broker.text.split_once("://") {
        Some(("ssl" | "tls" | "mqtts", rest)) => (true, rest.to_string()),
        Some((_, rest)) => (false, rest.to_string()),
        None => (false, broker.text.clone()),
    };
    let user = src.get(&format!("{section}.user")).map(|u| u.text);
    let credentials = match (user, src.get(&format!("{section}.password"))) {
        (Some(user), Some(password)) => {
            notes.secret(&password);
            format!("{user}:${{{}}}@", password.env_name)
        }
        (Some(user), None) => format!("{user}@"),
        _ => String::new(),
    };
    let scheme = if secure { "mqtts" } else { "mqtt" };
    set(out, "url", format!("{scheme}://{credentials}{rest}"));
}

fn nats_subject(src: &Source, section: &str, out: &mut Mapping, _: &mut Notes) {
    let template = src
        .get(&format!("{section}.subjecttemplate"))
        .map_or("falco.<priority>.<rule>".to_string(), |s| s.text);
    set(
        out,
        "subject",
        template
            .replace("<priority>", "{priority}")
            .replace("<rule>", "{rule}"),
    );
}

fn datadog_site(src: &Source, section: &str, out: &mut Mapping, _: &mut Notes) {
    if let Some(host) = src.get(&format!("{section}.host")) {
        let site = host
            .text
            .trim_end_matches('/')
            .rsplit("logs.")
            .next()
            .unwrap_or_default()
            .to_string();
        if !site.is_empty() && !site.contains("://") {
            set(out, "site", site);
        } else {
            set(out, "url", host.text.as_str());
        }
    }
}

fn splunk_url(src: &Source, section: &str, out: &mut Mapping, _: &mut Notes) {
    if let Some(host) = src.get(&format!("{section}.host")) {
        let base = host.text.trim_end_matches('/');
        let base = base
            .strip_suffix("/services/collector/event")
            .unwrap_or(base);
        set(out, "url", base);
    }
}

fn otlp_endpoint(src: &Source, section: &str, out: &mut Mapping, notes: &mut Notes) {
    if let Some(endpoint) = src.get(&format!("{section}.endpoint")) {
        set(
            out,
            "endpoint",
            endpoint
                .text
                .trim_end_matches('/')
                .trim_end_matches("/v1/logs"),
        );
    }
    if src
        .get(&format!("{section}.protocol"))
        .is_some_and(|p| p.text.starts_with("grpc"))
    {
        notes.changed(&format!("{section}.protocol"), "Peregrine speaks OTLP/HTTP with protobuf: point endpoint at the collector's HTTP port (4318)");
    }
}
