/*
 * connhook.c — who called connect(): a cgroup connect hook (eBPF, IPv4 and
 * IPv6) at the root of the cgroup v2 hierarchy records, for every TCP
 * connect() on the host, the socket's cookie and the calling process. The
 * queue's SYN is then tied to its process by one map lookup (sock_diag gives
 * the cookie) instead of a walk over every process's fd table.
 *
 * The program is written here by hand, a score of instructions plus one per
 * fenced port and MTA uid it filters on: it only records and always lets
 * the connect proceed, so the fence never depends on it. It
 * is attached through BPF links held by this process: when the daemon exits,
 * however it exits, the kernel detaches them. No libbpf, no compiler. Pids
 * are the initial pid namespace's; each comes with the connect's time, so
 * that the caller can tell the process from one given its pid since
 * (bpf_ktime_get_boot_ns: Linux 5.8; an older kernel refuses the program and
 * the caller searches /proc).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "smtpguard.h"

/*
 * The lookup follows the connect by a queue round trip (well under a second);
 * LRU eviction makes room, so this is the connects in flight, not a history.
 */
#define CONNHOOK_ENTRIES	16384
#define MOUNTINFO_LINE_MAX	4096

/* The map's value: who called connect(), and when. */
struct connhook_entry {
	uint64_t	 pid_tgid;	/* tgid << 32 | tid */
	uint64_t	 boot_ns;	/* CLOCK_BOOTTIME */
};

struct connhook {
	int	 map;
	int	 prog[2];	/* IPv4, IPv6 connect */
	int	 link[2];
};

static long
sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

#define INSN(c, d, s, o, i) \
	((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })

/* Filter tests plus the fixed part: ample for CONNHOOK_PORTS_MAX + CONNHOOK_SKIP_MAX. */
#define CONNHOOK_INSNS_MAX	(CONNHOOK_PORTS_MAX + CONNHOOK_SKIP_MAX + 32)

struct prog_text {
	struct bpf_insn	 insn[CONNHOOK_INSNS_MAX];
	size_t		 n;
	size_t		 to_record[CONNHOOK_PORTS_MAX];	/* jumps patched to "record" */
	size_t		 nrecord;
	size_t		 to_out[CONNHOOK_SKIP_MAX + 4];	/* jumps patched to "out" */
	size_t		 nout;
};

static void
emit(struct prog_text *t, struct bpf_insn i)
{
	t->insn[t->n++] = i;
}

static void
emit_jump(struct prog_text *t, uint8_t code, uint8_t reg, int32_t imm, size_t *fixups, size_t *n)
{
	fixups[(*n)++] = t->n;
	emit(t, INSN(code, reg, 0, 0, imm));
}

static void
patch(struct prog_text *t, const size_t *fixups, size_t n, size_t target)
{
	for (size_t i = 0; i < n; i++)
		t->insn[fixups[i]].off = (int16_t)(target - fixups[i] - 1);
}

/*
 * The program, written out for this filter: TCP only; then, when F names
 * ports, only connects to one of them (the port as the caller gave it,
 * before any NAT); then nobody whose uid F skips (the MTA's: its flows never
 * reach the queue). What passes is recorded: cookie -> struct connhook_entry.
 * Whatever it decides, the connect proceeds. A connect it does not record is
 * still attributed, by the /proc scan: the filter only saves work.
 */
