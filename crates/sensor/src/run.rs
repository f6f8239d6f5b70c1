//! `peregrine-sensor run`: live capture, evaluation, alerts.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use peregrine_engine::fields::{FieldArg, ResolvedField, FIELDS};
use peregrine_engine::{Alert, EventTime, Priority, Ruleset};
use peregrine_outputs::secret::SecretUrl;
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::bpf::records::{self, Record};
use crate::bpf::{syscalls, Probe};
use crate::event::{self, Kind, SensorEvent};
use crate::proctable::ProcessTable;
use crate::runtime::Containers;
use crate::sink::Sinks;
use crate::users::Users;

pub struct Options {
    pub rules: Vec<PathBuf>,
    /// Reload the rules when a file changes (SIGHUP reloads them in any case).
    pub watch_rules: bool,
    pub gateways: Vec<SecretUrl>,
    pub gateway_client: crate::sink::GatewayClient,
    pub kafka: Option<crate::sink::KafkaTarget>,
    pub stdout: bool,
    pub metrics_listen: Option<SocketAddr>,
    pub capture: Option<PathBuf>,
    pub ring_bytes: u32,
    pub hostname: String,
    /// Drop share (0..1) above which an internal drop alert is raised (Falco's default 0.1).
    pub drop_threshold: f64,
    /// Stop after this long (for tests and benchmarks); run until a signal otherwise.
    pub duration: Option<Duration>,
    /// Drop in the kernel the events no loaded rule can match.
    pub kernel_filters: bool,
    /// Runtimes asked for container names and images.
    pub container_engines: Vec<crate::runtime::Engine>,
}

/// Libsinsp's names for syscalls whose kernel names differ.
fn event_name(syscall: &'static str) -> &'static str {
    match syscall {
        "pread64" => "pread",
        "pwrite64" => "pwrite",
        other => other,
    }
}

struct Metrics {
    registry: Registry,
    events: IntCounterVec,
    matches: IntCounterVec,
    drops: IntCounter,
    kernel_events: IntCounter,
    decode_errors: IntCounter,
    processes: IntGauge,
    alerts_dropped: IntCounter,
    alerts_failed: IntCounter,
    rules_reloads: IntCounterVec,
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("metric");
            registry.register(Box::new(c.clone())).expect("unique");
            c
        };
        let vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric");
            registry.register(Box::new(c.clone())).expect("unique");
            c
        };
        let build_info = IntGaugeVec::new(
            Opts::new(
                "peregrine_build_info",
                "1, labelled with the running sensor's version and source revision.",
            ),
            &["version", "revision"],
        )
        .expect("metric");
        let revision = option_env!("PEREGRINE_REVISION").unwrap_or("unknown");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), revision])
            .set(1);
        registry.register(Box::new(build_info)).expect("unique");
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("one process collector");
        let processes = IntGauge::new(
            "peregrine_sensor_processes",
            "Processes in the sensor's process table.",
        )
        .expect("metric");
        registry
            .register(Box::new(processes.clone()))
            .expect("unique");
        Metrics {
            events: vec(
                "peregrine_sensor_events_total",
                "Events evaluated against the rules, by event type.",
                &["type"],
            ),
            matches: vec(
                "peregrine_engine_matches_total",
                "Rule matches, by rule and priority.",
                &["rule", "priority"],
            ),
            drops: counter(
                "peregrine_sensor_drops_total",
                "Kernel records lost because the ring buffer was full.",
            ),
            kernel_events: counter(
                "peregrine_sensor_kernel_records_total",
                "Records the kernel side tried to send (sent and dropped).",
            ),
            decode_errors: counter(
                "peregrine_sensor_decode_errors_total",
                "Records that could not be decoded.",
            ),
            alerts_dropped: counter(
                "peregrine_sensor_alerts_dropped_total",
                "Alerts dropped because the gateway queue was full.",
            ),
            alerts_failed: counter(
                "peregrine_sensor_alerts_failed_total",
                "Alerts no gateway accepted after retries.",
            ),
            rules_reloads: vec(
                "peregrine_sensor_rules_reloads_total",
                "Rules reloads (SIGHUP or --watch-rules), by result: ok, or error when the files did not load and the running rules were kept.",
                &["result"],
            ),
            processes,
            registry,
        }
    }
}

