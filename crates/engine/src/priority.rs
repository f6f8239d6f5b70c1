//! Falco's eight priorities.

use std::fmt;
use std::str::FromStr;

/// A Falco rule priority, from the most severe (`Emergency`) to the least (`Debug`).
///
/// The derived ordering is deliberately absent: "greater" is ambiguous between "more severe" and
/// "larger number". Use [`Priority::is_at_least`] instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Priority {
    Emergency,
    Alert,
    Critical,
    Error,
    Warning,
    Notice,
    Informational,
    Debug,
}

/// A priority name that Falco does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown priority '{0}' (expected one of emergency, alert, critical, error, warning, notice, informational, info, debug)")]
pub struct UnknownPriority(pub String);

impl Priority {
    /// Every priority, most severe first.
    pub const ALL: [Priority; 8] = [
        Priority::Emergency,
        Priority::Alert,
        Priority::Critical,
        Priority::Error,
        Priority::Warning,
        Priority::Notice,
        Priority::Informational,
        Priority::Debug,
    ];

    /// Falco's numeric level: 0 is the most severe, 7 the least.
    pub fn level(self) -> u8 {
        self as u8
    }

    /// The inverse of [`Priority::level`].
    pub fn from_level(level: u8) -> Option<Priority> {
        Self::ALL.get(usize::from(level)).copied()
    }

    /// True when `self` is as severe as `threshold` or more (Falco's `priority:` filter).
    pub fn is_at_least(self, threshold: Priority) -> bool {
        self.level() <= threshold.level()
    }

    /// The title-case name Falco prints in alerts and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Emergency => "Emergency",
            Priority::Alert => "Alert",
            Priority::Critical => "Critical",
            Priority::Error => "Error",
            Priority::Warning => "Warning",
            Priority::Notice => "Notice",
            Priority::Informational => "Informational",
            Priority::Debug => "Debug",
        }
    }
}

impl FromStr for Priority {
    type Err = UnknownPriority;

    /// Case-insensitive, accepting `info` as Falco does.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim();
        Priority::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(name))
            .or_else(|| {
                name.eq_ignore_ascii_case("info")
                    .then_some(Priority::Informational)
            })
            .ok_or_else(|| UnknownPriority(s.to_string()))
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Priority {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Priority {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_case_insensitively_and_accepts_info() {
        assert_eq!("WARNING".parse(), Ok(Priority::Warning));
        assert_eq!("Info".parse(), Ok(Priority::Informational));
        assert_eq!("informational".parse(), Ok(Priority::Informational));
        assert!("urgent".parse::<Priority>().is_err());
    }

    #[test]
    fn severity_threshold_follows_falco_levels() {
        assert!(Priority::Critical.is_at_least(Priority::Warning));
        assert!(Priority::Warning.is_at_least(Priority::Warning));
        assert!(!Priority::Notice.is_at_least(Priority::Warning));
        for p in Priority::ALL {
            assert_eq!(Priority::from_level(p.level()), Some(p));
            assert_eq!(p.as_str().parse(), Ok(p));
        }
    }
}
