//! What the loaded rules imply about the events that can match them, so a sensor can drop the
//! others before they leave the kernel.
//!
//! The analysis is sound in one direction only: an event it lets through may still match no
//! rule, but an event it says no rule can match matches none. It works on compiled conditions:
//! `and` keeps the most selective requirement of its children, `or` the union of theirs (or
//! none, if one child has none), and `not` gives up (a missing field makes a negated comparison
//! true, so nothing can be required under it).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use crate::eval::{Comparison, Node, Rhs, Source, StrSet};
use crate::filter::Op;
use crate::ruleset::Ruleset;

/// Which absolute paths can matter for an open in one access mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathNeeds {
    /// Some rule takes any path.
    pub any: bool,
    /// Exact absolute paths.
    pub exact: BTreeSet<String>,
    /// Absolute path prefixes.
    pub prefixes: BTreeSet<String>,
    /// Paths whose raw form (as passed to the syscall) contains `../`.
    pub dotdot: bool,
}

/// What opens can match some rule, by access mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenNeeds {
    pub read: PathNeeds,
    pub write: PathNeeds,
}

/// What socket-address events (connect, sendto, sendmsg) can match some rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketNeeds {
    /// Every rule needs the event to carry a destination address (a `sendto` on a connected
    /// socket carries none, so the sensor can say nothing about its peer).
    pub address: bool,
    /// Every rule excludes loopback destinations (`fd.net != 127.0.0.0/8`).
    pub not_loopback: bool,
}

/// The open rules' needs for event type `t` (an index into the event types).
pub fn open_needs(ruleset: &Ruleset, t: usize) -> OpenNeeds {
    let mut needs = OpenNeeds::default();
    for rule in ruleset
        .rules()
        .iter()
        .filter(|r| r.enabled && r.event_types.contains(t))
    {
        let mode = mode_of(&rule.filter);
        let paths = paths_of(&rule.filter);
        for (wanted, target) in [
            (Mode::Read, &mut needs.read),
            (Mode::Write, &mut needs.write),
        ] {
            if mode != Mode::Any && mode != wanted {
                continue;
            }
            match &paths {
                None => target.any = true,
                Some(p) => {
                    target.exact.extend(p.exact.iter().cloned());
                    target.prefixes.extend(p.prefixes.iter().cloned());
                    target.dotdot |= p.dotdot;
                }
            }
        }
    }
    needs
}

