//! `peregrine-overhead`: what the eBPF sensor costs the workloads it watches.
//!
//! Runs each workload with a fixed iteration count, in three phases — baseline, with
//! `peregrine-sensor run` loaded with Falco's stable rules, baseline again — and reports the
//! slowdown as a ratio against the mean of the two baselines (they bracket the sensor run, so
//! drift on this shared machine shows as a gap between them). It also reports the sensor's CPU
//! time per kernel record and its drops. Root only; everything on 127.0.0.1.
//!
//! ```text
//! cargo build --release --bins && sudo target/release/peregrine-overhead
//! ```

use std::ffi::CString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("peregrine-overhead needs root: it loads the sensor into the kernel");
        std::process::exit(2);
    }
    let bin = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let rules = root.join("config/rules/falco_rules.yaml");
    let redis = start_redis();

    let workloads: Vec<(&str, Workload)> = vec![
        (
            "getpid (no event)",
            Box::new(|| {
                ns_per_op(2_000_000, || unsafe {
                    libc::getpid();
                })
            }),
        ),
        ("open+close (1 event)", Box::new(open_close)),
        ("fork+exec+wait (~30 events)", Box::new(fork_exec)),
        ("tcp connect+accept+close", Box::new(connect_loop)),
    ];

    const ROUNDS: usize = 3;
    println!("peregrine-overhead: {ROUNDS} rounds of [baseline, with sensor] and a closing baseline; medians reported");
    let mut base: Vec<Vec<f64>> = vec![Vec::new(); workloads.len() + 1];
    let mut with: Vec<Vec<f64>> = vec![Vec::new(); workloads.len() + 1];
    let run_all = |into: &mut Vec<Vec<f64>>| {
        for (i, (_, w)) in workloads.iter().enumerate() {
            into[i].push(w());
        }
        if let Some(r) = &redis {
            into[workloads.len()].push(redis_rps(r.1));
        }
    };
    let metrics_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (mut cpu, mut records, mut drops, mut elapsed) = (0u64, 0f64, 0f64, Duration::ZERO);
    for _ in 0..ROUNDS {
        run_all(&mut base);
        let mut sensor = start_sensor(&bin, &rules, metrics_port);
        let cpu0 = cpu_ns(sensor.id());
        let t0 = Instant::now();
        run_all(&mut with);
        std::thread::sleep(Duration::from_millis(1100)); // the once-a-second counters catch up
        elapsed += t0.elapsed();
        cpu += cpu_ns(sensor.id()) - cpu0;
        records += metric(metrics_port, "peregrine_sensor_kernel_records_total");
        drops += metric(metrics_port, "peregrine_sensor_drops_total");
        let _ = sensor.kill();
        let _ = sensor.wait();
    }
    run_all(&mut base);

    println!(
        "{:<32} {:>12} {:>12} {:>9} {:>22}",
        "workload", "baseline", "sensor", "ratio", "baseline spread"
    );
    for (i, (name, _)) in workloads.iter().enumerate() {
        let (b, w) = (median(&base[i]), median(&with[i]));
        println!(
            "{name:<32} {b:>12.0} {w:>12.0} {:>8.2}x {:>22}",
            w / b,
            spread(&base[i])
        );
    }
    if redis.is_some() {
        let i = workloads.len();
        let (b, w) = (median(&base[i]), median(&with[i]));
        println!(
            "{:<32} {b:>12.0} {w:>12.0} {:>8.2}x {:>22}   ({:.1} % fewer req/s)",
            "redis-benchmark SET+GET req/s",
            b / w,
            spread(&base[i]),
            (1.0 - w / b) * 100.0
        );
    }
    println!(
        "sensor, over the {ROUNDS} rounds: {records:.0} kernel records in {:.1} s, {drops:.0} dropped; user-space CPU {:.2} s",
        elapsed.as_secs_f64(),
        cpu as f64 / 1e9
    );
    bpf_cost(&bin, &rules, metrics_port);
    throughput(&bin, &rules, metrics_port);
    if let Some((mut child, _)) = redis {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[s.len() / 2]
}

fn spread(v: &[f64]) -> String {
    let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = v.iter().cloned().fold(0.0, f64::max);
    format!("{min:.0}..{max:.0}")
}

/// The kernel side's own cost per run, from the kernel's BPF run-time statistics
/// (`kernel.bpf_stats_enabled`, on only for this measurement): noise-free where wall-clock
/// ratios on a shared machine are not.
fn bpf_cost(bin: &std::path::Path, rules: &std::path::Path, metrics_port: u16) {
    let mut sensor = start_sensor(bin, rules, metrics_port);
    let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1");
    let before = prog_stats();
    let opens = 200_000u64;
    let path = CString::new("/etc/hostname").unwrap();
    for _ in 0..opens {
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_RDONLY);
            libc::close(fd);
        }
    }
    let after = prog_stats();
    let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "0");
    let _ = sensor.kill();
    let _ = sensor.wait();
    println!("kernel side, {opens} open+close of a file no rule watches (bpf_stats):");
    for (name, (t1, c1)) in &after {
        let (t0, c0) = before.get(name).copied().unwrap_or((0, 0));
        let runs = c1 - c0;
        if runs > 0 {
            println!(
                "  {name:<22} {runs:>9} runs  {:>6.0} ns per run",
                (t1 - t0) as f64 / runs as f64
            );
        }
    }
}

