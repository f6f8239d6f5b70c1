//! `type: cloudwatch_logs` — Amazon CloudWatch Logs through the AWS SDK.
//!
//! A batch becomes `PutLogEvents` requests of events sorted by the alerts' times, each within
//! the API's limits (10 000 events, 1 MiB counting 26 bytes per event, 24 hours apart at most).
//! The group and the stream are created when CloudWatch says they are missing, and the request
//! is sent again in the same attempt. Events CloudWatch refuses for their time (older than the
//! group's retention or 14 days, more than 2 hours ahead) come back in `rejectedLogEventsInfo`
//! and are dead-lettered; the rest of the request is stored.

mod config;

pub use config::{CloudWatchLogsConfig, CloudWatchLogsSettings};

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_cloudwatchlogs::types::{InputLogEvent, RejectedLogEventsInfo};
use tokio::sync::OnceCell;

use crate::aws::fit_json;
use crate::aws::response::{self, Codes};
use crate::delivery::{Delivery, Failure, ItemResult};
use crate::envelope::Envelope;
use crate::output::{BatchLimits, Output};
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};
use config::{EVENT_OVERHEAD, MAX_EVENTS, MAX_REQUEST_BYTES};

pub const TYPE: OutputType =
    OutputType::new::<CloudWatchLogsSettings>("cloudwatch_logs", Audience::Systems);

/// CloudWatch's limit on one event's text, with its 26 bytes.
const EVENT_MAX: usize = 256 * 1024 - EVENT_OVERHEAD;
/// How far apart the events of one request may be.
const SPAN_MAX_MS: i64 = 24 * 3600 * 1000;

/// Codes CloudWatch Logs documents for PutLogEvents, CreateLogGroup and CreateLogStream.
const CODES: Codes = &[
    ("ResourceNotFoundException", false),
    ("InvalidParameterException", false),
    ("DataAlreadyAcceptedException", false),
    ("UnrecognizedClientException", false),
    ("AccessDeniedException", false),
    ("LimitExceededException", true),
    ("OperationAbortedException", true),
];

impl OutputSettings for CloudWatchLogsSettings {
    type Keys = CloudWatchLogsConfig;

    fn check(keys: CloudWatchLogsConfig) -> Result<Self, SettingsError> {
        CloudWatchLogsSettings::from_keys(keys)
    }

    fn build(&self, _ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(CloudWatchLogsOutput {
            settings: self.clone(),
            client: OnceCell::new(),
        })
    }

    fn describe(&self) -> String {
        CloudWatchLogsSettings::describe(self)
    }
}

pub struct CloudWatchLogsOutput {
    settings: CloudWatchLogsSettings,
    client: OnceCell<aws_sdk_cloudwatchlogs::Client>,
}

/// One event ready to send: its place in the batch, its time (ms) and its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub index: usize,
    pub millis: i64,
    pub message: String,
}

/// The events sorted by time, cut into requests within PutLogEvents' limits.
pub fn requests(mut events: Vec<Event>) -> Vec<Vec<Event>> {
    events.sort_by_key(|e| (e.millis, e.index));
    let mut out: Vec<Vec<Event>> = Vec::new();
    let mut bytes = 0;
    for e in events {
        let size = e.message.len() + EVENT_OVERHEAD;
        match out.last_mut() {
            Some(r)
                if r.len() < MAX_EVENTS
                    && bytes + size <= MAX_REQUEST_BYTES
                    && e.millis - r[0].millis <= SPAN_MAX_MS =>
            {
                bytes += size;
                r.push(e);
            }
            _ => {
                bytes = size;
                out.push(vec![e]);
            }
        }
    }
    out
}

/// Which events of a request CloudWatch refused for their time, with why. The API reference
/// calls `tooOldLogEventEndIndex` "the index of the last log event that is too old" and also
/// "exclusive"; moto reads it as the last one. The event at the end index is counted refused:
/// read the other way it is dead-lettered though stored, never dropped though refused.
pub fn rejected(info: &RejectedLogEventsInfo, n: usize) -> Vec<(usize, &'static str)> {
    let mut why: Vec<Option<&'static str>> = vec![None; n];
    let through = |end: Option<i32>| {
        end.and_then(|i| usize::try_from(i).ok())
            .map(|i| (i + 1).min(n))
    };
    let expired = through(info.expired_log_event_end_index).unwrap_or(0);
    for w in why.iter_mut().take(expired) {
        *w = Some("expired");
    }
    let too_old = through(info.too_old_log_event_end_index).unwrap_or(0);
    for w in why.iter_mut().take(too_old) {
        w.get_or_insert("too_old");
    }
    let too_new = info
        .too_new_log_event_start_index
        .and_then(|i| usize::try_from(i).ok());
    for w in why.iter_mut().skip(too_new.unwrap_or(n)) {
        w.get_or_insert("too_new");
    }
    why.into_iter()
        .enumerate()
        .filter_map(|(k, w)| w.map(|w| (k, w)))
        .collect()
}

