//! Loading, attaching and reading the kernel side with aya.

pub mod records;
pub mod syscalls;

use std::collections::BTreeSet;

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, MapData, PerCpuArray, ProgramArray, RingBuf};
use aya::programs::BtfTracePoint;
use aya::{Btf, Ebpf, EbpfLoader};
use peregrine_engine::prefilter::{OpenNeeds, SocketNeeds};

use records::{COUNTER_DROPS, COUNTER_EVENTS, COUNTER_TRUNCATED, MAX_SYSCALLS};

/// The compiled kernel side, built by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor.bpf.o"));

/// Whether this process may load and attach the kernel side: root, or the two capabilities a
/// least-privilege deployment grants (Falco's chart gives its modern probe the same ones).
fn may_capture() -> bool {
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let effective = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        })
        .unwrap_or(0);
    [CAP_BPF, CAP_PERFMON]
        .iter()
        .all(|cap| effective & (1 << cap) != 0)
}

/// Why the kernel side could not start, said so that a user can act on it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("live capture needs root or the capabilities BPF and PERFMON (and SYS_PTRACE to read other users' /proc entries, SYS_RESOURCE on kernels before 5.11); this process has neither")]
    NotPrivileged,
    #[error("the kernel exposes no BTF (/sys/kernel/btf/vmlinux); a kernel built with CONFIG_DEBUG_INFO_BTF is needed")]
    NoBtf,
    #[error("the kernel refused program '{program}': {detail}")]
    Program { program: String, detail: String },
    #[error("loading the BPF object failed: {0}")]
    Load(String),
    #[error("BPF map '{0}' is missing or of the wrong type")]
    Map(&'static str),
}

/// Kernel-side counters, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Records the kernel tried to send.
    pub events: u64,
    /// Records that found the ring full.
    pub drops: u64,
    pub truncated: u64,
}

/// Kernel-side filters derived from the rules (see `peregrine_engine::prefilter`).
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// What opens (open, openat, openat2, creat together) some rule could match; `None` keeps all.
    pub open: Option<OpenNeeds>,
    /// Per socket syscall number.
    pub sockets: Vec<(u32, SocketNeeds)>,
}

const PATH_KEY: usize = 256;
const PATH_READ_EXACT: u8 = 1;
const PATH_READ_PREFIX: u8 = 2;
const PATH_WRITE_EXACT: u8 = 4;
const PATH_WRITE_PREFIX: u8 = 8;

/// `struct open_filter` in events.h.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct OpenFilter {
    enabled: u8,
    read_any: u8,
    write_any: u8,
}
// SAFETY: plain bytes, the layout of the C struct.
unsafe impl aya::Pod for OpenFilter {}

/// `struct path_value` in events.h.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct PathValue {
    len: u16,
    flags: u8,
    pad: u8,
}
// SAFETY: plain bytes, the layout of the C struct.
unsafe impl aya::Pod for PathValue {}

/// The LPM-trie entries for the open filter: each path with the modes for which it is an exact
/// name or a prefix. A prefix's flag is copied onto every longer key it covers, because a trie
/// lookup returns only the longest matching key.
fn path_entries(needs: &OpenNeeds) -> (Vec<(String, PathValue)>, bool, bool) {
    let mut entries: std::collections::BTreeMap<String, PathValue> =
        std::collections::BTreeMap::new();
    let mut too_long = (false, false);
    for (paths, exact_bit, prefix_bit, long) in [
        (
            &needs.read,
            PATH_READ_EXACT,
            PATH_READ_PREFIX,
            &mut too_long.0,
        ),
        (
            &needs.write,
            PATH_WRITE_EXACT,
            PATH_WRITE_PREFIX,
            &mut too_long.1,
        ),
    ] {
        for (path, bit) in paths
            .exact
            .iter()
            .map(|p| (p, exact_bit))
            .chain(paths.prefixes.iter().map(|p| (p, prefix_bit)))
        {
            if path.len() > PATH_KEY {
                *long = true; // cannot be a key: let every path of this mode through
                continue;
            }
            let e = entries.entry(path.clone()).or_insert(PathValue {
                len: path.len() as u16,
                ..PathValue::default()
            });
            e.flags |= bit;
        }
    }
    let prefixes: Vec<(String, u8)> = entries
        .iter()
        .filter(|(_, v)| v.flags & (PATH_READ_PREFIX | PATH_WRITE_PREFIX) != 0)
        .map(|(k, v)| (k.clone(), v.flags & (PATH_READ_PREFIX | PATH_WRITE_PREFIX)))
        .collect();
    for (key, value) in entries.iter_mut() {
        for (p, bits) in &prefixes {
            if key.starts_with(p.as_str()) {
                value.flags |= bits;
            }
        }
    }
    (entries.into_iter().collect(), too_long.0, too_long.1)
}

