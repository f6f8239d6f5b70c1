//! Syslog against the real rsyslog (Debian's `rsyslog` and `rsyslog-gnutls`), read back from
//! the file it writes what it parsed to.

use std::time::Duration;

use peregrine_fakes::rsyslog::Rsyslog;
use serde_json::json;

use super::*;
use crate::settings::checked;
use crate::testing::{build_context, shadow_read};

const WAIT: Duration = Duration::from_secs(10);

fn output(keys: serde_json::Value) -> Arc<dyn Output> {
    checked::<SyslogSettings>(keys)
        .unwrap()
        .build(build_context())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc5424_over_udp_tcp_and_tls_arrives_parsed_with_facility_severity_and_data() {
    let rs = Rsyslog::start();
    let addresses = [
        format!("udp://127.0.0.1:{}", rs.udp),
        format!("tcp://127.0.0.1:{}", rs.tcp),
        format!("tls://localhost:{}", rs.tls),
    ];
    let mut ids = Vec::new();
    for (i, address) in addresses.iter().enumerate() {
        let out = output(json!({
            "address": address, "facility": "local3",
            "tls": if address.starts_with("tls") { json!({"ca_file": rs.ca_file()}) } else { json!({}) }
        }));
        let alert = shadow_read(["Critical", "Warning", "Debug"][i]);
        assert_eq!(
            out.deliver(std::slice::from_ref(&alert)).await,
            Delivery::Delivered,
            "{address}"
        );
        ids.push(alert.id().to_string());
    }
    let got = rs.wait_messages(3, WAIT);
    for (i, severity) in [2, 4, 7].into_iter().enumerate() {
        let m = got
            .iter()
            .find(|m| m.structured_data.contains(&ids[i]))
            .unwrap_or_else(|| panic!("{} not in {got:?}", addresses[i]));
        assert_eq!((m.facility, m.severity), (19, severity), "{m:?}");
        assert_eq!(m.host, "node-1");
        assert_eq!(m.app, "falco");
        assert_eq!(m.msgid, "falco");
        assert!(m.time.starts_with("2026-06-12T09:23:10.123456"), "{m:?}");
        assert!(m.structured_data.starts_with("[falco@32473 uuid="), "{m:?}");
        assert!(
            m.structured_data
                .contains("rule=\"Read sensitive file untrusted\""),
            "{m:?}"
        );
        let alert: serde_json::Value = serde_json::from_str(&m.message).unwrap();
        assert_eq!(alert["uuid"], ids[i].as_str());
        assert_eq!(alert["output_fields"]["fd.name"], "/etc/shadow");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc3164_with_newline_framing_and_a_batch_in_order() {
    let rs = Rsyslog::start();
    let out = output(json!({
        "address": format!("tcp://127.0.0.1:{}", rs.tcp), "format": "rfc3164",
        "framing": "newline", "message": "output", "app_name": "falco-node"
    }));
    let batch: Vec<Envelope> = (0..50).map(|_| shadow_read("Error")).collect();
    assert_eq!(out.deliver(&batch).await, Delivery::Delivered);
    let got = rs.wait_messages(50, WAIT);
    assert!(
        got.iter().all(|m| m.facility == 16
            && m.severity == 3
            && m.host == "node-1"
            && m.app == "falco-node"),
        "{:?}",
        got[0]
    );
    assert!(
        got[0]
            .message
            .starts_with("09:23:10.123456789: Error Sensitive file opened"),
        "{:?}",
        got[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_is_a_retry_and_delivery_resumes_when_it_is_back() {
    let mut rs = Rsyslog::start();
    let out = output(json!({"address": format!("tcp://127.0.0.1:{}", rs.tcp)}));
    assert_eq!(
        out.deliver(&[shadow_read("Notice")]).await,
        Delivery::Delivered
    );
    rs.wait_messages(1, WAIT);
    rs.kill();
    // The server closed the connection: the next batch is not written into it but retried.
    match out.deliver(&[shadow_read("Notice")]).await {
        Delivery::Retry(f) => assert!(f.reason.starts_with("connection failed"), "{}", f.reason),
        other => panic!("{other:?}"),
    }
    rs.restart();
    let again = shadow_read("Notice");
    assert_eq!(
        out.deliver(std::slice::from_ref(&again)).await,
        Delivery::Delivered
    );
    let got = rs.wait_messages(2, WAIT);
    assert!(got[1].structured_data.contains(again.id()), "{got:?}");
}

#[test]
fn keys_are_checked_with_their_paths() {
    let e = |keys| checked::<SyslogSettings>(keys).unwrap_err();
    assert_eq!(e(json!({"address": "127.0.0.1:514"})).path, "address");
    assert_eq!(e(json!({"address": "smtp://h:25"})).path, "address");
    assert_eq!(
        e(json!({"address": "udp://h:514", "facility": "local9"})).path,
        "facility"
    );
    assert_eq!(
        e(json!({"address": "udp://h:514", "framing": "newline"})).path,
        "framing"
    );
    assert_eq!(
        e(json!({"address": "tcp://h:514", "tls": {"ca_file": "/nope"}})).path,
        "tls"
    );
    assert_eq!(
        e(json!({"address": "tls://h:6514", "tls": {"ca_file": "/nope"}})).path,
        "tls.ca_file"
    );
    let s = checked::<SyslogSettings>(json!({"address": "tls://[::1]:6514", "format": "rfc3164"}))
        .unwrap();
    assert_eq!(s.describe(), "syslog tls://::1:6514 (rfc3164)");
}
