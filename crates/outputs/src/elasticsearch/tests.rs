//! Elasticsearch against osmem-server (a real `_bulk`/`_search` implementation) and against a
//! local bulk endpoint that injects per-item failures.

use std::time::Duration;

use peregrine_fakes::osmem::Osmem;
use peregrine_fakes::{elasticsearch as fake_es, Reply};
use serde_json::{json, Value};

use super::*;
use crate::delivery::Delivery;
use crate::output::Output;
use crate::retry::{deliver_with_retries, AttemptObserver, Outcome, PauseGate, RetryPolicy};
use crate::settings::{checked, BuildContext};
use crate::testing::{envelope, shadow_read};

fn settings(keys: Value) -> ElasticsearchSettings {
    checked(keys).unwrap()
}

fn output(keys: Value) -> ElasticsearchOutput {
    build(
        &settings(keys),
        BuildContext {
            name: "test".into(),
            max_in_flight: 2,
            timeout: std::time::Duration::from_secs(5),
        },
    )
}

struct Quiet;
impl AttemptObserver for Quiet {
    fn retrying(&self, _: &crate::Failure, _: usize) {}
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        ..RetryPolicy::default()
    }
}

fn at(time: &str, rule: &str) -> crate::Envelope {
    envelope(
        json!({"rule": rule, "priority": "Warning", "time": time, "hostname": "node-1", "output": "o",
        "output_fields": {"proc.name": "cat", "proc.aname[2]": "bash", "container.image": "nginx", "container.image.repository": "nginx", "user.uid": 0}}),
    )
}

#[test]
fn the_bulk_body_is_create_with_the_uuid_and_a_flat_document() {
    let e = shadow_read("Critical");
    let body = bulk_body(
        &Target::Index {
            name: "falco".into(),
            suffix: IndexSuffix::Daily,
        },
        true,
        std::slice::from_ref(&e),
    );
    let text = String::from_utf8(body).unwrap();
    assert!(text.ends_with('\n'));
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[0],
        json!({"create": {"_index": "falco-2026.06.12", "_id": e.id()}})
    );
    let doc = &lines[1];
    assert_eq!(doc["@timestamp"], "2026-06-12T09:23:10.123456789Z");
    assert_eq!(doc["time"], "2026-06-12T09:23:10.123456789Z");
    assert_eq!(doc["uuid"], e.id());
    assert_eq!(doc["rule"], "Read sensitive file untrusted");
    assert_eq!(doc["priority"], "Critical");
    assert_eq!(doc["source"], "syscall");
    assert_eq!(doc["hostname"], "node-1");
    assert_eq!(
        doc["tags"],
        json!(["filesystem", "mitre_credential_access", "T1555"])
    );
    assert!(doc["output"].as_str().unwrap().contains("file=/etc/shadow"));
    assert_eq!(doc["output_fields"]["fd_name"], "/etc/shadow");
    assert_eq!(doc["output_fields"]["user_uid"], 0);
    assert_eq!(doc["output_fields"]["container_privileged"], false);
    assert_eq!(doc["output_fields"]["k8s_ns_name"], Value::Null);
    assert_eq!(flat_key("proc.aname[2]"), "proc_aname_2");
}

#[test]
fn the_index_follows_the_alert_time_not_the_clock() {
    let daily = Target::Index {
        name: "falco".into(),
        suffix: IndexSuffix::Daily,
    };
    let before = at("2026-12-31T23:59:59.999999999Z", "r");
    let after = at("2027-01-01T00:00:00Z", "r");
    assert_eq!(index_name(&daily, before.alert()), "falco-2026.12.31");
    assert_eq!(index_name(&daily, after.alert()), "falco-2027.01.01");
    let monthly = Target::Index {
        name: "sec".into(),
        suffix: IndexSuffix::Monthly,
    };
    assert_eq!(index_name(&monthly, after.alert()), "sec-2027.01");
    let yearly = Target::Index {
        name: "sec".into(),
        suffix: IndexSuffix::Yearly,
    };
    assert_eq!(index_name(&yearly, before.alert()), "sec-2026");
    assert_eq!(
        index_name(
            &Target::Index {
                name: "sec".into(),
                suffix: IndexSuffix::None
            },
            before.alert()
        ),
        "sec"
    );
    assert_eq!(
        index_name(
            &Target::DataStream("logs-falco-default".into()),
            before.alert()
        ),
        "logs-falco-default"
    );
}

