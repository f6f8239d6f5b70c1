//! falcosidekick-ui against a fake that validates events as the UI's models do.

use peregrine_engine::{Alert, AlertId};
use peregrine_fakes::{sidekick_ui as fake_ui, Reply};
use serde_json::json;

use super::*;
use crate::delivery::Delivery;
use crate::envelope::Envelope;
use crate::settings::checked;

fn alert(id: &str, rule: &str, output: &str) -> Envelope {
    let mut a = Alert::from_json(json!({
        "rule": rule, "priority": "Critical", "time": "2026-06-12T09:23:10.123456789Z",
        "output": output, "hostname": "node-1", "source": "syscall",
        "output_fields": {"proc.name": "cat"}, "tags": ["filesystem"]
    }))
    .unwrap();
    a.uuid = Some(AlertId::parse(id).unwrap());
    Envelope::new(a)
}

fn output(keys: serde_json::Value) -> HttpOutput<SidekickUiEncoder> {
    let settings: SidekickUiSettings = checked(keys).unwrap();
    build(
        &settings,
        BuildContext {
            name: "ui".into(),
            max_in_flight: 1,
            timeout: std::time::Duration::from_secs(5),
        },
    )
}

#[tokio::test]
async fn the_ui_takes_every_alert_even_with_a_sender_id_and_non_ascii_text() {
    let (ui, _) = (fake_ui::start().await, ());
    let out = output(json!({"url": ui.url(""), "outputs": ["Slack", "Loki"]}));
    let uuid = AlertId::generate();
    let plain = alert(
        uuid.as_str(),
        "Read sensitive file untrusted",
        "cat /etc/shadow\nby root",
    );
    let odd = alert("sender-id-42", "Shell in ünïcode", "Ausgabe für café ☕");
    assert_eq!(out.deliver(&[plain]).await, Delivery::Delivered);
    assert_eq!(
        out.deliver(std::slice::from_ref(&odd)).await,
        Delivery::Delivered
    );
    let got = ui.messages();
    assert!(
        got.iter().all(|m| m.path == "/api/v1/" && m.accepted()),
        "{got:?}"
    );
    let first = got[0].json();
    assert_eq!(first["event"]["uuid"], uuid.as_str());
    assert_eq!(first["event"]["output"], "cat /etc/shadow\nby root");
    assert_eq!(first["outputs"], json!(["Slack", "Loki"]));
    let second = got[1].json();
    assert_eq!(second["event"]["rule"], "Shell in \\u{fc}n\\u{ef}code");
    assert_eq!(
        second["event"]["output"],
        "Ausgabe f\\u{fc}r caf\\u{e9} \\u{2615}"
    );
    // A sender's id becomes a UUID, the same one on every retry.
    let derived = second["event"]["uuid"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::try_parse(&derived).is_ok(), "{derived}");
    assert_eq!(event(&odd).unwrap()["uuid"], derived);
}

#[tokio::test]
async fn the_fake_refuses_what_the_ui_refuses() {
    let ui = fake_ui::start().await;
    let post = |body: serde_json::Value| {
        let url = ui.url("/api/v1/");
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let event = json!({"uuid": "0b6f8a5e-2f43-4d7c-9a8e-3f1c2b4d5e6f", "output": "o", "priority": "Warning",
        "rule": "r", "time": "2026-06-12T09:23:10.123456789Z", "source": "syscall", "hostname": "h"});
    assert_eq!(post(json!({"event": event, "outputs": []})).await.0, 200);
    for (key, value, field) in [
        ("uuid", json!("sender-id-42"), "Event.UUID"),
        ("output", json!("café"), "Event.Output"),
        ("rule", json!("a\nb"), "Event.Rule"),
        ("time", json!("yesterday"), "Event.Time"),
    ] {
        let mut e = event.clone();
        e[key] = value;
        let (status, body) = post(json!({"event": e, "outputs": []})).await;
        assert_eq!(status, 400, "{key}");
        assert!(body.contains(field), "{key}: {body}");
    }
    assert_eq!(
        post(json!({"event": event})).await.0,
        400,
        "outputs are required"
    );
}

#[tokio::test]
async fn a_refusal_is_dead_lettered_and_a_server_error_retried() {
    let ui = fake_ui::start().await;
    let out = output(json!({"url": ui.url("/api/v1/")}));
    ui.force(Reply::new(400, r#"{"message":"bad"}"#), 1);
    ui.force(
        Reply::new(500, r#"{"message":"redis: connection refused"}"#),
        1,
    );
    let a = alert(AlertId::generate().as_str(), "r", "o");
    assert!(
        matches!(out.deliver(std::slice::from_ref(&a)).await, Delivery::Permanent(f) if f.status == Some(400))
    );
    assert!(
        matches!(out.deliver(std::slice::from_ref(&a)).await, Delivery::Retry(f) if f.status == Some(500))
    );
    assert_eq!(out.deliver(&[a]).await, Delivery::Delivered);
}

#[test]
fn the_url_gets_the_ingest_path_and_prints_without_secrets() {
    let s: SidekickUiSettings = checked(json!({"url": "http://ui.internal:2802"})).unwrap();
    assert_eq!(
        s.ingest_url.expose().as_str(),
        "http://ui.internal:2802/api/v1/"
    );
    assert_eq!(s.outputs, ["Peregrine"]);
    let s: SidekickUiSettings =
        checked(json!({"url": "https://admin:pw@ui.internal/api/v1/"})).unwrap();
    assert_eq!(s.ingest_url.expose().path(), "/api/v1/");
    assert!(!s.describe().contains("pw"), "{}", s.describe());
    assert!(checked::<SidekickUiSettings>(json!({"url": "http://ui", "outputs": [""]})).is_err());
}
