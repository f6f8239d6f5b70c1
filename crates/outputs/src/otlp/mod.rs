//! `type: otlp` — alerts as OpenTelemetry logs over OTLP/HTTP in protobuf (`POST /v1/logs`),
//! built with the upstream definitions (`opentelemetry-proto`).
//!
//! A batch is one `ExportLogsServiceRequest`: one `ResourceLogs` per host (`service.name`,
//! `host.name` and the configured `resource` attributes), one scope (`peregrine`), one
//! `LogRecord` per alert: the alert's time, the priority as severity (Falco's eight levels on
//! OpenTelemetry's severity numbers), Falco's output as the body, and as attributes the rule,
//! priority, source, tags and uuid (`falco.*`) and the output fields under their Falco names.
//!
//! Answers follow the OTLP/HTTP specification: 2xx delivered (a `partial_success` that rejected
//! records is logged: the specification forbids sending them again); 429, 502, 503 and 504
//! retried (with `Retry-After` when given); every other status is permanent, with the message of
//! the `google.rpc.Status` body.

mod config;

pub use config::{Compression, OtlpKeys, OtlpSettings};

use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use peregrine_engine::Priority;
use prost::Message as _;
use reqwest::Method;
use serde_json::Value;

use crate::delivery::{Delivery, Failure};
use crate::envelope::Envelope;
use crate::http::{self, parse_retry_after, HttpEncoder, HttpOutput, HttpRequest, HttpResponse};
use crate::output::{BatchLimits, Output};
use crate::settings::{Audience, BuildContext, OutputSettings, OutputType, SettingsError};

pub const TYPE: OutputType = OutputType::new::<OtlpSettings>("otlp", Audience::Systems);

impl OutputSettings for OtlpSettings {
    type Keys = OtlpKeys;

    fn check(keys: OtlpKeys) -> Result<Self, SettingsError> {
        OtlpSettings::from_keys(keys)
    }

    fn build(&self, ctx: BuildContext) -> Arc<dyn Output> {
        Arc::new(HttpOutput::new(
            OtlpEncoder {
                settings: self.clone(),
            },
            http::client_with_tls(ctx.max_in_flight, &self.tls),
        ))
    }

    fn describe(&self) -> String {
        format!("OTLP logs {}", self.url)
    }
}

/// `google.rpc.Status`, the body of an OTLP error answer (only the fields read here).
#[derive(Clone, PartialEq, prost::Message)]
struct Status {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// OpenTelemetry's severity number for a Falco priority (the data model's ranges: DEBUG 5–8,
/// INFO 9–12, WARN 13–16, ERROR 17–20, FATAL 21–24).
pub fn severity(p: Priority) -> i32 {
    match p {
        Priority::Emergency => 24,
        Priority::Alert => 22,
        Priority::Critical => 21,
        Priority::Error => 17,
        Priority::Warning => 13,
        Priority::Notice => 10,
        Priority::Informational => 9,
        Priority::Debug => 5,
    }
}

fn text(s: impl Into<String>) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s.into())),
    }
}

fn attribute(key: impl Into<String>, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(value),
    }
}

/// A JSON value as an OTLP value; `None` for null.
fn any(v: &Value) -> Option<AnyValue> {
    let value = match v {
        Value::Null => return None,
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => any_value::Value::StringValue(s.clone()),
        Value::Array(items) => any_value::Value::ArrayValue(ArrayValue {
            values: items.iter().filter_map(any).collect(),
        }),
        Value::Object(_) => any_value::Value::StringValue(v.to_string()),
    };
    Some(AnyValue { value: Some(value) })
}

pub struct OtlpEncoder {
    settings: OtlpSettings,
}

