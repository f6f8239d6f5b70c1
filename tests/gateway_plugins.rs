//! Exec plugins through the real gateway: the example ticket plugin against a local ticket
//! service, a plugin's stderr in the gateway's log, its secret nowhere else, and the test kit.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use peregrine_e2e::gateway::GatewayProcess;
use peregrine_e2e::receiver::{Receiver, Reply};
use peregrine_e2e::{bin, falco_alert, workspace_root};

const TOKEN: &str = "tk-SECRET-4711";

fn example() -> PathBuf {
    workspace_root().join("plugins/examples/http_ticket.py")
}

fn testkit() -> PathBuf {
    workspace_root().join("plugins/testkit.py")
}

/// A one-line plugin that says hello on stderr and answers every alert `ok`.
const HELLO: &str = "import sys, json\nprint('hello from the plugin', file=sys.stderr, flush=True)\nfor l in sys.stdin:\n    b = json.loads(l)\n    print(json.dumps({'batch': b['batch'], 'results': [{'status': 'ok'} for _ in b['alerts']]}), flush=True)\n";

/// Dies at its first batch (once: it leaves a marker file, its first argument), then answers `ok`.
const CRASH_ONCE: &str = "import sys, os, json\nif not os.path.exists(sys.argv[1]):\n    sys.stdin.readline()\n    open(sys.argv[1], 'w').close()\n    sys.exit(1)\nfor l in sys.stdin:\n    b = json.loads(l)\n    print(json.dumps({'batch': b['batch'], 'results': [{'status': 'ok'} for _ in b['alerts']]}), flush=True)\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_plugin_files_tickets_and_its_answers_drive_retries_and_dead_letters() {
    // The ticket service: 400 for one rule, one 429 with Retry-After first for another.
    let mut busy_answered = false;
    let tickets = Receiver::scripted(move |_, r| {
        let title = r.json()["title"].as_str().unwrap_or_default().to_string();
        if title.ends_with("Bad") {
            Reply::status(400)
        } else if title.ends_with("Busy") && !busy_answered {
            busy_answered = true;
            Reply::status(429).with_header("retry-after", "1")
        } else {
            Reply::status(201)
        }
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        r#"outputs:
  - name: tickets
    type: exec
    command: ["{}", "--project", "SEC"]
    env: {{ TICKET_URL: "{}", TICKET_TOKEN: "${{TICKET_TOKEN}}" }}
    max_alerts_per_batch: 10
    timeout: 10s
    retry: {{ max_attempts: 5, initial_backoff: 50ms, max_backoff: 200ms }}
  - name: hello
    type: exec
    command: ["python3", "-c", {}]
  - name: flaky
    type: exec
    command: ["python3", "-c", {}, "{}"]
    retry: {{ initial_backoff: 20ms, max_backoff: 100ms }}
"#,
        example().display(),
        tickets.url("/tickets"),
        serde_json::to_string(HELLO).unwrap(),
        serde_json::to_string(CRASH_ONCE).unwrap(),
        tmp.path().join("crashed").display()
    );
    let gw = GatewayProcess::start_with_env(tmp.path(), &config, &[("TICKET_TOKEN", TOKEN)]).await;
    for rule in ["Good", "Bad", "Busy"] {
        assert_eq!(
            gw.post(&falco_alert(rule, "Warning", &[])).await.status(),
            200
        );
    }
    // Good once, Bad once (400), Busy twice (429, then 201).
    let got = tickets.wait_for(4, Duration::from_secs(30)).await;
    for r in &got {
        assert_eq!(r.headers["authorization"], format!("Bearer {TOKEN}"));
        assert_eq!(r.json()["project"], "SEC");
        assert!(r.json()["external_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()));
    }
    let sent = r#"peregrine_output_sent_total{output="tickets",type="exec"}"#;
    gw.wait_metric(sent, 2.0, Duration::from_secs(30)).await;
    let dead = r#"peregrine_output_dead_lettered_total{output="tickets",type="exec"}"#;
    gw.wait_metric(dead, 1.0, Duration::from_secs(10)).await;
    let letters =
        std::fs::read_to_string(tmp.path().join("spool/dead-letter/tickets.jsonl")).unwrap();
    let letter: serde_json::Value = serde_json::from_str(letters.lines().next().unwrap()).unwrap();
    assert_eq!(letter["alert"]["rule"], "Bad");
    assert_eq!(
        letter["reason"], "the plugin failed it: the ticket service answered 400",
        "{letter}"
    );
    assert_eq!(
        gw.metric(r#"peregrine_output_paused{output="tickets",type="exec"}"#)
            .await,
        0.0
    );

    // The other plugin's stderr is in the gateway's log, under its output's name.
    gw.wait_metric(
        r#"peregrine_output_sent_total{output="hello",type="exec"}"#,
        3.0,
        Duration::from_secs(30),
    )
    .await;
    gw.wait_log("hello from the plugin", Duration::from_secs(10))
        .await;
    let line = gw
        .logs()
        .lines()
        .find(|l| l.contains("hello from the plugin"))
        .unwrap()
        .to_string();
    assert!(line.contains("hello"), "{line}");
    assert!(line.contains("output=hello"), "{line}");

    // The plugin that died once was started again, counted, and delivered every alert.
    gw.wait_metric(
        r#"peregrine_output_sent_total{output="flaky",type="exec"}"#,
        3.0,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        gw.metric(r#"peregrine_output_plugin_restarts_total{output="flaky",type="exec"}"#)
            .await,
        1.0
    );
    assert_eq!(
        gw.metric(r#"peregrine_output_plugin_restarts_total{output="hello",type="exec"}"#)
            .await,
        0.0
    );

    // The token reached the plugin (the service saw it) and nothing else.
    let everything = format!("{}\n{}\n{}", gw.logs(), gw.metrics().await, letters);
    assert!(
        !everything.contains(TOKEN),
        "the plugin's secret leaked:\n{everything}"
    );
    let check = Command::new(bin("peregrine-gateway"))
        .args(["--check-config", "--config"])
        .arg(tmp.path().join("gateway.yaml"))
        .env("TICKET_TOKEN", TOKEN)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{printed}");
    assert!(
        printed.contains("output tickets (exec) -> plugin"),
        "{printed}"
    );
    assert!(
        printed.contains("env PATH, TICKET_TOKEN, TICKET_URL"),
        "{printed}"
    );
    assert!(!printed.contains(TOKEN), "{printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_kit_passes_the_example_and_fails_a_broken_plugin() {
    let tickets = Receiver::scripted(|_, _| Reply::status(201)).await;
    let kit = |args: &[&str]| {
        Command::new(testkit())
            .args(args)
            .output()
            .expect("python3 runs the test kit")
    };
    let url = format!("TICKET_URL={}", tickets.url("/t"));
    let example = example().display().to_string();
    let good = kit(&["--env", &url, "--env", "TICKET_TOKEN=x", "--", &example]);
    let report = String::from_utf8_lossy(&good.stdout);
    assert!(good.status.success(), "{report}");
    assert!(report.contains("5 of 5 checks passed"), "{report}");
    assert_eq!(tickets.requests().len(), 7, "one ticket per canned alert");

    let tmp = tempfile::tempdir().unwrap();
    let broken = tmp.path().join("broken.sh");
    std::fs::write(&broken, "#!/bin/sh\nread line\necho hello\nexec sleep 30\n").unwrap();
    std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let bad = kit(&["--timeout", "2", "--", broken.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{report}");
    assert!(report.contains("FAIL one alert: not JSON"), "{report}");
    assert!(
        report.contains("FAIL the plugin did not exit within 5 s"),
        "{report}"
    );
}

/// The README's receiver code (its `python` block) accepts what the gateway signs, and refuses
/// the same body with another secret or one byte changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_verifies_with_the_readmes_receiver_code() {
    let hook = Receiver::ok().await;
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "outputs:\n  - name: signed\n    type: webhook\n    url: \"{}\"\n    sign: {{ secret: \"${{HOOK_SECRET}}\" }}\n",
        hook.url("/hook")
    );
    let gw =
        GatewayProcess::start_with_env(tmp.path(), &config, &[("HOOK_SECRET", "whsec-42")]).await;
    assert_eq!(
        gw.post(&falco_alert("Signed", "Warning", &[]))
            .await
            .status(),
        200
    );
    let got = hook.wait_for(1, Duration::from_secs(10)).await;
    let header = got[0].headers["x-peregrine-signature"]
        .to_str()
        .unwrap()
        .to_string();
    std::fs::write(tmp.path().join("body"), &got[0].body).unwrap();

    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let snippet = readme
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the README has a python block");
    let check = |secret: &str, flip: bool| {
        let program = format!(
            "{snippet}\nimport sys\nbody = open(sys.argv[2], 'rb').read()\nif {}: body = b'x' + body[1:]\nprint(verify(sys.argv[1].encode(), sys.argv[3], body))\n",
            if flip { "True" } else { "False" }
        );
        let out = Command::new("python3")
            .args(["-c", &program, secret])
            .arg(tmp.path().join("body"))
            .arg(&header)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(check("whsec-42", false), "True");
    assert_eq!(check("another", false), "False");
    assert_eq!(check("whsec-42", true), "False");
    assert!(!gw.logs().contains("whsec-42"));
}