impl CloudWatchLogsOutput {
    async fn client(&self) -> &aws_sdk_cloudwatchlogs::Client {
        self.client
            .get_or_init(|| async {
                aws_sdk_cloudwatchlogs::Client::new(&self.settings.connection.sdk_config().await)
            })
            .await
    }

    /// Creates the group and the stream, each unless it exists.
    async fn create(&self) -> Result<(), ItemResult> {
        let client = self.client().await;
        let keys = &self.settings.keys;
        let group = client
            .create_log_group()
            .log_group_name(&keys.log_group)
            .send()
            .await;
        if let Err(e) = group {
            if !e
                .as_service_error()
                .is_some_and(|s| s.is_resource_already_exists_exception())
            {
                return Err(response::classify(CODES, &e).item());
            }
        }
        let stream = client
            .create_log_stream()
            .log_group_name(&keys.log_group)
            .log_stream_name(&keys.log_stream)
            .send()
            .await;
        match stream {
            Err(e)
                if !e
                    .as_service_error()
                    .is_some_and(|s| s.is_resource_already_exists_exception()) =>
            {
                Err(response::classify(CODES, &e).item())
            }
            _ => Ok(()),
        }
    }

    /// Sends one request (creating the group and stream first when they are missing) and
    /// returns each event's result, by its place in the batch.
    async fn put(&self, request: &[Event]) -> Vec<(usize, ItemResult)> {
        let events: Vec<InputLogEvent> = request
            .iter()
            .map(|e| {
                InputLogEvent::builder()
                    .timestamp(e.millis)
                    .message(e.message.clone())
                    .build()
                    .expect("timestamp and message are set")
            })
            .collect();
        let keys = &self.settings.keys;
        let mut created = false;
        loop {
            let result = self
                .client()
                .await
                .put_log_events()
                .log_group_name(&keys.log_group)
                .log_stream_name(&keys.log_stream)
                .set_log_events(Some(events.clone()))
                .send()
                .await;
            let failure = match result {
                Ok(out) => return self.results(request, out.rejected_log_events_info()),
                Err(e)
                    if keys.create
                        && !created
                        && e.as_service_error()
                            .is_some_and(|s| s.is_resource_not_found_exception()) =>
                {
                    match self.create().await {
                        Ok(()) => {
                            created = true;
                            continue;
                        }
                        Err(r) => r,
                    }
                }
                Err(e) => response::classify(CODES, &e).item(),
            };
            return request.iter().map(|e| (e.index, failure.clone())).collect();
        }
    }

    fn results(
        &self,
        request: &[Event],
        info: Option<&RejectedLogEventsInfo>,
    ) -> Vec<(usize, ItemResult)> {
        let mut out: Vec<(usize, ItemResult)> = request
            .iter()
            .map(|e| (e.index, ItemResult::Delivered))
            .collect();
        if let Some(info) = info {
            for (k, why) in rejected(info, request.len()) {
                out[k].1 = ItemResult::Permanent(
                    Failure::new(
                        None,
                        format!("CloudWatch Logs refused the event's time ({why})"),
                    )
                    .with_code(why),
                );
            }
        }
        out
    }
}

#[async_trait]
impl Output for CloudWatchLogsOutput {
    fn kind(&self) -> &'static str {
        "cloudwatch_logs"
    }

    fn batch_limits(&self) -> BatchLimits {
        self.settings.limits
    }

    async fn deliver(&self, batch: &[Envelope]) -> Delivery {
        let mut items: Vec<Option<ItemResult>> = vec![None; batch.len()];
        let mut events = Vec::new();
        for (index, e) in batch.iter().enumerate() {
            match fit_json(e, EVENT_MAX) {
                Some(message) => events.push(Event {
                    index,
                    millis: e.alert().time.unix_nanos().div_euclid(1_000_000),
                    message,
                }),
                None => {
                    items[index] = Some(ItemResult::Permanent(
                        Failure::new(None, "larger than an event may be even with its fields cut")
                            .with_code("too_large"),
                    ))
                }
            }
        }
        for request in requests(events) {
            for (i, r) in self.put(&request).await {
                items[i] = Some(r);
            }
        }
        Delivery::from_items(
            items
                .into_iter()
                .map(|r| r.expect("every item has a result"))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests;
