//! Kafka as the way to outgrow one machine: sensors produce to a topic, gateway replicas
//! consume it as one consumer group. The broker is librdkafka's mock cluster, a real Kafka
//! protocol peer on 127.0.0.1 in this process; the gateways are the real binary.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use peregrine_e2e::falco_alert;
use peregrine_e2e::gateway::GatewayProcess;
use peregrine_e2e::receiver::{Receiver, Reply};
use peregrine_e2e::wait_until;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// A gateway consuming `falco` in group `replicas`, tagging what it stores with its name and
/// delivering to `hook`. A short session timeout lets the test see a dead replica's
/// partitions move within seconds (Kafka's default is 45 s).
fn config(brokers: &str, name: &str, hook: &str) -> String {
    format!(
        r#"custom_fields: {{ gateway: {name} }}
inputs:
  - type: kafka
    brokers: "{brokers}"
    topic: falco
    group_id: replicas
    librdkafka: {{ session.timeout.ms: "6000", heartbeat.interval.ms: "500" }}
outputs:
  - name: hook
    type: webhook
    url: "{hook}"
    retry: {{ max_attempts: 1000, initial_backoff: 20ms, max_backoff: 200ms }}
"#
    )
}

fn producer(brokers: &str) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap()
}

/// Produces alerts `tag-from..tag-to` with their uuid set (as the sensor does), keyed by
/// rule and host so they spread over the partitions.
fn produce(p: &ThreadedProducer<DefaultProducerContext>, tag: &str, range: std::ops::Range<usize>) {
    for i in range {
        let mut a = falco_alert(&format!("Rule {}", i % 7), "Warning", &[]);
        a["hostname"] = format!("node-{}", i % 11).into();
        a["uuid"] = format!("{tag}-{i}").into();
        let key = format!("Rule {}|node-{}", i % 7, i % 11);
        let payload = serde_json::to_vec(&a).unwrap();
        p.send(BaseRecord::to("falco").key(&key).payload(&payload))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    p.flush(Duration::from_secs(10)).unwrap();
}

/// uuid → the gateways that delivered it, one entry per delivery.
fn deliveries(hook: &Receiver) -> BTreeMap<String, Vec<String>> {
    let mut by_id: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in hook.requests() {
        let v = r.json();
        by_id
            .entry(v["uuid"].as_str().unwrap().to_string())
            .or_default()
            .push(v["output_fields"]["gateway"].as_str().unwrap().to_string());
    }
    by_id
}

/// The offsets group `replicas` has committed on `falco`'s six partitions, by partition.
fn committed(brokers: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "replicas")
        .create()
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    for p in 0..6 {
        partitions.add_partition("falco", p);
    }
    let offsets = consumer
        .committed_offsets(partitions, Duration::from_secs(10))
        .unwrap();
    offsets
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// The partitions a gateway consumes now: those its lag gauge has a series for.
async fn assigned(gw: &GatewayProcess) -> BTreeSet<i32> {
    gw.metrics()
        .await
        .lines()
        .filter(|l| l.starts_with("peregrine_input_kafka_lag{"))
        .filter_map(|l| {
            l.split("partition=\"")
                .nth(1)?
                .split('"')
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

fn ids(tag: &str, range: std::ops::Range<usize>) -> BTreeSet<String> {
    range.map(|i| format!("{tag}-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_topic_and_a_killed_one_loses_nothing() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("falco", 6, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    // Replica a's webhook takes 20 ms per alert, so a has stored alerts it has not yet
    // delivered when it is killed.
    let hook = Receiver::scripted(|_, r| {
        if r.path == "/a" {
            std::thread::sleep(Duration::from_millis(20));
        }
        Reply::status(200)
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let a = GatewayProcess::start(&dir_a, &config(&brokers, "a", &hook.url("/a"))).await;
    let b = GatewayProcess::start(&dir_b, &config(&brokers, "b", &hook.url("/b"))).await;
    let p = producer(&brokers);

    // Both replicas take part: the partitions are split between them.
    produce(&p, "first", 0..2000);
    let first = ids("first", 0..2000);
    wait_until(
        "the first 2000 alerts arrive",
        Duration::from_secs(180),
        || {
            let by = deliveries(&hook);
            first.iter().all(|id| by.contains_key(id))
        },
    )
    .await;
    let by = deliveries(&hook);
    let handled = |g: &str| by.values().filter(|gs| gs.iter().any(|x| x == g)).count();
    assert!(
        handled("a") > 0 && handled("b") > 0,
        "a handled {}, b {}",
        handled("a"),
        handled("b")
    );

    // Mid-stream, replica a dies without a chance to commit or deliver.
    let committed_before = committed(&brokers);
    let producing = {
        let brokers = brokers.clone();
        std::thread::spawn(move || {
            let p = producer(&brokers);
            for chunk in 0..20 {
                produce(&p, "mid", chunk * 100..(chunk + 1) * 100);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    // Killed once it has stored some of them.
    let received = r#"peregrine_alerts_received_total{priority="Warning",source="syscall"}"#;
    let before = a.metric(received).await;
    a.wait_metric(received, before + 50.0, Duration::from_secs(30))
        .await;
    // And once a commit of its has landed: the offsets of what a stored are committed after
    // the fsync, asynchronously; killed before any commit lands, a leaves nothing that only its
    // spool holds (b reads it all again), and the restart below would prove nothing.
    let mine = assigned(&a).await;
    assert!(!mine.is_empty(), "a consumes no partition");
    wait_until(
        "a commits offsets of what it stored mid-stream",
        Duration::from_secs(30),
        || {
            let now = committed(&brokers);
            let before = |p: &i32| committed_before.get(p).copied().unwrap_or(-1);
            mine.iter()
                .any(|p| now.get(p).is_some_and(|&o| o > before(p)))
        },
    )
    .await;
    a.kill9();
    producing.join().unwrap();
    // Produced after the kill: only b can deliver these, from every partition.
    produce(&p, "after", 0..1000);
    let after = ids("after", 0..1000);
    wait_until(
        "b takes over a's partitions and delivers what came after the kill",
        Duration::from_secs(180),
        || {
            let by = deliveries(&hook);
            after.iter().all(|id| by.contains_key(id))
        },
    )
    .await;
    assert!(deliveries(&hook)
        .iter()
        .filter(|(id, _)| after.contains(*id))
        .all(|(_, gs)| gs.iter().all(|g| g == "b")));

    let mut everything = first.clone();
    everything.extend(ids("mid", 0..2000));
    everything.extend(after.clone());
    let before_restart = deliveries(&hook);
    let waiting_in_a = everything
        .iter()
        .filter(|id| !before_restart.contains_key(*id))
        .count();
    assert!(waiting_in_a > 0, "a was killed with a backlog in its spool");
    // What a stored but had not delivered is in its spool: a restart delivers it.
    let a = GatewayProcess::start(&dir_a, &config(&brokers, "a", &hook.url("/a"))).await;
    wait_until("every alert arrives", Duration::from_secs(180), || {
        let by = deliveries(&hook);
        everything.iter().all(|id| by.contains_key(id))
    })
    .await;
    let by = deliveries(&hook);
    let unknown: Vec<_> = by.keys().filter(|id| !everything.contains(*id)).collect();
    assert!(unknown.is_empty(), "{unknown:?}");
    // At least once: a batch a stored but had not committed is read again by b, and a
    // delivery in flight at the kill is made again after the restart. That is at most what a
    // consumed in its last moments, never a second copy of everything.
    let duplicates: usize = by.values().map(|gs| gs.len() - 1).sum();
    assert!(duplicates <= 1000, "{duplicates} duplicates");
    eprintln!(
        "delivered {} alerts, {duplicates} twice; {waiting_in_a} waited in a's spool for its restart",
        by.len()
    );
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_restart_duplicates_nothing_and_bad_messages_are_skipped() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("falco", 3, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let hook = Receiver::ok().await;
    let tmp = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(tmp.path(), &config(&brokers, "a", &hook.url("/a"))).await;
    let p = producer(&brokers);
    produce(&p, "one", 0..500);
    // Not alerts: they are counted, logged and skipped; their partitions go on.
    for (i, bad) in [
        &b"not json"[..],
        br#"{"rule":"r","priority":"Loud","time":"2026-06-12T09:23:10Z"}"#,
    ]
    .into_iter()
    .enumerate()
    {
        p.send(
            BaseRecord::to("falco")
                .key(&format!("bad-{i}"))
                .payload(bad),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    }
    // Read again (as after a failed commit) or sent again: stored once. ("two" follows in
    // every partition, so once all of "two" has arrived these have been consumed.)
    produce(&p, "one", 0..10);
    produce(&p, "two", 0..500);
    hook.wait_for(1000, Duration::from_secs(180)).await;
    assert_eq!(
        gw.metric(r#"peregrine_alerts_rejected_total{reason="malformed_json"}"#)
            .await,
        1.0
    );
    assert_eq!(
        gw.metric(r#"peregrine_alerts_rejected_total{reason="unknown_priority"}"#)
            .await,
        1.0
    );
    assert!(gw
        .logs()
        .contains("skipped a Kafka message that is not a Falco alert"));

    // SIGTERM commits the offsets, so a restart reads only what is new.
    assert!(gw.terminate(Duration::from_secs(20)).await.success());
    let gw = GatewayProcess::start(tmp.path(), &config(&brokers, "a", &hook.url("/a"))).await;
    produce(&p, "three", 0..500);
    // "three" is the last of every partition: once all of it is delivered and the gateway has
    // nothing left to deliver, anything it read again would have been delivered too.
    let three = ids("three", 0..500);
    wait_until("all of three arrives", Duration::from_secs(180), || {
        let by = deliveries(&hook);
        three.iter().all(|id| by.contains_key(id))
    })
    .await;
    let depth = r#"peregrine_output_queue_depth{output="hook",type="webhook"}"#;
    gw.wait_metric_at_most(depth, 0.0, Duration::from_secs(30))
        .await;
    let by = deliveries(&hook);
    let mut expected = ids("one", 0..500);
    expected.extend(ids("two", 0..500));
    expected.extend(ids("three", 0..500));
    assert_eq!(by.keys().cloned().collect::<BTreeSet<_>>(), expected);
    assert!(
        by.values().all(|gs| gs.len() == 1),
        "exactly once across a graceful restart: {:?}",
        by.iter()
            .filter(|(_, gs)| gs.len() > 1)
            .map(|(id, _)| id)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        gw.metric(r#"peregrine_alerts_received_total{priority="Warning",source="syscall"}"#)
            .await,
        500.0
    );
    drop(gw);
}

/// This replica's lag on `falco`'s partition 0, or `None` while the gauge is absent.
async fn lag(gw: &GatewayProcess) -> Option<f64> {
    let text = gw.metrics().await;
    text.lines()
        .filter(|l| l.starts_with("peregrine_input_kafka_lag{"))
        .find(|l| l.contains(r#"partition="0""#) && l.contains(r#"topic="falco""#))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_spool_holds_consumption_back_and_the_lag_gauge_shows_it() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("falco", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    // The webhook is down until `up`: the small spool fills, and consumption waits for room.
    let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hook = Receiver::scripted({
        let up = up.clone();
        move |_, _| {
            if up.load(std::sync::atomic::Ordering::SeqCst) {
                Reply::status(200)
            } else {
                Reply::status(503)
            }
        }
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        r#"max_body_bytes: 65536
spool: {{ dir: "{}", max_bytes: 131072, segment_bytes: 16384 }}
inputs:
  - type: kafka
    brokers: "{brokers}"
    topic: falco
outputs:
  - name: hook
    type: webhook
    url: "{}"
    retry: {{ max_attempts: 100000, initial_backoff: 20ms, max_backoff: 100ms }}
"#,
        tmp.path().join("spool").display(),
        hook.url("/hook")
    );
    let gw = GatewayProcess::start(tmp.path(), &config).await;
    let p = producer(&brokers);
    // Larger than max_body_bytes, as `POST /` would refuse it: counted and skipped.
    let mut huge = falco_alert("Huge", "Warning", &[]);
    huge["output"] = "x".repeat(70_000).into();
    p.send(
        BaseRecord::to("falco")
            .key("huge")
            .payload(&serde_json::to_vec(&huge).unwrap()),
    )
    .map_err(|(e, _)| e)
    .unwrap();
    // Batches are held to max_body_bytes too, so each fits the 128 KiB spool once there is
    // room; 1000 of these alerts in one batch would not.
    const N: usize = 1000;
    produce(&p, "lag", 0..N);

    // Stalled (the webhook answers 503 and the spool holds 128 KiB): what is not stored is
    // what the gauge shows. The gauge is refreshed every 5 s, so the sum is N once a refresh
    // has seen the stall.
    let received = r#"peregrine_alerts_received_total{priority="Warning",source="syscall"}"#;
    let start = Instant::now();
    let (stored, behind) = loop {
        // Absent until the first alert is stored.
        let stored = gw.metric_sample(received).await.unwrap_or(0.0);
        if let Some(behind) = lag(&gw).await {
            if behind > 0.0 && stored + behind == N as f64 {
                break (stored, behind);
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "lag {:?} and {stored} stored never added up to {N}",
            lag(&gw).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("stalled with {stored} stored and a lag of {behind}");
    assert!(stored > 0.0);

    // The webhook is back: the spool drains, consumption resumes, and the lag reaches 0.
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    // (The receiver also counts the 503s: the gateway's count of deliveries says when all are in.)
    let sent = r#"peregrine_output_sent_total{output="hook",type="webhook"}"#;
    gw.wait_metric(sent, N as f64, Duration::from_secs(120))
        .await;
    let start = Instant::now();
    while lag(&gw).await != Some(0.0) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "every alert delivered, yet the lag gauge reads {:?}",
            lag(&gw).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(gw.metric(received).await, N as f64);

    // Without custom fields alerts are stored as sent (as `POST /` stores them); ids read again
    // are still stored once. The marker comes after the repeats in the one partition.
    produce(&p, "lag", 0..10);
    produce(&p, "marker", 0..1);
    gw.wait_metric(sent, (N + 1) as f64, Duration::from_secs(60))
        .await;
    // One partition, read in order: the repeats were handled before the marker was stored.
    assert_eq!(gw.metric(received).await, (N + 1) as f64);
    assert_eq!(gw.metric(sent).await, (N + 1) as f64);
    let marker = hook
        .requests()
        .into_iter()
        .map(|r| r.json())
        .find(|a| a["uuid"] == "marker-0")
        .expect("the marker was delivered");
    assert_eq!(marker["rule"], "Rule 0");
    assert_eq!(
        gw.metric(r#"peregrine_alerts_rejected_total{reason="body_too_large"}"#)
            .await,
        1.0
    );
    assert!(gw
        .logs()
        .contains("skipped a Kafka message larger than max_body_bytes"));
}