#[tokio::test]
async fn a_full_batch_round_trips_with_its_per_item_answer() {
    // 1 000 items: the bulk answer is read whole however long it is.
    let os = Osmem::start();
    let out = output(json!({"url": os.url}));
    let batch: Vec<_> = (0..1000)
        .map(|i| at("2026-06-12T10:00:00Z", &format!("R{i}")))
        .collect();
    assert_eq!(out.deliver(&batch).await, Delivery::Delivered);
    assert_eq!(os.count("falco-*").await, 1000);
    assert_eq!(
        out.deliver(&batch).await,
        Delivery::Delivered,
        "1 000 conflicts read as delivered"
    );
}

#[tokio::test]
async fn alerts_round_trip_through_a_real_bulk_api_and_a_replay_adds_nothing() {
    let os = Osmem::start();
    let out = output(
        json!({"url": os.url, "index": "falco", "gzip": true, "create_index_template": true}),
    );
    let batch: Vec<_> = (0..50)
        .map(|i| {
            at(
                if i % 2 == 0 {
                    "2026-06-12T23:59:59Z"
                } else {
                    "2026-06-13T00:00:01Z"
                },
                &format!("Rule {i}"),
            )
        })
        .collect();
    assert_eq!(out.deliver(&batch).await, Delivery::Delivered);
    assert_eq!(os.count("falco-2026.06.12").await, 25);
    assert_eq!(os.count("falco-2026.06.13").await, 25);

    let hit = os
        .get(&format!("/falco-*/_search?q=uuid:{}", batch[7].id()))
        .await;
    let doc = &hit["hits"]["hits"][0];
    assert_eq!(doc["_id"], batch[7].id());
    assert_eq!(doc["_source"]["rule"], "Rule 7");
    assert_eq!(doc["_source"]["output_fields"]["proc_aname_2"], "bash");
    assert_eq!(
        doc["_source"]["output_fields"]["container_image_repository"],
        "nginx"
    );
    let mapping = os.get("/falco-2026.06.12/_mapping").await;
    let props = &mapping["falco-2026.06.12"]["mappings"]["properties"];
    assert_eq!(
        props["rule"]["type"], "keyword",
        "the template's mappings apply: {mapping}"
    );
    assert_eq!(
        props["output_fields"]["properties"]["proc_name"]["type"],
        "keyword"
    );

    // A replay after a crash: every create answers 409, which is success, and nothing doubles.
    assert_eq!(out.deliver(&batch).await, Delivery::Delivered);
    assert_eq!(os.count("falco-*").await, 50);
}

#[tokio::test]
async fn only_failed_items_are_resent_and_400_items_are_permanent() {
    let (fake, state) = fake_es::start().await;
    let batch: Vec<_> = (0..6)
        .map(|i| at("2026-06-12T09:00:00Z", &format!("R{i}")))
        .collect();
    {
        let mut s = state.lock().unwrap();
        s.inject
            .insert(batch[1].id().to_string(), [429, 429].into());
        s.inject.insert(batch[3].id().to_string(), [400].into());
        s.inject.insert(batch[4].id().to_string(), [503].into());
    }
    let out = output(json!({"url": fake.url("")}));
    let got = deliver_with_retries(&out, &batch, &fast(), &PauseGate::default(), &Quiet).await;
    for (i, o) in got.iter().enumerate() {
        match i {
            3 => assert!(
                matches!(o, Outcome::DeadLetter { failure, attempts: 1 }
                if failure.code == Some("mapper_parsing_exception") && failure.status == Some(400)
                && failure.reason == format!("mapper_parsing_exception: injected 400 for [{}]", batch[3].id())),
                "{o:?}"
            ),
            _ => assert_eq!(*o, Outcome::Delivered, "item {i}"),
        }
    }
    let s = state.lock().unwrap();
    let sizes: Vec<usize> = s.requests.iter().map(|r| r.0).collect();
    assert_eq!(
        sizes,
        [6, 2, 1],
        "the second request resends items 1 and 4, the third item 1"
    );
    assert_eq!(s.documents.len(), 5);
}

