//! Falco's condition language: syntax ([`ast`], [`parser`]).

pub mod ast;
pub mod parser;

pub use ast::{Check, Expr, FieldRef, Ident, Op, Operand, Rhs, Span, Value};
pub use parser::parse_list_items;
pub use parser::{parse, ParseError};
