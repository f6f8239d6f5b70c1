//! Keys that take several values (`brokers`, node `url`s, match lists): a YAML list or one
//! comma-separated string, as the contract allows for every such key.

use serde::Deserialize;

/// The values, trimmed, with empty ones dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StringList(pub Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            One(String),
            Many(Vec<String>),
        }
        let items = match Form::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a list of strings or a comma-separated string")
        })? {
            Form::One(s) => s.split(',').map(str::to_string).collect(),
            Form::Many(v) => v,
        };
        Ok(StringList(
            items
                .into_iter()
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
        ))
    }
}
