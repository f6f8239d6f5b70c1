//! A kernel record seen through the process table: the engine's [`Event`] for live capture.

use std::borrow::Cow;
use std::sync::OnceLock;

use peregrine_engine::eval::{Event, Extracted, Val};
use peregrine_engine::fields::{FieldArg, FieldId, ResolvedField, FIELDS};

use crate::bpf::records::{
    ExecRecord, SyscallRecord, EXE_FROM_MEMFD, EXE_LOWER_LAYER, EXE_UPPER_LAYER, EXE_WRITABLE,
};
use crate::proctable::{Process, ProcessTable};
use crate::render::{self, SockAddr};
use crate::runtime::ContainerInfo;
use crate::users::Users;

/// What the record was.
pub enum Kind<'a> {
    Syscall(&'a SyscallRecord),
    Exec(&'a ExecRecord),
}

/// The file descriptor an event is about, as far as the record tells.
#[derive(Debug, Default, Clone)]
pub struct FdView {
    pub num: Option<i64>,
    pub name: Option<String>,
    pub nameraw: Option<String>,
    pub typechar: Option<&'static str>,
    pub kind: Option<&'static str>,
    pub remote: Option<(std::net::IpAddr, u16)>,
    pub local: Option<(std::net::IpAddr, u16)>,
    /// The local side is the server (an accepted socket, or one that looks like it).
    pub local_is_server: bool,
    pub l4proto: Option<&'static str>,
    pub open_flags: Option<u64>,
}

/// Which end of a connection a field asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// `fd.ip`, `fd.port`: either end.
    Any,
    Local,
    Remote,
    Server,
    Client,
}

impl FdView {
    /// The ends `side` names, as (ip, port).
    fn ends(&self, side: Side) -> Vec<(std::net::IpAddr, u16)> {
        let (server, client) = if self.local_is_server {
            (self.local, self.remote)
        } else {
            (self.remote, self.local)
        };
        match side {
            Side::Any => self.local.into_iter().chain(self.remote).collect(),
            Side::Local => self.local.into_iter().collect(),
            Side::Remote => self.remote.into_iter().collect(),
            Side::Server => server.into_iter().collect(),
            Side::Client => client.into_iter().collect(),
        }
    }

    /// Fills what the kernel said the descriptor is; what the syscall's own arguments said
    /// (a path, the address given to connect) is kept. `local_is_server` is what the syscall
    /// tells (connect: the client; accept: the server), `None` when it cannot.
    fn apply(&mut self, info: &crate::bpf::records::FdInfo, local_is_server: Option<bool>) {
        use crate::bpf::records::FdKind;
        let (typechar, kind) = match info.kind {
            FdKind::File => ("f", "file"),
            FdKind::Directory => ("d", "directory"),
            FdKind::Ipv4 => ("4", "ipv4"),
            FdKind::Ipv6 => ("6", "ipv6"),
            FdKind::Unix => ("u", "unix"),
            FdKind::Pipe => ("p", "pipe"),
            FdKind::Memfd => ("m", "memfd"),
            FdKind::Other => return,
        };
        self.typechar = Some(typechar);
        self.kind = Some(kind);
        if !matches!(info.kind, FdKind::Ipv4 | FdKind::Ipv6) {
            return;
        }
        self.l4proto = match info.l4proto {
            6 => Some("tcp"),
            17 => Some("udp"),
            1 | 58 => Some("icmp"),
            _ => self.l4proto,
        };
        self.local = info.local;
        self.remote = self.remote.or(info.remote);
        // A descriptor seen only here (dup of an inherited socket) has no connect or accept to
        // say which end serves: the end on the lower, non-ephemeral port is taken for the
        // server (a closed socket's local port reads 0, which says nothing).
        self.local_is_server = local_is_server.unwrap_or(
            info.accepted
                || matches!((self.local, self.remote), (Some((_, l)), Some((_, r))) if l != 0 && l < r && l < 32768),
        );
        if let (Some(l), Some(r)) = (self.local, self.remote) {
            let (client, server) = if self.local_is_server { (r, l) } else { (l, r) };
            self.name = Some(format!("{}->{}", endpoint(client), endpoint(server)));
        }
    }
}

/// `ip:port`, IPv6 in brackets, as libsinsp writes a tuple's end.
fn endpoint((ip, port): (std::net::IpAddr, u16)) -> String {
    match ip {
        std::net::IpAddr::V4(ip) => format!("{ip}:{port}"),
        std::net::IpAddr::V6(ip) => format!("[{ip}]:{port}"),
    }
}

