//! The outputs people read — Slack, Teams, PagerDuty — through the real gateway binary, against
//! local fakes that check each service's format and enforce its rate limit, and storm control.

use std::time::Duration;

use peregrine_e2e::falco_alert;
use peregrine_e2e::gateway::GatewayProcess;
use peregrine_e2e::receiver::Receiver;
use peregrine_fakes::{pagerduty, slack, teams, Message, Reply};
use serde_json::{json, Value};

const FAST_RETRY: &str = "retry: { max_attempts: 5, initial_backoff: 20ms, max_backoff: 200ms }";

fn series(metric: &str, output: &str, kind: &str) -> String {
    format!("{metric}{{output=\"{output}\",type=\"{kind}\"}}")
}

/// Alerts carried by a Slack message: its cards, or the lines of its list.
fn slack_alerts(body: &Value) -> Vec<String> {
    let attachments = body["attachments"].as_array().cloned().unwrap_or_default();
    let listed = attachments.len() == 1
        && body["text"]
            .as_str()
            .is_some_and(|t| t.contains(" Falco alerts: "));
    if listed {
        return attachments[0]["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "section")
            .flat_map(|b| {
                b["text"]["text"]
                    .as_str()
                    .unwrap()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
    }
    attachments
        .iter()
        .map(|a| {
            format!(
                "{} | {}",
                a["blocks"][0]["text"]["text"].as_str().unwrap(),
                a["blocks"][1]["text"]["text"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_1000_reaches_slack_whole_without_one_429() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = slack::start().await;
    let secret_path = "/services/T0BURST/B0BURST/s3cr3tp4th";
    let config = format!(
        "outputs:\n  - name: chat\n    type: slack\n    webhook_url: \"{}\"\n    {FAST_RETRY}\n",
        fake.url(secret_path)
    );
    let gw = GatewayProcess::start(tmp.path(), &config).await;
    for chunk in 0..10 {
        let alerts: Vec<Value> = (0..100)
            .map(|i| {
                falco_alert(
                    &format!("Burst alert {:04}", chunk * 100 + i),
                    "Warning",
                    &["burst"],
                )
            })
            .collect();
        assert_eq!(gw.post(&Value::Array(alerts)).await.status(), 200);
    }

    gw.wait_metric(
        &series("peregrine_output_sent_total", "chat", "slack"),
        1000.0,
        Duration::from_secs(60),
    )
    .await;
    let messages = fake.messages();
    assert!(
        messages.iter().all(Message::accepted),
        "Slack answered {:?}",
        messages.iter().map(|m| m.status).collect::<Vec<_>>()
    );
    let lines: Vec<String> = messages
        .iter()
        .flat_map(|m| slack_alerts(&m.json()))
        .collect();
    for n in 0..1000 {
        let rule = format!("Burst alert {n:04}");
        assert_eq!(
            lines.iter().filter(|l| l.contains(&rule)).count(),
            1,
            "{rule} arrives exactly once"
        );
    }
    assert!(
        messages.len() <= 15,
        "{} messages for 1000 alerts",
        messages.len()
    );
    let at: Vec<_> = messages.iter().map(|m| m.at).collect();
    eprintln!(
        "burst: 1000 alerts in {} Slack messages over {:?}",
        messages.len(),
        at.last().unwrap().duration_since(at[0])
    );
    for pair in at.windows(2) {
        assert!(
            pair[1].duration_since(pair[0]) >= Duration::from_millis(950),
            "paced to one message a second"
        );
    }
    assert!(!gw.logs().contains("s3cr3tp4th"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_429_with_retry_after_pauses_the_output() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = slack::start().await;
    fake.force(slack::rate_limited(3), 1);
    let config = format!(
        "outputs:\n  - name: chat\n    type: slack\n    webhook_url: \"{}\"\n    {FAST_RETRY}\n",
        fake.url("/services/T/B/pause")
    );
    let gw = GatewayProcess::start(tmp.path(), &config).await;
    gw.post(&falco_alert("First", "Error", &[])).await;
    fake.wait_until(Duration::from_secs(10), "the 429", |m| !m.is_empty())
        .await;
    gw.wait_metric(
        &series("peregrine_output_paused", "chat", "slack"),
        1.0,
        Duration::from_secs(2),
    )
    .await;
    gw.post(&falco_alert("Second", "Error", &[])).await;
    let got = fake
        .wait_until(Duration::from_secs(15), "both alerts", |m| {
            m.iter()
                .filter(|m| m.accepted())
                .flat_map(|m| slack_alerts(&m.json()))
                .count()
                >= 2
        })
        .await;
    assert_eq!(got[0].status, 429);
    let gap = got[1].at.duration_since(got[0].at);
    assert!(
        gap >= Duration::from_secs(3),
        "the next request came {gap:?} after the 429"
    );
    gw.wait_metric(
        &series("peregrine_output_sent_total", "chat", "slack"),
        2.0,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        gw.metric(&series(
            "peregrine_output_dead_lettered_total",
            "chat",
            "slack"
        ))
        .await,
        0.0,
        "a 429 is not an attempt that can exhaust the budget"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_not_found_dead_letters_counts_the_reason_and_logs_it_once() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = slack::start_with(peregrine_fakes::Limit::Bucket {
        per_second: 100.0,
        burst: 100.0,
        slack: 0.0,
    })
    .await;
    fake.force(slack::error(404, "channel_not_found"), 100);
    let secret_path = "/services/T0GONE/B0GONE/n0tf0undsecret";
    let config = format!(
        "outputs:\n  - name: chat\n    type: slack\n    webhook_url: \"{}\"\n    max_alerts_per_message: 1\n    rate_limit: {{ per_second: 50 }}\n    {FAST_RETRY}\n",
        fake.url(secret_path)
    );
    let gw = GatewayProcess::start(tmp.path(), &config).await;
    for i in 0..3 {
        gw.post(&falco_alert(&format!("Lost {i}"), "Error", &[]))
            .await;
    }
    gw.wait_metric(
        &series("peregrine_output_dead_lettered_total", "chat", "slack"),
        3.0,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(fake.messages().len(), 3, "a permanent error is not retried");
    assert_eq!(
        gw.metric("peregrine_output_dead_lettered_by_reason_total{output=\"chat\",reason=\"channel_not_found\",type=\"slack\"}")
            .await,
        3.0
    );
    let dead = std::fs::read_to_string(dead_letters(tmp.path(), "chat")).unwrap();
    let lines: Vec<Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(lines
        .iter()
        .all(|l| l["reason"] == "channel_not_found" && l["status"] == 404));
    let logs = gw.logs();
    let warned = logs
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("channel_not_found"))
        .count();
    assert_eq!(warned, 1, "logged once:\n{logs}");
    assert!(!logs.contains("n0tf0undsecret") && !dead.contains("n0tf0undsecret"));
}

/// The dead-letter file of `output`.
fn dead_letters(dir: &std::path::Path, output: &str) -> std::path::PathBuf {
    dir.join("spool/dead-letter")
        .join(format!("{output}.jsonl"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_202_is_sent_and_a_huge_alert_arrives_cut_under_28_kb() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = teams::start().await;
    let config = format!(
        "max_body_bytes: 4MiB\noutputs:\n  - name: teams\n    type: teams\n    webhook_url: \"{}\"\n    {FAST_RETRY}\n",
        fake.url("/workflows/x/triggers/manual/paths/invoke")
    );
    let gw = GatewayProcess::start(tmp.path(), &config).await;
    gw.post(&falco_alert("Small", "Notice", &["shell"])).await;
    let mut huge = falco_alert("Huge", "Critical", &[]);
    huge["output"] = json!("o".repeat(100_000));
    for i in 0..30 {
        huge["output_fields"][format!("big.f{i}")] = json!("v".repeat(4000));
    }
    assert_eq!(gw.post(&huge).await.status(), 200);
    gw.wait_metric(
        &series("peregrine_output_sent_total", "teams", "teams"),
        2.0,
        Duration::from_secs(10),
    )
    .await;
    let got = fake.messages();
    assert!(got
        .iter()
        .all(|m| m.status == 202 && m.body.len() <= teams::MAX_BYTES && m.problems.is_empty()));
    let huge_card = got
        .iter()
        .map(Message::json)
        .find(|b| b.to_string().contains("Critical: Huge"))
        .unwrap();
    let text = huge_card["attachments"][0]["content"]["body"][1]["text"]
        .as_str()
        .unwrap();
    assert!(text.ends_with("… [truncated]"));
}

const PD_KEY: &str = "R0UT1NGKEY0123456789abcdefABCDEF";

fn pagerduty_config(fake_url: &str) -> String {
    format!(
        "outputs:\n  - name: oncall\n    type: pagerduty\n    routing_key: \"{PD_KEY}\"\n    url: \"{fake_url}\"\n    {FAST_RETRY}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_400_dead_letters_with_pagerdutys_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = pagerduty::start().await;
    fake.force(
        Reply::new(
            400,
            json!({"status": "invalid event", "message": "Event object is invalid",
                   "errors": ["Length of 'routing_key' is incorrect (should be 32 characters)"]})
            .to_string(),
        ),
        1,
    );
    let gw = GatewayProcess::start(tmp.path(), &pagerduty_config(&fake.url("/v2/enqueue"))).await;
    gw.post(&falco_alert("Paged", "Critical", &[])).await;
    gw.wait_metric(
        &series(
            "peregrine_output_dead_lettered_total",
            "oncall",
            "pagerduty",
        ),
        1.0,
        Duration::from_secs(10),
    )
    .await;
    let dead = std::fs::read_to_string(dead_letters(tmp.path(), "oncall")).unwrap();
    let entry: Value = serde_json::from_str(dead.lines().next().unwrap()).unwrap();
    assert_eq!(entry["status"], 400);
    assert_eq!(
        entry["reason"],
        "invalid event: Length of 'routing_key' is incorrect (should be 32 characters)"
    );
    assert!(!dead.contains(PD_KEY) && !gw.logs().contains(PD_KEY));
    assert_eq!(fake.messages().len(), 1, "not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_429_pauses_at_least_30s_and_the_retry_keeps_the_dedup_key() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = pagerduty::start().await;
    fake.force(pagerduty::rate_limited(), 1);
    let gw = GatewayProcess::start(tmp.path(), &pagerduty_config(&fake.url("/v2/enqueue"))).await;
    gw.post(&falco_alert("Paged", "Critical", &[])).await;
    fake.wait_until(Duration::from_secs(10), "the 429", |m| !m.is_empty())
        .await;
    gw.wait_metric(
        &series("peregrine_output_paused", "oncall", "pagerduty"),
        1.0,
        Duration::from_secs(2),
    )
    .await;
    let got = fake.wait_accepted(1, Duration::from_secs(45)).await;
    assert_eq!(got.len(), 2, "one 429, then the retry");
    let gap = got[1].at.duration_since(got[0].at);
    assert!(gap >= Duration::from_secs(30), "retried after {gap:?}");
    assert_eq!(got[0].json()["dedup_key"], got[1].json()["dedup_key"]);
    assert_eq!(got[1].json()["dedup_key"], "Paged|node-1|host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_is_one_slack_message_and_one_digest_per_window_while_the_webhook_gets_all() {
    const TOTAL: usize = 10_000;
    let tmp = tempfile::tempdir().unwrap();
    let fake = slack::start().await;
    let hook = Receiver::ok().await;
    let config = format!(
        "outputs:\n  - name: chat\n    type: slack\n    webhook_url: \"{}\"\n    dedup: {{ window: 3s }}\n    {FAST_RETRY}\n  - name: archive\n    type: webhook\n    url: \"{}\"\n    max_in_flight: 16\n    {FAST_RETRY}\n",
        fake.url("/services/T/B/storm"),
        hook.url("/archive"),
    );
    let gw = GatewayProcess::start(tmp.path(), &config).await;
    // 10 000 identical alerts over about 7 s: 100 requests of 100, one every 70 ms.
    let started = std::time::Instant::now();
    for _ in 0..TOTAL / 100 {
        let batch: Vec<Value> = (0..100)
            .map(|_| falco_alert("Terminal shell in container", "Notice", &["shell"]))
            .collect();
        assert_eq!(gw.post(&Value::Array(batch)).await.status(), 200);
        tokio::time::sleep(Duration::from_millis(70)).await;
    }
    let sending = started.elapsed();

    gw.wait_metric(
        &series("peregrine_output_sent_total", "archive", "webhook"),
        TOTAL as f64,
        Duration::from_secs(120),
    )
    .await;
    // Every alert is either sent or suppressed, and every suppression is in a digest.
    let sent_or_suppressed = |text: &str| {
        peregrine_e2e::gateway::metric_value(
            text,
            &series("peregrine_output_sent_total", "chat", "slack"),
        ) + peregrine_e2e::gateway::metric_value(
            text,
            &series("peregrine_output_suppressed_total", "chat", "slack"),
        )
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while sent_or_suppressed(&gw.metrics().await) < TOTAL as f64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every alert was sent or suppressed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let windows = gw
        .metric(&series("peregrine_output_sent_total", "chat", "slack"))
        .await as usize;
    gw.wait_metric(
        &series("peregrine_output_digests_total", "chat", "slack"),
        windows as f64,
        Duration::from_secs(15),
    )
    .await;

    let messages = fake.messages();
    assert!(messages.iter().all(Message::accepted), "no 429");
    let items: Vec<String> = messages
        .iter()
        .flat_map(|m| slack_alerts(&m.json()))
        .collect();
    let digests: Vec<&String> = items
        .iter()
        .filter(|i| i.contains("Storm control:"))
        .collect();
    let alerts = items.len() - digests.len();
    assert_eq!(alerts, windows, "one message per window");
    assert_eq!(digests.len(), windows, "one digest per window");
    let max_windows = (sending.as_secs_f64() / 3.0).ceil() as usize + 1;
    assert!(
        (2..=max_windows).contains(&windows),
        "{windows} windows in {sending:?}"
    );
    let counted: usize = digests
        .iter()
        .map(|d| {
            let after = d.split("Storm control: ").nth(1).unwrap();
            after.split(' ').next().unwrap().parse::<usize>().unwrap()
        })
        .sum();
    assert_eq!(
        alerts + counted,
        TOTAL,
        "every alert is sent or counted in a digest"
    );
    assert_eq!(
        gw.metric(&series(
            "peregrine_output_suppressed_total",
            "chat",
            "slack"
        ))
        .await as usize,
        counted
    );

    eprintln!("storm: {TOTAL} alerts over {sending:?}: {windows} windows, {counted} alerts counted in digests, {} Slack messages", messages.len());
    let uuids = hook.uuids();
    assert_eq!(uuids.len(), TOTAL, "the webhook beside it gets every alert");
    let distinct: std::collections::BTreeSet<_> = uuids.iter().collect();
    assert_eq!(distinct.len(), TOTAL);
}

/// The commented examples in `config/gateway.yaml` for the outputs this version has, uncommented,
/// pass `--check-config`, and the summary shows no secret.
#[test]
fn the_documented_examples_are_valid_and_print_no_secret() {
    let shipped =
        std::fs::read_to_string(peregrine_e2e::workspace_root().join("config/gateway.yaml"))
            .unwrap();
    let mut blocks: Vec<Vec<String>> = Vec::new();
    for line in shipped.lines() {
        if let Some(rest) = line.strip_prefix("  # - name:") {
            blocks.push(vec![format!("  - name:{rest}")]);
        } else if let (Some(rest), Some(block)) = (line.strip_prefix("  #   "), blocks.last_mut()) {
            block.push(format!("    {rest}"));
        } else {
            blocks.push(Vec::new());
        }
    }
    let wanted = [
        "webhook",
        "slack",
        "teams",
        "pagerduty",
        "elasticsearch",
        "loki",
        "sns",
        "sqs",
        "kinesis",
        "cloudwatch_logs",
        "s3",
        "kafka",
        "alertmanager",
        "syslog",
        "redis",
        "rabbitmq",
        "mqtt",
        "nats",
        "smtp",
        "datadog",
        "splunk",
        "otlp",
        "discord",
        "googlechat",
        "mattermost",
        "rocketchat",
        "telegram",
        "opsgenie",
        "grafana_oncall",
        "ntfy",
        "gotify",
        "falcosidekick_ui",
    ];
    let mut config = String::from("outputs:\n");
    let mut names = Vec::new();
    for block in blocks.iter().filter(|b| !b.is_empty()) {
        let kind = block
            .iter()
            .find_map(|l| l.trim().strip_prefix("type: "))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        if wanted.contains(&kind) {
            names.push(block[0].trim().trim_start_matches("- name: ").to_string());
            config.push_str(&block.join("\n"));
            config.push('\n');
        }
    }
    assert_eq!(names.len(), wanted.len(), "{config}");
    let (ok, text) = check_config(&config, &[
        ("HOOK_TOKEN", "hook-s3cret"),
        ("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T0SECRET/B0SECRET/XSECRET"),
        ("TEAMS_WEBHOOK_URL", "https://prod.westus.logic.azure.com/workflows/WSECRET/triggers/manual/paths/invoke?sig=SIGSECRET"),
        ("PAGERDUTY_ROUTING_KEY", "PDKEYSECRET0123456789abcdefABCDE"),
        ("ES_PASSWORD", "espw-SECRET"),
        ("SPLUNK_HEC_TOKEN", "SPLUNKSECRET"),
        ("OTLP_TOKEN", "OTLPSECRET"),
        ("RABBITMQ_PASSWORD", "RMQSECRET"),
        ("DISCORD_WEBHOOK_URL", "https://discord.com/api/webhooks/1/DCSECRET"),
        ("GOOGLE_CHAT_WEBHOOK_URL", "https://chat.googleapis.com/v1/spaces/AAA/messages?key=GKSECRET&token=GTSECRET"),
        ("MATTERMOST_WEBHOOK_URL", "https://mm.example.com/hooks/MMSECRET"),
        ("ROCKETCHAT_WEBHOOK_URL", "https://chat.example.com/hooks/ID/RCSECRET"),
        ("TELEGRAM_BOT_TOKEN", "123456:TGSECRET"),
        ("OPSGENIE_API_KEY", "OGSECRET"),
        ("ONCALL_WEBHOOK_URL", "https://oncall.example.com/integrations/v1/formatted_webhook/OCSECRET/"),
        ("NTFY_TOKEN", "tk_NTSECRET"),
        ("GOTIFY_APP_TOKEN", "GTFSECRET"),
        ("REDIS_PASSWORD", "RDSECRET"),
        ("SMTP_PASSWORD", "SMSECRET"),
        ("DD_API_KEY", "DDSECRET"),
    ]);
    assert!(ok, "{config}\n{text}");
    for name in &names {
        assert!(text.contains(&format!("output {name} (")), "{text}");
    }
    assert!(
        text.contains("Slack webhook https://hooks.slack.com/…"),
        "{text}"
    );
    assert!(
        text.contains("dedup: one alert per rule + hostname + container.id per 300s window"),
        "{text}"
    );
    for secret in ["hook-s3cret", "SECRET", "SIGSECRET", "PDKEY"] {
        assert!(!text.contains(secret), "{secret} in:\n{text}");
    }
}

/// The commented Kafka input example in `config/gateway.yaml`, uncommented, passes
/// `--check-config` and the summary shows no password.
#[test]
fn the_documented_kafka_input_is_valid() {
    let shipped =
        std::fs::read_to_string(peregrine_e2e::workspace_root().join("config/gateway.yaml"))
            .unwrap();
    let block: Vec<&str> = shipped
        .lines()
        .skip_while(|l| *l != "# inputs:")
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .collect();
    assert!(block.len() > 3, "the example is there");
    let (ok, text) = check_config(&block.join("\n"), &[("KAFKA_PASSWORD", "kafka-pw-SECRET")]);
    assert!(ok, "{}\n{text}", block.join("\n"));
    assert!(
        text.contains("input <- Kafka topic falco on 127.0.0.1:9092 as group peregrine-gateway"),
        "{text}"
    );
    assert!(!text.contains("SECRET"), "{text}");
}

/// `peregrine-gateway --check-config` on `config` with `env`: success, and stdout + stderr.
fn check_config(config: &str, env: &[(&str, &str)]) -> (bool, String) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("gateway.yaml");
    std::fs::write(&path, config).unwrap();
    let args = [
        std::ffi::OsStr::new("--config"),
        path.as_os_str(),
        std::ffi::OsStr::new("--check-config"),
    ];
    let run = peregrine_e2e::gateway::run_cli(&args, env);
    (run.code == Some(0), run.text())
}

/// An alert whose every free-text part tries to mention, link or format.
fn hostile_alert() -> Value {
    let payload =
        "<!channel> <!here> <@U024BE7LH> <https://evil.example/login|Open the runbook> [label](https://evil.example) `x` *bold*";
    let mut alert = falco_alert(&format!("Shell spawned {payload}"), "Critical", &["shell"]);
    alert["output"] = json!(format!(
        "12:00:00.000000000: Critical Shell spawned {payload}"
    ));
    alert["output_fields"]["proc.cmdline"] = json!(format!("bash -c '{payload}'"));
    alert["output_fields"]["fd.name"] = json!("/tmp/<!everyone>/[x](https://evil.example)");
    alert["hostname"] = json!("node-1 <!here>");
    alert
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_text_reaches_slack_and_teams_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let slack_fake = slack::start().await;
    let cards = teams::start().await;
    let connector = teams::start().await;
    let config = format!(
        "outputs:\n  - name: chat\n    type: slack\n    webhook_url: \"{}\"\n    mention: {{ text: \"<!subteam^S0ONCALL>\", min_priority: critical }}\n    {FAST_RETRY}\n\
         \x20 - name: cards\n    type: teams\n    webhook_url: \"{}\"\n    {FAST_RETRY}\n\
         \x20 - name: connector\n    type: teams\n    format: messagecard\n    webhook_url: \"{}\"\n    {FAST_RETRY}\n",
        slack_fake.url("/services/T0/B0/x"),
        cards.url("/workflows/x/triggers/manual/paths/invoke"),
        connector.url("/webhookb2/x/IncomingWebhook/y/z"),
    );
    let gw = GatewayProcess::start(tmp.path(), &config).await;
    assert_eq!(gw.post(&hostile_alert()).await.status(), 200);
    for (output, kind) in [
        ("chat", "slack"),
        ("cards", "teams"),
        ("connector", "teams"),
    ] {
        gw.wait_metric(
            &series("peregrine_output_sent_total", output, kind),
            1.0,
            Duration::from_secs(15),
        )
        .await;
    }

    // Slack: the configured mention is the only thing Slack acts on; the alert's own mentions
    // and disguised link are shown to the reader as text.
    let texts = slack::received_texts(&slack_fake);
    assert!(!texts.is_empty());
    let live: Vec<String> = texts.iter().flat_map(|t| t.live()).collect();
    assert!(
        live.iter().all(|s| s == "<!subteam^S0ONCALL>"),
        "live in Slack: {live:?}"
    );
    assert!(live.contains(&"<!subteam^S0ONCALL>".to_string()));
    let shown: String = texts.iter().map(|t| t.shown()).collect();
    assert!(shown.contains("<!channel> <!here>"), "{shown}");
    assert!(
        shown.contains("<https://evil.example/login|Open the runbook>"),
        "{shown}"
    );

    // Teams, both card formats: no link a reader could click, no HTML.
    for fake in [&cards, &connector] {
        let texts = teams::received_texts(fake);
        assert!(!texts.is_empty());
        for t in &texts {
            assert!(t.links().is_empty(), "{}: {:?}", t.path, t.links());
            assert!(t.html_tags().is_empty(), "{}: {:?}", t.path, t.html_tags());
        }
        let shown: String = texts.iter().map(|t| t.shown()).collect();
        assert!(shown.contains("[label](https://evil.example)"), "{shown}");
    }
    assert!(
        fake_accepted_all(&slack_fake)
            && fake_accepted_all(&cards)
            && fake_accepted_all(&connector)
    );
}

fn fake_accepted_all(fake: &peregrine_fakes::FakeService) -> bool {
    fake.messages().iter().all(Message::accepted)
}
