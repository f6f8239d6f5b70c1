//! Mattermost against a fake of its incoming webhooks.

use std::time::Duration;

use peregrine_fakes::mattermost as fake;
use serde_json::json;

use super::*;
use crate::settings::checked;
use crate::testing::{build_context, deliver_until_paused, hostile, long_output, shadow_read};

const HOOK: &str = "/hooks/xq9w3ezqt3ggtnd6yqhh4tq4zc";

fn output(url: &str) -> HttpOutput<MattermostEncoder> {
    let keys = json!({"webhook_url": url, "username": "peregrine", "rate_limit": {"per_second": 1000.0, "burst": 100}});
    build(
        &checked::<MattermostSettings>(keys).unwrap(),
        build_context(),
    )
}

#[tokio::test]
async fn an_alert_is_one_coloured_attachment_and_alert_text_pings_nobody() {
    let mm = fake::start().await;
    let out = output(&mm.url(HOOK));
    assert_eq!(
        out.deliver(&[shadow_read("Critical")]).await,
        Delivery::Delivered
    );
    assert_eq!(
        out.deliver(&[hostile("@channel *now*")]).await,
        Delivery::Delivered
    );
    let got = mm.accepted();
    assert_eq!(got[0]["username"], "peregrine");
    assert!(got[0].get("channel").is_none(), "unset keys are left out");
    let a = &got[0]["attachments"][0];
    assert_eq!(a["color"], "#e01e5a");
    assert_eq!(a["fallback"], "Critical: Read sensitive file untrusted");
    let text = a["text"].as_str().unwrap();
    assert!(
        text.starts_with("#### Critical: Read sensitive file untrusted\n"),
        "{text}"
    );
    assert!(text.contains("**proc.cmdline**: cat /etc/shadow"), "{text}");
    let text = got[1]["attachments"][0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("#### Critical: @\u{2060}channel \\*now\\*"),
        "{text}"
    );
    assert!(
        !text.contains("@here") && !text.contains("@everyone"),
        "{text}"
    );
}

#[tokio::test]
async fn a_huge_alert_fits_in_a_post() {
    let mm = fake::start().await;
    let out = output(&mm.url(HOOK));
    assert_eq!(
        out.deliver(&[long_output(40_000)]).await,
        Delivery::Delivered
    );
    let text = mm.accepted()[0]["attachments"][0]["text"]
        .as_str()
        .unwrap()
        .chars()
        .count();
    assert!(text <= TEXT_MAX, "{text}");
}

#[tokio::test]
async fn an_invalid_webhook_is_a_dead_letter_and_the_rate_limiter_a_pause() {
    let mm = fake::start().await;
    match output(&mm.url("/hooks/nope"))
        .deliver(&[shadow_read("Error")])
        .await
    {
        Delivery::Permanent(f) => assert_eq!(
            (f.status, f.reason.as_str()),
            (Some(400), "Invalid webhook.")
        ),
        other => panic!("{other:?}"),
    }
    let out = output(&mm.url(HOOK));
    let (delivered, f, wait) = deliver_until_paused(&out, 50).await;
    assert!(delivered >= 10, "{delivered}");
    assert_eq!(f.reason, "limit exceeded");
    assert_eq!(wait, Duration::from_secs(1));
}

#[test]
fn the_template_is_checked_and_the_url_never_printed() {
    let e = checked::<MattermostSettings>(
        json!({"webhook_url": "https://mm.example.com/hooks/x", "template": "{% for %}"}),
    )
    .unwrap_err();
    assert_eq!(e.path, "template");
    let s = checked::<MattermostSettings>(
        json!({"webhook_url": "https://mm.example.com/hooks/secretid"}),
    )
    .unwrap();
    assert_eq!(s.describe(), "Mattermost webhook https://mm.example.com/…");
}