pub struct SensorEvent<'a> {
    pub kind: Kind<'a>,
    pub evt_type: &'a str,
    pub evt_type_index: Option<usize>,
    pub num: u64,
    pub time_ns: i64,
    pub proc: &'a Process,
    pub table: &'a ProcessTable,
    pub users: &'a Users,
    pub fd: FdView,
    pub hostname: &'a str,
    /// What the container runtime said about the process's container, once it has.
    pub container: Option<&'a ContainerInfo>,
    /// Names of addresses, for `fd.sip.name` and the like.
    pub names: Option<&'a crate::names::HostNames>,
    ancestors: OnceLock<Vec<&'a Process>>,
}

impl<'a> SensorEvent<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kind: Kind<'a>,
        evt_type: &'a str,
        num: u64,
        time_ns: i64,
        proc: &'a Process,
        table: &'a ProcessTable,
        users: &'a Users,
        hostname: &'a str,
    ) -> Self {
        let fd = match &kind {
            Kind::Syscall(r) => fd_view(evt_type, r, proc),
            Kind::Exec(_) => FdView::default(),
        };
        SensorEvent {
            evt_type_index: peregrine_engine::event_types::index_of(evt_type),
            kind,
            evt_type,
            num,
            time_ns,
            proc,
            table,
            users,
            fd,
            hostname,
            container: None,
            names: None,
            ancestors: OnceLock::new(),
        }
    }

    fn ancestor(&self, level: u32) -> Option<&'a Process> {
        if level == 0 {
            return Some(self.proc);
        }
        let chain = self
            .ancestors
            .get_or_init(|| self.table.ancestors(self.proc.pid));
        chain.get(level as usize - 1).copied()
    }

    fn all_ancestors(&self) -> &[&'a Process] {
        self.ancestors
            .get_or_init(|| self.table.ancestors(self.proc.pid))
    }

    fn ret(&self) -> i64 {
        match &self.kind {
            Kind::Syscall(r) => r.ret,
            Kind::Exec(_) => 0,
        }
    }

    /// `evt.arg.NAME` for this event's syscall, in Falco's argument names.
    fn arg(&self, name: &str) -> Option<Val<'_>> {
        let r = match &self.kind {
            Kind::Exec(e) => {
                return match name {
                    "flags" => Some(text(render::exe_flags(e.exe_flags))),
                    "res" => Some(Val::Int(0)),
                    "filename" | "exe" => Some(Val::Str(Cow::Borrowed(&e.filename))),
                    "args" => Some(text(
                        e.argv.iter().skip(1).cloned().collect::<Vec<_>>().join(" "),
                    )),
                    _ => None,
                }
            }
            Kind::Syscall(r) => *r,
        };
        let s1 = || r.str1.as_deref().map(|s| Val::Str(Cow::Borrowed(s)));
        let s2 = || r.str2.as_deref().map(|s| Val::Str(Cow::Borrowed(s)));
        let a = |i: usize| r.args[i];
        let arg_int = |v: u64| Some(Val::Int(v as i64));
        Some(match (self.evt_type, name) {
            (_, "res") => Val::Int(r.ret),
            ("open" | "openat" | "openat2" | "creat", "fd") => Val::Int(r.ret),
            ("open" | "openat" | "openat2" | "creat", "name") => return s1(),
            ("open" | "creat", "mode") => {
                return arg_int(a(if self.evt_type == "open" { 2 } else { 1 }))
            }
            ("open", "flags") => text(render::open_flags(a(1))),
            ("openat" | "openat2", "flags") => text(render::open_flags(a(2))),
            ("openat", "mode") => return arg_int(a(3)),
            ("openat" | "openat2" | "unlinkat" | "mkdirat" | "fchmodat", "dirfd") => {
                Val::Int(a(0) as i32 as i64)
            }
            ("execve" | "execveat", "filename" | "exe") => return s1(),
            ("symlink" | "symlinkat", "target") => return s1(),
            ("symlink" | "symlinkat", "linkpath") => return s2(),
            ("symlinkat", "linkdirfd") => Val::Int(a(1) as i32 as i64),
            ("link" | "linkat" | "rename" | "renameat" | "renameat2", "oldpath") => return s1(),
            ("link" | "linkat" | "rename" | "renameat" | "renameat2", "newpath") => return s2(),
            ("unlink" | "rmdir" | "mkdir" | "chdir", "path") => return s1(),
            ("unlinkat", "name") | ("mkdirat", "path") => return s1(),
            ("chmod" | "fchmodat", "filename") => return s1(),
            ("chmod", "mode") => return arg_int(a(1)),
            ("fchmodat", "mode") | ("mkdirat", "mode") => return arg_int(a(2)),
            ("fchmod", "mode") => return arg_int(a(1)),
            ("fchmod" | "fchdir" | "finit_module", "fd") => Val::Int(a(0) as i32 as i64),
            ("ptrace", "request") => text(render::ptrace_request(a(0))),
            ("ptrace", "pid") => Val::Int(a(1) as i32 as i64),
            ("ptrace", "addr") => Val::Int(a(2) as i64),
            ("ptrace", "data") => Val::Int(a(3) as i64),
            ("socket", "domain") => text(render::socket_family(a(0))),
            ("socket", "type") => Val::Int(a(1) as i64),
            ("socket", "proto") => Val::Int(a(2) as i64),
            ("socket", "fd") => Val::Int(r.ret),
            ("connect" | "sendto" | "sendmsg" | "bind" | "listen", "fd") => {
                Val::Int(a(0) as i32 as i64)
            }
            ("accept" | "accept4", "fd") => Val::Int(r.ret),
            (
                "connect" | "sendto" | "sendmsg" | "accept" | "accept4" | "bind",
                "tuple" | "addr",
            ) => return self.fd.name.clone().map(text),
            ("dup" | "dup2" | "dup3", "oldfd") => Val::Int(a(0) as i32 as i64),
            ("dup2" | "dup3", "newfd") => Val::Int(a(1) as i32 as i64),
            ("memfd_create", "name") => return s1(),
            ("memfd_create", "flags") => return arg_int(a(1)),
            ("init_module" | "finit_module", "uargs") => return s1(),
            ("bpf", "cmd") => return arg_int(a(0)),
            ("setuid", "uid") | ("setgid", "gid") => Val::Int(a(0) as i32 as i64),
            ("mount", "dev") => return s1(),
            ("mount", "dir") => return s2(),
            ("mount", "flags") => return arg_int(a(3)),
            ("umount2", "name") => return s1(),
            ("umount2", "flags") => return arg_int(a(1)),
            ("setns", "fd") => Val::Int(a(0) as i32 as i64),
            ("setns", "nstype") | ("unshare", "flags") | ("userfaultfd", "flags") => {
                return arg_int(a(if self.evt_type == "setns" { 1 } else { 0 }))
            }
            ("kill", "pid") => Val::Int(a(0) as i32 as i64),
            ("kill", "sig") => return arg_int(a(1)),
            _ => return None,
        })
    }

    /// Every argument as `name=value`, for `evt.args`.
    fn args_text(&self) -> String {
        let names: &[&str] = match self.evt_type {
            "open" | "openat" | "openat2" | "creat" => &["fd", "dirfd", "name", "flags", "mode"],
            "execve" | "execveat" => &["res", "filename", "flags"],
            "symlink" | "symlinkat" => &["res", "target", "linkpath"],
            "link" | "linkat" | "rename" | "renameat" | "renameat2" => {
                &["res", "oldpath", "newpath"]
            }
            "ptrace" => &["res", "request", "pid"],
            "connect" | "accept" | "accept4" | "sendto" | "sendmsg" => &["fd", "tuple"],
            _ => &["res"],
        };
        names
            .iter()
            .filter_map(|n| self.arg(n).map(|v| format!("{n}={}", v.to_text())))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn text<'x>(s: String) -> Val<'x> {
    Val::Str(Cow::Owned(s))
}

/// The flags of an open (`creat` is `O_WRONLY|O_CREAT|O_TRUNC`; openat2's were copied from its
/// `open_how` by the kernel side).
pub fn open_flags(evt_type: &str, r: &SyscallRecord) -> u64 {
    match evt_type {
        "open" => r.args[1],
        "creat" => 0o1101,
        _ => r.args[2],
    }
}

/// The absolute path an open names: relative to its directory descriptor (openat, openat2) or
/// to the cwd.
pub fn opened_path(evt_type: &str, r: &SyscallRecord, proc: &Process) -> String {
    let raw = r.str1.as_deref().unwrap_or("");
    let dirfd = match evt_type {
        "openat" | "openat2" => r.args[0] as i32,
        _ => -100, // AT_FDCWD
    };
    let base = match dirfd {
        -100 => &proc.cwd,
        fd => proc.fds.get(&i64::from(fd)).unwrap_or(&proc.cwd),
    };
    render::absolute(base, raw)
}

/// The descriptor an event is about.
fn fd_view(evt_type: &str, r: &SyscallRecord, proc: &Process) -> FdView {
    let mut v = FdView::default();
    match evt_type {
        "open" | "openat" | "openat2" | "creat" => {
            let raw = r.str1.clone().unwrap_or_default();
            let flags = open_flags(evt_type, r);
            v.name = Some(opened_path(evt_type, r, proc));
            v.nameraw = Some(raw);
            v.num = Some(r.ret);
            let dir = flags & 0o200000 != 0;
            v.typechar = Some(if dir { "d" } else { "f" });
            v.kind = Some(if dir { "directory" } else { "file" });
            v.open_flags = Some(flags);
        }
        "connect" | "sendto" | "sendmsg" | "accept" | "accept4" | "bind" => {
            v.num = Some(if evt_type.starts_with("accept") {
                r.ret
            } else {
                r.args[0] as i32 as i64
            });
            match render::sockaddr(&r.sockaddr) {
                Some(SockAddr::Inet(ip, port)) => {
                    v.typechar = Some(if ip.is_ipv4() { "4" } else { "6" });
                    v.kind = Some(if ip.is_ipv4() { "ipv4" } else { "ipv6" });
                    v.remote = Some((ip, port));
                    v.l4proto = Some(if matches!(evt_type, "sendto" | "sendmsg") {
                        "udp"
                    } else {
                        "tcp"
                    });
                    v.name = Some(if ip.is_ipv4() {
                        format!("{ip}:{port}")
                    } else {
                        format!("[{ip}]:{port}")
                    });
                }
                Some(SockAddr::Unix(path)) => {
                    v.typechar = Some("u");
                    v.kind = Some("unix");
                    v.name = Some(path);
                }
                _ => {}
            }
        }
        "fchmod" | "fchdir" | "finit_module" | "dup" | "dup2" | "dup3" | "fcntl" | "close" => {
            let fd = r.args[0] as i32 as i64;
            v.num = Some(fd);
            if let Some(path) = proc.fds.get(&fd) {
                v.name = Some(path.clone());
                v.typechar = Some("f");
                v.kind = Some("file");
            }
        }
        _ => {}
    }
    if let Some(info) = &r.fd {
        let role = match evt_type {
            "connect" | "sendto" | "sendmsg" => Some(false),
            "accept" | "accept4" => Some(true),
            _ => None,
        };
        v.apply(info, role);
    }
    v
}

/// The fields this sensor can extract, by field id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    None,
    EvtType,
    EvtNum,
    EvtTime,
    EvtRes,
    EvtRawres,
    EvtArg,
    EvtArgs,
    EvtDir,
    EvtSource,
    EvtHostname,
    EvtIsOpenRead,
    EvtIsOpenWrite,
    EvtIsOpenExec,
    EvtIsOpenCreate,
    EvtFailed,
    ProcPid,
    ProcName,
    ProcExe,
    ProcExepath,
    ProcArgs,
    ProcCmdline,
    ProcCwd,
    ProcTty,
    ProcPpid,
    ProcPname,
    ProcPcmdline,
    ProcPexe,
    ProcPexepath,
    ProcAname,
    ProcAexe,
    ProcAexepath,
    ProcAcmdline,
    ProcApid,
    ProcSid,
    ProcSname,
    ProcVpid,
    ProcDuration,
    ProcIsExeWritable,
    ProcIsExeUpperLayer,
    ProcIsExeLowerLayer,
    ProcIsExeFromMemfd,
    ProcExeIno,
    ProcExeInoCtime,
    ProcExeInoMtime,
    ProcIsSidLeader,
    ProcIsVpgidLeader,
    ThreadTid,
    ThreadCapEffective,
    ThreadCapPermitted,
    UserUid,
    UserName,
    UserHomedir,
    UserShell,
    UserLoginuid,
    UserLoginname,
    GroupGid,
    GroupName,
    FdNum,
    FdName,
    FdNameraw,
    FdDirectory,
    FdFilename,
    FdTypechar,
    FdType,
    FdIp(Side),
    FdIpName(Side),
    FdPort(Side),
    FdL4proto,
    FdConnected,
    FdNameChanged,
    ContainerId,
    ContainerName,
    ContainerPrivileged,
    ContainerImage,
    ContainerImageId,
    ContainerImageRepository,
    ContainerImageTag,
    ContainerImageDigest,
    ContainerType,
    K8sPodName,
    K8sNsName,
    K8sPodUid,
}

