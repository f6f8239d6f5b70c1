//! Event timestamps as Falco writes them.

use std::fmt;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// An event time in nanoseconds since the Unix epoch (UTC).
///
/// Falco's JSON renders it as RFC 3339 with exactly nine fractional digits and a `Z`; that is the
/// only form this type prints, whatever offset or precision it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventTime(i64);

/// A timestamp that is not RFC 3339 or does not fit in 64-bit nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an RFC 3339 timestamp (e.g. 2026-06-12T09:23:10.123456789Z)")]
pub struct BadTime(pub String);

impl EventTime {
    pub fn from_unix_nanos(nanos: i64) -> Self {
        EventTime(nanos)
    }

    pub fn unix_nanos(self) -> i64 {
        self.0
    }

    pub fn now() -> Self {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        EventTime(i64::try_from(nanos).unwrap_or(i64::MAX))
    }

    pub fn parse_rfc3339(s: &str) -> Result<Self, BadTime> {
        let dt = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| BadTime(s.to_string()))?;
        let nanos = i64::try_from(dt.unix_timestamp_nanos()).map_err(|_| BadTime(s.to_string()))?;
        Ok(EventTime(nanos))
    }

    /// The UTC date and time, for outputs that name things after the alert's day (index suffixes).
    pub fn to_offset_date_time(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0))
            .expect("every i64 nanosecond value is a valid date")
    }
}

impl fmt::Display for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dt = self.to_offset_date_time();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.nanosecond()
        )
    }
}

impl serde::Serialize for EventTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for EventTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EventTime::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_nine_fractional_digits_in_utc() {
        let t = EventTime::parse_rfc3339("2026-06-12T11:23:10.5+02:00").unwrap();
        assert_eq!(t.to_string(), "2026-06-12T09:23:10.500000000Z");
        let t = EventTime::parse_rfc3339("2026-06-12T09:23:10.123456789Z").unwrap();
        assert_eq!(t.to_string(), "2026-06-12T09:23:10.123456789Z");
        assert_eq!(t.unix_nanos(), 1_781_256_190_123_456_789);
    }

    #[test]
    fn rejects_what_is_not_rfc3339() {
        for bad in [
            "",
            "yesterday",
            "2026-06-12",
            "2026-06-12 09:23:10",
            "2026-13-01T00:00:00Z",
        ] {
            assert!(EventTime::parse_rfc3339(bad).is_err(), "{bad}");
        }
    }
}
