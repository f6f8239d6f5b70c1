//! The files under `deploy/` checked by the tools that will read them: Prometheus's alert rules
//! by `promtool test rules`, the Grafana dashboard's queries by a real Prometheus scraping a
//! live gateway and sensor, the Kubernetes manifests against the Kubernetes schemas, the
//! systemd units by `systemd-analyze verify`, and the compose file by docker-compose.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use peregrine_e2e::gateway::GatewayProcess;
use peregrine_e2e::receiver::{Receiver, Reply};
use peregrine_e2e::sensor::{open_rule, open_until, SensorProcess};
use peregrine_e2e::{falco_alert, workspace_root};

fn deploy(path: &str) -> PathBuf {
    workspace_root().join("deploy").join(path)
}

/// Runs a tool to its end; a tool that is not installed fails with the hint to install it.
fn run(program: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} did not run ({e}): `make test` installs it"))
}

fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Names following `key` on lines of a YAML file (`- alert: X`, `alertname: X`).
fn values_of(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().trim_start_matches("- ").strip_prefix(key))
        .map(|v| v.trim().to_string())
        .collect()
}

#[test]
fn every_alert_rule_is_unit_tested_and_the_tests_pass() {
    let dir = deploy("prometheus");
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("alerts_test.yml")).unwrap();
    let alerts = values_of(&rules, "alert:");
    assert!(alerts.len() >= 9, "{alerts:?}");
    let tested = values_of(&tests, "alertname:");
    for alert in &alerts {
        assert!(tested.contains(alert), "{alert} has no promtool test");
    }
    assert_success(
        "promtool check rules",
        &run("promtool", &["check", "rules", "alerts.yml"], &dir),
    );
    assert_success(
        "promtool test rules",
        &run("promtool", &["test", "rules", "alerts_test.yml"], &dir),
    );
}

/// A Prometheus server from Debian's package on a free loopback port, scraping `targets` (job
/// name, address) every second with the alert rules loaded.
struct Prometheus {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(targets: &[(&str, String)]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let mut config = format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\nrule_files: [\"{}\"]\nscrape_configs:\n",
            deploy("prometheus/alerts.yml").display()
        );
        for (job, addr) in targets {
            config += &format!(
                "  - job_name: {job}\n    static_configs: [{{ targets: [\"{addr}\"] }}]\n"
            );
        }
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let port = peregrine_e2e::receiver::unused_port();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("prometheus.log")).unwrap(),
            ))
            .spawn()
            .expect("prometheus (Debian's 'prometheus' package; make test installs it)");
        Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// The query's result vector; `Err` with Prometheus's message when it does not parse.
    async fn query(&self, expr: &str) -> Result<Vec<serde_json::Value>, String> {
        let answer = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", expr)])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: serde_json::Value = answer.json().await.map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("{}: {}", body["errorType"], body["error"]));
        }
        Ok(body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The queries of `exprs` that return no series now, each with why (no data, or
    /// Prometheus's parse error).
    async fn without_data(&self, exprs: &[String]) -> Vec<(String, String)> {
        let mut missing = Vec::new();
        for expr in exprs {
            match self.query(expr).await {
                Ok(result) if !result.is_empty() => {}
                Ok(_) => missing.push((expr.clone(), "no data".to_string())),
                Err(e) => missing.push((expr.clone(), e)),
            }
        }
        missing
    }

    /// Every loaded alerting rule's name and health.
    async fn rules(&self) -> Vec<(String, String)> {
        let body: serde_json::Value = reqwest::get(format!("{}/api/v1/rules", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let groups = body["data"]["groups"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        groups
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .map(|r| {
                (
                    r["name"].as_str().unwrap().to_string(),
                    r["health"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every query of the dashboard (panel targets, and the variables' `label_values` as the
/// series they list), with Grafana's variables given what "All" and the default range give.
fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string(deploy("grafana/peregrine.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let concrete = |expr: &str| {
        expr.replace("$__rate_interval", "1m")
            .replace("$__range", "5m")
            .replace("$instance", ".*")
            .replace("$output", ".*")
    };
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(concrete(target["expr"].as_str().unwrap()));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["query"]["query"].as_str() {
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')'))
                .expect("label_values(metric, label)");
            let (metric, label) = inner.rsplit_once(',').unwrap();
            exprs.push(concrete(&format!("count by ({}) ({metric})", label.trim())));
        }
    }
    exprs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: the sensor loads BPF programs (make test runs it as root)"]
async fn every_dashboard_query_returns_data_from_a_live_gateway_and_sensor() {
    let tmp = tempfile::tempdir().unwrap();
    let hook = Receiver::ok().await;
    let refusing = Receiver::scripted(|_, _| Reply::status(400)).await;
    let config = format!(
        "outputs:\n  - {{ name: hook, type: webhook, url: \"{}\" }}\n  - {{ name: refusing, type: webhook, url: \"{}\" }}\n",
        hook.url("/"),
        refusing.url("/")
    );
    let gw = GatewayProcess::start(&tmp.path().join("gw"), &config).await;
    let canary = tmp.path().join("canary");
    std::fs::write(&canary, "x").unwrap();
    let rules = tmp.path().join("rules.yaml");
    std::fs::write(&rules, open_rule("Canary opened", &canary)).unwrap();
    let sensor_addr = format!("127.0.0.1:{}", peregrine_e2e::receiver::unused_port());
    let gateway_url = format!("{}/", gw.base);
    let args = [
        "--rules",
        rules.to_str().unwrap(),
        "--gateway",
        &gateway_url,
        "--metrics-listen",
        &sensor_addr,
    ];
    let _sensor = tokio::task::block_in_place(|| SensorProcess::start(tmp.path(), &args, &[]));
    let prometheus = Prometheus::start(&[
        ("peregrine-gateway", gw.addr()),
        ("peregrine-sensor", sensor_addr),
    ]);
    // Traffic for every panel: posted alerts, a malformed body, the sensor's own alert, and
    // the refusing output's dead letters; repeated so rates see an increase between scrapes.
    let exprs = dashboard_queries();
    assert!(exprs.len() >= 20, "{} queries", exprs.len());
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut missing = prometheus.without_data(&exprs).await;
    while !missing.is_empty() && Instant::now() < deadline {
        gw.post(&falco_alert("Terminal shell in container", "Notice", &[]))
            .await;
        let _ = reqwest::Client::new()
            .post(format!("{}/", gw.base))
            .body("{not json")
            .send()
            .await;
        tokio::task::block_in_place(|| open_until(&canary, Duration::from_millis(300), || false));
        let exprs: Vec<String> = missing.into_iter().map(|(e, _)| e).collect();
        missing = prometheus.without_data(&exprs).await;
    }
    let report: Vec<String> = missing
        .iter()
        .map(|(e, why)| format!("{e}: {why}"))
        .collect();
    assert!(
        report.is_empty(),
        "dashboard queries without data after 90 s:\n{}",
        report.join("\n")
    );
    let rules = prometheus.rules().await;
    assert_eq!(rules.len(), 9, "{rules:?}");
    assert!(rules.iter().all(|(_, health)| health != "err"), "{rules:?}");
}
