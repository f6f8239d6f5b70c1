//! One alert on its way to an output.

use std::sync::Arc;

use bytes::Bytes;
use peregrine_engine::Alert;

/// An accepted alert as outputs receive it.
///
/// It carries both the parsed alert (for outputs that reshape it) and the exact JSON the gateway
/// stored (for outputs that forward it unchanged, without serialising it again). Both always
/// include the alert's id.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub alert: Arc<Alert>,
    pub json: Bytes,
}

impl Envelope {
    /// Builds an envelope from an alert that already has its id.
    pub fn new(alert: Alert) -> Self {
        debug_assert!(alert.uuid.is_some(), "alerts reach outputs with their id");
        let json = Bytes::from(alert.to_json_bytes());
        Envelope {
            alert: Arc::new(alert),
            json,
        }
    }

    /// The alert's id, which every retry and replay of it carries.
    pub fn id(&self) -> &str {
        self.alert.uuid.as_ref().map(|id| id.as_str()).unwrap_or("")
    }

    /// An alert with what breaks naive templates (quotes, a backslash, a newline, markup, a null
    /// field), rendered when the configuration is checked so a template that fails on it is a
    /// config error.
    pub fn sample() -> Envelope {
        let mut alert = peregrine_engine::Alert::from_json(serde_json::json!({
            "hostname": "node-1",
            "output": "09:23:10.123456789: Warning \"quoted\" <b>text</b> \\ and a\nsecond line",
            "output_fields": {"proc.name": "cat", "fd.name": "/etc/shadow", "k8s.ns.name": null, "user.uid": 0},
            "priority": "Warning",
            "rule": "Read sensitive file untrusted",
            "source": "syscall",
            "tags": ["filesystem", "mitre_credential_access"],
            "time": "2026-06-12T09:23:10.123456789Z"
        }))
        .expect("the sample alert is valid");
        alert.uuid = Some(peregrine_engine::AlertId::generate());
        Envelope::new(alert)
    }
}
