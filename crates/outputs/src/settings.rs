//! How an output type's own keys become a running output: read and checked once, then built.
//!
//! Each output folder has one settings type implementing [`OutputSettings`]: its `Keys` are what
//! the YAML says, `check` turns them into the values the output runs with (files read, URLs
//! resolved, headers made, cross-key rules applied), and `build` and `describe` only use those
//! values, so neither can find a problem the check missed. A folder then names its type with
//! an [`OutputType`] constant, and [`crate::registry`] lists the constants.
//!
//! This module sits below every output: outputs import it, it imports no output.

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::output::Output;

/// A problem in an output's own keys, with the path below the output (`url`, `headers.X`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SettingsError {
    /// Empty when the problem is the output's keys as a whole.
    pub path: String,
    pub message: String,
}

impl SettingsError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        SettingsError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// What building an output needs from the gateway.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The output's `name`, for what it logs itself (a plugin's stderr).
    pub name: String,
    pub max_in_flight: usize,
    /// The per-attempt timeout, for clients with timeouts of their own to fit inside.
    pub timeout: std::time::Duration,
}

/// One output type's checked settings.
pub trait OutputSettings: fmt::Debug + Send + Sync + Sized + 'static {
    /// The keys as written after `type:`; unknown keys are refused by the type's serde
    /// attributes (`deny_unknown_fields`).
    type Keys: DeserializeOwned;

    /// Checks the keys together and makes the values the output runs with; the only place an
    /// output's configuration can be refused.
    fn check(keys: Self::Keys) -> Result<Self, SettingsError>;

    /// The output, ready to deliver. Cannot fail: everything that could was checked.
    fn build(&self, ctx: BuildContext) -> Arc<dyn Output>;

    /// Where alerts go, safe to print (`--check-config`, the start-up log): no secret.
    fn describe(&self) -> String;
}

/// Who reads what an output sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Chat, paging and plugins: storm control (`dedup`) may be set, so a burst does not flood a
    /// person.
    People,
    /// Storage, search and queues: they receive every alert.
    Systems,
}

/// An output type: its name in `type:` and how its keys are read.
#[derive(Clone, Copy)]
pub struct OutputType {
    pub name: &'static str,
    pub audience: Audience,
    /// The most batches the type can take at once (`max_in_flight`), when it has a limit.
    pub max_in_flight: Option<usize>,
    parse: fn(serde_json::Value) -> Result<CheckedSettings, SettingsError>,
}

impl OutputType {
    /// The type named `name` whose keys `S` reads.
    pub const fn new<S: OutputSettings>(name: &'static str, audience: Audience) -> Self {
        OutputType {
            name,
            audience,
            max_in_flight: None,
            parse: parse_and_check::<S>,
        }
    }

    /// The type takes at most `n` batches at once: `max_in_flight` defaults to `n` and may not
    /// exceed it.
    pub const fn with_max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = Some(n);
        self
    }

    /// Reads and checks an output's own keys (`value` holds only those).
    pub fn parse(&self, value: serde_json::Value) -> Result<CheckedSettings, SettingsError> {
        (self.parse)(value)
    }

    pub fn is_for_people(&self) -> bool {
        self.audience == Audience::People
    }
}

impl PartialEq for OutputType {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for OutputType {}

impl fmt::Debug for OutputType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl fmt::Display for OutputType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// The object-safe half of [`OutputSettings`], so settings of any type can be held together.
trait Buildable: fmt::Debug + Send + Sync {
    fn build(&self, ctx: BuildContext) -> Arc<dyn Output>;
    fn describe(&self) -> String;
}

impl<S: OutputSettings> Buildable for S {
    fn build(&self, ctx: BuildContext) -> Arc<dyn Output> {
        OutputSettings::build(self, ctx)
    }

    fn describe(&self) -> String {
        OutputSettings::describe(self)
    }
}

/// One configured output's checked settings, whatever its type.
#[derive(Debug, Clone)]
pub struct CheckedSettings(Arc<dyn Buildable>);

impl CheckedSettings {
    pub fn build(&self, ctx: BuildContext) -> Arc<dyn Output> {
        self.0.build(ctx)
    }

    /// Where alerts go, safe to print.
    pub fn describe(&self) -> String {
        self.0.describe()
    }
}

fn parse_and_check<S: OutputSettings>(
    value: serde_json::Value,
) -> Result<CheckedSettings, SettingsError> {
    let keys: S::Keys = parse_keys(value)?;
    Ok(CheckedSettings(Arc::new(S::check(keys)?)))
}

/// Deserialises a type's keys, reporting the failing key's path.
pub fn parse_keys<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, SettingsError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        SettingsError {
            path: if path == "." { String::new() } else { path },
            message: e.into_inner().to_string(),
        }
    })
}

/// Reads and checks keys into `S` directly, for an output's own tests.
#[cfg(test)]
pub(crate) fn checked<S: OutputSettings>(value: serde_json::Value) -> Result<S, SettingsError> {
    S::check(parse_keys(value)?)
}
