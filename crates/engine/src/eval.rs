//! Compiled conditions and their evaluation against an event.
//!
//! The right side of every comparison is parsed once, at compile time, according to the field's
//! type (numbers, booleans, networks, sets, globs, regexes), so evaluation only extracts the
//! field and compares. A field the event cannot provide makes the comparison false.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::IpAddr;

use crate::fields::{FieldType, ResolvedField};
use crate::filter::Op;
use crate::matchers;

/// One value of a field.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Bool(bool),
    Ip(IpAddr),
    Bytes(Cow<'a, [u8]>),
}

impl Val<'_> {
    /// The value as libsinsp renders it in text.
    pub fn to_text(&self) -> Cow<'_, str> {
        match self {
            Val::Str(s) => Cow::Borrowed(s.as_ref()),
            Val::Int(n) => Cow::Owned(n.to_string()),
            Val::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Val::Ip(ip) => Cow::Owned(ip.to_string()),
            Val::Bytes(b) => String::from_utf8_lossy(b),
        }
    }

    pub fn into_owned(self) -> Val<'static> {
        match self {
            Val::Str(s) => Val::Str(Cow::Owned(s.into_owned())),
            Val::Int(n) => Val::Int(n),
            Val::Bool(b) => Val::Bool(b),
            Val::Ip(ip) => Val::Ip(ip),
            Val::Bytes(b) => Val::Bytes(Cow::Owned(b.into_owned())),
        }
    }
}

/// What a field yields for one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Extracted<'a> {
    /// The field cannot be extracted (Falco's `<NA>`).
    Missing,
    One(Val<'a>),
    /// Several values (ancestors, lists).
    Many(Vec<Val<'a>>),
}

impl<'a> Extracted<'a> {
    pub fn values(&self) -> &[Val<'a>] {
        match self {
            Extracted::Missing => &[],
            Extracted::One(v) => std::slice::from_ref(v),
            Extracted::Many(v) => v,
        }
    }
}

/// Anything the engine can evaluate: a live kernel event, a replayed JSON line, a test fixture.
pub trait Event {
    /// Index of the event type in [`crate::event_types::EVENT_TYPES`], if it is a known one.
    fn event_type(&self) -> Option<usize>;

    /// The field's value(s) for this event. The same for every call on one event: a ruleset
    /// evaluates each distinct comparison once per event ([`crate::memo`]).
    fn extract(&self, field: &ResolvedField) -> Extracted<'_>;
}

/// A value converted to a field's type; `None` when it cannot be (so nothing compares equal).
fn coerce<'v>(v: &'v Val<'_>, ty: FieldType) -> Option<Val<'v>> {
    Some(match (ty, v) {
        (FieldType::Str, Val::Str(s)) => Val::Str(Cow::Borrowed(s.as_ref())),
        (FieldType::Str, other) => Val::Str(Cow::Owned(other.to_text().into_owned())),
        (FieldType::Int, Val::Int(n)) => Val::Int(*n),
        (FieldType::Int, Val::Str(s)) => Val::Int(parse_int(s)?),
        (FieldType::Int, Val::Bool(b)) => Val::Int(i64::from(*b)),
        (FieldType::Bool, Val::Bool(b)) => Val::Bool(*b),
        (FieldType::Bool, Val::Int(n)) => Val::Bool(*n != 0),
        (FieldType::Bool, Val::Str(s)) => Val::Bool(parse_bool(s)?),
        (FieldType::Ip | FieldType::Net, Val::Ip(ip)) => Val::Ip(*ip),
        (FieldType::Ip | FieldType::Net, Val::Str(s)) => Val::Ip(s.parse().ok()?),
        (FieldType::Bytes, Val::Bytes(b)) => Val::Bytes(Cow::Borrowed(b.as_ref())),
        (FieldType::Bytes, Val::Str(s)) => Val::Bytes(Cow::Borrowed(s.as_bytes())),
        _ => return None,
    })
}

/// An integer as libsinsp reads one: decimal (signed) or `0x` hex.
pub fn parse_int(s: &str) -> Option<i64> {
    let t = s.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let n = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i128::from_str_radix(hex, 16).ok()?
    } else {
        digits.parse::<i128>().ok()?
    };
    let n = if neg { -n } else { n };
    // u64 values above i64::MAX wrap as the kernel's would when read back as signed.
    i64::try_from(n)
        .ok()
        .or_else(|| u64::try_from(n).ok().map(|u| u as i64))
}

pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// An IP network for `=`/`in` on address fields: an address is a /32 (/128) network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn parse(s: &str) -> Option<IpNet> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().ok().filter(|&n| n <= max)?,
            None => max,
        };
        Some(IpNet { addr, prefix })
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(net) & mask == u32::from(*ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(net) & mask == u128::from(*ip) & mask
            }
            _ => false,
        }
    }
}

/// A transformer applied to extracted values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    ToLower,
    ToUpper,
    B64,
    Basename,
    Len,
}

/// Where the values of one side of a comparison come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Field(ResolvedField),
    Transform(Transform, Box<Source>),
}

impl Source {
    /// The type of the values this source yields.
    pub fn ty(&self) -> FieldType {
        match self {
            Source::Field(f) => f.info().ty,
            Source::Transform(Transform::Len, _) => FieldType::Int,
            Source::Transform(_, _) => FieldType::Str,
        }
    }

    /// A list field (every value must be `in` the set), as opposed to ancestors.
    pub fn is_list(&self) -> bool {
        match self {
            Source::Field(f) => f.is_list(),
            Source::Transform(Transform::Len, _) => false,
            Source::Transform(_, inner) => inner.is_list(),
        }
    }

    pub fn is_multi(&self) -> bool {
        match self {
            Source::Field(f) => f.is_multi(),
            Source::Transform(Transform::Len, _) => false,
            Source::Transform(_, inner) => inner.is_multi(),
        }
    }

    pub fn extract<'e>(&self, event: &'e dyn Event) -> Extracted<'e> {
        match self {
            Source::Field(f) => event.extract(f),
            Source::Transform(t, inner) => {
                let input = inner.extract(event);
                if *t == Transform::Len {
                    return match input {
                        Extracted::Missing => Extracted::Missing,
                        Extracted::Many(v) => Extracted::One(Val::Int(v.len() as i64)),
                        Extracted::One(v) => Extracted::One(Val::Int(v.to_text().len() as i64)),
                    };
                }
                let apply = |v: &Val<'_>| -> Option<Val<'static>> {
                    let text = v.to_text();
                    Some(Val::Str(Cow::Owned(match t {
                        Transform::ToLower => text.to_lowercase(),
                        Transform::ToUpper => text.to_uppercase(),
                        Transform::Basename => text.rsplit('/').next().unwrap_or("").to_string(),
                        Transform::B64 => {
                            String::from_utf8_lossy(&base64_decode(text.as_bytes())?).into_owned()
                        }
                        Transform::Len => unreachable!("handled above"),
                    })))
                };
                match input {
                    Extracted::Missing => Extracted::Missing,
                    Extracted::One(v) => apply(&v).map_or(Extracted::Missing, Extracted::One),
                    Extracted::Many(vs) => Extracted::Many(vs.iter().filter_map(apply).collect()),
                }
            }
        }
    }
}

