//! Loading, attaching and reading the kernel side with aya.

pub mod records;
pub mod syscalls;

use std::collections::BTreeSet;

use aya::maps::{Array, MapData, PerCpuArray, ProgramArray, RingBuf};
use aya::programs::BtfTracePoint;
use aya::{Btf, Ebpf, EbpfLoader};

use records::{COUNTER_DROPS, COUNTER_EVENTS, COUNTER_SYSCALLS, COUNTER_TRUNCATED, MAX_SYSCALLS};

/// The compiled kernel side, built by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor.bpf.o"));

/// Why the kernel side could not start, said so that a user can act on it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("live capture needs root (or CAP_BPF and CAP_PERFMON); run as root")]
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
    /// Syscall exits seen before filtering.
    pub syscalls: u64,
    pub truncated: u64,
}

/// Argument shapes with a program of their own (tail-call targets).
const PROGRAMS: [&str; 3] = ["sys_exit_paths", "sys_exit_sockaddr", "sys_exit_generic"];

/// The loaded, attached kernel side. Dropping it detaches everything.
pub struct Probe {
    ebpf: Ebpf,
    pub ring: Option<RingBuf<MapData>>,
}

impl Probe {
    /// Loads the programs, fills the interesting-syscall table and the tail-call table, and
    /// attaches the dispatcher and the process-lifecycle tracepoints.
    pub fn load(interesting: &BTreeSet<u32>, ring_bytes: u32) -> Result<Probe, LoadError> {
        if unsafe { libc::geteuid() } != 0 {
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

        // Tail-call targets by argument shape.
        let fds: Vec<_> = PROGRAMS
            .iter()
            .map(|name| {
                program(&mut ebpf, name)
                    .and_then(|p| p.fd().map_err(|e| LoadError::Load(e.to_string())))
                    .map(|fd| fd.try_clone())
            })
            .collect::<Result<_, _>>()?;
        let fds: Vec<_> = fds
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|e| LoadError::Load(e.to_string()))?;
        {
            let mut table = ProgramArray::try_from(
                ebpf.map_mut("SYSCALL_PROGS")
                    .ok_or(LoadError::Map("SYSCALL_PROGS"))?,
            )
            .map_err(|_| LoadError::Map("SYSCALL_PROGS"))?;
            for &nr in interesting {
                let shape = syscalls::shape(nr);
                let fd = &fds[shape as usize];
                table
                    .set(nr, fd, 0)
                    .map_err(|e| LoadError::Load(format!("tail-call table: {e}")))?;
            }
        }
        {
            let mut wanted: Array<_, u8> = Array::try_from(
                ebpf.map_mut("INTERESTING")
                    .ok_or(LoadError::Map("INTERESTING"))?,
            )
            .map_err(|_| LoadError::Map("INTERESTING"))?;
            for &nr in interesting.iter().filter(|&&nr| nr < MAX_SYSCALLS) {
                wanted
                    .set(nr, 1u8, 0)
                    .map_err(|e| LoadError::Load(format!("interesting table: {e}")))?;
            }
        }

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
        })
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
            syscalls: sum(COUNTER_SYSCALLS),
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
