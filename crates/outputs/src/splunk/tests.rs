//! Splunk HEC against a fake following Splunk's HEC documentation.

use peregrine_fakes::splunk as fake;
use serde_json::json;

use super::*;
use crate::settings::checked;
use crate::testing::{build_context, shadow_read};

fn output(keys: Value) -> Arc<dyn Output> {
    checked::<SplunkSettings>(keys)
        .unwrap()
        .build(build_context())
}

#[tokio::test]
async fn a_batch_is_one_request_of_events_with_time_host_and_indexed_fields() {
    let (hec, store) = fake::start("hec-token", &["security"], false).await;
    let out = output(json!({"url": hec.url(""), "token": "hec-token", "index": "security"}));
    let batch: Vec<Envelope> = (0..3).map(|_| shadow_read("Critical")).collect();
    assert_eq!(out.deliver(&batch).await, Delivery::Delivered);
    assert_eq!(hec.messages().len(), 1, "one request for the batch");
    let events = store.lock().unwrap().events.clone();
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["event"]["uuid"], batch[0].id());
    assert_eq!(events[0]["host"], "node-1");
    assert_eq!(events[0]["index"], "security");
    assert_eq!(events[0]["sourcetype"], "falco:alert");
    assert_eq!(events[0]["fields"]["priority"], "Critical");
    let millis = batch[0].alert().time.unix_nanos() / 1_000_000;
    assert_eq!(
        (events[0]["time"].as_f64().unwrap() * 1000.0).round() as i64,
        millis
    );
}

#[tokio::test]
async fn with_ack_an_alert_is_delivered_once_splunk_says_it_is_indexed() {
    let (hec, store) = fake::start("t", &[], true).await;
    let out = output(json!({"url": hec.url(""), "token": "t", "ack": true}));
    assert_eq!(
        out.deliver(&[shadow_read("Error")]).await,
        Delivery::Delivered
    );
    let paths: Vec<String> = hec.messages().iter().map(|m| m.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/services/collector/event",
            "/services/collector/ack",
            "/services/collector/ack"
        ],
        "the first status query says not yet"
    );
    assert_eq!(store.lock().unwrap().events.len(), 1);

    let impatient =
        output(json!({"url": hec.url(""), "token": "t", "ack": true, "ack_timeout": "100ms"}));
    match impatient.deliver(&[shadow_read("Error")]).await {
        Delivery::Retry(f) => assert_eq!(f.code, Some("ack_timeout")),
        other => panic!("{other:?}"),
    }

    let (plain, _) = fake::start("t", &[], false).await;
    match output(json!({"url": plain.url(""), "token": "t", "ack": true}))
        .deliver(&[shadow_read("Error")])
        .await
    {
        Delivery::Permanent(f) => assert!(f.reason.contains("indexer acknowledgement"), "{f}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn hec_refusals_are_dead_letters_with_its_words_and_busy_is_retried() {
    let (hec, _) = fake::start("right", &[], false).await;
    match output(json!({"url": hec.url(""), "token": "wrong"}))
        .deliver(&[shadow_read("Error")])
        .await
    {
        Delivery::Permanent(f) => {
            assert_eq!(
                (f.status, f.reason.as_str()),
                (Some(403), "Invalid token (code 4)")
            )
        }
        other => panic!("{other:?}"),
    }
    match output(json!({"url": hec.url(""), "token": "right", "index": "nope"}))
        .deliver(&[shadow_read("Error")])
        .await
    {
        Delivery::Permanent(f) => assert_eq!(f.reason, "Incorrect index (code 7)"),
        other => panic!("{other:?}"),
    }
    hec.force(fake::reply(503, 9, "Server is busy"), 1);
    match output(json!({"url": hec.url(""), "token": "right"}))
        .deliver(&[shadow_read("Error")])
        .await
    {
        Delivery::Retry(f) => assert_eq!(f.reason, "Server is busy (code 9)"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn keys_are_checked_and_the_token_never_printed() {
    let s = checked::<SplunkSettings>(
        json!({"url": "https://splunk.example.com:8088", "token": "TOKSECRET", "ack": true}),
    )
    .unwrap();
    assert_eq!(
        OutputSettings::describe(&s),
        "Splunk HEC https://splunk.example.com:8088/…, acknowledged"
    );
    assert!(!format!("{s:?}").contains("TOKSECRET"));
    let e = checked::<SplunkSettings>(
        json!({"url": "https://s:8088", "token": "t", "ack_timeout": "5s"}),
    )
    .unwrap_err();
    assert_eq!(e.path, "ack_timeout");
    let e =
        checked::<SplunkSettings>(json!({"url": "https://s:8088", "token": "t", "index": "a b"}))
            .unwrap_err();
    assert_eq!(e.path, "index");
}
