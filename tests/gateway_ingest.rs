//! What senders see at the gateway's door: formats, refusals, probes, metrics and configuration.

use std::process::Command;
use std::time::Duration;

use peregrine_e2e::gateway::{metric_sample, metric_value, run_cli, GatewayProcess};
use peregrine_e2e::receiver::Receiver;
use peregrine_e2e::{bin, falco_alert};

/// One refused request and what its sender must see.
struct Case {
    what: &'static str,
    body: String,
    token: Option<&'static str>,
    content_type: &'static str,
    status: u16,
    message: &'static str,
    reason: &'static str,
}

/// Records in the spool, read from the group-commit counter.
async fn stored(gw: &GatewayProcess) -> f64 {
    gw.metric("peregrine_spool_records_total").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_its_status_and_message_and_stores_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let hook = Receiver::ok().await;
    let config = format!(
        "max_body_bytes: 4096\nauth: {{ bearer_token: s3cret }}\noutputs:\n  - {{ name: hook, type: webhook, url: \"{}\" }}\n",
        hook.url("/")
    );
    let gw = GatewayProcess::start(tmp.path(), &config).await;
    let client = reqwest::Client::new();
    let post = |body: String, token: Option<&'static str>, content_type: &'static str| {
        let mut req = client
            .post(format!("{}/", gw.base))
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let good = falco_alert("Read sensitive file untrusted", "Warning", &[]);
    let with = |key: &str, value: serde_json::Value| {
        let mut a = good.clone();
        if value.is_null() {
            a.as_object_mut().unwrap().remove(key);
        } else {
            a[key] = value;
        }
        a.to_string()
    };
    let cases = [
        Case {
            what: "malformed JSON",
            body: "{\"rule\": \"x\",".into(),
            token: Some("s3cret"),
            content_type: "application/json",
            status: 400,
            message: "malformed JSON",
            reason: "malformed_json",
        },
        Case {
            what: "unknown priority",
            body: with("priority", "Urgent".into()),
            token: Some("s3cret"),
            content_type: "application/json",
            status: 400,
            message: "priority: unknown priority 'Urgent'",
            reason: "unknown_priority",
        },
        Case {
            what: "missing rule",
            body: with("rule", serde_json::Value::Null),
            token: Some("s3cret"),
            content_type: "application/json",
            status: 400,
            message: "rule: is required",
            reason: "missing_rule",
        },
        Case {
            what: "bad time",
            body: with("time", "12 June 2026".into()),
            token: Some("s3cret"),
            content_type: "application/json",
            status: 400,
            message: "time: '12 June 2026' is not an RFC 3339",
            reason: "bad_time",
        },
        Case {
            what: "one bad alert in an array",
            body: format!("[{good}, {}]", with("priority", serde_json::Value::Null)),
            token: Some("s3cret"),
            content_type: "application/json",
            status: 400,
            message: "[1].priority: is required",
            reason: "missing_priority",
        },
        Case {
            what: "one bad NDJSON line",
            body: format!("{good}\n{}\n", with("time", 5.into())),
            token: Some("s3cret"),
            content_type: "application/x-ndjson",
            status: 400,
            message: "line 2: time: expected an RFC 3339 string",
            reason: "bad_time",
        },
        Case {
            what: "oversized body",
            body: format!("[{}]", vec![good.to_string(); 20].join(",")),
            token: Some("s3cret"),
            content_type: "application/json",
            status: 413,
            message: "larger than max_body_bytes (4096 bytes)",
            reason: "body_too_large",
        },
        Case {
            what: "no token",
            body: good.to_string(),
            token: None,
            content_type: "application/json",
            status: 401,
            message: "missing or wrong bearer token",
            reason: "unauthorized",
        },
        Case {
            what: "wrong token",
            body: good.to_string(),
            token: Some("s3cre"),
            content_type: "application/json",
            status: 401,
            message: "missing or wrong bearer token",
            reason: "unauthorized",
        },
    ];
    for Case {
        what,
        body,
        token,
        content_type,
        status,
        message,
        reason,
    } in cases
    {
        let before = stored(&gw).await;
        let r = post(body, token, content_type).await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{what}");
        let answer: serde_json::Value = r.json().await.unwrap();
        let error = answer["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: {answer}"));
        assert!(error.contains(message), "{what}: got '{error}'");
        assert_eq!(stored(&gw).await, before, "{what} stored something");
        let rejected = gw
            .metric(&format!(
                "peregrine_alerts_rejected_total{{reason=\"{reason}\"}}"
            ))
            .await;
        assert!(rejected >= 1.0, "{what}: reason {reason} not counted");
    }

    // And the good forms are taken: one object, an array, NDJSON.
    let r = post(good.to_string(), Some("s3cret"), "application/json")
        .await
        .unwrap();
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["accepted"], 1);
    let r = post(
        format!("[{good},{good}]"),
        Some("s3cret"),
        "application/json",
    )
    .await
    .unwrap();
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["accepted"], 2);
    let r = post(
        format!("{good}\n{good}\n{good}\n"),
        Some("s3cret"),
        "application/x-ndjson",
    )
    .await
    .unwrap();
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["accepted"], 3);
    hook.wait_for(6, Duration::from_secs(10)).await;
    assert_eq!(stored(&gw).await, 6.0);
    assert_eq!(
        hook.requests().len(),
        6,
        "only the accepted alerts reached the output, none of the refused bodies"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(tmp.path(), "outputs: []\n").await;
    let get = |path: &str| reqwest::get(format!("{}{path}", gw.base));
    assert_eq!(get("/ping").await.unwrap().text().await.unwrap(), "pong");
    let health: serde_json::Value = get("/healthz").await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    let ready = get("/readyz").await.unwrap();
    assert_eq!(ready.status(), 200);
    // The image's HEALTHCHECK: the same probe from the binary, with no shell or curl.
    let config = tmp.path().join("gateway.yaml");
    let probe = || {
        tokio::task::block_in_place(|| {
            run_cli(
                &[
                    "healthcheck".as_ref(),
                    "--config".as_ref(),
                    config.as_os_str(),
                ],
                &[],
            )
        })
    };
    let healthy = probe();
    assert_eq!(healthy.code, Some(0), "{}", healthy.text());
    assert!(
        healthy.stdout.contains(r#"{"status":"ok"}"#),
        "{}",
        healthy.stdout
    );
    gw.terminate(Duration::from_secs(10)).await;
    let down = probe();
    assert_eq!(down.code, Some(1), "{}", down.text());
    assert!(down.stderr.contains("/healthz"), "{}", down.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool() {
    let Ok(promtool) = which("promtool") else {
        panic!("promtool is missing: install Debian's 'prometheus' package (make deps does)");
    };
    let tmp = tempfile::tempdir().unwrap();
    let hook = Receiver::ok().await;
    let config = format!("outputs:\n  - {{ name: hook, type: webhook, url: \"{}\" }}\n  - {{ name: console, type: stdout }}\n", hook.url("/"));
    let gw = GatewayProcess::start(tmp.path(), &config).await;
    gw.post(&falco_alert("r", "Warning", &[])).await;
    gw.post(&serde_json::json!({"rule": "x"})).await;
    hook.wait_for(1, Duration::from_secs(5)).await;
    let text = gw.metrics().await;
    for name in [
        "peregrine_alerts_received_total",
        "peregrine_alerts_rejected_total",
        "peregrine_output_sent_total",
        "peregrine_output_retries_total",
        "peregrine_output_dead_lettered_total",
        "peregrine_output_queue_depth",
        "peregrine_output_delivery_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} missing from /metrics"
        );
    }
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// "Alerts by rule" is a query, not a log search: the received counter carries the rule, capped
/// at 256 names so a sender inventing names cannot grow the series without bound; build info
/// and the standard process series are there for dashboards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn received_alerts_are_counted_by_rule_with_a_cap_and_build_and_process_series_exist() {
    let tmp = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(tmp.path(), "outputs: []\n").await;
    let alerts: Vec<serde_json::Value> = (0..300)
        .map(|i| falco_alert(&format!("Invented rule {i}"), "Notice", &[]))
        .collect();
    let batch = gw.post(&serde_json::Value::Array(alerts)).await;
    assert_eq!(batch.status(), 200);
    gw.post(&falco_alert(
        "Read sensitive file untrusted",
        "Warning",
        &[],
    ))
    .await;
    gw.post(&falco_alert(
        "Read sensitive file untrusted",
        "Warning",
        &[],
    ))
    .await;
    let text = gw.metrics().await;
    let by_rule = |rule: &str| {
        metric_value(
            &text,
            &format!("peregrine_alerts_received_total{{rule=\"{rule}\"}}"),
        )
    };
    assert_eq!(by_rule("Invented rule 0"), 1.0);
    assert_eq!(by_rule("Invented rule 255"), 1.0);
    assert_eq!(
        by_rule("other"),
        46.0,
        "300 invented names, 256 kept; the 44 after them and the 2 alerts of a rule first seen once the cap was full are other"
    );
    assert_eq!(
        metric_sample(
            &text,
            r#"peregrine_alerts_received_total{rule="Read sensitive file untrusted"}"#
        ),
        None
    );
    let rules: std::collections::HashSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("peregrine_alerts_received_total{"))
        .filter_map(|l| l.split("rule=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(rules.len(), 257, "256 rules and other, no more");
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        metric_value(
            &text,
            &format!("peregrine_build_info{{version=\"{version}\"}}")
        ),
        1.0
    );
    assert!(metric_value(&text, "process_resident_memory_bytes") > 1e6);
    assert!(metric_value(&text, "process_open_fds") >= 3.0);
    assert!(metric_value(&text, "process_start_time_seconds") > 1.7e9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_answers_503_with_retry_after_and_drops_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let port = peregrine_e2e::receiver::unused_port();
    let config = format!(
        "max_body_bytes: 4096\nspool: {{ dir: \"{}\", max_bytes: 8192, segment_bytes: 2048 }}\noutputs:\n  - {{ name: hook, type: webhook, url: \"http://127.0.0.1:{port}/\", retry: {{ initial_backoff: 20ms, max_backoff: 100ms, max_attempts: 1000 }} }}\n",
        tmp.path().join("spool").display()
    );
    let gw = GatewayProcess::start(tmp.path(), &config).await;
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..100 {
        let mut alert = falco_alert("Read sensitive file untrusted", "Warning", &[]);
        alert["uuid"] = format!("full-{i}").into();
        let r = gw.post(&alert).await;
        match r.status().as_u16() {
            200 => accepted.push(format!("full-{i}")),
            503 => {
                assert_eq!(r.headers()["retry-after"], "5");
                let body: serde_json::Value = r.json().await.unwrap();
                assert!(
                    body["error"].as_str().unwrap().contains("spool is full"),
                    "{body}"
                );
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        refused > 0 && !accepted.is_empty(),
        "accepted {} refused {refused}",
        accepted.len()
    );
    assert_eq!(
        gw.metric(r#"peregrine_alerts_rejected_total{reason="spool_full"}"#)
            .await,
        refused as f64
    );

    // The destination comes up: exactly the accepted alerts arrive, and the spool drains.
    let hook =
        Receiver::scripted_on(port, |_, _| peregrine_e2e::receiver::Reply::status(200)).await;
    hook.wait_for(accepted.len(), Duration::from_secs(15)).await;
    let mut got = hook.uuids();
    got.sort();
    got.dedup();
    accepted.sort();
    assert_eq!(got, accepted);
    // Once compaction released the delivered segments, ingest takes alerts again.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if gw
            .post(&falco_alert("after", "Warning", &[]))
            .await
            .status()
            == 200
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the spool never freed space"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn check_config_reports_every_problem_with_its_path_and_no_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(
        &bad,
        r#"
listen: "127.0.0.1:2801"
outputs:
  - name: hook
    type: webhook
    url: "https://hooks.example.com/services/TPATHSECRET/B00/SECRETPART"
    retry: { max_backoff: forever }
  - name: second
    type: webhook
    url: "https://hooks.example.com/x/SECRETPART2"
    timeout: 5
"#,
    )
    .unwrap();
    let out = Command::new(bin("peregrine-gateway"))
        .arg("--config")
        .arg(&bad)
        .arg("--check-config")
        .output()
        .unwrap();
    // EX_CONFIG (sysexits.h): what service managers and scripts check for "fix the file".
    assert_eq!(out.status.code(), Some(78));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("outputs[0].retry.max_backoff: invalid duration 'forever'"),
        "{text}"
    );
    assert!(text.contains("outputs[1].timeout: invalid type"), "{text}");
    assert!(text.contains("2 problem(s)"), "{text}");

    let good = tmp.path().join("good.yaml");
    std::fs::write(
        &good,
        "outputs:\n  - { name: hook, type: webhook, url: \"https://hooks.example.com/services/TPATHSECRET/B00/SECRETPART\" }\n",
    )
    .unwrap();
    let out = Command::new(bin("peregrine-gateway"))
        .arg("--config")
        .arg(&good)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("output hook (webhook) -> POST https://hooks.example.com/…"),
        "{text}"
    );
    assert!(
        !text.contains("SECRETPART") && !text.contains("TPATHSECRET"),
        "{text}"
    );
}

#[test]
fn the_shipped_configurations_are_valid() {
    for (file, listen) in [
        ("config/gateway.yaml", "127.0.0.1:2801"),
        ("config/gateway.docker.yaml", "0.0.0.0:2801"),
    ] {
        let config = peregrine_e2e::workspace_root().join(file);
        let out = Command::new(bin("peregrine-gateway"))
            .arg("--config")
            .arg(&config)
            .arg("--check-config")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("listen {listen}")), "{file}: {text}");
        assert!(text.contains("output console (stdout)"), "{file}: {text}");
    }
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .find(|p| p.is_file())
        })
        .ok_or(())
}