/// The socket rules' needs for event type `t`.
pub fn socket_needs(ruleset: &Ruleset, t: usize) -> SocketNeeds {
    let rules: Vec<_> = ruleset
        .rules()
        .iter()
        .filter(|r| r.enabled && r.event_types.contains(t))
        .collect();
    if rules.is_empty() {
        return SocketNeeds {
            address: true,
            not_loopback: true,
        };
    }
    SocketNeeds {
        address: rules.iter().all(|r| needs_address(&r.filter)),
        not_loopback: rules.iter().all(|r| excludes_loopback(&r.filter)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Read,
    Write,
    Any,
}

fn field_name(c: &Comparison) -> Option<&'static str> {
    match &c.lhs {
        Source::Field(f) => Some(f.info().name),
        Source::Transform(..) => None,
    }
}

fn mode_of(node: &Node) -> Mode {
    match node {
        Node::And(children) => children
            .iter()
            .map(mode_of)
            .find(|m| *m != Mode::Any)
            .unwrap_or(Mode::Any),
        Node::Or(children) => {
            let modes: Vec<Mode> = children.iter().map(mode_of).collect();
            match modes.first() {
                Some(&m) if modes.iter().all(|x| *x == m) => m,
                _ => Mode::Any,
            }
        }
        Node::Compare(c) => match (field_name(c), c.op, &c.rhs) {
            (Some("evt.is_open_read"), Op::Eq, Rhs::Bool(true)) => Mode::Read,
            (Some("evt.is_open_write"), Op::Eq, Rhs::Bool(true)) => Mode::Write,
            _ => Mode::Any,
        },
        Node::Not(_) | Node::Const(_) => Mode::Any,
    }
}

#[derive(Debug, Clone, Default)]
struct Paths {
    exact: BTreeSet<String>,
    prefixes: BTreeSet<String>,
    dotdot: bool,
}

impl Paths {
    /// How much a requirement lets through, for choosing among an `and`'s children. A `../`
    /// requirement alone is the most selective of all: few paths hold `../`.
    fn size(&self) -> usize {
        self.exact.len() + self.prefixes.len()
    }
}

/// The paths a condition requires of `fd.name` (or `fd.directory`, `fd.nameraw`), if any.
fn paths_of(node: &Node) -> Option<Paths> {
    match node {
        Node::And(children) => children.iter().filter_map(paths_of).min_by_key(Paths::size),
        Node::Or(children) => {
            let mut all = Paths::default();
            for c in children.iter() {
                let p = paths_of(c)?;
                all.exact.extend(p.exact);
                all.prefixes.extend(p.prefixes);
                all.dotdot |= p.dotdot;
            }
            Some(all)
        }
        Node::Const(false) => Some(Paths::default()),
        Node::Const(true) | Node::Not(_) => None,
        Node::Compare(c) => compare_paths(c),
    }
}

fn strings(set: &StrSet) -> Vec<String> {
    match set {
        StrSet::Small(v) => v.iter().map(|s| s.to_string()).collect(),
        StrSet::Large(h) => h.iter().map(|s| s.to_string()).collect(),
    }
}

fn compare_paths(c: &Comparison) -> Option<Paths> {
    let mut p = Paths::default();
    let absolute = |s: &str| s.starts_with('/');
    match (field_name(c)?, c.op, &c.rhs) {
        ("fd.name", Op::Eq, Rhs::Str(s)) if absolute(s) => {
            p.exact.insert(s.to_string());
        }
        ("fd.name", Op::In | Op::Intersects, Rhs::StrSet(set)) => {
            let items = strings(set);
            if !items.iter().all(|s| absolute(s)) {
                return None;
            }
            p.exact.extend(items);
        }
        ("fd.name", Op::StartsWith, Rhs::Str(s)) if absolute(s) => {
            p.prefixes.insert(s.to_string());
        }
        ("fd.name", Op::Pmatch, Rhs::Paths(prefixes)) => {
            for prefix in prefixes.iter() {
                if !absolute(prefix) || prefix.contains(['*', '?', '[']) {
                    return None;
                }
                p.exact.insert(prefix.trim_end_matches('/').to_string());
                p.prefixes
                    .insert(format!("{}/", prefix.trim_end_matches('/')));
            }
        }
        ("fd.directory", Op::Eq, Rhs::Str(d)) if absolute(d) => {
            p.prefixes.insert(format!("{}/", d.trim_end_matches('/')));
        }
        ("fd.directory", Op::In | Op::Intersects, Rhs::StrSet(set)) => {
            for d in strings(set) {
                if !absolute(&d) {
                    return None;
                }
                p.prefixes.insert(format!("{}/", d.trim_end_matches('/')));
            }
        }
        ("fd.nameraw", Op::Contains, Rhs::Str(s)) if s.as_ref() == "../" => p.dotdot = true,
        _ => return None,
    }
    Some(p)
}

/// Fields a socket event only has when it carries a peer address.
const ADDRESS_FIELDS: [&str; 13] = [
    "fd.ip",
    "fd.sip",
    "fd.rip",
    "fd.cip",
    "fd.net",
    "fd.snet",
    "fd.rnet",
    "fd.cnet",
    "fd.port",
    "fd.sport",
    "fd.rport",
    "fd.typechar",
    "fd.l4proto",
];

fn needs_address(node: &Node) -> bool {
    match node {
        Node::And(children) => children.iter().any(needs_address),
        Node::Or(children) => children.iter().all(needs_address),
        Node::Not(_) | Node::Const(true) => false,
        Node::Const(false) => true,
        Node::Compare(c) => {
            field_name(c).is_some_and(|f| ADDRESS_FIELDS.contains(&f)) && c.op != Op::Exists
        }
    }
}

fn covers_loopback(rhs: &Rhs) -> bool {
    let lo = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    matches!(rhs, Rhs::Nets(nets) if nets.iter().any(|n| n.addr.is_ipv4() && n.prefix <= 8 && n.contains(&lo)))
}

fn excludes_loopback(node: &Node) -> bool {
    match node {
        Node::And(children) => children.iter().any(excludes_loopback),
        Node::Or(children) => children.iter().all(excludes_loopback),
        Node::Const(false) => true,
        Node::Const(true) => false,
        Node::Compare(c) => {
            matches!(
                field_name(c),
                Some("fd.net" | "fd.snet" | "fd.rnet" | "fd.ip" | "fd.sip" | "fd.rip")
            ) && c.op == Op::Ne
                && covers_loopback(&c.rhs)
        }
        Node::Not(inner) => match inner.as_ref() {
            Node::Compare(c) => {
                matches!(
                    field_name(c),
                    Some("fd.net" | "fd.snet" | "fd.rnet" | "fd.ip" | "fd.sip" | "fd.rip")
                ) && matches!(c.op, Op::Eq | Op::In | Op::Intersects)
                    && covers_loopback(&c.rhs)
            }
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_types::index_of;
    use crate::RulesLoader;

    fn load(text: &str) -> Ruleset {
        let mut l = RulesLoader::new();
        l.add_str("t.yaml", text);
        let r = l.load();
        assert!(!r.has_errors(), "{}", r.render().join("\n"));
        r.ruleset
    }

    fn rule(name: &str, cond: &str) -> String {
        format!("- rule: {name}\n  desc: d\n  condition: {cond:?}\n  output: o\n  priority: INFO\n")
    }

    #[test]
    fn open_rules_become_paths_by_mode() {
        let rs = load(&format!(
            "{}{}{}",
            rule("r1", "evt.type = openat and evt.is_open_read = true and (fd.name in (/etc/shadow, /etc/sudoers) or fd.directory in (/etc/pam.d))"),
            rule("w1", "evt.type = openat and evt.is_open_write = true and fd.name startswith /var/log/"),
            rule("t1", "evt.type = openat and evt.is_open_read = true and fd.name startswith /etc/ and fd.nameraw contains ../"),
        ));
        let n = open_needs(&rs, index_of("openat").unwrap());
        assert!(!n.read.any && !n.write.any);
        assert_eq!(
            n.read.exact,
            ["/etc/shadow", "/etc/sudoers"].map(String::from).into()
        );
        assert_eq!(n.read.prefixes, ["/etc/pam.d/".to_string()].into());
        assert!(
            n.read.dotdot,
            "the traversal rule keeps its more selective ../ requirement"
        );
        assert_eq!(n.write.prefixes, ["/var/log/".to_string()].into());
        assert!(!n.write.dotdot);
    }

    #[test]
    fn anything_under_not_or_unknown_means_any_path() {
        let rs = load(&rule(
            "r",
            "evt.type = openat and not fd.name startswith /proc",
        ));
        assert!(open_needs(&rs, index_of("openat").unwrap()).read.any);
        let rs = load(&rule(
            "r",
            "evt.type = openat and (fd.name = /etc/shadow or proc.name = cat)",
        ));
        let n = open_needs(&rs, index_of("openat").unwrap());
        assert!(n.read.any && n.write.any);
    }

    #[test]
    fn socket_rules() {
        let rs = load(&rule(
            "o",
            "evt.type in (connect, sendto) and (fd.typechar = 4 or fd.typechar = 6) and fd.net != \"127.0.0.0/8\" and not fd.snet in (10.0.0.0/8)",
        ));
        let n = socket_needs(&rs, index_of("sendto").unwrap());
        assert!(n.address && n.not_loopback);
        let rs = load(&rule("p", "evt.type = sendto and proc.name = nc"));
        let n = socket_needs(&rs, index_of("sendto").unwrap());
        assert!(!n.address && !n.not_loopback);
    }

    #[test]
    fn falcos_stable_rules() {
        let mut l = RulesLoader::new();
        l.add_file(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/data/falco-rules/falco_rules.yaml"),
        );
        let rs = l.load().ruleset;
        let n = open_needs(&rs, index_of("openat").unwrap());
        assert!(!n.read.any, "no stable open rule reads every path");
        assert!(n.read.exact.contains("/etc/shadow"));
        assert!(
            !n.read.exact.contains("/etc/hostname")
                && !n
                    .read
                    .prefixes
                    .iter()
                    .any(|p| "/etc/hostname".starts_with(p.as_str()))
        );
        let s = socket_needs(&rs, index_of("sendto").unwrap());
        assert!(s.address, "stable sendto rules all need a peer address");
    }
}
