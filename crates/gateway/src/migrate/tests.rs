use std::collections::BTreeMap;

use super::from_falcosidekick;

fn migrate(file: &str, env: &[(&str, &str)]) -> (serde_yaml_ng::Value, Vec<String>) {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let migration = from_falcosidekick(file, env).unwrap();
    let config = serde_yaml_ng::from_str(&migration.config).unwrap();
    (config, migration.notes)
}

fn output<'a>(config: &'a serde_yaml_ng::Value, name: &str) -> &'a serde_yaml_ng::Value {
    config["outputs"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no output {name} in {config:?}"))
}

#[test]
fn the_environment_wins_over_the_file_as_in_falcosidekick() {
    let file =
        "slack:\n  webhookurl: https://hooks.slack.com/services/FILE\n  minimumPriority: notice\n";
    let (config, _) = migrate(file, &[("SLACK_MINIMUMPRIORITY", "critical")]);
    let slack = output(&config, "slack");
    assert_eq!(slack["min_priority"], "critical");
    assert_eq!(slack["webhook_url"], "${SLACK_WEBHOOKURL}");
}

#[test]
fn a_secret_from_the_file_is_not_copied_and_the_note_says_where_it_must_go() {
    let file = "pagerduty:\n  routingkey: r0ut1ngk3y\n  region: eu\n";
    let migration = from_falcosidekick(file, BTreeMap::new()).unwrap();
    assert!(!migration.config.contains("r0ut1ngk3y"));
    assert!(migration
        .config
        .contains("routing_key: ${PAGERDUTY_ROUTINGKEY}"));
    assert!(migration.config.contains("region: eu"));
    let note = migration.notes.join("\n");
    assert!(
        note.contains(
            "PAGERDUTY_ROUTINGKEY: written as ${PAGERDUTY_ROUTINGKEY}; set that variable"
        ),
        "{note}"
    );
    assert!(!note.contains("r0ut1ngk3y"));
}

#[test]
fn combined_settings_become_peregrine_urls_and_addresses() {
    let file = "\
syslog: { host: siem.example, port: 6514, protocol: tcp }
redis: { address: 'redis:6379', password: pw, database: 2, key: alerts }
mqtt: { broker: 'ssl://broker:8883', user: falco, password: pw, topic: falco/alerts }
nats: { hostport: 'nats://nats:4222', subjecttemplate: 'sec.<priority>.<rule>' }
smtp: { hostport: 'smtp.example:465', from: a@example, to: 'b@example, c@example' }
alertmanager: { hostport: 'http://am1:9093,http://am2:9093', extralabels: 'team:sec,env:prod', expiresafter: 600 }
datadoglogs: { apikey: k, host: 'https://http-intake.logs.datadoghq.eu/' }
";
    let (config, notes) = migrate(file, &[]);
    assert_eq!(
        output(&config, "syslog")["address"],
        "tcp://siem.example:6514"
    );
    assert_eq!(
        output(&config, "redis")["url"],
        "redis://:${REDIS_PASSWORD}@redis:6379/2"
    );
    assert_eq!(output(&config, "redis")["list"], "alerts");
    assert_eq!(
        output(&config, "mqtt")["url"],
        "mqtts://falco:${MQTT_PASSWORD}@broker:8883"
    );
    assert_eq!(output(&config, "nats")["subject"], "sec.{priority}.{rule}");
    let smtp = output(&config, "smtp");
    assert_eq!(
        (smtp["host"].as_str(), smtp["port"].as_i64()),
        (Some("smtp.example"), Some(465))
    );
    assert_eq!(smtp["encryption"], "tls");
    assert_eq!(smtp["to"][1], "c@example");
    let am = output(&config, "alertmanager");
    assert_eq!(am["urls"][1], "http://am2:9093");
    assert_eq!(am["labels"]["env"], "prod");
    assert_eq!(am["expire_after"], "600s");
    assert_eq!(output(&config, "datadoglogs")["site"], "datadoghq.eu");
    assert!(notes
        .iter()
        .any(|n| n.starts_with("syslog.host: host, port and protocol")));
}

