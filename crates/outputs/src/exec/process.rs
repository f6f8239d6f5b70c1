//! The plugin's process: started on first use, restarted with backoff when it exits, breaks the
//! protocol or hangs, its stderr forwarded to the log under the output's name.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::Instant;

use super::config::ExecSettings;
use super::protocol::MAX_ANSWER_BYTES;

/// Restarts wait 100 ms, doubling to at most 30 s, so a plugin that cannot start does not spin.
const FIRST_RESTART_WAIT: Duration = Duration::from_millis(100);
const MAX_RESTART_WAIT: Duration = Duration::from_secs(30);

/// How long a plugin that closed its pipes is given to exit, for its status in the log.
const EXIT_STATUS_WAIT: Duration = Duration::from_millis(500);

/// A stderr line longer than this is cut in the log.
const MAX_STDERR_LINE: usize = 4096;

/// A running plugin and the pipes the protocol uses.
pub struct Running {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Failures in a row before this start; cleared by a batch that goes through.
    failures: u32,
}

/// The plugin's process, and a count of its stops and failed starts.
pub struct Process {
    state: State,
    failures_total: Arc<AtomicU64>,
}

/// Where the plugin's process is.
enum State {
    Running(Box<Running>),
    /// Not running: started at the next batch from `at` on. `failures` in a row so far.
    Waiting {
        at: Instant,
        failures: u32,
    },
}

impl Process {
    /// A plugin to start at the first batch; `failures_total` counts its stops and failed starts.
    pub fn new(failures_total: Arc<AtomicU64>) -> Self {
        Process {
            state: State::Waiting {
                at: Instant::now(),
                failures: 0,
            },
            failures_total,
        }
    }

    /// The running plugin, started if it is time; otherwise how long until it may be.
    pub fn running(
        &mut self,
        settings: &ExecSettings,
        output: &str,
    ) -> Result<&mut Running, Duration> {
        if let State::Waiting { at, failures } = self.state {
            let now = Instant::now();
            if now < at {
                return Err(at - now);
            }
            match spawn(settings, output, failures) {
                Ok(running) => self.state = State::Running(Box::new(running)),
                Err(e) => {
                    tracing::warn!(output, error = %e, program = %settings.program.display(), "the plugin did not start");
                    self.failed(failures);
                    return Err(self.wait());
                }
            }
        }
        match &mut self.state {
            State::Running(running) => Ok(running),
            State::Waiting { .. } => unreachable!("started above"),
        }
    }

    /// Stops a plugin that broke the protocol, exited or hung (`why`); it restarts after a wait
    /// that grows with the failures in a row.
    pub fn restart_later(&mut self, output: &str, why: &str) {
        let failures = match &mut self.state {
            State::Running(running) => {
                // Killed on drop as well; said here so the reason is in the log.
                let _ = running.child.start_kill();
                running.failures
            }
            State::Waiting { failures, .. } => *failures,
        };
        self.failed(failures);
        tracing::warn!(output, reason = why, restart_in = ?self.wait(), "plugin stopped; it is started again for the next batch");
    }

    /// A batch went through: the next failure waits the shortest time again.
    pub fn succeeded(&mut self) {
        if let State::Running(running) = &mut self.state {
            running.failures = 0;
        }
    }

    fn failed(&mut self, failures_before: u32) {
        self.failures_total.fetch_add(1, Ordering::Relaxed);
        let failures = failures_before.saturating_add(1);
        let wait = FIRST_RESTART_WAIT
            .saturating_mul(1 << (failures - 1).min(16))
            .min(MAX_RESTART_WAIT);
        self.state = State::Waiting {
            at: Instant::now() + wait,
            failures,
        };
    }

    fn wait(&self) -> Duration {
        match &self.state {
            State::Waiting { at, .. } => at.saturating_duration_since(Instant::now()),
            State::Running(_) => Duration::ZERO,
        }
    }
}

impl Running {
    /// Writes one batch line and reads one answer line.
    pub async fn exchange(&mut self, line: &[u8]) -> Result<Vec<u8>, String> {
        if let Err(e) = self.write(line).await {
            return Err(self
                .exited(format!("cannot write to the plugin: {e}"))
                .await);
        }
        let mut answer = Vec::new();
        let read = (&mut self.stdout)
            .take(MAX_ANSWER_BYTES as u64)
            .read_until(b'\n', &mut answer)
            .await;
        match read {
            Err(e) => Err(self
                .exited(format!("cannot read the plugin's answer: {e}"))
                .await),
            Ok(0) => Err(self
                .exited("the plugin closed its stdout".to_string())
                .await),
            Ok(_) if !answer.ends_with(b"\n") && answer.len() >= MAX_ANSWER_BYTES => Err(format!(
                "the plugin's answer is longer than {MAX_ANSWER_BYTES} bytes"
            )),
            Ok(_) if !answer.ends_with(b"\n") => Err(self
                .exited("the plugin closed its stdout mid-answer".to_string())
                .await),
            Ok(_) => Ok(answer),
        }
    }

    async fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.stdin.write_all(line).await?;
        self.stdin.flush().await
    }

    /// `why`, with the exit status when the plugin exits within a moment (a closed pipe
    /// usually means it is exiting, but it may not have been reaped yet).
    async fn exited(&mut self, why: String) -> String {
        match tokio::time::timeout(EXIT_STATUS_WAIT, self.child.wait()).await {
            Ok(Ok(status)) => format!("{why} (it exited: {status})"),
            _ => why,
        }
    }
}

/// Starts the plugin with a clean environment: `PATH` and the configured `env`, nothing of the
/// gateway's own (which may hold other outputs' secrets).
fn spawn(settings: &ExecSettings, output: &str, failures: u32) -> std::io::Result<Running> {
    let mut command = Command::new(&settings.program);
    command
        .args(&settings.args)
        .env_clear()
        .envs(std::env::var_os("PATH").map(|p| ("PATH", p)))
        .envs(settings.env.iter().map(|(k, v)| (k, v.expose())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn()?;
    let stdin = child.stdin.take().expect("piped");
    let stdout = BufReader::new(child.stdout.take().expect("piped"));
    let stderr = child.stderr.take().expect("piped");
    tokio::spawn(forward_stderr(stderr, output.to_string()));
    tracing::info!(output, pid = child.id(), "plugin started");
    Ok(Running {
        child,
        stdin,
        stdout,
        failures,
    })
}

/// Every stderr line of the plugin, in the log with the output's name, until it closes.
async fn forward_stderr(stderr: tokio::process::ChildStderr, output: String) {
    let mut lines = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut lines)
            .take(MAX_STDERR_LINE as u64)
            .read_until(b'\n', &mut line)
            .await;
        match read {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                tracing::warn!(output = %output, "plugin: {}", text.trim_end());
            }
        }
    }
}
