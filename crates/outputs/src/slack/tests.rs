//! Slack against a local fake that checks Block Kit limits and answers as Slack does.

use std::time::Duration;

use peregrine_fakes::slack;
use serde_json::{json, Value};

use super::*;
use crate::delivery::Delivery;
use crate::output::Output;
use crate::retry::{deliver_with_retries, AttemptObserver, Outcome, PauseGate, RetryPolicy};
use crate::settings::{parse_keys, BuildContext, OutputSettings};
use crate::testing::{envelope, shadow_read};

fn config(url: &str, extra: Value) -> SlackConfig {
    let mut keys = json!({ "webhook_url": url });
    keys.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    parse_keys(keys).unwrap()
}

fn output(config: &SlackConfig) -> impl Output {
    build(
        config,
        BuildContext {
            name: "test".into(),
            max_in_flight: 1,
            timeout: std::time::Duration::from_secs(5),
        },
    )
}

struct Quiet;
impl AttemptObserver for Quiet {
    fn retrying(&self, _: &crate::Failure, _: usize) {}
}

#[tokio::test]
async fn one_alert_is_a_card_with_every_part_and_slack_takes_it() {
    let fake = slack::start().await;
    let c = config(
        &fake.url("/services/T0001/B0001/secretpart"),
        json!({"channel": "#security", "username": "Peregrine", "icon_emoji": ":falcon:",
               "mention": {"text": "<!here>", "min_priority": "critical"}}),
    );
    let e = shadow_read("Critical");
    let body = SlackEncoder::new(&c).body(std::slice::from_ref(&e));

    assert_eq!(body["channel"], "#security");
    assert_eq!(body["username"], "Peregrine");
    assert_eq!(body["icon_emoji"], ":falcon:");
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("<!here> [Critical] Read sensitive file untrusted: Sensitive file opened"),
        "{text}"
    );
    assert_eq!(
        body["blocks"][0]["text"]["text"], "<!here>",
        "the mention is in the message, not the attachment"
    );

    let attachment = &body["attachments"][0];
    assert_eq!(attachment["color"], "#e01e5a");
    let blocks = attachment["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(
        blocks[0]["text"]["text"],
        "Critical: Read sensitive file untrusted"
    );
    let output = blocks[1]["text"]["text"].as_str().unwrap();
    assert!(
        output.starts_with("Sensitive file opened for reading"),
        "the time/priority prefix is dropped: {output}"
    );
    let fields: Vec<&str> = blocks[2]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert_eq!(fields.len(), 10, "at most 10 fields");
    assert_eq!(fields[0], "*proc.name*\ncat");
    assert!(fields.contains(&"*fd.name*\n/etc/shadow"));
    assert!(fields.contains(&"*container.id*\n3ad7b26ded6d"));
    let footer = blocks[3]["elements"][0]["text"].as_str().unwrap();
    assert!(footer.contains("host *node-1*"), "{footer}");
    assert!(footer.contains("`mitre_credential_access`"), "{footer}");
    assert!(
        footer.contains("2026-06-12T09:23:10.123456789Z"),
        "{footer}"
    );
    assert!(footer.contains(e.id()), "{footer}");

    assert_eq!(output_of(&c).deliver(&[e]).await, Delivery::Delivered);
    assert_eq!(fake.messages()[0].status, 200);
}

fn output_of(c: &SlackConfig) -> impl Output {
    output(c)
}

#[tokio::test]
async fn numbers_and_booleans_are_shown_and_a_quiet_priority_gets_no_mention() {
    let c = config(
        "http://127.0.0.1:9/x",
        json!({"mention": {"text": "<!channel>", "min_priority": "error"}}),
    );
    let body = SlackEncoder::new(&c).body(&[shadow_read("Warning")]);
    assert!(
        body.get("blocks").is_none(),
        "Warning is below the mention's Error"
    );
    assert!(!body["text"].as_str().unwrap().contains("<!channel>"));
    let e = envelope(
        json!({"rule": "r", "priority": "Notice", "time": "2026-06-12T09:23:10Z",
        "output_fields": {"user.uid": 0, "container.privileged": true}}),
    );
    let fields =
        SlackEncoder::new(&c).body(&[e])["attachments"][0]["blocks"][2]["fields"].to_string();
    assert!(fields.contains(r"*container.privileged*\ntrue"), "{fields}");
    assert!(fields.contains(r"*user.uid*\n0"), "{fields}");
}