impl OtlpEncoder {
    /// One alert as a log record.
    pub fn record(&self, e: &Envelope, observed: u64) -> LogRecord {
        let a = e.alert();
        let tags = Value::Array(a.tags.iter().map(|t| Value::String(t.clone())).collect());
        let mut attributes = vec![
            attribute("falco.rule", text(a.rule.clone())),
            attribute("falco.priority", text(a.priority.as_str())),
            attribute("falco.source", text(a.source.clone())),
            attribute("falco.uuid", text(e.id())),
        ];
        attributes.extend(any(&tags).map(|t| attribute("falco.tags", t)));
        for (name, value) in &a.output_fields {
            attributes.extend(any(value).map(|v| attribute(name.clone(), v)));
        }
        LogRecord {
            time_unix_nano: u64::try_from(a.time.unix_nanos()).unwrap_or(0),
            observed_time_unix_nano: observed,
            severity_number: severity(a.priority),
            severity_text: a.priority.as_str().to_string(),
            body: Some(text(a.output.clone())),
            attributes,
            ..Default::default()
        }
    }

    fn resource(&self, host: Option<&str>) -> Resource {
        let mut attributes = vec![attribute(
            "service.name",
            text(self.settings.service_name.clone()),
        )];
        attributes.extend(host.map(|h| attribute("host.name", text(h))));
        for (k, v) in &self.settings.resource {
            attributes.push(attribute(k.clone(), text(v.clone())));
        }
        Resource {
            attributes,
            ..Default::default()
        }
    }

    /// The batch as one export request: a `ResourceLogs` per host, in order of first alert.
    pub fn request(&self, batch: &[Envelope]) -> ExportLogsServiceRequest {
        let observed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let mut hosts: Vec<(Option<&str>, Vec<LogRecord>)> = Vec::new();
        for e in batch {
            let host = e.alert().hostname.as_deref();
            let record = self.record(e, observed);
            match hosts.iter_mut().find(|(h, _)| *h == host) {
                Some((_, records)) => records.push(record),
                None => hosts.push((host, vec![record])),
            }
        }
        let resource_logs = hosts
            .into_iter()
            .map(|(host, log_records)| ResourceLogs {
                resource: Some(self.resource(host)),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "peregrine".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..Default::default()
                    }),
                    log_records,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        ExportLogsServiceRequest { resource_logs }
    }
}

impl HttpEncoder for OtlpEncoder {
    fn kind(&self) -> &'static str {
        TYPE.name
    }

    fn batch_limits(&self) -> BatchLimits {
        self.settings.limits
    }

    fn build(&self, batch: &[Envelope]) -> Result<HttpRequest, Failure> {
        let body = self.request(batch).encode_to_vec();
        let body = match self.settings.compression {
            Compression::None => body,
            Compression::Gzip => http::gzip(&body),
        };
        Ok(HttpRequest {
            method: Method::POST,
            url: self.settings.url.clone(),
            headers: self.settings.headers.clone(),
            body: body.into(),
        })
    }

    fn classify(&self, r: &HttpResponse, _batch: &[Envelope]) -> Delivery {
        let code = r.status.as_u16();
        if r.status.is_success() {
            if let Ok(answer) = ExportLogsServiceResponse::decode(&r.body[..]) {
                if let Some(p) = answer
                    .partial_success
                    .filter(|p| p.rejected_log_records > 0)
                {
                    tracing::warn!(
                        rejected = p.rejected_log_records,
                        "the OTLP receiver rejected records: {}",
                        crate::card::truncate(&p.error_message, 300)
                    );
                }
            }
            return Delivery::Delivered;
        }
        let reason = Status::decode(&r.body[..])
            .ok()
            .map(|s| s.message)
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| r.status.canonical_reason().unwrap_or("error").to_string());
        let failure = Failure::new(Some(code), crate::card::truncate(&reason, 300));
        let wait = parse_retry_after(&r.headers, SystemTime::now());
        match (code, wait) {
            (429 | 503, Some(wait)) => {
                Delivery::RetryAfter(failure.with_code("rate_limited"), wait)
            }
            (429 | 502 | 503 | 504, None) => Delivery::Retry(failure.with_code("server_error")),
            _ => Delivery::Permanent(failure.with_code("refused")),
        }
    }
}

#[cfg(test)]
mod tests;
