//! The outputs that feed automation — SNS and Kafka — through the real gateway binary, against
//! real protocol peers on 127.0.0.1: moto's SNS/SQS server and librdkafka's mock cluster.

use std::collections::BTreeSet;
use std::time::Duration;

use peregrine_e2e::falco_alert;
use peregrine_e2e::gateway::GatewayProcess;
use peregrine_fakes::moto::Moto;
use serde_json::Value;

/// Dummy credentials for the standard AWS chain: moto checks none.
const AWS_ENV: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

fn series(metric: &str, output: &str, kind: &str) -> String {
    format!("{metric}{{output=\"{output}\",type=\"{kind}\"}}")
}

fn sns_config(moto: &Moto, arn: &str, extra: &str) -> String {
    format!(
        "max_body_bytes: 4MiB\noutputs:\n  - name: aws\n    type: sns\n    topic_arn: \"{arn}\"\n    region: us-east-1\n    endpoint_url: \"{}\"\n    retry: {{ max_attempts: 3, initial_backoff: 20ms, max_backoff: 100ms }}\n{extra}",
        moto.url
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_alerts_are_published_with_their_attributes() {
    let tmp = tempfile::tempdir().unwrap();
    let moto = Moto::start().await;
    let arn = moto.create_topic("falco").await;
    let gw =
        GatewayProcess::start_with_env(tmp.path(), &sns_config(&moto, &arn, ""), &AWS_ENV).await;
    let mut sent = BTreeSet::new();
    for chunk in 0..10 {
        let alerts: Vec<Value> = (0..100)
            .map(|i| {
                let n: usize = chunk * 100 + i;
                let mut a = falco_alert(
                    &format!("Rule {}", n % 7),
                    if n.is_multiple_of(2) {
                        "Critical"
                    } else {
                        "Notice"
                    },
                    &["t"],
                );
                a["uuid"] = format!("sns-{n:04}").into();
                sent.insert(format!("sns-{n:04}"));
                a
            })
            .collect();
        assert_eq!(gw.post(&Value::Array(alerts)).await.status(), 200);
    }
    gw.wait_metric(
        &series("peregrine_output_sent_total", "aws", "sns"),
        1000.0,
        Duration::from_secs(120),
    )
    .await;
    let published = moto.notifications(&arn).await;
    assert_eq!(published.len(), 1000);
    let mut got = BTreeSet::new();
    for (message, subject, attributes) in &published {
        let alert: Value = serde_json::from_str(message).unwrap();
        let uuid = alert["uuid"].as_str().unwrap().to_string();
        let n: usize = uuid[4..].parse().unwrap();
        assert_eq!(subject, &None);
        assert_eq!(attributes["rule"], format!("Rule {}", n % 7));
        assert_eq!(
            attributes["priority"],
            if n.is_multiple_of(2) {
                "Critical"
            } else {
                "Notice"
            }
        );
        assert_eq!(attributes["source"], "syscall");
        assert_eq!(attributes["hostname"], "node-1");
        got.insert(uuid);
    }
    assert_eq!(got, sent, "each alert once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_retry_of_the_same_alert_is_delivered_once() {
    let tmp = tempfile::tempdir().unwrap();
    let moto = Moto::start().await;
    let arn = moto.create_topic("falco.fifo").await;
    let queue = moto.subscribe_queue(&arn, "responders.fifo").await;
    // Two gateways given the same alert (a sensor with two --gateway URLs): each publishes it
    // with the same uuid, and the FIFO topic keeps one. (One gateway stores a uuid only once,
    // so a sender's retry to the same gateway never reaches SNS twice.)
    let config = sns_config(&moto, &arn, "    message_group_id: \"{hostname}\"\n");
    let first = GatewayProcess::start_with_env(&tmp.path().join("a"), &config, &AWS_ENV).await;
    let second = GatewayProcess::start_with_env(&tmp.path().join("b"), &config, &AWS_ENV).await;
    let mut a = falco_alert("Terminal shell in container", "Notice", &[]);
    a["uuid"] = "fifo-1".into();
    let mut b = falco_alert("Terminal shell in container", "Notice", &[]);
    b["uuid"] = "fifo-2".into();
    let sent = series("peregrine_output_sent_total", "aws", "sns");
    for (gw, body, published) in [
        (&first, &a, 1.0),
        (&first, &a, 1.0),
        (&second, &a, 1.0),
        (&first, &b, 2.0),
    ] {
        assert_eq!(gw.post(body).await.status(), 200);
        gw.wait_metric(&sent, published, Duration::from_secs(30))
            .await;
    }
    assert_eq!(
        first.metric(&sent).await,
        2.0,
        "the retry to one gateway was stored once"
    );
    assert_eq!(moto.notifications(&arn).await.len(), 3, "three publishes");
    let bodies = moto.drain_queue(&queue).await;
    let uuids: Vec<String> = bodies
        .iter()
        .map(|b| {
            serde_json::from_str::<Value>(b).unwrap()["uuid"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        uuids,
        ["fifo-1", "fifo-2"],
        "the retry was deduplicated by its uuid"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_over_256_kib_is_cut_and_a_missing_topic_dead_letters() {
    let tmp = tempfile::tempdir().unwrap();
    let moto = Moto::start().await;
    let arn = moto.create_topic("falco").await;
    let missing = format!(
        "arn:aws:sns:us-east-1:{}:no-such-topic",
        peregrine_fakes::moto::ACCOUNT
    );
    let config = format!(
        "{}  - name: lost\n    type: sns\n    topic_arn: \"{missing}\"\n    endpoint_url: \"{}\"\n    retry: {{ max_attempts: 3, initial_backoff: 20ms, max_backoff: 100ms }}\n",
        sns_config(&moto, &arn, ""),
        moto.url
    );
    let gw = GatewayProcess::start_with_env(tmp.path(), &config, &AWS_ENV).await;
    let mut huge = falco_alert("Huge", "Error", &[]);
    huge["uuid"] = "huge-1".into();
    for i in 0..80 {
        huge["output_fields"][format!("big.f{i}")] = "v".repeat(5000).into();
    }
    assert_eq!(gw.post(&huge).await.status(), 200);
    gw.wait_metric(
        &series("peregrine_output_sent_total", "aws", "sns"),
        1.0,
        Duration::from_secs(30),
    )
    .await;
    let published = moto.notifications(&arn).await;
    let (message, _, _) = &published[0];
    assert!(message.len() <= 256 * 1024);
    let alert: Value = serde_json::from_str(message).unwrap();
    assert_eq!(alert["uuid"], "huge-1");
    assert!(alert["output_fields"]["big.f0"]
        .as_str()
        .unwrap()
        .ends_with("… [truncated]"));

    gw.wait_metric(
        &series("peregrine_output_dead_lettered_total", "lost", "sns"),
        1.0,
        Duration::from_secs(30),
    )
    .await;
    let dead = std::fs::read_to_string(tmp.path().join("spool/dead-letter/lost.jsonl")).unwrap();
    let entry: Value = serde_json::from_str(dead.lines().next().unwrap()).unwrap();
    assert!(
        entry["reason"].as_str().unwrap().starts_with("NotFound"),
        "{entry}"
    );
    assert_eq!(entry["attempts"], 1, "a missing topic is not retried");
    assert_eq!(
        gw.metric("peregrine_output_dead_lettered_by_reason_total{output=\"lost\",reason=\"NotFound\",type=\"sns\"}").await,
        1.0
    );
}
