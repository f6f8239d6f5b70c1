//! `peregrine-gateway` as a child process on 127.0.0.1.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::bin;

pub struct GatewayProcess {
    pub base: String,
    child: Child,
    pub dir: PathBuf,
    log: PathBuf,
    /// The lines `start` puts before the test's config (listen and spool).
    preamble: String,
    /// The client requests go through (one that trusts the test CA for `https`).
    client: reqwest::Client,
}

/// How to start the gateway, beyond its config.
#[derive(Default)]
pub struct Launch<'a> {
    pub env: &'a [(&'a str, &'a str)],
    /// `RLIMIT_NOFILE` (soft and hard) for the gateway process.
    pub nofile: Option<u64>,
    /// Speak HTTPS with this client (the config has a `tls` block).
    pub tls_client: Option<reqwest::Client>,
    /// A command that runs the gateway: it gets the gateway's path and arguments after its own
    /// and must `exec` them (so the pid stays the gateway's), e.g. `unshare -m sh -c '…; exec "$@"'`.
    pub via: Vec<String>,
    /// Return as soon as the process runs, without waiting for `/readyz` (to kill it while it
    /// starts).
    pub unready: bool,
}

impl GatewayProcess {
    /// Starts the gateway with `config` (YAML; `listen` is set here to a free loopback port) and
    /// waits until it is ready. `dir` holds the config file, the logs and, by default, the spool.
    pub async fn start(dir: &Path, config: &str) -> GatewayProcess {
        Self::start_with_env(dir, config, &[]).await
    }

    pub async fn start_with_env(dir: &Path, config: &str, env: &[(&str, &str)]) -> GatewayProcess {
        Self::launch(
            dir,
            config,
            Launch {
                env,
                ..Launch::default()
            },
        )
        .await
    }

