//! A kernel record seen through the process table: the engine's [`Event`] for live capture.

use std::borrow::Cow;
use std::sync::OnceLock;

use peregrine_engine::eval::{Event, Extracted, Val};
use peregrine_engine::fields::{FieldArg, FieldId, ResolvedField, FIELDS};

use crate::bpf::records::{
    ExecRecord, Header, SyscallRecord, EXE_FROM_MEMFD, EXE_LOWER_LAYER, EXE_UPPER_LAYER,
    EXE_WRITABLE,
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
        match &self.kind {
            Kind::Exec(e) => exec_arg(e, name),
            Kind::Syscall(r) => self.syscall_arg(r, name),
        }
    }

    /// A syscall's argument: which register or string of the record holds it depends on the
    /// syscall, as Falco's event table names them; results and tuples come from what the
    /// record says happened.
    fn syscall_arg(&self, r: &'a SyscallRecord, name: &str) -> Option<Val<'_>> {
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

/// An exec's argument: an exec record carries only what execve's exit event shows.
fn exec_arg<'x>(e: &'x ExecRecord, name: &str) -> Option<Val<'x>> {
    match name {
        "flags" => Some(text(render::exe_flags(e.exe_flags))),
        "res" => Some(Val::Int(0)),
        "filename" | "exe" => Some(Val::Str(Cow::Borrowed(&e.filename))),
        "args" => Some(text(
            e.argv.iter().skip(1).cloned().collect::<Vec<_>>().join(" "),
        )),
        _ => None,
    }
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

/// The fields this sensor can extract, by family. Each family is read from one part of the
/// event (the record, the process, its ancestors, the user tables, the descriptor, the
/// container), and `extract` hands each to the method that reads that part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    None,
    Evt(EvtField),
    Proc(ProcField),
    Ancestor(AncestorField),
    User(UserField),
    Fd(FdField),
    Container(ContainerField),
}

/// `evt.*`: the record itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EvtField {
    Type,
    Num,
    Time,
    Res,
    Rawres,
    Arg,
    Args,
    Dir,
    Source,
    Hostname,
    IsOpenRead,
    IsOpenWrite,
    IsOpenExec,
    IsOpenCreate,
    Failed,
}

/// `proc.*` and `thread.*` of the process and its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProcField {
    Pid,
    Name,
    Exe,
    Exepath,
    Args,
    Cmdline,
    Cwd,
    Tty,
    Ppid,
    Pname,
    Pcmdline,
    Pexe,
    Pexepath,
    Sid,
    Sname,
    Vpid,
    Duration,
    IsExeWritable,
    IsExeUpperLayer,
    IsExeLowerLayer,
    IsExeFromMemfd,
    ExeIno,
    ExeInoCtime,
    ExeInoMtime,
    IsSidLeader,
    IsVpgidLeader,
    ThreadTid,
    ThreadCapEffective,
    ThreadCapPermitted,
}

/// `proc.a*`: one ancestor (`proc.aname[2]`) or all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AncestorField {
    Name,
    Exe,
    Exepath,
    Cmdline,
    Pid,
}

/// `user.*` and `group.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserField {
    Uid,
    Name,
    Homedir,
    Shell,
    Loginuid,
    Loginname,
    GroupGid,
    GroupName,
}

/// `fd.*`: the descriptor the event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FdField {
    Num,
    Name,
    Nameraw,
    Directory,
    Filename,
    Typechar,
    Type,
    Ip(Side),
    IpName(Side),
    Port(Side),
    L4proto,
    Connected,
    NameChanged,
}

/// `container.*` and `k8s.*`: what the runtime said about the process's container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContainerField {
    Id,
    Name,
    Privileged,
    Image,
    ImageId,
    Repository,
    Tag,
    Digest,
    Type,
    PodName,
    NsName,
    PodUid,
}

