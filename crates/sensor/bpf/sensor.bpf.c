// SPDX-License-Identifier: GPL-2.0
/*
 * Peregrine's kernel side: Falco's modern-probe design on the hooks this kernel allows.
 *
 * - tp_btf/sys_exit is the only per-syscall hook. It drops syscalls no loaded rule needs
 *   (INTERESTING, filled from user space), then tail-calls the program for the syscall's
 *   argument shape (SYSCALL_PROGS, declared empty here and filled from user space, because aya
 *   cannot parse libbpf's declarative initialisers).
 * - tp_btf/sched_process_exec reports successful execs with the new image in place;
 *   failed ones come from the sys_exit path. sched_process_fork and sched_process_exit keep
 *   user space's process table.
 * - Records go to one shared ring buffer without a wake-up per record: user space polls on a
 *   timer, and a record that finds the ring more than a quarter full forces a wake-up.
 *
 * x86_64 only: syscall numbers and argument registers are that architecture's.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "events.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by user space before loading. */
const volatile __u32 self_tgid = 0;
const volatile __u64 wakeup_bytes = 1 << 20;

#define RING_BYTES (8 << 20)

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, RING_BYTES);
} EVENTS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} COUNTERS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SYSCALLS);
	__type(key, __u32);
	__type(value, __u8);
} INTERESTING SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, MAX_SYSCALLS);
	__type(key, __u32);
	__type(value, __u32);
} SYSCALL_PROGS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct open_filter);
} OPEN_FILTER SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 8192);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct path_key);
	__type(value, struct path_value);
} OPEN_PATHS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SYSCALLS);
	__type(key, __u32);
	__type(value, struct socket_filter);
} SOCK_FILTER SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct path_key);
} KEY_SCRATCH SEC(".maps");

/* Per-CPU room to build records larger than the 512-byte stack. */
struct scratch {
	union {
		struct record_syscall sys;
		struct record_exec exec;
	};
	/* Room past the last field: the verifier's bound on a string's offset is looser than the
	 * runtime check, so a capped copy at the end must still lie inside the map value. */
	char slack[1024];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} SCRATCH SEC(".maps");

/* Kernels before 6.15 call kernfs_node's parent `parent`. */
struct kernfs_node___old {
	struct kernfs_node *parent;
} __attribute__((preserve_access_index));

static __always_inline void count(__u32 index)
{
	__u64 *v = bpf_map_lookup_elem(&COUNTERS, &index);
	if (v)
		*v += 1;
}

static __always_inline struct scratch *scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&SCRATCH, &zero);
}

static __always_inline void fill_header(struct record_header *h, __u32 kind)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();

	h->ts_boot_ns = bpf_ktime_get_boot_ns();
	h->kind = kind;
	h->pid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	h->ppid = BPF_CORE_READ(task, real_parent, tgid);
	h->uid = (__u32)uid_gid;
	h->gid = uid_gid >> 32;
	h->loginuid = BPF_CORE_READ(task, loginuid.val);
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

/* Sends a record; a ring without room counts a drop. */
static __always_inline void submit(void *data, __u64 size)
{
	__u64 flags = BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_query(&EVENTS, BPF_RB_AVAIL_DATA) > wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	count(COUNTER_EVENTS);
	if (bpf_ringbuf_output(&EVENTS, data, size, flags) != 0)
		count(COUNTER_DROPS);
}

static __always_inline bool is_self(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == self_tgid;
}

/* ---------------------------------------------------------------- syscall exits */

/*
 * `regs` is a BTF-typed argument of a tp_btf program, so its fields are read directly (a plain
 * load with a CO-RE relocation) rather than through bpf_probe_read_kernel: on the hot path of
 * every syscall exit, that helper call per register was most of the cost.
 */

