//! The Rust side of `bpf/events.h`: every record decoded with its length checked, never a panic
//! on a short or damaged record. Offsets are asserted against the C layout at compile time.

use std::mem::{offset_of, size_of};

pub const COMM_LEN: usize = 16;
/// `PATH_CAP` in events.h: syscall path arguments (PATH_MAX).
pub const PATH_CAP: usize = 4096;
/// `EXEC_PATH_CAP` in events.h: the filename given to execve.
pub const EXEC_PATH_CAP: usize = 512;
pub const ARGS_CAP: usize = 4096;
pub const CGROUP_CAP: usize = 512;
pub const SOCKADDR_CAP: usize = 128;
pub const MAX_SYSCALLS: u32 = 512;

pub const RECORD_SYSCALL: u32 = 1;
pub const RECORD_EXEC: u32 = 2;
pub const RECORD_FORK: u32 = 3;
pub const RECORD_EXIT: u32 = 4;

pub const COUNTER_EVENTS: u32 = 0;
pub const COUNTER_DROPS: u32 = 1;
pub const COUNTER_TRUNCATED: u32 = 3;

pub const EXE_WRITABLE: u32 = 1;
pub const EXE_UPPER_LAYER: u32 = 2;
pub const EXE_FROM_MEMFD: u32 = 4;
pub const EXE_LOWER_LAYER: u32 = 8;

/// Mirrors of the C structs, used only for their layout.
#[repr(C)]
#[allow(dead_code)]
struct CHeader {
    ts_boot_ns: u64,
    kind: u32,
    len: u32,
    pid: u32,
    tid: u32,
    ppid: u32,
    uid: u32,
    gid: u32,
    loginuid: u32,
    comm: [u8; COMM_LEN],
}

#[repr(C)]
#[allow(dead_code)]
struct CSyscall {
    h: CHeader,
    ret: i64,
    args: [u64; 6],
    syscall: u32,
    str1_len: u16,
    str2_len: u16,
    sockaddr_len: u16,
    flags: u16,
    pad: u32,
    fd: CFdInfo,
    data: [u8; 2 * PATH_CAP + SOCKADDR_CAP],
}

#[repr(C)]
#[allow(dead_code)]
struct CFdInfo {
    kind: u8,
    l4proto: u8,
    accepted: u8,
    pad: u8,
    lport: u16,
    rport: u16,
    laddr: [u8; 16],
    raddr: [u8; 16],
}

#[repr(C)]
#[allow(dead_code)]
struct CExec {
    h: CHeader,
    exe_ino: u64,
    exe_ctime_ns: i64,
    exe_mtime_ns: i64,
    cap_effective: u64,
    cap_permitted: u64,
    tty: u32,
    exe_flags: u32,
    sid: u32,
    vpid: u32,
    filename_len: u16,
    args_len: u16,
    cgroup_len: [u16; 3],
    pad: [u16; 3],
    filename: [u8; EXEC_PATH_CAP],
    args: [u8; ARGS_CAP],
    cgroup: [[u8; CGROUP_CAP]; 3],
}

#[repr(C)]
#[allow(dead_code)]
struct CFork {
    h: CHeader,
    child_pid: u32,
    child_tid: u32,
}

#[repr(C)]
#[allow(dead_code)]
struct CExit {
    h: CHeader,
    exit_code: i32,
    pad: u32,
}

// The C compiler lays these out identically (same types, same order, natural alignment).
const _: () = {
    assert!(size_of::<CHeader>() == 56);
    assert!(offset_of!(CHeader, comm) == 40);
    assert!(size_of::<CFdInfo>() == 40);
    assert!(size_of::<CSyscall>() == 8488);
    assert!(offset_of!(CSyscall, fd) == 128);
    assert!(offset_of!(CSyscall, ret) == 56);
    assert!(offset_of!(CSyscall, args) == 64);
    assert!(offset_of!(CSyscall, syscall) == 112);
    assert!(offset_of!(CSyscall, str1_len) == 116);
    assert!(offset_of!(CSyscall, flags) == 122);
    assert!(offset_of!(CSyscall, data) == 168);
    assert!(size_of::<CExec>() == 6272);
    assert!(offset_of!(CExec, exe_ino) == 56);
    assert!(offset_of!(CExec, tty) == 96);
    assert!(offset_of!(CExec, filename_len) == 112);
    assert!(offset_of!(CExec, cgroup_len) == 116);
    assert!(offset_of!(CExec, filename) == 128);
    assert!(offset_of!(CExec, args) == 640);
    assert!(offset_of!(CExec, cgroup) == 4736);
    assert!(size_of::<CFork>() == 64);
    assert!(size_of::<CExit>() == 64);
};

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("record says {said} bytes but has {got}")]
    Length { said: usize, got: usize },
    #[error("unknown record kind {0}")]
    Kind(u32),
    #[error("{0} runs past the end of the record")]
    Field(&'static str),
}

