//! The console in a real browser: Debian's headless Chromium driven over WebDriver
//! (`chromium-driver`) against a gateway serving it over TLS. A person is refused without
//! signing in, signs in, sees an alert posted a moment before appear without reloading, filters
//! and searches, opens an alert, looks at the overview, is refused a redrive as a viewer and
//! redrives as an operator, and the alert is delivered. Screenshots of each page are saved under
//! `target/console-screenshots/` (described in docs/console.md).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use peregrine_e2e::gateway::{hash_password, GatewayProcess, Launch};
use peregrine_e2e::receiver::{unused_port, Receiver, Reply};
use peregrine_e2e::tls::Pki;
use peregrine_e2e::{falco_alert, workspace_root};
use serde_json::json;

/// chromedriver on a free loopback port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        let port = unused_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (scripts/setup.sh test installs chromium-driver)");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(format!("{url}/status")).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Driver { child, url }
    }

    async fn browser(&self, profile: &std::path::Path) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert("acceptInsecureCerts".into(), json!(true));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", format!("--user-data-dir={}", profile.display())],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The page, one step at a time, with screenshots.
struct Page {
    browser: Client,
    base: String,
    shots: PathBuf,
}

impl Page {
    async fn text(&self, css: &str) -> String {
        match self.browser.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits until the text of `css` satisfies `check` (the page updates on its own).
    async fn until_text(&self, css: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.text(css).await;
            if check(&text) {
                return text;
            }
            assert!(Instant::now() < deadline, "{what}: {css} shows {text:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn fill(&self, css: &str, value: &str) {
        let field = self.browser.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.browser
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    async fn shot(&self, name: &str) {
        eprintln!("{:?} screenshot {name}", std::time::SystemTime::now());
        let png = self.browser.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    async fn sign_in(&self, name: &str, password: &str) {
        self.browser
            .goto(&format!("{}/ui/", self.base))
            .await
            .unwrap();
        self.until_text("#page-login h1", "the sign-in page", |t| t == "Sign in")
            .await;
        self.fill("#login-name", name).await;
        self.fill("#login-password", password).await;
        self.click("#login-submit").await;
        self.until_text("#who", "signed in", |t| t.starts_with(name))
            .await;
    }

    async fn sign_out(&self) {
        self.click("#logout").await;
        self.until_text("#page-login h1", "signed out", |t| t == "Sign in")
            .await;
    }

    /// A POST the page's own script makes, with its session's CSRF token: the status.
    async fn redrive_from_script(&self, output: &str) -> u64 {
        let script = format!(
            "const done = arguments[0]; fetch('api/outputs/{output}/redrive', {{method: 'POST', \
             headers: {{'content-type': 'application/json', 'x-csrf-token': state.csrf}}, body: '{{}}'}}) \
             .then(r => done(r.status));"
        );
        self.browser
            .execute_async(&script, vec![])
            .await
            .unwrap()
            .as_u64()
            .unwrap()
    }
}

/// Without signing in the API refuses and the page asks for a sign-in; admin/admin fails.
async fn refused_without_signing_in(page: &Page, gw: &GatewayProcess) {
    // Without signing in, the API says so and the page asks for a sign-in.
    page.browser
        .goto(&format!("{}/ui/api/alerts", gw.base))
        .await
        .unwrap();
    page.until_text("body", "refused", |t| t.contains("sign in first"))
        .await;
    page.browser
        .goto(&format!("{}/ui/", gw.base))
        .await
        .unwrap();
    page.until_text("#page-login h1", "the sign-in page", |t| t == "Sign in")
        .await;
    page.fill("#login-name", "admin").await;
    page.fill("#login-password", "admin").await;
    page.click("#login-submit").await;
    page.until_text("#status", "refused", |t| {
        t.contains("wrong user name or password")
    })
    .await;
    page.shot("1-sign-in-refused").await;
}

/// A viewer sees alerts posted after the page loaded, then filters and searches.
async fn alerts_arrive_live_and_filter(page: &Page, gw: &GatewayProcess) {
    page.sign_in("bob", "bob's long password").await;
    page.until_text("#status", "an empty list", |t| {
        t.contains("No alerts match")
    })
    .await;
    page.until_text("#live", "the live stream", |_| true).await;
    // An alert posted now appears without reloading, with its text shown as text.
    let mut shell = falco_alert(
        "Terminal shell in container",
        "Critical",
        &["container", "shell"],
    );
    shell["output"] = json!(
        "A shell was spawned in a container <img src=x onerror=alert(1)> (user=root shell=bash)"
    );
    assert!(gw.post(&shell).await.status().is_success());
    assert!(gw
        .post(&falco_alert(
            "Read sensitive file untrusted",
            "Warning",
            &["filesystem"]
        ))
        .await
        .status()
        .is_success());
    let rows = page
        .until_text("#alert-rows", "both alerts live", |t| {
            t.contains("Terminal shell") && t.contains("Read sensitive file")
        })
        .await;
    assert!(
        rows.contains("<img src=x onerror=alert(1)>"),
        "markup in alerts is shown as text: {rows}"
    );
    page.shot("2-alerts-live").await;

    // Filters and search.
    page.browser
        .find(Locator::Css("#f-priority"))
        .await
        .unwrap()
        .select_by_value("Critical")
        .await
        .unwrap();
    page.fill("#f-q", "shell bash").await;
    page.click("#f-apply").await;
    let filtered = page
        .until_text("#alert-rows", "filtered", |t| {
            !t.contains("Read sensitive file")
        })
        .await;
    assert!(
        filtered.contains("Terminal shell in container"),
        "{filtered}"
    );
    page.shot("3-alerts-filtered").await;
}

/// One alert with its fields and deliveries; the overview's chart and top lists.
async fn an_alert_and_the_overview(page: &Page, gw: &GatewayProcess) {
    // One alert: its fields and where it went.
    page.click("#alert-rows a").await;
    page.until_text("#a-deliveries", "delivered to hook", |t| {
        t.contains("hook") && t.contains("sent")
    })
    .await;
    let fields = page.text("#a-fields").await;
    assert!(
        fields.contains("proc.cmdline") && fields.contains("cat /etc/shadow"),
        "{fields}"
    );
    page.shot("4-alert").await;

    page.browser
        .goto(&format!("{}/ui/#/overview", gw.base))
        .await
        .unwrap();
    page.until_text("#o-rules", "top rules", |t| {
        t.contains("Terminal shell in container")
    })
    .await;
    let bars = page
        .browser
        .find_all(Locator::Css("#o-chart rect"))
        .await
        .unwrap();
    assert!(!bars.is_empty(), "the chart has bars");
    page.shot("5-overview").await;
}

/// A dead letter: the viewer sees it but has no redrive, and the server refuses one.
async fn a_viewer_cannot_redrive(page: &Page, gw: &GatewayProcess) {
    // A dead letter: the viewer sees it but cannot redrive it.
    gw.post(&falco_alert("Refused by the hook", "Error", &[]))
        .await;
    page.browser
        .goto(&format!("{}/ui/#/outputs", gw.base))
        .await
        .unwrap();
    page.until_text("#out-rows", "one dead letter", |t| t.contains("http_400 1"))
        .await;
    page.click("#out-rows button").await;
    page.until_text("#dl-title", "the dead letters", |t| t.contains("(1)"))
        .await;
    let redrive_shown = page
        .browser
        .find(Locator::Css("#redrive"))
        .await
        .unwrap()
        .is_displayed()
        .await
        .unwrap();
    assert!(!redrive_shown, "no redrive button for a viewer");
    assert_eq!(
        page.redrive_from_script("hook").await,
        403,
        "and the server refuses it"
    );
    page.shot("6-outputs-viewer").await;
    page.sign_out().await;
}

/// The operator redrives after confirming, and the alert is delivered.
async fn an_operator_redrives(
    page: &Page,
    gw: &GatewayProcess,
    receiver: &Receiver,
    refusing: &AtomicBool,
) {
    // The operator redrives it, after saying yes, and it is delivered.
    refusing.store(false, Ordering::SeqCst);
    page.sign_in("alice", "alice's long password").await;
    page.browser
        .goto(&format!("{}/ui/#/outputs", gw.base))
        .await
        .unwrap();
    page.until_text("#out-rows", "the outputs", |t| t.contains("hook"))
        .await;
    page.click("#out-rows button").await;
    page.until_text("#dl-title", "the dead letters", |t| t.contains("(1)"))
        .await;
    page.click("#redrive").await;
    page.browser.accept_alert().await.unwrap();
    page.until_text("#status", "redriven", |t| {
        t.contains("Redrove 1 alert(s) to hook")
    })
    .await;
    let delivered = receiver.wait_for(4, Duration::from_secs(15)).await;
    assert!(String::from_utf8_lossy(&delivered[3].body).contains("Refused by the hook"));
    page.until_text("#dl-title", "no dead letters left", |t| t.contains("(0)"))
        .await;
    page.shot("7-outputs-redriven").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_uses_the_console_in_a_real_browser() {
    eprintln!("{:?} start", std::time::SystemTime::now());
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(&dir.path().join("pki"));
    eprintln!("{:?} pki", std::time::SystemTime::now());
    let refusing = Arc::new(AtomicBool::new(true));
    let flag = refusing.clone();
    let receiver = Receiver::scripted(move |_, r| {
        let refused = String::from_utf8_lossy(&r.body).contains("Refused by the hook");
        Reply::status(if refused && flag.load(Ordering::SeqCst) {
            400
        } else {
            200
        })
    })
    .await;
    eprintln!("{:?} receiver", std::time::SystemTime::now());
    let config = format!(
        r#"
tls: {{ cert_file: "{}", key_file: "{}" }}
outputs:
  - {{ name: hook, type: webhook, url: "{}", retry: {{ max_attempts: 1 }} }}
ui:
  enabled: true
  users:
    - {{ name: alice, password_hash: "{}", role: operator }}
    - {{ name: bob, password_hash: "{}", role: viewer }}
"#,
        pki.server_cert.display(),
        pki.server_key.display(),
        receiver.url("/hook"),
        hash_password("alice's long password"),
        hash_password("bob's long password"),
    );
    eprintln!("{:?} config", std::time::SystemTime::now());
    let launch = Launch {
        tls_client: Some(pki.client(None)),
        ..Launch::default()
    };
    let gw = GatewayProcess::launch(&dir.path().join("gw"), &config, launch).await;
    eprintln!("{:?} gateway", std::time::SystemTime::now());
    let driver = Driver::start().await;
    eprintln!("{:?} driver", std::time::SystemTime::now());
    let shots = workspace_root().join("target/console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let page = Page {
        browser: driver.browser(&dir.path().join("profile")).await,
        base: gw.base.clone(),
        shots,
    };

    eprintln!("{:?} browser", std::time::SystemTime::now());
    refused_without_signing_in(&page, &gw).await;
    alerts_arrive_live_and_filter(&page, &gw).await;
    an_alert_and_the_overview(&page, &gw).await;
    a_viewer_cannot_redrive(&page, &gw).await;
    an_operator_redrives(&page, &gw, &receiver, &refusing).await;

    // On a phone's screen.
    page.browser.set_window_size(390, 844).await.unwrap();
    page.browser
        .goto(&format!("{}/ui/#/alerts", gw.base))
        .await
        .unwrap();
    page.until_text("#alert-rows", "alerts on a phone", |t| {
        t.contains("Refused by the hook")
    })
    .await;
    page.shot("8-alerts-phone").await;

    page.browser.close().await.unwrap();
}
