//! Alertmanager against the real one (Debian's `prometheus-alertmanager`), read back through its
//! API.

use std::time::Duration;

use peregrine_fakes::alertmanager::Alertmanager;
use serde_json::json;

use super::*;
use crate::settings::checked;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::testing::{build_context, envelope, shadow_read};

const WAIT: Duration = Duration::from_secs(10);

fn output(keys: serde_json::Value) -> Arc<dyn Output> {
    checked::<AlertmanagerSettings>(keys)
        .unwrap()
        .build(build_context())
}

/// A port nothing listens on.
fn closed_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

fn by_rule<'a>(alerts: &'a [serde_json::Value], rule: &str) -> &'a serde_json::Value {
    alerts
        .iter()
        .find(|a| a["labels"]["rule"] == rule)
        .unwrap_or_else(|| panic!("no {rule} in {alerts:?}"))
}

/// An alert at `time`, from a container named `container`.
fn alert_at(rule: &str, time: OffsetDateTime, container: &str) -> Envelope {
    envelope(json!({
        "rule": rule, "priority": "Critical", "time": time.format(&Rfc3339).unwrap(),
        "output": "10:00:00.000000000: Critical Sensitive file opened for reading", "hostname": "node-1",
        "source": "syscall", "tags": ["filesystem", "mitre_credential_access"],
        "output_fields": {"container.name": container, "k8s.ns.name": null, "user.uid": 0, "proc.name": "cat"}
    }))
}

fn instant(v: &serde_json::Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().unwrap(), &Rfc3339).unwrap()
}

#[tokio::test]
async fn a_batch_arrives_as_alerts_with_labels_annotations_and_an_end() {
    let am = Alertmanager::start().await;
    let out = output(json!({
        "urls": am.url, "label_fields": ["container.name", "k8s.ns.name", "user.uid"],
        "labels": {"team": "security"}, "expire_after": "1h"
    }));
    // Now, to the second: Alertmanager lists only alerts that have not ended.
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let (read, shell) = (
        alert_at("Read sensitive file", now, "web"),
        alert_at("Shell in container", now, "db"),
    );
    assert_eq!(
        out.deliver(&[read.clone(), shell]).await,
        Delivery::Delivered
    );
    let alerts = am.wait_alerts(2, WAIT).await;
    let a = by_rule(&alerts, "Read sensitive file");
    assert_eq!(a["labels"]["alertname"], "Read sensitive file");
    assert_eq!(a["labels"]["priority"], "Critical");
    assert_eq!(a["labels"]["hostname"], "node-1");
    assert_eq!(a["labels"]["source"], "syscall");
    assert_eq!(a["labels"]["team"], "security");
    assert_eq!(a["labels"]["container_name"], "web");
    assert_eq!(a["labels"]["user_uid"], "0");
    assert!(
        a["labels"].get("k8s_ns_name").is_none(),
        "a null field is no label"
    );
    assert_eq!(a["annotations"]["uuid"], read.id());
    assert_eq!(
        a["annotations"]["tags"],
        "filesystem,mitre_credential_access"
    );
    assert_eq!(
        a["annotations"]["summary"],
        "Sensitive file opened for reading"
    );
    assert_eq!(instant(&a["startsAt"]), now);
    assert_eq!(instant(&a["endsAt"]), now + Duration::from_secs(3600));
    assert_eq!(a["status"]["state"], "active");
    let b = by_rule(&alerts, "Shell in container");
    assert_eq!(b["labels"]["container_name"], "db");
}

#[tokio::test]
async fn every_peer_gets_the_batch_and_one_up_is_enough() {
    let (one, two) = (Alertmanager::start().await, Alertmanager::start().await);
    let down = closed_url();
    let out = output(json!({"urls": [one.url, down, two.url], "expire_after": "0s"}));
    assert_eq!(
        out.deliver(&[shadow_read("Error")]).await,
        Delivery::Delivered
    );
    for am in [&one, &two] {
        let alerts = am.wait_alerts(1, WAIT).await;
        // No endsAt sent: Alertmanager sets its own from resolve_timeout.
        assert_eq!(alerts[0]["labels"]["priority"], "Error");
    }
    let nobody = output(json!({"urls": closed_url()}));
    match nobody.deliver(&[shadow_read("Error")]).await {
        Delivery::Retry(f) => assert!(f.reason.starts_with("connection failed"), "{}", f.reason),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn what_alertmanager_refuses_is_permanent_with_its_words() {
    let am = Alertmanager::start().await;
    let bad = reqwest::Client::new()
        .post(format!("{}/api/v2/alerts", am.url))
        .header("content-type", "application/json")
        .body(r#"[{"labels":{},"startsAt":"2026-06-12T09:23:10Z"}]"#)
        .send()
        .await
        .unwrap();
    let response = http::HttpResponse {
        status: bad.status(),
        headers: bad.headers().clone(),
        body: bad.bytes().await.unwrap(),
    };
    match read_answer(&response) {
        Delivery::Permanent(f) => {
            assert_eq!(f.status, Some(400));
            assert!(
                f.reason.contains("at least one label pair required"),
                "{}",
                f.reason
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn keys_are_checked_and_urls_never_printed() {
    let s =
        checked::<AlertmanagerSettings>(json!({"urls": "http://am-1:9093,https://u:pw@am-2:9093"}))
            .unwrap();
    assert_eq!(
        s.describe(),
        "Alertmanager http://am-1:9093/…, https://am-2:9093/…"
    );
    let e = checked::<AlertmanagerSettings>(
        json!({"urls": "http://am:9093", "labels": {"bad-name": "x"}}),
    )
    .unwrap_err();
    assert_eq!(e.path, "labels.bad-name");
    let e = checked::<AlertmanagerSettings>(
        json!({"urls": "http://am:9093", "max_alerts_per_batch": 0}),
    )
    .unwrap_err();
    assert_eq!(e.path, "max_alerts_per_batch");
    assert_eq!(label_name("k8s.ns.name"), "k8s_ns_name");
    assert_eq!(label_name("proc.aname[2]"), "proc_aname_2_");
    assert_eq!(label_name("9lives"), "_9lives");
}