/// The identity every record carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub ts_boot_ns: u64,
    pub kind: u32,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub loginuid: u32,
    pub comm: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallRecord {
    pub header: Header,
    pub ret: i64,
    pub args: [u64; 6],
    pub syscall: u32,
    pub str1: Option<String>,
    pub str2: Option<String>,
    pub sockaddr: Vec<u8>,
    pub truncated: bool,
    /// What the descriptor the syscall worked on is, as the kernel said (dup*, fcntl, sockets).
    pub fd: Option<FdInfo>,
}

/// `struct fd_info` in events.h, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdInfo {
    pub kind: FdKind,
    /// IPPROTO_* of a socket (6 TCP, 17 UDP).
    pub l4proto: u8,
    /// From accept: the local side is the server.
    pub accepted: bool,
    pub local: Option<(std::net::IpAddr, u16)>,
    pub remote: Option<(std::net::IpAddr, u16)>,
}

/// `FD_KIND_*` in events.h.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdKind {
    File,
    Directory,
    Ipv4,
    Ipv6,
    Unix,
    Pipe,
    Memfd,
    Other,
}

fn fd_info(b: &Bytes<'_>) -> Option<FdInfo> {
    let at = offset_of!(CSyscall, fd);
    let kind = match b.0[at] {
        1 => FdKind::File,
        2 => FdKind::Directory,
        3 => FdKind::Ipv4,
        4 => FdKind::Ipv6,
        5 => FdKind::Unix,
        6 => FdKind::Pipe,
        7 => FdKind::Other,
        8 => FdKind::Memfd,
        _ => return None,
    };
    let addr = |off: usize| -> std::net::IpAddr {
        let raw: [u8; 16] = b.0[at + off..at + off + 16].try_into().expect("16 bytes");
        match kind {
            FdKind::Ipv4 => std::net::Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]).into(),
            _ => std::net::Ipv6Addr::from(raw).into(),
        }
    };
    let inet = matches!(kind, FdKind::Ipv4 | FdKind::Ipv6);
    Some(FdInfo {
        kind,
        l4proto: b.0[at + 1],
        accepted: b.0[at + 2] != 0,
        local: inet.then(|| (addr(8), b.u16(at + 4))),
        remote: inet.then(|| (addr(24), b.u16(at + 6))),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRecord {
    pub header: Header,
    pub exe_ino: u64,
    pub exe_ctime_ns: i64,
    pub exe_mtime_ns: i64,
    pub cap_effective: u64,
    pub cap_permitted: u64,
    pub tty: u32,
    pub exe_flags: u32,
    pub sid: u32,
    pub vpid: u32,
    pub filename: String,
    /// argv, split at NULs.
    pub argv: Vec<String>,
    /// cpu, memory and unified-hierarchy cgroup paths.
    pub cgroups: [String; 3],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Syscall(SyscallRecord),
    Exec(Box<ExecRecord>),
    Fork { header: Header, child_pid: u32 },
    Exit { header: Header, exit_code: i32 },
}

/// A little-endian reader over one record's bytes that refuses to run past the end.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u16(&self, at: usize) -> u16 {
        u16::from_le_bytes(self.0[at..at + 2].try_into().expect("2 bytes"))
    }
    fn u32(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.0[at..at + 4].try_into().expect("4 bytes"))
    }
    fn u64(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.0[at..at + 8].try_into().expect("8 bytes"))
    }
    /// A string of `len` bytes (NUL included, if any) at `at`, bounded by `cap`.
    fn string(
        &self,
        at: usize,
        len: usize,
        cap: usize,
        what: &'static str,
    ) -> Result<String, DecodeError> {
        let len = len.min(cap);
        let raw = self.0.get(at..at + len).ok_or(DecodeError::Field(what))?;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        Ok(String::from_utf8_lossy(&raw[..end]).into_owned())
    }
}

