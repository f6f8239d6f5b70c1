//! Each distinct comparison evaluated at most once per event.
//!
//! Why: Falco's rules share their macros (`open_read`, `spawned_process`, `container`…), so the
//! rules an event reaches test the same comparisons again and again, each time extracting the
//! field anew. A ruleset numbers its distinct comparisons ([`number_comparisons`]) and keeps, while
//! it evaluates one event, each one's result in a slot ([`Memo`]). Conditions are pure functions
//! of the event (what [`crate::eval::Event::extract`] promises), so a result found once holds for
//! every rule that asks again. Comparisons equal only up to the order of a small list keep
//! separate slots: that costs sharing, never correctness.

use std::collections::HashMap;

use crate::eval::{Comparison, Event, Node, Rhs, StrSet, NO_SLOT};

/// Results of one event's comparisons, by slot: unknown, false or true.
#[derive(Debug, Default)]
pub(crate) struct Memo {
    results: Vec<Option<bool>>,
}

impl Memo {
    /// Forgets the last event's results, with room for `slots`.
    pub fn reset(&mut self, slots: usize) {
        self.results.clear();
        self.results.resize(slots, None);
    }
}

impl Node {
    /// Whether `event` satisfies this condition, taking and keeping each numbered comparison's
    /// result in `memo` (a comparison without a slot in it is evaluated every time).
    pub(crate) fn eval_memo(&self, event: &dyn Event, memo: &mut Memo) -> bool {
        match self {
            Node::And(children) => children.iter().all(|c| c.eval_memo(event, memo)),
            Node::Or(children) => children.iter().any(|c| c.eval_memo(event, memo)),
            Node::Not(inner) => !inner.eval_memo(event, memo),
            Node::Compare(c) => match memo.results.get_mut(c.slot as usize) {
                Some(Some(known)) => *known,
                Some(unknown) => *unknown.insert(c.eval(event)),
                None => c.eval(event),
            },
            Node::Const(b) => *b,
        }
    }
}

/// Gives every comparison in `trees` a slot, equal comparisons the same one; returns how many
/// slots there are.
pub(crate) fn number_comparisons<'a>(trees: impl Iterator<Item = &'a mut Node>) -> usize {
    let mut slots: HashMap<String, u32> = HashMap::new();
    for tree in trees {
        visit(tree, &mut |c| {
            let next = slots.len() as u32;
            c.slot = *slots.entry(key(c)).or_insert(next);
        });
    }
    slots.len()
}

fn visit(node: &mut Node, f: &mut impl FnMut(&mut Comparison)) {
    match node {
        Node::And(children) | Node::Or(children) => children.iter_mut().for_each(|c| visit(c, f)),
        Node::Not(inner) => visit(inner, f),
        Node::Compare(c) => f(c),
        Node::Const(_) => {}
    }
}

/// What makes two comparisons equal: their whole compiled form (so two that print alike test
/// alike), with hashed sets in sorted order (a set's print order depends on its hasher).
fn key(c: &Comparison) -> String {
    let mut copy = c.clone();
    copy.slot = NO_SLOT;
    if let Rhs::StrSet(StrSet::Large(set)) = &c.rhs {
        let mut items: Vec<&str> = set.iter().map(AsRef::as_ref).collect();
        items.sort_unstable();
        copy.rhs = Rhs::None;
        return format!("{copy:?} in {items:?}");
    }
    format!("{copy:?}")
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use crate::eval::{Event, Extracted, Val};
    use crate::fields::ResolvedField;
    use crate::{Matching, RulesLoader, Ruleset};

    const SET: &str = "(a, b, c, d, e, f, g, h, i, j)";
    const SAME_SET_REORDERED: &str = "(j, i, h, g, f, e, d, c, b, a)";

    /// Two rules for every event type that share a hashed-set comparison written in two orders.
    fn ruleset() -> Ruleset {
        let rule = |name: &str, cond: String| {
            format!(
                "- rule: {name}\n  desc: d\n  condition: {cond:?}\n  output: o\n  priority: INFO\n"
            )
        };
        let text = rule("r1", format!("proc.name in {SET} and fd.name = /x"))
            + &rule(
                "r2",
                format!("proc.name in {SAME_SET_REORDERED} and fd.name = /y"),
            );
        let mut loader = RulesLoader::new();
        loader.add_str("t.yaml", &text);
        let loaded = loader.load();
        assert!(!loaded.has_errors(), "{}", loaded.render().join("\n"));
        let mut ruleset = loaded.ruleset;
        ruleset.matching = Matching::All;
        ruleset
    }

    /// An event of unknown type that counts the fields extracted from it.
    struct Counted {
        proc_name: &'static str,
        fd_name: &'static str,
        extracted: Cell<usize>,
    }

    impl Event for Counted {
        fn event_type(&self) -> Option<usize> {
            None
        }

        fn extract(&self, field: &ResolvedField) -> Extracted<'_> {
            self.extracted.set(self.extracted.get() + 1);
            let value = match field.info().name {
                "proc.name" => self.proc_name,
                "fd.name" => self.fd_name,
                _ => return Extracted::Missing,
            };
            Extracted::One(Val::Str(value.into()))
        }
    }

    fn matches(ruleset: &Ruleset, event: &Counted) -> Vec<String> {
        let mut out = Vec::new();
        ruleset.evaluate(event, &mut out);
        out.iter().map(|r| r.name.clone()).collect()
    }

    /// An event that evaluates the ruleset on another event while it is itself evaluated.
    struct Nested<'a> {
        ruleset: &'a Ruleset,
        outer: Counted,
        inner_matched: std::cell::RefCell<Vec<String>>,
    }

    impl Event for Nested<'_> {
        fn event_type(&self) -> Option<usize> {
            None
        }

        fn extract(&self, field: &ResolvedField) -> Extracted<'_> {
            let inner = Counted {
                proc_name: "zz",
                fd_name: "/y",
                extracted: Cell::new(0),
            };
            *self.inner_matched.borrow_mut() = matches(self.ruleset, &inner);
            self.outer.extract(field)
        }
    }

    #[test]
    fn an_evaluation_inside_an_evaluation_gets_its_own_answers() {
        let ruleset = ruleset();
        let nested = Nested {
            ruleset: &ruleset,
            outer: Counted {
                proc_name: "c",
                fd_name: "/y",
                extracted: Cell::new(0),
            },
            inner_matched: Default::default(),
        };
        let mut out = Vec::new();
        ruleset.evaluate(&nested, &mut out);
        let outer: Vec<&str> = out.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(outer, ["r2"]);
        assert!(nested.inner_matched.borrow().is_empty());
    }

    #[test]
    fn equal_comparisons_share_a_slot_and_different_ones_do_not() {
        // The set (in either order), `fd.name = /x` and `fd.name = /y`.
        assert_eq!(ruleset().slots, 3);
    }

    #[test]
    fn a_result_is_reused_within_an_event_and_never_across_events() {
        let ruleset = ruleset();
        let first = Counted {
            proc_name: "c",
            fd_name: "/x",
            extracted: Cell::new(0),
        };
        assert_eq!(matches(&ruleset, &first), ["r1"]);
        assert_eq!(first.extracted.get(), 3, "r2 reuses r1's set test");

        // Had the first event's results leaked, the set test would hold and r1 would go on to
        // extract `fd.name`.
        let second = Counted {
            proc_name: "zz",
            fd_name: "/x",
            extracted: Cell::new(0),
        };
        assert!(matches(&ruleset, &second).is_empty());
        assert_eq!(second.extracted.get(), 1);
    }
}
