//! The rules in force, what the kernel side must send for them, and noticing that their files
//! changed (`--watch-rules`, as Falco's `watch_config_files`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::SystemTime;

use peregrine_engine::Ruleset;

use crate::bpf::{syscalls, Filters};

/// Syscalls the process table needs whatever the rules are.
const STATE_SYSCALLS: [&str; 2] = ["chdir", "fchdir"];

/// A loaded ruleset and the kernel side's settings for it.
pub struct Loaded {
    pub ruleset: Ruleset,
    /// Syscalls the rules evaluate.
    pub evaluated: BTreeSet<u32>,
    /// Syscalls the kernel side sends: the evaluated ones and those the process table needs.
    pub interesting: BTreeSet<u32>,
    pub filters: Filters,
}

/// Loads `files` in order. On any error, the problems as `validate` prints them
/// (`file:line:col: ...`), and nothing else changes.
pub fn load(files: &[PathBuf], kernel_filters: bool) -> Result<Loaded, Vec<String>> {
    let mut loader = peregrine_engine::RulesLoader::new();
    for f in files {
        loader.add_file(f);
    }
    let result = loader.load();
    if result.has_errors() {
        return Err(result.render());
    }
    let ruleset = result.ruleset;
    let evaluated: BTreeSet<u32> = ruleset
        .event_types()
        .names()
        .into_iter()
        .filter_map(|t| syscalls::number(t).or_else(|| syscalls::number(&format!("{t}64"))))
        .collect();
    let mut interesting = evaluated.clone();
    interesting.extend(STATE_SYSCALLS.iter().filter_map(|n| syscalls::number(n)));
    let filters = filters_for(&ruleset, kernel_filters);
    Ok(Loaded {
        ruleset,
        evaluated,
        interesting,
        filters,
    })
}

/// Filters for the kernel side from what the rules can match (none when turned off).
fn filters_for(ruleset: &Ruleset, enabled: bool) -> crate::bpf::Filters {
    use peregrine_engine::event_types::index_of;
    use peregrine_engine::prefilter::{open_needs, socket_needs, OpenNeeds};
    if !enabled {
        return crate::bpf::Filters::default();
    }
    let mut open = OpenNeeds::default();
    for t in ["open", "openat", "openat2", "creat"]
        .iter()
        .filter_map(|n| index_of(n))
    {
        let n = open_needs(ruleset, t);
        for (all, one) in [(&mut open.read, n.read), (&mut open.write, n.write)] {
            all.any |= one.any;
            all.exact.extend(one.exact);
            all.prefixes.extend(one.prefixes);
        }
    }
    let sockets = ["connect", "sendto", "sendmsg", "accept", "accept4", "bind"]
        .iter()
        .filter_map(|n| Some((syscalls::number(n)?, socket_needs(ruleset, index_of(n)?))))
        .collect();
    crate::bpf::Filters {
        open: Some(open),
        sockets,
    }
}

/// What a rules file looked like when last read: a change in any of these means it was
/// written (or replaced, as editors and `kubectl` configmap updates do).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

/// The rules files' stamps, compared on every poll.
pub struct Watch {
    files: Vec<PathBuf>,
    stamps: Vec<Option<Stamp>>,
}

impl Watch {
    pub fn new(files: &[PathBuf]) -> Watch {
        Watch {
            files: files.to_vec(),
            stamps: files.iter().map(stamp).collect(),
        }
    }

    /// Whether any file changed since the last call (or since `new`).
    pub fn changed(&mut self) -> bool {
        let now: Vec<Option<Stamp>> = self.files.iter().map(stamp).collect();
        let changed = now != self.stamps;
        self.stamps = now;
        changed
    }
}

fn stamp(path: &PathBuf) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode: m.ino(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewritten_file_is_noticed_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.yaml");
        std::fs::write(&path, "- list: a\n  items: []\n").unwrap();
        let mut watch = Watch::new(std::slice::from_ref(&path));
        assert!(!watch.changed());
        // A longer file: noticed even if the clock's resolution hides the new mtime.
        std::fs::write(&path, "- list: a\n  items: [x]\n").unwrap();
        assert!(watch.changed());
        assert!(!watch.changed());
        // Replaced by rename, as editors do.
        let tmp = dir.path().join("rules.yaml.new");
        std::fs::write(&tmp, "- list: a\n  items: [y]\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert!(watch.changed());
        std::fs::remove_file(&path).unwrap();
        assert!(watch.changed());
    }

    #[test]
    fn a_broken_file_reports_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.yaml");
        std::fs::write(
            &path,
            "- rule: r\n  desc: d\n  condition: evt.type = open and (\n  output: o\n  priority: WARNING\n",
        )
        .unwrap();
        let Err(problems) = load(std::slice::from_ref(&path), true) else {
            panic!("a broken condition loads");
        };
        let where_ = format!("{}:3:", path.display());
        assert!(problems.iter().any(|p| p.contains(&where_)), "{problems:?}");
    }
}
