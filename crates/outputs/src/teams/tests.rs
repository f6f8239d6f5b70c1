//! Teams against a local fake of a Workflows webhook and a legacy connector.

use std::time::Duration;

use peregrine_fakes::{teams, Reply};
use serde_json::{json, Value};

use super::*;
use crate::config::{parse_keys, BuildContext};
use crate::delivery::Delivery;
use crate::output::Output;
use crate::testing::{envelope, shadow_read};

fn config(url: &str, format: &str) -> TeamsConfig {
    parse_keys(json!({"webhook_url": url, "format": format})).unwrap()
}

fn output(c: &TeamsConfig) -> impl Output {
    build(
        c,
        BuildContext {
            max_in_flight: 1,
            timeout: std::time::Duration::from_secs(5),
        },
    )
}

fn card_of(body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["attachments"][0]["content"].clone()
}

#[tokio::test]
async fn an_adaptive_card_in_a_workflows_message_and_202_is_sent() {
    let fake = teams::start().await;
    let c = config(
        &fake.url("/workflows/abc/triggers/manual/paths/invoke?sig=secret"),
        "adaptive",
    );
    let e = shadow_read("Critical");
    let body: Value = serde_json::from_slice(&TeamsEncoder::new(&c).body(&e)).unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(
        body["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &body["attachments"][0]["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    let blocks = card["body"].as_array().unwrap();
    assert_eq!(blocks[0]["text"], "Critical: Read sensitive file untrusted");
    assert_eq!(blocks[0]["color"], "Attention");
    assert!(blocks[1]["text"]
        .as_str()
        .unwrap()
        .contains("file=/etc/shadow"));
    let facts = blocks[2]["facts"].as_array().unwrap();
    assert_eq!(facts[0], json!({"title": "proc.name", "value": "cat"}));
    assert!(
        facts
            .iter()
            .any(|f| f["title"] == "user.uid" && f["value"] == "0"),
        "numbers are facts too"
    );
    let footer = blocks[3]["text"].as_str().unwrap();
    assert!(
        footer.contains("host node-1")
            && footer.contains("mitre_credential_access")
            && footer.contains("2026-06-12T09:23:10.123456789Z")
            && footer.contains(e.id()),
        "{footer}"
    );

    assert_eq!(output(&c).deliver(&[e]).await, Delivery::Delivered);
    let got = fake.messages();
    assert_eq!(got[0].status, 202);
    assert!(
        got[0].problems.is_empty(),
        "the flow would post it: {:?}",
        got[0].problems
    );
}

#[tokio::test]
async fn an_oversized_alert_is_cut_under_28_kb_with_a_marker() {
    let fake = teams::start().await;
    let c = config(&fake.url("/flow"), "adaptive");
    let mut fields = serde_json::Map::new();
    for i in 0..40 {
        fields.insert(format!("custom.field{i:02}"), json!("v".repeat(3000)));
    }
    let e = envelope(
        json!({"rule": "Huge", "priority": "Warning", "time": "2026-06-12T09:23:10Z",
        "output": "o".repeat(60_000), "output_fields": fields}),
    );
    assert!(e.json.len() > 150_000);
    let body = TeamsEncoder::new(&c).body(&e);
    assert!(
        body.len() <= MAX_BYTES && body.len() > 10_000,
        "{} bytes",
        body.len()
    );
    let card = card_of(&body);
    assert!(card["body"][1]["text"]
        .as_str()
        .unwrap()
        .ends_with(crate::card::TRUNCATED));
    assert_eq!(output(&c).deliver(&[e]).await, Delivery::Delivered);
    assert_eq!(fake.messages()[0].status, 202, "not 413");
}

#[tokio::test]
async fn messagecard_for_legacy_connectors() {
    let fake = teams::start().await;
    let c = config(&fake.url("/webhookb2/x"), "messagecard");
    let e = shadow_read("Warning");
    let body: Value = serde_json::from_slice(&TeamsEncoder::new(&c).body(&e)).unwrap();
    assert_eq!(body["@type"], "MessageCard");
    assert_eq!(body["themeColor"], "ecb22e");
    assert_eq!(body["title"], "Warning: Read sensitive file untrusted");
    assert_eq!(
        body["sections"][0]["facts"][0],
        json!({"name": "proc.name", "value": "cat"})
    );
    assert_eq!(output(&c).deliver(&[e]).await, Delivery::Delivered);
    assert_eq!(fake.messages()[0].status, 200);
}

#[tokio::test]
async fn teams_answers_are_read_as_teams_means_them() {
    let fake = teams::start().await;
    let c = config(&fake.url("/flow"), "adaptive");
    let send = || async { output(&c).deliver(&[shadow_read("Warning")]).await };
    fake.force(Reply::new(429, "").header("retry-after", "2"), 1);
    assert!(matches!(send().await, Delivery::RetryAfter(_, d) if d == Duration::from_secs(2)));
    fake.force(
        Reply::new(
            200,
            "Microsoft Teams endpoint returned HTTP error 429 with ContextId x",
        ),
        1,
    );
    assert!(
        matches!(send().await, Delivery::RetryAfter(..)),
        "connectors report throttling in a 200"
    );
    fake.force(Reply::new(502, ""), 1);
    assert!(matches!(send().await, Delivery::Retry(_)));
    fake.force(Reply::new(413, ""), 1);
    assert!(matches!(send().await, Delivery::Permanent(f) if f.code == Some("too_large")));
    fake.force(Reply::new(400, "Bad payload"), 1);
    assert!(matches!(send().await, Delivery::Permanent(f) if f.code == Some("rejected")));
}

#[test]
fn the_webhook_url_never_prints() {
    let c = config("https://prod-12.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?sig=s3cr3t", "adaptive");
    let printed = format!(
        "{c:?} {}",
        crate::OutputSettings::Teams(c.clone()).describe()
    );
    assert!(
        !printed.contains("s3cr3t") && !printed.contains("workflows"),
        "{printed}"
    );
}

#[test]
fn fields_are_cut_before_the_output() {
    let c = config("http://127.0.0.1:9/flow", "adaptive");
    let mut fields = serde_json::Map::new();
    for i in 0..15 {
        fields.insert(format!("custom.field{i:02}"), json!("v".repeat(3000)));
    }
    let output = "o".repeat(10_000);
    let e = envelope(
        json!({"rule": "Big fields", "priority": "Warning", "time": "2026-06-12T09:23:10Z",
        "output": output, "output_fields": fields}),
    );
    let body = TeamsEncoder::new(&c).body(&e);
    assert!(body.len() <= MAX_BYTES);
    let card = card_of(&body);
    assert_eq!(card["body"][1]["text"], output, "the output is whole");
    let facts = card["body"][2]["facts"].as_array().unwrap();
    assert!(facts.iter().all(|f| f["value"]
        .as_str()
        .unwrap()
        .ends_with(crate::card::TRUNCATED)));
}