/// Falco's field names and the field each one is here; aliases (`evt.rawtime`, `fd.net`) are
/// rows of their own. A field of the engine's table missing here is one the sensor cannot
/// extract.
const FIELD_NAMES: &[(&str, Field)] = {
    use AncestorField as A;
    use ContainerField as C;
    use EvtField as E;
    use FdField as D;
    use ProcField as P;
    use UserField as U;
    &[
        ("evt.type", Field::Evt(E::Type)),
        ("syscall.type", Field::Evt(E::Type)),
        ("evt.num", Field::Evt(E::Num)),
        ("evt.time", Field::Evt(E::Time)),
        ("evt.rawtime", Field::Evt(E::Time)),
        ("evt.res", Field::Evt(E::Res)),
        ("evt.rawres", Field::Evt(E::Rawres)),
        ("evt.arg", Field::Evt(E::Arg)),
        ("evt.args", Field::Evt(E::Args)),
        ("evt.dir", Field::Evt(E::Dir)),
        ("evt.source", Field::Evt(E::Source)),
        ("evt.hostname", Field::Evt(E::Hostname)),
        ("evt.is_open_read", Field::Evt(E::IsOpenRead)),
        ("evt.is_open_write", Field::Evt(E::IsOpenWrite)),
        ("evt.is_open_exec", Field::Evt(E::IsOpenExec)),
        ("evt.is_open_create", Field::Evt(E::IsOpenCreate)),
        ("evt.failed", Field::Evt(E::Failed)),
        ("proc.pid", Field::Proc(P::Pid)),
        ("proc.name", Field::Proc(P::Name)),
        ("proc.exe", Field::Proc(P::Exe)),
        ("proc.exepath", Field::Proc(P::Exepath)),
        ("proc.args", Field::Proc(P::Args)),
        ("proc.cmdline", Field::Proc(P::Cmdline)),
        ("proc.cwd", Field::Proc(P::Cwd)),
        ("proc.tty", Field::Proc(P::Tty)),
        ("proc.ppid", Field::Proc(P::Ppid)),
        ("proc.pname", Field::Proc(P::Pname)),
        ("proc.pcmdline", Field::Proc(P::Pcmdline)),
        ("proc.pexe", Field::Proc(P::Pexe)),
        ("proc.pexepath", Field::Proc(P::Pexepath)),
        ("proc.aname", Field::Ancestor(A::Name)),
        ("proc.aexe", Field::Ancestor(A::Exe)),
        ("proc.aexepath", Field::Ancestor(A::Exepath)),
        ("proc.acmdline", Field::Ancestor(A::Cmdline)),
        ("proc.apid", Field::Ancestor(A::Pid)),
        ("proc.sid", Field::Proc(P::Sid)),
        ("proc.sname", Field::Proc(P::Sname)),
        ("proc.vpid", Field::Proc(P::Vpid)),
        ("proc.duration", Field::Proc(P::Duration)),
        ("proc.is_exe_writable", Field::Proc(P::IsExeWritable)),
        ("proc.is_exe_upper_layer", Field::Proc(P::IsExeUpperLayer)),
        ("proc.is_exe_lower_layer", Field::Proc(P::IsExeLowerLayer)),
        ("proc.is_exe_from_memfd", Field::Proc(P::IsExeFromMemfd)),
        ("proc.exe_ino", Field::Proc(P::ExeIno)),
        ("proc.exe_ino.ctime", Field::Proc(P::ExeInoCtime)),
        ("proc.exe_ino.mtime", Field::Proc(P::ExeInoMtime)),
        ("proc.is_sid_leader", Field::Proc(P::IsSidLeader)),
        ("proc.is_vpgid_leader", Field::Proc(P::IsVpgidLeader)),
        ("thread.tid", Field::Proc(P::ThreadTid)),
        ("thread.cap_effective", Field::Proc(P::ThreadCapEffective)),
        ("thread.cap_permitted", Field::Proc(P::ThreadCapPermitted)),
        ("user.uid", Field::User(U::Uid)),
        ("user.name", Field::User(U::Name)),
        ("user.homedir", Field::User(U::Homedir)),
        ("user.shell", Field::User(U::Shell)),
        ("user.loginuid", Field::User(U::Loginuid)),
        ("user.loginname", Field::User(U::Loginname)),
        ("group.gid", Field::User(U::GroupGid)),
        ("group.name", Field::User(U::GroupName)),
        ("fd.num", Field::Fd(D::Num)),
        ("fd.name", Field::Fd(D::Name)),
        ("fd.nameraw", Field::Fd(D::Nameraw)),
        ("fd.directory", Field::Fd(D::Directory)),
        ("fd.filename", Field::Fd(D::Filename)),
        ("fd.typechar", Field::Fd(D::Typechar)),
        ("fd.type", Field::Fd(D::Type)),
        ("fd.ip", Field::Fd(D::Ip(Side::Any))),
        ("fd.net", Field::Fd(D::Ip(Side::Any))),
        ("fd.lip", Field::Fd(D::Ip(Side::Local))),
        ("fd.lnet", Field::Fd(D::Ip(Side::Local))),
        ("fd.rip", Field::Fd(D::Ip(Side::Remote))),
        ("fd.rnet", Field::Fd(D::Ip(Side::Remote))),
        ("fd.sip", Field::Fd(D::Ip(Side::Server))),
        ("fd.snet", Field::Fd(D::Ip(Side::Server))),
        ("fd.cip", Field::Fd(D::Ip(Side::Client))),
        ("fd.cnet", Field::Fd(D::Ip(Side::Client))),
        ("fd.lip.name", Field::Fd(D::IpName(Side::Local))),
        ("fd.rip.name", Field::Fd(D::IpName(Side::Remote))),
        ("fd.sip.name", Field::Fd(D::IpName(Side::Server))),
        ("fd.cip.name", Field::Fd(D::IpName(Side::Client))),
        ("fd.port", Field::Fd(D::Port(Side::Any))),
        ("fd.lport", Field::Fd(D::Port(Side::Local))),
        ("fd.rport", Field::Fd(D::Port(Side::Remote))),
        ("fd.sport", Field::Fd(D::Port(Side::Server))),
        ("fd.cport", Field::Fd(D::Port(Side::Client))),
        ("fd.l4proto", Field::Fd(D::L4proto)),
        ("fd.connected", Field::Fd(D::Connected)),
        ("fd.name_changed", Field::Fd(D::NameChanged)),
        ("container.id", Field::Container(C::Id)),
        ("container.name", Field::Container(C::Name)),
        ("container.privileged", Field::Container(C::Privileged)),
        ("container.image", Field::Container(C::Image)),
        ("container.image.id", Field::Container(C::ImageId)),
        (
            "container.image.repository",
            Field::Container(C::Repository),
        ),
        ("container.image.tag", Field::Container(C::Tag)),
        ("container.image.digest", Field::Container(C::Digest)),
        ("container.type", Field::Container(C::Type)),
        ("k8s.pod.name", Field::Container(C::PodName)),
        ("k8s.ns.name", Field::Container(C::NsName)),
        ("k8s.pod.uid", Field::Container(C::PodUid)),
    ]
};

