//! The exec output's keys: `command`, `env`, `max_alerts_per_batch`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::output::BatchLimits;
use crate::secret::Secret;
use crate::settings::SettingsError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// The plugin's program and its arguments (no shell).
    pub command: Vec<String>,
    /// The plugin's environment, besides `PATH`: the one way secrets reach it. Values never print.
    #[serde(default)]
    pub env: BTreeMap<String, Secret>,
    /// Alerts per batch line, 1 to 10 000 (default 50).
    #[serde(default = "default_per_batch")]
    pub max_alerts_per_batch: usize,
}

fn default_per_batch() -> usize {
    50
}

/// The checked settings an exec output runs with.
#[derive(Debug, Clone)]
pub struct ExecSettings {
    /// The program, found now: a typo is a config error, not a restart loop.
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, Secret>,
    pub limits: BatchLimits,
}

/// A batch line holds at most this much JSON; alerts beyond it wait for the next batch.
const MAX_BATCH_BYTES: usize = 4 << 20;

impl ExecSettings {
    pub(super) fn from_keys(keys: ExecConfig) -> Result<Self, SettingsError> {
        let (program, args) = match keys.command.split_first() {
            Some((program, args)) if !program.is_empty() => (program, args.to_vec()),
            _ => return Err(SettingsError::new("command", "needs the plugin's program")),
        };
        let program = find_program(program).map_err(|m| SettingsError::new("command[0]", m))?;
        for name in keys.env.keys() {
            let valid = !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(SettingsError::new(
                    format!("env.{name}"),
                    "is not a valid environment variable name",
                ));
            }
        }
        if !(1..=10_000).contains(&keys.max_alerts_per_batch) {
            return Err(SettingsError::new(
                "max_alerts_per_batch",
                "must be from 1 to 10000",
            ));
        }
        Ok(ExecSettings {
            program,
            args,
            env: keys.env,
            limits: BatchLimits {
                max_events: keys.max_alerts_per_batch,
                max_bytes: MAX_BATCH_BYTES,
                max_wait: if keys.max_alerts_per_batch == 1 {
                    Duration::ZERO
                } else {
                    Duration::from_millis(100)
                },
            },
        })
    }

    /// Where alerts go, safe to print: the program and the names of its variables, no values.
    pub fn describe(&self) -> String {
        let env: Vec<&str> = self.env.keys().map(String::as_str).collect();
        format!(
            "plugin {} ({} argument(s); env {})",
            self.program.display(),
            self.args.len(),
            if env.is_empty() {
                "PATH only".to_string()
            } else {
                format!("PATH, {}", env.join(", "))
            }
        )
    }
}

/// `program` as a path to an executable file: as given when it holds a `/`, else from `PATH`.
fn find_program(program: &str) -> Result<PathBuf, String> {
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = PathBuf::from(program);
        return if executable(&path) {
            Ok(path)
        } else {
            Err(format!("{program} is not an executable file"))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
        .ok_or_else(|| format!("{program} is not an executable found in PATH"))
}
