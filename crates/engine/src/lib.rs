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
mod fold;
pub mod matchers;
mod memo;
pub mod output;
pub mod prefilter;
pub mod priority;
pub mod raw_alert;
pub mod replay;
pub mod rules;
pub mod ruleset;
pub mod table;
pub mod time;
pub mod yaml;

pub use alert::{Alert, AlertError, AlertId};
pub use eval::Event;
pub use priority::{Priority, UnknownPriority};
pub use rules::{LoadResult, RulesLoader};
pub use ruleset::{CompiledRule, Matching, Ruleset};
pub use time::EventTime;
