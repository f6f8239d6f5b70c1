//! `peregrine-overhead`: what the eBPF sensor costs the workloads it watches.
//!
//! Runs each workload with a fixed iteration count, alternating baseline runs and runs with
//! `peregrine-sensor run` loaded with Falco's stable rules, and reports the slowdown as the
//! median over rounds of each sensor run against the mean of the two baselines that bracket it,
//! so drift on this shared machine between rounds cancels out. It also reports the sensor's CPU
//! time per kernel record and its drops. Root only; everything on 127.0.0.1.
//!
//! ```text
//! cargo build --release --bins && sudo target/release/peregrine-overhead
//! ```

use std::ffi::CString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: usize = 5;

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
    // The copy every test and bench uses (config/rules/ holds the one `make run` loads).
    let rules = root.join("tests/data/falco-rules/falco_rules.yaml");
    let redis = start_redis();
    let workloads = workloads();
    let metrics_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    println!("peregrine-overhead: {ROUNDS} rounds of [baseline, with sensor] and a closing baseline; medians reported");
    let redis_target = redis.as_ref().map(|r| (r.0.id(), r.1));
    let m = measure(&workloads, redis_target, &bin, &rules, metrics_port);
    print_comparison(&workloads, redis.is_some(), &m);
    // What one traced syscall costs, all in: the getpid loop makes one syscall per operation.
    let per_syscall_ns = median(&m.with[0].iter().map(|s| s.wall).collect::<Vec<_>>())
        - median(&m.base[0].iter().map(|s| s.wall).collect::<Vec<_>>());
    let redis_cpu_ns = redis.is_some().then(|| {
        median(
            &m.base[workloads.len()]
                .iter()
                .map(|s| s.cpu_ns)
                .collect::<Vec<_>>(),
        )
    });
    bpf_cost(
        &bin,
        &rules,
        metrics_port,
        redis_target,
        per_syscall_ns,
        redis_cpu_ns,
    );
    throughput(&bin, &rules, metrics_port);
    if let Some((mut child, _)) = redis {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The syscall-heavy loops measured with and without the sensor.
fn workloads() -> Vec<(&'static str, Workload)> {
    vec![
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
    ]
}

/// Samples per workload (redis last), without and with the sensor, and what the sensor did.
struct Measured {
    base: Vec<Vec<Sample>>,
    with: Vec<Vec<Sample>>,
    sensor_cpu_ns: u64,
    records: f64,
    drops: f64,
    elapsed: Duration,
}

/// `ROUNDS` rounds of [baseline, with the sensor], then a closing baseline, so drift on this
/// shared machine brackets both sides.
fn measure(
    workloads: &[(&str, Workload)],
    redis: Option<(u32, u16)>,
    bin: &Path,
    rules: &Path,
    metrics_port: u16,
) -> Measured {
    let mut m = Measured {
        base: vec![Vec::new(); workloads.len() + 1],
        with: vec![Vec::new(); workloads.len() + 1],
        sensor_cpu_ns: 0,
        records: 0.0,
        drops: 0.0,
        elapsed: Duration::ZERO,
    };
    let run_all = |into: &mut Vec<Vec<Sample>>| {
        for (i, (_, w)) in workloads.iter().enumerate() {
            into[i].push(w());
        }
        if let Some((pid, port)) = redis {
            into[workloads.len()].push(redis_rps(pid, port));
        }
    };
    for _ in 0..ROUNDS {
        run_all(&mut m.base);
        let mut sensor = start_sensor(bin, rules, metrics_port);
        let cpu0 = cpu_ns(sensor.id());
        let t0 = Instant::now();
        run_all(&mut m.with);
        std::thread::sleep(Duration::from_millis(1100)); // the once-a-second counters catch up
        m.elapsed += t0.elapsed();
        m.sensor_cpu_ns += cpu_ns(sensor.id()) - cpu0;
        m.records += metric(metrics_port, "peregrine_sensor_kernel_records_total");
        m.drops += metric(metrics_port, "peregrine_sensor_drops_total");
        let _ = sensor.kill();
        let _ = sensor.wait();
    }
    run_all(&mut m.base);
    m
}

/// The table of workloads, and the sensor's own totals.
fn print_comparison(workloads: &[(&str, Workload)], redis: bool, m: &Measured) {
    println!(
        "{:<30} {:>10} {:>10} {:>7} {:>12}  {:>7} {:>12}  {:>7}",
        "workload (ns per op)",
        "baseline",
        "sensor",
        "wall",
        "per round",
        "CPU",
        "per round",
        "best"
    );
    for (i, (name, _)) in workloads.iter().enumerate() {
        report(name, &m.base[i], &m.with[i], false);
    }
    if redis {
        let i = workloads.len();
        let ratio = report("redis-benchmark (req/s)", &m.base[i], &m.with[i], true);
        println!(
            "  redis-benchmark with the sensor: {:.1} % fewer requests per second",
            (1.0 - 1.0 / ratio) * 100.0
        );
    }
    println!(
        "sensor, over the {ROUNDS} rounds: {:.0} kernel records in {:.1} s, {:.0} dropped; user-space CPU {:.2} s",
        m.records,
        m.elapsed.as_secs_f64(),
        m.drops,
        m.sensor_cpu_ns as f64 / 1e9
    );
}

/// One workload run: wall-clock cost, and the CPU time (user and system, of the workload's
/// processes and threads) per operation. CPU time is the steadier of the two on a shared
/// machine: waiting behind another tenant lengthens the wall clock but not the CPU time.
#[derive(Clone, Copy)]
struct Sample {
    /// Nanoseconds per operation, or requests per second for redis.
    wall: f64,
    cpu_ns: f64,
}

/// Prints a workload's line: medians, and the bracketed wall-clock and CPU ratios with their
/// range. Returns the median wall-clock ratio.
fn report(name: &str, base: &[Sample], with: &[Sample], higher_is_better: bool) -> f64 {
    let walls = |v: &[Sample]| v.iter().map(|s| s.wall).collect::<Vec<_>>();
    let cpus = |v: &[Sample]| v.iter().map(|s| s.cpu_ns).collect::<Vec<_>>();
    let slowdown = |b: f64, w: f64| if higher_is_better { b / w } else { w / b };
    let wall = bracketed(&walls(base), &walls(with), slowdown);
    let cpu = bracketed(&cpus(base), &cpus(with), |b, w| w / b);
    println!(
        "{name:<30} {:>10.0} {:>10.0} {:>6.2}x {:>12}  {:>6.2}x {:>12}",
        median(&walls(base)),
        median(&walls(with)),
        median(&wall),
        spread2(&wall),
        median(&cpu),
        spread2(&cpu)
    );
    median(&wall)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[s.len() / 2]
}

fn spread2(v: &[f64]) -> String {
    let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = v.iter().cloned().fold(0.0, f64::max);
    format!("{min:.2}..{max:.2}")
}

/// Each sensor round against the mean of the two baselines run just before and just after it,
/// so that drift of this shared machine between rounds cancels out of the ratio.
fn bracketed(base: &[f64], with: &[f64], ratio: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    with.iter()
        .enumerate()
        .map(|(i, &w)| ratio((base[i] + base[i + 1]) / 2.0, w))
        .collect()
}

/// The kernel side's own cost per run, from the kernel's BPF run-time statistics
/// (`kernel.bpf_stats_enabled`, on only for this measurement): noise-free where wall-clock
/// ratios on a shared machine are not.
fn bpf_cost(
    bin: &std::path::Path,
    rules: &std::path::Path,
    metrics_port: u16,
    redis: Option<(u32, u16)>,
    per_syscall_ns: f64,
    redis_cpu_ns: Option<f64>,
) {
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
    // The same for a redis-benchmark run: how many syscalls a request makes, both sides.
    let redis_runs = redis.map(|(pid, port)| {
        let before = prog_stats();
        let _ = redis_rps(pid, port);
        let after = prog_stats();
        let runs = |s: &std::collections::BTreeMap<String, (u64, u64)>| {
            s.get("sys_exit").map_or(0, |&(_, c)| c)
        };
        runs(&after) - runs(&before)
    });
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
    // Accounting rather than timing: syscalls per request (counted by the kernel) times what
    // one traced syscall costs (the getpid loop's slowdown), against a request's CPU time.
    if let (Some(runs), Some(cpu)) = (redis_runs, redis_cpu_ns) {
        let per_request = runs as f64 / (2 * REDIS_REQUESTS) as f64;
        let added = per_request * per_syscall_ns;
        println!(
            "redis-benchmark, accounted: {per_request:.1} syscalls per request (server and client) x {per_syscall_ns:.0} ns per traced syscall = {added:.0} ns on {cpu:.0} ns of CPU per request = {:.1} %",
            added / cpu * 100.0
        );
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

/// A workload: runs a fixed number of operations.
type Workload = Box<dyn Fn() -> Sample>;

fn ns_per_op(n: u64, mut op: impl FnMut()) -> Sample {
    let cpu = own_cpu_ns();
    let t = Instant::now();
    for _ in 0..n {
        op();
    }
    Sample {
        wall: t.elapsed().as_nanos() as f64 / n as f64,
        cpu_ns: (own_cpu_ns() - cpu) as f64 / n as f64,
    }
}

/// User and system time of this process's threads and of its children that have been waited
/// for.
fn own_cpu_ns() -> u64 {
    let usage = |who| {
        // SAFETY: getrusage fills the struct it is given.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut u) };
        let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
        (us(u.ru_utime) + us(u.ru_stime)) * 1_000
    };
    usage(libc::RUSAGE_SELF) + usage(libc::RUSAGE_CHILDREN)
}

fn open_close() -> Sample {
    let path = CString::new("/etc/hostname").unwrap();
    ns_per_op(300_000, || unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY);
        libc::close(fd);
    })
}

fn fork_exec() -> Sample {
    ns_per_op(400, || {
        let status = Command::new("/bin/true").status().unwrap();
        assert!(status.success());
    })
}

fn connect_loop() -> Sample {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let n = 2_000;
    let server = std::thread::spawn(move || {
        for _ in 0..n {
            drop(listener.accept().unwrap());
        }
    });
    // Each connection waits for its accept (the server's close reaches the client as end of
    // file), so the accept queue never overflows: an overflow drops SYNs, whose 1 s retransmits
    // made this loop measure timers rather than syscalls. Linger 0: the client closes with a
    // reset, so thousands of connections leave no TIME_WAIT on the client side.
    let r = ns_per_op(n, || {
        let mut s = TcpStream::connect(addr).unwrap();
        let _ = s.read(&mut [0u8; 1]);
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

/// Requests per second of redis-benchmark SET and GET (mean of the two), and the CPU time of
/// redis-server and redis-benchmark per request.
const REDIS_REQUESTS: u64 = 100_000;

fn redis_rps(server: u32, port: u16) -> Sample {
    let cpu = cpu_ns(server) + own_cpu_ns();
    let out = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "-n",
            &REDIS_REQUESTS.to_string(),
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
    let cpu_ns = (cpu_ns(server) + own_cpu_ns() - cpu) as f64 / (2 * REDIS_REQUESTS) as f64;
    let wall = if rates.is_empty() {
        0.0
    } else {
        rates.iter().sum::<f64>() / rates.len() as f64
    };
    Sample { wall, cpu_ns }
}