fn field_table() -> &'static [Field] {
    static TABLE: OnceLock<Vec<Field>> = OnceLock::new();
    TABLE.get_or_init(|| {
        FIELDS
            .iter()
            .map(|info| match info.name {
                "evt.type" | "syscall.type" => Field::EvtType,
                "evt.num" => Field::EvtNum,
                "evt.time" | "evt.rawtime" => Field::EvtTime,
                "evt.res" => Field::EvtRes,
                "evt.rawres" => Field::EvtRawres,
                "evt.arg" => Field::EvtArg,
                "evt.args" => Field::EvtArgs,
                "evt.dir" => Field::EvtDir,
                "evt.source" => Field::EvtSource,
                "evt.hostname" => Field::EvtHostname,
                "evt.is_open_read" => Field::EvtIsOpenRead,
                "evt.is_open_write" => Field::EvtIsOpenWrite,
                "evt.is_open_exec" => Field::EvtIsOpenExec,
                "evt.is_open_create" => Field::EvtIsOpenCreate,
                "evt.failed" => Field::EvtFailed,
                "proc.pid" => Field::ProcPid,
                "proc.name" => Field::ProcName,
                "proc.exe" => Field::ProcExe,
                "proc.exepath" => Field::ProcExepath,
                "proc.args" => Field::ProcArgs,
                "proc.cmdline" => Field::ProcCmdline,
                "proc.cwd" => Field::ProcCwd,
                "proc.tty" => Field::ProcTty,
                "proc.ppid" => Field::ProcPpid,
                "proc.pname" => Field::ProcPname,
                "proc.pcmdline" => Field::ProcPcmdline,
                "proc.pexe" => Field::ProcPexe,
                "proc.pexepath" => Field::ProcPexepath,
                "proc.aname" => Field::ProcAname,
                "proc.aexe" => Field::ProcAexe,
                "proc.aexepath" => Field::ProcAexepath,
                "proc.acmdline" => Field::ProcAcmdline,
                "proc.apid" => Field::ProcApid,
                "proc.sid" => Field::ProcSid,
                "proc.sname" => Field::ProcSname,
                "proc.vpid" => Field::ProcVpid,
                "proc.duration" => Field::ProcDuration,
                "proc.is_exe_writable" => Field::ProcIsExeWritable,
                "proc.is_exe_upper_layer" => Field::ProcIsExeUpperLayer,
                "proc.is_exe_lower_layer" => Field::ProcIsExeLowerLayer,
                "proc.is_exe_from_memfd" => Field::ProcIsExeFromMemfd,
                "proc.exe_ino" => Field::ProcExeIno,
                "proc.exe_ino.ctime" => Field::ProcExeInoCtime,
                "proc.exe_ino.mtime" => Field::ProcExeInoMtime,
                "proc.is_sid_leader" => Field::ProcIsSidLeader,
                "proc.is_vpgid_leader" => Field::ProcIsVpgidLeader,
                "thread.tid" => Field::ThreadTid,
                "thread.cap_effective" => Field::ThreadCapEffective,
                "thread.cap_permitted" => Field::ThreadCapPermitted,
                "user.uid" => Field::UserUid,
                "user.name" => Field::UserName,
                "user.homedir" => Field::UserHomedir,
                "user.shell" => Field::UserShell,
                "user.loginuid" => Field::UserLoginuid,
                "user.loginname" => Field::UserLoginname,
                "group.gid" => Field::GroupGid,
                "group.name" => Field::GroupName,
                "fd.num" => Field::FdNum,
                "fd.name" => Field::FdName,
                "fd.nameraw" => Field::FdNameraw,
                "fd.directory" => Field::FdDirectory,
                "fd.filename" => Field::FdFilename,
                "fd.typechar" => Field::FdTypechar,
                "fd.type" => Field::FdType,
                "fd.ip" | "fd.net" => Field::FdIp(Side::Any),
                "fd.lip" | "fd.lnet" => Field::FdIp(Side::Local),
                "fd.rip" | "fd.rnet" => Field::FdIp(Side::Remote),
                "fd.sip" | "fd.snet" => Field::FdIp(Side::Server),
                "fd.cip" | "fd.cnet" => Field::FdIp(Side::Client),
                "fd.lip.name" => Field::FdIpName(Side::Local),
                "fd.rip.name" => Field::FdIpName(Side::Remote),
                "fd.sip.name" => Field::FdIpName(Side::Server),
                "fd.cip.name" => Field::FdIpName(Side::Client),
                "fd.port" => Field::FdPort(Side::Any),
                "fd.lport" => Field::FdPort(Side::Local),
                "fd.rport" => Field::FdPort(Side::Remote),
                "fd.sport" => Field::FdPort(Side::Server),
                "fd.cport" => Field::FdPort(Side::Client),
                "fd.l4proto" => Field::FdL4proto,
                "fd.connected" => Field::FdConnected,
                "fd.name_changed" => Field::FdNameChanged,
                "container.id" => Field::ContainerId,
                "container.name" => Field::ContainerName,
                "container.privileged" => Field::ContainerPrivileged,
                "container.image" => Field::ContainerImage,
                "container.image.id" => Field::ContainerImageId,
                "container.image.repository" => Field::ContainerImageRepository,
                "container.image.tag" => Field::ContainerImageTag,
                "container.image.digest" => Field::ContainerImageDigest,
                "container.type" => Field::ContainerType,
                "k8s.pod.name" => Field::K8sPodName,
                "k8s.ns.name" => Field::K8sNsName,
                "k8s.pod.uid" => Field::K8sPodUid,
                _ => Field::None,
            })
            .collect()
    })
}

