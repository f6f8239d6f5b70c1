//! The exec output against real child processes: small Python plugins written for each case.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use super::*;
use crate::delivery::ItemResult;
use crate::retry::{deliver_with_retries, AttemptObserver, Outcome, PauseGate, RetryPolicy};
use crate::settings::checked;
use crate::testing::envelope;

/// Writes `body` as an executable Python plugin in `dir` and returns its path.
fn plugin(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    let script = format!("#!/usr/bin/env python3\nimport json, os, sys, time\n{body}");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// The loop most plugins share: `answer(alert)` gives each alert's result.
const LOOP: &str = r#"
for line in sys.stdin:
    batch = json.loads(line)
    results = [answer(a) for a in batch["alerts"]]
    print(json.dumps({"batch": batch["batch"], "results": results}), flush=True)
"#;

fn output(keys: serde_json::Value, timeout: Duration) -> ExecOutput {
    let settings: ExecSettings = checked(keys).unwrap();
    ExecOutput::new(
        &settings,
        BuildContext {
            name: "plugin-test".into(),
            max_in_flight: 1,
            timeout,
        },
    )
}

fn alert(rule: &str) -> Envelope {
    envelope(
        json!({"rule": rule, "priority": "Warning", "time": "2026-06-12T09:00:00Z", "output": "o"}),
    )
}

#[tokio::test]
async fn each_alert_takes_its_own_result() {
    let dir = tempfile::tempdir().unwrap();
    let body = r#"
def answer(a):
    if a["rule"].startswith("ok"):
        return {"status": "ok"}
    if a["rule"].startswith("retry"):
        return {"status": "retry"}
    return {"status": "fail", "reason": "no project for " + a["rule"]}
"#;
    let cmd = plugin(dir.path(), "judge.py", &format!("{body}{LOOP}"));
    let out = output(json!({"command": [cmd]}), Duration::from_secs(10));
    let batch = [alert("ok-1"), alert("retry-1"), alert("nope")];
    match out.deliver(&batch).await {
        Delivery::Partial(items) => {
            assert_eq!(items[0], ItemResult::Delivered);
            assert!(matches!(&items[1], ItemResult::Retry(f) if f.code == Some("plugin_retry")));
            assert!(
                matches!(&items[2], ItemResult::Permanent(f) if f.reason == "the plugin failed it: no project for nope" && f.code == Some("plugin_fail")),
                "{:?}",
                items[2]
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(out.deliver(&[alert("ok-2")]).await, Delivery::Delivered);
}

#[tokio::test]
async fn retry_after_pauses_for_the_longest_wait_asked() {
    let dir = tempfile::tempdir().unwrap();
    let body = r#"
def answer(a):
    return {"status": "retry", "after_ms": 1500 if a["rule"] == "slow" else 200}
"#;
    let cmd = plugin(dir.path(), "busy.py", &format!("{body}{LOOP}"));
    let out = output(json!({"command": [cmd]}), Duration::from_secs(10));
    match out.deliver(&[alert("a"), alert("slow")]).await {
        Delivery::RetryAfter(f, wait) => {
            assert_eq!(wait, Duration::from_millis(1500));
            assert_eq!(f.code, Some("plugin_retry"));
        }
        other => panic!("{other:?}"),
    }
}

struct Quiet;
impl AttemptObserver for Quiet {
    fn retrying(&self, _: &Failure, _: usize) {}
}

/// The plugin dies on its first batch (once), the way a crash would: the batch is tried again
/// through the retry core and delivered by the restarted plugin.
#[tokio::test]
async fn a_batch_in_flight_at_a_crash_is_retried_by_the_restarted_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("crashed-once");
    let body = format!(
        r#"
def answer(a):
    return {{"status": "ok"}}
if not os.path.exists("{m}"):
    sys.stdin.readline()
    open("{m}", "w").close()
    os._exit(3)
"#,
        m = marker.display()
    );
    let cmd = plugin(dir.path(), "crash.py", &format!("{body}{LOOP}"));
    let out = output(json!({"command": [cmd]}), Duration::from_secs(10));
    let first = out.deliver(&[alert("a")]).await;
    match &first {
        Delivery::Retry(f) => assert!(f.reason.contains("closed its stdout"), "{f:?}"),
        other => panic!("{other:?}"),
    }
    let policy = RetryPolicy {
        max_attempts: 5,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        timeout: Duration::from_secs(10),
    };
    let outcomes =
        deliver_with_retries(&out, &[alert("a")], &policy, &PauseGate::default(), &Quiet).await;
    assert_eq!(outcomes, vec![Outcome::Delivered]);
}

#[tokio::test]
async fn a_plugin_that_hangs_is_stopped_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let body = format!(
        "open(\"{}\", \"w\").write(str(os.getpid()))\nsys.stdin.readline()\ntime.sleep(3600)\n",
        pid_file.display()
    );
    let cmd = plugin(dir.path(), "hang.py", &body);
    let out = output(json!({"command": [cmd]}), Duration::from_millis(400));
    let started = Instant::now();
    match out.deliver(&[alert("a")]).await {
        Delivery::Retry(f) => {
            assert!(f.reason.contains("did not answer within 350 ms"), "{f:?}");
            assert_eq!(f.code, Some("plugin_broken"));
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{pid}/status"))
        .exists()
        .then(|| std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default())
        .is_some_and(|s| !s.contains("State:\tZ"))
    {
        assert!(
            Instant::now() < deadline,
            "the hung plugin {pid} is still running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Until its restart wait is over, the output answers at once that it is paused.
    assert!(matches!(
        out.deliver(&[alert("a")]).await,
        Delivery::RetryAfter(f, _) if f.code == Some("plugin_down")
    ));
}

#[tokio::test]
async fn garbage_on_stdout_breaks_the_protocol_and_restarts_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let starts = dir.path().join("starts");
    let body = format!(
        "open(\"{}\", \"a\").write(\"x\")\nsys.stdin.readline()\nprint(\"hello, I am not JSON\", flush=True)\nsys.stdin.readline()\n",
        starts.display()
    );
    let cmd = plugin(dir.path(), "garbage.py", &body);
    let out = output(json!({"command": [cmd]}), Duration::from_secs(10));
    match out.deliver(&[alert("a")]).await {
        Delivery::Retry(f) => assert!(f.reason.contains("not protocol JSON"), "{f:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(out.restarts(), 1);
    // The next attempt after the restart wait starts the plugin again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let d = out.deliver(&[alert("b")]).await;
        if std::fs::read_to_string(&starts).unwrap().len() == 2 {
            assert!(matches!(d, Delivery::Retry(_)), "{d:?}");
            break;
        }
        assert!(Instant::now() < deadline, "not restarted: {d:?}");
        if let Delivery::RetryAfter(_, wait) = d {
            tokio::time::sleep(wait).await;
        }
    }
}

#[tokio::test]
async fn answers_out_of_step_are_protocol_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "wrong_id.py",
            r#"print(json.dumps({"batch": batch["batch"] + 1, "results": [{"status": "ok"}]}), flush=True)"#,
            "answered batch 2 while batch 1",
        ),
        (
            "short.py",
            r#"print(json.dumps({"batch": batch["batch"], "results": []}), flush=True)"#,
            "gave 0 results for 1 alerts",
        ),
        (
            "status.py",
            r#"print(json.dumps({"batch": batch["batch"], "results": [{"status": "maybe"}]}), flush=True)"#,
            "not protocol JSON",
        ),
    ];
    for (name, reply, expected) in cases {
        let body =
            format!("batch = json.loads(sys.stdin.readline())\n{reply}\nsys.stdin.readline()\n");
        let cmd = plugin(dir.path(), name, &body);
        let out = output(json!({"command": [cmd]}), Duration::from_secs(10));
        match out.deliver(&[alert("a")]).await {
            Delivery::Retry(f) => assert!(f.reason.contains(expected), "{name}: {f:?}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

/// Only `PATH` and the configured variables reach the plugin: not the gateway's environment.
#[tokio::test]
async fn the_plugin_gets_its_env_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let body = r#"
def answer(a):
    ok = os.environ.get("TICKET_TOKEN") == "t0k3n" and "HOME" not in os.environ and "PATH" in os.environ
    return {"status": "ok"} if ok else {"status": "fail", "reason": ",".join(sorted(os.environ))}
"#;
    let cmd = plugin(dir.path(), "env.py", &format!("{body}{LOOP}"));
    let out = output(
        json!({"command": [cmd], "env": {"TICKET_TOKEN": "t0k3n"}}),
        Duration::from_secs(10),
    );
    assert_eq!(out.deliver(&[alert("a")]).await, Delivery::Delivered);
}

#[test]
fn keys_are_checked_and_env_values_never_print() {
    let err = |v: serde_json::Value| checked::<ExecSettings>(v).unwrap_err().to_string();
    assert_eq!(
        err(json!({"command": []})),
        "command: needs the plugin's program"
    );
    assert_eq!(
        err(json!({"command": ["/nonexistent/plugin"]})),
        "command[0]: /nonexistent/plugin is not an executable file"
    );
    assert_eq!(
        err(json!({"command": ["no-such-plugin-anywhere"]})),
        "command[0]: no-such-plugin-anywhere is not an executable found in PATH"
    );
    assert_eq!(
        err(json!({"command": ["true"], "env": {"BAD-NAME": "x"}})),
        "env.BAD-NAME: is not a valid environment variable name"
    );
    assert_eq!(
        err(json!({"command": ["true"], "max_alerts_per_batch": 0})),
        "max_alerts_per_batch: must be from 1 to 10000"
    );
    assert!(err(json!({"command": ["true"], "shell": true})).contains("unknown field"));
    let s: ExecSettings = checked(
        json!({"command": ["true", "--project", "SEC"], "env": {"TICKET_TOKEN": "s3cr3t"}}),
    )
    .unwrap();
    let printed = format!("{s:?} {}", s.describe());
    assert!(!printed.contains("s3cr3t"), "{printed}");
    assert!(
        printed.contains("(2 argument(s); env PATH, TICKET_TOKEN)"),
        "{printed}"
    );
    assert_eq!(s.limits.max_events, 50);
}
