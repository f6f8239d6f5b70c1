//! Durations as the configuration writes them: `250ms`, `5s`, `2m`, `1h`, `1h30m`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A configured duration, parsed by `humantime` (units `ms`, `s`, `m`, `h`, `d` and their long
/// names, combinable as `1h30m`, decimals as `1.5s`). A bare number is refused because "5" could mean seconds or
/// milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigDuration(pub Duration);

impl FromStr for ConfigDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let bare_number = !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        match humantime::parse_duration(t) {
            Ok(d) if !bare_number => Ok(ConfigDuration(d)),
            _ => Err(format!(
                "invalid duration '{s}': write a whole number and a unit, e.g. 250ms, 5s, 2m, 1h"
            )),
        }
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
            ("1h30m", 5_400_000),
            ("2 min", 120_000),
            ("1.5s", 1_500),
        ];
        for (text, ms) in ok {
            assert_eq!(
                text.parse::<ConfigDuration>().unwrap().0,
                Duration::from_millis(ms)
            );
        }
        for bad in ["5", "-1s", "s", "", "5 parsecs"] {
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