/// The engine side of capture: process table, rules, outputs.
struct Pipeline {
    ruleset: Ruleset,
    table: ProcessTable,
    users: Users,
    containers: Containers,
    sinks: Sinks,
    metrics: Arc<Metrics>,
    hostname: String,
    /// Syscalls rules need (the others are read for the process table only).
    evaluated: BTreeSet<u32>,
    boot_to_wall_ns: i64,
    num: u64,
    capture: Option<std::io::BufWriter<std::fs::File>>,
    capture_fields: Vec<(String, ResolvedField)>,
    names: crate::names::HostNames,
}

impl Pipeline {
    fn handle(&mut self, record: Record) {
        match record {
            Record::Fork { header, child_pid } => {
                self.table.fork(header.pid, child_pid, header.ts_boot_ns)
            }
            Record::Exit { header, .. } => self.table.exit(header.pid),
            Record::Exec(exec) => {
                self.table.exec(&exec, exec.header.ppid);
                self.evaluate(
                    Kind::Exec(&exec),
                    "execve",
                    exec.header.pid,
                    exec.header.ts_boot_ns,
                );
            }
            Record::Syscall(r) => {
                let Some(name) = syscalls::name(r.syscall).map(event_name) else {
                    return;
                };
                if self.table.get_or_load(r.header.pid).is_none() {
                    return; // already gone, and never seen
                }
                match name {
                    "chdir" if r.ret == 0 => self
                        .table
                        .chdir(r.header.pid, r.str1.as_deref().unwrap_or("")),
                    "fchdir" if r.ret == 0 => {
                        let target = self
                            .table
                            .get(r.header.pid)
                            .and_then(|p| p.fds.get(&(r.args[0] as i32 as i64)).cloned());
                        if let Some(dir) = target {
                            self.table.chdir(r.header.pid, &dir);
                        }
                    }
                    _ => self.track_fds(name, &r),
                }
                if self.evaluated.contains(&r.syscall) {
                    self.evaluate(Kind::Syscall(&r), name, r.header.pid, r.header.ts_boot_ns);
                }
            }
        }
    }

    /// Keeps the process's descriptor table in step with a successful open, dup or close.
    fn track_fds(&mut self, name: &str, r: &records::SyscallRecord) {
        use crate::proctable::O_CLOEXEC;
        if r.ret < 0 {
            return;
        }
        let pid = r.header.pid;
        let opened = match name {
            "open" | "openat" | "openat2" | "creat" => self.table.get(pid).map(|p| {
                let cloexec = event::open_flags(name, r) & O_CLOEXEC != 0;
                (event::opened_path(name, r, p), cloexec)
            }),
            _ => None,
        };
        let Some(fds) = self.table.fds_mut(pid) else {
            return;
        };
        if let Some((path, cloexec)) = opened {
            fds.insert(r.ret, path, cloexec);
            return;
        }
        let old = r.args[0] as i32 as i64;
        match name {
            "dup" => fds.dup(old, r.ret, false),
            "dup2" if old != r.ret => fds.dup(old, r.ret, false),
            "dup3" => fds.dup(old, r.ret, r.args[2] & O_CLOEXEC != 0),
            // F_DUPFD and F_DUPFD_CLOEXEC.
            "fcntl" if r.args[1] == 0 || r.args[1] == 1030 => {
                fds.dup(old, r.ret, r.args[1] == 1030)
            }
            "close" => fds.close(old),
            _ => {}
        }
    }

    fn evaluate(&mut self, kind: Kind<'_>, evt_type: &str, pid: u32, ts_boot_ns: u64) {
        let Some(process) = self.table.get(pid) else {
            return;
        };
        let (uid, gid, loginuid) = (process.uid, process.gid, process.loginuid);
        self.users.ensure(&[uid, loginuid.max(0) as u32], gid);
        self.num += 1;
        let process = self.table.get(pid).expect("just looked up");
        let time_ns = ts_boot_ns as i64 + self.boot_to_wall_ns;
        let container = process
            .container_id
            .as_deref()
            .and_then(|id| self.containers.get(id));
        let mut event = SensorEvent::new(
            kind,
            evt_type,
            self.num,
            time_ns,
            process,
            &self.table,
            &self.users,
            &self.hostname,
        );
        event.container = container.as_deref();
        event.names = Some(&self.names);
        self.metrics.events.with_label_values(&[evt_type]).inc();
        if let Some(out) = &mut self.capture {
            let mut line = serde_json::Map::new();
            for (name, field) in &self.capture_fields {
                let value = match peregrine_engine::Event::extract(&event, field) {
                    peregrine_engine::eval::Extracted::Missing => continue,
                    peregrine_engine::eval::Extracted::One(v) => json_of(&v),
                    peregrine_engine::eval::Extracted::Many(vs) => {
                        serde_json::Value::Array(vs.iter().map(json_of).collect())
                    }
                };
                line.insert(name.clone(), value);
            }
            let written = serde_json::to_writer(&mut *out, &line)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"));
            if let Err(e) = written {
                // A capture with holes would replay wrongly: stop it, and say so.
                tracing::error!(error = %e, "cannot write the capture file; capturing stops here");
                self.capture = None;
            }
        }
        let mut matched = Vec::new();
        self.ruleset.evaluate(&event, &mut matched);
        for rule in matched {
            self.metrics
                .matches
                .with_label_values(&[&rule.name, rule.priority.as_str()])
                .inc();
            let alert = rule.alert(&event, &self.hostname);
            self.sinks.send(alert);
        }
    }
}

