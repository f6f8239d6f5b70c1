//! An alert checked in place: the fields a router needs are validated and decoded, the
//! free-form ones (`output`, `output_fields`, `tags`, `hostname`) are kept as the sender's JSON.
//!
//! Why: a gateway stores every alert it accepts, and decoding `output_fields` into a map only to
//! encode it again was a quarter of the gateway's ingest cost. [`RawAlert::parse`] accepts exactly
//! what [`Alert::from_json_slice_fast`] accepts, except bodies that are not UTF-8 throughout
//! (which the full path accepts when the bad bytes are in the value of a key it skips), and
//! [`RawAlert::encode`] writes a record that decodes to the same [`Alert`] (the tests hold both
//! to that).
//!
//! Two readers find an alert's members: [`scan`], one pass over the bytes for the alerts senders
//! send, and [`wire`], serde_json, for the rest (escapes such as `\u00e9`, numbers with exponents)
//! and to refuse what is not valid. Whatever the first accepts, the second reads alike — a test
//! holds them to it over many thousands of altered alerts.

mod scan;
#[cfg(test)]
mod tests;
mod wire;

use std::borrow::Cow;

#[cfg(doc)]
use crate::alert::Alert;
use crate::alert::{AlertId, TypedMembers};
use crate::priority::Priority;
use crate::time::EventTime;

/// A validated alert borrowing its free-form parts from the body it came in.
#[derive(Debug, Clone)]
pub struct RawAlert<'a> {
    pub priority: Priority,
    pub source: Cow<'a, str>,
    pub uuid: Option<AlertId>,
    pub rule: Cow<'a, str>,
    time: EventTime,
    /// The free-form members as the sender's JSON text (a string, an object of scalars, an
    /// array of strings); `None` when absent or null.
    hostname: Option<&'a str>,
    output: Option<&'a str>,
    output_fields: Option<&'a str>,
    tags: Option<&'a str>,
}

/// An alert's members as a reader found them, before their values are judged: the strings the
/// router reads, decoded, and the free-form members as JSON text of the right shape.
#[derive(Debug, Default, PartialEq)]
struct Members<'a> {
    rule: Option<Cow<'a, str>>,
    priority: Option<Cow<'a, str>>,
    time: Option<Cow<'a, str>>,
    uuid: Option<Cow<'a, str>>,
    source: Option<Cow<'a, str>>,
    hostname: Option<&'a str>,
    output: Option<&'a str>,
    output_fields: Option<&'a str>,
    tags: Option<&'a str>,
}

impl<'a> RawAlert<'a> {
    /// The alert in `bytes` (one JSON object), or `None` when it is not a valid alert; the caller
    /// then takes the slow path that says what is wrong.
    pub fn parse(bytes: &'a [u8]) -> Option<RawAlert<'a>> {
        // One UTF-8 check of the whole alert; neither reader checks each string again. (A body
        // with invalid UTF-8 only where serde_json skips, in an unknown key's value, takes the
        // caller's full path instead.)
        RawAlert::parse_str(std::str::from_utf8(bytes).ok()?)
    }

    /// [`RawAlert::parse`] for an alert already known to be UTF-8 (an item of a JSON array that
    /// serde_json has read).
    pub fn parse_str(text: &'a str) -> Option<RawAlert<'a>> {
        let members = scan::members(text).or_else(|| wire::members(text))?;
        RawAlert::judge(members)
    }

    /// The alert whose members these are, if their values are valid.
    fn judge(m: Members<'a>) -> Option<RawAlert<'a>> {
        let typed = TypedMembers::check(m.rule, m.priority, m.time, m.uuid)?;
        Some(RawAlert {
            priority: typed.priority,
            source: m.source.unwrap_or(Cow::Borrowed("syscall")),
            uuid: typed.uuid,
            rule: typed.rule,
            time: typed.time,
            hostname: m.hostname,
            output: m.output,
            output_fields: m.output_fields,
            tags: m.tags,
        })
    }

    /// Appends the alert as one JSON object in Falco's key order, with `uuid`: the sender's JSON
    /// for the free-form parts, canonical spellings for priority and time.
    pub fn encode(&self, uuid: &AlertId, out: &mut Vec<u8>) {
        let string = |out: &mut Vec<u8>, s: &str| {
            if scan::needs_no_escape(s) {
                out.push(b'"');
                out.extend_from_slice(s.as_bytes());
                out.push(b'"');
            } else {
                serde_json::to_writer(&mut *out, s).expect("a string always serialises")
            }
        };
        out.push(b'{');
        if let Some(hostname) = self.hostname {
            out.extend_from_slice(b"\"hostname\":");
            out.extend_from_slice(hostname.as_bytes());
            out.push(b',');
        }
        out.extend_from_slice(b"\"output\":");
        out.extend_from_slice(self.output.unwrap_or("\"\"").as_bytes());
        out.extend_from_slice(b",\"output_fields\":");
        out.extend_from_slice(self.output_fields.unwrap_or("{}").as_bytes());
        out.extend_from_slice(b",\"priority\":\"");
        out.extend_from_slice(self.priority.as_str().as_bytes());
        out.extend_from_slice(b"\",\"rule\":");
        string(out, &self.rule);
        out.extend_from_slice(b",\"source\":");
        string(out, &self.source);
        out.extend_from_slice(b",\"tags\":");
        out.extend_from_slice(self.tags.unwrap_or("[]").as_bytes());
        out.extend_from_slice(b",\"time\":\"");
        out.extend_from_slice(&self.time.rfc3339());
        out.push(b'"');
        out.extend_from_slice(b",\"uuid\":");
        string(out, uuid.as_str());
        out.push(b'}');
    }
}
