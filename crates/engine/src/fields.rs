//! The fields a condition or an output may name, typed as libsinsp types them.
//!
//! Covers every field the three Falco rules files use (108 references) and the other common
//! `evt`, `proc`, `thread`, `user`, `group`, `fd`, `fs.path`, `container` and `k8s` fields, so
//! users' own rules load too. A name not here is an error, as in Falco.

use std::fmt;

/// How a field's values compare (libsinsp's `ppm_param_type`, folded to what matters here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// CHARBUF / FSPATH: byte-wise string comparison.
    Str,
    /// Any integer (INT*, UINT*, PORT, RELTIME, ABSTIME in nanoseconds).
    Int,
    Bool,
    /// IPADDR: compared as addresses.
    Ip,
    /// IPNET: the event's address, compared by membership in the right side's networks.
    Net,
    /// BYTEBUF: raw bytes (`bcontains`, `bstartswith` take hex).
    Bytes,
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldType::Str => "string",
            FieldType::Int => "numeric",
            FieldType::Bool => "boolean",
            FieldType::Ip => "IP address",
            FieldType::Net => "IP network",
            FieldType::Bytes => "byte buffer",
        })
    }
}

/// What may follow the field name in brackets (or, for `evt.arg`, after a dot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgSpec {
    None,
    /// `[N]`, optional: without it the field yields several values (`proc.aname`).
    OptionalIndex,
    /// `[N]` or `[name]`, required (`evt.arg[0]`, `evt.arg.flags`).
    Required,
    /// `[key]`, optional (`proc.env`, `proc.env[HOME]`).
    OptionalKey,
}

/// One field's description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldInfo {
    pub name: &'static str,
    pub ty: FieldType,
    pub arg: ArgSpec,
    /// May only be used in conditions (libsinsp's `EPF_FILTER_ONLY`).
    pub filter_only: bool,
    /// May not appear on the right side or inside a transformer (`EPF_NO_RHS`, `EPF_NO_TRANSFORMER`).
    pub no_rhs: bool,
    /// Deprecated: using it gives a warning.
    pub deprecated: bool,
    /// A list (libsinsp's `EPF_IS_LIST`): without an index, `in` holds when every value is in
    /// the set (`intersects` when one is). The other multi-valued fields are the ancestors
    /// (`proc.aname`, ...), where every operator holds when it holds for one ancestor.
    pub list: bool,
}

/// A field's position in [`FIELDS`]: a small, cheap identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldId(pub u16);

impl FieldId {
    pub fn info(self) -> &'static FieldInfo {
        &FIELDS[self.0 as usize]
    }
}

const fn f(name: &'static str, ty: FieldType) -> FieldInfo {
    FieldInfo {
        name,
        ty,
        arg: ArgSpec::None,
        filter_only: false,
        no_rhs: false,
        deprecated: false,
        list: false,
    }
}

const fn list(mut i: FieldInfo) -> FieldInfo {
    i.list = true;
    i
}

const fn with_arg(mut i: FieldInfo, arg: ArgSpec) -> FieldInfo {
    i.arg = arg;
    i
}

const fn filter_only(mut i: FieldInfo) -> FieldInfo {
    i.filter_only = true;
    i
}

const fn no_rhs(mut i: FieldInfo) -> FieldInfo {
    i.no_rhs = true;
    i
}

const fn deprecated(mut i: FieldInfo) -> FieldInfo {
    i.deprecated = true;
    i
}

use ArgSpec::{OptionalIndex, OptionalKey, Required};
use FieldType::*;

