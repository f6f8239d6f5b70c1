//! The batch APIs (SNS `PublishBatch`, SQS `SendMessageBatch`): entries grouped under a request's
//! limits, and each entry's result read back from the answer.

use std::collections::HashMap;

use super::response::{by_code, Codes};
use crate::delivery::{Failure, ItemResult};

/// Entries grouped in order so that no group has more than `max_entries` entries or, unless an
/// entry is that large alone, `max_bytes` bytes.
pub fn groups<T>(
    entries: Vec<(usize, T)>,
    max_entries: usize,
    max_bytes: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<Vec<(usize, T)>> {
    let mut groups: Vec<Vec<(usize, T)>> = Vec::new();
    let mut bytes = 0;
    for (i, entry) in entries {
        let s = size(&entry);
        match groups.last_mut() {
            Some(g) if bytes + s <= max_bytes && g.len() < max_entries => {
                bytes += s;
                g.push((i, entry));
            }
            _ => {
                bytes = s;
                groups.push(vec![(i, entry)]);
            }
        }
    }
    groups
}

/// One entry the service refused, as its batch answer reports it.
pub struct FailedEntry<'a> {
    /// The entry's `Id`: its index in our batch, as text.
    pub id: &'a str,
    pub code: &'a str,
    pub message: &'a str,
    /// The service's judgement: our fault (never retried unless the code says it passes).
    pub sender_fault: bool,
}

/// Each sent entry's result, by the `Id`s in the answer's successful and failed lists. An
/// entry the answer does not mention is retried: it may not have been stored.
pub fn entry_results<'a>(
    sent: &[usize],
    successful: impl IntoIterator<Item = &'a str>,
    failed: impl IntoIterator<Item = FailedEntry<'a>>,
    codes: Codes,
    service: &str,
) -> Vec<(usize, ItemResult)> {
    let mut results: HashMap<usize, ItemResult> = HashMap::new();
    for id in successful {
        if let Ok(i) = id.parse() {
            results.insert(i, ItemResult::Delivered);
        }
    }
    for f in failed {
        let Ok(i) = f.id.parse::<usize>() else {
            continue;
        };
        let mut c = by_code(codes, f.code, f.message, None);
        c.retry = c.retry || !f.sender_fault;
        results.insert(i, c.item());
    }
    sent.iter()
        .map(|i| {
            let r = results.remove(i).unwrap_or_else(|| {
                ItemResult::Retry(Failure::new(
                    None,
                    format!("{service} returned no result for this entry"),
                ))
            });
            (*i, r)
        })
        .collect()
}
