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

/// The four AWS outputs of issue 17 in one gateway against one moto: every alert once in each,
/// in the shape each service stores.
fn aws_config(moto: &Moto, queue_url: &str) -> String {
    let retry = "    retry: { max_attempts: 3, initial_backoff: 20ms, max_backoff: 100ms }\n";
    let at = format!(
        "    region: us-east-1\n    endpoint_url: \"{}\"\n{retry}",
        moto.url
    );
    format!(
        "max_body_bytes: 4MiB\noutputs:\n\
         \x20 - name: queue\n    type: sqs\n    queue_url: \"{queue_url}\"\n{at}\
         \x20 - name: stream\n    type: kinesis\n    stream_name: falco\n    partition_key: \"{{rule}}\"\n{at}\
         \x20 - name: logs\n    type: cloudwatch_logs\n    log_group: /falco/alerts\n    log_stream: node-1\n{at}\
         \x20 - name: archive\n    type: s3\n    bucket: falco-archive\n    prefix: alerts/prod\n    batch: {{ max_wait: 200ms }}\n{at}"
    )
}

/// Now, as Falco writes an alert's time: CloudWatch Logs refuses events older than 14 days.
fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_kinesis_cloudwatch_logs_and_s3_each_store_every_alert_once() {
    let tmp = tempfile::tempdir().unwrap();
    let moto = Moto::start().await;
    let queue = moto.create_queue("falco").await;
    moto.create_stream("falco").await;
    moto.create_bucket("falco-archive").await;
    let gw = GatewayProcess::start_with_env(tmp.path(), &aws_config(&moto, &queue), &AWS_ENV).await;
    let now = now_rfc3339();
    let mut sent = BTreeSet::new();
    for chunk in 0..3 {
        let alerts: Vec<Value> = (0..100)
            .map(|i| {
                let n: usize = chunk * 100 + i;
                let mut a = falco_alert(&format!("Rule {}", n % 3), "Warning", &[]);
                a["uuid"] = format!("aws-{n:04}").into();
                a["time"] = now.clone().into();
                sent.insert(format!("aws-{n:04}"));
                a
            })
            .collect();
        assert_eq!(gw.post(&Value::Array(alerts)).await.status(), 200);
    }
    for (output, kind) in [
        ("queue", "sqs"),
        ("stream", "kinesis"),
        ("logs", "cloudwatch_logs"),
        ("archive", "s3"),
    ] {
        gw.wait_metric(
            &series("peregrine_output_sent_total", output, kind),
            300.0,
            Duration::from_secs(120),
        )
        .await;
    }
    let uuids = |bodies: Vec<String>| -> BTreeSet<String> {
        let uuids: Vec<String> = bodies
            .iter()
            .map(|b| {
                serde_json::from_str::<Value>(b).unwrap()["uuid"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(uuids.len(), 300, "no alert twice");
        uuids.into_iter().collect()
    };

    assert_eq!(uuids(moto.drain_queue(&queue).await), sent, "SQS");

    let records = moto.stream_records("falco").await;
    for (key, data) in &records {
        let a: Value = serde_json::from_slice(data).unwrap();
        assert_eq!(&a["rule"], key, "the partition key is the template's");
    }
    let bodies = records
        .into_iter()
        .map(|(_, d)| String::from_utf8(d).unwrap())
        .collect();
    assert_eq!(uuids(bodies), sent, "Kinesis");

    let events = moto.log_events("/falco/alerts", "node-1").await;
    let stamp = events[0].0;
    assert!(
        events.iter().all(|(t, _)| *t == stamp),
        "the alert's time is the event's"
    );
    assert_eq!(
        uuids(events.into_iter().map(|(_, m)| m).collect()),
        sent,
        "CloudWatch Logs"
    );

    let objects = moto.objects("falco-archive").await;
    let mut lines = Vec::new();
    for (key, content_type, encoding, body) in &objects {
        let hour = &now[..13].replace(['-', 'T'], "/");
        assert!(key.starts_with(&format!("alerts/prod/{hour}/")), "{key}");
        assert!(key.ends_with(".json.gz"), "{key}");
        assert_eq!(
            (content_type.as_str(), encoding.as_str()),
            ("application/x-ndjson", "gzip")
        );
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
            .unwrap();
        lines.extend(text.lines().map(str::to_string));
    }
    assert!(
        objects.len() < 300,
        "one object per batch, not per alert: {}",
        objects.len()
    );
    assert_eq!(uuids(lines), sent, "S3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_dead_letter_with_the_services_words_and_fifo_retries_store_once() {
    let tmp = tempfile::tempdir().unwrap();
    let moto = Moto::start().await;
    let queue = moto.create_queue("responders.fifo").await;
    let retry = "    retry: { max_attempts: 3, initial_backoff: 20ms, max_backoff: 100ms }\n";
    let at = format!(
        "    region: us-east-1\n    endpoint_url: \"{}\"\n{retry}",
        moto.url
    );
    let fifo = format!(
        "\x20 - name: fifo\n    type: sqs\n    queue_url: \"{queue}\"\n    message_group_id: \"{{hostname}}\"\n{at}"
    );
    let config = format!(
        "outputs:\n{fifo}\
         \x20 - name: nobucket\n    type: s3\n    bucket: no-such-bucket\n    batch: {{ max_wait: 100ms }}\n{at}\
         \x20 - name: logs\n    type: cloudwatch_logs\n    log_group: /falco/old\n{at}"
    );
    let gw = GatewayProcess::start_with_env(tmp.path(), &config, &AWS_ENV).await;
    // Falco's sample alert is from June: older than CloudWatch's 14 days.
    let mut old = falco_alert("Old", "Error", &[]);
    old["uuid"] = "old-1".into();
    let mut fresh = falco_alert("Fresh", "Error", &[]);
    fresh["uuid"] = "fresh-1".into();
    fresh["time"] = now_rfc3339().into();
    assert_eq!(
        gw.post(&Value::Array(vec![old, fresh.clone()]))
            .await
            .status(),
        200
    );
    // The same alert to a second gateway (a sensor with two --gateway URLs): both send it with
    // the same deduplication id, and the FIFO queue keeps one.
    let second = GatewayProcess::start_with_env(
        &tmp.path().join("b"),
        &format!("outputs:\n{fifo}"),
        &AWS_ENV,
    )
    .await;
    assert_eq!(second.post(&fresh).await.status(), 200);
    let sent = series("peregrine_output_sent_total", "fifo", "sqs");
    gw.wait_metric(&sent, 2.0, Duration::from_secs(30)).await;
    second
        .wait_metric(&sent, 1.0, Duration::from_secs(30))
        .await;
    let bodies = moto.drain_queue(&queue).await;
    let ids: Vec<String> = bodies
        .iter()
        .map(|b| {
            serde_json::from_str::<Value>(b).unwrap()["uuid"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        ids,
        ["old-1", "fresh-1"],
        "the deduplication id is the uuid"
    );

    let dead = |name: &str| -> Vec<Value> {
        std::fs::read_to_string(tmp.path().join(format!("spool/dead-letter/{name}.jsonl")))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    gw.wait_metric(
        &series("peregrine_output_dead_lettered_total", "nobucket", "s3"),
        2.0,
        Duration::from_secs(30),
    )
    .await;
    for entry in dead("nobucket") {
        assert!(
            entry["reason"]
                .as_str()
                .unwrap()
                .starts_with("NoSuchBucket"),
            "{entry}"
        );
        assert_eq!(entry["attempts"], 1, "a missing bucket is not retried");
    }

    gw.wait_metric(
        &series(
            "peregrine_output_dead_lettered_total",
            "logs",
            "cloudwatch_logs",
        ),
        1.0,
        Duration::from_secs(30),
    )
    .await;
    gw.wait_metric(
        &series("peregrine_output_sent_total", "logs", "cloudwatch_logs"),
        1.0,
        Duration::from_secs(30),
    )
    .await;
    let refused = dead("logs");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["alert"]["uuid"], "old-1", "{}", refused[0]);
    assert!(
        refused[0]["reason"].as_str().unwrap().contains("too_old"),
        "{}",
        refused[0]
    );
    let stored = moto.log_events("/falco/old", "falco").await;
    assert_eq!(stored.len(), 1, "the fresh alert and not the old one");
}
