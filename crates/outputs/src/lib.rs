//! Peregrine's alert destinations.
//!
//! Every destination implements [`Output`]: it is handed a batch of spooled alerts and answers with
//! a [`Delivery`] saying what happened. Everything else — timeouts, retries with backoff,
//! `Retry-After` pauses, giving up — lives once in [`retry`], so each output only knows how to build
//! its request and how to read its service's answer.
//!
//! Outputs never see the gateway: they know nothing about spools, cursors or metrics.

pub mod alertmanager;
pub mod aws;
pub mod batch;
pub mod card;
pub mod cloudwatch_logs;
pub mod datadog;
pub mod delivery;
pub mod discord;
pub mod duration;
pub mod elasticsearch;
pub mod envelope;
pub mod exec;
pub mod fingerprint;
pub mod googlechat;
pub mod gotify;
pub mod grafana_oncall;
pub mod http;
pub mod kafka;
pub mod kinesis;
pub mod list;
pub mod loki;
pub mod mattermost;
pub mod mqtt;
pub mod nats;
pub mod ntfy;
pub mod opsgenie;
pub mod otlp;
pub mod output;
pub mod pacer;
pub mod pagerduty;
pub mod preset;
pub mod rabbitmq;
pub mod rate;
pub mod redis;
pub mod registry;
pub mod retry;
pub mod rocketchat;
pub mod s3;
pub mod secret;
pub mod settings;
pub mod sidekick_ui;
pub mod size;
pub mod slack;
pub mod smtp;
pub mod sns;
pub mod splunk;
pub mod sqs;
pub mod stdout;
pub mod stream_tls;
pub mod syslog;
pub mod teams;
pub mod telegram;
#[cfg(test)]
mod testing;
pub mod webhook;

pub use delivery::{Delivery, Failure, ItemResult};
pub use envelope::Envelope;
pub use output::{BatchLimits, Output};
pub use registry::{output_type, OUTPUT_TYPES};
pub use settings::{BuildContext, CheckedSettings, OutputSettings, OutputType, SettingsError};