/// Every known field.
pub static FIELDS: &[FieldInfo] = &[
    // evt.*
    f("evt.num", Int),
    f("evt.time", Int),
    f("evt.time.s", Str),
    f("evt.time.iso8601", Str),
    f("evt.datetime", Str),
    f("evt.datetime.s", Str),
    f("evt.rawtime", Int),
    f("evt.rawtime.s", Int),
    f("evt.rawtime.ns", Int),
    f("evt.reltime", Int),
    deprecated(f("evt.latency", Int)),
    deprecated(f("evt.latency.s", Int)),
    deprecated(f("evt.latency.ns", Int)),
    deprecated(f("evt.wait_latency", Int)),
    f("evt.deltatime", Int),
    deprecated(f("evt.dir", Str)),
    f("evt.type", Str),
    f("evt.type.is", Int),
    f("syscall.type", Str),
    f("evt.category", Str),
    f("evt.cpu", Int),
    f("evt.args", Str),
    with_arg(f("evt.arg", Str), Required),
    with_arg(f("evt.rawarg", Int), Required),
    f("evt.info", Str),
    f("evt.buffer", Bytes),
    f("evt.buflen", Int),
    f("evt.res", Str),
    f("evt.rawres", Int),
    f("evt.failed", Bool),
    f("evt.is_io", Bool),
    f("evt.is_io_read", Bool),
    f("evt.is_io_write", Bool),
    f("evt.io_dir", Str),
    f("evt.is_wait", Bool),
    f("evt.is_syslog", Bool),
    f("evt.count", Int),
    f("evt.count.error", Int),
    f("evt.count.error.file", Int),
    f("evt.count.error.net", Int),
    f("evt.count.error.memory", Int),
    f("evt.count.error.other", Int),
    f("evt.count.exit", Int),
    f("evt.around", Int),
    f("evt.abspath", Str),
    f("evt.abspath.src", Str),
    f("evt.abspath.dst", Str),
    f("evt.is_open_read", Bool),
    f("evt.is_open_write", Bool),
    f("evt.is_open_exec", Bool),
    f("evt.is_open_create", Bool),
    f("evt.hostname", Str),
    f("evt.source", Str),
    f("evt.is_async", Bool),
    f("evt.asynctype", Str),
    f("evt.plugininfo", Str),
    f("evt.pluginname", Str),
    // proc.*
    f("proc.pid", Int),
    f("proc.exe", Str),
    f("proc.name", Str),
    f("proc.args", Str),
    with_arg(f("proc.env", Str), OptionalKey),
    f("proc.cmdline", Str),
    f("proc.cmdnargs", Int),
    f("proc.cmdlenargs", Int),
    f("proc.exeline", Str),
    f("proc.cwd", Str),
    f("proc.loginshellid", Int),
    f("proc.tty", Int),
    f("proc.exepath", Str),
    f("proc.nthreads", Int),
    f("proc.nchilds", Int),
    f("proc.ppid", Int),
    f("proc.pname", Str),
    f("proc.pcmdline", Str),
    f("proc.pexe", Str),
    f("proc.pexepath", Str),
    no_rhs(with_arg(f("proc.apid", Int), OptionalIndex)),
    no_rhs(with_arg(f("proc.aname", Str), OptionalIndex)),
    no_rhs(with_arg(f("proc.aexe", Str), OptionalIndex)),
    no_rhs(with_arg(f("proc.aexepath", Str), OptionalIndex)),
    no_rhs(with_arg(f("proc.acmdline", Str), OptionalIndex)),
    f("proc.duration", Int),
    f("proc.ppid.duration", Int),
    f("proc.pid.ts", Int),
    f("proc.ppid.ts", Int),
    f("proc.start_ts", Int),
    f("proc.fdopencount", Int),
    f("proc.fdlimit", Int),
    f("proc.fdusage", Int),
    f("proc.vmsize", Int),
    f("proc.vmrss", Int),
    f("proc.vmswap", Int),
    f("proc.sid", Int),
    f("proc.sname", Str),
    f("proc.sid.exe", Str),
    f("proc.sid.exepath", Str),
    f("proc.vpid", Int),
    f("proc.pvpid", Int),
    f("proc.vpgid", Int),
    f("proc.vpgid.name", Str),
    f("proc.vpgid.exe", Str),
    f("proc.vpgid.exepath", Str),
    f("proc.is_vpgid_leader", Bool),
    f("proc.is_sid_leader", Bool),
    f("proc.is_exe_writable", Bool),
    f("proc.is_exe_upper_layer", Bool),
    f("proc.is_exe_lower_layer", Bool),
    f("proc.is_exe_from_memfd", Bool),
    f("proc.exe_ino", Int),
    f("proc.exe_ino.ctime", Int),
    f("proc.exe_ino.mtime", Int),
    f("proc.exe_ino.ctime_duration_proc_start", Int),
    f("proc.exe_ino.ctime_duration_pidns_start", Int),
    f("proc.pidns_init_start_ts", Int),
    f("proc.is_container_healthcheck", Bool),
    f("proc.is_container_liveness_probe", Bool),
    f("proc.is_container_readiness_probe", Bool),
    f("proc.stdin.type", Str),
    f("proc.stdout.type", Str),
    f("proc.stderr.type", Str),
    f("proc.stdin.name", Str),
    f("proc.stdout.name", Str),
    f("proc.stderr.name", Str),
    // thread.*
    f("thread.tid", Int),
    f("thread.ismain", Bool),
    f("thread.vtid", Int),
    f("thread.exectime", Int),
    f("thread.totexectime", Int),
    f("thread.cgroups", Str),
    with_arg(f("thread.cgroup", Str), Required),
    f("thread.cap_permitted", Str),
    f("thread.cap_inheritable", Str),
    f("thread.cap_effective", Str),
    // user.*, group.*
    f("user.uid", Int),
    f("user.name", Str),
    f("user.homedir", Str),
    f("user.shell", Str),
    f("user.loginuid", Int),
    f("user.loginname", Str),
    f("group.gid", Int),
    f("group.name", Str),
    // fd.*
    f("fd.num", Int),
    f("fd.type", Str),
    f("fd.typechar", Str),
    f("fd.name", Str),
    f("fd.directory", Str),
    f("fd.filename", Str),
    filter_only(f("fd.ip", Ip)),
    f("fd.cip", Ip),
    f("fd.sip", Ip),
    f("fd.lip", Ip),
    f("fd.rip", Ip),
    filter_only(f("fd.port", Int)),
    f("fd.cport", Int),
    f("fd.sport", Int),
    f("fd.lport", Int),
    f("fd.rport", Int),
    f("fd.l4proto", Str),
    f("fd.sockfamily", Str),
    f("fd.is_server", Bool),
    f("fd.uid", Str),
    f("fd.containername", Str),
    f("fd.containerdirectory", Str),
    filter_only(f("fd.proto", Str)),
    f("fd.cproto", Str),
    f("fd.sproto", Str),
    f("fd.lproto", Str),
    f("fd.rproto", Str),
    filter_only(f("fd.net", Net)),
    f("fd.cnet", Net),
    f("fd.snet", Net),
    f("fd.lnet", Net),
    f("fd.rnet", Net),
    f("fd.connected", Bool),
    f("fd.name_changed", Bool),
    f("fd.cip.name", Str),
    f("fd.sip.name", Str),
    f("fd.lip.name", Str),
    f("fd.rip.name", Str),
    f("fd.dev", Int),
    f("fd.dev.major", Int),
    f("fd.dev.minor", Int),
    f("fd.ino", Int),
    f("fd.nameraw", Str),
    list(no_rhs(with_arg(f("fd.types", Str), OptionalIndex))),
    f("fd.is_upper_layer", Bool),
    f("fd.is_lower_layer", Bool),
    // fs.path.*
    f("fs.path.name", Str),
    f("fs.path.nameraw", Str),
    f("fs.path.source", Str),
    f("fs.path.sourceraw", Str),
    f("fs.path.target", Str),
    f("fs.path.targetraw", Str),
    // container.* (the container plugin's fields, provided natively)
    f("container.id", Str),
    f("container.full_id", Str),
    f("container.name", Str),
    f("container.image", Str),
    f("container.image.id", Str),
    f("container.image.repository", Str),
    f("container.image.tag", Str),
    f("container.image.digest", Str),
    f("container.type", Str),
    f("container.privileged", Bool),
    f("container.mounts", Str),
    with_arg(f("container.mount", Str), Required),
    with_arg(f("container.mount.source", Str), Required),
    with_arg(f("container.mount.dest", Str), Required),
    with_arg(f("container.mount.mode", Str), Required),
    with_arg(f("container.mount.rdwr", Str), Required),
    with_arg(f("container.mount.propagation", Str), Required),
    f("container.healthcheck", Str),
    f("container.liveness_probe", Str),
    f("container.readiness_probe", Str),
    f("container.start_ts", Int),
    f("container.duration", Int),
    f("container.ip", Str),
    f("container.cni.json", Str),
    f("container.host_pid", Bool),
    f("container.host_network", Bool),
    f("container.host_ipc", Bool),
    // k8s.*
    f("k8s.pod.name", Str),
    f("k8s.pod.id", Str),
    f("k8s.pod.uid", Str),
    f("k8s.pod.sandbox_id", Str),
    f("k8s.pod.full_sandbox_id", Str),
    with_arg(f("k8s.pod.label", Str), Required),
    f("k8s.pod.labels", Str),
    f("k8s.pod.ip", Str),
    f("k8s.pod.cni.json", Str),
    f("k8s.ns.name", Str),
];

