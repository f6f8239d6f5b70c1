//! S3 object keys and settings. Writing is tested end to end against moto's server
//! (tests/gateway_aws.rs).

use serde_json::{json, Value};

use super::*;
use crate::settings::checked;

fn at(time: &str, uuid: &str) -> Envelope {
    let alert = peregrine_engine::Alert::from_json(
        json!({"rule": "r", "priority": "Error", "time": time, "uuid": uuid}),
    )
    .unwrap();
    Envelope::new(alert)
}

#[test]
fn one_object_per_hour_named_by_its_first_alert() {
    let batch = [
        at(
            "2026-06-12T09:59:59Z",
            "11111111-1111-4111-8111-111111111111",
        ),
        at(
            "2026-06-12T10:00:00Z",
            "22222222-2222-4222-8222-222222222222",
        ),
        at(
            "2026-06-12T09:10:00Z",
            "33333333-3333-4333-8333-333333333333",
        ),
    ];
    assert_eq!(
        objects("falco/prod", &batch),
        [
            (
                "falco/prod/2026/06/12/09/11111111-1111-4111-8111-111111111111.json.gz".to_string(),
                vec![0, 2]
            ),
            (
                "falco/prod/2026/06/12/10/22222222-2222-4222-8222-222222222222.json.gz".to_string(),
                vec![1]
            ),
        ]
    );
    assert_eq!(
        objects("", &batch[1..2])[0].0,
        "2026/06/12/10/22222222-2222-4222-8222-222222222222.json.gz"
    );
    assert_eq!(
        object_name("../x y"),
        "___x_y",
        "an id that is not a uuid stays one segment"
    );
}

#[test]
fn keys_are_checked() {
    let err = |v: Value| checked::<S3Settings>(v).unwrap_err().to_string();
    assert!(err(json!({"bucket": "Falco", "region": "eu-west-1"})).starts_with("bucket:"));
    assert!(
        err(json!({"bucket": "falco", "region": "eu-west-1", "prefix": "a//b"}))
            .starts_with("prefix:")
    );
    assert!(err(json!({"bucket": "falco"})).starts_with("region: is needed"));
    let s: S3Settings =
        checked(json!({"bucket": "falco", "region": "eu-west-1", "prefix": "/alerts/"})).unwrap();
    assert_eq!(s.prefix, "alerts");
    assert!(!s.path_style);
    assert_eq!(s.describe(), "S3 s3://falco/alerts in eu-west-1");
    let m: S3Settings = checked(
        json!({"bucket": "falco", "region": "us-east-1", "endpoint_url": "http://127.0.0.1:9000"}),
    )
    .unwrap();
    assert!(
        m.path_style,
        "compatible servers take the bucket in the path"
    );
}
