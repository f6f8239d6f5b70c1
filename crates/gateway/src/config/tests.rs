use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "HOOK_TOKEN" => Some("tok-123".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fn problems(text: &str) -> Vec<String> {
    Config::parse(text, &env)
        .unwrap_err()
        .0
        .iter()
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn the_contract_example_loads() {
    let text = r#"
listen: "127.0.0.1:2801"
max_body_bytes: 1048576
auth:
  bearer_token: "${HOOK_TOKEN}"
spool:
  dir: "./data/spool"
custom_fields: { cluster: prod }
outputs:
  - name: ops-hook
    type: webhook
    url: "http://127.0.0.1:9000/hook"
    min_priority: warning
    match:
      rules: ["Read sensitive file*"]
      tags: [mitre_credential_access]
      sources: [syscall]
    timeout: 5s
    retry: { max_attempts: 12, initial_backoff: 200ms, max_backoff: 60s }
  - name: console
    type: stdout
"#;
    let c = Config::parse(text, &env).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:2801");
    assert_eq!(c.bearer_token.as_ref().unwrap().expose(), "tok-123");
    assert_eq!(c.custom_fields["cluster"], "prod");
    assert_eq!(c.outputs.len(), 2);
    let hook = &c.outputs[0];
    assert_eq!(hook.name, "ops-hook");
    assert_eq!(hook.output_type.name, "webhook");
    assert_eq!(hook.policy.max_attempts, 12);
    assert_eq!(hook.policy.initial_backoff, Duration::from_millis(200));
    assert_eq!(hook.policy.max_backoff, Duration::from_secs(60));
    assert_eq!(hook.policy.timeout, Duration::from_secs(5));
    assert_eq!(hook.max_in_flight, 4);
    assert_eq!(c.shutdown_grace, Duration::from_secs(10));
    // The secret never prints.
    assert!(!format!("{c:?}").contains("tok-123"));
}

#[test]
fn defaults_follow_falcosidekick() {
    let c = Config::parse("outputs: []", &env).unwrap();
    assert_eq!(c.listen.to_string(), "0.0.0.0:2801");
    assert_eq!(c.max_body_bytes, 1 << 20);
    assert!(c.bearer_token.is_none());
}

#[test]
fn every_problem_is_reported_with_its_key_path() {
    let text = r#"
listen: "nowhere"
colour: blue
spool: { dir: /tmp/x, max_bytes: "lots" }
outputs:
  - name: a
    type: webhook
    url: "http://127.0.0.1/x"
    retry: { max_backoff: 5 }
  - name: a
    type: webhook
    url: "http://127.0.0.1/y"
    urll: "typo"
  - name: b
    type: carrier-pigeon
  - name: c
    type: kafka
    brokers: "localhost"
    topic: falco
  - name: d
    type: webhook
    url: "http://127.0.0.1/${MISSING}"
    min_priority: urgent
    max_in_flight: 0
"#;
    let got = problems(text);
    let expect = [
        "listen: 'nowhere' is not an address:port",
        "colour: unknown key",
        "spool.max_bytes: 'lots' is not a size",
        "outputs[0].retry.max_backoff: invalid type",
        "outputs[1].urll: unknown field `urll`, expected one of `url`, `method`, `headers`",
        "outputs[2].type: unknown output type 'carrier-pigeon'",
        "outputs[3].brokers: 'localhost' is not host:port",
        "outputs[4].url: environment variable MISSING is not set",
        "outputs[4].min_priority: unknown priority 'urgent'",
        "outputs[4].max_in_flight: must be at least 1",
    ];
    for e in expect {
        assert!(
            got.iter().any(|g| g.starts_with(e)),
            "missing '{e}' in {got:#?}"
        );
    }
}

#[test]
fn duplicate_names_and_bad_names_are_refused() {
    let got = problems(
        r#"
outputs:
  - { name: a, type: stdout }
  - { name: a, type: stdout }
  - { name: "../etc", type: stdout }
"#,
    );
    assert!(
        got.iter()
            .any(|g| g.starts_with("outputs[1].name: 'a' is already used")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|g| g.starts_with("outputs[2].name: '../etc' must be")),
        "{got:?}"
    );
}

#[test]
fn interpolation_is_not_yaml_injection() {
    let c = Config::parse(
        "custom_fields:\n  note: \"${HOOK_TOKEN}: [1, 2]\"\n  empty: \"${EMPTY}\"",
        &env,
    )
    .unwrap();
    assert_eq!(c.custom_fields["note"], "tok-123: [1, 2]");
    assert_eq!(c.custom_fields["empty"], "");
}

#[test]
fn a_variable_can_have_a_default() {
    let c = Config::parse(
        "custom_fields:\n  a: \"${MISSING:-fallback}\"\n  b: \"${EMPTY:-was empty}\"\n  c: \"${HOOK_TOKEN:-unused}\"\n  d: \"${MISSING:-}\"\n  e: \"pa$$word $HOME\"",
        &env,
    )
    .unwrap();
    assert_eq!(c.custom_fields["a"], "fallback");
    assert_eq!(c.custom_fields["b"], "was empty");
    assert_eq!(c.custom_fields["c"], "tok-123");
    assert_eq!(c.custom_fields["d"], "");
    assert_eq!(
        c.custom_fields["e"], "pa$$word $HOME",
        "a bare $ stays as written"
    );
    let c = Config::parse("custom_fields:\n  a: \"${HOOK_TOKEN:?set it}\"", &env).unwrap();
    assert_eq!(c.custom_fields["a"], "tok-123");
    let e = Config::parse(
        "custom_fields:\n  a: \"${MISSING:?the Slack webhook, from the vault}\"\n  b: \"${EMPTY:?}\"",
        &env,
    )
    .unwrap_err();
    assert_eq!(
        e.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "custom_fields.a: MISSING: the Slack webhook, from the vault",
            "custom_fields.b: environment variable EMPTY is not set or empty"
        ]
    );
    let e = Config::parse("custom_fields:\n  a: \"${BAD NAME:-x}\"", &env).unwrap_err();
    assert_eq!(
        e.0[0].to_string(),
        "custom_fields.a: '${BAD NAME:-x}' is not a valid variable reference"
    );
}

#[test]
fn lists_take_a_sequence_or_a_comma_separated_string() {
    let c = Config::parse(
        r#"
outputs:
  - name: a
    type: stdout
    match: { tags: "a, b", sources: [syscall, k8s_audit] }
"#,
        &env,
    )
    .unwrap();
    let route = &c.outputs[0].route;
    let alert = |tags: &[&str], source: &str| {
        peregrine_engine::Alert::from_json(serde_json::json!({
            "rule": "r", "priority": "Debug", "time": "2026-01-01T00:00:00Z", "tags": tags, "source": source
        }))
        .unwrap()
    };
    assert!(route.matches(&alert(&["b"], "k8s_audit")));
    assert!(!route.matches(&alert(&["c"], "syscall")));
}

#[test]
fn yaml_syntax_errors_have_a_location() {
    let got = problems("outputs:\n  - name: a\n   type: stdout\n");
    assert!(got[0].starts_with("not valid YAML"), "{got:?}");
    assert!(got[0].contains("line"), "{got:?}");
}

#[test]
fn chat_and_paging_outputs_load_with_storm_control() {
    let text = r#"
outputs:
  - name: sec-slack
    type: slack
    webhook_url: "https://hooks.slack.com/services/T0001/B0001/${HOOK_TOKEN}"
    mention: { text: "<!here>", min_priority: critical }
    dedup: { window: 2m }
  - name: teams
    type: teams
    webhook_url: "https://example.webhook.office.com/x"
    format: messagecard
  - name: oncall
    type: pagerduty
    routing_key: "R0UT1NGKEY0123456789abcdefABCDEF"
    region: eu
    min_priority: critical
    dedup: { window: 10m, fields: [rule, k8s.ns.name] }
"#;
    let c = Config::parse(text, &env).unwrap();
    let kinds: Vec<_> = c.outputs.iter().map(|o| o.output_type.name).collect();
    assert_eq!(kinds, ["slack", "teams", "pagerduty"]);
    let storm = c.outputs[0].storm.as_ref().unwrap();
    assert_eq!(storm.window, Duration::from_secs(120));
    assert_eq!(
        storm.fingerprint.fields(),
        ["rule", "hostname", "container.id"]
    );
    assert!(c.outputs[1].storm.is_none());
    assert_eq!(
        c.outputs[2].storm.as_ref().unwrap().fingerprint.fields(),
        ["rule", "k8s.ns.name"]
    );
    let printed = format!(
        "{c:?} {}",
        c.outputs
            .iter()
            .map(|o| o.settings.describe())
            .collect::<Vec<_>>()
            .join(" ")
    );
    for secret in ["tok-123", "T0001", "R0UT1NGKEY"] {
        assert!(!printed.contains(secret), "{secret} printed");
    }
}

#[test]
fn storm_control_and_chat_keys_are_checked_with_their_paths() {
    let p = problems(
        r#"
outputs:
  - { name: hook, type: webhook, url: "http://127.0.0.1:1/", dedup: { window: 1m } }
  - { name: s, type: slack, webhook_url: "http://127.0.0.1:1/", dedup: { window: 0s } }
  - { name: s2, type: slack, webhook_url: "http://127.0.0.1:1/", dedup: { window: 1m, fields: [] } }
  - { name: pd, type: pagerduty, routing_key: "${HOOK_TOKEN}" }
  - { name: t, type: teams, webhook_url: "http://127.0.0.1:1/", format: card }
"#,
    );
    assert!(
        p[0].starts_with("outputs[0].dedup: storm control is for chat, paging and plugin outputs (slack, teams, discord, googlechat, mattermost, rocketchat, telegram, pagerduty, opsgenie, grafana_oncall, ntfy, gotify, smtp, falcosidekick_ui, exec); a webhook output receives every alert"),
        "{p:?}"
    );
    assert_eq!(p[1], "outputs[1].dedup.window: must be greater than 0");
    assert!(
        p[2].starts_with("outputs[2].dedup.fields: needs at least one field"),
        "{p:?}"
    );
    assert!(
        p[3].starts_with("outputs[3].routing_key: must be the 32-character integration key"),
        "{p:?}"
    );
    assert!(!p[3].contains("tok-123"));
    assert!(
        p[4].starts_with("outputs[4].format: unknown variant `card`"),
        "{p:?}"
    );
    assert_eq!(p.len(), 5, "{p:?}");
}

#[test]
fn kafka_inputs_load_and_their_problems_have_paths() {
    let c = Config::parse(
        r#"
inputs:
  - type: kafka
    brokers: "k1:9092,k2:9092"
    topic: falco
    sasl: { mechanism: SCRAM-SHA-512, username: gw, password: "${HOOK_TOKEN}" }
"#,
        &env,
    )
    .unwrap();
    let crate::input::InputConfig::Kafka(k) = &c.inputs[0];
    assert_eq!(k.brokers.0, ["k1:9092", "k2:9092"]);
    assert_eq!(k.group_id, "peregrine-gateway");
    assert!(!format!("{c:?}").contains("tok-123"));
    assert_eq!(
        c.inputs[0].describe(),
        "Kafka topic falco on k1:9092,k2:9092 as group peregrine-gateway"
    );

    let p = problems(
        r#"
inputs:
  - type: kafka
    brokers: "k1:9092"
    topic: "bad topic"
  - type: rabbitmq
  - type: kafka
    brokers: nohost
    topic: t
  - type: kafka
    brokers: "k1:9092"
    topic: t
    partitions: 3
  - type: kafka
    brokers: "k1:9092"
    topic: t
    librdkafka: { "sasl.pasword": "${HOOK_TOKEN}" }
  - "kafka"
"#,
    );
    let at = |prefix: &str| p.iter().any(|e| e.starts_with(prefix));
    assert!(
        at("inputs[0].topic: 'bad topic' is not a valid topic name"),
        "{p:?}"
    );
    assert!(at("inputs[1].type: unknown input type 'rabbitmq'"), "{p:?}");
    assert!(at("inputs[2].brokers: 'nohost' is not host:port"), "{p:?}");
    assert!(
        at("inputs[3].partitions: unknown field `partitions`"),
        "{p:?}"
    );
    assert!(
        at("inputs[4].librdkafka: librdkafka refused 'sasl.pasword'"),
        "{p:?}"
    );
    assert!(
        !p.iter().any(|e| e.contains("tok-123")),
        "a mistyped secret never prints: {p:?}"
    );
    assert!(at("inputs[5]: must be a mapping"), "{p:?}");
    assert_eq!(p.len(), 6, "{p:?}");
}

#[test]
fn segments_fit_the_spool_and_bodies_fit_a_record() {
    let spool = |text: &str| Config::parse(text, &env).unwrap().spool;
    // Left out, a segment is an eighth of the spool, at most 64 MiB.
    assert_eq!(
        spool("spool: { max_bytes: 1MiB }\noutputs: []\n").segment_bytes,
        128 << 10
    );
    assert_eq!(spool("outputs: []\n").segment_bytes, 64 << 20);
    assert_eq!(
        problems("spool: { max_bytes: 1MiB, segment_bytes: 512KiB }\noutputs: []\n"),
        ["spool.segment_bytes: must be at most a quarter of spool.max_bytes (262144): space is freed a whole segment at a time"]
    );
    assert_eq!(
        problems("max_body_bytes: 100MiB\nspool: { max_bytes: 1GiB }\nlimits: { inflight_body_bytes: 1GiB }\noutputs: []\n"),
        ["max_body_bytes: must be at most 32MiB: one alert is one spool record, and records are at most 64MiB"]
    );
}

#[test]
fn backlog_limits_load_with_their_defaults() {
    let c = Config::parse(
        "spool: { max_bytes: 64MiB }\noutputs:\n  - { name: siem, type: stdout }\n  - { name: chat, type: stdout, max_backlog: 8MiB, on_backlog_full: dead_letter_oldest }\n  - { name: page, type: stdout, on_backlog_full: dead_letter_oldest }\n  - { name: archive, type: stdout, max_backlog: 16MiB }\n",
        &env,
    )
    .unwrap();
    let limits: Vec<BacklogLimit> = c.outputs.iter().map(|o| o.backlog).collect();
    let (block, shed) = (BacklogPolicy::Block, BacklogPolicy::DeadLetterOldest);
    assert_eq!(
        limits,
        [
            // Only the spool's own limit: ingest stops when it is full, as before.
            BacklogLimit {
                max_bytes: None,
                policy: block
            },
            BacklogLimit {
                max_bytes: Some(8 << 20),
                policy: shed
            },
            // Half the spool, so that one shedding output never fills it.
            BacklogLimit {
                max_bytes: Some(32 << 20),
                policy: shed
            },
            BacklogLimit {
                max_bytes: Some(16 << 20),
                policy: block
            },
        ]
    );
}

#[test]
fn backlog_limits_that_cannot_work_are_refused_with_their_paths() {
    let found = problems(
        "spool: { max_bytes: 8MiB, segment_bytes: 1MiB }\noutputs:\n  - { name: a, type: stdout, on_backlog_full: drop_newest }\n  - { name: b, type: stdout, max_backlog: 7MiB, on_backlog_full: dead_letter_oldest }\n  - { name: c, type: stdout, max_backlog: 9MiB }\n  - { name: d, type: stdout, max_backlog: 0 }\n",
    );
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(
        found[0].starts_with("outputs[0].on_backlog_full: 'drop_newest' is not a backlog policy"),
        "{found:#?}"
    );
    assert!(
        found[1].starts_with(
            "outputs[1].max_backlog: must be at most 6291456 bytes with dead_letter_oldest"
        ),
        "{found:#?}"
    );
    assert!(
        found[2].starts_with("outputs[2].max_backlog: is more than spool.max_bytes"),
        "{found:#?}"
    );
    assert!(
        found[3].starts_with("outputs[3].max_backlog: must be greater than 0"),
        "{found:#?}"
    );
}

#[test]
fn an_exec_output_takes_one_batch_at_a_time() {
    let c = Config::parse(
        "outputs:\n  - { name: p, type: exec, command: [\"true\"] }\n",
        &env,
    )
    .unwrap();
    assert_eq!(c.outputs[0].max_in_flight, 1);
    let e = Config::parse(
        "outputs:\n  - { name: p, type: exec, command: [\"true\"], max_in_flight: 4 }\n",
        &env,
    )
    .unwrap_err();
    assert_eq!(
        e.0[0].to_string(),
        "outputs[0].max_in_flight: must be at most 1 for type exec"
    );
}

#[test]
fn the_console_is_off_by_default_and_has_no_default_user() {
    let base = "outputs: [{name: out, type: stdout}]\n";
    assert_eq!(Config::parse(base, &env).unwrap().ui, None);
    assert_eq!(
        problems(&format!("{base}ui: {{enabled: true}}\n")),
        ["ui.users: the console needs at least one user (there is no default password): add `{ name: alice, password_hash: \"$argon2id$…\", role: operator }`, the hash printed by `peregrine-gateway hash-password`"]
    );
}

#[test]
fn console_users_need_argon2_hashes_and_the_hash_is_never_printed() {
    let good = crate::console::config::hash_password("correct horse");
    assert!(
        good.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{good}"
    );
    assert!(crate::console::config::verify_password(
        "correct horse",
        &good
    ));
    assert!(!crate::console::config::verify_password(
        "correct horsf",
        &good
    ));
    let text = format!(
        r#"
spool: {{dir: /var/lib/peregrine}}
ui:
  enabled: true
  users:
    - {{name: alice, password_hash: "{good}", role: operator}}
    - {{name: bob, password_hash: "{good}", role: viewer}}
  retention: {{max_age: 7d, max_bytes: 2GiB}}
"#
    );
    let ui = Config::parse(&text, &env).unwrap().ui.expect("enabled");
    assert_eq!(ui.users.len(), 2);
    assert_eq!(ui.users[1].role, crate::console::config::Role::Viewer);
    assert_eq!(ui.retention.max_age, Duration::from_secs(7 * 24 * 3600));
    assert_eq!(ui.retention.max_bytes, 2 << 30);
    assert_eq!(
        ui.index_path,
        PathBuf::from("/var/lib/peregrine/console/index.sqlite")
    );

    let md5 = "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/";
    let bcrypt = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
    let text = format!(
        r#"
ui:
  enabled: true
  users:
    - {{name: alice, password_hash: "hunter2", role: operator}}
    - {{name: alice, password_hash: "{bcrypt}", role: viewer}}
    - {{name: "", password_hash: "{md5}", role: admin}}
  retention: {{max_bytes: 10KiB}}
"#
    );
    let found = problems(&text);
    assert_eq!(
        found.len(),
        1,
        "a role that does not exist stops the section: {found:#?}"
    );
    assert!(
        found[0].starts_with("ui.users[2].role: unknown variant `admin`"),
        "{found:#?}"
    );
    let found = problems(&text.replace("role: admin", "role: viewer"));
    let paths: Vec<&str> = found.iter().map(|p| p.split(':').next().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "ui.users[0].password_hash",
            "ui.users[1].name",
            "ui.users[1].password_hash",
            "ui.users[2].name",
            "ui.users[2].password_hash",
            "ui.retention.max_bytes"
        ],
        "{found:#?}"
    );
    let printed = found.join("\n");
    for secret in ["hunter2", "R9h/cIPz", "qjXMvbEw"] {
        assert!(!printed.contains(secret), "{printed}");
    }
}