static __always_inline __u64 arg_of(struct pt_regs *regs, int i)
{
	switch (i) {
	case 0: return regs->di;
	case 1: return regs->si;
	case 2: return regs->dx;
	case 3: return regs->r10;
	case 4: return regs->r8;
	default: return regs->r9;
	}
}

/*
 * Starts a syscall record with the arguments only; the header (task reads, comm, clock) is
 * filled by finish_syscall, so that events a filter drops cost as little as possible.
 */
static __always_inline struct record_syscall *start_syscall(struct pt_regs *regs, long ret, __u32 id)
{
	struct scratch *s = scratch();
	if (!s)
		return 0;
	struct record_syscall *r = &s->sys;
	r->ret = ret;
	r->syscall = id;
	r->args[0] = regs->di;
	r->args[1] = regs->si;
	r->args[2] = regs->dx;
	r->args[3] = regs->r10;
	r->args[4] = regs->r8;
	r->args[5] = regs->r9;
	r->str1_len = 0;
	r->str2_len = 0;
	r->sockaddr_len = 0;
	r->flags = 0;
	r->fd.kind = 0;
	return r;
}

static __always_inline void finish_syscall(struct record_syscall *r)
{
	fill_header(&r->h, RECORD_SYSCALL);
	__u64 size = offsetof(struct record_syscall, data) + (r->str1_len & (PATH_CAP - 1)) +
		     (r->str2_len & (PATH_CAP - 1)) + (r->sockaddr_len & (SOCKADDR_CAP - 1));
	r->h.len = size;
	if (size > sizeof(*r))
		return;
	submit(r, size);
}

/*
 * The stored length of a string that bpf_probe_read_user_str read as `n` bytes (its NUL
 * included). A string that filled the whole slot may have been cut: it keeps PATH_CAP - 1 bytes
 * and the record says so (a path the kernel accepts is shorter than PATH_CAP, so this takes a
 * string no syscall would take as a path).
 */
static __always_inline __u16 capped_len(struct record_syscall *r, long n)
{
	if (n < PATH_CAP)
		return n & (PATH_CAP - 1);
	r->flags |= RECORD_FLAG_TRUNCATED;
	count(COUNTER_TRUNCATED);
	return PATH_CAP - 1;
}

/* Copies a user string into the record's first string slot. */
static __always_inline void read_str1(struct record_syscall *r, __u64 ptr)
{
	long n = bpf_probe_read_user_str(&r->data[0], PATH_CAP, (const void *)ptr);
	if (n > 0)
		r->str1_len = capped_len(r, n);
}

/* Copies a user string right after the first one. */
static __always_inline void read_str2(struct record_syscall *r, __u64 ptr)
{
	__u32 off = r->str1_len & (PATH_CAP - 1);
	long n = bpf_probe_read_user_str(&r->data[off], PATH_CAP, (const void *)ptr);
	if (n > 0)
		r->str2_len = capped_len(r, n);
}

/* Copies a user sockaddr of `len` bytes after the strings. */
static __always_inline void read_sockaddr(struct record_syscall *r, __u64 ptr, __u64 len)
{
	__u32 off = (r->str1_len & (PATH_CAP - 1)) + (r->str2_len & (PATH_CAP - 1));
	if (!ptr || len == 0)
		return;
	if (len > SOCKADDR_CAP - 1)
		len = SOCKADDR_CAP - 1;
	if (bpf_probe_read_user(&r->data[off & (2 * PATH_CAP - 1)], len & (SOCKADDR_CAP - 1), (const void *)ptr) == 0)
		r->sockaddr_len = len & (SOCKADDR_CAP - 1);
}

