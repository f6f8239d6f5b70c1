//! The plugin line protocol, version 1 (`docs/plugins.md`): one JSON line per batch on the
//! plugin's stdin, one JSON line per answer on its stdout.

use serde::Deserialize;

use crate::delivery::{Delivery, Failure, ItemResult};
use crate::envelope::Envelope;

pub const VERSION: u32 = 1;

/// The most of one answer line read; an answer is a few dozen bytes an alert.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// A plugin's `fail` reason is kept to this many characters in dead letters.
const MAX_REASON_CHARS: usize = 500;

/// `{"v":1,"batch":ID,"alerts":[ALERT,…]}` and a newline; each alert is its stored JSON, uuid
/// included.
pub fn batch_line(id: u64, batch: &[Envelope]) -> Vec<u8> {
    let size: usize = batch.iter().map(|e| e.json.len() + 1).sum();
    let mut line = Vec::with_capacity(size + 48);
    line.extend_from_slice(format!("{{\"v\":{VERSION},\"batch\":{id},\"alerts\":[").as_bytes());
    for (i, e) in batch.iter().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        line.extend_from_slice(&e.json);
    }
    line.extend_from_slice(b"]}\n");
    line
}

#[derive(Deserialize)]
struct Answer {
    batch: u64,
    results: Vec<AlertResult>,
}

#[derive(Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
enum AlertResult {
    Ok,
    Retry { after_ms: Option<u64> },
    Fail { reason: Option<String> },
}

/// Reads the answer to batch `id` of `n` alerts. An `Err` is a broken protocol (the plugin is
/// restarted and the batch tried again): not JSON, another batch's id, a result count that is
/// not `n`, an unknown status.
///
/// Every alert `retry` with at least one `after_ms` pauses the output for the longest of them;
/// otherwise each alert takes its own result.
pub fn read_answer(line: &[u8], id: u64, n: usize) -> Result<Delivery, String> {
    let answer: Answer = serde_json::from_slice(line)
        .map_err(|e| format!("the plugin's answer is not protocol JSON ({e})"))?;
    if answer.batch != id {
        return Err(format!(
            "the plugin answered batch {} while batch {id} was waiting",
            answer.batch
        ));
    }
    if answer.results.len() != n {
        return Err(format!(
            "the plugin gave {} results for {n} alerts",
            answer.results.len()
        ));
    }
    let asked_to_wait =
        || Failure::new(None, "the plugin asked to retry").with_code("plugin_retry");
    if answer.results.iter().all(|r| matches!(r, AlertResult::Ok)) {
        return Ok(Delivery::Delivered);
    }
    let all_retry = answer
        .results
        .iter()
        .all(|r| matches!(r, AlertResult::Retry { .. }));
    let longest_wait = answer
        .results
        .iter()
        .filter_map(|r| match r {
            AlertResult::Retry { after_ms } => *after_ms,
            _ => None,
        })
        .max();
    if let (true, Some(ms)) = (all_retry, longest_wait) {
        return Ok(Delivery::RetryAfter(
            asked_to_wait(),
            std::time::Duration::from_millis(ms),
        ));
    }
    let items = answer
        .results
        .into_iter()
        .map(|r| match r {
            AlertResult::Ok => ItemResult::Delivered,
            AlertResult::Retry { .. } => ItemResult::Retry(asked_to_wait()),
            AlertResult::Fail { reason } => {
                let reason: String = reason
                    .unwrap_or_else(|| "no reason given".into())
                    .chars()
                    .take(MAX_REASON_CHARS)
                    .collect();
                ItemResult::Permanent(
                    Failure::new(None, format!("the plugin failed it: {reason}"))
                        .with_code("plugin_fail"),
                )
            }
        })
        .collect();
    Ok(Delivery::Partial(items))
}
