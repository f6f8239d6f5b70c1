//! The process table: every live process with what rules ask about it, seeded from `/proc` at
//! start and kept by exec, fork, exit and chdir records.

use std::collections::HashMap;

use crate::bpf::records::ExecRecord;
use crate::container;
use crate::render;

/// One process (thread group).
#[derive(Debug, Clone, Default)]
pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    /// The kernel's comm: at most 15 characters.
    pub name: String,
    /// argv[0].
    pub exe: String,
    /// The executable's full path.
    pub exepath: String,
    /// argv[1..].
    pub args: Vec<String>,
    pub cwd: String,
    pub tty: u32,
    pub uid: u32,
    pub gid: u32,
    /// -1 without a login session.
    pub loginuid: i64,
    pub sid: u32,
    pub vpid: u32,
    /// Boot-clock nanoseconds of the exec (or fork) that made the process what it is.
    pub start_ns: u64,
    /// The 12-character container id; `None` on the host.
    pub container_id: Option<String>,
    pub cap_effective: u64,
    pub cap_permitted: u64,
    pub exe_flags: u32,
    pub exe_ino: u64,
    pub exe_ctime_ns: i64,
    pub exe_mtime_ns: i64,
    /// Open files by descriptor (for fd-based syscalls such as fchmod, and *at calls).
    pub fds: FdTable,
}

/// A process's open files by descriptor: paths from the opens the sensor saw (and from /proc at
/// start), copied by dup and fork, kept across exec unless close-on-exec. Bounded: past
/// [`MAX_FDS`] it starts afresh (closes are not always reported, so entries can go stale; the
/// kernel side describes sockets and pipes itself, see `FdView::apply`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FdTable {
    files: HashMap<i64, OpenFile>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct OpenFile {
    path: String,
    cloexec: bool,
}

/// O_CLOEXEC on x86_64.
pub const O_CLOEXEC: u64 = 0o2000000;

impl FdTable {
    pub fn get(&self, fd: &i64) -> Option<&String> {
        self.files.get(fd).map(|f| &f.path)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn insert(&mut self, fd: i64, path: String, cloexec: bool) {
        if self.files.len() >= MAX_FDS && !self.files.contains_key(&fd) {
            self.files.clear();
        }
        self.files.insert(fd, OpenFile { path, cloexec });
    }

    /// `new` now refers to what `old` does (dup, dup2, dup3, fcntl F_DUPFD).
    pub fn dup(&mut self, old: i64, new: i64, cloexec: bool) {
        match self.files.get(&old).map(|f| f.path.clone()) {
            Some(path) => self.insert(new, path, cloexec),
            None => {
                self.files.remove(&new);
            }
        }
    }

    pub fn close(&mut self, fd: i64) {
        self.files.remove(&fd);
    }

    /// What survives an exec: the descriptors without close-on-exec.
    fn after_exec(&self) -> FdTable {
        FdTable {
            files: self
                .files
                .iter()
                .filter(|(_, f)| !f.cloexec)
                .map(|(fd, f)| (*fd, f.clone()))
                .collect(),
        }
    }

    /// A process's open files as /proc lists them (paths only; sockets, pipes and anonymous
    /// descriptors are described by the kernel side when used).
    fn from_proc(pid: u32) -> FdTable {
        let mut t = FdTable::default();
        let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return t;
        };
        for e in entries.flatten().take(MAX_FDS) {
            let Some(fd) = e.file_name().to_str().and_then(|n| n.parse::<i64>().ok()) else {
                continue;
            };
            if let Some(path) =
                read_link(&e.path().to_string_lossy()).filter(|p| p.starts_with('/'))
            {
                t.insert(fd, path, false);
            }
        }
        t
    }
}

impl Process {
    pub fn args_joined(&self) -> String {
        self.args.join(" ")
    }

    /// `proc.cmdline`: the name, then the arguments.
    pub fn cmdline(&self) -> String {
        if self.args.is_empty() {
            self.name.clone()
        } else {
            format!("{} {}", self.name, self.args_joined())
        }
    }
}

/// How many processes the table keeps at most; past it, the oldest entries go (a leak guard for
/// missed exit records).
const MAX_PROCESSES: usize = 1 << 16;
/// Open files remembered per process.
const MAX_FDS: usize = 256;

#[derive(Default)]
pub struct ProcessTable {
    procs: HashMap<u32, Process>,
}