fn json_of(v: &peregrine_engine::eval::Val<'_>) -> serde_json::Value {
    use peregrine_engine::eval::Val;
    match v {
        Val::Str(s) => serde_json::Value::String(s.to_string()),
        Val::Int(n) => serde_json::Value::from(*n),
        Val::Bool(b) => serde_json::Value::Bool(*b),
        Val::Ip(ip) => serde_json::Value::String(ip.to_string()),
        Val::Bytes(b) => serde_json::Value::String(String::from_utf8_lossy(b).into_owned()),
    }
}

/// The fields `--capture` writes for every event: each one the sensor extracts, plus the
/// arguments and ancestor levels the Falco rules files use.
fn capture_fields() -> Vec<(String, ResolvedField)> {
    let mut out = Vec::new();
    for (i, info) in FIELDS.iter().enumerate() {
        let id = peregrine_engine::fields::FieldId(i as u16);
        if !event::extractable(id) || info.arg != peregrine_engine::fields::ArgSpec::None {
            continue;
        }
        out.push((
            info.name.to_string(),
            ResolvedField {
                id,
                arg: FieldArg::None,
            },
        ));
    }
    for level in 2..=7 {
        for name in ["proc.aname", "proc.aexepath"] {
            let f = peregrine_engine::fields::resolve(name, Some(&level.to_string()))
                .expect("ancestor field");
            out.push((format!("{name}[{level}]"), f));
        }
    }
    out.push((
        "proc.aname".into(),
        peregrine_engine::fields::resolve("proc.aname", None).expect("field"),
    ));
    for arg in [
        "flags", "request", "target", "linkpath", "oldpath", "newpath", "name", "path", "domain",
        "mode", "uid", "fd", "filename", "cmd",
    ] {
        let f = peregrine_engine::fields::resolve(&format!("evt.arg.{arg}"), None)
            .expect("evt.arg field");
        out.push((format!("evt.arg.{arg}"), f));
    }
    out
}

fn boot_to_wall_ns() -> i64 {
    let now = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes the timespec it is given.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec * 1_000_000_000 + ts.tv_nsec
    };
    now(libc::CLOCK_REALTIME) - now(libc::CLOCK_BOOTTIME)
}

/// Falco's rate limit for drop alerts: one every 30 s, burst 1.
const DROP_ALERT_EVERY: Duration = Duration::from_secs(30);

pub async fn run(opts: Options) -> anyhow::Result<()> {
    // Installed first: a SIGTERM while the process table is being seeded must stop the sensor
    // through its drain, not kill it with the alerts of the records already in the ring.
    let stop = shutdown_signal()?;
    let loaded = load_rules(&opts.rules, opts.kernel_filters)?;
    let mut probe = Probe::load(&loaded.interesting, opts.ring_bytes, &loaded.filters)
        .context("cannot start live capture")?;
    let (syscalls, rules) = (loaded.interesting.len(), loaded.ruleset.rules().len());
    let crate::rules::Loaded {
        ruleset, evaluated, ..
    } = loaded;

    let metrics = Arc::new(Metrics::new());
    let (sinks, senders) = Sinks::new(
        opts.stdout,
        opts.gateways.clone(),
        &opts.gateway_client,
        opts.kafka.clone(),
        metrics.alerts_dropped.clone(),
        metrics.alerts_failed.clone(),
    )?;
    let health = Arc::new(crate::status::Health::default());
    if let Some(addr) = opts.metrics_listen {
        crate::status::serve(addr, metrics.registry.clone(), health.clone())
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
    }
    let mut pipeline = Pipeline::new(&opts, ruleset, evaluated, sinks, metrics.clone())?;
    let attached = Attached { syscalls, rules };
    capture(&opts, &mut probe, &mut pipeline, &health, attached, stop).await?;

    if let Some(out) = &mut pipeline.capture {
        out.flush()?;
    }
    let Pipeline { sinks, .. } = pipeline;
    sinks.flush(Duration::from_secs(5));
    drop(sinks);
    senders.finish(Duration::from_secs(5)).await;
    Ok(())
}