fn flag(b: bool) -> u8 {
    u8::from(b)
}

fn fill_filters(ebpf: &mut Ebpf, filters: &Filters) -> Result<(), LoadError> {
    if let Some(open) = &filters.open {
        let (entries, read_long, write_long) = path_entries(open);
        let mut trie: LpmTrie<_, [u8; PATH_KEY], PathValue> = LpmTrie::try_from(
            ebpf.map_mut("OPEN_PATHS")
                .ok_or(LoadError::Map("OPEN_PATHS"))?,
        )
        .map_err(|_| LoadError::Map("OPEN_PATHS"))?;
        for (path, value) in &entries {
            let mut data = [0u8; PATH_KEY];
            data[..path.len()].copy_from_slice(path.as_bytes());
            trie.insert(&Key::new(path.len() as u32 * 8, data), value, 0)
                .map_err(|e| LoadError::Load(format!("open path filter: {e}")))?;
        }
        let f = OpenFilter {
            enabled: 1,
            read_any: flag(open.read.any || read_long),
            write_any: flag(open.write.any || write_long),
        };
        set_open_filter(ebpf, f)?;
        tracing::info!(
            paths = entries.len(),
            read_any = open.read.any,
            write_any = open.write.any,
            "kernel-side open filter"
        );
    }
    let mut sockets: Array<_, [u8; 2]> = Array::try_from(
        ebpf.map_mut("SOCK_FILTER")
            .ok_or(LoadError::Map("SOCK_FILTER"))?,
    )
    .map_err(|_| LoadError::Map("SOCK_FILTER"))?;
    for (nr, needs) in &filters.sockets {
        sockets
            .set(*nr, [flag(needs.address), flag(needs.not_loopback)], 0)
            .map_err(|e| LoadError::Load(format!("socket filter: {e}")))?;
    }
    Ok(())
}

fn set_open_filter(ebpf: &mut Ebpf, filter: OpenFilter) -> Result<(), LoadError> {
    let mut array: Array<_, OpenFilter> = Array::try_from(
        ebpf.map_mut("OPEN_FILTER")
            .ok_or(LoadError::Map("OPEN_FILTER"))?,
    )
    .map_err(|_| LoadError::Map("OPEN_FILTER"))?;
    array
        .set(0, filter, 0)
        .map_err(|e| LoadError::Load(format!("open filter: {e}")))
}

/// Removes every path from the open filter's trie.
fn clear_open_paths(ebpf: &mut Ebpf) -> Result<(), LoadError> {
    let mut trie: LpmTrie<_, [u8; PATH_KEY], PathValue> = LpmTrie::try_from(
        ebpf.map_mut("OPEN_PATHS")
            .ok_or(LoadError::Map("OPEN_PATHS"))?,
    )
    .map_err(|_| LoadError::Map("OPEN_PATHS"))?;
    let keys: Vec<Key<[u8; PATH_KEY]>> = trie.keys().filter_map(Result::ok).collect();
    for key in &keys {
        trie.remove(key)
            .map_err(|e| LoadError::Load(format!("open path filter: {e}")))?;
    }
    Ok(())
}