impl ProcessTable {
    /// Reads every process in `/proc`.
    pub fn seed() -> Self {
        let mut t = ProcessTable::default();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for e in entries.flatten() {
                if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) {
                    if let Some(p) = from_proc(pid) {
                        t.procs.insert(pid, p);
                    }
                }
            }
        }
        t
    }

    pub fn len(&self) -> usize {
        self.procs.len()
    }

    pub fn get(&self, pid: u32) -> Option<&Process> {
        self.procs.get(&pid)
    }

    /// The process, read from `/proc` if the table missed it (started before the sensor, or a
    /// record was dropped).
    pub fn get_or_load(&mut self, pid: u32) -> Option<&mut Process> {
        if !self.procs.contains_key(&pid) {
            let p = from_proc(pid)?;
            self.insert(p);
        }
        self.procs.get_mut(&pid)
    }

    fn insert(&mut self, p: Process) {
        if self.procs.len() >= MAX_PROCESSES {
            if let Some(&oldest) = self
                .procs
                .iter()
                .min_by_key(|(_, p)| p.start_ns)
                .map(|(pid, _)| pid)
            {
                self.procs.remove(&oldest);
            }
        }
        self.procs.insert(p.pid, p);
    }

    /// The ancestors of `pid`, parent first, stopping at a loop or a missing entry.
    pub fn ancestors(&self, pid: u32) -> Vec<&Process> {
        let mut out = Vec::new();
        let mut seen = vec![pid];
        let mut current = self.procs.get(&pid).map(|p| p.ppid);
        while let Some(ppid) = current {
            if ppid == 0 || seen.contains(&ppid) || out.len() >= 64 {
                break;
            }
            seen.push(ppid);
            match self.procs.get(&ppid) {
                Some(p) => {
                    out.push(p);
                    current = Some(p.ppid);
                }
                None => break,
            }
        }
        out
    }

    /// A new process: a copy of its parent until it execs.
    pub fn fork(&mut self, parent: u32, child: u32, ts: u64) {
        let mut p = self.get_or_load(parent).cloned().unwrap_or_default();
        p.pid = child;
        p.ppid = parent;
        p.start_ns = ts;
        p.vpid = child;
        self.insert(p);
    }

    /// The process became a new program.
    pub fn exec(&mut self, r: &ExecRecord, ppid: u32) {
        let previous_cwd = self.procs.get(&r.header.pid).map(|p| p.cwd.clone());
        let fds = self
            .procs
            .get(&r.header.pid)
            .map(|p| p.fds.after_exec())
            .unwrap_or_default();
        let parent_cwd = self.procs.get(&ppid).map(|p| p.cwd.clone());
        let cwd = previous_cwd
            .filter(|c| !c.is_empty())
            .or(parent_cwd)
            .or_else(|| read_link(&format!("/proc/{}/cwd", r.header.pid)))
            .unwrap_or_else(|| "/".to_string());
        let exepath = if r.filename.starts_with('/') {
            render::absolute("/", &r.filename)
        } else if r.filename.is_empty() {
            read_link(&format!("/proc/{}/exe", r.header.pid)).unwrap_or_default()
        } else {
            render::absolute(&cwd, &r.filename)
        };
        let mut argv = r.argv.clone().into_iter();
        let exe = argv.next().unwrap_or_else(|| r.filename.clone());
        let p = Process {
            pid: r.header.pid,
            ppid,
            name: r.header.comm.clone(),
            exe,
            exepath,
            args: argv.collect(),
            cwd,
            tty: r.tty,
            uid: r.header.uid,
            gid: r.header.gid,
            loginuid: loginuid(r.header.loginuid),
            sid: r.sid,
            vpid: r.vpid,
            start_ns: r.header.ts_boot_ns,
            container_id: container::container_id(r.cgroups.iter().map(String::as_str)),
            cap_effective: r.cap_effective,
            cap_permitted: r.cap_permitted,
            exe_flags: r.exe_flags,
            exe_ino: r.exe_ino,
            exe_ctime_ns: r.exe_ctime_ns,
            exe_mtime_ns: r.exe_mtime_ns,
            fds,
        };
        self.insert(p);
    }

    pub fn exit(&mut self, pid: u32) {
        self.procs.remove(&pid);
    }

    pub fn chdir(&mut self, pid: u32, path: &str) {
        if let Some(p) = self.procs.get_mut(&pid) {
            p.cwd = render::absolute(&p.cwd, path);
        }
    }

    /// The process's descriptors, to change them.
    pub fn fds_mut(&mut self, pid: u32) -> Option<&mut FdTable> {
        self.procs.get_mut(&pid).map(|p| &mut p.fds)
    }
}

fn loginuid(raw: u32) -> i64 {
    if raw == u32::MAX {
        -1
    } else {
        i64::from(raw)
    }
}