fn header(b: &Bytes<'_>) -> Header {
    let comm = &b.0[40..40 + COMM_LEN];
    let end = comm.iter().position(|&c| c == 0).unwrap_or(COMM_LEN);
    Header {
        ts_boot_ns: b.u64(0),
        kind: b.u32(8),
        pid: b.u32(16),
        tid: b.u32(20),
        ppid: b.u32(24),
        uid: b.u32(28),
        gid: b.u32(32),
        loginuid: b.u32(36),
        comm: String::from_utf8_lossy(&comm[..end]).into_owned(),
    }
}

/// Decodes one ring-buffer record: the length the header says is checked against what the ring
/// gave and against the fixed part of the record's kind before any field is read.
pub fn decode(data: &[u8]) -> Result<Record, DecodeError> {
    if data.len() < size_of::<CHeader>() {
        return Err(DecodeError::Short(data.len()));
    }
    let said = Bytes(data).u32(12) as usize;
    if said > data.len() {
        return Err(DecodeError::Length {
            said,
            got: data.len(),
        });
    }
    let b = Bytes(&data[..said]);
    let h = header(&b);
    match h.kind {
        RECORD_SYSCALL => {
            need(said, offset_of!(CSyscall, data))?;
            syscall(&b, h)
        }
        RECORD_EXEC => {
            need(said, size_of::<CExec>())?;
            exec(&b, h)
        }
        RECORD_FORK => {
            need(said, size_of::<CFork>())?;
            Ok(Record::Fork {
                child_pid: b.u32(56),
                header: h,
            })
        }
        RECORD_EXIT => {
            need(said, size_of::<CExit>())?;
            Ok(Record::Exit {
                exit_code: b.u32(56) as i32,
                header: h,
            })
        }
        other => Err(DecodeError::Kind(other)),
    }
}

/// Refuses a record shorter than the fixed part of its kind, so that the fixed-offset reads
/// after it cannot run past the end.
fn need(said: usize, n: usize) -> Result<(), DecodeError> {
    if said < n {
        Err(DecodeError::Length { said, got: n })
    } else {
        Ok(())
    }
}

/// A `struct syscall_record`, whose fixed part `decode` has checked. Its two strings and the
/// socket address are packed one after the other in `data`, each as long as its `*_len` says.
fn syscall(b: &Bytes<'_>, h: Header) -> Result<Record, DecodeError> {
    let str1_len = b.u16(116) as usize;
    let str2_len = b.u16(118) as usize;
    let sockaddr_len = b.u16(120) as usize;
    let data_at = offset_of!(CSyscall, data);
    let str1 = (str1_len > 0)
        .then(|| b.string(data_at, str1_len, PATH_CAP, "str1"))
        .transpose()?;
    let str2 = (str2_len > 0)
        .then(|| b.string(data_at + str1_len, str2_len, PATH_CAP, "str2"))
        .transpose()?;
    let sa_at = data_at + str1_len + str2_len;
    let sockaddr =
        b.0.get(sa_at..sa_at + sockaddr_len.min(SOCKADDR_CAP))
            .ok_or(DecodeError::Field("sockaddr"))?
            .to_vec();
    let mut args = [0u64; 6];
    for (i, a) in args.iter_mut().enumerate() {
        *a = b.u64(64 + 8 * i);
    }
    Ok(Record::Syscall(SyscallRecord {
        ret: b.u64(56) as i64,
        args,
        syscall: b.u32(112),
        str1,
        str2,
        sockaddr,
        truncated: b.u16(122) & 1 != 0,
        fd: fd_info(b),
        header: h,
    }))
}

