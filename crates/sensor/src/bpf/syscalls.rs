//! Syscall numbers and names of the build's architecture (the `syscalls` crate, generated from
//! the kernel's tables), and which kernel program reads each syscall's arguments. The BPF side
//! is built for x86_64 (`build.rs`), so that is the one architecture the sensor runs on today.

use ::syscalls::Sysno;

/// The name of syscall `nr`.
pub fn name(nr: u32) -> Option<&'static str> {
    Sysno::new(nr as usize).map(|s| s.name())
}

/// The number of the syscall called `name`.
pub fn number(name: &str) -> Option<u32> {
    name.parse::<Sysno>().ok().map(|s| s.id() as u32)
}

/// Which tail-called program reads a syscall's arguments (an index into the programs list of
/// `bpf::PROGRAMS`): 0 for user-space strings (paths), 1 for socket addresses, 3 for calls on a
/// descriptor whose kind the kernel reports (dup*, fcntl), 2 for the rest.
pub fn shape(nr: u32) -> u8 {
    match name(nr) {
        Some(
            "open" | "openat" | "openat2" | "creat" | "stat" | "lstat" | "access" | "chdir"
            | "mkdir" | "mkdirat" | "rmdir" | "unlink" | "unlinkat" | "chmod" | "fchmodat"
            | "fchmodat2" | "chown" | "chroot" | "umount2" | "execve" | "execveat" | "memfd_create"
            | "init_module" | "finit_module" | "rename" | "renameat" | "renameat2" | "link"
            | "linkat" | "symlink" | "symlinkat" | "mount",
        ) => 0,
        Some("connect" | "bind" | "sendto" | "sendmsg" | "accept" | "accept4") => 1,
        Some("dup" | "dup2" | "dup3" | "fcntl") => 3,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names() {
        assert_eq!(name(257), Some("openat"));
        assert_eq!(number("execve"), Some(59));
        assert_eq!(number("symlinkat"), Some(266));
        assert_eq!(shape(number("connect").unwrap()), 1);
        assert_eq!(shape(number("openat").unwrap()), 0);
        assert_eq!(shape(number("ptrace").unwrap()), 2);
        assert_eq!(name(number("newfstatat").unwrap()), Some("newfstatat"));
        assert_eq!(name(100_000), None);
        assert_eq!(number("no_such_call"), None);
    }
}
