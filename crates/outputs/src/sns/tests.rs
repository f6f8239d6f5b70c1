//! SNS messages and settings. Publishing is tested end to end against moto's server
//! (tests/gateway_queues.rs), where the gateway's credential chain reads dummy keys.

use serde_json::{json, Value};

use super::*;
use crate::settings::checked;
use crate::testing::{envelope, shadow_read};

fn config(keys: Value) -> SnsSettings {
    checked(keys).unwrap()
}

const ARN: &str = "arn:aws:sns:eu-west-1:123456789012:falco";

#[test]
fn json_messages_are_the_alert_with_filterable_attributes() {
    let c = config(json!({"topic_arn": ARN}));
    let e = shadow_read("Critical");
    let m = message(&e, c.keys.format, None, &c.keys.message_attributes).unwrap();
    let body: Value = serde_json::from_str(&m.body).unwrap();
    assert_eq!(body["uuid"], e.id());
    assert_eq!(body["rule"], "Read sensitive file untrusted");
    assert_eq!(m.subject, None);
    assert_eq!(
        m.attributes,
        [
            ("priority".to_string(), "Critical".to_string()),
            (
                "rule".to_string(),
                "Read sensitive file untrusted".to_string()
            ),
            ("source".to_string(), "syscall".to_string()),
            ("hostname".to_string(), "node-1".to_string()),
        ]
    );
    assert_eq!(c.connection.region, "eu-west-1");
}

#[test]
fn text_messages_have_a_subject_within_snss_rules() {
    let c = config(
        json!({"topic_arn": ARN, "format": "text", "message_attributes": ["proc.name", "k8s.ns.name", "AWS.trace"]}),
    );
    let e = shadow_read("Warning");
    let m = message(&e, c.keys.format, None, &c.keys.message_attributes).unwrap();
    assert_eq!(
        m.subject.as_deref(),
        Some("[Warning] Read sensitive file untrusted")
    );
    assert!(m.body.contains("file=/etc/shadow"));
    assert_eq!(
        m.attributes,
        [("proc.name".to_string(), "cat".to_string())],
        "null fields are left out"
    );
    assert_eq!(attribute_name("AWS.trace"), "f_AWS.trace");
    assert_eq!(attribute_name("proc.aname[2]"), "proc.aname_2_");
    assert_eq!(attribute_name(".a..b."), "a.b");
    let long = envelope(
        json!({"rule": "é".repeat(300), "priority": "Error", "time": "2026-06-12T09:23:10Z"}),
    );
    let m = message(&long, SnsFormat::Text, None, &Attributes::Off).unwrap();
    assert_eq!(m.subject.as_ref().unwrap().chars().count(), 100);
    assert!(m.subject.unwrap().is_ascii());
}

#[test]
fn an_oversized_alert_is_cut_under_256_kib_or_refused() {
    let mut fields = serde_json::Map::new();
    for i in 0..100 {
        fields.insert(format!("big.f{i}"), json!("x".repeat(5000)));
    }
    let e = envelope(
        json!({"rule": "Huge", "priority": "Error", "time": "2026-06-12T09:23:10Z", "output": "o".repeat(100_000), "output_fields": fields}),
    );
    assert!(e.json.len() > MAX_BYTES);
    let m = message(&e, SnsFormat::Json, None, &Attributes::default()).unwrap();
    assert!(m.size() <= MAX_BYTES, "{}", m.size());
    let body: Value = serde_json::from_str(&m.body).unwrap();
    assert!(body["output_fields"]["big.f0"]
        .as_str()
        .unwrap()
        .ends_with(crate::card::TRUNCATED));
    assert_eq!(body["uuid"], e.id(), "the id survives the cut");

    let hopeless = envelope(
        json!({"rule": "r".repeat(300_000), "priority": "Error", "time": "2026-06-12T09:23:10Z"}),
    );
    assert_eq!(
        message(&hopeless, SnsFormat::Json, None, &Attributes::Off),
        None
    );
}

#[test]
fn errors_pass_or_not_by_snss_code() {
    for (code, retry) in [
        ("Throttled", true),
        ("KMSThrottling", true),
        ("InternalError", true),
        ("InvalidParameter", false),
        ("NotFound", false),
        ("AuthorizationError", false),
    ] {
        let c = response::by_code(CODES, code, "m", Some(400));
        assert_eq!(c.retry, retry, "{code}");
        assert_eq!(c.failure.code, Some(code));
    }
    let unknown = response::by_code(CODES, "SomethingNew", "m", Some(503));
    assert!(unknown.retry);
    assert_eq!(unknown.failure.code, Some("other"));
    assert!(!response::by_code(CODES, "SomethingNew", "m", Some(400)).retry);
}

#[test]
fn keys_are_checked() {
    let err = |v: Value| checked::<SnsSettings>(v).unwrap_err().to_string();
    assert!(
        err(json!({"topic_arn": "arn:aws:sqs:us-east-1:123456789012:q"}))
            .starts_with("topic_arn: 'arn:aws:sqs")
    );
    assert!(err(json!({"topic_arn": ARN, "batch": {"max_events": 11}}))
        .starts_with("batch.max_events: must be at most 10"));
    assert!(err(json!({"topic_arn": ARN, "message_group_id": "{rule}"}))
        .starts_with("message_group_id: is for FIFO"));
    assert!(err(json!({"topic_arn": ARN, "external_id": "x"})).starts_with("external_id:"));
    assert!(err(json!({"topic_arn": ARN, "message_attributes": ["a","b","c","d","e","f","g","h","i","j","k"]})).contains("at most 10"));
    let fifo = config(
        json!({"topic_arn": "arn:aws:sns:us-east-1:123456789012:falco.fifo", "message_group_id": "{hostname}"}),
    );
    assert!(fifo.fifo);
    let printed = config(json!({"topic_arn": ARN, "endpoint_url": "https://vpce-123.sns.eu-west-1.vpce.amazonaws.com/secretpath"})).describe();
    assert_eq!(printed, "SNS arn:aws:sns:eu-west-1:123456789012:falco via https://vpce-123.sns.eu-west-1.vpce.amazonaws.com/…");
}
