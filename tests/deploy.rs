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

/// deploy/kubernetes copied into a scratch folder with the example secrets files in place (the
/// real ones are the user's and git-ignored), so every overlay builds.
fn kubernetes_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        "cp",
        &[
            "-r",
            deploy("kubernetes").to_str().unwrap(),
            dir.path().to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_success("copying deploy/kubernetes", &out);
    let slack = dir.path().join("kubernetes/overlays/slack");
    std::fs::copy(slack.join("slack.env.example"), slack.join("slack.env")).unwrap();
    dir
}

/// `kubectl kustomize` of a folder of the tree, written to `built.yaml` beside it, and its
/// documents.
fn kustomize(tree: &Path, folder: &str) -> (PathBuf, Vec<serde_yaml_ng::Value>) {
    let out = run("kubectl", &["kustomize", folder], &tree.join("kubernetes"));
    assert_success(&format!("kubectl kustomize {folder}"), &out);
    let built = tree.join(format!("{}.yaml", folder.replace('/', "-")));
    std::fs::write(&built, &out.stdout).unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let docs = text
        .split("\n---\n")
        .map(|doc| serde_yaml_ng::from_str(doc).unwrap())
        .collect();
    (built, docs)
}

/// Checks a built manifest against Kubernetes' schemas (strict: unknown keys are errors) and
/// its custom resources against the Prometheus operator's CRDs.
fn validate(built: &Path) {
    let file = built.to_str().unwrap();
    assert_success(
        &format!("kubernetes-validate --strict {file}"),
        &run(
            "kubernetes-validate",
            &["--strict", "--quiet", file],
            built.parent().unwrap(),
        ),
    );
    let crds = workspace_root().join("tests/data/prometheus-operator-crd");
    let script = workspace_root().join("tests/tools/validate_crs.py");
    let out = run(
        "python3",
        &[
            script.to_str().unwrap(),
            crds.join("monitoring.coreos.com_servicemonitors.yaml")
                .to_str()
                .unwrap(),
            crds.join("monitoring.coreos.com_prometheusrules.yaml")
                .to_str()
                .unwrap(),
            "--",
            file,
        ],
        built.parent().unwrap(),
    );
    assert_success(&format!("custom resources of {file}"), &out);
}

fn find<'a>(docs: &'a [serde_yaml_ng::Value], kind: &str, name: &str) -> &'a serde_yaml_ng::Value {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

const OVERLAYS: [&str; 4] = ["slack", "prometheus-operator", "cri-o", "kafka"];

#[test]
fn the_kubernetes_base_and_every_overlay_build_and_pass_the_kubernetes_schemas() {
    let tree = kubernetes_tree();
    let (built, docs) = kustomize(tree.path(), "base");
    validate(&built);
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    for kind in [
        "Namespace",
        "ConfigMap",
        "Service",
        "StatefulSet",
        "DaemonSet",
        "PodDisruptionBudget",
        "NetworkPolicy",
    ] {
        assert!(kinds.contains(&kind), "the base has no {kind}: {kinds:?}");
    }
    for overlay in OVERLAYS {
        let (built, docs) = kustomize(tree.path(), &format!("overlays/{overlay}"));
        validate(&built);
        assert!(
            docs.iter().all(|d| d["kind"] == "Namespace"
                || d["metadata"]["namespace"].as_str() == Some("peregrine")),
            "{overlay}: every namespaced object lands in peregrine"
        );
    }
    let (_, docs) = kustomize(tree.path(), "overlays/prometheus-operator");
    for kind in ["ServiceMonitor", "PrometheusRule"] {
        find(&docs, kind, "peregrine");
    }
}