/// Whether the sensor knows how to extract a field (for `--capture`).
pub fn extractable(id: FieldId) -> bool {
    field_table()[id.0 as usize] != Field::None
}

fn str_value<'x>(v: &'x str) -> Extracted<'x> {
    Extracted::One(Val::Str(Cow::Borrowed(v)))
}

fn string_value<'x>(v: String) -> Extracted<'x> {
    Extracted::One(Val::Str(Cow::Owned(v)))
}

fn int_value<'x>(v: i64) -> Extracted<'x> {
    Extracted::One(Val::Int(v))
}

fn bool_value<'x>(v: bool) -> Extracted<'x> {
    Extracted::One(Val::Bool(v))
}

fn or_missing<'x>(v: Option<Extracted<'x>>) -> Extracted<'x> {
    v.unwrap_or(Extracted::Missing)
}

/// None, one or several values (both ends of a connection for `fd.ip`).
fn values<'x>(vs: impl Iterator<Item = Val<'x>>) -> Extracted<'x> {
    let mut vs: Vec<Val<'x>> = vs.collect();
    match vs.len() {
        0 => Extracted::Missing,
        1 => Extracted::One(vs.pop().expect("one")),
        _ => Extracted::Many(vs),
    }
}

impl Event for SensorEvent<'_> {
    fn event_type(&self) -> Option<usize> {
        self.evt_type_index
    }

    fn extract(&self, field: &ResolvedField) -> Extracted<'_> {
        let p = self.proc;
        let index = match field.arg {
            FieldArg::Index(i) => Some(i),
            _ => None,
        };
        let is_open = self.fd.open_flags.is_some();
        match field_table()[field.id.0 as usize] {
            Field::None => Extracted::Missing,
            Field::EvtType => str_value(self.evt_type),
            Field::EvtNum => int_value(self.num as i64),
            Field::EvtTime => int_value(self.time_ns),
            Field::EvtRes => string_value(render::result(self.ret())),
            Field::EvtRawres => int_value(self.ret()),
            Field::EvtArg => match &field.arg {
                FieldArg::Key(k) => or_missing(self.arg(k).map(|v| Extracted::One(v.into_owned()))),
                _ => Extracted::Missing,
            },
            Field::EvtArgs => string_value(self.args_text()),
            Field::EvtDir => str_value("<"),
            Field::EvtSource => str_value("syscall"),
            Field::EvtHostname => str_value(self.hostname),
            Field::EvtIsOpenRead => bool_value(self.fd.open_flags.is_some_and(render::is_read)),
            Field::EvtIsOpenWrite => bool_value(self.fd.open_flags.is_some_and(render::is_write)),
            Field::EvtIsOpenExec => bool_value(false),
            Field::EvtIsOpenCreate => {
                bool_value(self.fd.open_flags.is_some_and(|f| f & 0o100 != 0))
            }
            Field::EvtFailed => bool_value(self.ret() < 0),
            Field::ProcPid => int_value(i64::from(p.pid)),
            Field::ProcName => str_value(&p.name),
            Field::ProcExe => str_value(&p.exe),
            Field::ProcExepath => str_value(&p.exepath),
            Field::ProcArgs => string_value(p.args_joined()),
            Field::ProcCmdline => string_value(p.cmdline()),
            Field::ProcCwd => str_value(&p.cwd),
            Field::ProcTty => int_value(i64::from(p.tty)),
            Field::ProcPpid => int_value(i64::from(p.ppid)),
            Field::ProcPname => or_missing(self.ancestor(1).map(|a| str_value(&a.name))),
            Field::ProcPcmdline => or_missing(self.ancestor(1).map(|a| string_value(a.cmdline()))),
            Field::ProcPexe => or_missing(self.ancestor(1).map(|a| str_value(&a.exe))),
            Field::ProcPexepath => or_missing(self.ancestor(1).map(|a| str_value(&a.exepath))),
            Field::ProcAname
            | Field::ProcAexe
            | Field::ProcAexepath
            | Field::ProcAcmdline
            | Field::ProcApid => {
                let kind = field_table()[field.id.0 as usize];
                let value = |a: &Process| -> Val<'static> {
                    match kind {
                        Field::ProcAname => Val::Str(Cow::Owned(a.name.clone())),
                        Field::ProcAexe => Val::Str(Cow::Owned(a.exe.clone())),
                        Field::ProcAexepath => Val::Str(Cow::Owned(a.exepath.clone())),
                        Field::ProcAcmdline => Val::Str(Cow::Owned(a.cmdline())),
                        _ => Val::Int(i64::from(a.pid)),
                    }
                };
                match index {
                    Some(level) => {
                        or_missing(self.ancestor(level).map(|a| Extracted::One(value(a))))
                    }
                    None => {
                        let all: Vec<Val<'_>> =
                            self.all_ancestors().iter().map(|a| value(a)).collect();
                        if all.is_empty() {
                            Extracted::Missing
                        } else {
                            Extracted::Many(all)
                        }
                    }
                }
            }
            Field::ProcSid => int_value(i64::from(p.sid)),
            Field::ProcSname => or_missing(self.table.get(p.sid).map(|l| str_value(&l.name))),
            Field::ProcVpid => int_value(i64::from(p.vpid)),
            Field::ProcDuration => {
                let now = match &self.kind {
                    Kind::Syscall(r) => r.header.ts_boot_ns,
                    Kind::Exec(e) => e.header.ts_boot_ns,
                };
                if p.start_ns == 0 {
                    Extracted::Missing
                } else {
                    int_value(now.saturating_sub(p.start_ns) as i64)
                }
            }
            Field::ProcIsExeWritable => bool_value(p.exe_flags & EXE_WRITABLE != 0),
            Field::ProcIsExeUpperLayer => bool_value(p.exe_flags & EXE_UPPER_LAYER != 0),
            Field::ProcIsExeLowerLayer => bool_value(p.exe_flags & EXE_LOWER_LAYER != 0),
            Field::ProcIsExeFromMemfd => bool_value(p.exe_flags & EXE_FROM_MEMFD != 0),
            Field::ProcExeIno => int_value(p.exe_ino as i64),
            Field::ProcExeInoCtime => int_value(p.exe_ctime_ns),
            Field::ProcExeInoMtime => int_value(p.exe_mtime_ns),
            Field::ProcIsSidLeader => bool_value(p.sid == p.pid),
            Field::ProcIsVpgidLeader => Extracted::Missing,
            Field::ThreadTid => match &self.kind {
                Kind::Syscall(r) => int_value(i64::from(r.header.tid)),
                Kind::Exec(e) => int_value(i64::from(e.header.tid)),
            },
            Field::ThreadCapEffective => string_value(render::capabilities(p.cap_effective)),
            Field::ThreadCapPermitted => string_value(render::capabilities(p.cap_permitted)),
            Field::UserUid => int_value(i64::from(p.uid)),
            Field::UserName => or_missing(self.users_name(p.uid).map(str_value)),
            Field::UserHomedir => {
                or_missing(self.users.peek_user(p.uid).map(|u| str_value(&u.home)))
            }
            Field::UserShell => {
                or_missing(self.users.peek_user(p.uid).map(|u| str_value(&u.shell)))
            }
            Field::UserLoginuid => int_value(p.loginuid),
            Field::UserLoginname => {
                if p.loginuid < 0 {
                    Extracted::Missing
                } else {
                    or_missing(self.users_name(p.loginuid as u32).map(str_value))
                }
            }
            Field::GroupGid => int_value(i64::from(p.gid)),
            Field::GroupName => or_missing(self.users.peek_group(p.gid).map(str_value)),
            Field::FdNum => or_missing(self.fd.num.map(int_value)),
            Field::FdName => or_missing(self.fd.name.as_deref().map(str_value)),
            Field::FdNameraw => or_missing(self.fd.nameraw.as_deref().map(str_value)),
            Field::FdDirectory if is_open => or_missing(self.fd.name.as_deref().map(|n| {
                str_value(
                    n.rsplit_once('/')
                        .map_or("/", |(d, _)| if d.is_empty() { "/" } else { d }),
                )
            })),
            Field::FdFilename if is_open => or_missing(
                self.fd
                    .name
                    .as_deref()
                    .map(|n| str_value(n.rsplit('/').next().unwrap_or(n))),
            ),
            Field::FdDirectory | Field::FdFilename => Extracted::Missing,
            Field::FdTypechar => or_missing(self.fd.typechar.map(str_value)),
            Field::FdType => or_missing(self.fd.kind.map(str_value)),
            Field::FdIp(side) => values(self.fd.ends(side).into_iter().map(|(ip, _)| Val::Ip(ip))),
            Field::FdIpName(side) => match self.names {
                Some(names) => values(
                    self.fd
                        .ends(side)
                        .iter()
                        .flat_map(|(ip, _)| names.of(ip))
                        .map(|n| Val::Str(Cow::Owned(n))),
                ),
                None => Extracted::Missing,
            },
            Field::FdPort(side) => values(
                self.fd
                    .ends(side)
                    .into_iter()
                    .map(|(_, port)| Val::Int(i64::from(port))),
            ),
            Field::FdL4proto => or_missing(self.fd.l4proto.map(str_value)),
            Field::FdConnected => or_missing(
                self.fd
                    .remote
                    .map(|_| bool_value(self.ret() >= 0 || self.ret() == -115)),
            ),
            Field::FdNameChanged => bool_value(false),
            Field::ContainerId => str_value(p.container_id.as_deref().unwrap_or("host")),
            // On the host Falco names the container `host`; in a container, the rest is what
            // the runtime answered, missing until it has.
            Field::ContainerName if p.container_id.is_none() => str_value("host"),
            Field::ContainerType if p.container_id.is_none() => str_value("host"),
            Field::ContainerName => or_missing(self.container.map(|c| str_value(&c.name))),
            Field::ContainerType => or_missing(self.container.map(|c| str_value(c.runtime))),
            Field::ContainerPrivileged => {
                or_missing(self.container.and_then(|c| c.privileged).map(bool_value))
            }
            Field::ContainerImage => or_missing(self.container.map(|c| str_value(&c.image))),
            Field::ContainerImageId => or_missing(
                self.container
                    .and_then(|c| c.image_id.as_deref())
                    .map(str_value),
            ),
            Field::ContainerImageRepository => {
                or_missing(self.container.map(|c| str_value(&c.repository)))
            }
            Field::ContainerImageTag => {
                or_missing(self.container.and_then(|c| c.tag.as_deref()).map(str_value))
            }
            Field::ContainerImageDigest => or_missing(
                self.container
                    .and_then(|c| c.digest.as_deref())
                    .map(str_value),
            ),
            Field::K8sPodName => or_missing(
                self.container
                    .and_then(|c| c.pod_name.as_deref())
                    .map(str_value),
            ),
            Field::K8sNsName => or_missing(
                self.container
                    .and_then(|c| c.pod_namespace.as_deref())
                    .map(str_value),
            ),
            Field::K8sPodUid => or_missing(
                self.container
                    .and_then(|c| c.pod_uid.as_deref())
                    .map(str_value),
            ),
        }
    }
}