/// A `struct exec_record`, whose whole size `decode` has checked: its strings sit in
/// fixed-size slots, each bounded by its cap whatever its `*_len` says.
fn exec(b: &Bytes<'_>, h: Header) -> Result<Record, DecodeError> {
    let args_len = b.u16(offset_of!(CExec, args_len)) as usize;
    let raw_args =
        b.0.get(640..640 + args_len.min(ARGS_CAP))
            .ok_or(DecodeError::Field("args"))?;
    let argv = raw_args
        .split(|&c| c == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Ok(Record::Exec(Box::new(ExecRecord {
        exe_ino: b.u64(56),
        exe_ctime_ns: b.u64(64) as i64,
        exe_mtime_ns: b.u64(72) as i64,
        cap_effective: b.u64(80),
        cap_permitted: b.u64(88),
        tty: b.u32(96),
        exe_flags: b.u32(100),
        sid: b.u32(104),
        vpid: b.u32(108),
        filename: b.string(128, b.u16(112) as usize, EXEC_PATH_CAP, "filename")?,
        argv,
        cgroups: cgroups(b)?,
        header: h,
    })))
}

/// The three cgroup paths of an exec record (cpu, memory, unified), one slot of `CGROUP_CAP`
/// each, their lengths in `cgroup_len`.
fn cgroups(b: &Bytes<'_>) -> Result<[String; 3], DecodeError> {
    let slot = |i: usize| {
        let len = b.u16(offset_of!(CExec, cgroup_len) + 2 * i) as usize;
        b.string(
            offset_of!(CExec, cgroup) + i * CGROUP_CAP,
            len,
            CGROUP_CAP,
            "cgroup",
        )
    };
    Ok([slot(0)?, slot(1)?, slot(2)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syscall_bytes(str1: &[u8], str2: &[u8], sockaddr: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; 168];
        let len = 168 + str1.len() + str2.len() + sockaddr.len();
        v[8..12].copy_from_slice(&RECORD_SYSCALL.to_le_bytes());
        v[12..16].copy_from_slice(&(len as u32).to_le_bytes());
        v[16..20].copy_from_slice(&42u32.to_le_bytes());
        v[40..43].copy_from_slice(b"cat");
        v[56..64].copy_from_slice(&3i64.to_le_bytes());
        v[112..116].copy_from_slice(&257u32.to_le_bytes());
        v[116..118].copy_from_slice(&(str1.len() as u16).to_le_bytes());
        v[118..120].copy_from_slice(&(str2.len() as u16).to_le_bytes());
        v[120..122].copy_from_slice(&(sockaddr.len() as u16).to_le_bytes());
        v.extend_from_slice(str1);
        v.extend_from_slice(str2);
        v.extend_from_slice(sockaddr);
        v
    }

    #[test]
    fn decodes_a_syscall_record() {
        let bytes = syscall_bytes(b"/etc/shadow\0", b"", &[2, 0]);
        let Record::Syscall(r) = decode(&bytes).unwrap() else {
            panic!()
        };
        assert_eq!(r.header.pid, 42);
        assert_eq!(r.header.comm, "cat");
        assert_eq!(r.ret, 3);
        assert_eq!(r.syscall, 257);
        assert_eq!(r.str1.as_deref(), Some("/etc/shadow"));
        assert_eq!(r.str2, None);
        assert_eq!(r.sockaddr, vec![2, 0]);
    }

    #[test]
    fn a_path_at_the_cap_keeps_its_bytes_and_says_it_may_be_cut() {
        // What capped_len stores for a string that filled its slot: PATH_CAP - 1 bytes, no NUL.
        let path = vec![b'a'; PATH_CAP - 1];
        let mut bytes = syscall_bytes(&path, b"/tmp/x\0", &[]);
        bytes[122..124].copy_from_slice(&1u16.to_le_bytes());
        let Record::Syscall(r) = decode(&bytes).unwrap() else {
            panic!()
        };
        assert_eq!(r.str1.as_ref().map(String::len), Some(PATH_CAP - 1));
        assert_eq!(r.str2.as_deref(), Some("/tmp/x"));
        assert!(r.truncated);
    }

    #[test]
    fn never_panics_on_short_or_lying_records() {
        let good = syscall_bytes(b"/etc/shadow\0", b"/tmp/x\0", &[]);
        for cut in 0..good.len() {
            let _ = decode(&good[..cut]);
        }
        // A length field larger than the buffer, and string lengths past the end.
        let mut lying = good.clone();
        lying[116..118].copy_from_slice(&4000u16.to_le_bytes());
        assert!(decode(&lying).is_err());
        let mut long = good.clone();
        long[12..16].copy_from_slice(&100_000u32.to_le_bytes());
        assert!(matches!(decode(&long), Err(DecodeError::Length { .. })));
        // An exec record is far longer than this; kind 99 does not exist.
        for kind in [RECORD_EXEC, 99] {
            let mut k = good.clone();
            k[8..12].copy_from_slice(&kind.to_le_bytes());
            assert!(decode(&k).is_err());
        }
    }
}
