/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Records the kernel side sends to user space, defined once here. The Rust mirror
 * (src/bpf/records.rs) asserts every size and offset against these definitions.
 *
 * Every record starts with struct record_header. Variable-length parts follow the fixed part;
 * their lengths are in the fixed part and user space checks each against the record's length.
 */
#ifndef PEREGRINE_EVENTS_H
#define PEREGRINE_EVENTS_H

#define COMM_LEN 16
/* Capture limits; powers of two so the verifier can bound reads with a mask. */
/* Paths of syscall arguments: PATH_MAX, so no path a syscall accepts is ever cut. */
#define PATH_CAP 4096
/* The filename given to execve, as bprm->filename holds it. */
#define EXEC_PATH_CAP 512
#define ARGS_CAP 4096
#define CGROUP_CAP 512
#define SOCKADDR_CAP 128
#define MAX_SYSCALLS 512

enum record_kind {
	RECORD_SYSCALL = 1, /* a syscall exit (record_syscall) */
	RECORD_EXEC = 2,    /* a successful execve/execveat (record_exec) */
	RECORD_FORK = 3,    /* a new process (record_fork) */
	RECORD_EXIT = 4,    /* a process ended (record_exit) */
};

enum counter_index {
	COUNTER_EVENTS = 0,  /* records attempted (sent + dropped) */
	COUNTER_DROPS = 1,   /* records the ring buffer had no room for */
	COUNTER_UNUSED = 2,  /* was every syscall seen: counting cost ~10 ns on each syscall */
	COUNTER_TRUNCATED = 3, /* records with a string cut at its capture limit */
	COUNTER_MAX = 4,
};

struct record_header {
	__u64 ts_boot_ns;  /* bpf_ktime_get_boot_ns() */
	__u32 kind;        /* enum record_kind */
	__u32 len;         /* bytes of the whole record, header included */
	__u32 pid;         /* thread group id (user space's pid) */
	__u32 tid;
	__u32 ppid;        /* real parent's thread group id */
	__u32 uid;
	__u32 gid;
	__u32 loginuid;
	char comm[COMM_LEN];
};

/*
 * What a descriptor is, read from the task's file table at the syscall's exit (for dup*, fcntl
 * and the socket calls): the kernel's own answer, so it is right however the descriptor was
 * made (inherited across fork or exec, passed over a unix socket, opened before the sensor).
 */
struct fd_info {
	__u8 kind;      /* FD_KIND_*; 0 when not looked up */
	__u8 l4proto;   /* IPPROTO_* of a socket */
	__u8 accepted;  /* from accept: the local side is the server */
	__u8 _pad;
	__u16 lport;    /* host byte order */
	__u16 rport;
	__u8 laddr[16]; /* IPv4 in the first 4 bytes */
	__u8 raddr[16];
};

#define FD_KIND_FILE 1
#define FD_KIND_DIRECTORY 2
#define FD_KIND_IPV4 3
#define FD_KIND_IPV6 4
#define FD_KIND_UNIX 5
#define FD_KIND_PIPE 6
#define FD_KIND_OTHER 7
#define FD_KIND_MEMFD 8

/*
 * A syscall exit. `data` holds str1 (str1_len bytes, NUL included) then str2, then the
 * sockaddr (sockaddr_len bytes). Which argument each string came from depends on the syscall.
 */
struct record_syscall {
	struct record_header h;
	__s64 ret;
	__u64 args[6];
	__u32 syscall;      /* x86_64 syscall number */
	__u16 str1_len;
	__u16 str2_len;
	__u16 sockaddr_len;
	__u16 flags;        /* RECORD_FLAG_* */
	__u32 _pad;
	struct fd_info fd;
	char data[2 * PATH_CAP + SOCKADDR_CAP];
};

#define RECORD_FLAG_TRUNCATED 1

/*
 * Kernel-side filters computed by user space from the loaded rules (engine::prefilter): an open
 * or a socket event that no rule can match never leaves the kernel.
 */
struct open_filter {
	__u8 enabled;
	__u8 read_any;     /* some rule reading files takes any path */
	__u8 write_any;
};

#define PATH_KEY 256
struct path_key {
	__u32 prefixlen; /* in bits, as BPF_MAP_TYPE_LPM_TRIE wants */
	char path[PATH_KEY];
};

#define PATH_READ_EXACT 1
#define PATH_READ_PREFIX 2
#define PATH_WRITE_EXACT 4
#define PATH_WRITE_PREFIX 8
struct path_value {
	__u16 len;   /* the key's length in bytes, for exact matches */
	__u8 flags;  /* PATH_* */
	__u8 _pad;
};

struct socket_filter {
	__u8 needs_address;
	__u8 not_loopback;
};

/*
 * A successful exec, from sched_process_exec, in the context of the new image: the filename
 * given to execve (bprm->filename), argv as NUL-separated strings from the new stack, and the
 * cgroup paths of the cpu and memory controllers and of the unified hierarchy.
 *
 * Full paths (exe, cwd) are not rebuilt in the kernel: a dentry walk with mount crossing is too
 * complex for the verifier in one program, and aya 0.14 cannot relocate bpf_loop callbacks.
 * User space resolves them from the filename, the process's cwd and /proc.
 */
struct record_exec {
	struct record_header h;
	__u64 exe_ino;
	__s64 exe_ctime_ns;
	__s64 exe_mtime_ns;
	__u64 cap_effective;
	__u64 cap_permitted;
	__u32 tty;          /* (major << 8) | minor as libsinsp reports it; 0 without a terminal */
	__u32 exe_flags;    /* EXE_* */
	__u32 sid;          /* session id (host namespace) */
	__u32 vpid;         /* pid in the process's own pid namespace */
	__u16 filename_len;
	__u16 args_len;
	__u16 cgroup_len[3];
	__u16 _pad[3];
	char filename[EXEC_PATH_CAP];
	char args[ARGS_CAP];
	char cgroup[3][CGROUP_CAP];
};

#define EXE_WRITABLE 1
#define EXE_UPPER_LAYER 2
#define EXE_FROM_MEMFD 4
#define EXE_LOWER_LAYER 8

struct record_fork {
	struct record_header h; /* the parent's identity */
	__u32 child_pid;
	__u32 child_tid;
};

struct record_exit {
	struct record_header h;
	__s32 exit_code;
	__u32 _pad;
};

/* The Rust mirror asserts the same numbers. */
_Static_assert(sizeof(struct record_header) == 56, "record_header layout");
_Static_assert(sizeof(struct fd_info) == 40, "fd_info layout");
_Static_assert(sizeof(struct record_syscall) == 8488, "record_syscall layout");
_Static_assert(__builtin_offsetof(struct record_syscall, fd) == 128, "record_syscall layout");
_Static_assert(__builtin_offsetof(struct record_syscall, data) == 168, "record_syscall layout");
_Static_assert(sizeof(struct record_exec) == 6272, "record_exec layout");
_Static_assert(__builtin_offsetof(struct record_exec, filename) == 128, "record_exec layout");
_Static_assert(__builtin_offsetof(struct record_exec, cgroup) == 4736, "record_exec layout");
_Static_assert(sizeof(struct record_fork) == 64, "record_fork layout");
_Static_assert(sizeof(struct record_exit) == 64, "record_exit layout");

#endif