/* Which arguments of a syscall are user strings: (first, second) argument index, -1 for none. */
static __always_inline void string_args(__u32 id, int *a, int *b)
{
	*a = -1;
	*b = -1;
	switch (id) {
	case 2:   /* open */
	case 4:   /* stat */
	case 6:   /* lstat */
	case 21:  /* access */
	case 80:  /* chdir */
	case 83:  /* mkdir */
	case 84:  /* rmdir */
	case 85:  /* creat */
	case 87:  /* unlink */
	case 90:  /* chmod */
	case 92:  /* chown */
	case 161: /* chroot */
	case 166: /* umount2 */
	case 59:  /* execve */
	case 319: /* memfd_create */
		*a = 0;
		break;
	case 257: /* openat */
	case 437: /* openat2 */
	case 258: /* mkdirat */
	case 263: /* unlinkat */
	case 268: /* fchmodat */
	case 452: /* fchmodat2 */
	case 322: /* execveat */
	case 313: /* finit_module: uargs */
		*a = 1;
		break;
	case 175: /* init_module: uargs */
		*a = 2;
		break;
	case 82:  /* rename */
	case 86:  /* link */
	case 88:  /* symlink */
	case 165: /* mount: dev, dir */
		*a = 0;
		*b = 1;
		break;
	case 266: /* symlinkat: target, linkpath */
		*a = 0;
		*b = 2;
		break;
	case 264: /* renameat */
	case 316: /* renameat2 */
	case 265: /* linkat */
		*a = 1;
		*b = 3;
		break;
	}
}

static __always_inline bool is_open(__u32 id)
{
	return id == 2 || id == 257 || id == 437 || id == 85;
}

/*
 * Whether an absolute path is spelled as user space renders it: no "//", no "." or ".."
 * segment. The trie holds rendered paths only, so any other spelling of /etc/shadow
 * ("/etc/./shadow", "//etc//shadow", "/tmp/../etc/shadow") must reach user space, which
 * normalises it before the rules see it. Rare in practice, so cheap to let through.
 */
static __always_inline bool canonical(const char *path, __u32 len)
{
	for (int i = 0; i < PATH_KEY - 3; i++) {
		if (i + 1 >= len)
			break;
		if (path[i] != '/')
			continue;
		char c1 = path[i + 1];
		if (c1 == '/')
			return false;
		if (c1 != '.')
			continue;
		/* path[len] is the NUL: a segment ends at '/' or there. */
		char c2 = i + 2 < len ? path[i + 2] : '/';
		if (c2 == '/')
			return false;
		char c3 = i + 3 < len ? path[i + 3] : '/';
		if (c2 == '.' && c3 == '/')
			return false;
	}
	return true;
}

/*
 * Whether some loaded rule could match this open (see OPEN_FILTER). Runs before the path is
 * copied into the record: the user string is read straight into the trie key, and only an open
 * that passes pays for the record.
 */
static __always_inline bool open_wanted(struct pt_regs *regs, __u32 id, __u64 path_ptr)
{
	__u32 zero = 0;
	struct open_filter *f = bpf_map_lookup_elem(&OPEN_FILTER, &zero);
	if (!f || !f->enabled)
		return true;
	__u64 flags;
	switch (id) {
	case 2: flags = regs->si; break;
	case 85: flags = 01101; break; /* creat: O_WRONLY|O_CREAT|O_TRUNC */
	case 437: {                     /* openat2: the flags are in struct open_how */
		flags = 0;
		bpf_probe_read_user(&flags, sizeof(flags), (const void *)regs->dx);
		break;
	}
	default: flags = regs->dx; break;
	}
	/* A directory opened is a base for later *at() calls: user space must know its path to
	 * render what is opened relative to it, so directories always go up. */
	if (flags & 0200000) /* O_DIRECTORY */
		return true;
	bool rd = (flags & 3) == 0 || (flags & 3) == 2;
	bool wr = (flags & 3) == 1 || (flags & 3) == 2;
	if ((rd && f->read_any) || (wr && f->write_any))
		return true;
	struct path_key *k = bpf_map_lookup_elem(&KEY_SCRATCH, &zero);
	if (!k)
		return true;
	long n = bpf_probe_read_user_str(k->path, PATH_KEY, (const void *)path_ptr);
	if (n < 2 || n >= PATH_KEY || k->path[0] != '/')
		return true; /* relative, unreadable or long: only user space can judge */
	__u32 len = n - 1;
	if (!canonical(k->path, len))
		return true;
	k->prefixlen = len * 8;
	struct path_value *v = bpf_map_lookup_elem(&OPEN_PATHS, k);
	if (!v)
		return false;
	__u8 prefix = (rd ? PATH_READ_PREFIX : 0) | (wr ? PATH_WRITE_PREFIX : 0);
	__u8 exact = (rd ? PATH_READ_EXACT : 0) | (wr ? PATH_WRITE_EXACT : 0);
	return (v->flags & prefix) || ((v->flags & exact) && v->len == len);
}

