//! Syscall arguments rendered as Falco renders them: flag names joined with `|`, errno names,
//! ptrace requests, socket families, addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `open(2)` flags in Falco's spelling: `O_RDONLY|O_CLOEXEC`.
pub fn open_flags(flags: u64) -> String {
    let mut names = vec![match flags & 0o3 {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        _ => "O_RDWR",
    }];
    const BITS: [(u64, &str); 15] = [
        (0o100, "O_CREAT"),
        (0o200, "O_EXCL"),
        (0o400, "O_NOCTTY"),
        (0o1000, "O_TRUNC"),
        (0o2000, "O_APPEND"),
        (0o4000, "O_NONBLOCK"),
        (0o10000, "O_DSYNC"),
        (0o4000000, "O_SYNC"),
        (0o40000, "O_DIRECT"),
        (0o100000, "O_LARGEFILE"),
        (0o200000, "O_DIRECTORY"),
        (0o400000, "O_NOFOLLOW"),
        (0o1000000, "O_NOATIME"),
        (0o2000000, "O_CLOEXEC"),
        (0o10000000, "O_PATH"),
    ];
    for (bit, name) in BITS {
        if flags & bit == bit {
            names.push(name);
        }
    }
    if flags & 0o20000000 != 0 {
        names.push("O_TMPFILE");
    }
    names.join("|")
}

pub fn is_read(flags: u64) -> bool {
    matches!(flags & 0o3, 0 | 2)
}

pub fn is_write(flags: u64) -> bool {
    matches!(flags & 0o3, 1 | 2)
}

/// An errno name for a negative return value, `SUCCESS` otherwise.
pub fn result(ret: i64) -> String {
    if ret >= 0 {
        return "SUCCESS".to_string();
    }
    let name = match -ret {
        1 => "EPERM",
        2 => "ENOENT",
        3 => "ESRCH",
        4 => "EINTR",
        5 => "EIO",
        6 => "ENXIO",
        7 => "E2BIG",
        8 => "ENOEXEC",
        9 => "EBADF",
        10 => "ECHILD",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        17 => "EEXIST",
        18 => "EXDEV",
        19 => "ENODEV",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        23 => "ENFILE",
        24 => "EMFILE",
        25 => "ENOTTY",
        26 => "ETXTBSY",
        27 => "EFBIG",
        28 => "ENOSPC",
        29 => "ESPIPE",
        30 => "EROFS",
        31 => "EMLINK",
        32 => "EPIPE",
        36 => "ENAMETOOLONG",
        38 => "ENOSYS",
        39 => "ENOTEMPTY",
        40 => "ELOOP",
        95 => "EOPNOTSUPP",
        97 => "EAFNOSUPPORT",
        98 => "EADDRINUSE",
        99 => "EADDRNOTAVAIL",
        101 => "ENETUNREACH",
        104 => "ECONNRESET",
        110 => "ETIMEDOUT",
        111 => "ECONNREFUSED",
        113 => "EHOSTUNREACH",
        114 => "EALREADY",
        115 => "EINPROGRESS",
        n => return format!("E{n}"),
    };
    name.to_string()
}

pub fn ptrace_request(request: u64) -> String {
    let name = match request {
        0 => "PTRACE_TRACEME",
        1 => "PTRACE_PEEKTEXT",
        2 => "PTRACE_PEEKDATA",
        3 => "PTRACE_PEEKUSR",
        4 => "PTRACE_POKETEXT",
        5 => "PTRACE_POKEDATA",
        6 => "PTRACE_POKEUSR",
        7 => "PTRACE_CONT",
        8 => "PTRACE_KILL",
        9 => "PTRACE_SINGLESTEP",
        12 => "PTRACE_GETREGS",
        13 => "PTRACE_SETREGS",
        14 => "PTRACE_GETFPREGS",
        15 => "PTRACE_SETFPREGS",
        16 => "PTRACE_ATTACH",
        17 => "PTRACE_DETACH",
        18 => "PTRACE_GETFPXREGS",
        19 => "PTRACE_SETFPXREGS",
        24 => "PTRACE_SYSCALL",
        0x4200 => "PTRACE_SETOPTIONS",
        0x4201 => "PTRACE_GETEVENTMSG",
        0x4202 => "PTRACE_GETSIGINFO",
        0x4203 => "PTRACE_SETSIGINFO",
        0x4204 => "PTRACE_GETREGSET",
        0x4205 => "PTRACE_SETREGSET",
        0x4206 => "PTRACE_SEIZE",
        0x4207 => "PTRACE_INTERRUPT",
        0x4208 => "PTRACE_LISTEN",
        0x4209 => "PTRACE_PEEKSIGINFO",
        n => return n.to_string(),
    };
    name.to_string()
}