/// The validators reject what they should: a misspelt key in a DaemonSet and in a
/// ServiceMonitor both fail (so a passing run above means something).
#[test]
fn the_manifest_validators_reject_a_misspelt_key() {
    let tree = kubernetes_tree();
    let (built, _) = kustomize(tree.path(), "overlays/prometheus-operator");
    let text = std::fs::read_to_string(&built).unwrap();
    for (good, bad) in [
        ("hostPID: true", "hostPid: true"),
        ("interval: 30s", "intervall: 30s"),
    ] {
        assert!(text.contains(good), "{good}");
        let broken = built.with_file_name("broken.yaml");
        std::fs::write(&broken, text.replacen(good, bad, 1)).unwrap();
        let result = std::panic::catch_unwind(|| validate(&broken));
        assert!(result.is_err(), "{bad} passed validation");
    }
}

#[test]
fn the_sensor_daemonset_has_least_privilege_and_the_gateway_runs_as_non_root() {
    let tree = kubernetes_tree();
    let (_, docs) = kustomize(tree.path(), "base");
    let sensor = &find(&docs, "DaemonSet", "peregrine-sensor")["spec"]["template"]["spec"];
    assert_eq!(sensor["hostPID"], true);
    let container = &sensor["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["privileged"], false);
    assert_eq!(security["capabilities"]["drop"][0], "ALL");
    let mut caps: Vec<&str> = security["capabilities"]["add"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    caps.sort();
    assert_eq!(caps, ["BPF", "PERFMON", "SYS_PTRACE", "SYS_RESOURCE"]);
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/healthz");
    let env = container["env"].as_sequence().unwrap();
    let hostname = env.iter().find(|e| e["name"] == "FALCO_HOSTNAME").unwrap();
    assert_eq!(
        hostname["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );
    let mounts = container["volumeMounts"].as_sequence().unwrap();
    let etc = mounts
        .iter()
        .find(|m| m["mountPath"] == "/host/etc")
        .unwrap();
    assert_eq!(etc["readOnly"], true);

    let gateway = &find(&docs, "StatefulSet", "peregrine-gateway")["spec"];
    let pod = &gateway["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_ne!(pod["securityContext"]["runAsUser"], 0);
    let security = &pod["containers"][0]["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(
        gateway["volumeClaimTemplates"][0]["metadata"]["name"],
        "spool"
    );
}

/// The PrometheusRule carries alerts.yml's groups unchanged, so the two cannot drift apart.
#[test]
fn the_prometheus_rule_is_alerts_yml() {
    let alerts: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap())
            .unwrap();
    let rule: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(deploy(
            "kubernetes/overlays/prometheus-operator/prometheusrule.yaml",
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(rule["spec"]["groups"], alerts["groups"]);
}

/// Every gateway.yaml the manifests mount is a valid configuration, checked by the gateway
/// itself (`--check-config`), with the overlay's secrets from its example file.
#[test]
fn every_gateway_config_the_manifests_mount_is_valid() {
    let tree = kubernetes_tree();
    let root = tree.path().join("kubernetes");
    let slack_url = std::fs::read_to_string(root.join("overlays/slack/slack.env"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("SLACK_WEBHOOK_URL="))
        .unwrap()
        .to_string();
    for folder in ["base", "overlays/slack", "overlays/kafka"] {
        let config = root.join(folder).join("gateway.yaml");
        let out = Command::new(peregrine_e2e::bin("peregrine-gateway"))
            .args(["--check-config", "--config"])
            .arg(&config)
            .env("SLACK_WEBHOOK_URL", &slack_url)
            .output()
            .unwrap();
        assert_success(&format!("--check-config {folder}/gateway.yaml"), &out);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !text.contains("XXXXXXXX"),
            "the webhook URL is printed: {text}"
        );
    }
}

/// A unit file with its binaries pointed at this build (verify checks they are executable).
fn unit_for_this_build(dir: &Path, unit: &str) -> PathBuf {
    let text = std::fs::read_to_string(deploy(&format!("systemd/{unit}"))).unwrap();
    let bin = peregrine_e2e::bin("peregrine-gateway");
    let built = format!("{}/", bin.parent().unwrap().display());
    let path = dir.join(unit);
    std::fs::write(&path, text.replace("/usr/local/bin/", &built)).unwrap();
    path
}

/// `systemd-analyze verify` accepts both units without a warning (an unknown or misspelt key
/// is only a warning to it, so stderr must be empty), and `systemd-analyze security` rates
/// their exposure: the gateway, with no capabilities at all, must stay "OK" below 2; the
/// sensor, which holds four capabilities and sees every process, below 5.
#[test]
fn the_systemd_units_verify_cleanly_and_are_hardened() {
    let dir = tempfile::tempdir().unwrap();
    for (unit, max_exposure) in [
        ("peregrine-gateway.service", 2.0),
        ("peregrine-sensor.service", 5.0),
    ] {
        let path = unit_for_this_build(dir.path(), unit);
        let file = path.to_str().unwrap();
        let out = run("systemd-analyze", &["verify", file], dir.path());
        assert_success(&format!("systemd-analyze verify {unit}"), &out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.trim().is_empty(), "{unit}: {stderr}");
        let out = run(
            "systemd-analyze",
            &["security", "--offline=yes", "--no-pager", file],
            dir.path(),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let exposure: f64 = text
            .lines()
            .find_map(|l| {
                l.split_once("Overall exposure level for ")?
                    .1
                    .split_once(": ")
            })
            .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no exposure level for {unit}:\n{text}"));
        assert!(exposure < max_exposure, "{unit}: exposure {exposure}");
    }
}

/// The Dockerfile builds two images: the gateway as a numeric non-root user, each with a
/// HEALTHCHECK that runs its own binary (there is no shell), dependencies kept in cache mounts;
/// the compose file builds those targets and gives the sensor capabilities, not privileged.
/// (No Docker engine runs here: this checks the files, `make check-compose` their syntax.)
#[test]
fn the_images_are_separate_non_root_and_health_checked() {
    let dockerfile = std::fs::read_to_string(workspace_root().join("Dockerfile")).unwrap();
    let stage = |name: &str| {
        let start = dockerfile
            .find(&format!(" AS {name}\n"))
            .unwrap_or_else(|| panic!("no stage {name}"));
        let rest = &dockerfile[start..];
        rest[1..]
            .find("\nFROM ")
            .map_or(rest, |end| &rest[..end + 1])
    };
    let gateway = stage("gateway");
    assert!(gateway.contains("\nUSER 65532:65532\n"), "{gateway}");
    assert!(gateway.contains("peregrine-gateway\", \"healthcheck\"]"));
    assert!(!gateway.contains("peregrine-sensor"));
    let sensor = stage("sensor");
    assert!(sensor.contains("peregrine-sensor\", \"healthcheck\""));
    assert!(!sensor.contains("peregrine-gateway"));
    assert!(dockerfile.contains("--mount=type=cache,target=/src/target"));
    for copied in dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("COPY config/"))
    {
        let source = copied.split_whitespace().next().unwrap();
        assert!(
            workspace_root().join("config").join(source).exists(),
            "{source}"
        );
    }
    let compose = std::fs::read_to_string(workspace_root().join("docker-compose.yml")).unwrap();
    let compose: serde_yaml_ng::Value = serde_yaml_ng::from_str(&compose).unwrap();
    let services = &compose["services"];
    assert_eq!(services["gateway"]["build"]["target"], "gateway");
    assert_eq!(services["sensor"]["build"]["target"], "sensor");
    assert_eq!(services["sensor"]["privileged"], serde_yaml_ng::Value::Null);
    assert_eq!(
        services["sensor"]["cap_add"],
        serde_yaml_ng::from_str::<serde_yaml_ng::Value>("[BPF, PERFMON, SYS_RESOURCE, SYS_PTRACE]")
            .unwrap()
    );
    for service in ["gateway", "sensor"] {
        assert!(
            services[service]["healthcheck"]["test"].is_sequence(),
            "{service}"
        );
    }
    let grafana = services["grafana"]["volumes"].as_sequence().unwrap();
    assert!(grafana.iter().any(|v| v
        .as_str()
        .unwrap()
        .contains("deploy/grafana/peregrine.json")));
}
