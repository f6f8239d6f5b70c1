//! MQTT against the real mosquitto, read back by a subscriber.

use std::time::Duration;

use peregrine_fakes::mosquitto::Mosquitto;
use serde_json::json;

use super::*;
use crate::delivery::ItemResult;
use crate::settings::checked;
use crate::testing::{build_context, envelope, shadow_read};

fn output(keys: serde_json::Value) -> Arc<dyn Output> {
    checked::<MqttSettings>(keys)
        .unwrap()
        .build(build_context())
}

/// Subscribes to `filter`; the messages arrive on the receiver as (topic, payload).
async fn subscribe(
    port: u16,
    filter: &str,
) -> (
    AsyncClient,
    mpsc::UnboundedReceiver<(String, serde_json::Value)>,
) {
    let (client, mut eventloop) =
        AsyncClient::new(MqttOptions::new("test-subscriber", "127.0.0.1", port), 100);
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    let mut subscribed_tx = Some(subscribed_tx);
    tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            match event {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(t) = subscribed_tx.take() {
                        let _ = t.send(());
                    }
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let payload = serde_json::from_slice(&p.payload).unwrap();
                    let _ = tx.send((p.topic, payload));
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), subscribed)
        .await
        .unwrap()
        .unwrap();
    (client, rx)
}

async fn receive(
    rx: &mut mpsc::UnboundedReceiver<(String, serde_json::Value)>,
    n: usize,
) -> Vec<(String, serde_json::Value)> {
    let mut got = Vec::new();
    while got.len() < n {
        let m = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of {n} messages", got.len()));
        got.push(m.unwrap());
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_acknowledged_and_arrives_on_its_topics() {
    let broker = Mosquitto::start();
    let (_sub, mut rx) = subscribe(broker.port, "falco/#").await;
    let out = output(json!({"url": broker.url(), "topic": "falco/{priority}/{rule}"}));
    let odd = envelope(json!({
        "rule": "a/b+c#d", "priority": "Notice", "time": "2026-06-12T09:23:10Z", "output": "x",
        "hostname": "h", "source": "syscall", "output_fields": {}, "tags": []
    }));
    let mut batch: Vec<Envelope> = (0..20).map(|_| shadow_read("Critical")).collect();
    batch.push(odd.clone());
    assert_eq!(out.deliver(&batch).await, Delivery::Delivered);
    let got = receive(&mut rx, 21).await;
    assert_eq!(got[0].0, "falco/Critical/Read sensitive file untrusted");
    assert_eq!(got[0].1["uuid"], batch[0].id());
    let last = got.iter().find(|(_, a)| a["uuid"] == odd.id()).unwrap();
    assert_eq!(
        last.0, "falco/Notice/a_b_c_d",
        "alert text stays one level and no wildcard"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_broker_is_a_retry_and_delivery_resumes_when_it_is_back() {
    let mut broker = Mosquitto::start();
    let out = output(json!({"url": broker.url(), "topic": "falco/alerts"}));
    assert_eq!(
        out.deliver(&[shadow_read("Error")]).await,
        Delivery::Delivered
    );
    broker.kill();
    match out.deliver(&[shadow_read("Error")]).await {
        Delivery::Retry(f) => assert!(f.reason.starts_with("connection failed"), "{}", f.reason),
        other => panic!("{other:?}"),
    }
    broker.restart();
    let (_sub, mut rx) = subscribe(broker.port, "falco/#").await;
    let again = shadow_read("Error");
    assert_eq!(
        out.deliver(std::slice::from_ref(&again)).await,
        Delivery::Delivered
    );
    let got = receive(&mut rx, 1).await;
    assert_eq!(got[0].1["uuid"], again.id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_5_judges_each_alert_by_its_pubacks_reason_code() {
    let broker = Mosquitto::start();
    let (_sub, mut rx) = subscribe(broker.port, "falco/#").await;
    let out = output(
        json!({"url": broker.url(), "topic": "falco/{k8s.ns.name}/{priority}", "version": 5}),
    );
    let in_namespace = |ns: &str| {
        let mut a = shadow_read("Error").alert().clone();
        a.output_fields.insert("k8s.ns.name".into(), json!(ns));
        a.uuid = Some(peregrine_engine::AlertId::generate());
        Envelope::new(a)
    };
    let allowed = in_namespace("prod");
    let batch = vec![
        allowed.clone(),
        in_namespace("forbidden"),
        in_namespace("prod"),
    ];
    match out.deliver(&batch).await {
        Delivery::Partial(items) => {
            assert_eq!(items[0], ItemResult::Delivered);
            assert_eq!(items[2], ItemResult::Delivered);
            match &items[1] {
                ItemResult::Permanent(f) => {
                    assert_eq!(f.code, Some("not_authorized"), "{f}")
                }
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }
    let got = receive(&mut rx, 2).await;
    assert!(
        got.iter().all(|(topic, _)| topic == "falco/prod/Error"),
        "{got:?}"
    );
    assert_eq!(
        out.deliver(std::slice::from_ref(&allowed)).await,
        Delivery::Delivered,
        "the session goes on"
    );
}

#[test]
fn keys_are_checked_and_credentials_never_printed() {
    let s = checked::<MqttSettings>(
        json!({"url": "mqtt://user:s3cret@broker.example", "topic": "falco/{hostname}"}),
    )
    .unwrap();
    assert_eq!(
        s.describe(),
        "MQTT mqtt://broker.example:1883 topic falco/{hostname}"
    );
    assert!(!format!("{s:?}").contains("s3cret"));
    let e = |keys| checked::<MqttSettings>(keys).unwrap_err().path;
    assert_eq!(e(json!({"url": "http://x", "topic": "t"})), "url");
    assert_eq!(e(json!({"url": "mqtt://x", "topic": "falco/+/x"})), "topic");
    assert_eq!(e(json!({"url": "mqtt://x", "topic": "t", "qos": 2})), "qos");
    assert_eq!(
        e(json!({"url": "mqtt://x", "topic": "t", "version": 4.5})),
        "version"
    );
    let v5 =
        checked::<MqttSettings>(json!({"url": "mqtt://x", "topic": "t", "version": "5"})).unwrap();
    assert_eq!(v5.describe(), "MQTT mqtt://x:1883 (MQTT 5) topic t");
    assert_eq!(
        e(json!({"url": "mqtt://x", "topic": "t", "tls": {"ca_file": "/x"}})),
        "tls"
    );
}