impl SensorEvent<'_> {
    fn users_name(&self, uid: u32) -> Option<&str> {
        self.users.peek_user(uid).map(|u| u.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::records::{FdInfo, FdKind};

    fn v4(a: &str, port: u16) -> Option<(std::net::IpAddr, u16)> {
        Some((a.parse().unwrap(), port))
    }

    fn socket(local: u16, remote: u16, accepted: bool) -> FdInfo {
        FdInfo {
            kind: FdKind::Ipv4,
            l4proto: 6,
            accepted,
            local: v4("10.0.0.1", local),
            remote: v4("10.0.0.2", remote),
        }
    }

    #[test]
    fn a_connected_socket_is_named_client_to_server() {
        let mut v = FdView::default();
        v.apply(&socket(45000, 4444, false), None);
        assert_eq!(v.kind, Some("ipv4"));
        assert_eq!(v.typechar, Some("4"));
        assert_eq!(v.l4proto, Some("tcp"));
        assert_eq!(v.name.as_deref(), Some("10.0.0.1:45000->10.0.0.2:4444"));
        assert_eq!(v.ends(Side::Server), vec![v4("10.0.0.2", 4444).unwrap()]);
        assert_eq!(v.ends(Side::Client), vec![v4("10.0.0.1", 45000).unwrap()]);
        assert_eq!(v.ends(Side::Any).len(), 2);
    }

    #[test]
    fn an_accepted_or_listening_side_is_the_server() {
        let mut accepted = FdView::default();
        accepted.apply(&socket(50000, 40000, true), None);
        assert_eq!(
            accepted.name.as_deref(),
            Some("10.0.0.2:40000->10.0.0.1:50000")
        );
        // Seen only at a dup: the end on the low, non-ephemeral port serves.
        let mut bind_shell = FdView::default();
        bind_shell.apply(&socket(4444, 51000, false), None);
        assert_eq!(
            bind_shell.ends(Side::Server),
            vec![v4("10.0.0.1", 4444).unwrap()]
        );
        assert_eq!(bind_shell.ends(Side::Local), bind_shell.ends(Side::Server));
        // connect says the local end is the client, whatever the ports.
        let mut connect = FdView::default();
        connect.apply(&socket(0, 4444, false), Some(false));
        assert_eq!(
            connect.ends(Side::Server),
            vec![v4("10.0.0.2", 4444).unwrap()]
        );
    }

    #[test]
    fn pipes_and_files_get_their_type_and_no_addresses() {
        for (kind, name) in [
            (FdKind::Pipe, "pipe"),
            (FdKind::File, "file"),
            (FdKind::Unix, "unix"),
            (FdKind::Memfd, "memfd"),
        ] {
            let mut v = FdView::default();
            let info = FdInfo {
                kind,
                l4proto: 0,
                accepted: false,
                local: None,
                remote: None,
            };
            v.apply(&info, None);
            assert_eq!(v.kind, Some(name));
            assert!(v.ends(Side::Any).is_empty());
        }
    }
}
