//! The retry core shared by every output: per-attempt timeouts, exponential backoff with full
//! jitter, `Retry-After` pauses of a whole output, and the decision to give up.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::delivery::{Delivery, Failure, ItemResult};
use crate::envelope::Envelope;
use crate::output::Output;

/// The longest pause a `Retry-After` may impose. A destination answering "come back tomorrow" is
/// more likely misconfigured than serious; the backlog stays on disk either way.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// When and how often to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per alert before it is dead-lettered (`Retry-After` pauses do not count).
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Deadline of one attempt; a timeout is a retryable failure.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 12,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff with full jitter: uniform in `[0, min(max, initial · 2^(n-1))]` after
    /// the n-th failed attempt. Full jitter spreads the retries of many workers that failed
    /// together, so a recovering destination is not hit by a synchronised wave.
    pub fn backoff(&self, failed_attempts: u32) -> Duration {
        let exp = failed_attempts.saturating_sub(1).min(30);
        let ceiling = self
            .initial_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff);
        if ceiling.is_zero() {
            return Duration::ZERO;
        }
        let nanos = rand::rng().random_range(0..=ceiling.as_nanos() as u64);
        Duration::from_nanos(nanos)
    }
}

/// Stops every attempt of one output until a destination-given instant (`Retry-After`).
#[derive(Debug, Default)]
pub struct PauseGate {
    until: Mutex<Option<Instant>>,
}

impl PauseGate {
    /// Pauses the output for `d` from now; a longer pause already in place wins.
    pub fn pause_for(&self, d: Duration) {
        let until = Instant::now() + d.min(MAX_RETRY_AFTER);
        let mut guard = self.until.lock().expect("pause gate lock");
        if guard.is_none_or(|current| current < until) {
            *guard = Some(until);
        }
    }

    /// The instant the current pause ends, if one is in force.
    pub fn paused_until(&self) -> Option<Instant> {
        let guard = self.until.lock().expect("pause gate lock");
        guard.filter(|u| *u > Instant::now())
    }

    /// Waits until no pause is in force (pauses can be extended while waiting).
    pub async fn wait(&self) {
        while let Some(until) = self.paused_until() {
            tokio::time::sleep_until(until).await;
        }
    }
}

/// How many attempts of one output may be under way at once (its `max_in_flight`). An attempt
/// holds a slot; a batch waiting out its backoff holds none, so a destination that fails some
/// of its requests does not leave the output's slots asleep while healthy alerts queue behind
/// them. (How many batches may wait is the caller's bound.)
#[derive(Debug, Clone)]
pub struct AttemptSlots(Arc<Semaphore>);

/// One attempt's place among an output's [`AttemptSlots`]; released when dropped.
#[derive(Debug)]
pub struct AttemptSlot {
    _permit: OwnedSemaphorePermit,
}

impl AttemptSlots {
    pub fn new(slots: usize) -> AttemptSlots {
        AttemptSlots(Arc::new(Semaphore::new(slots.max(1))))
    }

    /// Waits for a free slot (first come, first served).
    pub async fn take(&self) -> AttemptSlot {
        let permit = self.0.clone().acquire_owned().await;
        AttemptSlot {
            _permit: permit.expect("the semaphore is never closed"),
        }
    }
}

/// Hooks for what the caller wants to count; the core itself keeps no metrics.
pub trait AttemptObserver: Send + Sync {
    /// An attempt failed in a way that will be retried (after a backoff or a pause).
    fn retrying(&self, failure: &Failure, alerts: usize);
}

/// The final fate of one alert after every attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Never deliverable, or the attempt budget ran out. `attempts` counts the tries made.
    DeadLetter {
        failure: Failure,
        attempts: u32,
    },
}

/// Delivers `batch` through `output`, retrying as the policy says, until every alert is either
/// delivered or dead-lettered. Returns one outcome per alert, in batch order.
///
/// Only the alerts still failing are sent again, so a bulk output's partial success is not
/// repeated for the items that already landed.
pub async fn deliver_with_retries(
    output: &dyn Output,
    batch: &[Envelope],
    policy: &RetryPolicy,
    gate: &PauseGate,
    observer: &dyn AttemptObserver,
) -> Vec<Outcome> {
    deliver_in_slots(output, batch, policy, gate, observer, None).await
}