/// The rules files loaded for the start; their problems are printed as `validate` prints them,
/// since without rules there is nothing to run.
fn load_rules(rules: &[PathBuf], kernel_filters: bool) -> anyhow::Result<crate::rules::Loaded> {
    match crate::rules::load(rules, kernel_filters) {
        Ok(loaded) => Ok(loaded),
        Err(problems) => {
            for line in problems {
                eprintln!("{line}");
            }
            anyhow::bail!("the rules do not load");
        }
    }
}

/// What the "kernel side attached" line reports.
struct Attached {
    syscalls: usize,
    rules: usize,
}

/// The capture loop: records from the ring buffer into the pipeline (woken by the ring, and
/// polled every 10 ms besides), the kernel counters and the health beat every second, rules
/// reloads on SIGHUP or a changed file, until `stop` resolves or `--duration` has passed. The
/// records still in the ring are handled before it returns.
async fn capture(
    opts: &Options,
    probe: &mut Probe,
    pipeline: &mut Pipeline,
    health: &crate::status::Health,
    attached: Attached,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(stop);
    let ring = probe.ring.take().expect("ring buffer");
    // SAFETY: the RingBuf owns its map's file descriptor for as long as it lives, and it lives
    // inside the AsyncFd for the whole loop.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("ring buffer polling: {e}"))?;
    let mut poll = tokio::time::interval(Duration::from_millis(10));
    let mut stats = tokio::time::interval(Duration::from_secs(1));
    let deadline = opts.duration.map(|d| Instant::now() + d);
    let mut drops = DropWatch {
        last: probe.counters(),
        last_alert: None,
    };
    // Before the line below: until it is installed, SIGHUP's default action ends the process.
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot handle SIGHUP")?;
    // Said once everything that handles records is in place (tests and supervisors wait for it).
    let Attached { syscalls, rules } = attached;
    tracing::info!(syscalls, rules, "kernel side attached");
    let mut watch = crate::rules::Watch::new(&opts.rules);
    let mut watch_tick = tokio::time::interval(RULES_POLL);
    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                if let Ok(mut guard) = guard {
                    drain(guard.get_inner_mut(), pipeline);
                    guard.clear_ready();
                }
            }
            _ = poll.tick() => drain(ring.get_mut(), pipeline),
            _ = stats.tick() => {
                health.beat();
                drops.tick(probe.counters(), pipeline, opts);
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
            }
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: reloading the rules");
                watch.changed();
                reload_rules(opts, probe, pipeline);
            }
            _ = watch_tick.tick(), if opts.watch_rules => {
                if watch.changed() {
                    tracing::info!("a rules file changed: reloading the rules");
                    reload_rules(opts, probe, pipeline);
                }
            }
            _ = &mut stop => break,
        }
    }
    drain(ring.get_mut(), pipeline);
    Ok(())
}

