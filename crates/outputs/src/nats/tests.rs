//! NATS and JetStream against the real nats-server.

use futures_util::StreamExt;
use peregrine_fakes::nats::NatsServer;
use serde_json::json;

use super::*;
use crate::settings::checked;
use crate::testing::{build_context, envelope, shadow_read};

fn output(keys: serde_json::Value) -> Arc<dyn Output> {
    checked::<NatsSettings>(keys)
        .unwrap()
        .build(build_context())
}

#[tokio::test]
async fn core_nats_gets_every_alert_on_its_subject() {
    let server = NatsServer::start();
    let reader = async_nats::connect(server.url()).await.unwrap();
    let mut sub = reader.subscribe("falco.>").await.unwrap();
    reader.flush().await.unwrap();
    let out = output(json!({"url": server.url(), "subject": "falco.{priority}.{hostname}"}));
    let odd = envelope(json!({
        "rule": "r", "priority": "Notice", "time": "2026-06-12T09:23:10Z", "output": "x",
        "hostname": "node.with dots*>", "source": "syscall", "output_fields": {}, "tags": []
    }));
    let mut batch: Vec<Envelope> = (0..10).map(|_| shadow_read("Critical")).collect();
    batch.push(odd.clone());
    assert_eq!(out.deliver(&batch).await, Delivery::Delivered);
    let mut got = Vec::new();
    while got.len() < 11 {
        let m = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap()
            .unwrap();
        got.push(m);
    }
    assert_eq!(got[0].subject.as_str(), "falco.Critical.node-1");
    let alert: serde_json::Value = serde_json::from_slice(&got[0].payload).unwrap();
    assert_eq!(alert["uuid"], batch[0].id());
    assert_eq!(
        got[10].subject.as_str(),
        "falco.Notice.node_with_dots__",
        "one token, no wildcard"
    );
}

#[tokio::test]
async fn jetstream_acknowledges_and_stores_a_retried_batch_once() {
    let server = NatsServer::start();
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let out =
        output(json!({"url": server.url(), "subject": "falco.{priority}", "jetstream": true}));
    // No stream takes the subject yet: nobody acknowledges, so it is retried.
    assert!(matches!(
        out.deliver(&[shadow_read("Error")]).await,
        Delivery::Retry(_)
    ));
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "FALCO".into(),
        subjects: vec!["falco.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let batch: Vec<Envelope> = (0..5).map(|_| shadow_read("Error")).collect();
    assert_eq!(out.deliver(&batch).await, Delivery::Delivered);
    assert_eq!(
        out.deliver(&batch).await,
        Delivery::Delivered,
        "the retry of a delivered batch"
    );
    let mut stream = js.get_stream("FALCO").await.unwrap();
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        5,
        "Nats-Msg-Id kept the retry out"
    );
}

#[test]
fn keys_are_checked_and_credentials_never_printed() {
    let s = checked::<NatsSettings>(
        json!({"url": "nats://u:s3cret@n1:4222, nats://n2", "subject": "falco.{rule}"}),
    )
    .unwrap();
    assert_eq!(
        s.describe(),
        "NATS nats://n1:4222,nats://n2:4222 subject falco.{rule}"
    );
    assert!(!format!("{s:?}").contains("s3cret"));
    let e = |keys| checked::<NatsSettings>(keys).unwrap_err().path;
    assert_eq!(e(json!({"url": "http://x", "subject": "a"})), "url");
    assert_eq!(
        e(json!({"url": "nats://x", "subject": "falco.*"})),
        "subject"
    );
    assert_eq!(
        e(json!({"url": "nats://x", "subject": "falco.{rule"})),
        "subject"
    );
}
