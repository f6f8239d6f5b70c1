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

/// One exception's condition; `None` for an exception without values, which excludes nothing.
fn one(e: &Exception) -> Result<Option<Expr>, (Loc, String)> {
    let fail = |message: String| (e.loc, format!("Rule exception item {}: {message}", e.name));
    let Some(fields) = &e.fields else {
        return Err(fail(
            "must have fields property with a list of fields".into(),
        ));
    };
    if e.values.is_empty() {
        return Ok(None);
    }
    let expr = match fields {
        OneOrMany::One(field) => single_field(field, e),
        OneOrMany::Many(fields) => field_tuples(fields, e),
    };
    expr.map(Some).map_err(fail)
}

/// `fields: f`: one check of `f` against every value, with `in`, `pmatch` or `intersects`.
fn single_field(field: &str, e: &Exception) -> Result<Expr, String> {
    let comp = match &e.comps {
        None => Op::In,
        Some(OneOrMany::One(c)) => parse_op(c)?,
        Some(OneOrMany::Many(_)) => {
            return Err("fields is a single value, so comps must be a single value too".into())
        }
    };
    if !matches!(comp, Op::In | Op::Pmatch | Op::Intersects) {
        return Err(format!(
            "fields is a single value, so comps must be in, pmatch or intersects, not '{comp}'"
        ));
    }
    let mut values = Vec::new();
    for elem in e.values.iter().flatten() {
        match elem {
            ExcElem::Scalar(s) => values.push(value(s)),
            ExcElem::List(items) => values.extend(items.iter().map(|s| value(s))),
        }
    }
    Ok(check(field, comp, Rhs::List(values)))
}

/// `fields: [f1, f2]`: each value tuple is `(f1 c1 v1 and f2 c2 v2)`, any of them excludes.
fn field_tuples(fields: &[String], e: &Exception) -> Result<Expr, String> {
    let comps: Vec<Op> = match &e.comps {
        None => vec![Op::Eq; fields.len()],
        Some(OneOrMany::One(c)) => {
            return Err(format!(
                "fields is a list, so comps must be a list too (got '{c}')"
            ))
        }
        Some(OneOrMany::Many(cs)) => cs.iter().map(|c| parse_op(c)).collect::<Result<_, _>>()?,
    };
    if comps.len() != fields.len() {
        return Err(format!(
            "fields and comps lists must have equal length ({} fields, {} comps)",
            fields.len(),
            comps.len()
        ));
    }
    let mut alternatives = Vec::new();
    for (n, tuple) in e.values.iter().enumerate() {
        if tuple.len() != fields.len() {
            return Err(format!(
                "value {} has {} elements but there are {} fields",
                n + 1,
                tuple.len(),
                fields.len()
            ));
        }
        let mut checks = Vec::new();
        for ((field, comp), elem) in fields.iter().zip(&comps).zip(tuple) {
            checks.push(check(field, *comp, tuple_rhs(field, *comp, elem)?));
        }
        alternatives.push(joined(checks, Expr::And));
    }
    Ok(joined(alternatives, Expr::Or))
}

/// The right side for one element of a value tuple. With a list operator a scalar is put in
/// parentheses; a list needs a list operator.
fn tuple_rhs(field: &str, comp: Op, elem: &ExcElem) -> Result<Rhs, String> {
    match (elem, comp.takes_list()) {
        (ExcElem::Scalar(s), false) => Ok(Rhs::Value(value(s))),
        (ExcElem::Scalar(s), true) => Ok(Rhs::List(vec![value(s)])),
        (ExcElem::List(items), true) => Ok(Rhs::List(items.iter().map(|s| value(s)).collect())),
        (ExcElem::List(_), false) => Err(format!(
            "a list value needs a list operator for field '{field}', not '{comp}'"
        )),
    }
}

/// `parts` joined by `and` or `or`; a single part stands alone, as Falco writes it.
fn joined(mut parts: Vec<Expr>, join: fn(Vec<Expr>) -> Expr) -> Expr {
    if parts.len() == 1 {
        parts.pop().expect("one")
    } else {
        join(parts)
    }
}

/// An exception comparison operator; `exists` takes no value, so it is not one.
fn parse_op(text: &str) -> Result<Op, String> {
    let op = match text {
        "=" | "==" => Some(Op::Eq),
        "!=" => Some(Op::Ne),
        "<" => Some(Op::Lt),
        "<=" => Some(Op::Le),
        ">" => Some(Op::Gt),
        ">=" => Some(Op::Ge),
        other => Op::from_word(other).filter(|op| *op != Op::Exists),
    };
    op.ok_or_else(|| format!("invalid comparison operator '{text}'"))
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
