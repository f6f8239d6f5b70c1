//! SQS settings and messages. Sending is tested end to end against moto's server
//! (tests/gateway_aws.rs).

use serde_json::{json, Value};

use super::*;
use crate::settings::checked;
use crate::testing::shadow_read;

#[test]
fn the_region_comes_from_the_queue_url_and_fifo_from_its_name() {
    let s: SqsSettings =
        checked(json!({"queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/falco"}))
            .unwrap();
    assert_eq!(s.connection.region, "eu-west-1");
    assert!(!s.fifo);
    let f: SqsSettings = checked(json!({"queue_url": "http://127.0.0.1:5000/123456789012/q.fifo", "region": "us-east-1", "message_group_id": "{hostname}"})).unwrap();
    assert!(f.fifo);
    assert_eq!(
        f.describe(),
        "SQS http://127.0.0.1:5000/123456789012/q.fifo"
    );
}

#[test]
fn keys_are_checked() {
    let err = |v: Value| checked::<SqsSettings>(v).unwrap_err().to_string();
    assert!(err(json!({"queue_url": "falco"}))
        .starts_with("queue_url: 'falco' is not an SQS queue URL"));
    assert!(
        err(json!({"queue_url": "http://127.0.0.1:5000/123456789012/q"}))
            .starts_with("region: is needed")
    );
    assert!(err(
        json!({"queue_url": "https://sqs.eu-west-1.amazonaws.com/1/q", "batch": {"max_events": 11}})
    )
    .starts_with("batch.max_events: must be at most 10"));
    assert!(err(json!({"queue_url": "https://sqs.eu-west-1.amazonaws.com/1/q", "message_group_id": "{rule}"})).starts_with("message_group_id: is for FIFO"));
}

#[test]
fn the_message_is_the_alert_with_attributes_and_fifo_ids() {
    let s: SqsSettings = checked(json!({"queue_url": "https://sqs.eu-west-1.amazonaws.com/1/q.fifo", "message_group_id": "{hostname}"})).unwrap();
    let out = SqsOutput {
        settings: s,
        client: OnceCell::new(),
    };
    let e = shadow_read("Critical");
    let m = out.message(&e).unwrap();
    let body: Value = serde_json::from_str(&m.body).unwrap();
    assert_eq!(body["uuid"], e.id());
    assert!(m
        .attributes
        .contains(&("priority".to_string(), "Critical".to_string())));
    let entry = out.entry(3, &e, &m);
    assert_eq!(entry.id(), "3");
    assert_eq!(entry.message_group_id(), Some("node-1"));
    assert_eq!(entry.message_deduplication_id(), Some(e.id()));
}