/// A field reference resolved against the registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResolvedField {
    pub id: FieldId,
    pub arg: FieldArg,
}

/// A field's argument, checked and typed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FieldArg {
    None,
    Index(u32),
    Key(Box<str>),
}

/// Why a field reference is not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldError {
    Unknown,
    ArgNotAllowed,
    ArgRequired,
    BadIndex,
}

/// Looks a field up by its name (dotted, possibly `evt.arg.NAME`) and optional bracket argument.
pub fn resolve(name: &str, arg: Option<&str>) -> Result<ResolvedField, FieldError> {
    let (id, dotted_arg) = match find(name) {
        Some(id) => (id, None),
        None => {
            // `evt.arg.flags`, `evt.rawarg.res`: the class takes the last segment as argument.
            let (class, rest) = ["evt.arg.", "evt.rawarg."]
                .iter()
                .find_map(|p| name.strip_prefix(p).map(|rest| (&p[..p.len() - 1], rest)))
                .ok_or(FieldError::Unknown)?;
            if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(FieldError::Unknown);
            }
            (find(class).ok_or(FieldError::Unknown)?, Some(rest))
        }
    };
    if dotted_arg.is_some() && arg.is_some() {
        return Err(FieldError::ArgNotAllowed);
    }
    let given = dotted_arg.or(arg);
    let arg = match (id.info().arg, given) {
        (ArgSpec::None, None) => FieldArg::None,
        (ArgSpec::None, Some(_)) => return Err(FieldError::ArgNotAllowed),
        (ArgSpec::Required, None) => return Err(FieldError::ArgRequired),
        (ArgSpec::OptionalIndex, None) | (ArgSpec::OptionalKey, None) => FieldArg::None,
        (ArgSpec::OptionalIndex, Some(a)) => {
            FieldArg::Index(a.parse().map_err(|_| FieldError::BadIndex)?)
        }
        (ArgSpec::Required, Some(a))
            if dotted_arg.is_none() && a.bytes().all(|b| b.is_ascii_digit()) =>
        {
            FieldArg::Index(a.parse().map_err(|_| FieldError::BadIndex)?)
        }
        (ArgSpec::Required | ArgSpec::OptionalKey, Some(a)) => FieldArg::Key(a.into()),
    };
    Ok(ResolvedField { id, arg })
}