/// Events per second through the whole sensor (kernel filters off, so every open reaches user
/// space and is evaluated against the rules), its drops, and its CPU per 100k events/s.
fn throughput(bin: &std::path::Path, rules: &std::path::Path, metrics_port: u16) {
    let mut sensor = Command::new(bin.join("peregrine-sensor"))
        .args(["run", "--no-kernel-filters", "--rules"])
        .arg(rules)
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
        .env("PEREGRINE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("peregrine-sensor");
    let stderr = sensor.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("kernel side attached") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    std::thread::sleep(Duration::from_millis(500));
    let cpu0 = cpu_ns(sensor.id());
    let path = CString::new("/etc/hostname").unwrap();
    let n = 500_000u64;
    let t = Instant::now();
    for _ in 0..n {
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_RDONLY);
            libc::close(fd);
        }
    }
    let secs = t.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(1500));
    let cpu = cpu_ns(sensor.id()) - cpu0;
    let evaluated = metric(
        metrics_port,
        "peregrine_sensor_events_total{type=\"openat\"}",
    );
    let drops = metric(metrics_port, "peregrine_sensor_drops_total");
    let _ = sensor.kill();
    let _ = sensor.wait();
    let rate = n as f64 / secs;
    println!(
        "throughput, kernel filters off: {n} opens at {rate:.0}/s -> {evaluated:.0} evaluated, {drops:.0} dropped; sensor CPU {:.2} s = {:.0} ns per event = {:.0} % of a core per 100k events/s",
        cpu as f64 / 1e9,
        cpu as f64 / evaluated.max(1.0),
        cpu as f64 / evaluated.max(1.0) * 100_000.0 / 1e9 * 100.0
    );
}

/// run_time_ns and run_cnt of the sensor's programs, from bpftool.
fn prog_stats() -> std::collections::BTreeMap<String, (u64, u64)> {
    let out = Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output();
    let Ok(out) = out else {
        return Default::default();
    };
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let mut stats = std::collections::BTreeMap::new();
    for p in list.as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or("");
        if name.starts_with("sys_exit") || name.starts_with("sched_process") {
            let e = stats.entry(name.to_string()).or_insert((0, 0));
            e.0 += p["run_time_ns"].as_u64().unwrap_or(0);
            e.1 += p["run_cnt"].as_u64().unwrap_or(0);
        }
    }
    stats
}

/// A workload: runs a fixed number of operations and returns nanoseconds per operation.
type Workload = Box<dyn Fn() -> f64>;

fn ns_per_op(n: u64, mut op: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        op();
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

fn open_close() -> f64 {
    let path = CString::new("/etc/hostname").unwrap();
    ns_per_op(300_000, || unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY);
        libc::close(fd);
    })
}

fn fork_exec() -> f64 {
    ns_per_op(400, || {
        let status = Command::new("/bin/true").status().unwrap();
        assert!(status.success());
    })
}

fn connect_loop() -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let n = 2_000;
    let server = std::thread::spawn(move || {
        for _ in 0..n {
            drop(listener.accept().unwrap());
        }
    });
    // Linger 0: close with a reset, so thousands of connections leave no TIME_WAIT behind.
    let r = ns_per_op(n, || {
        let s = TcpStream::connect(addr).unwrap();
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt on a socket we own, with a correctly sized value.
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&s),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as u32,
            );
        }
    });
    server.join().unwrap();
    r
}

fn start_sensor(bin: &std::path::Path, rules: &std::path::Path, metrics_port: u16) -> Child {
    let mut child = Command::new(bin.join("peregrine-sensor"))
        .args(["run", "--rules"])
        .arg(rules)
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
        .env("PEREGRINE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("peregrine-sensor (build it with cargo build --release --bins)");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("kernel side attached") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    std::thread::sleep(Duration::from_millis(300));
    child
}

/// The process's user+system CPU time in nanoseconds.
fn cpu_ns(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks * 1_000_000_000 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64
}

fn metric(port: u16, name: &str) -> f64 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0.0;
    };
    let _ = write!(s, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// A loopback redis-server from Debian's package, when installed.
fn start_redis() -> Option<(Child, u16)> {
    let port = TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .ok()?;
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((child, port));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Requests per second of redis-benchmark SET and GET (mean of the two).
fn redis_rps(port: u16) -> f64 {
    let out = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "-n",
            "100000",
            "-c",
            "50",
            "-t",
            "set,get",
        ])
        .output()
        .expect("redis-benchmark");
    let text = String::from_utf8_lossy(&out.stdout);
    let rates: Vec<f64> = text
        .split(['\r', '\n'])
        .filter_map(|l| {
            l.split("requests per second")
                .next()
                .and_then(|b| b.split(':').nth(1))
                .and_then(|v| v.trim().parse().ok())
        })
        .collect();
    if rates.is_empty() {
        0.0
    } else {
        rates.iter().sum::<f64>() / rates.len() as f64
    }
}
