//! Gotify against a fake of its message API.

use std::time::Duration;

use peregrine_fakes::{gotify as fake, Reply};
use serde_json::json;

use super::*;
use crate::settings::checked;
use crate::testing::{build_context, hostile, long_output, shadow_read};

fn output(url: &str, token: &str) -> HttpOutput<GotifyEncoder> {
    build(
        &checked::<GotifySettings>(json!({"url": url, "token": token})).unwrap(),
        build_context(),
    )
}

#[tokio::test]
async fn an_alert_is_a_markdown_message_with_a_priority_and_alert_text_is_escaped() {
    let gotify = fake::start("AppToken.1").await;
    let out = output(&gotify.url(""), "AppToken.1");
    assert_eq!(
        out.deliver(&[shadow_read("Critical")]).await,
        Delivery::Delivered
    );
    assert_eq!(out.deliver(&[hostile("x")]).await, Delivery::Delivered);
    let got = gotify.accepted();
    assert_eq!(got[0]["title"], "Critical: Read sensitive file untrusted");
    assert_eq!(got[0]["priority"], 8);
    assert_eq!(
        got[0]["extras"]["client::display"]["contentType"],
        "text/markdown"
    );
    assert!(got[0]["message"]
        .as_str()
        .unwrap()
        .contains("\n- **fd.name**: /etc/shadow"));
    let text = got[1]["message"].as_str().unwrap();
    assert!(
        text.contains("\\[click\\]\\(https://evil.example\\) \\*\\*bold\\*\\* \\<b\\>tag\\</b\\>"),
        "{text}"
    );
}

#[tokio::test]
async fn a_huge_alert_is_cut_to_4096_characters() {
    let gotify = fake::start("t").await;
    assert_eq!(
        output(&gotify.url(""), "t")
            .deliver(&[long_output(9000)])
            .await,
        Delivery::Delivered
    );
    let n = gotify.accepted()[0]["message"]
        .as_str()
        .unwrap()
        .encode_utf16()
        .count();
    assert!(n <= MESSAGE_MAX, "{n}");
}

#[tokio::test]
async fn a_wrong_token_is_a_dead_letter_and_a_proxys_429_a_pause() {
    let gotify = fake::start("right").await;
    match output(&gotify.url(""), "wrong")
        .deliver(&[shadow_read("Error")])
        .await
    {
        Delivery::Permanent(f) => {
            assert_eq!(f.status, Some(401));
            assert!(
                f.reason
                    .starts_with("you need to provide a valid access token"),
                "{}",
                f.reason
            );
        }
        other => panic!("{other:?}"),
    }
    gotify.force(
        Reply::new(429, "<html>Too Many Requests</html>").header("retry-after", "7"),
        1,
    );
    let out = output(&gotify.url(""), "right");
    assert!(
        matches!(out.deliver(&[shadow_read("Error")]).await, Delivery::RetryAfter(_, w) if w == Duration::from_secs(7))
    );
    assert_eq!(
        out.deliver(&[shadow_read("Error")]).await,
        Delivery::Delivered
    );
}

#[test]
fn the_token_is_never_printed() {
    let s = checked::<GotifySettings>(
        json!({"url": "https://gotify.example.com", "token": "AzSecret"}),
    )
    .unwrap();
    assert_eq!(s.describe(), "Gotify https://gotify.example.com/…");
    assert!(!format!("{s:?}").contains("AzSecret"));
}
