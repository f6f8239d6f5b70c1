//! Rocket.Chat against a fake of its incoming webhooks.

use std::time::Duration;

use peregrine_fakes::rocketchat as fake;
use serde_json::json;

use super::*;
use crate::settings::checked;
use crate::testing::{build_context, hostile, long_output, shadow_read};

const HOOK: &str = "/hooks/6d5J7vT2/ke8XQpT4Tq";

fn output(url: &str) -> HttpOutput<RocketChatEncoder> {
    let keys = json!({"webhook_url": url, "alias": "Peregrine", "rate_limit": {"per_second": 1000.0, "burst": 100}});
    build(
        &checked::<RocketChatSettings>(keys).unwrap(),
        build_context(),
    )
}

#[tokio::test]
async fn an_alert_is_a_line_and_an_attachment_and_alert_text_notifies_nobody() {
    let rc = fake::start().await;
    let out = output(&rc.url(HOOK));
    assert_eq!(
        out.deliver(&[shadow_read("Warning")]).await,
        Delivery::Delivered
    );
    assert_eq!(
        out.deliver(&[hostile("@all look")]).await,
        Delivery::Delivered
    );
    let got = rc.accepted();
    assert_eq!(got[0]["text"], "Warning: Read sensitive file untrusted");
    assert_eq!(got[0]["alias"], "Peregrine");
    let a = &got[0]["attachments"][0];
    assert_eq!(a["color"], "#ecb22e");
    assert_eq!(a["ts"], "2026-06-12T09:23:10.123Z");
    assert!(a["text"].as_str().unwrap().contains("*user.name*: root"));
    assert_eq!(got[1]["text"], "Critical: @\u{2060}all look");
    let text = got[1]["attachments"][0]["text"].as_str().unwrap();
    assert!(text.contains("@\u{2060}everyone @\u{2060}here"), "{text}");
    assert!(
        text.contains("\\[click\\]\\(https://evil.example\\)"),
        "{text}"
    );
}

#[tokio::test]
async fn a_huge_alert_fits_in_the_message_size() {
    let rc = fake::start().await;
    let out = output(&rc.url(HOOK));
    assert_eq!(
        out.deliver(&[long_output(9_000)]).await,
        Delivery::Delivered
    );
    let got = rc.accepted();
    let text = got[0]["attachments"][0]["text"]
        .as_str()
        .unwrap()
        .chars()
        .count();
    assert!(text <= TEXT_MAX, "{text}");
}

#[tokio::test]
async fn a_wrong_token_is_a_dead_letter_and_the_limiters_words_a_pause() {
    let rc = fake::start().await;
    match output(&rc.url("/hooks/6d5J7vT2"))
        .deliver(&[shadow_read("Error")])
        .await
    {
        Delivery::Permanent(f) => assert_eq!(f.reason, "Invalid integration id or token provided."),
        other => panic!("{other:?}"),
    }
    let out = output(&rc.url(HOOK));
    // The limiter counted the refused request too: nine more fill the minute.
    for _ in 0..9 {
        assert_eq!(
            out.deliver(&[shadow_read("Error")]).await,
            Delivery::Delivered
        );
    }
    match out.deliver(&[shadow_read("Error")]).await {
        Delivery::RetryAfter(f, wait) => {
            assert!(
                f.reason.contains("[error-too-many-requests]"),
                "{}",
                f.reason
            );
            assert_eq!(wait, Duration::from_secs(55));
        }
        other => panic!("the 11th request in a minute: {other:?}"),
    }
}

#[test]
fn the_url_is_never_printed() {
    let s =
        checked::<RocketChatSettings>(json!({"webhook_url": "https://chat.example.com/hooks/a/b"}))
            .unwrap();
    assert_eq!(
        s.describe(),
        "Rocket.Chat webhook https://chat.example.com/…"
    );
}
