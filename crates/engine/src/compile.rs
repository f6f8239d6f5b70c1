//! From syntax to [`Node`]s: fields resolved, operators checked against field types, right
//! sides parsed by type, macros substituted, event types derived.

use std::collections::HashMap;

use crate::eval::{self, Comparison, IpNet, Node, Source, StrSet, Transform};
use crate::event_types::{self, EventTypeSet};
use crate::fields::{self, FieldError, FieldType};
use crate::filter::{Check, Expr, FieldRef, Op, Operand, Rhs, Span, Value};

/// A problem in a condition, at a span of the text it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub span: Span,
    pub message: String,
}

fn err(span: Span, message: impl Into<String>) -> CompileError {
    CompileError {
        span,
        message: message.into(),
    }
}

/// A compiled macro: its tree for evaluation and its expanded syntax for printing.
#[derive(Debug, Clone)]
pub struct CompiledMacro {
    pub node: Node,
    pub expanded: Expr,
}

/// Compiles conditions against the macros defined so far.
#[derive(Default)]
pub struct Compiler {
    macros: HashMap<String, CompiledMacro>,
    /// Deprecation notices met while compiling (span, message).
    pub warnings: Vec<(Span, String)>,
    /// Macros referenced, for "unused macro" warnings.
    pub used_macros: std::collections::HashSet<String>,
}

impl Compiler {
    pub fn new() -> Self {
        Compiler::default()
    }

    pub fn add_macro(&mut self, name: &str, compiled: CompiledMacro) {
        self.macros.insert(name.to_string(), compiled);
    }

    pub fn has_macro(&self, name: &str) -> bool {
        self.macros.contains_key(name)
    }

    /// Compiles `expr`, returning the tree and the macro-expanded syntax.
    pub fn compile(&mut self, expr: &Expr) -> Result<CompiledMacro, CompileError> {
        Ok(match expr {
            Expr::And(children) | Expr::Or(children) => {
                let mut nodes = Vec::with_capacity(children.len());
                let mut exprs = Vec::with_capacity(children.len());
                for c in children {
                    let compiled = self.compile(c)?;
                    nodes.push(compiled.node);
                    exprs.push(compiled.expanded);
                }
                if matches!(expr, Expr::And(_)) {
                    CompiledMacro {
                        node: Node::And(nodes.into()),
                        expanded: Expr::And(exprs),
                    }
                } else {
                    CompiledMacro {
                        node: Node::Or(nodes.into()),
                        expanded: Expr::Or(exprs),
                    }
                }
            }
            Expr::Not(inner) => {
                let c = self.compile(inner)?;
                CompiledMacro {
                    node: Node::Not(Box::new(c.node)),
                    expanded: Expr::Not(Box::new(c.expanded)),
                }
            }
            Expr::Macro(ident) => {
                self.used_macros.insert(ident.name.clone());
                match self.macros.get(&ident.name) {
                    Some(m) => m.clone(),
                    None => {
                        return Err(err(
                            ident.span,
                            format!("Undefined macro '{}' used in filter.", ident.name),
                        ))
                    }
                }
            }
            Expr::Check(check) => CompiledMacro {
                node: Node::Compare(Box::new(self.check(check)?)),
                expanded: expr.clone(),
            },
        })
    }

    fn check(&mut self, check: &Check) -> Result<Comparison, CompileError> {
        let lhs = self.operand(&check.lhs, false)?;
        let ty = lhs.ty();
        let op = check.op;
        if !operator_allowed(ty, op) {
            return Err(err(
                check.span,
                format!(
                    "'{op}' operator not supported for {ty} filters ('{}')",
                    check.lhs
                ),
            ));
        }
        // A list field is compared as a whole (libsinsp: flt_is_comparable_any_list).
        if lhs.is_list() && !matches!(op, Op::In | Op::Intersects | Op::Exists) {
            return Err(err(
                check.span,
                format!(
                    "'{op}' operator not supported list filters ('{}' takes in, intersects or exists)",
                    check.lhs
                ),
            ));
        }
        let rhs = self.rhs(check, ty)?;
        Ok(Comparison::new(lhs, op, rhs))
    }

    /// The right side, parsed for the left side's type. `evt.type` is compared with event type
    /// names only (they become the rule's event types), so each must be a known one.
    fn rhs(&mut self, check: &Check, ty: FieldType) -> Result<eval::Rhs, CompileError> {
        let evt_type = matches!(&check.lhs, Operand::Field(f) if is_evt_type(&f.name));
        match &check.rhs {
            Rhs::None => Ok(eval::Rhs::None),
            Rhs::ListName(ident) => Err(err(
                ident.span,
                format!("Undefined list '{}' used in filter.", ident.name),
            )),
            Rhs::Operand(_) if evt_type => Err(err(
                check.span,
                "evt.type cannot be compared with val() or a transformer",
            )),
            Rhs::Operand(o) => Ok(eval::Rhs::Source(self.operand(o, true)?)),
            Rhs::Value(v) => {
                if evt_type {
                    check_event_type(v)?;
                }
                rhs_value(ty, check.op, v)
            }
            Rhs::List(items) => {
                if evt_type {
                    items.iter().try_for_each(check_event_type)?;
                }
                rhs_list(ty, check.op, items)
            }
        }
    }

