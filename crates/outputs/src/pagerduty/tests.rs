//! PagerDuty against a local fake of the Events API v2.

use std::time::Duration;

use peregrine_engine::Priority;
use peregrine_fakes::{pagerduty, Reply};
use serde_json::{json, Value};

use super::*;
use crate::delivery::Delivery;
use crate::output::Output;
use crate::retry::{deliver_with_retries, AttemptObserver, Outcome, PauseGate, RetryPolicy};
use crate::settings::{checked, parse_keys, BuildContext, OutputSettings};
use crate::testing::{envelope, shadow_read};

const KEY: &str = "R0UT1NGKEY0123456789abcdefABCDEF";

fn config(fake_url: &str, extra: Value) -> PagerDutyConfig {
    let mut keys = json!({"routing_key": KEY, "url": fake_url});
    keys.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    parse_keys(keys).unwrap()
}

fn output(c: &PagerDutyConfig) -> impl Output {
    build(
        c,
        BuildContext {
            name: "test".into(),
            max_in_flight: 1,
            timeout: std::time::Duration::from_secs(5),
        },
    )
}

struct Quiet;
impl AttemptObserver for Quiet {
    fn retrying(&self, _: &crate::Failure, _: usize) {}
}

#[tokio::test]
async fn a_trigger_event_field_by_field_and_202() {
    let fake = pagerduty::start().await;
    let c = config(&fake.url("/v2/enqueue"), json!({}));
    let e = shadow_read("Critical");
    assert_eq!(
        output(&c).deliver(std::slice::from_ref(&e)).await,
        Delivery::Delivered
    );
    let got = fake.messages();
    assert_eq!(got[0].status, 202);
    let ev = got[0].json();
    assert_eq!(ev["routing_key"], KEY);
    assert_eq!(ev["event_action"], "trigger");
    assert_eq!(
        ev["dedup_key"],
        "Read sensitive file untrusted|node-1|3ad7b26ded6d"
    );
    let p = &ev["payload"];
    let summary = p["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("Read sensitive file untrusted: Sensitive file opened for reading"),
        "{summary}"
    );
    assert_eq!(p["source"], "node-1");
    assert_eq!(p["severity"], "critical");
    assert_eq!(p["timestamp"], "2026-06-12T09:23:10.123456789Z");
    assert_eq!(p["component"], "nginx");
    assert_eq!(p["group"], "web", "no k8s namespace: the container name");
    assert_eq!(p["class"], "Read sensitive file untrusted");
    let d = &p["custom_details"];
    assert_eq!(d["fd.name"], "/etc/shadow");
    assert_eq!(d["user.uid"], 0);
    assert_eq!(
        d["tags"],
        json!(["filesystem", "mitre_credential_access", "T1555"])
    );
    assert_eq!(d["uuid"], e.id());
}

