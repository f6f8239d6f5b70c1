//! Helpers for the end-to-end tests: the real binaries as child processes, and local HTTP
//! receivers on 127.0.0.1 that record what they get and answer as scripted.

pub mod gateway;
pub mod receiver;
pub mod sensor;
pub mod tls;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The path of a workspace binary, built (or confirmed up to date) once per test process so a
/// test never runs a stale binary.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "--bins"])
            .current_dir(workspace_root())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the workspace binaries failed");
    });
    workspace_root().join("target/debug").join(name)
}

/// A binary next to the running one (the benchmarks run from `target/release` beside the
/// gateway), for their `--gateway-bin` default.
pub fn sibling_bin(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .unwrap_or_else(|| PathBuf::from("target/release").join(name))
}

/// Waits until `done` holds, checking every 50 ms; panics naming `what` after `timeout`.
pub async fn wait_until(what: &str, timeout: std::time::Duration, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting until {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// A memory field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// An HTTP/1.1 keep-alive connection to `addr` with Nagle's algorithm off, its connection task
/// spawned: what the benchmarks' lean clients post through.
pub async fn http1_connect(
    addr: std::net::SocketAddr,
) -> hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    sender
}

/// A one-line Falco alert body, as Falco's http_output posts it.
pub fn falco_alert(rule: &str, priority: &str, tags: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "hostname": "node-1",
        "output": format!("09:23:10.123456789: {priority} {rule} | user=root proc=cat file=/etc/shadow"),
        "output_fields": {
            "evt.time": 1781256190123456789u64,
            "fd.name": "/etc/shadow",
            "proc.cmdline": "cat /etc/shadow",
            "proc.name": "cat",
            "user.name": "root",
            "user.uid": 0,
            "container.id": "host",
            "proc.pname": null
        },
        "priority": priority,
        "rule": rule,
        "source": "syscall",
        "tags": tags,
        "time": "2026-06-12T09:23:10.123456789Z"
    })
}
