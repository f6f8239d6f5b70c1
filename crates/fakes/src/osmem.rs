//! `osmem-server` (PyPI `osmem-server`, an in-memory OpenSearch-API emulator) as a child process
//! on 127.0.0.1: a real `_bulk`, `_search` and `_count` to check documents against.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub struct Osmem {
    pub url: String,
    child: Child,
}

/// Where the server binary is: `OSMEM_SERVER_BIN`, or the one the Python package bundles.
fn binary() -> String {
    if let Ok(path) = std::env::var("OSMEM_SERVER_BIN") {
        return path;
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import osmem_server; print(osmem_server.resolve_binary())",
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "osmem-server is not installed (scripts/setup.sh test installs it: pip install osmem-server): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("a path")
        .trim()
        .to_string()
}

impl Osmem {
    /// Starts a fresh server on a free loopback port; it exits with this process.
    pub fn start() -> Osmem {
        let mut child = Command::new(binary())
            .args([
                "-addr",
                "127.0.0.1:0",
                "-no-stdin-watch",
                "-no-ja",
                "-parent-pid",
            ])
            .arg(std::process::id().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("osmem-server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("osmem-server prints where it listens");
        let info: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        let url = info["url"].as_str().expect("a url").to_string();
        Osmem { url, child }
    }

    /// `GET {path}` as JSON.
    pub async fn get(&self, path: &str) -> serde_json::Value {
        let r = reqwest::get(format!("{}{path}", self.url))
            .await
            .expect("osmem answers");
        r.json().await.expect("JSON")
    }

    /// The number of documents in `index` (a name or pattern), after a refresh.
    pub async fn count(&self, index: &str) -> u64 {
        let client = reqwest::Client::new();
        let _ = client
            .post(format!("{}/{index}/_refresh", self.url))
            .send()
            .await;
        let v: serde_json::Value = client
            .get(format!("{}/{index}/_count", self.url))
            .send()
            .await
            .expect("osmem answers")
            .json()
            .await
            .expect("JSON");
        v["count"].as_u64().unwrap_or(0)
    }
}

impl Drop for Osmem {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
