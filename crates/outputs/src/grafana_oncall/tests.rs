//! Grafana OnCall against a fake of its formatted webhook integration.

use std::time::Duration;

use peregrine_fakes::grafana_oncall as fake;
use serde_json::json;

use super::*;
use crate::settings::checked;
use crate::testing::{build_context, hostile, long_output, shadow_read};

const HOOK: &str = "/integrations/v1/formatted_webhook/mReAoNwDm0eMwKo1mTeTwYo/";

fn output(url: &str) -> HttpOutput<OnCallEncoder> {
    let keys = json!({"webhook_url": url, "link": "https://falco.example/ui", "rate_limit": {"per_second": 1000.0, "burst": 1000}});
    build(&checked::<OnCallSettings>(keys).unwrap(), build_context())
}

#[tokio::test]
async fn an_alert_is_an_oncall_alert_keyed_by_its_id_with_its_keys_for_routing() {
    let oncall = fake::start("mReAoNwDm0eMwKo1mTeTwYo").await;
    let out = output(&oncall.url(HOOK));
    let alert = shadow_read("Critical");
    assert_eq!(
        out.deliver(std::slice::from_ref(&alert)).await,
        Delivery::Delivered
    );
    assert_eq!(
        out.deliver(&[hostile("<b>x</b>")]).await,
        Delivery::Delivered
    );
    let got = oncall.accepted();
    let body = &got[0];
    assert_eq!(body["alert_uid"], alert.id());
    assert_eq!(body["title"], "Critical: Read sensitive file untrusted");
    assert_eq!(body["state"], "alerting");
    assert_eq!(body["link_to_upstream_details"], "https://falco.example/ui");
    assert_eq!(body["priority"], "Critical");
    assert_eq!(body["output_fields"]["fd.name"], "/etc/shadow");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("\nproc.cmdline: cat /etc/shadow"));
    // Data, not markup: the hostile alert's text arrives as it is.
    assert_eq!(got[1]["title"], "Critical: <b>x</b>");
}

#[tokio::test]
async fn a_huge_alert_is_cut() {
    let oncall = fake::start("t").await;
    let out = output(&oncall.url("/integrations/v1/formatted_webhook/t/"));
    assert_eq!(
        out.deliver(&[long_output(30_000)]).await,
        Delivery::Delivered
    );
    let body = &oncall.accepted()[0];
    assert!(body["message"].as_str().unwrap().encode_utf16().count() <= MESSAGE_MAX);
    assert_eq!(body["title"].as_str().unwrap().chars().count(), TITLE_MAX);
}

#[tokio::test]
async fn an_unknown_integration_is_a_dead_letter_and_the_rate_limit_a_pause() {
    let oncall = fake::start("right").await;
    match output(&oncall.url("/integrations/v1/formatted_webhook/wrong/"))
        .deliver(&[shadow_read("Error")])
        .await
    {
        Delivery::Permanent(f) => {
            assert_eq!(f.status, Some(403));
            assert!(
                f.reason.starts_with("Integration key was not found."),
                "{}",
                f.reason
            );
        }
        other => panic!("{other:?}"),
    }
    let out = output(&oncall.url("/integrations/v1/formatted_webhook/right/"));
    let (delivered, f, wait) = crate::testing::deliver_until_paused(&out, 400).await;
    assert_eq!(delivered, 300);
    assert_eq!(
        f.reason,
        "Rate-limit has been reached. Please try again later."
    );
    assert_eq!(wait, Duration::from_secs(60));
}

#[test]
fn the_integration_url_is_never_printed() {
    let s = checked::<OnCallSettings>(
        json!({"webhook_url": "https://oncall.example.com/integrations/v1/formatted_webhook/tok/"}),
    )
    .unwrap();
    assert_eq!(
        s.describe(),
        "Grafana OnCall integration https://oncall.example.com/…"
    );
}