static void
write_prog(struct prog_text *t, int map, const struct connhook_filter *f)
{
	memset(t, 0, sizeof(*t));
	emit(t, INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_6, BPF_REG_1, 0, 0));
	/* Only TCP: UDP connects (DNS) would only churn the map. */
	emit(t, INSN(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_6,
	    offsetof(struct bpf_sock_addr, protocol), 0));
	emit_jump(t, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_2, IPPROTO_TCP, t->to_out, &t->nout);
	if (f->nports > 0) {
		/* user_port holds the port in network order in its low 16 bits. */
		emit(t, INSN(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_6,
		    offsetof(struct bpf_sock_addr, user_port), 0));
		for (size_t i = 0; i < f->nports; i++)
			emit_jump(t, BPF_JMP32 | BPF_JEQ | BPF_K, BPF_REG_2,
			    htons(f->ports[i]), t->to_record, &t->nrecord);
		emit_jump(t, BPF_JMP | BPF_JA, 0, 0, t->to_out, &t->nout);
	}
	patch(t, t->to_record, t->nrecord, t->n);
	if (f->nskip > 0) {
		/* The low 32 bits are the uid. */
		emit(t, INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_get_current_uid_gid));
		for (size_t i = 0; i < f->nskip; i++)
			emit_jump(t, BPF_JMP32 | BPF_JEQ | BPF_K, BPF_REG_0, (int32_t)f->skip[i],
			    t->to_out, &t->nout);
	}
	emit(t, INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_1, BPF_REG_6, 0, 0));
	emit(t, INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_get_socket_cookie));
	emit(t, INSN(BPF_STX | BPF_MEM | BPF_DW, BPF_REG_10, BPF_REG_0, -8, 0));
	emit(t, INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_get_current_pid_tgid));
	emit(t, INSN(BPF_STX | BPF_MEM | BPF_DW, BPF_REG_10, BPF_REG_0,
	    -24 + (int16_t)offsetof(struct connhook_entry, pid_tgid), 0));
	emit(t, INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_ktime_get_boot_ns));
	emit(t, INSN(BPF_STX | BPF_MEM | BPF_DW, BPF_REG_10, BPF_REG_0,
	    -24 + (int16_t)offsetof(struct connhook_entry, boot_ns), 0));
	emit(t, INSN(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, map));
	emit(t, INSN(0, 0, 0, 0, 0));
	emit(t, INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_10, 0, 0));
	emit(t, INSN(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, -8));
	emit(t, INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_3, BPF_REG_10, 0, 0));
	emit(t, INSN(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_3, 0, 0, -24));
	emit(t, INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_4, 0, 0, BPF_ANY));
	emit(t, INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_update_elem));
	patch(t, t->to_out, t->nout, t->n);
	/* out: 1 = let the connect proceed */
	emit(t, INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1));
	emit(t, INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
}

static int
load_prog(int map, enum bpf_attach_type type, const struct connhook_filter *f)
{
	struct prog_text t;
	union bpf_attr a;

	if (f->nports > CONNHOOK_PORTS_MAX || f->nskip > CONNHOOK_SKIP_MAX) {
		errno = E2BIG;
		return -1;
	}
	write_prog(&t, map, f);
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_CGROUP_SOCK_ADDR;
	a.expected_attach_type = type;
	a.insns = (uintptr_t)t.insn;
	a.insn_cnt = (uint32_t)t.n;
	a.license = (uintptr_t)"GPL";
	return (int)sys_bpf(BPF_PROG_LOAD, &a);
}

/* The first cgroup2 mount point in MOUNTINFO, prefixed with ROOT. */
static int
cgroup2_mount(const char *mountinfo, const char *root, char *path, size_t size)
{
	char line[MOUNTINFO_LINE_MAX];
	FILE *fp;
	int found = -1;

	if ((fp = fopen(mountinfo, "re")) == NULL)
		return -1;
	while (found < 0 && fgets(line, sizeof(line), fp) != NULL) {
		char mnt[PATH_MAX], fstype[32];
		const char *sep = strstr(line, " - ");

		/* id parent major:minor root MOUNT-POINT options ... - FSTYPE ... */
		if (sep == NULL || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 ||
		    sscanf(sep + 3, "%31s", fstype) != 1 || strcmp(fstype, "cgroup2") != 0)
			continue;
		if ((size_t)snprintf(path, size, "%s%s", root, mnt) < size)
			found = 0;
	}
	fclose(fp);
	if (found < 0)
		errno = ENOENT;
	return found;
}

/*
 * The cgroup v2 hierarchy (/sys/fs/cgroup, or .../unified on hybrid hosts):
 * ours, or else init's through /proc/1/root, for a mount namespace that
 * remounted /sys (ip netns exec does).
 */
