//! Peregrine's rule engine.
//!
//! This crate owns the Falco alert type ([`alert::Alert`]) that the sensor produces and the gateway
//! and outputs consume, so the wire format is defined exactly once.

pub mod alert;
pub mod compile;
pub mod eval;
pub mod event_types;
pub mod fields;
pub mod filter;
pub mod matchers;
pub mod output;
pub mod priority;
pub mod time;
pub mod yaml;

pub use alert::{Alert, AlertError, AlertId};
pub use priority::{Priority, UnknownPriority};
pub use time::EventTime;
