//! The webhook against a real HTTP receiver on 127.0.0.1.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::any;
use axum::Router;
use peregrine_engine::{Alert, AlertId};

use super::*;
use crate::config::{parse_keys, BuildContext};
use crate::delivery::Delivery;
use crate::envelope::Envelope;
use crate::output::Output;

#[derive(Default)]
struct Seen {
    requests: Vec<(Method, String, HeaderMap, Vec<u8>)>,
}

async fn receiver(
    status: StatusCode,
    extra: Option<(&'static str, &'static str)>,
) -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let app = Router::new()
        .route(
            "/{*path}",
            any(
                move |State(seen): State<Arc<Mutex<Seen>>>,
                      method: Method,
                      uri: axum::http::Uri,
                      headers: HeaderMap,
                      body: axum::body::Bytes| async move {
                    seen.lock().unwrap().requests.push((
                        method,
                        uri.to_string(),
                        headers,
                        body.to_vec(),
                    ));
                    let mut response = axum::response::Response::builder().status(status);
                    if let Some((k, v)) = extra {
                        response = response.header(k, v);
                    }
                    response.body(axum::body::Body::empty()).unwrap()
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

fn alert() -> Envelope {
    let mut a = Alert::from_json(serde_json::json!({
        "rule": "Read sensitive file untrusted", "priority": "Warning",
        "time": "2026-06-12T09:23:10.123456789Z", "output": "x", "hostname": "node-1",
        "output_fields": {"proc.name": "cat", "fd.name": "/etc/shadow"}, "tags": ["filesystem"]
    }))
    .unwrap();
    a.uuid = Some(AlertId::generate());
    Envelope::new(a)
}

fn webhook(config: serde_json::Value) -> impl Output {
    let config: WebhookConfig = parse_keys(config).unwrap();
    build(
        &config,
        BuildContext {
            max_in_flight: 2,
            timeout: std::time::Duration::from_secs(5),
        },
    )
}

#[tokio::test]
async fn posts_the_alert_json_with_its_uuid_and_headers() {
    let (base, seen) = receiver(StatusCode::OK, None).await;
    let out = webhook(
        serde_json::json!({"url": format!("{base}/hook"), "headers": {"Authorization": "Bearer s3cret"}}),
    );
    let env = alert();
    assert_eq!(
        out.deliver(std::slice::from_ref(&env)).await,
        Delivery::Delivered
    );

    let seen = seen.lock().unwrap();
    let (method, path, headers, body) = &seen.requests[0];
    assert_eq!(method, Method::POST);
    assert_eq!(path, "/hook");
    assert_eq!(headers["authorization"], "Bearer s3cret");
    assert_eq!(headers["content-type"], "application/json");
    let got: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(got["uuid"], env.id());
    assert_eq!(got["rule"], "Read sensitive file untrusted");
    assert_eq!(got["priority"], "Warning");
    assert_eq!(got["output_fields"]["fd.name"], "/etc/shadow");
    assert_eq!(got["time"], "2026-06-12T09:23:10.123456789Z");
}

#[tokio::test]
async fn put_when_configured() {
    let (base, seen) = receiver(StatusCode::NO_CONTENT, None).await;
    let out = webhook(serde_json::json!({"url": format!("{base}/x"), "method": "put"}));
    assert_eq!(out.deliver(&[alert()]).await, Delivery::Delivered);
    assert_eq!(seen.lock().unwrap().requests[0].0, Method::PUT);
}

#[tokio::test]
async fn answers_are_classified() {
    let (base, _) = receiver(StatusCode::BAD_REQUEST, None).await;
    let got = webhook(serde_json::json!({"url": format!("{base}/x")}))
        .deliver(&[alert()])
        .await;
    assert!(
        matches!(got, Delivery::Permanent(ref f) if f.status == Some(400)),
        "{got:?}"
    );

    let (base, _) = receiver(StatusCode::BAD_GATEWAY, None).await;
    let got = webhook(serde_json::json!({"url": format!("{base}/x")}))
        .deliver(&[alert()])
        .await;
    assert!(
        matches!(got, Delivery::Retry(ref f) if f.status == Some(502)),
        "{got:?}"
    );

    let (base, _) = receiver(StatusCode::TOO_MANY_REQUESTS, Some(("retry-after", "2"))).await;
    let got = webhook(serde_json::json!({"url": format!("{base}/x")}))
        .deliver(&[alert()])
        .await;
    assert!(
        matches!(got, Delivery::RetryAfter(_, d) if d.as_secs() == 2),
        "{got:?}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_retried_and_the_error_hides_the_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let out = webhook(
        serde_json::json!({"url": format!("http://127.0.0.1:{port}/services/T0/SECRET-TOKEN")}),
    );
    match out.deliver(&[alert()]).await {
        Delivery::Retry(f) => {
            assert!(f.reason.starts_with("connection failed"), "{}", f.reason);
            assert!(!f.reason.contains("SECRET-TOKEN"), "{}", f.reason);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_keys_name_their_path() {
    let e = parse_keys::<WebhookConfig>(
        serde_json::json!({"url": "http://127.0.0.1/x", "methd": "PUT"}),
    )
    .unwrap_err();
    assert!(e.message.contains("unknown field `methd`"), "{e}");
    let e = parse_keys::<WebhookConfig>(
        serde_json::json!({"url": "http://127.0.0.1/x", "method": "GET"}),
    )
    .unwrap_err();
    assert_eq!(e.path, "method");
    let e = parse_keys::<WebhookConfig>(
        serde_json::json!({"url": "http://127.0.0.1/x", "headers": {"Bad Name": "v"}}),
    )
    .unwrap_err();
    assert!(e.path.starts_with("headers"), "{e}");
    let e =
        parse_keys::<WebhookConfig>(serde_json::json!({"url": "gopher://h/secret"})).unwrap_err();
    assert_eq!(e.path, "url");
    assert!(!e.message.contains("secret"), "{e}");
    let config: WebhookConfig =
        parse_keys(serde_json::json!({"url": "http://h/x", "headers": {"X-Token": "tok-123"}}))
            .unwrap();
    assert!(!format!("{config:?}").contains("tok-123"));
}
