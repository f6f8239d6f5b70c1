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
}