/* Whether some loaded rule could match this socket event (see SOCK_FILTER). */
static __always_inline bool socket_wanted(struct record_syscall *r, __u32 id)
{
	struct socket_filter *f = bpf_map_lookup_elem(&SOCK_FILTER, &id);
	if (!f)
		return true;
	__u32 len = r->sockaddr_len & (SOCKADDR_CAP - 1);
	if (len == 0)
		return !f->needs_address;
	if (!f->not_loopback || len < 8)
		return true;
	__u32 off = ((r->str1_len & (PATH_CAP - 1)) + (r->str2_len & (PATH_CAP - 1))) & (2 * PATH_CAP - 1);
	__u16 family = 0;
	bpf_probe_read_kernel(&family, sizeof(family), &r->data[off]);
	if (family == 2) { /* AF_INET: 127.0.0.0/8 */
		__u8 first = 0;
		bpf_probe_read_kernel(&first, 1, &r->data[(off + 4) & (2 * PATH_CAP + SOCKADDR_CAP - 1)]);
		return first != 127;
	}
	if (family == 10 && len >= 24) { /* AF_INET6: ::1 */
		__u64 hi = 0, lo = 0;
		bpf_probe_read_kernel(&hi, 8, &r->data[(off + 8) & (2 * PATH_CAP + SOCKADDR_CAP - 1)]);
		bpf_probe_read_kernel(&lo, 8, &r->data[(off + 16) & (2 * PATH_CAP + SOCKADDR_CAP - 1)]);
		return !(hi == 0 && lo == 0x0100000000000000ULL);
	}
	return true;
}

/* Paths: one or two user strings. */
SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit_paths, struct pt_regs *regs, long ret)
{
	__u32 id = regs->orig_ax;
	int a, b;
	string_args(id, &a, &b);
	if (is_open(id) && !open_wanted(regs, id, arg_of(regs, a)))
		return 0;
	struct record_syscall *r = start_syscall(regs, ret, id);
	if (!r)
		return 0;
	if (a >= 0)
		read_str1(r, arg_of(regs, a));
	if (b >= 0)
		read_str2(r, arg_of(regs, b));
	if (id == 437) { /* openat2: the flags are in struct open_how */
		__u64 how_flags = 0;
		bpf_probe_read_user(&how_flags, sizeof(how_flags), (const void *)r->args[2]);
		r->args[2] = how_flags;
	}
	finish_syscall(r);
	return 0;
}

#define OVERLAYFS_SUPER_MAGIC 0x794c7630
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define S_IFREG 0100000
#define S_IFDIR 0040000
#define S_IFIFO 0010000
#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10