impl Pipeline {
    /// The pipeline with its state seeded: processes and users from /proc and /etc, running
    /// containers listed, the rules' host names being resolved, the capture file opened.
    fn new(
        opts: &Options,
        ruleset: Ruleset,
        evaluated: BTreeSet<u32>,
        sinks: Sinks,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Pipeline> {
        let capture = match &opts.capture {
            Some(path) => Some(std::io::BufWriter::new(
                std::fs::File::create(path)
                    .with_context(|| format!("cannot create {}", path.display()))?,
            )),
            None => None,
        };
        let containers = Containers::new(opts.container_engines.clone());
        containers.prefill();
        let names = crate::names::HostNames::start(&ruleset);
        Ok(Pipeline {
            ruleset,
            table: ProcessTable::seed(),
            users: Users::load(),
            containers,
            sinks,
            metrics,
            hostname: opts.hostname.clone(),
            evaluated,
            boot_to_wall_ns: boot_to_wall_ns(),
            num: 0,
            capture,
            capture_fields: if opts.capture.is_some() {
                capture_fields()
            } else {
                Vec::new()
            },
            names,
        })
    }
}

/// Kernel counters between two stats ticks, and the rate limit of the drop alert.
struct DropWatch {
    last: crate::bpf::Counters,
    last_alert: Option<Instant>,
}

impl DropWatch {
    /// Counts what the kernel saw and dropped since the last tick, and raises Falco's drop
    /// alert when the share dropped passes `--drop-threshold` (at most every DROP_ALERT_EVERY).
    fn tick(&mut self, now: crate::bpf::Counters, pipeline: &mut Pipeline, opts: &Options) {
        let (events, drops) = (now.events - self.last.events, now.drops - self.last.drops);
        pipeline.metrics.kernel_events.inc_by(events);
        pipeline.metrics.drops.inc_by(drops);
        pipeline.metrics.processes.set(pipeline.table.len() as i64);
        if drops > 0 {
            tracing::warn!(drops, events, "kernel records dropped (ring buffer full)");
            let ratio = drops as f64 / events.max(1) as f64;
            let allowed = self
                .last_alert
                .is_none_or(|t| t.elapsed() >= DROP_ALERT_EVERY);
            if ratio > opts.drop_threshold && allowed {
                self.last_alert = Some(Instant::now());
                pipeline
                    .sinks
                    .send(drop_alert(&opts.hostname, events, drops, now.drops));
            }
        }
        self.last = now;
    }
}

/// How often `--watch-rules` looks at the files.
const RULES_POLL: Duration = Duration::from_secs(1);

/// Loads the rules files again and puts them in force in user space and in the kernel. On any
/// problem the running rules stay, and the problems are logged as `validate` prints them.
fn reload_rules(opts: &Options, probe: &mut Probe, pipeline: &mut Pipeline) {
    let result = match crate::rules::load(&opts.rules, opts.kernel_filters) {
        Err(problems) => {
            for problem in &problems {
                tracing::error!(%problem, "rules file");
            }
            Err("the rules do not load")
        }
        Ok(loaded) => match probe.retarget(&loaded.interesting, &loaded.filters) {
            Err(e) => {
                tracing::error!(error = %e, "the kernel side could not take the new rules");
                Err("the kernel side could not take the new rules")
            }
            Ok(()) => {
                tracing::info!(
                    rules = loaded.ruleset.rules().len(),
                    syscalls = loaded.interesting.len(),
                    "rules reloaded"
                );
                pipeline.names.set_rules(&loaded.ruleset);
                pipeline.ruleset = loaded.ruleset;
                pipeline.evaluated = loaded.evaluated;
                Ok(())
            }
        },
    };
    if let Err(why) = result {
        tracing::error!("{why}; the running rules are kept");
    }
    let label = if result.is_ok() { "ok" } else { "error" };
    pipeline
        .metrics
        .rules_reloads
        .with_label_values(&[label])
        .inc();
}

fn drain(ring: &mut aya::maps::RingBuf<aya::maps::MapData>, pipeline: &mut Pipeline) {
    while let Some(item) = ring.next() {
        match records::decode(&item) {
            Ok(record) => {
                drop(item);
                pipeline.handle(record);
            }
            Err(e) => {
                pipeline.metrics.decode_errors.inc();
                tracing::debug!(error = %e, "undecodable record");
            }
        }
    }
}

/// Falco's drop alert: rule `Falco internal: syscall event drop`, priority Debug, source
/// `internal`, output fields as strings. The rule name is Falco's so that routes written for
/// Falco keep working.
fn drop_alert(hostname: &str, events: u64, drops: u64, total: u64) -> Alert {
    let mut fields = serde_json::Map::new();
    fields.insert("n_evts".into(), events.to_string().into());
    fields.insert("n_drops".into(), drops.to_string().into());
    fields.insert("n_drops_buffer_total".into(), total.to_string().into());
    fields.insert("ebpf_enabled".into(), "1".into());
    let time = EventTime::now();
    Alert {
        hostname: Some(hostname.to_string()),
        output: format!(
            "{}: Debug {drops} system calls dropped in last second.",
            peregrine_engine::output::clock_time(time.unix_nanos())
        ),
        output_fields: fields,
        priority: Priority::Debug,
        rule: "Falco internal: syscall event drop".to_string(),
        source: "internal".to_string(),
        tags: Vec::new(),
        time,
        uuid: None,
    }
}

/// Resolves at SIGTERM or SIGINT. The handlers are installed when this is called, not when the
/// future is first polled.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}
