//! Alert ids stored lately, so that a sender's retry (or Kafka's redelivery) of alerts already
//! stored stores nothing twice.
//!
//! Senders give each alert its uuid before the first attempt (the sensor does; Falco's
//! `http_output` sends none, and then every alert is new). A request that timed out after the
//! gateway stored it comes again with the same ids: they are skipped. Two requests carrying the
//! same id at once are settled by a claim: the second waits until the first is stored (then
//! skips it) or failed (then stores it itself).

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use tokio::sync::Notify;

/// Ids remembered: at a few hundred alerts a second, the last several minutes.
pub const REMEMBERED_IDS: usize = 100_000;

#[derive(Default)]
pub struct SeenIds {
    state: Mutex<State>,
    released: Notify,
}

#[derive(Default)]
struct State {
    stored: HashSet<String>,
    order: VecDeque<String>,
    /// Ids of requests being stored now.
    claimed: HashSet<String>,
}

/// The ids one request is storing. [`Claim::stored`] remembers them; dropping the claim
/// without it (the append failed) lets another request store them.
pub struct Claim<'a> {
    ids: Vec<String>,
    /// Per alert of the request, in order: whether to store it.
    pub keep: Vec<bool>,
    seen: &'a SeenIds,
}

impl SeenIds {
    /// Claims the ids of a request's alerts (`None`: no id, always new). Alerts whose id is
    /// stored, or repeated within the request, are not kept.
    pub async fn claim<'i, I>(&self, ids: I) -> Claim<'_>
    where
        I: IntoIterator<Item = Option<&'i str>> + Clone,
    {
        // Falco's http_output sends no ids: then there is nothing to remember or wait for, and
        // the hot path takes no lock.
        if ids.clone().into_iter().all(|id| id.is_none()) {
            return Claim {
                ids: Vec::new(),
                keep: vec![true; ids.into_iter().count()],
                seen: self,
            };
        }
        loop {
            let released = self.released.notified();
            if let Some(claim) = self.try_claim(ids.clone()) {
                return claim;
            }
            released.await;
        }
    }

    /// The claim, or `None` when another request holds one of the ids now.
    fn try_claim<'i>(&self, ids: impl IntoIterator<Item = Option<&'i str>>) -> Option<Claim<'_>> {
        let mut state = self.state.lock().expect("seen ids lock");
        let mut claim = Claim {
            ids: Vec::new(),
            keep: Vec::new(),
            seen: self,
        };
        let mut in_request = HashSet::new();
        for id in ids {
            let keep = match id {
                None => true,
                Some(id) if state.claimed.contains(id) => return None,
                Some(id) => !state.stored.contains(id) && in_request.insert(id),
            };
            claim.keep.push(keep);
        }
        for id in in_request {
            state.claimed.insert(id.to_string());
            claim.ids.push(id.to_string());
        }
        Some(claim)
    }
}

impl Claim<'_> {
    /// How many alerts are to be stored.
    pub fn kept(&self) -> usize {
        self.keep.iter().filter(|k| **k).count()
    }

    /// The alerts were stored: remember their ids.
    pub fn stored(mut self) {
        let mut state = self.seen.state.lock().expect("seen ids lock");
        for id in std::mem::take(&mut self.ids) {
            state.claimed.remove(&id);
            if state.stored.insert(id.clone()) {
                state.order.push_back(id);
                if state.order.len() > REMEMBERED_IDS {
                    if let Some(old) = state.order.pop_front() {
                        state.stored.remove(&old);
                    }
                }
            }
        }
        drop(state);
        self.seen.released.notify_waiters();
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if self.ids.is_empty() {
            return;
        }
        let mut state = self.seen.state.lock().expect("seen ids lock");
        for id in &self.ids {
            state.claimed.remove(id);
        }
        drop(state);
        self.seen.released.notify_waiters();
    }
}

/// The alerts whose `keep` is true. A retry of alerts already stored is answered as accepted
/// without storing them again: they are.
pub fn keep<T>(alerts: Vec<T>, keep: &[bool]) -> Vec<T> {
    alerts
        .into_iter()
        .zip(keep)
        .filter_map(|(a, k)| k.then_some(a))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn stored_and_repeated_ids_are_skipped() {
        let seen = SeenIds::default();
        let claim = seen.claim([Some("a"), None, Some("b"), Some("a")]).await;
        assert_eq!(claim.keep, [true, true, true, false]);
        claim.stored();
        let again = seen.claim([Some("b"), Some("c"), None]).await;
        assert_eq!(again.keep, [false, true, true]);
        assert_eq!(again.kept(), 2);
    }

    #[tokio::test]
    async fn a_failed_store_lets_the_ids_be_stored_later() {
        let seen = SeenIds::default();
        drop(seen.claim([Some("a")]).await);
        assert_eq!(seen.claim([Some("a")]).await.keep, [true]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_concurrent_duplicate_waits_for_the_first_and_then_skips() {
        let seen = Arc::new(SeenIds::default());
        let first = seen.claim([Some("x")]).await;
        let second = tokio::spawn({
            let seen = seen.clone();
            async move { seen.claim([Some("x"), Some("y")]).await.keep.clone() }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !second.is_finished(),
            "the duplicate waits while the first is stored"
        );
        first.stored();
        let keep = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("released")
            .unwrap();
        assert_eq!(keep, [false, true]);
    }

    #[test]
    fn memory_is_bounded() {
        let seen = SeenIds::default();
        for i in 0..REMEMBERED_IDS + 10 {
            let id = i.to_string();
            seen.try_claim([Some(id.as_str())]).unwrap().stored();
        }
        let state = seen.state.lock().unwrap();
        assert_eq!(state.stored.len(), REMEMBERED_IDS);
        assert!(!state.stored.contains("0") && state.stored.contains("100009"));
    }
}