/// Standard base64 decoding (padding optional); `None` on invalid input.
fn base64_decode(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in input {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// A set of strings, hashed when large enough for hashing to pay.
#[derive(Debug, Clone)]
pub enum StrSet {
    Small(Vec<Box<str>>),
    Large(HashSet<Box<str>>),
}

impl StrSet {
    pub fn new(items: Vec<String>) -> Self {
        if items.len() <= 8 {
            StrSet::Small(items.into_iter().map(String::into_boxed_str).collect())
        } else {
            StrSet::Large(items.into_iter().map(String::into_boxed_str).collect())
        }
    }

    pub fn contains(&self, s: &str) -> bool {
        match self {
            StrSet::Small(v) => v.iter().any(|x| x.as_ref() == s),
            StrSet::Large(h) => h.contains(s),
        }
    }
}

/// The right side of a comparison, compiled for the left side's type.
#[derive(Debug, Clone)]
pub enum Rhs {
    None,
    Str(Box<str>),
    /// For `icontains`: the needle in lower case.
    StrLower(Box<str>),
    Int(i64),
    Bool(bool),
    Nets(Vec<IpNet>),
    Bytes(Box<[u8]>),
    StrSet(StrSet),
    IntSet(Vec<i64>),
    BoolSet(Vec<bool>),
    /// Glob patterns (for `pmatch`, path prefixes).
    Paths(Vec<Box<str>>),
    Regex(Box<regex::Regex>),
    /// Another value of the same event (`val()` or a transformer).
    Source(Source),
}

/// One compiled comparison.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub lhs: Source,
    pub op: Op,
    pub rhs: Rhs,
    /// `lhs.ty()`, looked up once: evaluation needs it for every value.
    ty: FieldType,
    /// An `in` on a list field: every value must be in the set, not one.
    every_value: bool,
    /// Where a ruleset keeps this comparison's result while it evaluates one event
    /// ([`crate::memo`]): the same for every equal comparison of its rules. [`NO_SLOT`] outside
    /// a ruleset.
    pub(crate) slot: u32,
}

/// The slot of a comparison that no ruleset has numbered.
pub(crate) const NO_SLOT: u32 = u32::MAX;

/// A compiled condition.
#[derive(Debug, Clone)]
pub enum Node {
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Not(Box<Node>),
    Compare(Box<Comparison>),
    Const(bool),
}

impl Node {
    /// Whether `event` satisfies this condition (evaluated as a ruleset does, with an empty table
    /// of results: see [`crate::memo`]).
    pub fn eval(&self, event: &dyn Event) -> bool {
        self.eval_memo(event, &mut crate::memo::Memo::default())
    }
}

impl Comparison {
    pub fn new(lhs: Source, op: Op, rhs: Rhs) -> Self {
        Comparison {
            ty: lhs.ty(),
            every_value: op == Op::In && lhs.is_list(),
            slot: NO_SLOT,
            lhs,
            op,
            rhs,
        }
    }

    pub fn eval(&self, event: &dyn Event) -> bool {
        let extracted = self.lhs.extract(event);
        let values = extracted.values();
        if values.is_empty() {
            return false;
        }
        if self.op == Op::Exists {
            return true;
        }
        let ty = self.ty;
        if let Rhs::Source(other) = &self.rhs {
            let theirs = other.extract(event);
            let Some(rv) = theirs.values().first() else {
                return false;
            };
            let Some(rv) = coerce(rv, ty) else {
                return false;
            };
            return values
                .iter()
                .any(|v| coerce(v, ty).is_some_and(|lv| compare_dynamic(self.op, &lv, &rv)));
        }
        if self.every_value {
            // A list is `in` a set only if every value is (libsinsp's compare_rhs on an
            // EPF_IS_LIST field); `intersects` when one is.
            return values.iter().all(|v| self.one(v, ty));
        }
        // Ancestor fields without an index hold when the operator holds for one ancestor, for
        // every operator, `!=` included (libsinsp walks the parents and stops at the first
        // match).
        values.iter().any(|v| self.one(v, ty))
    }

    fn one(&self, v: &Val<'_>, ty: FieldType) -> bool {
        // Most values already have their field's type: compare them as they are, without
        // building a coerced copy (the hot path on Falco's rules).
        match (v, ty) {
            (Val::Str(s), FieldType::Str) => return compare_str(self.op, s, &self.rhs),
            (Val::Int(n), FieldType::Int) => return compare_int(self.op, *n, &self.rhs),
            (Val::Bool(b), FieldType::Bool) => return compare_bool(self.op, *b, &self.rhs),
            _ => {}
        }
        let Some(v) = coerce(v, ty) else {
            return false;
        };
        match (&v, &self.rhs) {
            (Val::Str(s), rhs) => compare_str(self.op, s, rhs),
            (Val::Int(n), rhs) => compare_int(self.op, *n, rhs),
            (Val::Bool(b), rhs) => compare_bool(self.op, *b, rhs),
            (Val::Ip(ip), Rhs::Nets(nets)) => {
                let hit = nets.iter().any(|n| n.contains(ip));
                if self.op == Op::Ne {
                    !hit
                } else {
                    hit
                }
            }
            (Val::Bytes(b), rhs) => compare_bytes(self.op, b, rhs),
            _ => false,
        }
    }
}

fn compare_str(op: Op, s: &str, rhs: &Rhs) -> bool {
    match (op, rhs) {
        (Op::Eq, Rhs::Str(r)) => s == r.as_ref(),
        (Op::Ne, Rhs::Str(r)) => s != r.as_ref(),
        (Op::Contains, Rhs::Str(r)) => s.contains(r.as_ref()),
        (Op::IContains, Rhs::StrLower(r)) => matchers::icontains(s, r),
        (Op::StartsWith, Rhs::Str(r)) => s.starts_with(r.as_ref()),
        (Op::EndsWith, Rhs::Str(r)) => s.ends_with(r.as_ref()),
        (Op::Glob, Rhs::Str(r)) => matchers::glob(r, s, false),
        (Op::IGlob, Rhs::Str(r)) => matchers::glob(r, s, true),
        (Op::Regex, Rhs::Regex(re)) => re.is_match(s),
        (Op::In | Op::Intersects, Rhs::StrSet(set)) => set.contains(s),
        (Op::Pmatch, Rhs::Paths(prefixes)) => prefixes.iter().any(|p| matchers::path_prefix(p, s)),
        (Op::Lt, Rhs::Str(r)) => s < r.as_ref(),
        (Op::Le, Rhs::Str(r)) => s <= r.as_ref(),
        (Op::Gt, Rhs::Str(r)) => s > r.as_ref(),
        (Op::Ge, Rhs::Str(r)) => s >= r.as_ref(),
        _ => false,
    }
}

fn compare_bool(op: Op, b: bool, rhs: &Rhs) -> bool {
    match (op, rhs) {
        (Op::Eq, Rhs::Bool(r)) => b == *r,
        (Op::Ne, Rhs::Bool(r)) => b != *r,
        (_, Rhs::BoolSet(set)) => set.contains(&b),
        _ => false,
    }
}

fn compare_int(op: Op, n: i64, rhs: &Rhs) -> bool {
    match (op, rhs) {
        (Op::Eq, Rhs::Int(r)) => n == *r,
        (Op::Ne, Rhs::Int(r)) => n != *r,
        (Op::Lt, Rhs::Int(r)) => n < *r,
        (Op::Le, Rhs::Int(r)) => n <= *r,
        (Op::Gt, Rhs::Int(r)) => n > *r,
        (Op::Ge, Rhs::Int(r)) => n >= *r,
        (Op::In | Op::Intersects, Rhs::IntSet(set)) => set.contains(&n),
        _ => false,
    }
}

fn compare_bytes(op: Op, b: &[u8], rhs: &Rhs) -> bool {
    match (op, rhs) {
        (Op::Eq, Rhs::Bytes(r)) => b == r.as_ref(),
        (Op::Ne, Rhs::Bytes(r)) => b != r.as_ref(),
        (Op::Contains | Op::BContains, Rhs::Bytes(r)) => matchers::bytes_contain(b, r),
        (Op::StartsWith | Op::BStartsWith, Rhs::Bytes(r)) => b.starts_with(r),
        (Op::EndsWith, Rhs::Bytes(r)) => b.ends_with(r),
        _ => false,
    }
}

/// Comparison against another value of the event (`val()`, transformers on the right).
fn compare_dynamic(op: Op, l: &Val<'_>, r: &Val<'_>) -> bool {
    match (l, r) {
        (Val::Int(a), Val::Int(b)) => match op {
            Op::Eq | Op::In | Op::Intersects => a == b,
            Op::Ne => a != b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            _ => false,
        },
        _ => {
            let (a, b) = (l.to_text(), r.to_text());
            match op {
                Op::Eq | Op::In | Op::Intersects => a == b,
                Op::Ne => a != b,
                Op::Contains => a.contains(b.as_ref()),
                Op::IContains => matchers::icontains(&a, &b.to_ascii_lowercase()),
                Op::StartsWith => a.starts_with(b.as_ref()),
                Op::EndsWith => a.ends_with(b.as_ref()),
                Op::Glob => matchers::glob(&b, &a, false),
                Op::IGlob => matchers::glob(&b, &a, true),
                Op::Lt => a < b,
                Op::Le => a <= b,
                Op::Gt => a > b,
                Op::Ge => a >= b,
                _ => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_as_libsinsp_reads_them() {
        assert_eq!(parse_int("-1"), Some(-1));
        assert_eq!(parse_int("0x10"), Some(16));
        assert_eq!(parse_int("+7"), Some(7));
        assert_eq!(parse_int("18446744073709551615"), Some(-1));
        assert_eq!(parse_int("abc"), None);
    }

    #[test]
    fn networks() {
        let n = IpNet::parse("10.0.0.0/8").unwrap();
        assert!(n.contains(&"10.1.2.3".parse().unwrap()));
        assert!(!n.contains(&"11.0.0.1".parse().unwrap()));
        assert!(IpNet::parse("127.0.0.1")
            .unwrap()
            .contains(&"127.0.0.1".parse().unwrap()));
        assert!(IpNet::parse("::1/128")
            .unwrap()
            .contains(&"::1".parse().unwrap()));
        assert!(IpNet::parse("10.0.0.0/33").is_none());
    }

    #[test]
    fn base64() {
        assert_eq!(base64_decode(b"aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode(b"aGVsbG8").unwrap(), b"hello");
        assert!(base64_decode(b"@@").is_none());
    }
}
