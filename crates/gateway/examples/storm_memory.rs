//! What storm control's open windows cost in memory: 100 000 windows (one per host), against a
//! baseline in the same run that keeps the 100 000 first alerts whole (what a window used to
//! hold). Prints resident memory from /proc/self/status.
//!
//! `cargo run --release -p peregrine-gateway --example storm_memory`

use std::sync::Arc;
use std::time::Duration;

use peregrine_engine::{Alert, AlertId};
use peregrine_gateway::worker::storm::{Storm, StormConfig};
use peregrine_outputs::fingerprint::Fingerprint;

const WINDOWS: usize = 100_000;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A Falco alert of a typical size (about 1.5 KB of JSON), from host `i`.
fn alert(i: usize) -> Arc<Alert> {
    let mut a = Alert::from_json(serde_json::json!({
        "rule": "Terminal shell in container", "priority": "Notice",
        "hostname": format!("node-{i:06}"), "source": "syscall",
        "time": "2026-12-03T10:00:00.000000000Z", "tags": ["container", "shell", "mitre_execution", "T1059"],
        "output": format!("10:00:00.000000000: Notice A shell was spawned in a container with an attached terminal (evt_type=execve user=root user_uid=0 process=bash proc_exepath=/usr/bin/bash parent=runc command=bash -c {} terminal=34816 exe_flags=EXE_WRITABLE container_id=c{i:011} container_name=app-{i})", "x".repeat(900)),
        "output_fields": {"container.id": format!("c{i:011}"), "container.name": format!("app-{i}"),
            "proc.cmdline": format!("bash -c {}", "x".repeat(400)), "proc.name": "bash", "user.name": "root"}
    }))
    .expect("a valid alert");
    a.uuid = Some(AlertId::generate());
    Arc::new(a)
}

fn main() {
    let config = StormConfig {
        window: Duration::from_secs(60),
        fingerprint: Fingerprint::default(),
    };
    let start = rss_kib();
    let mut storm = Storm::new(config);
    for i in 0..WINDOWS {
        storm.admit(&alert(i), 1);
    }
    let windows = rss_kib() - start;

    let before = rss_kib();
    let whole: Vec<Arc<Alert>> = (0..WINDOWS).map(alert).collect();
    let baseline = rss_kib() - before;
    println!(
        "{WINDOWS} open storm windows: {} MiB resident; the same first alerts kept whole: {} MiB (ratio {:.2})",
        windows / 1024,
        baseline / 1024,
        windows as f64 / baseline as f64
    );
    drop((storm, whole));
}
