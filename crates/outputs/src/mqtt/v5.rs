//! MQTT 5 sessions (`version: 5`): like 3.1.1's, and each `PUBACK` carries a reason code, so
//! the broker can refuse one message (not authorised for its topic, quota exceeded) while
//! taking the rest: each alert gets its own result.

use std::collections::HashMap;

use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::Outgoing;
use tokio::sync::mpsc;

use crate::delivery::{Failure, ItemResult};

/// One MQTT 5 connection: the client, and the events its event loop reports.
pub struct Session {
    client: AsyncClient,
    events: mpsc::UnboundedReceiver<Result<Event, String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a `PUBACK`'s reason code means for the alert: 0x00 and 0x10 (no subscriber) are
/// success; not authorised, a bad topic or payload are permanent; the rest pass.
pub fn judged(reason: PubAckReason, reason_string: Option<&str>) -> ItemResult {
    let why = |code: &'static str, text: &str| {
        let detail = reason_string.map_or(String::new(), |s| format!(": {s}"));
        Failure::new(None, format!("the broker refused it ({text}{detail})")).with_code(code)
    };
    match reason {
        PubAckReason::Success | PubAckReason::NoMatchingSubscribers => ItemResult::Delivered,
        PubAckReason::NotAuthorized => {
            ItemResult::Permanent(why("not_authorized", "0x87 not authorized"))
        }
        PubAckReason::TopicNameInvalid => {
            ItemResult::Permanent(why("topic_invalid", "0x90 topic name invalid"))
        }
        PubAckReason::PayloadFormatInvalid => {
            ItemResult::Permanent(why("payload_invalid", "0x99 payload format invalid"))
        }
        PubAckReason::QuotaExceeded => {
            ItemResult::Retry(why("quota_exceeded", "0x97 quota exceeded"))
        }
        other => ItemResult::Retry(why("refused", &format!("{other:?}"))),
    }
}

impl Session {
    pub fn start(options: MqttOptions) -> Session {
        let (client, eventloop) = AsyncClient::new(options, 10_000);
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(run_eventloop(eventloop, tx));
        Session {
            client,
            events,
            task,
        }
    }

    pub fn ended(&self) -> bool {
        self.task.is_finished()
    }

    /// Publishes each (topic, payload) and returns each one's result, in order; an error of the
    /// connection fails the whole batch.
    pub async fn publish(
        &mut self,
        messages: Vec<(String, Vec<u8>)>,
        qos: QoS,
        retain: bool,
    ) -> Result<Vec<ItemResult>, Failure> {
        let n = messages.len();
        for (topic, payload) in messages {
            self.client
                .publish(topic, qos, retain, payload)
                .await
                .map_err(|e| Failure::new(None, format!("cannot queue the message: {e}")))?;
        }
        let mut results: Vec<Option<ItemResult>> = vec![None; n];
        let mut written = 0;
        // Packet id → the batch index it was written for.
        let mut waiting: HashMap<u16, usize> = HashMap::new();
        while written < n || !waiting.is_empty() {
            match self.events.recv().await {
                Some(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                    if qos == QoS::AtMostOnce {
                        results[written] = Some(ItemResult::Delivered);
                    } else {
                        waiting.insert(pkid, written);
                    }
                    written += 1;
                }
                Some(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                    if let Some(i) = waiting.remove(&ack.pkid) {
                        let text = ack
                            .properties
                            .as_ref()
                            .and_then(|p| p.reason_string.as_deref());
                        results[i] = Some(judged(ack.reason, text));
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(Failure::new(None, format!("connection failed: {e}"))),
                None => return Err(Failure::new(None, "the connection ended")),
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every message was written and answered"))
            .collect())
    }
}

/// Polls the event loop and reports its events; stops at the first error.
async fn run_eventloop(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Result<Event, String>>) {
    loop {
        let event = eventloop.poll().await.map_err(|e| e.to_string());
        let failed = event.is_err();
        if tx.send(event).is_err() || failed {
            return;
        }
    }
}
