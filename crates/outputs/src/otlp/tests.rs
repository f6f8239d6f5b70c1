//! OTLP/HTTP logs against a receiver that decodes them with the upstream protobuf definitions.

use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use peregrine_fakes::otlp as fake;
use serde_json::json;

use super::*;
use crate::settings::checked;
use crate::testing::{build_context, envelope, shadow_read};

fn output(keys: Value) -> Arc<dyn Output> {
    checked::<OtlpSettings>(keys)
        .unwrap()
        .build(build_context())
}

fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Any> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

#[tokio::test]
async fn a_batch_is_one_export_with_a_resource_per_host_and_a_record_per_alert() {
    let (receiver, requests) = fake::start(Some(("x-api-key", "k1"))).await;
    let out = output(json!({
        "endpoint": receiver.url(""), "compression": "gzip",
        "headers": {"x-api-key": "k1"}, "resource": {"deployment.environment": "prod"}
    }));
    let mut other = json!({"rule": "Other host", "priority": "Warning", "time": "2026-06-12T09:23:10Z", "output": "o", "hostname": "node-2", "source": "syscall"});
    other["output_fields"] = json!({"proc.pid": 42, "fd.name": null});
    let batch = vec![
        shadow_read("Critical"),
        envelope(other),
        shadow_read("Critical"),
    ];
    assert_eq!(out.deliver(&batch).await, Delivery::Delivered);
    let got = requests.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "one export for the batch");
    let resources = &got[0].resource_logs;
    assert_eq!(resources.len(), 2, "node-1 and node-2");
    let node1 = &resources[0];
    let res = &node1.resource.as_ref().unwrap().attributes;
    assert_eq!(
        attr(res, "service.name"),
        Some(&Any::StringValue("falco".into()))
    );
    assert_eq!(
        attr(res, "host.name"),
        Some(&Any::StringValue("node-1".into()))
    );
    assert_eq!(
        attr(res, "deployment.environment"),
        Some(&Any::StringValue("prod".into()))
    );
    let records = &node1.scope_logs[0].log_records;
    assert_eq!(records.len(), 2);
    let r = &records[0];
    assert_eq!(r.severity_number, 21, "Critical is FATAL");
    assert_eq!(r.severity_text, "Critical");
    assert_eq!(r.time_unix_nano as i64, batch[0].alert().time.unix_nanos());
    assert!(r.observed_time_unix_nano > r.time_unix_nano);
    assert_eq!(
        r.body.as_ref().unwrap().value,
        Some(Any::StringValue(batch[0].alert().output.clone()))
    );
    assert_eq!(
        attr(&r.attributes, "falco.uuid"),
        Some(&Any::StringValue(batch[0].id().into()))
    );
    assert_eq!(
        attr(&r.attributes, "proc.name"),
        Some(&Any::StringValue("cat".into()))
    );
    let node2 = &resources[1].scope_logs[0].log_records[0];
    assert_eq!(node2.severity_number, 13, "Warning is WARN");
    assert_eq!(
        attr(&node2.attributes, "proc.pid"),
        Some(&Any::IntValue(42))
    );
    assert_eq!(
        attr(&node2.attributes, "fd.name"),
        None,
        "nulls are left out"
    );
}

#[tokio::test]
async fn answers_follow_the_otlp_specification() {
    let (receiver, _) = fake::start(Some(("authorization", "Bearer right"))).await;
    let wrong =
        output(json!({"endpoint": receiver.url(""), "headers": {"authorization": "Bearer wrong"}}));
    match wrong.deliver(&[shadow_read("Error")]).await {
        Delivery::Permanent(f) => {
            assert_eq!(
                (f.status, f.reason.as_str()),
                (Some(401), "missing or wrong credentials")
            )
        }
        other => panic!("{other:?}"),
    }
    let right =
        output(json!({"endpoint": receiver.url(""), "headers": {"authorization": "Bearer right"}}));
    receiver.force(fake::error(503, "overloaded").header("retry-after", "3"), 1);
    match right.deliver(&[shadow_read("Error")]).await {
        Delivery::RetryAfter(f, wait) => {
            assert_eq!(
                (f.reason.as_str(), wait),
                ("overloaded", Duration::from_secs(3))
            )
        }
        other => panic!("{other:?}"),
    }
    receiver.force(fake::error(502, "bad gateway"), 1);
    assert!(matches!(
        right.deliver(&[shadow_read("Error")]).await,
        Delivery::Retry(_)
    ));
    receiver.force(fake::error(500, "internal"), 1);
    assert!(
        matches!(
            right.deliver(&[shadow_read("Error")]).await,
            Delivery::Permanent(_)
        ),
        "OTLP/HTTP retries only 429, 502, 503 and 504"
    );
    assert_eq!(
        right.deliver(&[shadow_read("Error")]).await,
        Delivery::Delivered
    );
}

#[test]
fn keys_are_checked_and_header_values_never_printed() {
    let s = checked::<OtlpSettings>(
        json!({"endpoint": "https://otlp.example.com", "headers": {"api-key": "HDRSECRET"}}),
    )
    .unwrap();
    assert_eq!(
        OutputSettings::describe(&s),
        "OTLP logs https://otlp.example.com/…"
    );
    assert!(!format!("{s:?}").contains("HDRSECRET"));
    let e = checked::<OtlpSettings>(json!({"endpoint": "https://o", "headers": {"bad name": "v"}}))
        .unwrap_err();
    assert_eq!(e.path, "headers.bad name");
    let e = checked::<OtlpSettings>(json!({"endpoint": "https://o", "compression": "zstd"}))
        .unwrap_err();
    assert_eq!(e.path, "compression");
}
