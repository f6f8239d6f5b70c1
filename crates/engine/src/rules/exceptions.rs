//! Rule exceptions turned into conditions, as Falco rewrites them: each exception adds
//! `and not (...)` to the rule's condition.
//!
//! - Single-field form (`fields: f`): `f comp (v1, v2, ...)`, `comp` defaulting to `in`.
//! - List form (`fields: [f1, f2]`): one `(f1 c1 v1 and f2 c2 v2)` per value tuple, joined by
//!   `or`; each comp defaults to `=`.

use crate::filter::{Check, Expr, FieldRef, Op, Operand, Rhs, Span, Value};

use super::diag::Loc;
use super::reader::{ExcElem, Exception, OneOrMany};

/// Synthetic nodes have no place in the condition text; errors on them point at the rule.
const NOWHERE: Span = Span {
    start: usize::MAX,
    end: usize::MAX,
};

/// The conditions of the rule's exceptions (those with values), in order.
pub fn build(exceptions: &[Exception]) -> Result<Vec<Expr>, (Loc, String)> {
    let mut out = Vec::new();
    for e in exceptions {
        if let Some(expr) = one(e)? {
            out.push(expr);
        }
    }
    Ok(out)
}

fn one(e: &Exception) -> Result<Option<Expr>, (Loc, String)> {
    let fail = |message: String| Err((e.loc, format!("Rule exception item {}: {message}", e.name)));
    let Some(fields) = &e.fields else {
        return fail("must have fields property with a list of fields".into());
    };
    if e.values.is_empty() {
        return Ok(None);
    }
    match fields {
        OneOrMany::One(field) => {
            let comp = match &e.comps {
                None => Op::In,
                Some(OneOrMany::One(c)) => match parse_op(c) {
                    Some(op) => op,
                    None => return fail(format!("invalid comparison operator '{c}'")),
                },
                Some(OneOrMany::Many(_)) => {
                    return fail(
                        "fields is a single value, so comps must be a single value too".into(),
                    )
                }
            };
            if !matches!(comp, Op::In | Op::Pmatch | Op::Intersects) {
                return fail(format!("fields is a single value, so comps must be in, pmatch or intersects, not '{comp}'"));
            }
            let mut values = Vec::new();
            for tuple in &e.values {
                for elem in tuple {
                    match elem {
                        ExcElem::Scalar(s) => values.push(value(s)),
                        ExcElem::List(items) => values.extend(items.iter().map(|s| value(s))),
                    }
                }
            }
            Ok(Some(check(field, comp, Rhs::List(values))))
        }
        OneOrMany::Many(fields) => {
            let comps: Vec<Op> = match &e.comps {
                None => vec![Op::Eq; fields.len()],
                Some(OneOrMany::One(c)) => {
                    return fail(format!(
                        "fields is a list, so comps must be a list too (got '{c}')"
                    ))
                }
                Some(OneOrMany::Many(cs)) => {
                    let mut ops = Vec::new();
                    for c in cs {
                        match parse_op(c) {
                            Some(op) => ops.push(op),
                            None => return fail(format!("invalid comparison operator '{c}'")),
                        }
                    }
                    ops
                }
            };
            if comps.len() != fields.len() {
                return fail(format!(
                    "fields and comps lists must have equal length ({} fields, {} comps)",
                    fields.len(),
                    comps.len()
                ));
            }
            let mut alternatives = Vec::new();
            for (n, tuple) in e.values.iter().enumerate() {
                if tuple.len() != fields.len() {
                    return fail(format!(
                        "value {} has {} elements but there are {} fields",
                        n + 1,
                        tuple.len(),
                        fields.len()
                    ));
                }
                let mut checks = Vec::new();
                for ((field, comp), elem) in fields.iter().zip(&comps).zip(tuple) {
                    let rhs = match (elem, comp.takes_list()) {
                        (ExcElem::Scalar(s), false) => Rhs::Value(value(s)),
                        // With list operators a scalar is put in parentheses.
                        (ExcElem::Scalar(s), true) => Rhs::List(vec![value(s)]),
                        (ExcElem::List(items), true) => {
                            Rhs::List(items.iter().map(|s| value(s)).collect())
                        }
                        (ExcElem::List(_), false) => {
                            return fail(format!(
                            "a list value needs a list operator for field '{field}', not '{comp}'"
                        ))
                        }
                    };
                    checks.push(check(field, *comp, rhs));
                }
                alternatives.push(if checks.len() == 1 {
                    checks.pop().expect("one")
                } else {
                    Expr::And(checks)
                });
            }
            Ok(Some(if alternatives.len() == 1 {
                alternatives.pop().expect("one")
            } else {
                Expr::Or(alternatives)
            }))
        }
    }
}

fn parse_op(text: &str) -> Option<Op> {
    match text {
        "=" | "==" => Some(Op::Eq),
        "!=" => Some(Op::Ne),
        "<" => Some(Op::Lt),
        "<=" => Some(Op::Le),
        ">" => Some(Op::Gt),
        ">=" => Some(Op::Ge),
        other => Op::from_word(other).filter(|op| *op != Op::Exists),
    }
}

/// A value as Falco writes it into the condition: quoted when it has a space (so it is never
/// taken for a list name), bare otherwise.
fn value(text: &str) -> Value {
    Value {
        text: text.to_string(),
        quoted: text.contains(' '),
        span: NOWHERE,
    }
}

/// `field op rhs`, with a field argument split off (`proc.aname[2]`).
fn check(field: &str, op: Op, rhs: Rhs) -> Expr {
    let (name, arg) = match field.split_once('[') {
        Some((n, rest)) => (n.to_string(), Some(rest.trim_end_matches(']').to_string())),
        None => (field.to_string(), None),
    };
    Expr::Check(Check {
        lhs: Operand::Field(FieldRef {
            name,
            arg,
            span: NOWHERE,
        }),
        op,
        rhs,
        span: NOWHERE,
    })
}
