//! RabbitMQ against Debian's `rabbitmq-server`, started by the tests on 127.0.0.1.

use std::collections::HashSet;

use peregrine_fakes::rabbitmq::RabbitMq;
use serde_json::{json, Value};

use super::*;
use crate::settings::checked;
use crate::testing::{build_context, shadow_read};

fn output(keys: Value) -> Arc<dyn Output> {
    checked::<RabbitMqSettings>(keys)
        .unwrap()
        .build(build_context())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_confirmed_routed_by_template_and_unroutable_ones_come_back() {
    let broker = RabbitMq::start();
    broker.declare_queue("falco", "", "").await;
    let out = output(json!({"url": broker.url()}));
    let batch: Vec<Envelope> = (0..20).map(|_| shadow_read("Error")).collect();
    assert_eq!(out.deliver(&batch).await, Delivery::Delivered);
    let got = broker.messages("falco").await;
    assert_eq!(got.len(), 20);
    for (m, e) in got.iter().zip(&batch) {
        let body: Value = serde_json::from_slice(&m.body).unwrap();
        assert_eq!(body["uuid"], e.id(), "in order");
        assert_eq!(m.message_id.as_deref(), Some(e.id()));
        assert_eq!(m.delivery_mode, Some(2), "persistent");
        assert!(m.headers.contains(&("priority".into(), "Error".into())));
    }

    broker
        .declare_queue("critical", "falco", "falco.Critical")
        .await;
    let routed = output(
        json!({"url": broker.url(), "exchange": "falco", "routing_key": "falco.{priority}"}),
    );
    let mixed = vec![shadow_read("Critical"), shadow_read("Warning")];
    match routed.deliver(&mixed).await {
        Delivery::Partial(items) => {
            assert_eq!(items[0], ItemResult::Delivered);
            match &items[1] {
                ItemResult::Retry(f) => {
                    assert_eq!(f.code, Some("no_route"));
                    assert!(
                        f.reason
                            .contains("312 NO_ROUTE (routing key 'falco.Warning')"),
                        "{f}"
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }
    let critical = broker.messages("critical").await;
    assert_eq!(critical.len(), 1);
    assert_eq!(critical[0].routing_key, "falco.Critical");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_broker_loses_nothing_it_confirmed_and_delivery_resumes() {
    let mut broker = RabbitMq::start();
    broker.declare_queue("falco", "", "").await;
    let out = output(json!({"url": broker.url()}));
    let mut confirmed = Vec::new();
    for round in 0..6 {
        if round == 3 {
            broker.kill();
            assert!(
                matches!(
                    out.deliver(&[shadow_read("Error")]).await,
                    Delivery::Retry(_)
                ),
                "a dead broker is a retry"
            );
            broker.restart();
        }
        let batch: Vec<Envelope> = (0..50).map(|_| shadow_read("Error")).collect();
        let answer = deliver_as_the_gateway_retries(&*out, &batch).await;
        assert_eq!(answer, Delivery::Delivered, "round {round}");
        confirmed.extend(batch.iter().map(|e| e.id().to_string()));
    }
    let stored: HashSet<String> = broker
        .messages("falco")
        .await
        .iter()
        .map(|m| m.message_id.clone().unwrap())
        .collect();
    let lost = confirmed.iter().filter(|id| !stored.contains(*id)).count();
    assert_eq!(
        lost,
        0,
        "{lost} of {} confirmed alerts lost",
        confirmed.len()
    );
}

/// Delivers `batch` again while the broker answers "retry", as the gateway's retry core does, for
/// at most a minute. After a restart the first attempt may meet the dead connection.
async fn deliver_as_the_gateway_retries(out: &dyn Output, batch: &[Envelope]) -> Delivery {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let answer = out.deliver(batch).await;
        let retry = match &answer {
            Delivery::Retry(_) => true,
            Delivery::Partial(items) => items
                .iter()
                .all(|i| matches!(i, ItemResult::Delivered | ItemResult::Retry(_))),
            _ => false,
        };
        if !retry || std::time::Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[test]
fn keys_are_checked_and_the_password_never_printed() {
    let s = checked::<RabbitMqSettings>(
        json!({"url": "amqps://falco:PWSECRET@mq.example.com/prod", "exchange": "alerts", "routing_key": "falco.{priority}.{rule}"}),
    )
    .unwrap();
    let printed = OutputSettings::describe(&s);
    assert_eq!(
        printed,
        "RabbitMQ amqps://mq.example.com:5671 vhost prod exchange alerts routing key falco.{priority}.{rule}"
    );
    assert!(!format!("{s:?}{printed}").contains("PWSECRET"));
    let e = checked::<RabbitMqSettings>(json!({"url": "http://mq:5672"})).unwrap_err();
    assert_eq!(e.path, "url");
    assert!(!e.to_string().contains("mq:5672"));
    let e = checked::<RabbitMqSettings>(json!({"url": "amqp://mq", "routing_key": "falco.{"}))
        .unwrap_err();
    assert_eq!(e.path, "routing_key");
}