    fn operand(&mut self, operand: &Operand, rhs_side: bool) -> Result<Source, CompileError> {
        match operand {
            Operand::Field(f) => {
                let resolved = resolve_field(f)?;
                let info = resolved.info();
                if rhs_side && info.no_rhs {
                    return Err(err(
                        f.span,
                        format!("field '{f}' cannot be used on the right side or in a transformer"),
                    ));
                }
                if info.deprecated {
                    self.warnings
                        .push((f.span, format!("field '{}' is deprecated", info.name)));
                }
                Ok(Source::Field(resolved))
            }
            Operand::Transform { name, args, span } => {
                if name == "val" {
                    let [arg] = args.as_slice() else {
                        return Err(err(*span, "val() takes one field"));
                    };
                    return self.operand(arg, true);
                }
                let t = match name.as_str() {
                    "tolower" => Transform::ToLower,
                    "toupper" => Transform::ToUpper,
                    "b64" => Transform::B64,
                    "basename" => Transform::Basename,
                    "len" => Transform::Len,
                    other => {
                        return Err(err(
                            *span,
                            format!("transformer '{other}' is not supported by this engine"),
                        ))
                    }
                };
                let [arg] = args.as_slice() else {
                    return Err(err(*span, format!("{name}() takes one argument")));
                };
                let inner = self.operand(arg, true)?;
                if !matches!(inner.ty(), FieldType::Str | FieldType::Bytes) && t != Transform::Len {
                    return Err(err(
                        *span,
                        format!("{name}() needs a string field, '{arg}' is {}", inner.ty()),
                    ));
                }
                Ok(Source::Transform(t, Box::new(inner)))
            }
        }
    }
}

/// The operators libsinsp accepts for a field type.
fn operator_allowed(ty: FieldType, op: Op) -> bool {
    match ty {
        FieldType::Str => !matches!(op, Op::BContains | Op::BStartsWith),
        FieldType::Int => matches!(
            op,
            Op::Eq
                | Op::Ne
                | Op::Lt
                | Op::Le
                | Op::Gt
                | Op::Ge
                | Op::In
                | Op::Intersects
                | Op::Exists
        ),
        FieldType::Bool | FieldType::Ip | FieldType::Net => {
            matches!(op, Op::Eq | Op::Ne | Op::In | Op::Intersects | Op::Exists)
        }
        FieldType::Bytes => matches!(
            op,
            Op::Eq
                | Op::Ne
                | Op::Contains
                | Op::BContains
                | Op::StartsWith
                | Op::BStartsWith
                | Op::EndsWith
                | Op::In
                | Op::Intersects
                | Op::Exists
        ),
    }
}

fn is_evt_type(name: &str) -> bool {
    matches!(name, "evt.type" | "syscall.type")
}

fn check_event_type(v: &Value) -> Result<(), CompileError> {
    if event_types::index_of(&v.text).is_none() {
        return Err(err(v.span, format!("unknown event type '{}'", v.text)));
    }
    Ok(())
}

/// Resolves a field reference, with libsinsp's messages.
pub fn resolve_field(f: &FieldRef) -> Result<fields::ResolvedField, CompileError> {
    fields::resolve(&f.name, f.arg.as_deref()).map_err(|e| {
        let message = match e {
            FieldError::Unknown => format!("filter_check called with nonexistent field {}", f.name),
            FieldError::ArgNotAllowed => format!("field '{}' does not take an argument", f.name),
            FieldError::ArgRequired => format!("field '{}' requires an argument", f.name),
            FieldError::BadIndex => format!(
                "field '{}' needs a numeric index, got '{}'",
                f.name,
                f.arg.as_deref().unwrap_or("")
            ),
        };
        err(f.span, message)
    })
}