#[tokio::test]
async fn a_burst_is_one_list_message_within_slack_limits() {
    let fake = slack::start().await;
    let c = config(&fake.url("/services/T/B/burst"), json!({}));
    let long = "x".repeat(5000);
    let batch: Vec<_> = (0..100)
        .map(|i| {
            envelope(json!({"rule": format!("Rule {i}"), "priority": if i == 7 { "Critical" } else { "Warning" },
                "time": "2026-06-12T09:23:10Z", "hostname": format!("node-{i}"), "output": long}))
        })
        .collect();
    assert_eq!(output(&c).batch_limits().max_events, 100);
    let body = SlackEncoder::new(&c).body(&batch);
    assert_eq!(body["text"], "100 Falco alerts: 1 Critical, 99 Warning");
    let attachment = &body["attachments"][0];
    assert_eq!(
        attachment["color"], "#e01e5a",
        "coloured by the most severe"
    );
    let blocks = attachment["blocks"].as_array().unwrap();
    assert!(blocks.len() <= 50, "{} blocks", blocks.len());
    let listed: String = blocks
        .iter()
        .filter(|b| b["type"] == "section")
        .map(|b| b["text"]["text"].as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    for i in 0..100 {
        assert!(
            listed.contains(&format!("Rule {i} · node-{i} — xxx")),
            "alert {i} is listed"
        );
    }
    assert!(
        listed.contains(crate::card::TRUNCATED),
        "long outputs are cut visibly"
    );

    assert_eq!(
        output(&c).deliver(&batch).await,
        Delivery::Delivered,
        "Slack accepts it"
    );
}

#[tokio::test]
async fn text_format_sends_a_plain_message() {
    let c = config("http://127.0.0.1:9/x", json!({"format": "text"}));
    let body = SlackEncoder::new(&c).body(&[shadow_read("Error")]);
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    assert!(body["text"]
        .as_str()
        .unwrap()
        .starts_with("[Error] Read sensitive file untrusted: Sensitive file"));
}

#[tokio::test]
async fn slack_errors_are_permanent_with_their_word_and_without_the_url() {
    let fake = slack::start().await;
    let c = config(&fake.url("/services/T0001/B0001/verysecret"), json!({}));
    for (status, word) in [
        (404, "channel_not_found"),
        (410, "channel_is_archived"),
        (400, "invalid_payload"),
        (403, "action_prohibited"),
        (404, "no_service"),
        (400, "something_new"),
    ] {
        fake.force(slack::error(status, word), 1);
        match output(&c).deliver(&[shadow_read("Warning")]).await {
            Delivery::Permanent(f) => {
                assert_eq!(f.status, Some(status));
                assert_eq!(f.reason, word);
                let expected = if word == "something_new" {
                    "other"
                } else {
                    word
                };
                assert_eq!(f.code, Some(expected));
                assert!(!f.to_string().contains("verysecret"));
            }
            other => panic!("{word}: {other:?}"),
        }
    }
    fake.force(slack::error(500, "rollup_error"), 1);
    assert!(matches!(
        output(&c).deliver(&[shadow_read("Warning")]).await,
        Delivery::Retry(_)
    ));
    fake.force(slack::rate_limited(3), 1);
    match output(&c).deliver(&[shadow_read("Warning")]).await {
        Delivery::RetryAfter(f, wait) => {
            assert_eq!(wait, Duration::from_secs(3));
            assert_eq!(f.code, Some("rate_limited"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn messages_are_paced_to_one_a_second_per_webhook() {
    let fake = slack::start().await;
    let url = fake.url("/services/T/B/paced");
    // Two outputs on one webhook share its rate.
    let a = output(&config(&url, json!({})));
    let b = output(&config(&url, json!({"format": "text"})));
    let policy = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    let gate = PauseGate::default();
    let (x, y, z) = (
        [shadow_read("Warning")],
        [shadow_read("Warning")],
        [shadow_read("Warning")],
    );
    let (ra, rb, rc) = tokio::join!(
        deliver_with_retries(&a, &x, &policy, &gate, &Quiet),
        deliver_with_retries(&b, &y, &policy, &gate, &Quiet),
        deliver_with_retries(&a, &z, &policy, &gate, &Quiet),
    );
    for r in [ra, rb, rc] {
        assert_eq!(r, vec![Outcome::Delivered], "no 429 from the fake");
    }
    let at: Vec<_> = fake.messages().iter().map(|m| m.at).collect();
    assert_eq!(at.len(), 3);
    let span = at
        .iter()
        .max()
        .unwrap()
        .duration_since(*at.iter().min().unwrap());
    assert!(
        span >= Duration::from_millis(1900),
        "3 messages took {span:?}"
    );
}

#[test]
fn the_webhook_url_never_prints() {
    let c = config(
        "https://hooks.slack.com/services/T0001/B0001/XXXXXXXXXXXXXXXX",
        json!({}),
    );
    let printed = format!("{c:?} {}", c.describe());
    assert!(
        !printed.contains("T0001") && !printed.contains("XXXX"),
        "{printed}"
    );
    assert!(printed.contains("https://hooks.slack.com/…"), "{printed}");
}

#[test]
fn bad_keys_are_named() {
    let err = |v: Value| parse_keys::<SlackConfig>(v).unwrap_err().to_string();
    assert!(err(json!({"webhook_url": "ftp://x"})).starts_with("webhook_url:"));
    assert!(
        err(json!({"webhook_url": "http://x", "max_alerts_per_message": 500}))
            .contains("max_alerts_per_message: must be from 1 to 100")
    );
    assert!(
        err(json!({"webhook_url": "http://x", "rate_limit": {"per_second": 0}}))
            .contains("positive")
    );
    assert!(err(json!({"webhook_url": "http://x", "format": "html"})).starts_with("format:"));
    assert!(err(
        json!({"webhook_url": "http://x", "mention": {"text": "@here", "min_priority": "loud"}})
    )
    .contains("unknown priority"));
}

/// An alert whose rule, output, fields, host, tags and id all try to ping a channel, plant a
/// disguised link, break out of a code span or pose as more list lines.
fn hostile(priority: &str) -> crate::envelope::Envelope {
    let alert = peregrine_engine::Alert::from_json(json!({
        "rule": "Evil <!channel> rule `x` [label](https://x.example)",
        "priority": priority,
        "time": "2026-06-12T09:23:10Z",
        "hostname": "node`<!here>",
        "output": "09:23:10.000000000: Critical cmd=<!channel> <!here> <@U123> <https://x.example|click me> [label](https://x.example) `x` @channel https://bare.example &amp;\n*Critical* Forged · node-9 — line",
        "output_fields": {
            "proc.cmdline": "sh -c '<!channel> <https://x.example|click me>'",
            "fd.name": "/tmp/`<!everyone>`[label](https://x.example)",
            "<@U123>": "<!subteam^S1>"
        },
        "tags": ["mitre`<!here>`"],
        "uuid": "<!channel>"
    }))
    .unwrap();
    crate::envelope::Envelope::new(alert)
}

/// `body` with every plain_text object's text blanked: Slack parses nothing in plain_text, so
/// the rule goes into headers raw.
fn without_plain_text(body: &Value) -> Value {
    match body {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                out.insert(k.clone(), without_plain_text(v));
            }
            if out.get("type").and_then(Value::as_str) == Some("plain_text") {
                out.insert("text".into(), json!(""));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(without_plain_text).collect()),
        other => other.clone(),
    }
}

/// Checks one message body: the configured `<!here>` is the only live markup, placed `mentions`
/// times; every mrkdwn object is verbatim; nothing from the alert survives unescaped outside
/// plain_text.
fn assert_only_the_configured_mention(body: &Value, mentions: usize) {
    let texts = slack::texts(body);
    assert!(!texts.is_empty());
    for t in &texts {
        for live in t.live() {
            assert_eq!(
                live, "<!here>",
                "{} is live in {}: {}",
                live, t.path, t.text
            );
        }
        if let slack::TextKind::Mrkdwn { verbatim } = t.kind {
            assert!(verbatim, "{} is not verbatim", t.path);
        }
    }
    let sent = without_plain_text(body).to_string();
    for injected in [
        "<!channel>",
        "<!everyone>",
        "<!subteam",
        "<@U123>",
        "<https://",
    ] {
        assert!(!sent.contains(injected), "{injected} in {sent}");
    }
    assert_eq!(sent.matches("<!here>").count(), mentions, "{sent}");
    assert_eq!(
        texts.iter().filter(|t| t.mentions() == ["<!here>"]).count(),
        mentions
    );
}

#[tokio::test]
async fn alert_text_cannot_mention_link_or_leave_a_code_span() {
    let fake = slack::start().await;
    let c = config(
        &fake.url("/services/T/B/hostile"),
        json!({"mention": {"text": "<!here>", "min_priority": "critical"}}),
    );
    let e = hostile("Critical");
    let body = SlackEncoder::new(&c).body(std::slice::from_ref(&e));
    // The mention in the message and in the notification text; nothing else live.
    assert_only_the_configured_mention(&body, 2);
    assert_eq!(body["blocks"][0]["text"]["text"], "<!here>");
    assert!(body["text"]
        .as_str()
        .unwrap()
        .starts_with("<!here> [Critical] Evil &lt;!channel&gt; rule"));

    let blocks = &body["attachments"][0]["blocks"];
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert_eq!(blocks[0]["text"]["emoji"], false);
    assert!(blocks[0]["text"]["text"]
        .as_str()
        .unwrap()
        .starts_with("Critical: Evil <!channel> rule"));
    let texts = slack::texts(&body);
    let at = |path: &str| texts.iter().find(|t| t.path == path).unwrap();
    let output = at("attachments[0].blocks[1].text");
    assert!(output.text.starts_with(
        "cmd=&lt;!channel&gt; &lt;!here&gt; &lt;@U123&gt; &lt;https://x.example|click me&gt; [label](https://x.example) `x` @channel https://bare.example &amp;amp;"
    ), "{}", output.text);
    assert!(
        output.shown().starts_with("cmd=<!channel> <!here> <@U123> <https://x.example|click me> [label](https://x.example) `x` @channel https://bare.example &amp;"),
        "people read the alert as it was: {}",
        output.shown()
    );
    let fields: Vec<String> = texts
        .iter()
        .filter(|t| t.path.contains(".fields["))
        .map(|t| t.shown())
        .collect();
    assert!(
        fields.contains(
            &"*proc.cmdline*\nsh -c '<!channel> <https://x.example|click me>'".to_string()
        ),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"*<@U123>*\n<!subteam^S1>".to_string()),
        "{fields:?}"
    );

    let footer = &at("attachments[0].blocks[3].elements[0]").text;
    assert!(
        footer.contains("host *node\u{2cb}&lt;!here&gt;*"),
        "{footer}"
    );
    assert!(
        footer.contains("tags `mitre\u{2cb}&lt;!here&gt;\u{2cb}`"),
        "{footer}"
    );
    assert!(footer.contains("id &lt;!channel&gt;"), "{footer}");
    assert_eq!(
        footer.matches('`').count(),
        2,
        "only our own code span's backticks: {footer}"
    );

    assert_eq!(output_of(&c).deliver(&[e]).await, Delivery::Delivered);
    assert_eq!(slack::received_texts(&fake), texts, "Slack took it as sent");
}

#[test]
fn a_burst_list_and_the_text_format_escape_too() {
    let mention = json!({"mention": {"text": "<!here>", "min_priority": "critical"}});
    let c = config("http://127.0.0.1:9/x", mention.clone());
    let batch: Vec<_> = (0..encode::CARDS_MAX + 1)
        .map(|_| hostile("Critical"))
        .collect();
    let body = SlackEncoder::new(&c).body(&batch);
    // The message text, the attachment's fallback and the list's first section.
    assert_only_the_configured_mention(&body, 3);
    let listed: Vec<String> = slack::texts(&body)
        .into_iter()
        .filter(|t| t.path.starts_with("attachments[0].blocks[") && t.text.contains(" — "))
        .flat_map(|t| t.text.lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    assert_eq!(
        listed.len(),
        batch.len(),
        "one line an alert, whatever line breaks it holds: {listed:?}"
    );
    assert!(listed[0].starts_with("*Critical* Evil &lt;!channel&gt; rule"));

    let mut keys = mention;
    keys["format"] = json!("text");
    let text =
        SlackEncoder::new(&config("http://127.0.0.1:9/x", keys)).body(&[hostile("Critical")]);
    assert_only_the_configured_mention(&text, 1);
    assert!(text["text"]
        .as_str()
        .unwrap()
        .starts_with("<!here>\n[Critical] Evil &lt;!channel&gt;"));

    let quiet = SlackEncoder::new(&c).body(&[hostile("Warning")]);
    assert_only_the_configured_mention(&quiet, 0);
}

#[test]
fn a_cut_never_leaves_half_an_entity() {
    let escaped = encode::escape(&"<".repeat(50));
    for max in 14..60 {
        let t = encode::cut(&escaped, max);
        assert!(t.chars().count() <= max, "{t}");
        let kept = t.strip_suffix(crate::card::TRUNCATED).unwrap();
        assert!(kept.is_empty() || kept.ends_with("&lt;"), "{max}: {t}");
    }
    assert_eq!(encode::cut("a &amp; b", 9), "a &amp; b");
}
