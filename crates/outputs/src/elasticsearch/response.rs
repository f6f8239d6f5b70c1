//! Reading `_bulk` answers item by item.
//!
//! A 200 can still hold failures (`"errors": true`), one per item in request order: 2xx is
//! stored, 409 on `create` means the document is already there (a replay) and counts as
//! delivered, 429 and 5xx are retried (only those items), anything else is permanent.

use serde::Deserialize;
use serde_json::Value;

use crate::delivery::{Delivery, Failure, ItemResult};

#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    errors: bool,
}

#[derive(Deserialize)]
struct Full {
    #[serde(default)]
    items: Vec<Value>,
}

/// Error types with a name of their own in the reason metric; the rest are `item_rejected`.
const KNOWN: [&str; 7] = [
    "mapper_parsing_exception",
    "document_parsing_exception",
    "illegal_argument_exception",
    "strict_dynamic_mapping_exception",
    "index_not_found_exception",
    "cluster_block_exception",
    "security_exception",
];

/// The outcome of a 200 answer to a bulk request of `n` items.
pub fn classify_bulk(body: &[u8], n: usize) -> Delivery {
    let Ok(head) = serde_json::from_slice::<Head>(body) else {
        return Delivery::Retry(Failure::new(Some(200), "the bulk answer is not JSON"));
    };
    if !head.errors {
        return Delivery::Delivered;
    }
    let Ok(full) = serde_json::from_slice::<Full>(body) else {
        return Delivery::Retry(Failure::new(Some(200), "the bulk answer is not JSON"));
    };
    let mut items: Vec<ItemResult> = full.items.iter().map(item).collect();
    items.truncate(n);
    if items.len() == n && items.iter().all(|i| *i == ItemResult::Delivered) {
        // Only 409s: a replay of documents already stored.
        return Delivery::Delivered;
    }
    Delivery::Partial(items)
}

fn item(v: &Value) -> ItemResult {
    // `{"create": {...}}` (or index/update/delete, whichever action was sent).
    let inner = v
        .as_object()
        .and_then(|o| o.values().next())
        .unwrap_or(&Value::Null);
    let status = inner["status"].as_u64().unwrap_or(0) as u16;
    let kind = inner["error"]["type"].as_str().unwrap_or("");
    let reason = || {
        let text = inner["error"]["reason"]
            .as_str()
            .unwrap_or("no reason given");
        format!("{kind}: {}", crate::card::truncate(text, 300))
    };
    match status {
        200..=299 => ItemResult::Delivered,
        409 if kind == "version_conflict_engine_exception" => ItemResult::Delivered,
        429 => ItemResult::Retry(Failure::new(Some(429), reason()).with_code("rejected_execution")),
        500..=599 => ItemResult::Retry(Failure::new(Some(status), reason())),
        _ => {
            let code = KNOWN
                .iter()
                .find(|k| **k == kind)
                .copied()
                .unwrap_or("item_rejected");
            ItemResult::Permanent(Failure::new(Some(status), reason()).with_code(code))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_read_one_by_one() {
        let body = serde_json::json!({"errors": true, "items": [
            {"create": {"status": 201}},
            {"create": {"status": 409, "error": {"type": "version_conflict_engine_exception", "reason": "exists"}}},
            {"create": {"status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}},
            {"create": {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "failed to parse field [output_fields.x]"}}},
            {"create": {"status": 503, "error": {"type": "unavailable_shards_exception", "reason": "primary shard is not active"}}},
            {"create": {"status": 400, "error": {"type": "something_new", "reason": "?"}}}
        ]});
        let Delivery::Partial(items) = classify_bulk(body.to_string().as_bytes(), 6) else {
            panic!()
        };
        assert_eq!(items[0], ItemResult::Delivered);
        assert_eq!(items[1], ItemResult::Delivered, "already there: a replay");
        assert!(matches!(&items[2], ItemResult::Retry(f) if f.status == Some(429)));
        assert!(
            matches!(&items[3], ItemResult::Permanent(f) if f.code == Some("mapper_parsing_exception") && f.reason == "mapper_parsing_exception: failed to parse field [output_fields.x]")
        );
        assert!(matches!(&items[4], ItemResult::Retry(_)));
        assert!(matches!(&items[5], ItemResult::Permanent(f) if f.code == Some("item_rejected")));
        assert_eq!(
            classify_bulk(br#"{"took":3,"errors":false,"items":[]}"#, 1),
            Delivery::Delivered
        );
        assert!(matches!(classify_bulk(b"<html>", 1), Delivery::Retry(_)));
    }
}
