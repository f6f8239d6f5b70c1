//! Per-output dead-letter files: alerts an output could never deliver, one JSON line each.
//!
//! ```json
//! {"time":"2026-06-12T09:23:11.000000000Z","output":"ops-hook","status":400,"code":"http_400","reason":"Bad Request","attempts":1,"alert":{...}}
//! ```
//! A line is fsync'd before the output's cursor moves past its alert, so an alert is always either
//! pending in the spool or in this file.
//!
//! The files are bounded (`dead_letter: {max_bytes, max_files}`, per output): the current file
//! rotates to `<output>.<n>.jsonl` once it holds `max_bytes / max_files`, and the oldest rotated
//! file is deleted (and logged) when there are more than `max_files`. A destination that refuses
//! everything for weeks fills a known amount of disk, not the whole disk.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use peregrine_engine::EventTime;

/// One dead-lettered alert.
pub struct DeadLetter<'a> {
    pub status: Option<u16>,
    /// The bounded reason word of `peregrine_output_dead_lettered_by_reason_total`.
    pub code: &'a str,
    pub reason: &'a str,
    pub attempts: u32,
    /// The alert's stored JSON, embedded as is.
    pub alert_json: &'a [u8],
}

/// How much dead-letter data one output keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadLetterLimits {
    pub max_bytes: u64,
    pub max_files: usize,
}

impl Default for DeadLetterLimits {
    fn default() -> Self {
        DeadLetterLimits {
            max_bytes: 1 << 30,
            max_files: 8,
        }
    }
}

/// Told when an alert is dead-lettered (the console shows it on the alert).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLettered {
    pub output: String,
    pub uuid: String,
    pub code: String,
    pub reason: String,
}

pub struct DeadLetterFile {
    output: String,
    /// Where [`DeadLettered`] events go once entries are durable; nobody listening is fine.
    events: Option<tokio::sync::broadcast::Sender<DeadLettered>>,
    path: PathBuf,
    limits: DeadLetterLimits,
    inner: Mutex<Current>,
    /// Bytes in the current and rotated files together.
    bytes: AtomicU64,
}

struct Current {
    file: File,
    len: u64,
    /// Rotated files, oldest first, with their index and size.
    rotated: VecDeque<(u64, u64)>,
}