/* Fills `out` with what descriptor `fd` of the current task is (see struct fd_info). */
static __always_inline void describe_fd(struct fd_info *out, long fd, __u8 accepted)
{
	if (fd < 0)
		return;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || (__u64)fd >= BPF_CORE_READ(fdt, max_fds))
		return;
	struct file **table = BPF_CORE_READ(fdt, fd);
	struct file *f = 0;
	if (bpf_probe_read_kernel(&f, sizeof(f), &table[fd]) || !f)
		return;
	__u16 mode = BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT;
	out->accepted = accepted;
	out->l4proto = 0;
	out->lport = 0;
	out->rport = 0;
	switch (mode) {
	case S_IFREG: {
		/* memfd_create names its file "memfd:<name>". */
		char prefix[6] = {};
		bpf_probe_read_kernel(prefix, sizeof(prefix), BPF_CORE_READ(f, f_path.dentry, d_name.name));
		bool memfd = prefix[0] == 'm' && prefix[1] == 'e' && prefix[2] == 'm' && prefix[3] == 'f' &&
			     prefix[4] == 'd' && prefix[5] == ':';
		out->kind = memfd ? FD_KIND_MEMFD : FD_KIND_FILE;
		return;
	}
	case S_IFDIR: out->kind = FD_KIND_DIRECTORY; return;
	case S_IFIFO: out->kind = FD_KIND_PIPE; return;
	case S_IFSOCK: break;
	default: out->kind = FD_KIND_OTHER; return;
	}
	struct socket *sock = (struct socket *)BPF_CORE_READ(f, private_data);
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk) {
		out->kind = FD_KIND_OTHER;
		return;
	}
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	out->l4proto = BPF_CORE_READ(sk, sk_protocol);
	out->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	out->rport = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		out->kind = FD_KIND_IPV4;
		__u32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 r = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(out->laddr, &l, 4);
		__builtin_memcpy(out->raddr, &r, 4);
	} else if (family == AF_INET6) {
		out->kind = FD_KIND_IPV6;
		struct in6_addr l = BPF_CORE_READ(sk, __sk_common.skc_v6_rcv_saddr);
		struct in6_addr r = BPF_CORE_READ(sk, __sk_common.skc_v6_daddr);
		__builtin_memcpy(out->laddr, &l, 16);
		__builtin_memcpy(out->raddr, &r, 16);
	} else if (family == AF_UNIX) {
		out->kind = FD_KIND_UNIX;
	} else {
		out->kind = FD_KIND_OTHER;
	}
}

/* dup, dup2, dup3 and fcntl: what the descriptor they copy (or change) is. */
SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit_fd, struct pt_regs *regs, long ret)
{
	__u32 id = regs->orig_ax;
	struct record_syscall *r = start_syscall(regs, ret, id);
	if (!r)
		return 0;
	describe_fd(&r->fd, (int)r->args[0], 0);
	finish_syscall(r);
	return 0;
}

/* Socket addresses: connect, bind, sendto, accept. */
SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit_sockaddr, struct pt_regs *regs, long ret)
{
	__u32 id = regs->orig_ax;
	struct record_syscall *r = start_syscall(regs, ret, id);
	if (!r)
		return 0;
	switch (id) {
	case 42: /* connect(fd, addr, len) */
	case 49: /* bind(fd, addr, len) */
		read_sockaddr(r, r->args[1], r->args[2]);
		break;
	case 44: /* sendto(fd, buf, len, flags, addr, addrlen) */
		read_sockaddr(r, r->args[4], r->args[5]);
		break;
	case 43:  /* accept(fd, addr, *len): the kernel filled the peer address */
	case 288: /* accept4 */
		if (ret >= 0 && r->args[1] && r->args[2]) {
			__u32 len = 0;
			bpf_probe_read_user(&len, sizeof(len), (const void *)r->args[2]);
			read_sockaddr(r, r->args[1], len);
		}
		break;
	case 46: { /* sendmsg(fd, msghdr, flags): the destination in msg_name */
		struct user_msghdr msg = {};
		if (bpf_probe_read_user(&msg, sizeof(msg), (const void *)r->args[1]) == 0)
			read_sockaddr(r, (__u64)msg.msg_name, msg.msg_namelen);
		break;
	}
	}
	if (!socket_wanted(r, id))
		return 0;
	if (id == 43 || id == 288)
		describe_fd(&r->fd, ret, 1);
	else
		describe_fd(&r->fd, (int)r->args[0], 0);
	finish_syscall(r);
	return 0;
}

