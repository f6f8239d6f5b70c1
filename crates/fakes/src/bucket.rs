//! The services' rate limits, as they count.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A rate limit as a service enforces it.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    /// A token bucket: `per_second`, at most `burst` saved up. `slack` is how early a request may
    /// arrive and still count as on time (network jitter between two paced requests).
    Bucket {
        per_second: f64,
        burst: f64,
        slack: f64,
    },
    /// At most `count` requests in any `window` (PagerDuty's sliding minute).
    Window { count: usize, window: Duration },
}

#[derive(Debug)]
pub(crate) struct Limiter {
    limit: Limit,
    tokens: f64,
    last: Instant,
    recent: VecDeque<Instant>,
}

impl Limiter {
    pub(crate) fn new(limit: Limit) -> Self {
        let tokens = match limit {
            Limit::Bucket { burst, .. } => burst,
            Limit::Window { .. } => 0.0,
        };
        Limiter {
            limit,
            tokens,
            last: Instant::now(),
            recent: VecDeque::new(),
        }
    }

    /// Counts a request at `now`; false when it is over the limit.
    pub(crate) fn admit(&mut self, now: Instant) -> bool {
        match self.limit {
            Limit::Bucket {
                per_second,
                burst,
                slack,
            } => {
                self.tokens = (self.tokens
                    + now.duration_since(self.last).as_secs_f64() * per_second)
                    .min(burst);
                self.last = now;
                if self.tokens >= 1.0 - slack {
                    self.tokens -= 1.0;
                    true
                } else {
                    false
                }
            }
            Limit::Window { count, window } => {
                while self
                    .recent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= window)
                {
                    self.recent.pop_front();
                }
                if self.recent.len() < count {
                    self.recent.push_back(now);
                    true
                } else {
                    false
                }
            }
        }
    }
}
