//! Per-output dead-letter files: alerts an output could never deliver, one JSON line each.
//!
//! ```json
//! {"time":"2026-06-12T09:23:11.000000000Z","output":"ops-hook","status":400,"reason":"Bad Request","attempts":1,"alert":{...}}
//! ```
//! A line is fsync'd before the output's cursor moves past its alert, so an alert is always either
//! pending in the spool or in this file.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use peregrine_engine::EventTime;

/// One dead-lettered alert.
pub struct DeadLetter<'a> {
    pub status: Option<u16>,
    pub reason: &'a str,
    pub attempts: u32,
    /// The alert's stored JSON, embedded as is.
    pub alert_json: &'a [u8],
}

pub struct DeadLetterFile {
    output: String,
    path: PathBuf,
    file: Mutex<File>,
}

impl DeadLetterFile {
    pub fn open(path: &Path, output: &str) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(DeadLetterFile {
            output: output.to_string(),
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends the entries and makes them durable. Blocking: call from a blocking context.
    pub fn write(&self, entries: &[DeadLetter<'_>]) -> io::Result<()> {
        let now = EventTime::now().to_string();
        let mut text = Vec::new();
        for e in entries {
            let status = e.status.map_or("null".to_string(), |s| s.to_string());
            let head = format!(
                "{{\"time\":\"{now}\",\"output\":{},\"status\":{status},\"reason\":{},\"attempts\":{},\"alert\":",
                serde_json::to_string(&self.output).expect("a string serialises"),
                serde_json::to_string(e.reason).expect("a string serialises"),
                e.attempts,
            );
            text.extend_from_slice(head.as_bytes());
            text.extend_from_slice(e.alert_json);
            text.extend_from_slice(b"}\n");
        }
        let mut file = self.file.lock().expect("dead-letter lock");
        // Whole or not at all: a failed write is cut back, so a retry never leaves half a line.
        let before = file.metadata()?.len();
        let written = file.write_all(&text).and_then(|()| file.sync_data());
        if written.is_err() {
            let _ = file.set_len(before);
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_with_the_alert_embedded() {
        let tmp = tempfile::tempdir().unwrap();
        let dl = DeadLetterFile::open(&tmp.path().join("x.jsonl"), "ops-hook").unwrap();
        dl.write(&[
            DeadLetter {
                status: Some(400),
                reason: "Bad \"Request\"",
                attempts: 1,
                alert_json: br#"{"rule":"r","uuid":"u1"}"#,
            },
            DeadLetter {
                status: None,
                reason: "gave up",
                attempts: 12,
                alert_json: br#"{"rule":"r","uuid":"u2"}"#,
            },
        ])
        .unwrap();
        let text = std::fs::read_to_string(dl.path()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["status"], 400);
        assert_eq!(lines[0]["reason"], "Bad \"Request\"");
        assert_eq!(lines[0]["output"], "ops-hook");
        assert_eq!(lines[0]["alert"]["uuid"], "u1");
        assert!(lines[1]["status"].is_null());
        assert_eq!(lines[1]["attempts"], 12);
        assert!(lines[1]["time"].as_str().unwrap().ends_with('Z'));
    }
}