pub fn socket_family(family: u64) -> String {
    let name = match family {
        0 => "AF_UNSPEC",
        1 => "AF_UNIX",
        2 => "AF_INET",
        10 => "AF_INET6",
        16 => "AF_NETLINK",
        17 => "AF_PACKET",
        n => return n.to_string(),
    };
    name.to_string()
}

/// Executable flags of an exec, as Falco's execve `flags` argument: `EXE_WRITABLE|EXE_FROM_MEMFD`.
pub fn exe_flags(flags: u32) -> String {
    use crate::bpf::records::{EXE_FROM_MEMFD, EXE_LOWER_LAYER, EXE_UPPER_LAYER, EXE_WRITABLE};
    let mut names = Vec::new();
    for (bit, name) in [
        (EXE_WRITABLE, "EXE_WRITABLE"),
        (EXE_UPPER_LAYER, "EXE_UPPER_LAYER"),
        (EXE_FROM_MEMFD, "EXE_FROM_MEMFD"),
        (EXE_LOWER_LAYER, "EXE_LOWER_LAYER"),
    ] {
        if flags & bit != 0 {
            names.push(name);
        }
    }
    if names.is_empty() {
        "0".to_string()
    } else {
        names.join("|")
    }
}

/// Capability names for a capability bit set, space separated (`thread.cap_effective`).
pub fn capabilities(set: u64) -> String {
    const NAMES: [&str; 41] = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_IPC_LOCK",
        "CAP_IPC_OWNER",
        "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO",
        "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT",
        "CAP_SYS_ADMIN",
        "CAP_SYS_BOOT",
        "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG",
        "CAP_MKNOD",
        "CAP_LEASE",
        "CAP_AUDIT_WRITE",
        "CAP_AUDIT_CONTROL",
        "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN",
        "CAP_SYSLOG",
        "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND",
        "CAP_AUDIT_READ",
        "CAP_PERFMON",
        "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ];
    NAMES
        .iter()
        .enumerate()
        .filter(|(bit, _)| set & (1u64 << bit) != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A socket address as user space passed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SockAddr {
    Inet(IpAddr, u16),
    Unix(String),
    Other(u16),
}

pub fn sockaddr(bytes: &[u8]) -> Option<SockAddr> {
    let family = u16::from_le_bytes(bytes.get(0..2)?.try_into().ok()?);
    Some(match family {
        2 => {
            let port = u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?);
            let ip: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
            SockAddr::Inet(IpAddr::V4(Ipv4Addr::from(ip)), port)
        }
        10 => {
            let port = u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?);
            let ip: [u8; 16] = bytes.get(8..24)?.try_into().ok()?;
            SockAddr::Inet(IpAddr::V6(Ipv6Addr::from(ip)), port)
        }
        1 => {
            let path = bytes.get(2..)?;
            let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
            SockAddr::Unix(String::from_utf8_lossy(&path[..end]).into_owned())
        }
        other => SockAddr::Other(other),
    })
}

/// Joins `path` to `base` and removes `.` and `..` lexically, as libsinsp does (no symlinks).
pub fn absolute(base: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{base}/{path}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_render_like_falco() {
        assert_eq!(open_flags(0o2000000), "O_RDONLY|O_CLOEXEC");
        assert_eq!(open_flags(0o1101), "O_WRONLY|O_CREAT|O_TRUNC");
        assert_eq!(open_flags(0o2), "O_RDWR");
        assert!(is_read(0) && !is_write(0));
        assert!(is_write(1) && !is_read(1));
        assert!(is_read(2) && is_write(2));
        assert_eq!(result(-2), "ENOENT");
        assert_eq!(result(3), "SUCCESS");
        assert_eq!(ptrace_request(0), "PTRACE_TRACEME");
        assert_eq!(socket_family(17), "AF_PACKET");
        assert!(capabilities(1 << 16 | 1 << 21).contains("CAP_SYS_MODULE CAP_SYS_ADMIN"));
    }

    #[test]
    fn addresses_and_paths() {
        let v4 = [2, 0, 0x1f, 0x90, 10, 0, 0, 1];
        assert_eq!(
            sockaddr(&v4),
            Some(SockAddr::Inet("10.0.0.1".parse().unwrap(), 8080))
        );
        let mut unix = vec![1, 0];
        unix.extend_from_slice(b"/run/x.sock\0");
        assert_eq!(sockaddr(&unix), Some(SockAddr::Unix("/run/x.sock".into())));
        assert_eq!(sockaddr(&[2]), None);
        assert_eq!(absolute("/root", "a/../b/./c"), "/root/b/c");
        assert_eq!(absolute("/root", "/etc//shadow"), "/etc/shadow");
        assert_eq!(absolute("/", ".."), "/");
    }
}