#[tokio::test]
async fn every_priority_maps_to_a_pagerduty_severity() {
    let fake = pagerduty::start().await;
    let c = config(
        &fake.url("/v2/enqueue"),
        json!({"rate_limit": {"per_second": 50, "burst": 8}}),
    );
    for p in Priority::ALL {
        assert_eq!(
            output(&c).deliver(&[shadow_read(p.as_str())]).await,
            Delivery::Delivered,
            "{p}"
        );
    }
    let got: Vec<String> = fake
        .accepted()
        .iter()
        .map(|e| e["payload"]["severity"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        got,
        ["critical", "critical", "critical", "error", "warning", "info", "info", "info"]
    );
}

#[tokio::test]
async fn a_retried_alert_keeps_its_dedup_key() {
    let fake = pagerduty::start().await;
    let c = config(
        &fake.url("/v2/enqueue"),
        json!({"rate_limit": {"per_second": 50}}),
    );
    fake.force(Reply::new(502, ""), 1);
    fake.force(Reply::new(500, ""), 1);
    let policy = RetryPolicy {
        max_attempts: 5,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        ..RetryPolicy::default()
    };
    let out = deliver_with_retries(
        &output(&c),
        &[shadow_read("Error")],
        &policy,
        &PauseGate::default(),
        &Quiet,
    )
    .await;
    assert_eq!(out, vec![Outcome::Delivered]);
    let got = fake.messages();
    assert_eq!(
        got.iter().map(|m| m.status).collect::<Vec<_>>(),
        [502, 500, 202]
    );
    let keys: Vec<Value> = got.iter().map(|m| m.json()["dedup_key"].clone()).collect();
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
}

#[tokio::test]
async fn a_400_is_permanent_with_pagerdutys_reasons_and_a_429_pauses_minutes() {
    let fake = pagerduty::start().await;
    let c = config(
        &fake.url("/v2/enqueue"),
        json!({"rate_limit": {"per_second": 50}}),
    );
    // The fake's own check: a summary over 1024 characters cannot happen, so force PagerDuty's
    // answer to an event it refuses.
    fake.force(Reply::new(400, json!({"status": "invalid event", "message": "Event object is invalid", "errors": ["'payload.source' is missing or blank"]}).to_string()), 1);
    match output(&c).deliver(&[shadow_read("Error")]).await {
        Delivery::Permanent(f) => {
            assert_eq!(f.code, Some("invalid_event"));
            assert_eq!(
                f.reason,
                "invalid event: 'payload.source' is missing or blank"
            );
        }
        other => panic!("{other:?}"),
    }
    // 429s in a row pause 30 s, 60 s, 120 s ... up to 5 minutes; a longer Retry-After wins,
    // a shorter one does not shorten it; any other answer starts again at 30 s.
    let out = output(&c);
    let mut pauses = Vec::new();
    for retry_after in [None, Some("5"), None, Some("200"), None, None] {
        let reply = pagerduty::rate_limited();
        fake.force(
            match retry_after {
                Some(s) => reply.header("retry-after", s),
                None => reply,
            },
            1,
        );
        match out.deliver(&[shadow_read("Error")]).await {
            Delivery::RetryAfter(f, d) => {
                assert_eq!(f.code, Some("rate_limited"));
                pauses.push(d.as_secs());
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(pauses, [30, 60, 120, 240, 300, 300]);
    assert_eq!(
        out.deliver(&[shadow_read("Error")]).await,
        Delivery::Delivered
    );
    fake.force(pagerduty::rate_limited(), 1);
    assert!(
        matches!(out.deliver(&[shadow_read("Error")]).await, Delivery::RetryAfter(_, d) if d == Duration::from_secs(30))
    );
    fake.force(Reply::new(503, ""), 1);
    assert!(matches!(
        output(&c).deliver(&[shadow_read("Error")]).await,
        Delivery::Retry(_)
    ));
}

#[tokio::test]
async fn the_fake_refuses_what_pagerduty_refuses() {
    // Keeps the fake honest: an event PagerDuty would refuse gets its 400.
    let fake = pagerduty::start().await;
    let r = reqwest::Client::new().post(fake.url("/v2/enqueue")).body(json!({"routing_key": KEY, "event_action": "trigger", "payload": {"summary": "x".repeat(1025), "source": "h", "severity": "fatal"}}).to_string()).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["errors"].as_array().unwrap().len(), 2, "{body}");
}

#[tokio::test]
async fn events_are_paced_to_two_a_second_per_key() {
    let fake = pagerduty::start().await;
    let c = config(&fake.url("/v2/enqueue"), json!({}));
    let policy = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    let gate = PauseGate::default();
    let out = output(&c);
    let b: Vec<[crate::Envelope; 1]> = (0..5).map(|_| [shadow_read("Warning")]).collect();
    let send = |i: usize| deliver_with_retries(&out, &b[i], &policy, &gate, &Quiet);
    let all = tokio::join!(send(0), send(1), send(2), send(3), send(4));
    for o in [all.0, all.1, all.2, all.3, all.4] {
        assert_eq!(o, vec![Outcome::Delivered]);
    }
    let at: Vec<_> = fake.messages().iter().map(|m| m.at).collect();
    let span = at
        .iter()
        .max()
        .unwrap()
        .duration_since(*at.iter().min().unwrap());
    assert!(
        span >= Duration::from_millis(1900),
        "5 events at 2/s took {span:?}"
    );
}

#[test]
fn keys_are_checked_and_the_routing_key_never_prints() {
    let err = |v: Value| parse_keys::<PagerDutyConfig>(v).unwrap_err().to_string();
    let e = err(json!({"routing_key": "short-secret"}));
    assert!(
        e.starts_with("routing_key: must be the 32-character") && !e.contains("short-secret"),
        "{e}"
    );
    assert!(err(json!({"routing_key": KEY, "region": "apac"})).starts_with("region:"));
    assert!(err(json!({"routing_key": KEY, "dedup_key": "static"})).starts_with("dedup_key:"));
    let both = checked::<PagerDutyConfig>(
        json!({"routing_key": KEY, "region": "eu", "url": "http://127.0.0.1:1/"}),
    )
    .unwrap_err();
    assert_eq!(both.path, "url");

    let eu: PagerDutyConfig = parse_keys(json!({"routing_key": KEY, "region": "eu"})).unwrap();
    assert_eq!(
        eu.endpoint().expose().as_str(),
        "https://events.eu.pagerduty.com/v2/enqueue"
    );
    let us: PagerDutyConfig = parse_keys(json!({"routing_key": KEY})).unwrap();
    assert_eq!(
        us.endpoint().expose().as_str(),
        "https://events.pagerduty.com/v2/enqueue"
    );
    let printed = format!("{us:?} {}", us.describe());
    assert!(!printed.contains(KEY), "{printed}");
}

#[test]
fn a_long_dedup_key_is_cut_and_hashed_stably() {
    let c: PagerDutyConfig =
        parse_keys(json!({"routing_key": KEY, "dedup_key": "{rule}/{proc.cmdline}"})).unwrap();
    let enc = PagerDutyEncoder::new(&c);
    let long = |tail: &str| {
        envelope(
            json!({"rule": "r", "priority": "Error", "time": "2026-06-12T09:23:10Z", "output_fields": {"proc.cmdline": format!("{}{tail}", "a".repeat(400))}}),
        )
    };
    let (k1, k2, k3) = (
        enc.dedup_key(long("x").alert()),
        enc.dedup_key(long("x").alert()),
        enc.dedup_key(long("y").alert()),
    );
    assert_eq!(k1.chars().count(), 255);
    assert_eq!(k1, k2);
    assert_ne!(k1, k3, "alerts differing past the cut still differ");
    assert!(k1.starts_with("r/aaaa"));
}