fn rhs_value(ty: FieldType, op: Op, v: &Value) -> Result<eval::Rhs, CompileError> {
    let bad = |what: &str| err(v.span, format!("'{}' is not {what}", v.text));
    Ok(match ty {
        FieldType::Str => match op {
            Op::IContains => eval::Rhs::StrLower(v.text.to_ascii_lowercase().into()),
            Op::Regex => {
                let re = regex::Regex::new(&format!("^(?:{})$", v.text))
                    .map_err(|e| err(v.span, format!("invalid regular expression: {e}")))?;
                eval::Rhs::Regex(Box::new(re))
            }
            _ => eval::Rhs::Str(v.text.as_str().into()),
        },
        FieldType::Int => eval::Rhs::Int(eval::parse_int(&v.text).ok_or_else(|| bad("a number"))?),
        FieldType::Bool => eval::Rhs::Bool(
            eval::parse_bool(&v.text).ok_or_else(|| bad("a boolean (true or false)"))?,
        ),
        FieldType::Ip | FieldType::Net => eval::Rhs::Nets(vec![
            IpNet::parse(&v.text).ok_or_else(|| bad("an IP address or network"))?
        ]),
        FieldType::Bytes => match op {
            Op::BContains | Op::BStartsWith => eval::Rhs::Bytes(
                hex(&v.text)
                    .ok_or_else(|| bad("a hex string (e.g. cafebabe)"))?
                    .into(),
            ),
            _ => eval::Rhs::Bytes(v.text.as_bytes().into()),
        },
    })
}

fn rhs_list(ty: FieldType, op: Op, items: &[Value]) -> Result<eval::Rhs, CompileError> {
    if op == Op::Pmatch {
        if ty != FieldType::Str {
            return Err(err(
                items.first().map(|v| v.span).unwrap_or_default(),
                "'pmatch' needs a string field",
            ));
        }
        return Ok(eval::Rhs::Paths(
            items.iter().map(|v| v.text.as_str().into()).collect(),
        ));
    }
    Ok(match ty {
        FieldType::Str | FieldType::Bytes => {
            eval::Rhs::StrSet(StrSet::new(items.iter().map(|v| v.text.clone()).collect()))
        }
        FieldType::Int => eval::Rhs::IntSet(
            items
                .iter()
                .map(|v| {
                    eval::parse_int(&v.text)
                        .ok_or_else(|| err(v.span, format!("'{}' is not a number", v.text)))
                })
                .collect::<Result<_, _>>()?,
        ),
        FieldType::Bool => eval::Rhs::BoolSet(
            items
                .iter()
                .map(|v| {
                    eval::parse_bool(&v.text)
                        .ok_or_else(|| err(v.span, format!("'{}' is not a boolean", v.text)))
                })
                .collect::<Result<_, _>>()?,
        ),
        FieldType::Ip | FieldType::Net => eval::Rhs::Nets(
            items
                .iter()
                .map(|v| {
                    IpNet::parse(&v.text).ok_or_else(|| {
                        err(
                            v.span,
                            format!("'{}' is not an IP address or network", v.text),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The event types a condition can match, derived as libsinsp does: `and` intersects, `or`
/// unites, `not` is pushed to the leaves; `evt.type` compared with literals gives its values
/// (their complement under negation or `!=`); `evt.num = 0` gives nothing; any other leaf gives
/// every type.
pub fn event_types(node: &Node) -> EventTypeSet {
    types_of(node, false)
}

fn types_of(node: &Node, negated: bool) -> EventTypeSet {
    match node {
        Node::And(children) | Node::Or(children) => {
            let intersect = matches!(node, Node::And(_)) != negated;
            let mut sets = children.iter().map(|c| types_of(c, negated));
            let first = sets.next().unwrap_or_else(EventTypeSet::all);
            sets.fold(first, |acc, s| {
                if intersect {
                    acc.intersection(&s)
                } else {
                    acc.union(&s)
                }
            })
        }
        Node::Not(inner) => types_of(inner, !negated),
        Node::Const(b) => {
            if *b != negated {
                EventTypeSet::all()
            } else {
                EventTypeSet::empty()
            }
        }
        Node::Compare(c) => leaf_types(c, negated),
    }
}

fn leaf_types(c: &Comparison, negated: bool) -> EventTypeSet {
    let Source::Field(f) = &c.lhs else {
        return EventTypeSet::all();
    };
    match f.info().name {
        "evt.type" | "syscall.type" => {
            let mut set = EventTypeSet::empty();
            let names: Vec<&str> = match &c.rhs {
                eval::Rhs::Str(s) => vec![s.as_ref()],
                eval::Rhs::StrSet(StrSet::Small(v)) => v.iter().map(|s| s.as_ref()).collect(),
                eval::Rhs::StrSet(StrSet::Large(h)) => h.iter().map(|s| s.as_ref()).collect(),
                _ => return EventTypeSet::all(),
            };
            for n in names {
                if let Some(i) = event_types::index_of(n) {
                    set.insert(i);
                }
            }
            match (c.op, negated) {
                (Op::Eq | Op::In | Op::Intersects, false) | (Op::Ne, true) => set,
                (Op::Eq | Op::In | Op::Intersects, true) | (Op::Ne, false) => set.complement(),
                _ => EventTypeSet::all(),
            }
        }
        "evt.num" if matches!((c.op, &c.rhs), (Op::Eq, eval::Rhs::Int(0))) => {
            if negated {
                EventTypeSet::all()
            } else {
                EventTypeSet::empty()
            }
        }
        _ => EventTypeSet::all(),
    }
}
