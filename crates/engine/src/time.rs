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

    /// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, ASCII, written digit by digit: a gateway prints one per
    /// stored alert, and `write!` with nine padded fields cost about as much as checking the rest
    /// of the alert's fixed fields.
    pub fn rfc3339(self) -> [u8; RFC3339_LEN] {
        let dt = self.to_offset_date_time();
        let mut out = *b"0000-00-00T00:00:00.000000000Z";
        let mut put = |at: usize, width: usize, mut value: u32| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, dt.year().unsigned_abs());
        put(5, 2, u8::from(dt.month()).into());
        put(8, 2, dt.day().into());
        put(11, 2, dt.hour().into());
        put(14, 2, dt.minute().into());
        put(17, 2, dt.second().into());
        put(20, 9, dt.nanosecond());
        out
    }
}

/// The length of [`EventTime::rfc3339`]: every `i64` of nanoseconds falls in the years 1677 to
/// 2262, so the form never changes width.
const RFC3339_LEN: usize = 30;

impl fmt::Display for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.rfc3339();
        f.write_str(std::str::from_utf8(&text).expect("ASCII digits and separators"))
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
    fn prints_the_whole_range_at_the_same_width() {
        for nanos in [i64::MIN, -1, 0, 1, 1_781_256_190_123_456_789, i64::MAX] {
            let t = EventTime::from_unix_nanos(nanos);
            let printed = t.to_string();
            assert_eq!(printed.len(), RFC3339_LEN, "{printed}");
            assert_eq!(EventTime::parse_rfc3339(&printed), Ok(t), "{printed}");
        }
        assert_eq!(
            EventTime::from_unix_nanos(i64::MIN).to_string(),
            "1677-09-21T00:12:43.145224192Z"
        );
        assert_eq!(
            EventTime::from_unix_nanos(-1).to_string(),
            "1969-12-31T23:59:59.999999999Z"
        );
    }

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
