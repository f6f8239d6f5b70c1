//! Telegram against a fake that parses HTML and counts as the Bot API does.

use std::time::Duration;

use peregrine_fakes::telegram as fake;
use serde_json::json;

use super::*;
use crate::settings::checked;
use crate::testing::{build_context, hostile, long_output, shadow_read};

const TOKEN: &str = "123456:ABC-def_42";

fn output(api: &str, chat: serde_json::Value) -> HttpOutput<TelegramEncoder> {
    let keys = json!({"token": TOKEN, "chat_id": chat, "api_url": api, "rate_limit": {"per_second": 1000.0, "burst": 100}});
    build(&checked::<TelegramSettings>(keys).unwrap(), build_context())
}

#[tokio::test]
async fn alerts_arrive_as_html_telegram_parses_with_alert_text_shown_as_itself() {
    let tg = fake::start().await;
    let out = output(&tg.url(""), json!(-1001234567890i64));
    assert_eq!(
        out.deliver(&[shadow_read("Critical")]).await,
        Delivery::Delivered
    );
    // Another chat: one message a second per chat is Telegram's limit.
    let other = output(&tg.url(""), json!("@alerts"));
    assert_eq!(
        other.deliver(&[hostile("<b>Shell</b> & co")]).await,
        Delivery::Delivered
    );
    let got = tg.messages();
    assert_eq!(got[0].path, format!("/bot{TOKEN}/sendMessage"));
    let first = got[0].json();
    assert_eq!(first["chat_id"], -1001234567890i64);
    assert_eq!(first["parse_mode"], "HTML");
    let text = first["text"].as_str().unwrap();
    assert!(
        text.starts_with("<b>Critical: Read sensitive file untrusted</b>\n"),
        "{text}"
    );
    assert!(
        text.contains("<b>fd.name</b>: <code>/etc/shadow</code>"),
        "{text}"
    );
    // What a reader sees of the hostile alert is its text, tags and all.
    let shown = fake::parse_html(got[1].json()["text"].as_str().unwrap()).unwrap();
    assert!(
        shown.starts_with("Critical: <b>Shell</b> & co\n"),
        "{shown}"
    );
    assert!(
        shown.contains("<a href=\"https://evil.example\">x</a>"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_huge_alert_fits_in_4096_characters() {
    let tg = fake::start().await;
    let out = output(&tg.url(""), json!("@alerts"));
    assert_eq!(
        out.deliver(&[long_output(10_000)]).await,
        Delivery::Delivered
    );
    let shown = tg.accepted()[0]["text"].as_str().unwrap().chars().count();
    assert!(shown <= TEXT_MAX, "{shown}");
}

#[tokio::test]
async fn telegrams_errors_are_dead_letters_and_its_429_a_pause() {
    let tg = fake::start().await;
    let out = output(&tg.url(""), json!(42));
    tg.force(fake::error(400, "Bad Request: chat not found"), 1);
    match out.deliver(&[shadow_read("Error")]).await {
        Delivery::Permanent(f) => assert_eq!(f.reason, "Bad Request: chat not found"),
        other => panic!("{other:?}"),
    }
    // Two messages to one chat at once: the second is over Telegram's per-chat limit.
    assert_eq!(
        out.deliver(&[shadow_read("Error")]).await,
        Delivery::Delivered
    );
    match out.deliver(&[shadow_read("Error")]).await {
        Delivery::RetryAfter(f, wait) => {
            assert_eq!(f.reason, "Too Many Requests: retry after 3");
            assert_eq!(wait, Duration::from_secs(3));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_bad_token_or_chat_is_refused_without_echoing_the_token() {
    let e = checked::<TelegramSettings>(json!({"token": "not a token", "chat_id": 1})).unwrap_err();
    assert_eq!(e.path, "token");
    assert!(!e.message.contains("not a token"));
    let e = checked::<TelegramSettings>(json!({"token": TOKEN, "chat_id": "alerts"})).unwrap_err();
    assert_eq!(e.path, "chat_id");
    let s = checked::<TelegramSettings>(json!({"token": TOKEN, "chat_id": 7})).unwrap();
    assert_eq!(
        s.describe(),
        "Telegram chat 7 via https://api.telegram.org/…"
    );
}
