//! Discord against a fake that checks bodies as Discord's webhook API does.

use std::time::Duration;

use peregrine_fakes::discord as fake;
use serde_json::json;

use super::*;
use crate::settings::checked;
use crate::testing::{build_context, deliver_until_paused, hostile, long_output, shadow_read};

fn output(keys: serde_json::Value) -> HttpOutput<DiscordEncoder> {
    build(&checked::<DiscordSettings>(keys).unwrap(), build_context())
}

#[tokio::test]
async fn an_alert_arrives_as_one_embed_that_pings_nobody() {
    let discord = fake::start().await;
    let out =
        output(json!({"webhook_url": discord.url("/api/webhooks/1/tok"), "username": "Peregrine"}));
    assert_eq!(
        out.deliver(&[shadow_read("Critical")]).await,
        Delivery::Delivered
    );
    assert_eq!(
        out.deliver(&[hostile("Shell_in *container*")]).await,
        Delivery::Delivered
    );
    let got = discord.accepted();
    assert_eq!(got.len(), 2);
    let embed = &got[0]["embeds"][0];
    assert_eq!(embed["title"], "Critical: Read sensitive file untrusted");
    assert_eq!(embed["color"], 0xe01e5a);
    assert_eq!(embed["timestamp"], "2026-06-12T09:23:10.123Z");
    assert!(embed["description"]
        .as_str()
        .unwrap()
        .contains("**fd.name**: /etc/shadow"));
    assert_eq!(got[0]["username"], "Peregrine");
    assert_eq!(got[0]["allowed_mentions"], json!({"parse": []}));

    let hostile = &got[1]["embeds"][0];
    assert_eq!(hostile["title"], "Critical: Shell\\_in \\*container\\*");
    let text = hostile["description"].as_str().unwrap();
    assert!(text.contains("@\u{2060}everyone @\u{2060}here"), "{text}");
    assert!(
        text.contains("\\[click\\]\\(https://evil.example\\)"),
        "{text}"
    );
    assert!(text.contains("\\*\\*bold\\*\\*"), "{text}");
    assert!(!text.contains("@everyone"), "{text}");
}

#[tokio::test]
async fn a_huge_alert_is_cut_to_discords_limits_and_accepted() {
    let discord = fake::start().await;
    let out = output(json!({"webhook_url": discord.url("/api/webhooks/1/tok")}));
    assert_eq!(
        out.deliver(&[long_output(20_000)]).await,
        Delivery::Delivered
    );
    let got = discord.accepted();
    let embed = &got[0]["embeds"][0];
    assert_eq!(embed["title"].as_str().unwrap().chars().count(), TITLE_MAX);
    let description = embed["description"].as_str().unwrap();
    assert!(description.chars().count() <= DESCRIPTION_MAX);
    assert!(description.ends_with(&Markup::Markdown.escape(crate::card::TRUNCATED)));
}

#[tokio::test]
async fn an_unknown_webhook_is_a_dead_letter_with_discords_reason() {
    let discord = fake::start().await;
    let out = output(json!({"webhook_url": discord.url("/api/webhooks/1")}));
    match out.deliver(&[shadow_read("Warning")]).await {
        Delivery::Permanent(f) => {
            assert_eq!(f.status, Some(404));
            assert_eq!(f.reason, "Unknown Webhook");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn over_the_webhooks_limit_discord_says_wait_and_the_output_pauses() {
    let discord = fake::start().await;
    // Faster than the default pace, to meet the service's own limit of 5 in 2 seconds.
    let out = output(json!({
        "webhook_url": discord.url("/api/webhooks/1/tok"),
        "rate_limit": {"per_second": 1000.0, "burst": 100}
    }));
    let (delivered, f, wait) = deliver_until_paused(&out, 50).await;
    assert!(delivered >= 5, "{delivered}");
    assert_eq!(f.code, Some("rate_limited"));
    assert_eq!(wait, Duration::from_secs(1), "Retry-After rounds 0.4 s up");
    // Without Retry-After, the body's fractional wait counts.
    discord.force(
        peregrine_fakes::Reply::new(
            429,
            r#"{"message":"You are being rate limited.","retry_after":0.25,"global":false}"#,
        ),
        1,
    );
    assert!(matches!(
        out.deliver(&[shadow_read("Notice")]).await,
        Delivery::RetryAfter(_, w) if w == Duration::from_millis(250)
    ));
}

#[test]
fn keys_discord_refuses_are_refused_when_checked() {
    let url = "https://discord.com/api/webhooks/1/tok";
    let e = checked::<DiscordSettings>(json!({"webhook_url": url, "username": "Discord Bot"}))
        .unwrap_err();
    assert_eq!(e.path, "username");
    let e =
        checked::<DiscordSettings>(json!({"webhook_url": url, "template": "{{ rule | nope }}"}))
            .unwrap_err();
    assert_eq!(e.path, "template");
    let s = checked::<DiscordSettings>(json!({"webhook_url": url})).unwrap();
    assert_eq!(s.describe(), "Discord webhook https://discord.com/…");
}