/// Falco's route is `POST /` whatever the query string or the body's framing; other methods on
/// `/` are told which one to use, and other paths do not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_route_is_post_slash_with_any_query_or_framing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tmp = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(tmp.path(), "outputs: []\n").await;
    let client = reqwest::Client::new();
    let alert = falco_alert("Terminal shell in container", "Notice", &[]).to_string();
    let post = |path: &str| {
        client
            .post(format!("{}{path}", gw.base))
            .body(alert.clone())
            .send()
    };
    let r = post("/?from=falco").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.text().await.unwrap(), r#"{"accepted":1}"#);
    for method in [
        reqwest::Method::GET,
        reqwest::Method::HEAD,
        reqwest::Method::PUT,
    ] {
        let r = client
            .request(method.clone(), format!("{}/", gw.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method}");
        assert_eq!(r.headers()["allow"], "POST", "{method}");
    }
    assert_eq!(post("//").await.unwrap().status(), 404);

    // A chunked body, sent in two writes.
    let addr = gw.addr();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (head, tail) = alert.split_at(alert.len() / 2);
    let first = format!(
        "POST / HTTP/1.1\r\nhost: {addr}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{head}\r\n",
        head.len()
    );
    socket.write_all(first.as_bytes()).await.unwrap();
    socket.flush().await.unwrap();
    let rest = format!("{:x}\r\n{tail}\r\n0\r\n\r\n", tail.len());
    socket.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_string(&mut answer))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(r#"{"accepted":1}"#), "{answer}");
    assert_eq!(stored(&gw).await, 2.0);
}
