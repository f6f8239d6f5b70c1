//! CloudWatch Logs requests and settings. Sending is tested end to end against moto's server
//! (tests/gateway_aws.rs).

use serde_json::{json, Value};

use super::*;
use crate::settings::checked;

fn event(index: usize, millis: i64, size: usize) -> Event {
    Event {
        index,
        millis,
        message: "x".repeat(size),
    }
}

#[test]
fn requests_are_sorted_and_kept_within_the_apis_limits() {
    let r = requests(vec![event(0, 30, 1), event(1, 10, 1), event(2, 20, 1)]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].iter().map(|e| e.index).collect::<Vec<_>>(), [1, 2, 0]);

    let day = 24 * 3600 * 1000;
    let r = requests(vec![event(0, 0, 1), event(1, day, 1), event(2, day + 1, 1)]);
    assert_eq!(r.len(), 2, "no request spans more than 24 hours");

    let big = requests((0..5).map(|i| event(i, i as i64, 300_000)).collect());
    assert_eq!(big.len(), 2, "1 MiB per request counting 26 bytes an event");
    for req in &big {
        let bytes: usize = req.iter().map(|e| e.message.len() + 26).sum();
        assert!(bytes <= 1024 * 1024);
    }
    let many = requests((0..10_001).map(|i| event(i, 0, 1)).collect());
    assert_eq!(many.iter().map(Vec::len).collect::<Vec<_>>(), [10_000, 1]);
}

#[test]
fn refused_events_are_read_from_the_answer() {
    let info = RejectedLogEventsInfo::builder()
        .too_old_log_event_end_index(1)
        .too_new_log_event_start_index(4)
        .build();
    assert_eq!(
        rejected(&info, 5),
        [(0, "too_old"), (1, "too_old"), (4, "too_new")]
    );
    let info = RejectedLogEventsInfo::builder()
        .expired_log_event_end_index(0)
        .build();
    assert_eq!(rejected(&info, 2), [(0, "expired")]);
    assert!(rejected(&RejectedLogEventsInfo::builder().build(), 3).is_empty());
}

#[test]
fn keys_are_checked() {
    let err = |v: Value| {
        checked::<CloudWatchLogsSettings>(v)
            .unwrap_err()
            .to_string()
    };
    assert!(err(json!({"log_group": "a b", "region": "eu-west-1"})).starts_with("log_group:"));
    assert!(
        err(json!({"log_group": "/falco", "log_stream": "a:b", "region": "eu-west-1"}))
            .starts_with("log_stream:")
    );
    assert!(err(json!({"log_group": "/falco"})).starts_with("region: is needed"));
    let s: CloudWatchLogsSettings =
        checked(json!({"log_group": "/falco/alerts", "region": "eu-west-1"})).unwrap();
    assert_eq!(
        s.describe(),
        "CloudWatch Logs /falco/alerts:falco in eu-west-1"
    );
    assert!(s.keys.create);
}