/// [`deliver_with_retries`], each attempt in one of `slots` (the first in the slot given, if
/// any): a batch waiting for its retry holds no slot.
pub async fn deliver_in_slots(
    output: &dyn Output,
    batch: &[Envelope],
    policy: &RetryPolicy,
    gate: &PauseGate,
    observer: &dyn AttemptObserver,
    slots: Option<(&AttemptSlots, Option<AttemptSlot>)>,
) -> Vec<Outcome> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
    // Indices into `batch` still to deliver.
    let mut pending: Vec<usize> = (0..batch.len()).collect();
    // Counted attempts: a pause the destination asked for does not use one up.
    let mut attempts: u32 = 0;
    let (slots, mut held) = slots.map_or((None, None), |(s, first)| (Some(s), first));

    while !pending.is_empty() {
        if let (Some(slots), None) = (slots, &held) {
            held = Some(slots.take().await);
        }
        gate.wait().await;
        output.pace().await;
        // `pending` is an ascending subset of the batch's indices, so at full length it is the
        // whole batch, sent without a copy (every first attempt).
        let sending: Cow<'_, [Envelope]> = if pending.len() == batch.len() {
            Cow::Borrowed(batch)
        } else {
            Cow::Owned(pending.iter().map(|&i| batch[i].clone()).collect())
        };
        let result = attempt(output, &sending, policy.timeout).await;
        let pause = match &result {
            Delivery::RetryAfter(_, wait) => Some(*wait),
            _ => None,
        };
        let still_failing = settle(result, &pending, attempts + 1, &mut outcomes);
        if still_failing.is_empty() {
            break;
        }
        if pause.is_none() {
            attempts += 1;
        }
        if attempts >= policy.max_attempts {
            give_up(still_failing, attempts, &mut outcomes);
            break;
        }
        observer.retrying(&still_failing[0].1, still_failing.len());
        // The pause goes up before the slot is given back: the attempt waiting for the slot
        // must find the gate closed, not slip through before it shuts.
        if let Some(wait) = pause {
            gate.pause_for(wait);
        }
        drop(held.take());
        if pause.is_none() {
            tokio::time::sleep(policy.backoff(attempts)).await;
        }
        pending = still_failing.into_iter().map(|(i, _)| i).collect();
    }

    outcomes
        .into_iter()
        .map(|o| o.expect("every alert has an outcome"))
        .collect()
}

/// One call of the output, bounded by the attempt timeout (a timeout is worth retrying).
async fn attempt(output: &dyn Output, sending: &[Envelope], timeout: Duration) -> Delivery {
    match tokio::time::timeout(timeout, output.deliver(sending)).await {
        Ok(result) => result,
        Err(_) => Delivery::Retry(Failure::new(
            None,
            format!("timed out after {}ms", timeout.as_millis()),
        )),
    }
}

/// Records the final outcomes an attempt decided for the alerts at `pending` (`attempt` is its
/// number), and returns those to try again with why they failed.
fn settle(
    result: Delivery,
    pending: &[usize],
    attempt: u32,
    outcomes: &mut [Option<Outcome>],
) -> Vec<(usize, Failure)> {
    let dead_letter = |failure: &Failure| Outcome::DeadLetter {
        failure: failure.clone(),
        attempts: attempt,
    };
    let mut still_failing = Vec::new();
    match result {
        Delivery::Delivered => {
            for &i in pending {
                outcomes[i] = Some(Outcome::Delivered);
            }
        }
        Delivery::Permanent(failure) => {
            for &i in pending {
                outcomes[i] = Some(dead_letter(&failure));
            }
        }
        Delivery::Retry(failure) | Delivery::RetryAfter(failure, _) => {
            still_failing = pending.iter().map(|&i| (i, failure.clone())).collect();
        }
        Delivery::Partial(items) => {
            for (k, &i) in pending.iter().enumerate() {
                match items.get(k) {
                    Some(ItemResult::Delivered) => outcomes[i] = Some(Outcome::Delivered),
                    Some(ItemResult::Permanent(failure)) => {
                        outcomes[i] = Some(dead_letter(failure))
                    }
                    Some(ItemResult::Retry(failure)) => still_failing.push((i, failure.clone())),
                    None => still_failing.push((
                        i,
                        Failure::new(None, "destination returned no result for this alert"),
                    )),
                }
            }
        }
    }
    still_failing
}