fn read_link(path: &str) -> Option<String> {
    std::fs::read_link(path)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// What the process table takes from `/proc/PID/status`.
struct ProcStatus {
    uid: u32,
    gid: u32,
    /// The pid in the process's own namespace (the last of `NSpid`).
    vpid: u32,
    cap_effective: u64,
    cap_permitted: u64,
}

impl ProcStatus {
    fn read(base: &str, pid: u32) -> ProcStatus {
        let status = std::fs::read_to_string(format!("{base}/status")).unwrap_or_default();
        let words = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        let first = |key: &str| words(key).first().and_then(|v| v.parse().ok());
        let cap = |key: &str| {
            words(key)
                .first()
                .and_then(|v| u64::from_str_radix(v, 16).ok())
                .unwrap_or(0)
        };
        ProcStatus {
            uid: first("Uid:").unwrap_or(0),
            gid: first("Gid:").unwrap_or(0),
            vpid: words("NSpid:")
                .last()
                .and_then(|v| v.parse().ok())
                .unwrap_or(pid),
            cap_effective: cap("CapEff:"),
            cap_permitted: cap("CapPrm:"),
        }
    }
}

/// A process as `/proc` describes it.
fn from_proc(pid: u32) -> Option<Process> {
    let base = format!("/proc/{pid}");
    let stat = std::fs::read_to_string(format!("{base}/stat")).ok()?;
    // The name is in parentheses and may itself hold spaces or parentheses.
    let close = stat.rfind(')')?;
    let name = stat[stat.find('(')? + 1..close].to_string();
    let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let ppid = field(1) as u32;
    let sid = field(3) as u32;
    let tty = field(4) as u32;
    let cmdline = std::fs::read(format!("{base}/cmdline")).unwrap_or_default();
    let mut argv = cmdline
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned());
    let exe = argv.next().unwrap_or_default();
    let status = ProcStatus::read(&base, pid);
    let cgroups = std::fs::read_to_string(format!("{base}/cgroup")).unwrap_or_default();
    let paths: Vec<&str> = cgroups
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .collect();
    Some(Process {
        pid,
        ppid,
        name,
        exe,
        exepath: read_link(&format!("{base}/exe")).unwrap_or_default(),
        args: argv.collect(),
        cwd: read_link(&format!("{base}/cwd")).unwrap_or_else(|| "/".to_string()),
        tty,
        uid: status.uid,
        gid: status.gid,
        loginuid: std::fs::read_to_string(format!("{base}/loginuid"))
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .map_or(-1, loginuid),
        sid,
        vpid: status.vpid,
        start_ns: 0,
        container_id: container::container_id(paths),
        cap_effective: status.cap_effective,
        cap_permitted: status.cap_permitted,
        exe_flags: 0,
        exe_ino: 0,
        exe_ctime_ns: 0,
        exe_mtime_ns: 0,
        fds: FdTable::from_proc(pid),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_this_process_from_proc() {
        let t = ProcessTable::seed();
        let me = t.get(std::process::id()).expect("this test's own process");
        assert!(!me.name.is_empty());
        assert!(me.cwd.starts_with('/'));
        assert!(t.len() > 1);
        // The ancestor chain ends (no loop) and starts with the parent.
        let chain = t.ancestors(std::process::id());
        if let Some(parent) = chain.first() {
            assert_eq!(parent.pid, me.ppid);
        }
    }

    #[test]
    fn descriptors_follow_dup_and_close_and_survive_exec_unless_cloexec() {
        let mut t = FdTable::default();
        t.insert(3, "/etc/passwd".into(), false);
        t.insert(4, "/etc/shadow".into(), true);
        t.dup(3, 10, false);
        assert_eq!(t.get(&10).map(String::as_str), Some("/etc/passwd"));
        t.dup(99, 10, false);
        assert_eq!(
            t.get(&10),
            None,
            "a dup of an unknown fd forgets what was there"
        );
        t.close(3);
        assert_eq!(t.get(&3), None);
        t.insert(5, "/tmp/x".into(), false);
        let after = t.after_exec();
        assert_eq!(after.get(&5).map(String::as_str), Some("/tmp/x"));
        assert_eq!(after.get(&4), None, "close-on-exec");
        for fd in 0..(MAX_FDS as i64 + 10) {
            t.insert(100 + fd, format!("/f{fd}"), false);
        }
        assert!(t.len() <= MAX_FDS);
    }

    #[test]
    fn this_process_open_files_are_seeded_from_proc() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let f = std::fs::File::open(file.path()).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f) as i64;
        let t = FdTable::from_proc(std::process::id());
        assert_eq!(t.get(&fd).map(String::as_str), file.path().to_str());
    }

    #[test]
    fn fork_inherits_and_exit_forgets() {
        let mut t = ProcessTable::default();
        t.insert(Process {
            pid: 10,
            ppid: 1,
            name: "bash".into(),
            cwd: "/root".into(),
            ..Process::default()
        });
        t.fork(10, 11, 5);
        let child = t.get(11).unwrap();
        assert_eq!(
            (child.ppid, child.name.as_str(), child.cwd.as_str()),
            (10, "bash", "/root")
        );
        t.chdir(11, "../tmp");
        assert_eq!(t.get(11).unwrap().cwd, "/tmp");
        assert_eq!(
            t.ancestors(11).iter().map(|p| p.pid).collect::<Vec<_>>(),
            vec![10]
        );
        t.exit(11);
        assert!(t.get(11).is_none());
    }
}
