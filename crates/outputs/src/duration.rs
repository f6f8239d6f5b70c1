//! Durations as the configuration writes them: `250ms`, `5s`, `2m`, `1h`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A configured duration. Parsing accepts one integer with a unit (`ms`, `s`, `m`, `h`); a bare
/// number is refused because "5" could mean seconds or milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigDuration(pub Duration);

impl FromStr for ConfigDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(digits_end);
        let bad = || {
            format!(
                "invalid duration '{s}': write a whole number and a unit, e.g. 250ms, 5s, 2m, 1h"
            )
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        let d = match unit.trim() {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        Ok(ConfigDuration(d))
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if !ms.is_multiple_of(1000) {
            write!(f, "{ms}ms")
        } else if !ms.is_multiple_of(60_000) || ms == 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{}m", ms / 60_000)
        }
    }
}

impl<'de> serde::Deserialize<'de> for ConfigDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for ConfigDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl From<ConfigDuration> for Duration {
    fn from(d: ConfigDuration) -> Duration {
        d.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_units() {
        let ok = [
            ("250ms", 250),
            ("5s", 5_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("0s", 0),
        ];
        for (text, ms) in ok {
            assert_eq!(
                text.parse::<ConfigDuration>().unwrap().0,
                Duration::from_millis(ms)
            );
        }
        for bad in ["5", "5 sec", "-1s", "1.5s", "s", ""] {
            assert!(bad.parse::<ConfigDuration>().is_err(), "{bad}");
        }
    }

    #[test]
    fn prints_what_it_parses() {
        for text in ["250ms", "5s", "2m", "90s"] {
            assert_eq!(text.parse::<ConfigDuration>().unwrap().to_string(), text);
        }
    }
}