#[tokio::test]
async fn whole_request_answers() {
    let (fake, _state) = fake_es::start().await;
    let out = output(json!({"url": fake.url("")}));
    let batch = [at("2026-06-12T09:00:00Z", "r")];
    fake.force(Reply::new(429, "").header("retry-after", "7"), 1);
    assert!(
        matches!(out.deliver(&batch).await, Delivery::RetryAfter(_, d) if d == Duration::from_secs(7))
    );
    fake.force(Reply::new(503, ""), 1);
    assert!(matches!(out.deliver(&batch).await, Delivery::Retry(_)));
    fake.force(Reply::new(401, json!({"error": {"type": "security_exception", "reason": "missing authentication credentials"}, "status": 401}).to_string()), 1);
    match out.deliver(&batch).await {
        Delivery::Permanent(f) => {
            assert_eq!(f.code, Some("unauthorized"));
            assert_eq!(
                f.reason,
                "security_exception: missing authentication credentials"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_413_splits_the_batch_until_it_fits() {
    let (fake, state) = fake_es::start().await;
    let batch: Vec<_> = (0..8)
        .map(|i| at("2026-06-12T09:00:00Z", &format!("R{i}")))
        .collect();
    let one = bulk_body(
        &Target::Index {
            name: "falco".into(),
            suffix: IndexSuffix::Daily,
        },
        true,
        &batch[..1],
    )
    .len();
    state.lock().unwrap().max_request_bytes = Some(one * 2 + 10);
    let out = output(json!({"url": fake.url("")}));
    assert_eq!(out.deliver(&batch).await, Delivery::Delivered);
    {
        let s = state.lock().unwrap();
        assert_eq!(s.documents.len(), 8);
        assert!(
            s.requests
                .iter()
                .all(|(n, bytes)| *n <= 2 && *bytes <= one * 2 + 10),
            "{:?}",
            s.requests
        );
    }
    state.lock().unwrap().max_request_bytes = Some(10);
    let big = [at("2026-06-12T09:00:00Z", "too big")];
    assert!(
        matches!(out.deliver(&big).await, Delivery::Permanent(f) if f.code == Some("too_large"))
    );
}

#[tokio::test]
async fn nodes_take_turns_with_an_api_key_into_a_data_stream() {
    let (a, a_state) = fake_es::start().await;
    let (b, b_state) = fake_es::start().await;
    let out = output(
        json!({"url": format!("{}, {}", a.url("/es"), b.url("/es")), "data_stream": "logs-falco-default",
        "api_key": "a2V5OnNlY3JldA==", "create_index_template": true}),
    );
    for i in 0..4 {
        assert_eq!(
            out.deliver(&[at("2026-06-12T09:00:00Z", &format!("R{i}"))])
                .await,
            Delivery::Delivered
        );
    }
    for fake in [&a, &b] {
        let bulk: Vec<_> = fake
            .messages()
            .into_iter()
            .filter(|m| m.path == "/es/_bulk")
            .collect();
        assert_eq!(bulk.len(), 2, "each node gets its turn");
        assert_eq!(bulk[0].headers["authorization"], "ApiKey a2V5OnNlY3JldA==");
    }
    let templates: Vec<_> = a_state
        .lock()
        .unwrap()
        .templates
        .keys()
        .chain(b_state.lock().unwrap().templates.keys())
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(
        templates,
        ["peregrine-logs-falco-default"],
        "installed once"
    );
    let t = a_state
        .lock()
        .unwrap()
        .templates
        .values()
        .chain(b_state.lock().unwrap().templates.values())
        .next()
        .cloned()
        .unwrap();
    assert_eq!(t["data_stream"], json!({}));
    assert_eq!(t["index_patterns"], json!(["logs-falco-default"]));
    let docs = a_state.lock().unwrap().documents.clone();
    assert!(docs
        .values()
        .all(|(index, doc)| index == "logs-falco-default" && doc["@timestamp"].is_string()));
    let bulk = a
        .messages()
        .into_iter()
        .find(|m| m.path == "/es/_bulk")
        .unwrap();
    assert!(
        bulk.headers.get("content-encoding").is_none(),
        "gzip is off by default"
    );
}

#[tokio::test]
async fn basic_auth_and_the_pipeline_parameter() {
    let (fake, _state) = fake_es::start().await;
    let out = output(
        json!({"url": fake.url(""), "username": "elastic", "password": "changeme", "pipeline": "falco-geoip"}),
    );
    assert_eq!(
        out.deliver(&[at("2026-06-12T09:00:00Z", "r")]).await,
        Delivery::Delivered
    );
    let m = &fake.messages()[0];
    assert_eq!(m.headers["authorization"], "Basic ZWxhc3RpYzpjaGFuZ2VtZQ==");
    assert_eq!(m.path, "/_bulk");
    assert_eq!(
        m.query.as_deref(),
        Some("filter_path=errors,items.*.status,items.*.error&pipeline=falco-geoip")
    );
    assert!(m.headers.get("content-encoding").is_none());
}

#[test]
fn keys_are_checked_and_secrets_never_print() {
    let err = |v: Value| checked::<ElasticsearchSettings>(v).unwrap_err().to_string();
    assert!(
        err(json!({"url": "http://127.0.0.1:9200", "index": "Falco"}))
            .starts_with("index: 'Falco' is not a valid index name")
    );
    assert!(
        err(json!({"url": "http://127.0.0.1:9200", "index": "f", "data_stream": "d"}))
            .starts_with("data_stream: give either")
    );
    assert!(
        err(json!({"url": "http://127.0.0.1:9200", "username": "u"}))
            .starts_with("password: is needed")
    );
    assert!(
        err(json!({"url": "http://127.0.0.1:9200", "batch": {"max_events": 0}}))
            .starts_with("batch.max_events")
    );
    assert!(err(
        json!({"url": "http://127.0.0.1:9200", "batch": {"max_bytes": "5MB", "max_wait": "2h"}})
    )
    .starts_with("batch.max_wait"));
    assert!(
        err(json!({"url": "http://127.0.0.1:9200", "ca_file": "/nonexistent/ca.pem"}))
            .starts_with("ca_file: cannot read /nonexistent/ca.pem")
    );
    assert!(
        err(json!({"url": "http://127.0.0.1:9200", "index_suffix": "hourly"}))
            .starts_with("index_suffix:")
    );
    assert!(err(json!({"url": []})).starts_with("url: needs at least one URL"));
    let bad_key = err(json!({"url": "http://127.0.0.1:9200", "api_key": "k3y-s3cret\r\nX: y"}));
    assert_eq!(
        bad_key,
        "api_key: must be printable (it is sent in the Authorization header)"
    );

    let c = settings(
        json!({"url": ["https://elastic:pw1@es-1.internal:9200/prefix", "https://es-2.internal:9200"], "username": "elastic", "password": "s3cr3t-pw", "batch": {"max_bytes": "2MiB"}}),
    );
    let checked = c.clone();
    assert_eq!(checked.limits.max_bytes, 2 << 20);
    assert_eq!(checked.limits.max_events, 1000);
    assert_eq!(checked.limits.max_wait, Duration::from_secs(1));
    let printed = format!("{c:?} {}", c.describe());
    assert!(
        !printed.contains("s3cr3t-pw") && !printed.contains("pw1") && !printed.contains("prefix"),
        "{printed}"
    );
    assert!(printed.contains("Elasticsearch https://es-1.internal:9200/…, https://es-2.internal:9200/… -> index falco (Daily suffix)"), "{printed}");
}

#[tokio::test]
async fn a_request_never_exceeds_max_bytes() {
    let (fake, state) = fake_es::start().await;
    let out = output(json!({"url": fake.url(""), "batch": {"max_bytes": "4KiB"}}));
    let batch: Vec<_> = (0..40)
        .map(|i| at("2026-06-12T09:00:00Z", &format!("R{i}")))
        .collect();
    assert_eq!(out.deliver(&batch).await, Delivery::Delivered);
    let s = state.lock().unwrap();
    assert_eq!(s.documents.len(), 40);
    assert!(
        s.requests.len() > 1 && s.requests.iter().all(|(_, bytes)| *bytes <= 4096),
        "{:?}",
        s.requests
    );
}