fn find(name: &str) -> Option<FieldId> {
    FIELDS
        .iter()
        .position(|i| i.name == name)
        .map(|p| FieldId(p as u16))
}

impl ResolvedField {
    pub fn info(&self) -> &'static FieldInfo {
        self.id.info()
    }

    /// True when the field yields several values (ancestor and list fields without an index).
    pub fn is_multi(&self) -> bool {
        self.info().arg == ArgSpec::OptionalIndex && self.arg == FieldArg::None
    }

    /// True for a list field without an index (see [`FieldInfo::list`]).
    pub fn is_list(&self) -> bool {
        self.info().list && self.is_multi()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = FIELDS.iter().map(|f| f.name).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
        assert!(FIELDS.len() < u16::MAX as usize);
    }

    #[test]
    fn arguments_resolve_as_libsinsp_does() {
        let r = resolve("evt.arg.flags", None).unwrap();
        assert_eq!(
            (r.info().name, r.arg),
            ("evt.arg", FieldArg::Key("flags".into()))
        );
        let r = resolve("evt.arg", Some("0")).unwrap();
        assert_eq!(r.arg, FieldArg::Index(0));
        let r = resolve("proc.aname", Some("2")).unwrap();
        assert_eq!(r.arg, FieldArg::Index(2));
        assert!(!r.is_multi());
        assert!(resolve("proc.aname", None).unwrap().is_multi());
        assert_eq!(resolve("proc.aname", Some("x")), Err(FieldError::BadIndex));
        assert_eq!(
            resolve("proc.name", Some("1")),
            Err(FieldError::ArgNotAllowed)
        );
        assert_eq!(resolve("evt.arg", None), Err(FieldError::ArgRequired));
        assert_eq!(resolve("proc.nope", None), Err(FieldError::Unknown));
        let r = resolve("container.mount.dest", Some("/var/run/docker.sock")).unwrap();
        assert_eq!(r.arg, FieldArg::Key("/var/run/docker.sock".into()));
        assert_eq!(
            resolve("fd.sip.name", None).unwrap().info().ty,
            FieldType::Str
        );
    }
}
