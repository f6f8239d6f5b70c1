//! Host names for `fd.sip.name`, `fd.cip.name`, `fd.lip.name` and `fd.rip.name`.
//!
//! As libsinsp's DNS manager does, the names come from the rules, not from the traffic: every
//! name a loaded rule compares one of these fields with (`fd.sip.name =
//! "kubernetes.default.svc.cluster.local"`) is resolved in the background, again every
//! [`REFRESH`], and an event's address yields the names that resolved to it. Nothing is resolved
//! on the event path, and a name that does not resolve simply matches nothing.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use peregrine_engine::eval::{Comparison, Node, Rhs, Source, StrSet};
use peregrine_engine::Ruleset;

/// How often the names are resolved again (libsinsp refreshes its entries on a similar scale).
const REFRESH: Duration = Duration::from_secs(30);

/// At most this many names are resolved (a bound on work a rules file can ask for).
const MAX_NAMES: usize = 256;

/// The fields whose values are names of an address.
const NAME_FIELDS: [&str; 4] = ["fd.sip.name", "fd.cip.name", "fd.lip.name", "fd.rip.name"];

/// Addresses to names, shared with the resolving thread.
#[derive(Clone, Default)]
pub struct HostNames {
    by_ip: Arc<RwLock<HashMap<IpAddr, Vec<String>>>>,
    wanted: Arc<RwLock<BTreeSet<String>>>,
}

impl HostNames {
    /// Starts resolving the names `ruleset` compares with, in a thread of its own: a resolver
    /// that is slow to answer never holds up the sensor.
    pub fn start(ruleset: &Ruleset) -> HostNames {
        let names = HostNames::default();
        *names.wanted.write().expect("names lock") = names_in(ruleset);
        let worker = names.clone();
        let spawned = std::thread::Builder::new()
            .name("host-names".into())
            .spawn(move || loop {
                worker.resolve_all();
                std::thread::sleep(REFRESH);
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the name resolver: fd.*ip.name will match nothing");
        }
        names
    }

    /// Takes the names of a reloaded ruleset and resolves them at once, in the background.
    pub fn set_rules(&self, ruleset: &Ruleset) {
        *self.wanted.write().expect("names lock") = names_in(ruleset);
        let worker = self.clone();
        if let Err(e) = std::thread::Builder::new()
            .name("host-names-reload".into())
            .spawn(move || worker.resolve_all())
        {
            tracing::error!(error = %e, "cannot resolve the reloaded rules' names now; the next refresh will");
        }
    }

    /// The names that resolved to `ip`.
    pub fn of(&self, ip: &IpAddr) -> Vec<String> {
        self.by_ip
            .read()
            .expect("names lock")
            .get(ip)
            .cloned()
            .unwrap_or_default()
    }

    fn resolve_all(&self) {
        let wanted: Vec<String> = self
            .wanted
            .read()
            .expect("names lock")
            .iter()
            .cloned()
            .collect();
        let mut by_ip: HashMap<IpAddr, Vec<String>> = HashMap::new();
        for name in wanted {
            // The system resolver (/etc/hosts, DNS), as getaddrinfo answers libsinsp.
            let Ok(addrs) = (name.as_str(), 0).to_socket_addrs() else {
                continue;
            };
            for a in addrs {
                let names = by_ip.entry(a.ip()).or_default();
                if !names.contains(&name) {
                    names.push(name.clone());
                }
            }
        }
        *self.by_ip.write().expect("names lock") = by_ip;
    }
}

/// Every name a rule of `ruleset` compares a name field with (`=`, `in`).
fn names_in(ruleset: &Ruleset) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for rule in ruleset.rules().iter().filter(|r| r.enabled) {
        collect(&rule.filter, &mut out);
    }
    out.into_iter().take(MAX_NAMES).collect()
}

fn collect(node: &Node, out: &mut BTreeSet<String>) {
    match node {
        Node::And(children) | Node::Or(children) => children.iter().for_each(|c| collect(c, out)),
        Node::Not(inner) => collect(inner, out),
        Node::Compare(c) => collect_compare(c, out),
        Node::Const(_) => {}
    }
}

fn collect_compare(c: &Comparison, out: &mut BTreeSet<String>) {
    let Source::Field(f) = &c.lhs else {
        return;
    };
    if !NAME_FIELDS.contains(&f.info().name) {
        return;
    }
    match &c.rhs {
        Rhs::Str(s) => {
            out.insert(s.to_string());
        }
        Rhs::StrSet(StrSet::Small(items)) => out.extend(items.iter().map(|s| s.to_string())),
        Rhs::StrSet(StrSet::Large(items)) => out.extend(items.iter().map(|s| s.to_string())),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ruleset(condition: &str) -> Ruleset {
        let mut loader = peregrine_engine::RulesLoader::new();
        loader.add_str(
            "r.yaml",
            &format!("- rule: r\n  desc: d\n  condition: evt.type = connect and {condition}\n  output: o\n  priority: INFO\n"),
        );
        loader.load().ruleset
    }

    #[test]
    fn names_come_from_the_rules_and_resolve_to_addresses() {
        let rules = ruleset("(fd.sip.name = localhost or fd.rip.name in (nowhere.invalid, localhost)) and proc.name = localhost2");
        let names = names_in(&rules);
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["localhost", "nowhere.invalid"],
            "only the name fields' operands"
        );
        let h = HostNames::default();
        *h.wanted.write().unwrap() = names_in(&rules);
        h.resolve_all();
        assert_eq!(h.of(&"127.0.0.1".parse().unwrap()), ["localhost"]);
        assert!(h.of(&"192.0.2.1".parse().unwrap()).is_empty());
    }
}
