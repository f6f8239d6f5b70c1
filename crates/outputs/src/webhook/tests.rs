//! The webhook against a real HTTP receiver on 127.0.0.1.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::any;
use axum::Router;
use peregrine_engine::{Alert, AlertId};

use super::*;
use crate::delivery::Delivery;
use crate::envelope::Envelope;
use crate::output::Output;
use crate::settings::{parse_keys, BuildContext};

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
    let config: WebhookSettings = crate::settings::checked(config).unwrap();
    build(
        &config,
        BuildContext {
            name: "test".into(),
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

fn alert_with(rule: &str, hostname: &str) -> Envelope {
    let mut a = Alert::from_json(serde_json::json!({
        "rule": rule, "priority": "Critical", "time": "2026-06-12T09:23:10.123456789Z",
        "output": "a \"quoted\" line\nand <b>markup</b>", "hostname": hostname,
        "output_fields": {"proc.name": "cat", "fd.name": "/etc/shadow"}, "tags": ["filesystem", "T1555"]
    }))
    .unwrap();
    a.uuid = Some(AlertId::generate());
    Envelope::new(a)
}

#[tokio::test]
async fn a_body_template_renders_each_alert_with_its_fields_and_filters() {
    let (base, seen) = receiver(StatusCode::OK, None).await;
    let template = r#"{"text": {{ ("[" ~ priority ~ "] " ~ rule) | json }}, "proc": {{ fields["proc.name"] | json }}, "output": {{ output | json }}, "short": {{ output | truncate(6) | json }}, "tags": {{ tags | join(",") | json }}, "id": {{ uuid | json }}}"#;
    let out = webhook(serde_json::json!({
        "url": format!("{base}/hook"),
        "body_template": template,
        "headers": {"X-Rule": "{{ rule | upper }}", "X-Static": "yes"},
    }));
    let env = alert_with("Shell in container", "node-7");
    assert_eq!(
        out.deliver(std::slice::from_ref(&env)).await,
        Delivery::Delivered
    );
    let seen = seen.lock().unwrap();
    let (_, _, headers, body) = &seen.requests[0];
    let got: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(got["text"], "[Critical] Shell in container");
    assert_eq!(got["proc"], "cat");
    assert_eq!(got["output"], "a \"quoted\" line\nand <b>markup</b>");
    assert_eq!(got["short"], "a \"qu…");
    assert_eq!(got["tags"], "filesystem,T1555");
    assert_eq!(got["id"], env.id());
    assert_eq!(headers["x-rule"], "SHELL IN CONTAINER");
    assert_eq!(headers["x-static"], "yes");
    assert_eq!(headers["content-type"], "application/json");
}

#[tokio::test]
async fn a_text_body_can_escape_for_html() {
    let (base, seen) = receiver(StatusCode::OK, None).await;
    let out = webhook(serde_json::json!({
        "url": format!("{base}/hook"),
        "content_type": "text/html; charset=utf-8",
        "body_template": "<p>{{ output | escape }}</p>",
    }));
    assert_eq!(
        out.deliver(&[alert_with("r", "h")]).await,
        Delivery::Delivered
    );
    let seen = seen.lock().unwrap();
    let (_, _, headers, body) = &seen.requests[0];
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(
        String::from_utf8_lossy(body),
        "<p>a &quot;quoted&quot; line\nand &lt;b&gt;markup&lt;&#x2f;b&gt;</p>"
    );
}

/// How a receiver checks the signature: recompute the HMAC over "{t}.{body}", compare, and
/// refuse an old `t`.
fn verify(secret: &str, header: &str, body: &[u8], now: u64) -> Result<(), &'static str> {
    use hmac::{KeyInit, Mac};
    let (mut t, mut v1) = (None, None);
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<u64>().ok(),
            Some(("v1", v)) => v1 = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (t, v1) = (t.ok_or("no t")?, v1.ok_or("no v1")?);
    if now.abs_diff(t) > 300 {
        return Err("too old");
    }
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&v1).map_err(|_| "forged")
}

