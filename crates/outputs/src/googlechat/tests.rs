//! Google Chat against a fake of its incoming webhooks.

use std::time::Duration;

use peregrine_fakes::googlechat as fake;
use serde_json::json;

use super::*;
use crate::settings::checked;
use crate::testing::{build_context, hostile, long_output, shadow_read};

fn output(url: &str, thread: Option<&str>) -> HttpOutput<GoogleChatEncoder> {
    let keys = json!({"webhook_url": url, "thread_key": thread, "rate_limit": {"per_second": 1000.0, "burst": 100}});
    build(
        &checked::<GoogleChatSettings>(keys).unwrap(),
        build_context(),
    )
}

fn hook(chat: &peregrine_fakes::FakeService, space: &str) -> String {
    chat.url(&format!(
        "/v1/spaces/{space}/messages?key=AIzaKey&token=tok%3D"
    ))
}

#[tokio::test]
async fn alerts_arrive_in_chat_markup_in_one_thread_and_alert_text_mentions_nobody() {
    let chat = fake::start().await;
    let out = output(&hook(&chat, "AAA"), Some("falco"));
    assert_eq!(
        out.deliver(&[shadow_read("Critical")]).await,
        Delivery::Delivered
    );
    let other = output(&hook(&chat, "BBB"), None);
    assert_eq!(
        other.deliver(&[hostile("<users/all> now")]).await,
        Delivery::Delivered
    );
    let got = chat.messages();
    assert!(got[0]
        .query
        .as_deref()
        .unwrap()
        .contains("threadKey=falco&messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"));
    let text = got[0].json()["text"].as_str().unwrap().to_string();
    assert!(
        text.starts_with("*Critical: Read sensitive file untrusted*\n"),
        "{text}"
    );
    assert!(text.contains("*fd.name*: /etc/shadow"), "{text}");
    let text = got[1].json()["text"].as_str().unwrap().to_string();
    assert!(
        text.starts_with("*Critical: &lt;users/all&gt; now*"),
        "{text}"
    );
    assert_eq!(fake::live_markup(&text), Vec::<String>::new(), "{text}");
}

#[tokio::test]
async fn a_huge_alert_fits_in_4096_characters() {
    let chat = fake::start().await;
    assert_eq!(
        output(&hook(&chat, "AAA"), None)
            .deliver(&[long_output(9000)])
            .await,
        Delivery::Delivered
    );
    let text = chat.accepted()[0]["text"]
        .as_str()
        .unwrap()
        .encode_utf16()
        .count();
    assert!(text <= TEXT_MAX, "{text}");
}

#[tokio::test]
async fn googles_errors_are_dead_letters_and_its_429_a_pause() {
    let chat = fake::start().await;
    let unknown = output(&chat.url("/v1/spaces/AAA?key=k&token=t"), None);
    match unknown.deliver(&[shadow_read("Error")]).await {
        Delivery::Permanent(f) => assert_eq!(
            (f.status, f.reason.as_str()),
            (Some(404), "Requested entity was not found.")
        ),
        other => panic!("{other:?}"),
    }
    let out = output(&hook(&chat, "CCC"), None);
    assert_eq!(
        out.deliver(&[shadow_read("Error")]).await,
        Delivery::Delivered
    );
    match out.deliver(&[shadow_read("Error")]).await {
        Delivery::RetryAfter(f, wait) => {
            assert_eq!(f.reason, "Resource has been exhausted (e.g. check quota).");
            assert_eq!(wait, Duration::from_secs(1));
        }
        other => panic!("two messages in a second to one space: {other:?}"),
    }
}

#[test]
fn a_url_without_its_key_and_token_is_refused_and_never_printed() {
    let e = checked::<GoogleChatSettings>(
        json!({"webhook_url": "https://chat.googleapis.com/v1/spaces/AAA/messages?key=k"}),
    )
    .unwrap_err();
    assert_eq!(e.path, "webhook_url");
    assert!(!e.message.contains("key=k"));
    let s = checked::<GoogleChatSettings>(
        json!({"webhook_url": "https://chat.googleapis.com/v1/spaces/AAA/messages?key=k&token=t"}),
    )
    .unwrap();
    assert_eq!(
        s.describe(),
        "Google Chat webhook https://chat.googleapis.com/…"
    );
}
