//! Peregrine's gateway: the Falcosidekick role, durable.
//!
//! Alerts arrive over HTTP through the front door ([`front`]: TLS, limits, `POST /`), are
//! appended to one log on disk with group commit ([`spool`]) and answered only then; one worker
//! per output ([`worker`]) reads the log from its own cursor, filters by its route
//! ([`routing`]), and delivers through the shared retry core.

pub mod app;
pub mod config;
pub mod console;
pub mod deadletter;
pub mod front;
pub mod input;
pub mod intake;
pub mod metrics;
pub mod migrate;
pub mod output_set;
pub mod redrive;
pub mod reload;
pub mod routing;
pub mod seen;
pub mod spool;
pub mod worker;

pub use app::{Gateway, GatewayError};
pub use config::Config;
pub use reload::Reloader;
