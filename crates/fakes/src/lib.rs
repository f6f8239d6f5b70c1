//! Local stand-ins for the SaaS destinations and the container runtime that cannot run here, for
//! tests.
//!
//! Each fake listens on 127.0.0.1, checks every body against the service's published format,
//! enforces the service's published rate limit, and answers as the service does — success
//! bodies, error words, 429s with `Retry-After`. Tests read back what arrived and what was
//! answered, and can force the next answers (`channel_not_found`, a 429 with `Retry-After: 3`).

pub mod alertmanager;
mod bucket;
mod certs;
pub mod check;
pub mod cri;
pub mod datadog;
pub mod discord;
pub mod docker;
pub mod elasticsearch;
pub mod googlechat;
pub mod gotify;
pub mod grafana_oncall;
pub mod loki;
pub mod mattermost;
pub mod mosquitto;
pub mod moto;
pub mod nats;
pub mod ntfy;
pub mod opsgenie;
pub mod osmem;
pub mod otlp;
pub use bucket::Limit;
pub mod pagerduty;
pub mod rabbitmq;
pub mod redis;
pub mod rocketchat;
pub mod rsyslog;
mod server;
pub mod sidekick_ui;
pub mod slack;
pub mod smtp;
pub mod splunk;
pub mod teams;
pub mod telegram;

pub use server::{Api, FakeService, Message, Reply, Request};
