//! Datadog against a fake of its Logs intake v2.

use std::time::Duration;

use peregrine_fakes::datadog as fake;
use serde_json::json;

use super::*;
use crate::settings::checked;
use crate::testing::{build_context, long_output, shadow_read};

fn output(url: &str, key: &str) -> Arc<dyn Output> {
    let keys = json!({"api_key": key, "url": url, "tags": ["env:test"]});
    checked::<DatadogSettings>(keys)
        .unwrap()
        .build(build_context())
}

#[tokio::test]
async fn a_batch_is_one_gzipped_request_of_logs_with_status_tags_and_the_alert() {
    let (intake, logs) = fake::start("dd-key").await;
    let out = output(&intake.url(""), "dd-key");
    assert_eq!(out.batch_limits().max_events, 1000);
    let batch: Vec<Envelope> = (0..3).map(|_| shadow_read("Critical")).collect();
    assert_eq!(out.deliver(&batch).await, Delivery::Delivered);
    let got = intake.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].headers["content-encoding"], "gzip");
    let logs = logs.lock().unwrap().clone();
    assert_eq!(logs.len(), 3);
    assert_eq!(logs[0]["ddsource"], "falco");
    assert_eq!(logs[0]["service"], "falco");
    assert_eq!(logs[0]["status"], "critical");
    assert_eq!(logs[0]["hostname"], "node-1");
    assert_eq!(
        logs[0]["ddtags"],
        "rule:Read sensitive file untrusted,priority:critical,filesystem,mitre_credential_access,T1555,env:test"
    );
    assert!(logs[0]["message"]
        .as_str()
        .unwrap()
        .starts_with("Sensitive file opened"));
    assert_eq!(logs[0]["falco"]["uuid"], batch[0].id());
}

#[tokio::test]
async fn a_log_over_1mb_is_cut_and_accepted() {
    let (intake, logs) = fake::start("k").await;
    assert_eq!(
        output(&intake.url(""), "k")
            .deliver(&[long_output(600_000)])
            .await,
        Delivery::Delivered
    );
    let logs = logs.lock().unwrap().clone();
    assert_eq!(logs[0]["falco"]["truncated"], true);
}

#[tokio::test]
async fn a_bad_key_is_a_dead_letter_with_datadogs_words_and_a_429_a_pause() {
    let (intake, _) = fake::start("right").await;
    match output(&intake.url(""), "wrong")
        .deliver(&[shadow_read("Error")])
        .await
    {
        Delivery::Permanent(f) => {
            assert_eq!((f.status, f.reason.as_str()), (Some(403), "Forbidden"))
        }
        other => panic!("{other:?}"),
    }
    intake.force(
        fake::error(429, "Too Many Requests").header("retry-after", "2"),
        1,
    );
    match output(&intake.url(""), "right")
        .deliver(&[shadow_read("Error")])
        .await
    {
        Delivery::RetryAfter(_, wait) => assert_eq!(wait, Duration::from_secs(2)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn sites_are_checked_and_the_key_never_printed() {
    let s = checked::<DatadogSettings>(json!({"api_key": "KEYSECRET", "site": "datadoghq.eu"}))
        .unwrap();
    assert_eq!(
        s.describe(),
        "Datadog logs https://http-intake.logs.datadoghq.eu/…"
    );
    assert!(!format!("{s:?}").contains("KEYSECRET"));
    let e = checked::<DatadogSettings>(json!({"api_key": "k", "site": "example.com"})).unwrap_err();
    assert_eq!(e.path, "site");
}
