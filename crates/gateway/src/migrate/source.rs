//! Falcosidekick's settings as Falcosidekick reads them: keys are case-insensitive, nested
//! keys join with dots, and every key can be set by an environment variable named after it
//! (upper case, dots as underscores: `slack.webhookurl` is `SLACK_WEBHOOKURL`), which wins
//! over the file — viper's `AutomaticEnv` with a `.`→`_` replacer.
//!
//! Every setting the migration reads is marked used, so that what is left over can be
//! reported instead of silently dropped.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use serde_yaml_ng::Value;

/// One setting's value and where it came from.
#[derive(Debug, Clone)]
pub struct Setting {
    pub text: String,
    /// The environment variable Falcosidekick would read it from.
    pub env_name: String,
    pub from_env: bool,
}

pub struct Source {
    /// The file's leaves by lower-case dotted key; lists stay whole.
    file: BTreeMap<String, Value>,
    /// The environment, by variable name.
    env: BTreeMap<String, String>,
    used: RefCell<BTreeSet<String>>,
}

/// The environment variable Falcosidekick reads `key` from.
pub fn env_name(key: &str) -> String {
    key.to_ascii_uppercase().replace('.', "_")
}

impl Source {
    pub fn new(file: &str, env: BTreeMap<String, String>) -> Result<Source, String> {
        let root: Value = if file.trim().is_empty() {
            Value::Null
        } else {
            serde_yaml_ng::from_str(file).map_err(|e| match e.location() {
                Some(at) => format!("line {}, column {}: {e}", at.line(), at.column()),
                None => e.to_string(),
            })?
        };
        let mut leaves = BTreeMap::new();
        flatten(&root, String::new(), &mut leaves);
        Ok(Source {
            file: leaves,
            env,
            used: RefCell::default(),
        })
    }

    /// A non-empty setting, from the environment first, then the file.
    pub fn get(&self, key: &str) -> Option<Setting> {
        self.used.borrow_mut().insert(key.to_string());
        let env_name = env_name(key);
        if let Some(text) = self.env.get(&env_name).filter(|v| !v.is_empty()) {
            return Some(Setting {
                text: text.clone(),
                env_name,
                from_env: true,
            });
        }
        let text = match self.file.get(key)? {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Sequence(items) => items
                .iter()
                .filter_map(|v| serde_yaml_ng::to_string(v).ok())
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>()
                .join(","),
            _ => return None,
        };
        (!text.is_empty()).then_some(Setting {
            text,
            env_name,
            from_env: false,
        })
    }

    /// A key-value setting (`customfields`, `alertmanager.extralabels`...): the file's map, or
    /// the environment's `k1:v1,k2:v2` form, which Falcosidekick also accepts.
    pub fn get_map(&self, key: &str) -> Vec<(String, String)> {
        if let Some(setting) = self.get(key) {
            return setting
                .text
                .split(',')
                .filter_map(|pair| pair.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect();
        }
        let prefix = format!("{key}.");
        let entries: Vec<(String, String)> = self
            .file
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| (k[prefix.len()..].to_string(), scalar(v)))
            .collect();
        for (k, _) in &entries {
            self.used.borrow_mut().insert(format!("{prefix}{k}"));
        }
        entries
    }

    /// Settings of the file with a value that the migration did not read, under `section`
    /// (or everywhere for `""`), with their values' text.
    pub fn unread(&self, section: &str) -> Vec<(String, String)> {
        let used = self.used.borrow();
        self.file
            .iter()
            .filter(|(k, _)| section.is_empty() || k.starts_with(&format!("{section}.")))
            .filter(|(k, _)| !used.contains(*k))
            .map(|(k, v)| (k.clone(), scalar(v)))
            .filter(|(_, v)| !v.is_empty())
            .collect()
    }

    /// Marks a key as handled (reported elsewhere), so it is not listed again as unread.
    pub fn mark(&self, key: &str) {
        self.used.borrow_mut().insert(key.to_string());
    }
}

/// Lower-case dotted keys of every leaf (scalars and lists) below `value`.
fn flatten(value: &Value, prefix: String, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                let k = scalar(k).to_ascii_lowercase();
                let key = if prefix.is_empty() {
                    k
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(v, key, out);
            }
        }
        Value::Null => {}
        leaf => {
            out.insert(prefix, leaf.clone());
        }
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        other => serde_yaml_ng::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}