static int
cgroup2_root(char *path, size_t size)
{
	if (cgroup2_mount("/proc/self/mountinfo", "", path, size) == 0)
		return 0;
	return cgroup2_mount("/proc/1/mountinfo", "/proc/1/root", path, size);
}

void
connhook_close(struct connhook *h)
{
	if (h == NULL)
		return;
	for (int i = 0; i < 2; i++) {
		if (h->link[i] >= 0)
			close(h->link[i]);
		if (h->prog[i] >= 0)
			close(h->prog[i]);
	}
	if (h->map >= 0)
		close(h->map);
	free(h);
}

static const enum bpf_attach_type attach_types[2] = { BPF_CGROUP_INET4_CONNECT,
    BPF_CGROUP_INET6_CONNECT };

struct connhook *
connhook_open(char *where, size_t wheresize, const struct connhook_filter *f)
{
	struct connhook *h;
	union bpf_attr a;
	int cg = -1, saved;

	if ((h = malloc(sizeof(*h))) == NULL)
		return NULL;
	h->map = h->prog[0] = h->prog[1] = h->link[0] = h->link[1] = -1;
	if (cgroup2_root(where, wheresize) < 0 ||
	    (cg = open(where, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		goto err;
	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_LRU_HASH;
	a.key_size = sizeof(uint64_t);		/* socket cookie */
	a.value_size = sizeof(struct connhook_entry);
	a.max_entries = CONNHOOK_ENTRIES;
	if ((h->map = (int)sys_bpf(BPF_MAP_CREATE, &a)) < 0)
		goto err;
	for (int i = 0; i < 2; i++) {
		if ((h->prog[i] = load_prog(h->map, attach_types[i], f)) < 0)
			goto err;
		memset(&a, 0, sizeof(a));
		a.link_create.prog_fd = (uint32_t)h->prog[i];
		a.link_create.target_fd = (uint32_t)cg;
		a.link_create.attach_type = attach_types[i];
		if ((h->link[i] = (int)sys_bpf(BPF_LINK_CREATE, &a)) < 0)
			goto err;
	}
	close(cg);
	return h;
err:
	saved = errno;
	if (cg >= 0)
		close(cg);
	connhook_close(h);
	errno = saved;
	return NULL;
}

/*
 * A new filter, for a reload: both programs are loaded first, then swapped
 * into their links one by one (each swap atomic); on an error before the
 * swaps the old programs stay.
 */
int
connhook_refilter(struct connhook *h, const struct connhook_filter *f)
{
	int next[2] = { -1, -1 }, saved;
	union bpf_attr a;

	for (int i = 0; i < 2; i++)
		if ((next[i] = load_prog(h->map, attach_types[i], f)) < 0)
			goto err;
	for (int i = 0; i < 2; i++) {
		memset(&a, 0, sizeof(a));
		a.link_update.link_fd = (uint32_t)h->link[i];
		a.link_update.new_prog_fd = (uint32_t)next[i];
		if (sys_bpf(BPF_LINK_UPDATE, &a) < 0)
			goto err;
		close(h->prog[i]);
		h->prog[i] = next[i];
		next[i] = -1;
	}
	return 0;
err:
	saved = errno;
	for (int i = 0; i < 2; i++)
		if (next[i] >= 0)
			close(next[i]);
	errno = saved;
	return -1;
}

/* Who connected the socket, and when (CLOCK_BOOTTIME); -1 (ENOENT) if not recorded. */
int
connhook_pid(struct connhook *h, uint64_t cookie, pid_t *pid, uint64_t *boot_ns)
{
	union bpf_attr a;
	struct connhook_entry e;

	memset(&a, 0, sizeof(a));
	a.map_fd = (uint32_t)h->map;
	a.key = (uintptr_t)&cookie;
	a.value = (uintptr_t)&e;
	if (sys_bpf(BPF_MAP_LOOKUP_ELEM, &a) < 0)
		return -1;
	*pid = (pid_t)(e.pid_tgid >> 32);
	*boot_ns = e.boot_ns;
	return 0;
}
