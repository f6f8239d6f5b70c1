//! How much of the spool one output may hold behind its cursor (`max_backlog`), and what
//! happens when it holds more (`on_backlog_full`).
//!
//! The spool is shared: without a per-output bound, one dead destination lets its backlog grow
//! until the spool is full, and then ingest stops for every output. An operator chooses:
//! - `block` (the default): ingest answers 503 while the output is over its limit. Nothing is
//!   lost and nothing is reordered, but every sender waits for the slowest output — right for a
//!   destination of record (a SIEM, an archive bucket) where a gap is worse than a delay.
//! - `dead_letter_oldest`: the output's oldest alerts move to its dead-letter file (reason
//!   `overflow`) until its backlog is back under the limit; ingest and the other outputs go on,
//!   and the operator replays the dead letters once the destination is back
//!   (`peregrine-gateway dead-letters replay`) — right for chat and paging, where ingest must not
//!   stop because one webhook is down.

use std::fmt;
use std::str::FromStr;

/// What to do when an output's backlog passes its `max_backlog`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BacklogPolicy {
    #[default]
    Block,
    DeadLetterOldest,
}

impl FromStr for BacklogPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "block" => Ok(BacklogPolicy::Block),
            "dead_letter_oldest" => Ok(BacklogPolicy::DeadLetterOldest),
            other => Err(format!(
                "'{other}' is not a backlog policy (block or dead_letter_oldest)"
            )),
        }
    }
}

impl fmt::Display for BacklogPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BacklogPolicy::Block => "block",
            BacklogPolicy::DeadLetterOldest => "dead_letter_oldest",
        })
    }
}

/// An output's backlog bound. Without `max_bytes` (and `block`), only the spool's own
/// `max_bytes` bounds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BacklogLimit {
    pub max_bytes: Option<u64>,
    pub policy: BacklogPolicy,
}

impl BacklogLimit {
    /// Bytes of log from `committed` to `end`, when that is more than the limit.
    pub fn excess(&self, committed: u64, end: u64) -> Option<u64> {
        let max = self.max_bytes?;
        let backlog = end.saturating_sub(committed);
        (backlog > max).then_some(backlog)
    }

    /// Whether the output ever dead-letters its oldest alerts to stay under its limit.
    pub fn sheds(&self) -> bool {
        self.policy == BacklogPolicy::DeadLetterOldest && self.max_bytes.is_some()
    }

    /// Whether ingest can be refused for this output: `block` with a limit.
    pub fn blocks(&self) -> bool {
        self.policy == BacklogPolicy::Block && self.max_bytes.is_some()
    }

    /// With `dead_letter_oldest`, and `committed` more than the limit behind `end`: the log
    /// offset before which records are dead-lettered. Shedding goes down to seven eighths of the
    /// limit, so that a backlog at its limit sheds in chunks (one dead-letter write per chunk)
    /// rather than one alert per alert accepted.
    pub fn shed_before(&self, committed: u64, end: u64) -> Option<u64> {
        if !self.sheds() {
            return None;
        }
        let max = self.max_bytes?;
        self.excess(committed, end)?;
        Some(end - (max - max / 8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_oldest_sheds_to_seven_eighths_of_the_limit() {
        let limit = BacklogLimit {
            max_bytes: Some(800),
            policy: BacklogPolicy::DeadLetterOldest,
        };
        assert_eq!(limit.shed_before(200, 1000), None, "at the limit");
        assert_eq!(limit.shed_before(199, 1000), Some(300));
        assert_eq!(limit.excess(199, 1000), Some(801));
    }

    #[test]
    fn block_never_sheds_and_no_limit_never_exceeds() {
        let block = BacklogLimit {
            max_bytes: Some(10),
            policy: BacklogPolicy::Block,
        };
        assert_eq!(block.shed_before(0, 1000), None);
        assert_eq!(block.excess(0, 1000), Some(1000));
        assert_eq!(BacklogLimit::default().excess(0, u64::MAX), None);
    }

    #[test]
    fn policies_parse_and_print_as_configured() {
        for p in [BacklogPolicy::Block, BacklogPolicy::DeadLetterOldest] {
            assert_eq!(p.to_string().parse::<BacklogPolicy>(), Ok(p));
        }
        let err = "drop".parse::<BacklogPolicy>().unwrap_err();
        assert!(err.contains("block or dead_letter_oldest"), "{err}");
    }
}