    pub async fn launch(dir: &Path, config: &str, launch: Launch<'_>) -> GatewayProcess {
        fs::create_dir_all(dir).unwrap();
        let port = crate::receiver::unused_port();
        let mut preamble = format!("listen: \"127.0.0.1:{port}\"\n");
        if !config.contains("spool:") {
            preamble.push_str(&format!(
                "spool: {{ dir: \"{}\" }}\n",
                dir.join("spool").display()
            ));
        }
        let config_path = dir.join("gateway.yaml");
        fs::write(&config_path, format!("{preamble}{config}")).unwrap();
        let log = dir.join(format!("gateway-{port}.log"));
        let stdout = dir.join(format!("gateway-{port}.stdout"));
        let mut command = match launch.via.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin("peregrine-gateway"));
                c
            }
            None => Command::new(bin("peregrine-gateway")),
        };
        command
            .arg("--config")
            .arg(&config_path)
            .env("PEREGRINE_LOG", "info,peregrine_gateway=debug")
            .envs(launch.env.iter().copied())
            .stdout(Stdio::from(fs::File::create(&stdout).unwrap()))
            .stderr(Stdio::from(fs::File::create(&log).unwrap()));
        if let Some(n) = launch.nofile {
            limit_open_files(&mut command, n);
        }
        let child = command.spawn().expect("the gateway starts");
        let scheme = if launch.tls_client.is_some() {
            "https"
        } else {
            "http"
        };
        let mut gw = GatewayProcess {
            base: format!("{scheme}://127.0.0.1:{port}"),
            child,
            dir: dir.to_path_buf(),
            log,
            preamble,
            client: launch.tls_client.unwrap_or_default(),
        };
        if !launch.unready {
            gw.wait_ready().await;
        }
        gw
    }

    /// The listen address, `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        self.base.rsplit('/').next().unwrap().to_string()
    }

    /// Replaces the config file (keeping its listen address and spool) and sends SIGHUP.
    pub fn reload(&self, config: &str) {
        fs::write(
            self.dir.join("gateway.yaml"),
            format!("{}{config}", self.preamble),
        )
        .unwrap();
        // SAFETY: signalling our own child, whose pid stays valid until we wait on it.
        unsafe { libc::kill(self.pid(), libc::SIGHUP) };
    }

    /// Resident memory of the gateway process, from /proc, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        crate::proc_status_kib(self.pid() as u32, "VmRSS") * 1024
    }

    /// Waits until the gateway's log contains `text`, or panics with the log after `timeout`.
    pub async fn wait_log(&self, text: &str, timeout: Duration) {
        self.wait_log_every(text, timeout, Duration::from_millis(20))
            .await
    }

    /// [`GatewayProcess::wait_log`], looking every `every` (short, to act right after a line).
    pub async fn wait_log_every(&self, text: &str, timeout: Duration, every: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.logs().contains(text) {
            if tokio::time::Instant::now() > deadline {
                panic!("the log never said {text:?}:\n{}", self.logs());
            }
            tokio::time::sleep(every).await;
        }
    }

    async fn wait_ready(&mut self) {
        let client = self.client.clone();
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "the gateway exited with {status} before it was ready:\n{}",
                    self.logs()
                );
            }
            if let Ok(r) = client.get(format!("{}/readyz", self.base)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the gateway did not become ready:\n{}", self.logs());
    }

    pub fn logs(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        let path = self.log.with_extension("stdout");
        fs::read_to_string(path).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// `kill -9`: no chance to clean up.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then the exit status (within `timeout`).
    pub async fn terminate(mut self, timeout: Duration) -> ExitStatus {
        // SAFETY: sending a signal to our own child, whose pid is valid until we wait on it.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if tokio::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "the gateway did not exit within {timeout:?} of SIGTERM:\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// POSTs a JSON body to `/`.
    pub async fn post(&self, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(format!("{}/", self.base))
            .json(body)
            .send()
            .await
            .expect("the gateway answers")
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics answer")
            .text()
            .await
            .unwrap()
    }

    /// Waits until a sample reaches `at_least` (or panics after `timeout` with the last value).
    pub async fn wait_metric(&self, series: &str, at_least: f64, timeout: Duration) -> f64 {
        let wanted = format!("at least {at_least}");
        self.wait_metric_until(series, &wanted, timeout, |v| v >= at_least)
            .await
    }

    /// Waits until a sample falls to `at_most` (a queue drained), or panics after `timeout`.
    pub async fn wait_metric_at_most(&self, series: &str, at_most: f64, timeout: Duration) -> f64 {
        let wanted = format!("at most {at_most}");
        self.wait_metric_until(series, &wanted, timeout, |v| v <= at_most)
            .await
    }

    async fn wait_metric_until(
        &self,
        series: &str,
        wanted: &str,
        timeout: Duration,
        done: impl Fn(f64) -> bool,
    ) -> f64 {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // A labelled counter appears at its first increment: absent means not yet.
            let text = self.metrics().await;
            let v = metric_sample(&text, series);
            if let Some(v) = v.filter(|v| done(*v)) {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                match v {
                    Some(v) => panic!(
                        "{series} is {v} after {timeout:?}, expected {wanted}; the gateway's \
                         log:\n{}",
                        self.logs()
                    ),
                    None => {
                        panic!("{series} never appeared in /metrics within {timeout:?}:\n{text}")
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A sample's value from `/metrics`, e.g. `peregrine_output_sent_total{output="a",type="webhook"}`.
    pub async fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics().await, series)
    }

    /// A sample's value, `None` while the series is absent (a labelled counter before its first
    /// increment).
    pub async fn metric_sample(&self, series: &str) -> Option<f64> {
        metric_sample(&self.metrics().await, series)
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sample's value in a `/metrics` text. Panics when the series is not there: a renamed or
/// missing metric must fail a test, not read as 0 (use [`metric_sample`] where absence is the
/// point).
pub fn metric_value(text: &str, series: &str) -> f64 {
    metric_sample(text, series).unwrap_or_else(|| {
        let name = series.split('{').next().unwrap_or(series);
        let near: Vec<&str> = text.lines().filter(|l| l.starts_with(name)).collect();
        panic!("no series {series} in /metrics; series of that name: {near:#?}")
    })
}

/// A sample's value, or `None` when no series matches. `series` is a selector as in PromQL,
/// `name{label="value",...}`: every series of that name carrying those labels (and any others)
/// matches, and their values are summed, as `sum(...)` would.
pub fn metric_sample(text: &str, series: &str) -> Option<f64> {
    let (name, wanted) = split_series(series);
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((sample, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (sample_name, labels) = split_series(sample);
        if sample_name == name && wanted.iter().all(|w| labels.contains(w)) {
            let value: f64 = value.trim().parse().expect("a number");
            *found.get_or_insert(0.0) += value;
        }
    }
    found
}

/// `name{a="x",b="y"}` into the name and its `a="x"` pairs (values may hold commas and escaped
/// quotes).
fn split_series(series: &str) -> (&str, Vec<&str>) {
    let Some((name, rest)) = series.split_once('{') else {
        return (series, Vec::new());
    };
    let body = rest.strip_suffix('}').unwrap_or(rest);
    let mut pairs = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                pairs.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < body.len() {
        pairs.push(&body[start..]);
    }
    (name, pairs)
}

/// Sets `RLIMIT_NOFILE` (soft and hard) in the child before it executes.
fn limit_open_files(command: &mut Command, n: u64) {
    use std::os::unix::process::CommandExt;
    let limit = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    // SAFETY: setrlimit is async-signal-safe and only touches the child being set up.
    unsafe {
        command.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// What a run of `peregrine-gateway` to its exit printed.
pub struct CliRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    /// stdout then stderr, for assertions that do not care which.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `peregrine-gateway` with `args` and `env` to its exit.
pub fn run_cli<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> CliRun {
    let out = Command::new(bin("peregrine-gateway"))
        .args(args)
        .env("PEREGRINE_LOG", "info")
        .envs(env.iter().copied())
        .output()
        .expect("the gateway runs");
    CliRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `peregrine-gateway hash-password` with `password` on its stdin: the argon2id hash it prints.
pub fn hash_password(password: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(bin("peregrine-gateway"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the gateway runs");
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "hash-password failed");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