fn interesting_table(ebpf: &mut Ebpf) -> Result<Array<&mut MapData, u8>, LoadError> {
    Array::try_from(
        ebpf.map_mut("INTERESTING")
            .ok_or(LoadError::Map("INTERESTING"))?,
    )
    .map_err(|_| LoadError::Map("INTERESTING"))
}

/// Marks `syscalls` interesting and points their tail calls at the program for their argument
/// shape.
fn add_syscalls(ebpf: &mut Ebpf, syscalls_wanted: &BTreeSet<u32>) -> Result<(), LoadError> {
    let fds: Vec<_> = PROGRAMS
        .iter()
        .map(|name| {
            program(ebpf, name)
                .and_then(|p| p.fd().map_err(|e| LoadError::Load(e.to_string())))
                .and_then(|fd| fd.try_clone().map_err(|e| LoadError::Load(e.to_string())))
        })
        .collect::<Result<_, _>>()?;
    let mut table = ProgramArray::try_from(
        ebpf.map_mut("SYSCALL_PROGS")
            .ok_or(LoadError::Map("SYSCALL_PROGS"))?,
    )
    .map_err(|_| LoadError::Map("SYSCALL_PROGS"))?;
    for &nr in syscalls_wanted {
        let fd = &fds[syscalls::shape(nr) as usize];
        table
            .set(nr, fd, 0)
            .map_err(|e| LoadError::Load(format!("tail-call table: {e}")))?;
    }
    let mut wanted = interesting_table(ebpf)?;
    for &nr in syscalls_wanted.iter().filter(|&&nr| nr < MAX_SYSCALLS) {
        wanted
            .set(nr, 1u8, 0)
            .map_err(|e| LoadError::Load(format!("interesting table: {e}")))?;
    }
    Ok(())
}

/// Argument shapes with a program of their own (tail-call targets).
const PROGRAMS: [&str; 4] = [
    "sys_exit_paths",
    "sys_exit_sockaddr",
    "sys_exit_generic",
    "sys_exit_fd",
];

/// The loaded, attached kernel side. Dropping it detaches everything.
pub struct Probe {
    ebpf: Ebpf,
    pub ring: Option<RingBuf<MapData>>,
    /// The syscalls marked in `INTERESTING`.
    interesting: BTreeSet<u32>,
}

impl Probe {
    /// Loads the programs, fills the interesting-syscall table and the tail-call table, and
    /// attaches the dispatcher and the process-lifecycle tracepoints.
    pub fn load(
        interesting: &BTreeSet<u32>,
        ring_bytes: u32,
        filters: &Filters,
    ) -> Result<Probe, LoadError> {
        if !may_capture() {
            return Err(LoadError::NotPrivileged);
        }
        let btf = Btf::from_sys_fs().map_err(|_| LoadError::NoBtf)?;
        let self_tgid = std::process::id();
        // Force a wake-up once a quarter of the ring is waiting; otherwise user space polls.
        let wakeup_bytes = u64::from(ring_bytes / 4);
        let mut ebpf = EbpfLoader::new()
            .btf(Some(&btf))
            .override_global("self_tgid", &self_tgid, true)
            .override_global("wakeup_bytes", &wakeup_bytes, true)
            .map_max_entries("EVENTS", ring_bytes)
            .load(OBJECT)
            .map_err(|e| LoadError::Load(describe(&e)))?;

        for name in [
            "sys_exit",
            "sys_exit_paths",
            "sys_exit_sockaddr",
            "sys_exit_generic",
            "sys_exit_fd",
        ] {
            program(&mut ebpf, name)?
                .load("sys_exit", &btf)
                .map_err(|e| LoadError::Program {
                    program: name.into(),
                    detail: describe(&e),
                })?;
        }
        for (name, tp) in [
            ("sched_process_exec", "sched_process_exec"),
            ("sched_process_fork", "sched_process_fork"),
            ("sched_process_exit", "sched_process_exit"),
        ] {
            program(&mut ebpf, name)?
                .load(tp, &btf)
                .map_err(|e| LoadError::Program {
                    program: name.into(),
                    detail: describe(&e),
                })?;
        }

        add_syscalls(&mut ebpf, interesting)?;
        fill_filters(&mut ebpf, filters)?;

        for name in [
            "sys_exit",
            "sched_process_exec",
            "sched_process_fork",
            "sched_process_exit",
        ] {
            program(&mut ebpf, name)?
                .attach()
                .map_err(|e| LoadError::Program {
                    program: name.into(),
                    detail: describe(&e),
                })?;
        }
        let ring = RingBuf::try_from(ebpf.take_map("EVENTS").ok_or(LoadError::Map("EVENTS"))?)
            .map_err(|_| LoadError::Map("EVENTS"))?;
        Ok(Probe {
            ebpf,
            ring: Some(ring),
            interesting: interesting.clone(),
        })
    }