/// What each of the engine's fields is here, indexed by field id: looked up once, so that
/// `extract` indexes instead of comparing names.
fn field_table() -> &'static [Field] {
    static TABLE: OnceLock<Vec<Field>> = OnceLock::new();
    TABLE.get_or_init(|| FIELDS.iter().map(|info| field_named(info.name)).collect())
}

/// The field `name` is here, `Field::None` for one the sensor cannot extract.
fn field_named(name: &str) -> Field {
    FIELD_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(Field::None, |&(_, f)| f)
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
        match field_table()[field.id.0 as usize] {
            Field::None => Extracted::Missing,
            Field::Evt(f) => self.evt_field(f, &field.arg),
            Field::Proc(f) => self.proc_field(f),
            Field::Ancestor(f) => self.ancestor_field(f, &field.arg),
            Field::User(f) => self.user_field(f),
            Field::Fd(f) => self.fd_field(f),
            Field::Container(f) => self.container_field(f),
        }
    }
}

impl<'a> SensorEvent<'a> {
    /// The header of the record, whichever kind it is.
    fn header(&self) -> &'a Header {
        match &self.kind {
            Kind::Syscall(r) => &r.header,
            Kind::Exec(e) => &e.header,
        }
    }

    fn evt_field(&self, f: EvtField, arg: &FieldArg) -> Extracted<'_> {
        let open_flags = self.fd.open_flags;
        match f {
            EvtField::Type => str_value(self.evt_type),
            EvtField::Num => int_value(self.num as i64),
            EvtField::Time => int_value(self.time_ns),
            EvtField::Res => string_value(render::result(self.ret())),
            EvtField::Rawres => int_value(self.ret()),
            EvtField::Arg => match arg {
                FieldArg::Key(k) => or_missing(self.arg(k).map(|v| Extracted::One(v.into_owned()))),
                _ => Extracted::Missing,
            },
            EvtField::Args => string_value(self.args_text()),
            EvtField::Dir => str_value("<"),
            EvtField::Source => str_value("syscall"),
            EvtField::Hostname => str_value(self.hostname),
            EvtField::IsOpenRead => bool_value(open_flags.is_some_and(render::is_read)),
            EvtField::IsOpenWrite => bool_value(open_flags.is_some_and(render::is_write)),
            EvtField::IsOpenExec => bool_value(false),
            EvtField::IsOpenCreate => bool_value(open_flags.is_some_and(|f| f & 0o100 != 0)),
            EvtField::Failed => bool_value(self.ret() < 0),
        }
    }

    fn proc_field(&self, f: ProcField) -> Extracted<'_> {
        let p = self.proc;
        match f {
            ProcField::Pid => int_value(i64::from(p.pid)),
            ProcField::Name => str_value(&p.name),
            ProcField::Exe => str_value(&p.exe),
            ProcField::Exepath => str_value(&p.exepath),
            ProcField::Args => string_value(p.args_joined()),
            ProcField::Cmdline => string_value(p.cmdline()),
            ProcField::Cwd => str_value(&p.cwd),
            ProcField::Tty => int_value(i64::from(p.tty)),
            ProcField::Ppid => int_value(i64::from(p.ppid)),
            ProcField::Pname => or_missing(self.ancestor(1).map(|a| str_value(&a.name))),
            ProcField::Pcmdline => or_missing(self.ancestor(1).map(|a| string_value(a.cmdline()))),
            ProcField::Pexe => or_missing(self.ancestor(1).map(|a| str_value(&a.exe))),
            ProcField::Pexepath => or_missing(self.ancestor(1).map(|a| str_value(&a.exepath))),
            ProcField::Sid => int_value(i64::from(p.sid)),
            ProcField::Sname => or_missing(self.table.get(p.sid).map(|l| str_value(&l.name))),
            ProcField::Vpid => int_value(i64::from(p.vpid)),
            // A process read from /proc, not seen at its exec or fork, has no start time.
            ProcField::Duration if p.start_ns == 0 => Extracted::Missing,
            ProcField::Duration => {
                int_value(self.header().ts_boot_ns.saturating_sub(p.start_ns) as i64)
            }
            ProcField::IsExeWritable => bool_value(p.exe_flags & EXE_WRITABLE != 0),
            ProcField::IsExeUpperLayer => bool_value(p.exe_flags & EXE_UPPER_LAYER != 0),
            ProcField::IsExeLowerLayer => bool_value(p.exe_flags & EXE_LOWER_LAYER != 0),
            ProcField::IsExeFromMemfd => bool_value(p.exe_flags & EXE_FROM_MEMFD != 0),
            ProcField::ExeIno => int_value(p.exe_ino as i64),
            ProcField::ExeInoCtime => int_value(p.exe_ctime_ns),
            ProcField::ExeInoMtime => int_value(p.exe_mtime_ns),
            ProcField::IsSidLeader => bool_value(p.sid == p.pid),
            ProcField::IsVpgidLeader => Extracted::Missing,
            ProcField::ThreadTid => int_value(i64::from(self.header().tid)),
            ProcField::ThreadCapEffective => string_value(render::capabilities(p.cap_effective)),
            ProcField::ThreadCapPermitted => string_value(render::capabilities(p.cap_permitted)),
        }
    }

    /// One ancestor's value when the field names a level (`proc.aname[2]`; level 0 is the
    /// process itself), every ancestor's otherwise, nearest first.
    fn ancestor_field(&self, f: AncestorField, arg: &FieldArg) -> Extracted<'_> {
        let value = |a: &Process| -> Val<'static> {
            match f {
                AncestorField::Name => Val::Str(Cow::Owned(a.name.clone())),
                AncestorField::Exe => Val::Str(Cow::Owned(a.exe.clone())),
                AncestorField::Exepath => Val::Str(Cow::Owned(a.exepath.clone())),
                AncestorField::Cmdline => Val::Str(Cow::Owned(a.cmdline())),
                AncestorField::Pid => Val::Int(i64::from(a.pid)),
            }
        };
        if let FieldArg::Index(level) = *arg {
            return or_missing(self.ancestor(level).map(|a| Extracted::One(value(a))));
        }
        let all: Vec<Val<'_>> = self.all_ancestors().iter().map(|a| value(a)).collect();
        if all.is_empty() {
            Extracted::Missing
        } else {
            Extracted::Many(all)
        }
    }

    fn user_field(&self, f: UserField) -> Extracted<'_> {
        let p = self.proc;
        match f {
            UserField::Uid => int_value(i64::from(p.uid)),
            UserField::Name => or_missing(self.users_name(p.uid).map(str_value)),
            UserField::Homedir => {
                or_missing(self.users.peek_user(p.uid).map(|u| str_value(&u.home)))
            }
            UserField::Shell => {
                or_missing(self.users.peek_user(p.uid).map(|u| str_value(&u.shell)))
            }
            UserField::Loginuid => int_value(p.loginuid),
            // -1: no login session (a daemon's processes).
            UserField::Loginname if p.loginuid < 0 => Extracted::Missing,
            UserField::Loginname => or_missing(self.users_name(p.loginuid as u32).map(str_value)),
            UserField::GroupGid => int_value(i64::from(p.gid)),
            UserField::GroupName => or_missing(self.users.peek_group(p.gid).map(str_value)),
        }
    }

    fn fd_field(&self, f: FdField) -> Extracted<'_> {
        let fd = &self.fd;
        // `fd.directory` and `fd.filename` are given for opens only.
        let is_open = fd.open_flags.is_some();
        match f {
            FdField::Num => or_missing(fd.num.map(int_value)),
            FdField::Name => or_missing(fd.name.as_deref().map(str_value)),
            FdField::Nameraw => or_missing(fd.nameraw.as_deref().map(str_value)),
            FdField::Directory if is_open => or_missing(fd.name.as_deref().map(|n| {
                str_value(
                    n.rsplit_once('/')
                        .map_or("/", |(d, _)| if d.is_empty() { "/" } else { d }),
                )
            })),
            FdField::Filename if is_open => or_missing(
                fd.name
                    .as_deref()
                    .map(|n| str_value(n.rsplit('/').next().unwrap_or(n))),
            ),
            FdField::Directory | FdField::Filename => Extracted::Missing,
            FdField::Typechar => or_missing(fd.typechar.map(str_value)),
            FdField::Type => or_missing(fd.kind.map(str_value)),
            FdField::Ip(side) => values(fd.ends(side).into_iter().map(|(ip, _)| Val::Ip(ip))),
            FdField::IpName(side) => match self.names {
                Some(names) => values(
                    fd.ends(side)
                        .iter()
                        .flat_map(|(ip, _)| names.of(ip))
                        .map(|n| Val::Str(Cow::Owned(n))),
                ),
                None => Extracted::Missing,
            },
            FdField::Port(side) => values(
                fd.ends(side)
                    .into_iter()
                    .map(|(_, port)| Val::Int(i64::from(port))),
            ),
            FdField::L4proto => or_missing(fd.l4proto.map(str_value)),
            // -115 is EINPROGRESS: a non-blocking connect under way counts as connected.
            FdField::Connected => or_missing(
                fd.remote
                    .map(|_| bool_value(self.ret() >= 0 || self.ret() == -115)),
            ),
            FdField::NameChanged => bool_value(false),
        }
    }

    fn container_field(&self, f: ContainerField) -> Extracted<'_> {
        let on_host = self.proc.container_id.is_none();
        let info = self.container;
        // A part of the runtime's answer that it may leave out.
        let optional = |part: fn(&ContainerInfo) -> Option<&str>| {
            or_missing(info.and_then(part).map(str_value))
        };
        match f {
            ContainerField::Id => str_value(self.proc.container_id.as_deref().unwrap_or("host")),
            // On the host Falco names the container `host`; in a container, the rest is what
            // the runtime answered, missing until it has.
            ContainerField::Name | ContainerField::Type if on_host => str_value("host"),
            ContainerField::Name => or_missing(info.map(|c| str_value(&c.name))),
            ContainerField::Type => or_missing(info.map(|c| str_value(c.runtime))),
            ContainerField::Privileged => {
                or_missing(info.and_then(|c| c.privileged).map(bool_value))
            }
            ContainerField::Image => or_missing(info.map(|c| str_value(&c.image))),
            ContainerField::ImageId => optional(|c| c.image_id.as_deref()),
            ContainerField::Repository => or_missing(info.map(|c| str_value(&c.repository))),
            ContainerField::Tag => optional(|c| c.tag.as_deref()),
            ContainerField::Digest => optional(|c| c.digest.as_deref()),
            ContainerField::PodName => optional(|c| c.pod_name.as_deref()),
            ContainerField::NsName => optional(|c| c.pod_namespace.as_deref()),
            ContainerField::PodUid => optional(|c| c.pod_uid.as_deref()),
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
    fn every_name_in_the_field_table_is_an_engine_field_named_once() {
        let mut seen = std::collections::HashSet::new();
        for (name, _) in FIELD_NAMES {
            assert!(
                FIELDS.iter().any(|f| f.name == *name),
                "{name} is no field of the engine's"
            );
            assert!(seen.insert(name), "{name} is in the table twice");
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