#[test]
fn proxy_sign_in_needs_the_proxys_addresses() {
    let ok = "ui: {enabled: true, proxy_auth: {header: X-Forwarded-User, trusted_proxies: [10.0.0.5]}}\n";
    let ui = Config::parse(ok, &env)
        .unwrap()
        .ui
        .expect("enabled without users");
    let proxy = ui.proxy_auth.expect("proxy sign-in");
    assert_eq!(proxy.header, "x-forwarded-user");
    assert_eq!(proxy.default_role, crate::console::config::Role::Viewer);
    assert_eq!(
        problems("ui: {enabled: true, proxy_auth: {header: X-Forwarded-User, trusted_proxies: []}}\n"),
        ["ui.proxy_auth.trusted_proxies: list the proxy's addresses: a header anyone can send is not a sign-in"]
    );
    let bad = problems(
        "ui: {enabled: true, proxy_auth: {header: \"bad header\", trusted_proxies: [10.0.0.5]}}\n",
    );
    assert_eq!(
        bad,
        ["ui.proxy_auth.header: 'bad header' is not a header name"]
    );
}

#[test]
fn certificate_sign_in_needs_mutual_tls_and_a_fingerprint() {
    let text =
        "ui: {enabled: true, client_certificates: [{sha256: 'AB:CD', name: ops, role: viewer}]}\n";
    assert_eq!(
        problems(text),
        [
            "ui.client_certificates[0].sha256: must be a SHA-256 fingerprint (64 hex digits, colons allowed), as `openssl x509 -noout -fingerprint -sha256` prints it",
        ]
    );
    let fp = "ab".repeat(32);
    let text = format!("ui: {{enabled: true, client_certificates: [{{sha256: '{fp}', name: ops, role: viewer}}]}}\n");
    assert_eq!(
        problems(&text),
        ["ui.client_certificates: needs a listener that asks for client certificates (tls.client_ca_file)"]
    );
}
