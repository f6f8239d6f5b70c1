//! Kinesis settings and records. Sending is tested end to end against moto's server
//! (tests/gateway_aws.rs).

use serde_json::{json, Value};

use super::*;
use crate::settings::checked;
use crate::testing::{envelope, shadow_read};

fn output(keys: Value) -> KinesisOutput {
    KinesisOutput {
        settings: checked(keys).unwrap(),
        client: OnceCell::new(),
    }
}

#[test]
fn partition_keys_follow_the_template_or_fall_back_to_the_uuid() {
    let o = output(json!({"stream_name": "falco", "region": "eu-west-1"}));
    assert_eq!(o.partition_key(&shadow_read("Critical")), "node-1");
    let o = output(
        json!({"stream_name": "falco", "region": "eu-west-1", "partition_key": "{k8s.ns.name}"}),
    );
    let e = shadow_read("Critical");
    assert_eq!(o.partition_key(&e), e.id(), "an empty key is not allowed");
    let long = envelope(
        json!({"rule": "r", "priority": "Error", "time": "2026-06-12T09:23:10Z", "hostname": "h".repeat(400)}),
    );
    let o = output(json!({"stream_name": "falco", "region": "eu-west-1"}));
    assert!(o.partition_key(&long).chars().count() <= 256);
}

#[test]
fn keys_are_checked() {
    let err = |v: Value| checked::<KinesisSettings>(v).unwrap_err().to_string();
    assert!(
        err(json!({"stream_name": "fal co", "region": "eu-west-1"})).starts_with("stream_name:")
    );
    assert!(err(json!({"stream_name": "falco"})).starts_with("region: is needed"));
    assert!(err(
        json!({"stream_name": "falco", "region": "eu-west-1", "batch": {"max_events": 501}})
    )
    .starts_with("batch.max_events:"));
    assert!(
        err(json!({"stream_name": "falco", "region": "eu-west-1", "partition_key": "fixed"}))
            .starts_with("partition_key:")
    );
    let s: KinesisSettings = checked(json!({"stream_name": "falco", "region": "eu-west-1", "endpoint_url": "https://user:pw@kinesis.example/"})).unwrap();
    assert!(!s.describe().contains("pw"), "{}", s.describe());
}