/// Dead-letters the alerts still failing when the attempt budget is spent.
fn give_up(still_failing: Vec<(usize, Failure)>, attempts: u32, outcomes: &mut [Option<Outcome>]) {
    for (i, failure) in still_failing {
        outcomes[i] = Some(Outcome::DeadLetter {
            failure: Failure::new(
                failure.status,
                format!("gave up after {attempts} attempts: {}", failure.reason),
            )
            .with_code("retries_exhausted"),
            attempts,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use peregrine_engine::{Alert, AlertId};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn envelope(n: usize) -> Envelope {
        let mut alert = Alert::from_json(serde_json::json!({
            "rule": format!("r{n}"), "priority": "Warning", "time": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        alert.uuid = Some(AlertId::generate());
        Envelope::new(alert)
    }

    /// Answers from a script, one entry per call, then `Delivered`.
    struct Scripted {
        script: Mutex<Vec<Delivery>>,
        calls: AtomicUsize,
        sizes: Mutex<Vec<usize>>,
    }

    impl Scripted {
        fn new(mut script: Vec<Delivery>) -> Self {
            script.reverse();
            Scripted {
                script: Mutex::new(script),
                calls: AtomicUsize::new(0),
                sizes: Mutex::new(Vec::new()),
            }
        }
    }

    #[async_trait]
    impl Output for Scripted {
        fn kind(&self) -> &'static str {
            "scripted"
        }
        async fn deliver(&self, batch: &[Envelope]) -> Delivery {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.sizes.lock().unwrap().push(batch.len());
            self.script
                .lock()
                .unwrap()
                .pop()
                .unwrap_or(Delivery::Delivered)
        }
    }

    struct Count(AtomicUsize);
    impl AttemptObserver for Count {
        fn retrying(&self, _: &Failure, _: usize) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn fast_policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            timeout: Duration::from_millis(200),
        }
    }

    #[tokio::test]
    async fn retries_transient_failures_then_delivers() {
        let out = Scripted::new(vec![
            Delivery::Retry(Failure::new(Some(500), "boom")),
            Delivery::Retry(Failure::new(None, "connection refused")),
        ]);
        let count = Count(AtomicUsize::new(0));
        let got = deliver_with_retries(
            &out,
            &[envelope(1)],
            &fast_policy(5),
            &PauseGate::default(),
            &count,
        )
        .await;
        assert_eq!(got, vec![Outcome::Delivered]);
        assert_eq!(out.calls.load(Ordering::SeqCst), 3);
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts_with_the_last_reason() {
        let out = Scripted::new(
            (0..10)
                .map(|_| Delivery::Retry(Failure::new(Some(503), "down")))
                .collect(),
        );
        let got = deliver_with_retries(
            &out,
            &[envelope(1)],
            &fast_policy(3),
            &PauseGate::default(),
            &Count(AtomicUsize::new(0)),
        )
        .await;
        assert_eq!(out.calls.load(Ordering::SeqCst), 3);
        match &got[0] {
            Outcome::DeadLetter { failure, attempts } => {
                assert_eq!(*attempts, 3);
                assert_eq!(failure.status, Some(503));
                assert!(
                    failure.reason.starts_with("gave up after 3 attempts: down"),
                    "{}",
                    failure.reason
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried() {
        let out = Scripted::new(vec![Delivery::Permanent(Failure::new(
            Some(400),
            "bad body",
        ))]);
        let got = deliver_with_retries(
            &out,
            &[envelope(1)],
            &fast_policy(5),
            &PauseGate::default(),
            &Count(AtomicUsize::new(0)),
        )
        .await;
        assert_eq!(out.calls.load(Ordering::SeqCst), 1);
        assert!(matches!(&got[0], Outcome::DeadLetter { attempts: 1, .. }));
    }

    #[tokio::test]
    async fn partial_success_resends_only_the_failed_items() {
        let out = Scripted::new(vec![Delivery::Partial(vec![
            ItemResult::Delivered,
            ItemResult::Retry(Failure::new(Some(429), "es_rejected_execution_exception")),
            ItemResult::Permanent(Failure::new(Some(400), "mapper_parsing_exception")),
        ])]);
        let batch = [envelope(1), envelope(2), envelope(3)];
        let got = deliver_with_retries(
            &out,
            &batch,
            &fast_policy(5),
            &PauseGate::default(),
            &Count(AtomicUsize::new(0)),
        )
        .await;
        assert_eq!(*out.sizes.lock().unwrap(), vec![3, 1]);
        assert_eq!(got[0], Outcome::Delivered);
        assert_eq!(got[1], Outcome::Delivered);
        assert!(matches!(&got[2], Outcome::DeadLetter { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_pauses_and_does_not_spend_attempts() {
        let out = Scripted::new(vec![
            Delivery::RetryAfter(Failure::new(Some(429), "slow down"), Duration::from_secs(2)),
            Delivery::RetryAfter(Failure::new(Some(429), "slow down"), Duration::from_secs(2)),
        ]);
        let started = Instant::now();
        let got = deliver_with_retries(
            &out,
            &[envelope(1)],
            &fast_policy(1),
            &PauseGate::default(),
            &Count(AtomicUsize::new(0)),
        )
        .await;
        assert_eq!(got, vec![Outcome::Delivered]);
        assert!(started.elapsed() >= Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_destination_times_out_and_is_retried() {
        struct Hangs(AtomicUsize);
        #[async_trait]
        impl Output for Hangs {
            fn kind(&self) -> &'static str {
                "hangs"
            }
            async fn deliver(&self, _: &[Envelope]) -> Delivery {
                if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
                    std::future::pending::<()>().await;
                }
                Delivery::Delivered
            }
        }
        let out = Hangs(AtomicUsize::new(0));
        let got = deliver_with_retries(
            &out,
            &[envelope(1)],
            &fast_policy(3),
            &PauseGate::default(),
            &Count(AtomicUsize::new(0)),
        )
        .await;
        assert_eq!(got, vec![Outcome::Delivered]);
        assert_eq!(out.0.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_waiting_for_its_retry_holds_no_attempt_slot() {
        let out = Arc::new(Scripted::new(vec![Delivery::Retry(Failure::new(
            Some(500),
            "boom",
        ))]));
        let slots = AttemptSlots::new(1);
        let policy = RetryPolicy {
            initial_backoff: Duration::from_secs(3600),
            max_backoff: Duration::from_secs(3600),
            ..fast_policy(3)
        };
        let first = slots.take().await;
        let waiting = tokio::spawn({
            let (out, slots) = (out.clone(), slots.clone());
            async move {
                let (gate, count) = (PauseGate::default(), Count(AtomicUsize::new(0)));
                let batch = [envelope(1)];
                let slot = Some((&slots, Some(first)));
                deliver_in_slots(out.as_ref(), &batch, &policy, &gate, &count, slot).await
            }
        });
        for _ in 0..1000 {
            if out.calls.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(
            out.calls.load(Ordering::SeqCst),
            1,
            "the first attempt failed"
        );
        // The batch now waits out up to an hour of backoff; its slot is free meanwhile.
        let other = tokio::time::timeout(Duration::from_secs(1), slots.take())
            .await
            .expect("a backing-off batch left its slot to others");
        // Its retry needs a slot again: none while another attempt holds the only one.
        tokio::time::sleep(Duration::from_secs(7200)).await;
        assert_eq!(out.calls.load(Ordering::SeqCst), 1);
        drop(other);
        assert_eq!(waiting.await.unwrap(), vec![Outcome::Delivered]);
        assert_eq!(out.calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn backoff_is_bounded_by_the_exponential_ceiling() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        };
        for _ in 0..200 {
            assert!(p.backoff(1) <= Duration::from_millis(100));
            assert!(p.backoff(3) <= Duration::from_millis(400));
            assert!(p.backoff(20) <= Duration::from_secs(1));
        }
        let spread: std::collections::HashSet<_> = (0..50).map(|_| p.backoff(5)).collect();
        assert!(spread.len() > 10, "full jitter spreads retries");
    }
}
