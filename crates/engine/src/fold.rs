//! Conditions specialised for one event type: the `evt.type` comparisons decided in advance.
//!
//! Falco's macros test the event type again and again (`open_read`, `spawned_process`, ...),
//! although the ruleset only hands a rule the events of types it can match. For each type a rule
//! is indexed under, its condition is folded with `evt.type` known: those comparisons become
//! constants and the `and`/`or` around them shrink. The ruleset uses a folded condition only for
//! an event whose `evt.type` value is that type's name, so the result is the same as evaluating
//! the whole condition.

use crate::eval::{Comparison, Node, Rhs, Source};
use crate::fields::FieldArg;
use crate::filter::Op;

/// `node` with every `evt.type` comparison against literals decided for an event of type `name`.
pub fn for_event_type(node: &Node, name: &str) -> Node {
    match node {
        Node::And(children) => join(children, name, false),
        Node::Or(children) => join(children, name, true),
        Node::Not(inner) => match for_event_type(inner, name) {
            Node::Const(b) => Node::Const(!b),
            other => Node::Not(Box::new(other)),
        },
        Node::Compare(c) => decide(c, name).map_or_else(|| node.clone(), Node::Const),
        Node::Const(b) => Node::Const(*b),
    }
}

/// An `and` (`any` false) or an `or` (`any` true) of folded children: a child equal to `any`
/// decides it, children equal to `!any` drop out.
fn join(children: &[Node], name: &str, any: bool) -> Node {
    let mut kept = Vec::with_capacity(children.len());
    for child in children {
        match for_event_type(child, name) {
            Node::Const(b) if b == any => return Node::Const(any),
            Node::Const(_) => {}
            other => kept.push(other),
        }
    }
    match kept.len() {
        0 => Node::Const(!any),
        1 => kept.pop().expect("one child"),
        _ if any => Node::Or(kept.into_boxed_slice()),
        _ => Node::And(kept.into_boxed_slice()),
    }
}

/// The comparison's result when it tests `evt.type` against literals, else `None`.
fn decide(c: &Comparison, name: &str) -> Option<bool> {
    let Source::Field(f) = &c.lhs else {
        return None;
    };
    if f.info().name != "evt.type" || f.arg != FieldArg::None {
        return None;
    }
    match (c.op, &c.rhs) {
        (Op::Eq, Rhs::Str(s)) => Some(s.as_ref() == name),
        (Op::Ne, Rhs::Str(s)) => Some(s.as_ref() != name),
        (Op::In | Op::Intersects, Rhs::StrSet(set)) => Some(set.contains(name)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_types::index_of;
    use crate::table::TableEvent;
    use crate::{Matching, RulesLoader, Ruleset};

    fn ruleset(condition: &str) -> Ruleset {
        let mut loader = RulesLoader::new();
        loader.add_str(
            "test.yaml",
            &format!(
                "- rule: r\n  desc: d\n  condition: {condition}\n  output: o\n  priority: WARNING\n"
            ),
        );
        let result = loader.load();
        assert!(!result.has_errors());
        let mut ruleset = result.ruleset;
        ruleset.matching = Matching::All;
        ruleset
    }

    fn event(indexed_as: &str, evt_type: &'static str, name: &'static str) -> TableEvent<'static> {
        let mut e = TableEvent::new(index_of(indexed_as));
        e.set_str("evt.type", evt_type).unwrap();
        e.set_str("proc.name", name).unwrap();
        e
    }

    fn matches(r: &Ruleset, e: &TableEvent<'static>) -> bool {
        let mut out = Vec::new();
        r.evaluate(e, &mut out);
        !out.is_empty()
    }

    #[test]
    fn the_event_type_tests_fold_away() {
        let r = ruleset("evt.type in (open, openat) and not evt.type = open and proc.name = cat");
        let folded = for_event_type(&r.rules()[0].filter, "openat");
        assert!(
            matches!(&folded, Node::Compare(c) if matches!(&c.lhs, Source::Field(f) if f.info().name == "proc.name")),
            "only the proc.name test is left: {folded:?}"
        );
        assert!(matches!(
            for_event_type(&r.rules()[0].filter, "open"),
            Node::Const(false)
        ));
        assert!(matches(&r, &event("openat", "openat", "cat")));
        assert!(!matches(&r, &event("openat", "openat", "ls")));
        assert!(!matches(&r, &event("open", "open", "cat")));
    }

    #[test]
    fn an_event_whose_type_field_disagrees_is_judged_on_the_whole_condition() {
        // The rule is indexed under open only. Folded for open it is `proc.name = cat`; an
        // event indexed as open whose evt.type says openat must still be judged on the whole
        // condition, which it fails.
        let r = ruleset("evt.type in (open, openat) and evt.type != openat and proc.name = cat");
        assert!(matches(&r, &event("open", "open", "cat")));
        assert!(!matches(&r, &event("open", "openat", "cat")));
    }
}