/* Everything else: the raw arguments and the result. */
SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit_generic, struct pt_regs *regs, long ret)
{
	__u32 id = regs->orig_ax;
	struct record_syscall *r = start_syscall(regs, ret, id);
	if (!r)
		return 0;
	finish_syscall(r);
	return 0;
}

/* The dispatcher: drop what no rule needs, then hand over to the syscall's program. */
SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit, struct pt_regs *regs, long ret)
{
	__u32 id = regs->orig_ax;
	if (id >= MAX_SYSCALLS)
		return 0;
	__u8 *wanted = bpf_map_lookup_elem(&INTERESTING, &id);
	if (!wanted || !*wanted)
		return 0;
	if (is_self())
		return 0;
	/* Successful execs are reported by sched_process_exec with the new image in place. */
	if ((id == 59 || id == 322) && ret == 0)
		return 0;
	bpf_tail_call(ctx, &SYSCALL_PROGS, id);
	/* No program registered for this syscall: the generic record. */
	struct record_syscall *r = start_syscall(regs, ret, id);
	if (r)
		finish_syscall(r);
	return 0;
}

/* ---------------------------------------------------------------- processes */

/* The path of a cgroup (kernfs names up the tree), like /proc/PID/cgroup prints it. */
#define CGROUP_DEPTH 8
#define CGROUP_NAME_CAP 128

static __always_inline __u32 cgroup_path(struct cgroup *cgrp, char *buf, char *names)
{
	struct kernfs_node *kn = BPF_CORE_READ(cgrp, kn);
	__u32 lens[CGROUP_DEPTH] = {};
	__u32 depth = 0;

	for (int i = 0; i < CGROUP_DEPTH; i++) {
		if (!kn)
			break;
		struct kernfs_node *parent;
		if (bpf_core_field_exists(kn->__parent))
			parent = BPF_CORE_READ(kn, __parent);
		else
			parent = BPF_CORE_READ((struct kernfs_node___old *)kn, parent);
		if (!parent)
			break; /* the hierarchy's root has no name of its own */
		const char *name = BPF_CORE_READ(kn, name);
		long n = bpf_probe_read_kernel_str(&names[(i & (CGROUP_DEPTH - 1)) * CGROUP_NAME_CAP], CGROUP_NAME_CAP, name);
		/* Longer names are cut; runtime scope names (cri-containerd-<64 hex>.scope) fit. */
		lens[i & (CGROUP_DEPTH - 1)] = n > 0 ? n - 1 : 0;
		depth = i + 1;
		kn = parent;
	}
	__u32 off = 0;
	for (int k = CGROUP_DEPTH - 1; k >= 0; k--) {
		if ((__u32)k >= depth)
			continue;
		__u32 len = lens[k & (CGROUP_DEPTH - 1)] & (CGROUP_NAME_CAP - 1);
		if (off > CGROUP_CAP - CGROUP_NAME_CAP - 2)
			break;
		buf[off & (CGROUP_CAP - 1)] = '/';
		off++;
		bpf_probe_read_kernel(&buf[off & (CGROUP_CAP - 1)], len, &names[(k & (CGROUP_DEPTH - 1)) * CGROUP_NAME_CAP]);
		off += len;
	}
	if (off == 0) {
		buf[0] = '/';
		off = 1;
	}
	buf[off & (CGROUP_CAP - 1)] = 0;
	return (off + 1) & (CGROUP_CAP - 1);
}

/*
 * pid->numbers[level].nr. `numbers` is a flexible array, which aya's CO-RE relocator will not
 * index, so the offset is computed from relocated field offsets and type sizes instead.
 */
