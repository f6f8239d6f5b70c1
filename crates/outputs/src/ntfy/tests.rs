//! ntfy against a fake of its JSON publishing.

use std::time::Duration;

use peregrine_fakes::ntfy as fake;
use serde_json::json;

use super::*;
use crate::settings::checked;
use crate::testing::{build_context, hostile, long_output, shadow_read};

fn output(keys: serde_json::Value) -> HttpOutput<NtfyEncoder> {
    build(&checked::<NtfySettings>(keys).unwrap(), build_context())
}

#[tokio::test]
async fn an_alert_is_a_push_with_title_priority_and_tags_and_its_text_as_is() {
    let ntfy = fake::start_with_token("tk_secret").await;
    let out = output(
        json!({"url": ntfy.url(""), "topic": "falco-alerts", "token": "tk_secret", "click": "https://falco.example/ui"}),
    );
    assert_eq!(
        out.deliver(&[shadow_read("Critical")]).await,
        Delivery::Delivered
    );
    assert_eq!(
        out.deliver(&[hostile("Shell *in* <b>x</b>")]).await,
        Delivery::Delivered
    );
    let got = ntfy.accepted();
    assert_eq!(got[0]["topic"], "falco-alerts");
    assert_eq!(got[0]["title"], "Critical: Read sensitive file untrusted");
    assert_eq!(got[0]["priority"], 5);
    assert_eq!(got[0]["click"], "https://falco.example/ui");
    assert_eq!(
        got[0]["tags"],
        json!(["filesystem", "mitre_credential_access", "T1555"])
    );
    assert!(got[0]["message"]
        .as_str()
        .unwrap()
        .contains("\nfd.name: /etc/shadow"));
    // Plain text: nothing is rendered, so nothing is escaped.
    assert_eq!(got[1]["title"], "Critical: Shell *in* <b>x</b>");
    assert!(got[1]["message"]
        .as_str()
        .unwrap()
        .starts_with("@everyone @here <!channel>"));
}

#[tokio::test]
async fn a_huge_alert_fits_in_4096_bytes() {
    let ntfy = fake::start().await;
    let out = output(json!({"url": ntfy.url(""), "topic": "t"}));
    assert_eq!(out.deliver(&[long_output(9000)]).await, Delivery::Delivered);
    let message = ntfy.accepted()[0]["message"].as_str().unwrap().len();
    assert!(message <= MESSAGE_MAX_BYTES, "{message}");
}

#[tokio::test]
async fn a_wrong_token_is_a_dead_letter_and_the_visitor_limit_a_pause() {
    let ntfy = fake::start_with_token("tk_right").await;
    let wrong = output(json!({"url": ntfy.url(""), "topic": "t", "token": "tk_wrong"}));
    match wrong.deliver(&[shadow_read("Error")]).await {
        Delivery::Permanent(f) => assert_eq!(
            (f.status, f.reason.as_str(), f.code),
            (Some(401), "unauthorized", Some("unauthorized"))
        ),
        other => panic!("{other:?}"),
    }
    let open = fake::start().await;
    let out = output(
        json!({"url": open.url(""), "topic": "t", "rate_limit": {"per_second": 1000.0, "burst": 100}}),
    );
    for _ in 0..60 {
        assert_eq!(
            out.deliver(&[shadow_read("Error")]).await,
            Delivery::Delivered
        );
    }
    match out.deliver(&[shadow_read("Error")]).await {
        Delivery::RetryAfter(f, wait) => {
            assert!(f.reason.starts_with("limit reached"), "{}", f.reason);
            assert_eq!(wait, Duration::from_secs(1));
        }
        other => panic!("the 61st request: {other:?}"),
    }
}

#[test]
fn bad_keys_are_refused_and_credentials_never_printed() {
    let e = checked::<NtfySettings>(json!({"topic": "no spaces"})).unwrap_err();
    assert_eq!(e.path, "topic");
    let e = checked::<NtfySettings>(json!({"topic": "t", "token": "tk_x", "username": "u"}))
        .unwrap_err();
    assert_eq!(e.path, "token");
    let s = checked::<NtfySettings>(json!({"topic": "t", "username": "u", "password": "hunter2"}))
        .unwrap();
    assert_eq!(s.describe(), "ntfy topic t on https://ntfy.sh/…");
    assert!(!format!("{s:?}").contains("hunter2"));
}
