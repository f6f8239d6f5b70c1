//! The sensor on the real kernel, sending to the real gateway over mutual TLS, and reloading
//! its rules. Root only (the sensor loads BPF programs): `make test` runs these as root.

use std::time::Duration;

use peregrine_e2e::gateway::{GatewayProcess, Launch};
use peregrine_e2e::receiver::Receiver;
use peregrine_e2e::sensor::{open_rule, open_until, SensorProcess};
use peregrine_e2e::tls::Pki;

const TOKEN: &str = "s3nsor-t0ken-not-for-logs";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: the sensor loads BPF programs (make test runs it as root)"]
async fn the_sensor_sends_alerts_over_mutual_tls_with_a_token() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::create(&tmp.path().join("pki"));
    let hook = Receiver::ok().await;
    let config = format!(
        "auth: {{ bearer_token: \"{TOKEN}\" }}\ntls: {{ cert_file: \"{}\", key_file: \"{}\", client_ca_file: \"{}\" }}\noutputs:\n  - {{ name: hook, type: webhook, url: \"{}\" }}\n",
        pki.server_cert.display(),
        pki.server_key.display(),
        pki.ca.display(),
        hook.url("/")
    );
    let launch = Launch {
        tls_client: Some(pki.client(Some((&pki.client_cert, &pki.client_key)))),
        ..Launch::default()
    };
    let gw = GatewayProcess::launch(&tmp.path().join("gw"), &config, launch).await;

    let canary = tmp.path().join("canary");
    std::fs::write(&canary, "x").unwrap();
    let rules = tmp.path().join("rules.yaml");
    std::fs::write(&rules, open_rule("Canary opened", &canary)).unwrap();
    let (ca, cert, key) = (
        pki.ca.display().to_string(),
        pki.client_cert.display().to_string(),
        pki.client_key.display().to_string(),
    );
    let args = [
        "--rules",
        rules.to_str().unwrap(),
        "--gateway",
        &format!("{}/", gw.base),
        "--gateway-ca",
        &ca,
        "--gateway-cert",
        &cert,
        "--gateway-key",
        &key,
        "--gateway-header",
        "X-Sensor: node-7",
    ];
    let sensor = tokio::task::block_in_place(|| {
        SensorProcess::start(tmp.path(), &args, &[("PEREGRINE_GATEWAY_TOKEN", TOKEN)])
    });
    let delivered = tokio::task::block_in_place(|| {
        open_until(&canary, Duration::from_secs(30), || {
            !hook.requests().is_empty()
        })
    });
    assert!(delivered, "no alert arrived:\n{}", sensor.logs());
    let alert: serde_json::Value = serde_json::from_slice(&hook.requests()[0].body).unwrap();
    assert_eq!(alert["rule"], "Canary opened");
    assert!(alert["uuid"].as_str().is_some_and(|u| !u.is_empty()));
    let rejected = gw
        .metric("peregrine_alerts_rejected_total{reason=\"unauthorized\"}")
        .await;
    assert_eq!(rejected, 0.0);
    assert!(!sensor.logs().contains(TOKEN) && !gw.logs().contains(TOKEN));
}

#[test]
#[ignore = "needs root: the sensor loads BPF programs (make test runs it as root)"]
fn the_sensor_picks_up_changed_rules_and_keeps_them_when_a_file_breaks() {
    let tmp = tempfile::tempdir().unwrap();
    let (first, second) = (tmp.path().join("first"), tmp.path().join("second"));
    std::fs::write(&first, "x").unwrap();
    std::fs::write(&second, "x").unwrap();
    let rules = tmp.path().join("rules.yaml");
    std::fs::write(&rules, open_rule("First opened", &first)).unwrap();
    let mut sensor = SensorProcess::start(
        tmp.path(),
        &[
            "--stdout",
            "--watch-rules",
            "--rules",
            rules.to_str().unwrap(),
        ],
        &[],
    );
    let fired =
        |sensor: &SensorProcess, rule: &str| sensor.alerts().iter().any(|a| a["rule"] == rule);
    assert!(open_until(&first, Duration::from_secs(20), || fired(
        &sensor,
        "First opened"
    )));

    // The file changes: the new rule (on a path the kernel-side filter did not pass before)
    // fires without a restart.
    std::fs::write(&rules, open_rule("Second opened", &second)).unwrap();
    sensor.wait_log("rules reloaded", Duration::from_secs(10));
    assert!(open_until(&second, Duration::from_secs(20), || fired(
        &sensor,
        "Second opened"
    )));

    // A broken file: the error says where, and the running rules stay.
    std::fs::write(
        &rules,
        "- rule: Broken\n  desc: d\n  condition: evt.type = open and (\n  output: o\n  priority: WARNING\n",
    )
    .unwrap();
    sensor.wait_log("the running rules are kept", Duration::from_secs(10));
    assert!(
        sensor.logs().contains(&format!("{}:3:", rules.display())),
        "{}",
        sensor.logs()
    );
    let before = sensor.alerts().len();
    assert!(open_until(&second, Duration::from_secs(20), || {
        sensor.alerts().len() > before
    }));

    // SIGHUP reloads too (here the fixed file).
    std::fs::write(&rules, open_rule("First again", &first)).unwrap();
    sensor.signal(libc::SIGHUP);
    assert!(open_until(&first, Duration::from_secs(20), || fired(
        &sensor,
        "First again"
    )));
}
