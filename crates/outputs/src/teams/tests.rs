//! Teams against a local fake of a Workflows webhook and a legacy connector.

use std::time::Duration;

use peregrine_fakes::{teams, Reply};
use serde_json::{json, Value};

use super::*;
use crate::delivery::Delivery;
use crate::output::Output;
use crate::settings::{parse_keys, BuildContext, OutputSettings};
use crate::testing::{envelope, shadow_read};

fn config(url: &str, format: &str) -> TeamsConfig {
    parse_keys(json!({"webhook_url": url, "format": format})).unwrap()
}

fn output(c: &TeamsConfig) -> impl Output {
    build(
        c,
        BuildContext {
            name: "test".into(),
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
        .contains(r"file\=/etc/shadow"));
    let facts = blocks[2]["facts"].as_array().unwrap();
    assert_eq!(facts[0], json!({"title": r"proc\.name", "value": "cat"}));
    assert!(
        facts
            .iter()
            .any(|f| f["title"] == r"user\.uid" && f["value"] == "0"),
        "numbers are facts too"
    );
    let footer = shown(teams::Markup::Markdown, &blocks[3]["text"]);
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
        json!({"name": r"proc\.name", "value": "cat"})
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
    let printed = format!("{c:?} {}", c.describe());
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

/// What a reader sees of a card text (backslash escapes and entities undone).
fn shown(markup: teams::Markup, v: &Value) -> String {
    teams::Text {
        path: String::new(),
        markup,
        text: v.as_str().unwrap().to_string(),
    }
    .shown()
}

/// The attack text every part of [`hostile`] carries.
const ATTACK: &str = "<!channel> <@U123> <https://x.example|click me> [label](https://x.example) <https://auto.example> **bold** _it_ `code` # head\n- item\n1. one\n> quote\n===\n{{DATE(2026-06-12T09:23:10Z, SHORT)}} <img src=x onerror=alert(1)> &lt; \\[x\\](y)";

/// A rule name with a link, emphasis, HTML and a date function.
const RULE: &str =
    "Evil [label](https://x.example) *rule* <!channel> <b>x</b> {{DATE(2026-06-12T09:23:10Z)}}";

/// An alert whose rule, output, field names and values, host, tags and id all carry markup.
fn hostile() -> crate::envelope::Envelope {
    let alert = peregrine_engine::Alert::from_json(json!({
        "rule": RULE,
        "priority": "Critical",
        "time": "2026-06-12T09:23:10Z",
        "hostname": "node-[h](https://x.example)",
        "output": ATTACK,
        "output_fields": {
            "proc.cmdline": ATTACK,
            "fd.name": "/tmp/[label](https://x.example)",
            "[f](https://x.example)": "<b>v</b>"
        },
        "tags": ["[t](https://x.example)"],
        "uuid": "[id](https://x.example)"
    }))
    .unwrap();
    crate::envelope::Envelope::new(alert)
}

/// No link, HTML tag or unescaped markdown from the alert in any text of `body`; `footer_syntax`
/// is the markdown syntax our own footer text has (the time's `-` and `.`).
fn assert_inert(body: &Value, footer_path: &str, footer_syntax: &str) {
    let texts = teams::texts(body);
    assert!(texts.len() >= 5, "{texts:?}");
    for t in &texts {
        // Our own marker of a cut, `… [truncated]`, is not alert text.
        let t = &teams::Text {
            text: t
                .text
                .strip_suffix(crate::card::TRUNCATED)
                .unwrap_or(&t.text)
                .to_string(),
            ..t.clone()
        };
        assert!(t.links().is_empty(), "link in {}: {:?}", t.path, t.links());
        assert!(t.html_tags().is_empty(), "HTML in {}: {}", t.path, t.text);
        let expected = if t.path == footer_path {
            footer_syntax
        } else {
            ""
        };
        assert_eq!(t.unescaped(), expected, "{}: {}", t.path, t.text);
    }
    let sent = body.to_string();
    for injected in ["](", "{{DATE(", "**bold**"] {
        assert!(!sent.contains(injected), "{injected} in {sent}");
    }
}

#[tokio::test]
async fn alert_text_cannot_link_or_format_in_an_adaptive_card() {
    let fake = teams::start().await;
    let c = config(&fake.url("/flow/hostile"), "adaptive");
    let e = hostile();
    let body: Value = serde_json::from_slice(&TeamsEncoder::new(&c).body(&e)).unwrap();
    assert_inert(
        &body,
        "attachments[0].content.body[3].text",
        // 2026-06-12T09:23:10.000000000Z
        "--.",
    );
    let blocks = body["attachments"][0]["content"]["body"]
        .as_array()
        .unwrap();
    let md = teams::Markup::Markdown;
    assert_eq!(blocks[0]["weight"], "Bolder", "our own formatting stays");
    assert_eq!(shown(md, &blocks[0]["text"]), format!("Critical: {RULE}"));
    assert_eq!(
        shown(md, &blocks[1]["text"]),
        ATTACK,
        "people read the alert as it was"
    );
    assert!(blocks[1]["text"].as_str().unwrap().starts_with(
        r"\<\!channel\> \<@U123\> \<https://x\.example\|click me\> \[label\]\(https://x\.example\)"
    ));
    let facts = blocks[2]["facts"].as_array().unwrap();
    assert!(facts
        .iter()
        .any(|f| shown(md, &f["title"]) == "[f](https://x.example)"
            && shown(md, &f["value"]) == "<b>v</b>"));
    let footer = shown(md, &blocks[3]["text"]);
    assert!(
        footer.contains("host node-[h](https://x.example)")
            && footer.contains("tags [t](https://x.example)")
            && footer.contains("id [id](https://x.example)"),
        "{footer}"
    );

    assert_eq!(output(&c).deliver(&[e]).await, Delivery::Delivered);
    let got = fake.messages();
    assert!(got[0].problems.is_empty(), "{:?}", got[0].problems);
    assert_eq!(teams::received_texts(&fake), teams::texts(&body));
}

#[tokio::test]
async fn alert_text_cannot_link_format_or_inject_html_in_a_messagecard() {
    let fake = teams::start().await;
    let c = config(&fake.url("/webhookb2/hostile"), "messagecard");
    let e = hostile();
    let body: Value = serde_json::from_slice(&TeamsEncoder::new(&c).body(&e)).unwrap();
    assert_inert(&body, "sections[0].activitySubtitle", "--.");
    let sent = body.to_string();
    assert!(
        !sent.contains('<'),
        "no `<` at all, so no tag can form: {sent}"
    );
    let html = teams::Markup::MarkdownHtml;
    assert_eq!(shown(html, &body["sections"][0]["text"]), ATTACK);
    assert_eq!(shown(html, &body["title"]), format!("Critical: {RULE}"));
    assert_eq!(shown(html, &body["summary"]), format!("Critical: {RULE}"));
    assert!(body["sections"][0]["text"]
        .as_str()
        .unwrap()
        .starts_with(r"&lt;\!channel&gt; &lt;@U123&gt;"));
    assert_eq!(output(&c).deliver(&[e]).await, Delivery::Delivered);
    assert_eq!(fake.messages()[0].status, 200);
}

#[test]
fn a_cut_never_leaves_half_an_escape() {
    let stars = encode::escape_markdown(&"*".repeat(50));
    let angles = encode::escape_messagecard(&"<".repeat(50));
    for max in 14..60 {
        let t = encode::cut(&stars, max, false);
        assert!(t.chars().count() <= max, "{t}");
        let kept = t.strip_suffix(crate::card::TRUNCATED).unwrap();
        assert!(kept.is_empty() || kept.ends_with(r"\*"), "{max}: {t}");
        let t = encode::cut(&angles, max, true);
        let kept = t.strip_suffix(crate::card::TRUNCATED).unwrap();
        assert!(kept.is_empty() || kept.ends_with("&lt;"), "{max}: {t}");
    }
    let slashes = encode::escape_markdown(&"\\".repeat(50));
    for max in 14..60 {
        let t = encode::cut(&slashes, max, false);
        let kept = t.strip_suffix(crate::card::TRUNCATED).unwrap();
        assert_eq!(kept.len() % 2, 0, "{max}: {t}");
    }
}