#[test]
fn every_setting_left_behind_is_listed_with_why_and_defaults_are_not() {
    let file = "\
slack:
  webhookurl: https://hooks.slack.com/services/X
  messageformat: 'Alert {{ .Rule }}'
  checkcert: false
  outputformat: all
  somethingnew: 1
webex: { webhookurl: https://webex.example/hook }
templatedfields: { team: '{{ .Rule }}' }
";
    let (_, notes) = migrate(file, &[]);
    let notes = notes.join("\n");
    for expected in [
        "slack.messageformat: not carried over: Falcosidekick's Go templates",
        "slack.checkcert: written as `tls: {insecure_skip_verify: true}`",
        "slack.somethingnew: not carried over: no Peregrine equivalent",
        "webex: not carried over: Peregrine has no output of this kind",
        "templatedfields: not carried over: Go templates are not supported",
    ] {
        assert!(
            notes.contains(expected),
            "missing {expected:?} in:\n{notes}"
        );
    }
    assert!(
        !notes.contains("outputformat"),
        "a default is not news:\n{notes}"
    );
}

#[test]
fn tls_and_listen_settings_carry_over() {
    let file = "\
listenaddress: 127.0.0.1
listenport: 2901
tlsserver: { deploy: true, certfile: /c.pem, keyfile: /k.pem, mutualtls: true, cacertfile: /ca.pem, notlsport: 2810 }
aws: { region: eu-west-1, rolearn: 'arn:aws:iam::1:role/r', sqs: { url: 'https://sqs.eu-west-1.amazonaws.com/1/q' } }
";
    let (config, notes) = migrate(file, &[]);
    assert_eq!(config["listen"], "127.0.0.1:2901");
    assert_eq!(config["tls"]["client_ca_file"], "/ca.pem");
    let sqs = output(&config, "aws-sqs");
    assert_eq!(sqs["queue_url"], "https://sqs.eu-west-1.amazonaws.com/1/q");
    assert_eq!(sqs["role_arn"], "arn:aws:iam::1:role/r");
    assert!(notes
        .iter()
        .any(|n| n.starts_with("tlsserver.notlsport: not carried over")));
}

#[test]
fn a_file_that_is_not_yaml_is_refused_with_its_line() {
    let err = from_falcosidekick("slack:\n  webhookurl: [\n", BTreeMap::new())
        .err()
        .unwrap();
    assert!(err.starts_with("line "), "{err}");
}

#[test]
fn digit_strings_stay_strings_and_flags_stay_typed() {
    let file = "\
loki: { hostport: 'http://loki:3100', user: '0042', tenant: '123' }
mqtt: { broker: 'mqtt:1883', topic: t, qos: 2, retained: true }
";
    let (config, _) = migrate(file, &[]);
    let loki = output(&config, "loki");
    assert_eq!(loki["username"], "0042");
    assert_eq!(loki["tenant"], "123");
    let mqtt = output(&config, "mqtt");
    assert_eq!(mqtt["qos"], 2);
    assert_eq!(mqtt["retain"], true);
}

#[test]
fn kafka_compression_is_lower_cased_and_zstd_is_reported() {
    let (config, _) = migrate(
        "kafka: { hostport: 'k:9092', topic: t, compression: GZIP }",
        &[],
    );
    assert_eq!(output(&config, "kafka")["compression"], "gzip");
    let (config, notes) = migrate(
        "kafka: { hostport: 'k:9092', topic: t, compression: ZSTD }",
        &[],
    );
    assert!(output(&config, "kafka").get("compression").is_none());
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("kafka.compression: not carried over") && n.contains("zstd")),
        "{notes:?}"
    );
}

#[test]
fn custom_headers_are_reported_and_urls_with_passwords_become_secrets() {
    let file = "webhook: { address: 'https://bot:s3cr3t@hooks.example/in', customheaders: { X-Token: abc } }";
    let migration = from_falcosidekick(file, BTreeMap::new()).unwrap();
    assert!(!migration.config.contains("s3cr3t"), "{}", migration.config);
    assert!(migration.config.contains("url: ${WEBHOOK_ADDRESS}"));
    let notes = migration.notes.join("\n");
    assert!(
        notes.contains("webhook.customheaders: not carried over"),
        "{notes}"
    );
    assert!(
        notes.contains("WEBHOOK_ADDRESS: the URL holds a password"),
        "{notes}"
    );
    assert!(
        !notes.contains("abc") && !notes.contains("s3cr3t"),
        "{notes}"
    );
}

#[test]
fn checkcert_false_becomes_insecure_skip_verify_where_outputs_have_it() {
    let file = "\
webhook: { address: 'https://hooks.example/in', checkcert: false }
smtp: { hostport: 'smtp.example:587', from: a@example, to: b@example, checkcert: false }
";
    let (config, notes) = migrate(file, &[]);
    assert_eq!(
        output(&config, "webhook")["tls"]["insecure_skip_verify"],
        true
    );
    assert!(output(&config, "smtp").get("tls").is_none());
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("smtp.checkcert: not carried over")),
        "{notes:?}"
    );
}

#[test]
fn percent_custom_fields_read_the_environment_as_peregrine_does() {
    let (config, notes) = migrate("customfields: { cluster: '%CLUSTER_NAME', team: sec }", &[]);
    assert_eq!(config["custom_fields"]["cluster"], "${CLUSTER_NAME}");
    assert_eq!(config["custom_fields"]["team"], "sec");
    assert!(
        notes
            .iter()
            .any(|n| n.contains("%CLUSTER_NAME written as ${CLUSTER_NAME}")),
        "{notes:?}"
    );
}

#[test]
fn splunk_keeps_the_base_address_and_alertmanager_keeps_falcosidekick_expiry() {
    let file = "\
splunk: { host: 'https://splunk:8088/services/collector/event', token: t }
alertmanager: { hostport: 'http://am:9093' }
gcp: { pubsub: { projectid: p, topic: t } }
";
    let (config, notes) = migrate(file, &[]);
    assert_eq!(output(&config, "splunk")["url"], "https://splunk:8088");
    assert_eq!(output(&config, "alertmanager")["expire_after"], "0s");
    assert!(
        notes.iter().any(|n| n.contains("label_fields")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("gcp.pubsub: not carried over")),
        "{notes:?}"
    );
}
