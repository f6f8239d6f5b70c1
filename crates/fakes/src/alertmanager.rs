//! Prometheus Alertmanager (Debian's `prometheus-alertmanager`) as a child process on
//! 127.0.0.1, with a route that notifies nobody: a real `POST /api/v2/alerts` to send to and
//! `GET /api/v2/alerts` to read back.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CONFIG: &str = "route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n";

pub struct Alertmanager {
    pub url: String,
    child: Child,
    dir: PathBuf,
}

/// `ALERTMANAGER_BIN`, or Debian's binary.
fn binary() -> String {
    std::env::var("ALERTMANAGER_BIN").unwrap_or_else(|_| "prometheus-alertmanager".into())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Alertmanager {
    /// Starts a fresh Alertmanager (no cluster) and waits until it is ready.
    pub async fn start() -> Alertmanager {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("peregrine-am-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        std::fs::write(dir.join("alertmanager.yml"), CONFIG).expect("the config is written");
        let child = Command::new(binary())
            .arg(format!("--config.file={}", dir.join("alertmanager.yml").display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): install Debian's prometheus-alertmanager (scripts/setup.sh test does)",
                    binary()
                )
            });
        let am = Alertmanager {
            url: format!("http://127.0.0.1:{port}"),
            child,
            dir,
        };
        am.wait_ready().await;
        am
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/-/ready", self.url)).await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "Alertmanager at {} never became ready",
                self.url
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every alert Alertmanager holds (`GET /api/v2/alerts`).
    pub async fn alerts(&self) -> Vec<serde_json::Value> {
        reqwest::get(format!("{}/api/v2/alerts", self.url))
            .await
            .expect("Alertmanager answers")
            .json()
            .await
            .expect("a JSON array")
    }

    /// Waits until Alertmanager holds `n` alerts (or panics after `timeout`).
    pub async fn wait_alerts(&self, n: usize, timeout: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let alerts = self.alerts().await;
            if alerts.len() >= n {
                return alerts;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} alerts after {timeout:?}",
                alerts.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