impl DeadLetterFile {
    pub fn open(path: &Path, output: &str, limits: DeadLetterLimits) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let len = file.metadata()?.len();
        let rotated = rotated_files(path)?;
        let bytes = len + rotated.iter().map(|(_, b)| b).sum::<u64>();
        Ok(DeadLetterFile {
            output: output.to_string(),
            events: None,
            path: path.to_path_buf(),
            limits,
            inner: Mutex::new(Current { file, len, rotated }),
            bytes: AtomicU64::new(bytes),
        })
    }

    /// Sends a [`DeadLettered`] event for every entry written from now on.
    pub fn with_events(mut self, events: tokio::sync::broadcast::Sender<DeadLettered>) -> Self {
        self.events = Some(events);
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of dead letters this output keeps on disk.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Starts a new current file, deleting the oldest rotated ones beyond `max_files`.
    fn rotate(&self, current: &mut Current) -> io::Result<()> {
        let index = current.rotated.back().map_or(1, |(i, _)| i + 1);
        std::fs::rename(&self.path, rotated_path(&self.path, index))?;
        current.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        current.rotated.push_back((index, current.len));
        current.len = 0;
        while current.rotated.len() + 1 > self.limits.max_files {
            let (old, size) = current.rotated.pop_front().expect("more than one");
            let old_path = rotated_path(&self.path, old);
            std::fs::remove_file(&old_path)?;
            self.bytes.fetch_sub(size, Ordering::Relaxed);
            tracing::warn!(output = %self.output, file = %old_path.display(), bytes = size, "dead_letter.max_bytes reached: deleted the oldest dead letters");
        }
        if let Some(dir) = self.path.parent() {
            crate::spool::sync_dir(dir)?;
        }
        Ok(())
    }

    /// Appends the entries and makes them durable. Blocking: call from a blocking context.
    pub fn write(&self, entries: &[DeadLetter<'_>]) -> io::Result<()> {
        let now = EventTime::now().to_string();
        let mut text = Vec::new();
        for e in entries {
            let status = e.status.map_or("null".to_string(), |s| s.to_string());
            let head = format!(
                "{{\"time\":\"{now}\",\"output\":{},\"status\":{status},\"code\":{},\"reason\":{},\"attempts\":{},\"alert\":",
                serde_json::to_string(&self.output).expect("a string serialises"),
                serde_json::to_string(e.code).expect("a string serialises"),
                serde_json::to_string(e.reason).expect("a string serialises"),
                e.attempts,
            );
            text.extend_from_slice(head.as_bytes());
            text.extend_from_slice(e.alert_json);
            text.extend_from_slice(b"}\n");
        }
        let mut current = self.inner.lock().expect("dead-letter lock");
        let per_file = (self.limits.max_bytes / self.limits.max_files as u64).max(1);
        if current.len > 0 && current.len + text.len() as u64 > per_file {
            self.rotate(&mut current)?;
        }
        // Whole or not at all: a failed write is cut back, so a retry never leaves half a line.
        let before = current.len;
        let written = current
            .file
            .write_all(&text)
            .and_then(|()| current.file.sync_data());
        if written.is_err() {
            let _ = current.file.set_len(before);
            return written;
        }
        current.len += text.len() as u64;
        self.bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
        drop(current);
        self.announce(entries);
        Ok(())
    }

    /// Takes `lines` out of the current and rotated files while the output keeps writing (a
    /// redrive from the console): each file is rewritten atomically under the writer's lock, and
    /// the current one reopened. Returns how many lines went.
    pub fn remove_lines(&self, lines: &std::collections::HashSet<String>) -> io::Result<usize> {
        let mut current = self.inner.lock().expect("dead-letter lock");
        let mut removed = 0;
        let mut sizes = Vec::new();
        for file in all_files(&self.path)? {
            let text = std::fs::read_to_string(&file)?;
            let kept: String = text
                .split_inclusive('\n')
                .filter(|l| !lines.contains(l.trim_end_matches('\n')))
                .collect();
            if kept.len() != text.len() {
                removed += text.split_inclusive('\n').count() - kept.split_inclusive('\n').count();
                let tmp = file.with_extension("jsonl.tmp");
                let mut f = File::create(&tmp)?;
                f.write_all(kept.as_bytes())?;
                f.sync_all()?;
                std::fs::rename(&tmp, &file)?;
            }
            sizes.push((file, kept.len() as u64));
        }
        if let Some(dir) = self.path.parent() {
            crate::spool::sync_dir(dir)?;
        }
        current.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        current.len = current.file.metadata()?.len();
        for (index, size) in current.rotated.iter_mut() {
            let path = rotated_path(&self.path, *index);
            if let Some((_, s)) = sizes.iter().find(|(p, _)| *p == path) {
                *size = *s;
            }
        }
        let total = current.len + current.rotated.iter().map(|(_, b)| b).sum::<u64>();
        self.bytes.store(total, Ordering::Relaxed);
        Ok(removed)
    }

    fn announce(&self, entries: &[DeadLetter<'_>]) {
        #[derive(serde::Deserialize)]
        struct Id {
            uuid: Option<String>,
        }
        let Some(events) = &self.events else {
            return;
        };
        for e in entries {
            let Some(uuid) = serde_json::from_slice::<Id>(e.alert_json)
                .ok()
                .and_then(|id| id.uuid)
            else {
                continue;
            };
            let _ = events.send(DeadLettered {
                output: self.output.clone(),
                uuid,
                code: e.code.to_string(),
                reason: e.reason.to_string(),
            });
        }
    }
}

/// `<output>.<index>.jsonl` beside `<output>.jsonl`.
pub fn rotated_path(current: &Path, index: u64) -> PathBuf {
    let stem = current.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    current.with_file_name(format!("{stem}.{index}.jsonl"))
}

/// The rotated files of `current`, oldest (lowest index) first, with their sizes.
fn rotated_files(current: &Path) -> io::Result<VecDeque<(u64, u64)>> {
    let stem = current.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let mut found = Vec::new();
    let Some(dir) = current.parent() else {
        return Ok(VecDeque::new());
    };
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let index = name
            .to_str()
            .and_then(|n| n.strip_prefix(stem))
            .and_then(|n| n.strip_prefix('.'))
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(i) = index {
            found.push((i, entry.metadata()?.len()));
        }
    }
    found.sort();
    Ok(found.into())
}

/// Every dead-letter file of the output whose current file is `current`, oldest first.
pub fn all_files(current: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = rotated_files(current)?
        .into_iter()
        .map(|(i, _)| rotated_path(current, i))
        .collect();
    if current.exists() {
        files.push(current.to_path_buf());
    }
    Ok(files)
}

#[cfg(test)]
mod rotation_tests {
    use super::*;

    fn entry(json: &[u8]) -> DeadLetter<'_> {
        DeadLetter {
            status: Some(400),
            code: "http_400",
            reason: "Bad Request",
            attempts: 1,
            alert_json: json,
        }
    }

    #[test]
    fn files_rotate_and_the_oldest_go_beyond_max_files() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("hook.jsonl");
        let limits = DeadLetterLimits {
            max_bytes: 3000,
            max_files: 3,
        };
        let dl = DeadLetterFile::open(&path, "hook", limits).unwrap();
        let alert = format!("{{\"uuid\":\"u\",\"pad\":\"{}\"}}", "x".repeat(300));
        for _ in 0..20 {
            dl.write(&[entry(alert.as_bytes())]).unwrap();
        }
        let files = all_files(&path).unwrap();
        assert_eq!(files.len(), 3, "{files:?}");
        let on_disk: u64 = files
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
        assert_eq!(dl.bytes(), on_disk);
        assert!(on_disk <= 3000 + 500, "{on_disk}");
        // Every file holds whole lines only.
        for f in &files {
            for line in std::fs::read_to_string(f).unwrap().lines() {
                serde_json::from_str::<serde_json::Value>(line).unwrap();
            }
        }
        // Reopening finds what is there.
        drop(dl);
        let dl = DeadLetterFile::open(&path, "hook", limits).unwrap();
        assert_eq!(dl.bytes(), on_disk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_with_the_alert_embedded() {
        let tmp = tempfile::tempdir().unwrap();
        let dl = DeadLetterFile::open(
            &tmp.path().join("x.jsonl"),
            "ops-hook",
            DeadLetterLimits::default(),
        )
        .unwrap();
        dl.write(&[
            DeadLetter {
                status: Some(400),
                code: "http_400",
                reason: "Bad \"Request\"",
                attempts: 1,
                alert_json: br#"{"rule":"r","uuid":"u1"}"#,
            },
            DeadLetter {
                status: None,
                code: "retries_exhausted",
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