    /// Points the loaded kernel side at new rules: the syscalls they need and their filters.
    /// New syscalls are added and the open filter opened up first, and what is no longer needed
    /// is removed last, so no event a new rule needs is dropped while the maps change.
    pub fn retarget(
        &mut self,
        interesting: &BTreeSet<u32>,
        filters: &Filters,
    ) -> Result<(), LoadError> {
        add_syscalls(&mut self.ebpf, interesting)?;
        set_open_filter(&mut self.ebpf, OpenFilter::default())?;
        clear_open_paths(&mut self.ebpf)?;
        fill_filters(&mut self.ebpf, filters)?;
        let mut wanted = interesting_table(&mut self.ebpf)?;
        for &nr in self.interesting.difference(interesting) {
            if nr < MAX_SYSCALLS {
                wanted
                    .set(nr, 0u8, 0)
                    .map_err(|e| LoadError::Load(format!("interesting table: {e}")))?;
            }
        }
        self.interesting = interesting.clone();
        Ok(())
    }

    /// The kernel-side counters, summed over CPUs.
    pub fn counters(&self) -> Counters {
        let Some(map) = self.ebpf.map("COUNTERS") else {
            return Counters::default();
        };
        let Ok(array) = PerCpuArray::<_, u64>::try_from(map) else {
            return Counters::default();
        };
        let sum = |i: u32| array.get(&i, 0).map(|v| v.iter().sum::<u64>()).unwrap_or(0);
        Counters {
            events: sum(COUNTER_EVENTS),
            drops: sum(COUNTER_DROPS),
            truncated: sum(COUNTER_TRUNCATED),
        }
    }
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut BtfTracePoint, LoadError> {
    ebpf.program_mut(name)
        .ok_or_else(|| LoadError::Program {
            program: name.into(),
            detail: "not in the object".into(),
        })?
        .try_into()
        .map_err(|_| LoadError::Program {
            program: name.into(),
            detail: "not a BTF tracepoint".into(),
        })
}

/// An error with its whole chain: the verifier's log is at the end of it.
fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_cover_longer_keys() {
        let mut needs = OpenNeeds::default();
        needs.read.exact.insert("/etc/shadow".into());
        needs.write.prefixes.insert("/etc/".into());
        let (entries, _, _) = path_entries(&needs);
        let get = |k: &str| {
            entries
                .iter()
                .find(|(p, _)| p == k)
                .map(|(_, v)| *v)
                .unwrap()
        };
        let shadow = get("/etc/shadow");
        assert_eq!(shadow.len, 11);
        assert_eq!(
            shadow.flags,
            PATH_READ_EXACT | PATH_WRITE_PREFIX,
            "a write under /etc/ still passes at the longer key"
        );
        assert_eq!(get("/etc/").flags, PATH_WRITE_PREFIX);
    }

    #[test]
    fn a_path_too_long_for_a_key_lets_its_mode_through() {
        let mut needs = OpenNeeds::default();
        needs.read.exact.insert(format!("/{}", "x".repeat(300)));
        let (entries, read_long, write_long) = path_entries(&needs);
        assert!(entries.is_empty() && read_long && !write_long);
    }
}
