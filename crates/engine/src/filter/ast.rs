//! The syntax tree of a Falco condition, with spans into the condition text.
//!
//! `Display` prints libsinsp's canonical form (`(a and b)`, `not x`, `f in (v1, v2)`, values
//! quoted only when needed), so expectations written against Falco's compiled conditions can be
//! compared one for one.

use std::fmt;

/// A byte range in the condition text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// A bare identifier: a macro reference.
    Macro(Ident),
    Check(Check),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// `lhs op rhs`.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub lhs: Operand,
    pub op: Op,
    pub rhs: Rhs,
    pub span: Span,
}

/// A field, or a transformer applied to operands.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Field(FieldRef),
    Transform {
        name: String,
        args: Vec<Operand>,
        span: Span,
    },
}

impl Operand {
    pub fn span(&self) -> Span {
        match self {
            Operand::Field(f) => f.span,
            Operand::Transform { span, .. } => *span,
        }
    }
}

/// `name` or `name[arg]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRef {
    pub name: String,
    pub arg: Option<String>,
    pub span: Span,
}

impl fmt::Display for FieldRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.arg {
            Some(arg)
                if arg
                    .chars()
                    .any(|c| c.is_whitespace() || matches!(c, '[' | ']' | '"' | '\'')) =>
            {
                write!(f, "{}[{}]", self.name, quote_always(arg))
            }
            Some(arg) => write!(f, "{}[{arg}]", self.name),
            None => f.write_str(&self.name),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Rhs {
    /// Unary operators (`exists`).
    None,
    Value(Value),
    List(Vec<Value>),
    /// A list given by name without parentheses (`proc.name in shell_binaries`).
    ListName(Ident),
    /// `val(field)` or a transformer: compared with another value of the same event.
    Operand(Operand),
}

/// A literal value as written: bare or quoted (already unescaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub text: String,
    pub quoted: bool,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    IContains,
    BContains,
    StartsWith,
    BStartsWith,
    EndsWith,
    Glob,
    IGlob,
    Regex,
    In,
    Intersects,
    Pmatch,
    Exists,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Contains => "contains",
            Op::IContains => "icontains",
            Op::BContains => "bcontains",
            Op::StartsWith => "startswith",
            Op::BStartsWith => "bstartswith",
            Op::EndsWith => "endswith",
            Op::Glob => "glob",
            Op::IGlob => "iglob",
            Op::Regex => "regex",
            Op::In => "in",
            Op::Intersects => "intersects",
            Op::Pmatch => "pmatch",
            Op::Exists => "exists",
        }
    }

    /// Word operators, longest first so that a prefix never shadows a longer name.
    pub const WORDS: [Op; 13] = [
        Op::BStartsWith,
        Op::StartsWith,
        Op::Intersects,
        Op::IContains,
        Op::BContains,
        Op::Contains,
        Op::EndsWith,
        Op::Exists,
        Op::Pmatch,
        Op::Regex,
        Op::IGlob,
        Op::Glob,
        Op::In,
    ];

    pub fn from_word(word: &str) -> Option<Op> {
        Self::WORDS.into_iter().find(|op| op.as_str() == word)
    }

    /// Operators whose right side is a list.
    pub fn takes_list(self) -> bool {
        matches!(self, Op::In | Op::Intersects | Op::Pmatch)
    }

    /// Operators whose right side must be a number.
    pub fn takes_number(self) -> bool {
        matches!(self, Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Quotes a value the way libsinsp prints it: only when it would not read back as one bare token.
pub fn quote_value(text: &str) -> String {
    let needs = text.is_empty()
        || text.chars().any(|c| {
            matches!(c, ' ' | '=' | '"' | '\'' | '\\' | '(' | ')' | ',')
                || c.is_control()
                || c.is_whitespace()
        });
    if !needs {
        return text.to_string();
    }
    quote_always(text)
}

/// A double-quoted string with libsinsp's escapes.
fn quote_always(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_control() => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&quote_value(&self.text))
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Field(field) => write!(f, "{field}"),
            Operand::Transform { name, args, .. } => {
                write!(f, "{name}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::And(children) | Expr::Or(children) => {
                let joiner = if matches!(self, Expr::And(_)) {
                    " and "
                } else {
                    " or "
                };
                f.write_str("(")?;
                for (i, c) in children.iter().enumerate() {
                    if i > 0 {
                        f.write_str(joiner)?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str(")")
            }
            Expr::Not(inner) => write!(f, "not {inner}"),
            Expr::Macro(ident) => f.write_str(&ident.name),
            Expr::Check(check) => {
                write!(f, "{} {}", check.lhs, check.op)?;
                match &check.rhs {
                    Rhs::None => Ok(()),
                    Rhs::Value(v) => write!(f, " {v}"),
                    Rhs::List(items) => {
                        f.write_str(" (")?;
                        for (i, v) in items.iter().enumerate() {
                            if i > 0 {
                                f.write_str(", ")?;
                            }
                            write!(f, "{v}")?;
                        }
                        f.write_str(")")
                    }
                    Rhs::Operand(o) => write!(f, " {o}"),
                    Rhs::ListName(name) => write!(f, " {}", name.name),
                }
            }
        }
    }
}