static __always_inline __u32 pid_nr_at(struct pid *pid, __u32 level)
{
	__u32 nr = 0;
	__u64 off = bpf_core_field_offset(struct pid, numbers) + (__u64)(level & 7) * bpf_core_type_size(struct upid) +
		    bpf_core_field_offset(struct upid, nr);
	bpf_probe_read_kernel(&nr, sizeof(nr), (void *)pid + off);
	return nr;
}

struct path_names {
	char names[CGROUP_DEPTH * CGROUP_NAME_CAP];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct path_names);
} NAMES SEC(".maps");

/*
 * The cgroup of the first controller that names a container. Runtimes name a container's cgroup
 * after its 64-hex id (<id>, docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope,
 * libpod-<id>.scope) and may place it under some v1 controllers only, so every controller is
 * looked at, as Falco does; the path is then read like the others. `scratch` holds a name.
 */
static __always_inline struct cgroup *container_cgroup(struct css_set *cset, char *scratch)
{
	int count = bpf_core_enum_value(enum cgroup_subsys_id, CGROUP_SUBSYS_COUNT);
	for (int i = 0; i < 16; i++) {
		if (i >= count)
			break;
		struct cgroup_subsys_state *css = BPF_CORE_READ(cset, subsys[i]);
		if (!css)
			continue;
		struct cgroup *cg = BPF_CORE_READ(css, cgroup);
		const char *name = BPF_CORE_READ(cg, kn, name);
		long n = bpf_probe_read_kernel_str(scratch, CGROUP_NAME_CAP, name);
		if (n > 64) /* 64 characters and the NUL */
			return cg;
	}
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(sched_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	if (is_self())
		return 0;
	struct scratch *s = scratch();
	__u32 zero = 0;
	struct path_names *pn = bpf_map_lookup_elem(&NAMES, &zero);
	if (!s || !pn)
		return 0;
	struct record_exec *r = &s->exec;
	fill_header(&r->h, RECORD_EXEC);
	r->h.len = sizeof(*r);

	long n = bpf_probe_read_kernel_str(r->filename, EXEC_PATH_CAP, BPF_CORE_READ(bprm, filename));
	r->filename_len = n > 0 ? n : 0;

	struct mm_struct *mm = BPF_CORE_READ(p, mm);
	__u64 arg_start = BPF_CORE_READ(mm, arg_start);
	__u64 arg_end = BPF_CORE_READ(mm, arg_end);
	__u64 args_len = arg_end - arg_start;
	if (args_len > ARGS_CAP - 1)
		args_len = ARGS_CAP - 1;
	r->args_len = 0;
	if (bpf_probe_read_user(r->args, args_len & (ARGS_CAP - 1), (const void *)arg_start) == 0)
		r->args_len = args_len & (ARGS_CAP - 1);

	struct file *exe = BPF_CORE_READ(mm, exe_file);
	struct dentry *exe_dentry = BPF_CORE_READ(exe, f_path.dentry);

	struct inode *ino = BPF_CORE_READ(exe, f_inode);
	r->exe_ino = BPF_CORE_READ(ino, i_ino);
	r->exe_ctime_ns = 0;
	r->exe_mtime_ns = 0;
	if (bpf_core_field_exists(ino->i_ctime_sec)) {
		/* The top bits of i_ctime_nsec are flags (multigrain timestamps): keep the 30 of nanoseconds. */
		r->exe_ctime_ns = (__s64)BPF_CORE_READ(ino, i_ctime_sec) * 1000000000LL + (BPF_CORE_READ(ino, i_ctime_nsec) & 0x3fffffff);
		r->exe_mtime_ns = (__s64)BPF_CORE_READ(ino, i_mtime_sec) * 1000000000LL + (BPF_CORE_READ(ino, i_mtime_nsec) & 0x3fffffff);
	}

	r->exe_flags = 0;
	char prefix[6] = {};
	bpf_probe_read_kernel(prefix, sizeof(prefix), BPF_CORE_READ(exe_dentry, d_name.name));
	if (prefix[0] == 'm' && prefix[1] == 'e' && prefix[2] == 'm' && prefix[3] == 'f' && prefix[4] == 'd' && prefix[5] == ':')
		r->exe_flags |= EXE_FROM_MEMFD;
	/*
	 * On overlayfs (a container's root), whether the executable is in the upper, writable layer
	 * (written or copied up since the container started) or only in an image layer below. struct
	 * ovl_inode belongs to the overlay module, absent from vmlinux's BTF, and puts __upperdentry
	 * right after its embedded vfs_inode: read the pointer there, as Falco's modern probe does.
	 */
	if (BPF_CORE_READ(ino, i_sb, s_magic) == OVERLAYFS_SUPER_MAGIC) {
		struct dentry *upper = 0;
		bpf_probe_read_kernel(&upper, sizeof(upper), (char *)ino + bpf_core_type_size(struct inode));
		r->exe_flags |= upper ? EXE_UPPER_LAYER : EXE_LOWER_LAYER;
	}
	/* An executable anyone may write to. */
	umode_t mode = BPF_CORE_READ(ino, i_mode);
	if (mode & 0002)
		r->exe_flags |= EXE_WRITABLE;

	r->cap_effective = BPF_CORE_READ(p, cred, cap_effective.val);
	r->cap_permitted = BPF_CORE_READ(p, cred, cap_permitted.val);

	struct tty_struct *tty = BPF_CORE_READ(p, signal, tty);
	r->tty = 0;
	if (tty) {
		int major = BPF_CORE_READ(tty, driver, major);
		int minor_start = BPF_CORE_READ(tty, driver, minor_start);
		int index = BPF_CORE_READ(tty, index);
		r->tty = ((__u32)major << 8) | (__u32)(minor_start + index);
	}
	r->sid = 0;
	struct pid *sid_pid = BPF_CORE_READ(p, signal, pids[PIDTYPE_SID]);
	if (sid_pid)
		r->sid = pid_nr_at(sid_pid, 0);
	struct pid *tpid = BPF_CORE_READ(p, thread_pid);
	r->vpid = pid_nr_at(tpid, BPF_CORE_READ(tpid, level));

	struct css_set *cset = BPF_CORE_READ(p, cgroups);
	struct cgroup *cgs[3];
	cgs[0] = BPF_CORE_READ(cset, subsys[cpu_cgrp_id], cgroup);
	cgs[1] = container_cgroup(cset, pn->names);
	if (!cgs[1])
		cgs[1] = BPF_CORE_READ(cset, subsys[memory_cgrp_id], cgroup);
	cgs[2] = BPF_CORE_READ(cset, dfl_cgrp);
	for (int i = 0; i < 3; i++)
		r->cgroup_len[i] = cgroup_path(cgs[i], r->cgroup[i], pn->names);

	submit(r, sizeof(*r));
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	if (is_self())
		return 0;
	__u32 child_pid = BPF_CORE_READ(child, tgid);
	__u32 child_tid = BPF_CORE_READ(child, pid);
	if (child_pid != child_tid)
		return 0; /* a new thread, not a new process */
	struct record_fork r = {};
	fill_header(&r.h, RECORD_FORK);
	r.h.len = sizeof(r);
	r.child_pid = child_pid;
	r.child_tid = child_tid;
	submit(&r, sizeof(r));
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(sched_process_exit, struct task_struct *p)
{
	if (is_self())
		return 0;
	if (BPF_CORE_READ(p, pid) != BPF_CORE_READ(p, tgid))
		return 0; /* a thread, not the process */
	struct record_exit r = {};
	fill_header(&r.h, RECORD_EXIT);
	r.h.len = sizeof(r);
	r.exit_code = BPF_CORE_READ(p, exit_code) >> 8;
	submit(&r, sizeof(r));
	return 0;
}
