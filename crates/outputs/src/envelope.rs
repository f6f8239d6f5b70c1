//! One alert on its way to an output.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use peregrine_engine::Alert;

/// An accepted alert as outputs receive it.
///
/// It carries the exact JSON the gateway stored (for outputs that forward it unchanged, without
/// serialising it again) and the parsed alert (for outputs that reshape it). Both always include
/// the alert's id.
///
/// The parsed alert is made on first use: an output that only forwards the stored JSON (a
/// webhook without templates) never pays for decoding it, which was a tenth of the gateway's
/// CPU per delivery when three such outputs drained a backlog.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub json: Bytes,
    alert: OnceLock<Arc<Alert>>,
}

impl Envelope {
    /// Builds an envelope from an alert that already has its id.
    pub fn new(alert: Alert) -> Self {
        debug_assert!(alert.uuid.is_some(), "alerts reach outputs with their id");
        let json = Bytes::from(alert.to_json_bytes());
        Envelope::decoded(Arc::new(alert), json)
    }

    /// An envelope from a stored alert and its already decoded form.
    pub fn decoded(alert: Arc<Alert>, json: Bytes) -> Self {
        Envelope {
            json,
            alert: OnceLock::from(alert),
        }
    }

    /// An envelope from a stored alert's JSON, decoded only if an output asks for
    /// [`Envelope::alert`]. The gateway checked the JSON when it accepted the alert.
    pub fn stored(json: Bytes) -> Self {
        Envelope {
            json,
            alert: OnceLock::new(),
        }
    }

    /// The parsed alert, decoded from the stored JSON on first use.
    ///
    /// The gateway stores only alerts it has decoded, so decoding again cannot fail short of a
    /// bug (or a spool written by an incompatible version); then the error is logged and the
    /// alert stands in as a `Critical` alert saying so, rather than vanish or stop the output.
    pub fn alert(&self) -> &Alert {
        self.alert.get_or_init(|| {
            Arc::new(Alert::from_json_slice(&self.json).unwrap_or_else(|e| {
                tracing::error!(error = %e, "a stored alert does not decode");
                undecodable(&e.to_string())
            }))
        })
    }

    /// The alert's id, which every retry and replay of it carries.
    pub fn id(&self) -> &str {
        self.alert()
            .uuid
            .as_ref()
            .map(|id| id.as_str())
            .unwrap_or("")
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

/// What [`Envelope::alert`] gives for stored JSON that does not decode.
fn undecodable(error: &str) -> Alert {
    Alert::from_json(serde_json::json!({
        "output": format!("Peregrine could not decode a stored alert: {error}"),
        "priority": "Critical",
        "rule": "Peregrine: undecodable stored alert",
        "source": "peregrine",
        "time": time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    }))
    .expect("the stand-in alert is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_alert_is_decoded_on_first_use_and_keeps_its_bytes() {
        let sample = Envelope::sample();
        let stored = Envelope::stored(sample.json.clone());
        assert_eq!(stored.alert().rule, "Read sensitive file untrusted");
        assert_eq!(stored.id(), sample.id());
        assert_eq!(
            stored.json, sample.json,
            "the stored bytes go out as they are"
        );
        assert!(std::ptr::eq(stored.alert(), stored.alert()), "decoded once");
    }

    #[test]
    fn stored_json_that_does_not_decode_stands_in_as_a_critical_alert_saying_so() {
        let stored = Envelope::stored(Bytes::from_static(br#"{"rule": 7}"#));
        let alert = stored.alert();
        assert_eq!(alert.rule, "Peregrine: undecodable stored alert");
        assert_eq!(alert.priority.as_str(), "Critical");
        assert!(
            alert
                .output
                .starts_with("Peregrine could not decode a stored alert: "),
            "{}",
            alert.output
        );
        assert_eq!(&stored.json[..], br#"{"rule": 7}"#);
    }
}
