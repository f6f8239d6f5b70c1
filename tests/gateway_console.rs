//! The web console's API against a running gateway: sign-in (no default password, throttled,
//! cookie and CSRF), alerts with filters and search, one alert's deliveries, the live stream,
//! redrive by an operator but not a viewer, and the index rebuilt from the spool.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peregrine_e2e::falco_alert;
use peregrine_e2e::gateway::{hash_password, GatewayProcess};
use peregrine_e2e::receiver::{Receiver, Reply};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn console_config(receiver: &Receiver) -> String {
    format!(
        r#"
outputs:
  - name: hook
    type: webhook
    url: "{}"
    retry: {{ max_attempts: 1 }}
  - name: pager
    type: webhook
    url: "{}"
    min_priority: critical
ui:
  enabled: true
  users:
    - {{ name: alice, password_hash: "{}", role: operator }}
    - {{ name: bob, password_hash: "{}", role: viewer }}
"#,
        receiver.url("/hook"),
        receiver.url("/pager"),
        hash_password("alice's long password"),
        hash_password("bob's long password"),
    )
}

/// A signed-in client: its cookie and CSRF token.
struct SignedIn {
    client: reqwest::Client,
    base: String,
    cookie: String,
    csrf: String,
}

impl SignedIn {
    async fn new(gw: &GatewayProcess, name: &str, password: &str) -> SignedIn {
        let client = reqwest::Client::new();
        let answer = client
            .post(format!("{}/ui/api/login", gw.base))
            .json(&json!({"name": name, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        let set_cookie = answer.headers()["set-cookie"].to_str().unwrap().to_string();
        for part in [
            "__Host-peregrine-session=",
            "Secure",
            "HttpOnly",
            "SameSite=Strict",
        ] {
            assert!(set_cookie.contains(part), "{set_cookie}");
        }
        let cookie = set_cookie.split(';').next().unwrap().to_string();
        let body: Value = answer.json().await.unwrap();
        SignedIn {
            client,
            base: gw.base.clone(),
            cookie,
            csrf: body["csrf_token"].as_str().unwrap().to_string(),
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let answer = self
            .client
            .get(format!("{}/ui/api/{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (answer.status(), answer.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, csrf: Option<&str>) -> (StatusCode, Value) {
        let mut request = self
            .client
            .post(format!("{}/ui/api/{path}", self.base))
            .header("cookie", &self.cookie)
            .json(&json!({}));
        if let Some(token) = csrf {
            request = request.header("x-csrf-token", token);
        }
        let answer = request.send().await.unwrap();
        (answer.status(), answer.json().await.unwrap_or(Value::Null))
    }

    /// Waits until `GET path` answers with `check` true.
    async fn until(&self, path: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, body) = self.get(path).await;
            if status == StatusCode::OK && check(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "{what}: {status} {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn rules(body: &Value) -> Vec<String> {
    body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["rule"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_shown_without_signing_in_and_there_is_no_default_password() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok().await;
    let gw = GatewayProcess::start(dir.path(), &console_config(&receiver)).await;
    let client = reqwest::Client::new();
    for path in [
        "alerts",
        "outputs",
        "overview",
        "events",
        "outputs/hook/dead-letters",
    ] {
        let answer = client
            .get(format!("{}/ui/api/{path}", gw.base))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let page = client.get(format!("{}/ui/", gw.base)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("<script src=\"assets/app.js\""));

    // The usual defaults do not work, and failures from one address are throttled.
    let attacker = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let mut statuses = Vec::new();
    for (name, password) in [
        ("admin", "admin"),
        ("alice", "admin"),
        ("alice", ""),
        ("bob", "bob"),
        ("root", "root"),
        ("alice", "alice's long password"),
    ] {
        let answer = attacker
            .post(format!("{}/ui/api/login", gw.base))
            .json(&json!({"name": name, "password": password}))
            .send()
            .await
            .unwrap();
        statuses.push(answer.status().as_u16());
        if answer.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(answer.headers().contains_key("retry-after"));
        }
    }
    assert_eq!(
        statuses,
        [401, 401, 401, 401, 401, 429],
        "the right password too, once throttled"
    );
    // Another address still signs in.
    let alice = SignedIn::new(&gw, "alice", "alice's long password").await;
    let (status, who) = alice.get("session").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (who["user"].as_str(), who["role"].as_str()),
        (Some("alice"), Some("operator"))
    );
    let logs = gw.logs();
    assert!(
        !logs.contains("alice's long password") && !logs.contains("$argon2"),
        "{logs}"
    );

    // Signing out ends the session: the cookie no longer opens anything.
    assert_eq!(
        alice.post("logout", None).await.0,
        StatusCode::FORBIDDEN,
        "CSRF token needed"
    );
    assert_eq!(
        alice.post("logout", Some(&alice.csrf)).await.0,
        StatusCode::OK
    );
    assert_eq!(alice.get("alerts").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_filtered_searched_and_open_with_where_they_were_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok().await;
    let gw = GatewayProcess::start(dir.path(), &console_config(&receiver)).await;
    let bob = SignedIn::new(&gw, "bob", "bob's long password").await;
    let mut shell = falco_alert(
        "Terminal shell in container",
        "Critical",
        &["container", "shell"],
    );
    shell["hostname"] = json!("node-2");
    shell["output"] = json!(
        "A shell was spawned in a container (user=root shell=bash <script>alert(1)</script>)"
    );
    shell["output_fields"]["container.id"] = json!("0123456789ab");
    let batch = json!([
        falco_alert("Read sensitive file untrusted", "Warning", &["filesystem"]),
        shell,
        falco_alert("Clear Log Activities", "Notice", &["filesystem"]),
    ]);
    assert_eq!(gw.post(&batch).await.status(), StatusCode::OK);
    let all = bob
        .until("alerts", "three alerts indexed", |b| {
            b["alerts"].as_array().unwrap().len() == 3
        })
        .await;
    assert_eq!(
        rules(&all),
        [
            "Clear Log Activities",
            "Terminal shell in container",
            "Read sensitive file untrusted"
        ],
        "newest first"
    );

    for (query, want) in [
        (
            "priority=warning",
            vec![
                "Terminal shell in container",
                "Read sensitive file untrusted",
            ],
        ),
        (
            "tag=filesystem&priority=notice",
            vec!["Clear Log Activities", "Read sensitive file untrusted"],
        ),
        ("host=node-2", vec!["Terminal shell in container"]),
        (
            "container=0123456789ab",
            vec!["Terminal shell in container"],
        ),
        ("q=shell%20bash", vec!["Terminal shell in container"]),
        ("q=%22%27%29%3B--", vec![]),
        (
            "rule=Clear%20Log%20Activities",
            vec!["Clear Log Activities"],
        ),
        ("since=1h", vec![]),
        (
            "since=2026-06-12T00:00:00Z&until=2026-06-13T00:00:00Z&limit=1",
            vec!["Clear Log Activities"],
        ),
    ] {
        let (status, body) = bob.get(&format!("alerts?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert_eq!(rules(&body), want, "{query}");
    }
    let (status, body) = bob.get("alerts?priority=urgent").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("priority: unknown priority 'urgent'"),
        "{body}"
    );
    assert_eq!(
        bob.get("alerts?colour=red").await.0,
        StatusCode::BAD_REQUEST
    );

    let uuid = all["alerts"][1]["uuid"].as_str().unwrap().to_string();
    let opened = bob
        .until(&format!("alerts/{uuid}"), "both outputs sent it", |b| {
            b["deliveries"]
                .as_array()
                .is_some_and(|d| d.iter().all(|x| x["state"] == "sent"))
        })
        .await;
    assert_eq!(
        opened["alert"]["output_fields"]["container.id"],
        "0123456789ab"
    );
    assert_eq!(opened["alert"]["tags"], json!(["container", "shell"]));
    let warning = all["alerts"][2]["uuid"].as_str().unwrap();
    let opened = bob
        .until(&format!("alerts/{warning}"), "hook sent the warning", |b| {
            b["deliveries"][0]["state"] == "sent"
        })
        .await;
    assert_eq!(opened["deliveries"][1]["output"], "pager");
    assert_eq!(
        opened["deliveries"][1]["state"], "not_routed",
        "pager takes critical and above"
    );
    assert_eq!(bob.get("alerts/not-a-uuid").await.0, StatusCode::NOT_FOUND);

    let (_, overview) = bob.get("overview?hours=24").await;
    assert!(overview["overview"]["top_rules"].is_array(), "{overview}");
    let (_, outputs) = bob.get("outputs").await;
    assert_eq!(outputs["outputs"][0]["name"], "hook");
    assert_eq!(outputs["outputs"][0]["sent"], 3);
}

/// Reads server-sent events until one whose data contains `needle`.
async fn next_event_with(response: &mut reqwest::Response, needle: &str) -> String {
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let chunk = tokio::time::timeout_at(deadline.into(), response.chunk())
            .await
            .unwrap_or_else(|_| panic!("no event with {needle:?}; got {seen}"))
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if let Some(event) = seen.split("\n\n").find(|e| e.contains(needle)) {
            return event.to_string();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_alerts_arrive_on_the_live_stream_with_its_filters() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok().await;
    let gw = GatewayProcess::start(dir.path(), &console_config(&receiver)).await;
    let bob = SignedIn::new(&gw, "bob", "bob's long password").await;
    let mut stream = bob
        .client
        .get(format!("{}/ui/api/events?priority=error", gw.base))
        .header("cookie", &bob.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    gw.post(&falco_alert("Below the filter", "Notice", &[]))
        .await;
    gw.post(&falco_alert("Launch Privileged Container", "Critical", &[]))
        .await;
    let event = next_event_with(&mut stream, "Launch Privileged Container").await;
    assert!(event.contains("event: alert"), "{event}");
    assert!(!event.contains("Below the filter"));
    let id: u64 = event
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .expect("an id to resume from")
        .parse()
        .unwrap();

    // A reconnecting browser sends Last-Event-ID and gets what it missed.
    gw.post(&falco_alert("Missed while away", "Error", &[]))
        .await;
    bob.until("alerts?q=missed", "indexed", |b| {
        !b["alerts"].as_array().unwrap().is_empty()
    })
    .await;
    let mut again = bob
        .client
        .get(format!("{}/ui/api/events?priority=error", gw.base))
        .header("cookie", &bob.cookie)
        .header("last-event-id", id.to_string())
        .send()
        .await
        .unwrap();
    let event = next_event_with(&mut again, "Missed while away").await;
    assert!(!event.contains("Launch Privileged Container"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_redrives_dead_letters_a_viewer_cannot_and_who_did_it_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let refusing = Arc::new(AtomicBool::new(true));
    let flag = refusing.clone();
    let receiver = Receiver::scripted(move |_, r| {
        if r.path == "/hook" && flag.load(Ordering::SeqCst) {
            Reply::status(400)
        } else {
            Reply::status(200)
        }
    })
    .await;
    let gw = GatewayProcess::start(dir.path(), &console_config(&receiver)).await;
    let alice = SignedIn::new(&gw, "alice", "alice's long password").await;
    let bob = SignedIn::new(&gw, "bob", "bob's long password").await;
    gw.post(&falco_alert("Write below etc", "Error", &[])).await;
    let letters = bob
        .until("outputs/hook/dead-letters", "a dead letter", |b| {
            b["total"] == 1
        })
        .await;
    let uuid = letters["dead_letters"][0]["alert"]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let opened = bob
        .until(&format!("alerts/{uuid}"), "noted as dead-lettered", |b| {
            b["deliveries"][0]["state"] == "dead_lettered"
        })
        .await;
    assert!(
        opened["deliveries"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("http_400"),
        "{opened}"
    );

    let (status, body) = bob.post("outputs/hook/redrive", Some(&bob.csrf)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"].as_str().unwrap().contains("operator"));
    assert_eq!(
        alice.post("outputs/hook/redrive", None).await.0,
        StatusCode::FORBIDDEN,
        "no CSRF token"
    );
    assert_eq!(
        alice.post("outputs/hook/redrive", Some(&bob.csrf)).await.0,
        StatusCode::FORBIDDEN,
        "another session's token"
    );
    let cross_site = alice
        .client
        .post(format!("{}/ui/api/outputs/hook/redrive", gw.base))
        .header("cookie", &alice.cookie)
        .header("x-csrf-token", &alice.csrf)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        receiver
            .requests()
            .iter()
            .filter(|r| r.path == "/hook")
            .count(),
        1,
        "nothing redriven yet"
    );

    refusing.store(false, Ordering::SeqCst);
    let (status, body) = alice.post("outputs/hook/redrive", Some(&alice.csrf)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["redriven"], 1);
    let delivered = receiver.wait_for(2, Duration::from_secs(15)).await;
    let redriven = delivered.iter().rfind(|r| r.path == "/hook").unwrap();
    assert_eq!(
        redriven.json()["uuid"],
        uuid.as_str(),
        "the same alert, same uuid"
    );
    let (_, letters) = alice.get("outputs/hook/dead-letters").await;
    assert_eq!(letters["total"], 0);
    let replayed =
        std::fs::read_to_string(dir.path().join("spool/dead-letter/replayed/hook.jsonl")).unwrap();
    assert!(
        replayed.contains("\"replayed_by\":\"alice (console)\""),
        "{replayed}"
    );
    let (_, opened) = alice.get(&format!("alerts/{uuid}")).await;
    assert_eq!(opened["deliveries"][0]["state"], "redriven");
    assert_eq!(opened["deliveries"][0]["detail"], "by alice");
    assert!(
        gw.logs().contains("console redrive"),
        "logged with the user"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_index_is_rebuilt_from_the_spool_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok().await;
    let config = console_config(&receiver);
    let gw = GatewayProcess::start(dir.path(), &config).await;
    let bob = SignedIn::new(&gw, "bob", "bob's long password").await;
    let batch: Vec<Value> = (0..20)
        .map(|i| falco_alert(&format!("Rule {i}"), "Warning", &[]))
        .collect();
    gw.post(&Value::Array(batch)).await;
    bob.until("alerts", "20 indexed", |b| {
        b["alerts"].as_array().unwrap().len() == 20
    })
    .await;
    assert!(gw.terminate(Duration::from_secs(10)).await.success());
    let index = dir.path().join("spool/console/index.sqlite");
    assert!(index.exists());
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", index.display()));
    }
    let gw = GatewayProcess::start(dir.path(), &config).await;
    let bob = SignedIn::new(&gw, "bob", "bob's long password").await;
    let rebuilt = bob
        .until("alerts", "rebuilt", |b| {
            b["alerts"].as_array().unwrap().len() == 20
        })
        .await;
    assert_eq!(rules(&rebuilt)[0], "Rule 19");
    let hook = receiver
        .requests()
        .iter()
        .filter(|r| r.path == "/hook")
        .count();
    assert_eq!(hook, 20, "nothing was delivered twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_reverse_proxy_names_the_person_and_nobody_else_can() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::ok().await;
    let config = format!(
        r#"
outputs:
  - {{ name: hook, type: webhook, url: "{}" }}
ui:
  enabled: true
  users:
    - {{ name: alice, password_hash: "{}", role: operator }}
  proxy_auth: {{ header: X-Forwarded-User, trusted_proxies: [127.0.0.1] }}
"#,
        receiver.url("/hook"),
        hash_password("alice's long password"),
    );
    let gw = GatewayProcess::start(dir.path(), &config).await;
    let proxy = reqwest::Client::new();
    let stranger = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let session = |client: &reqwest::Client, user: &str| {
        client
            .get(format!("{}/ui/api/session", gw.base))
            .header("x-forwarded-user", user)
            .send()
    };
    let carol: Value = session(&proxy, "carol")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (carol["user"].as_str(), carol["role"].as_str()),
        (Some("carol"), Some("viewer"))
    );
    let refused = session(&stranger, "alice").await.unwrap();
    assert_eq!(
        refused.status(),
        StatusCode::UNAUTHORIZED,
        "the header from anyone else is ignored"
    );
    let none = proxy
        .get(format!("{}/ui/api/alerts", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        none.status(),
        StatusCode::UNAUTHORIZED,
        "no header, no session"
    );

    let alice: Value = session(&proxy, "alice")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alice["role"], "operator", "a listed user keeps their role");
    let redrive = |csrf: Option<&str>, user: &str| {
        let mut r = proxy
            .post(format!("{}/ui/api/outputs/hook/redrive", gw.base))
            .header("x-forwarded-user", user)
            .json(&json!({}));
        if let Some(t) = csrf {
            r = r.header("x-csrf-token", t);
        }
        r.send()
    };
    assert_eq!(
        redrive(None, "alice").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let csrf = alice["csrf_token"].as_str().unwrap();
    assert_eq!(
        redrive(Some(csrf), "alice").await.unwrap().status(),
        StatusCode::OK
    );
    let carol_csrf = carol["csrf_token"].as_str().unwrap();
    assert_eq!(
        redrive(Some(carol_csrf), "carol").await.unwrap().status(),
        StatusCode::FORBIDDEN,
        "a viewer"
    );
}

/// The SHA-256 of a PEM certificate's DER, as `openssl x509 -fingerprint -sha256` prints it.
fn fingerprint(pem_file: &std::path::Path) -> String {
    let pem = std::fs::read_to_string(pem_file).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut der, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for c in b64.bytes().filter(|c| *c != b'=') {
        acc = (acc << 6) | alphabet.iter().position(|a| *a == c).unwrap() as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            der.push((acc >> bits) as u8);
        }
    }
    let digest = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&der)?;
            child.wait_with_output()
        })
        .unwrap();
    let hex = String::from_utf8(digest.stdout).unwrap()[..64].to_uppercase();
    hex.as_bytes()
        .chunks(2)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_client_certificate_signs_its_person_in() {
    let dir = tempfile::tempdir().unwrap();
    let pki = peregrine_e2e::tls::Pki::create(&dir.path().join("pki"));
    let receiver = Receiver::ok().await;
    let config = |listed: &str| {
        format!(
            r#"
tls: {{ cert_file: "{}", key_file: "{}", client_ca_file: "{}" }}
outputs:
  - {{ name: hook, type: webhook, url: "{}" }}
ui:
  enabled: true
  client_certificates:
    - {{ sha256: "{listed}", name: ops-laptop, role: operator }}
"#,
            pki.server_cert.display(),
            pki.server_key.display(),
            pki.ca.display(),
            receiver.url("/hook"),
        )
    };
    let with_cert = pki.client(Some((&pki.client_cert, &pki.client_key)));
    let launch = |c| peregrine_e2e::gateway::Launch {
        tls_client: Some(c),
        ..Default::default()
    };
    let gw = GatewayProcess::launch(
        &dir.path().join("a"),
        &config(&fingerprint(&pki.client_cert)),
        launch(with_cert.clone()),
    )
    .await;
    let answer = with_cert
        .get(format!("{}/ui/api/session", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let who: Value = answer.json().await.unwrap();
    assert_eq!(
        (who["user"].as_str(), who["role"].as_str()),
        (Some("ops-laptop"), Some("operator"))
    );
    let redrive = with_cert
        .post(format!("{}/ui/api/outputs/hook/redrive", gw.base))
        .header("x-csrf-token", who["csrf_token"].as_str().unwrap())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(redrive.status(), StatusCode::OK);

    // The same CA-signed certificate, not listed: a TLS client like any other, not a person.
    let other = fingerprint(&pki.server_cert);
    let gw = GatewayProcess::launch(
        &dir.path().join("b"),
        &config(&other),
        launch(with_cert.clone()),
    )
    .await;
    let answer = with_cert
        .get(format!("{}/ui/api/session", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
}
