//! Opsgenie against a fake of its Alert API.

use std::time::Duration;

use peregrine_fakes::opsgenie as fake;
use serde_json::json;

use super::*;
use crate::settings::checked;
use crate::testing::{build_context, deliver_until_paused, envelope, long_output, shadow_read};

const KEY: &str = "eb243592-faa2-4ba2-a551-1afdf565c889";

fn output(url: &str, key: &str) -> HttpOutput<OpsgenieEncoder> {
    let keys = json!({
        "api_key": key, "url": url,
        "responders": [{"type": "team", "name": "SecOps"}],
        "rate_limit": {"per_second": 1000.0, "burst": 100}
    });
    build(&checked::<OpsgenieSettings>(keys).unwrap(), build_context())
}

#[tokio::test]
async fn an_alert_opens_an_opsgenie_alert_keyed_by_its_id() {
    let og = fake::start(KEY).await;
    let out = output(&og.url(""), KEY);
    let alert = shadow_read("Critical");
    assert_eq!(
        out.deliver(std::slice::from_ref(&alert)).await,
        Delivery::Delivered
    );
    let got = og.messages();
    assert_eq!(got[0].status, 202);
    assert_eq!(
        got[0].headers["authorization"],
        format!("GenieKey {KEY}").as_str()
    );
    let body = got[0].json();
    assert_eq!(body["message"], "Read sensitive file untrusted");
    assert_eq!(body["alias"], alert.id());
    assert_eq!(body["priority"], "P2");
    assert_eq!(body["entity"], "node-1");
    assert_eq!(body["source"], "Peregrine");
    assert_eq!(body["details"]["proc.name"], "cat");
    assert_eq!(body["details"]["user.uid"], "0");
    assert_eq!(
        body["responders"],
        json!([{"type": "team", "name": "SecOps"}])
    );
    let description = body["description"].as_str().unwrap();
    assert!(
        description.starts_with("Sensitive file opened for reading"),
        "{description}"
    );
    assert!(
        description.ends_with("Tags: filesystem, mitre_credential_access, T1555"),
        "{description}"
    );
}

#[tokio::test]
async fn every_field_is_cut_to_opsgenies_limits() {
    let og = fake::start(KEY).await;
    let out = output(&og.url(""), KEY);
    let many_tags: Vec<String> = (0..40).map(|i| format!("{i}-{}", "t".repeat(80))).collect();
    let fields: serde_json::Map<String, serde_json::Value> = (0..60)
        .map(|i| (format!("f{i}"), json!("v".repeat(400))))
        .collect();
    let busy = envelope(json!({
        "rule": "R".repeat(300), "priority": "Emergency", "time": "2026-06-12T09:23:10Z",
        "output": "o".repeat(30_000), "hostname": "h".repeat(600), "source": "syscall",
        "output_fields": fields, "tags": many_tags
    }));
    assert_eq!(out.deliver(&[busy]).await, Delivery::Delivered);
    assert_eq!(
        out.deliver(&[long_output(20_000)]).await,
        Delivery::Delivered
    );
    assert_eq!(og.accepted()[0]["priority"], "P1");
}

#[tokio::test]
async fn a_wrong_key_and_a_refused_body_are_dead_letters_and_a_429_a_pause() {
    let og = fake::start(KEY).await;
    match output(&og.url(""), "not-the-key")
        .deliver(&[shadow_read("Error")])
        .await
    {
        Delivery::Permanent(f) => assert_eq!(
            (f.status, f.reason.as_str()),
            (Some(401), "Could not authenticate")
        ),
        other => panic!("{other:?}"),
    }
    let out = output(&og.url(""), KEY);
    og.force(
        fake::unprocessable("message", "Message can not be empty."),
        1,
    );
    match out.deliver(&[shadow_read("Error")]).await {
        Delivery::Permanent(f) => assert_eq!(
            f.reason,
            "Request body is not processable. Please check the errors. (message: Message can not be empty.)"
        ),
        other => panic!("{other:?}"),
    }
    let (delivered, f, wait) = deliver_until_paused(&out, 50).await;
    assert!(delivered >= 9, "{delivered}");
    assert!(
        f.reason.starts_with("You are making too many requests!"),
        "{}",
        f.reason
    );
    assert_eq!(wait, Duration::from_secs(1));
}

#[test]
fn regions_responders_and_the_key_are_checked_and_the_key_never_printed() {
    let s = checked::<OpsgenieSettings>(json!({"api_key": KEY, "region": "eu"})).unwrap();
    assert_eq!(s.describe(), "Opsgenie https://api.eu.opsgenie.com/…");
    assert!(!format!("{s:?}").contains(KEY));
    let e = checked::<OpsgenieSettings>(
        json!({"api_key": KEY, "responders": [{"type": "squad", "name": "x"}]}),
    )
    .unwrap_err();
    assert_eq!(e.path, "responders[0].type");
    let e = checked::<OpsgenieSettings>(json!({"api_key": KEY, "responders": [{"type": "team"}]}))
        .unwrap_err();
    assert_eq!(e.path, "responders[0]");
}
