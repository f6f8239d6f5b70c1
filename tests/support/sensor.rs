//! `peregrine-sensor run` as a child process (root only: it loads BPF programs).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::bin;

pub struct SensorProcess {
    child: Child,
    stdout: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
}

impl SensorProcess {
    /// Starts the sensor with `args` after `run`, and waits until the kernel side is attached.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> SensorProcess {
        let stdout = dir.join("sensor-alerts.jsonl");
        let mut child = Command::new(bin("peregrine-sensor"))
            .arg("run")
            .args(args)
            .env("PEREGRINE_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::from(std::fs::File::create(&stdout).unwrap()))
            .stderr(Stdio::piped())
            .spawn()
            .expect("the sensor starts");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        std::thread::spawn({
            let logs = logs.clone();
            move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    logs.lock().unwrap().push(line);
                }
            }
        });
        let mut sensor = SensorProcess {
            child,
            stdout,
            logs,
        };
        sensor.wait_log("kernel side attached", Duration::from_secs(60));
        sensor
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Waits until a log line contains `text`; panics with the logs after `timeout`, or if the
    /// sensor exits first.
    pub fn wait_log(&mut self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.logs().contains(text) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the sensor exited with {status}:\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "the sensor never logged {text:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The alerts printed so far (`--stdout`).
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.stdout)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: signalling our own child, whose pid is valid until it is waited on.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }
}

impl Drop for SensorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A rule that fires when `path` is opened.
pub fn open_rule(name: &str, path: &Path) -> String {
    format!(
        "- rule: {name}\n  desc: test rule\n  condition: evt.type in (open, openat, openat2) and fd.name = {}\n  output: \"{name}: %proc.name opened %fd.name\"\n  priority: WARNING\n",
        path.display()
    )
}

/// Opens `path` every 100 ms until `done` says so or `timeout` passes; whether it did.
pub fn open_until(path: &Path, timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let _ = std::fs::read(path);
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