#[tokio::test]
async fn signed_requests_verify_as_a_receiver_checks_them() {
    let (base, seen) = receiver(StatusCode::OK, None).await;
    let out = webhook(serde_json::json!({
        "url": format!("{base}/hook"),
        "sign": {"secret": "whsec-s3cr3t"},
    }));
    assert_eq!(out.deliver(&[alert()]).await, Delivery::Delivered);
    let custom = webhook(serde_json::json!({
        "url": format!("{base}/hook"),
        "sign": {"secret": "whsec-s3cr3t", "header": "X-Hub-Signature"},
    }));
    assert_eq!(custom.deliver(&[alert()]).await, Delivery::Delivered);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let seen = seen.lock().unwrap();
    let (_, _, headers, body) = &seen.requests[0];
    let signature = headers["x-peregrine-signature"].to_str().unwrap();
    assert_eq!(verify("whsec-s3cr3t", signature, body, now), Ok(()));
    assert_eq!(verify("other-secret", signature, body, now), Err("forged"));
    let mut tampered = body.clone();
    tampered[0] = b' ';
    assert_eq!(
        verify("whsec-s3cr3t", signature, &tampered, now),
        Err("forged")
    );
    assert_eq!(
        verify("whsec-s3cr3t", signature, body, now + 3600),
        Err("too old")
    );
    let (_, _, headers, body) = &seen.requests[1];
    let signature = headers["x-hub-signature"].to_str().unwrap();
    assert_eq!(verify("whsec-s3cr3t", signature, body, now), Ok(()));
}

#[tokio::test]
async fn an_alert_its_template_fails_for_is_dead_lettered_with_the_error() {
    let (base, seen) = receiver(StatusCode::OK, None).await;
    let out = webhook(serde_json::json!({
        "url": format!("{base}/hook"),
        "content_type": "text/plain",
        "body_template": "{% if rule == 'Boom' %}{{ explode() }}{% endif %}{{ rule }}",
        "headers": {"X-Host": "{{ hostname }}"},
    }));
    match out.deliver(&[alert_with("Boom", "h")]).await {
        Delivery::Permanent(f) => {
            assert!(f.reason.starts_with("body_template: line 1:"), "{f:?}");
            assert_eq!(f.code, Some("template_error"));
        }
        other => panic!("{other:?}"),
    }
    match out.deliver(&[alert_with("r", "evil\nX-Injected: 1")]).await {
        Delivery::Permanent(f) => assert_eq!(
            f.reason,
            "headers.x-host: renders a value HTTP does not allow"
        ),
        other => panic!("{other:?}"),
    }
    assert!(seen.lock().unwrap().requests.is_empty());
}

#[test]
fn templates_are_checked_with_the_configuration() {
    let err = |keys: serde_json::Value| {
        crate::settings::checked::<WebhookSettings>(keys)
            .unwrap_err()
            .to_string()
    };
    let url = "http://127.0.0.1/x";
    let e = err(serde_json::json!({"url": url, "body_template": "{{ rule "}));
    assert!(e.starts_with("body_template: line 1: "), "{e}");
    let e = err(
        serde_json::json!({"url": url, "body_template": "{{ rule | shout }}", "content_type": "text/plain"}),
    );
    assert!(
        e.starts_with("body_template:") && e.contains("shout"),
        "{e}"
    );
    let e = err(serde_json::json!({"url": url, "body_template": "{\"o\": \"{{ output }}\"}"}));
    assert!(
        e.starts_with("body_template: does not render JSON for a sample alert")
            && e.contains("{{ output | json }}"),
        "{e}"
    );
    let e = err(serde_json::json!({"url": url, "headers": {"X-A": "{{ nope( }}"}}));
    assert!(e.starts_with("headers.x-a: line 1:"), "{e}");
    let e = err(serde_json::json!({"url": url, "sign": {"secret": "s", "header": "bad header"}}));
    assert_eq!(e, "sign.header: 'bad header' is not a valid header name");
    let e = err(serde_json::json!({"url": url, "sign": {"secret": ""}}));
    assert_eq!(e, "sign.secret: must not be empty");
    let s: WebhookSettings = crate::settings::checked(
        serde_json::json!({"url": url, "body_template": "{{ rule | json }}", "sign": {"secret": "whsec-s3cr3t"}}),
    )
    .unwrap();
    let printed = format!("{s:?} {}", crate::OutputSettings::describe(&s));
    assert!(!printed.contains("whsec-s3cr3t"), "{printed}");
    assert!(
        printed.contains("POST http://127.0.0.1/… (body template, signed)"),
        "{printed}"
    );
}
