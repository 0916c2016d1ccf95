/*
 * filter.c - the seccomp filter that turns a process's potentially
 * blocking system calls into user notifications for the supervisor.
 *
 * Which calls: SCHEDCTL_NOTIFY (`--notify`), a comma list evaluated left
 * to right over a starting set: `default` (or a first token starting
 * with + or -) starts from the default set, otherwise from nothing;
 * `NAME` or `+NAME` adds, `-NAME` removes.  futex is special: only its
 * waiting operations are notified, never a wake.
 *
 * The program (classic BPF, generated because libseccomp cannot test
 * arguments across calls the way we need):
 *
 *     arch != x86_64            -> ALLOW
 *     nr == futex               -> FUTEX
 *     nr == each notified call  -> COOKIE
 *                                  ALLOW
 *   FUTEX:  (op & 0x7f) is a wait -> COOKIE, else ALLOW
 *   COOKIE: arg5 == SC_SYSCALL_COOKIE -> ALLOW, else USER_NOTIF
 *
 * Calls nobody asked about cost two loads and a compare chain; the
 * runtime's own waits carry the cookie (proto.h).
 *
 * Installing needs no_new_privs (we are unprivileged as far as seccomp
 * is concerned): from then on, exec never grants privileges, so setuid
 * programs started by a supervised program run without them.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "supervisor/sv.h"

static const char *const filter_defaults[] = {
	"futex", "futex_waitv", "nanosleep", "clock_nanosleep", "poll",
	"ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait",
	"epoll_pwait2", "pause", "rt_sigsuspend", "rt_sigtimedwait",
	"wait4", "waitid",
};
#define FILTER_NDEFAULTS (sizeof filter_defaults / sizeof filter_defaults[0])

static int filter_add(struct sv_notify_set *set, int nr)
{
	for (int i = 0; i < set->ns_n; i++)
		if (set->ns_nr[i] == nr)
			return 0;
	if (set->ns_n == SV_NOTIFY_MAX)
		return -1;
	set->ns_nr[set->ns_n++] = nr;
	return 0;
}

static void filter_remove(struct sv_notify_set *set, int nr)
{
	for (int i = 0; i < set->ns_n; i++)
		if (set->ns_nr[i] == nr) {
			set->ns_nr[i] = set->ns_nr[--set->ns_n];
			return;
		}
}

static void filter_add_defaults(struct sv_notify_set *set)
{
	for (size_t i = 0; i < FILTER_NDEFAULTS; i++) {
		int nr = seccomp_syscall_resolve_name(filter_defaults[i]);
		if (nr >= 0)
			(void)filter_add(set, nr);
	}
}

int sv_notify_parse(const char *spec, struct sv_notify_set *set,
                    char *err, size_t errlen)
{
	memset(set, 0, sizeof *set);
	if (!spec || !*spec) {
		filter_add_defaults(set);
		return 0;
	}
	char buf[1024];
	if (strlen(spec) >= sizeof buf) {
		snprintf(err, errlen, "notify list too long");
		return -1;
	}
	strcpy(buf, spec);
	bool first = true;
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save), first = false) {
		if (strcmp(tok, "default") == 0) {
			filter_add_defaults(set);
			continue;
		}
		char sign = (*tok == '+' || *tok == '-') ? *tok++ : 0;
		if (first && sign)
			filter_add_defaults(set);
		int nr = seccomp_syscall_resolve_name(tok);
		if (nr < 0) {
			snprintf(err, errlen, "unknown system call '%s' in notify list",
			         tok);
			return -1;
		}
		if (sign == '-')
			filter_remove(set, nr);
		else if (filter_add(set, nr) < 0) {
			snprintf(err, errlen, "notify list has more than %d calls",
			         SV_NOTIFY_MAX);
			return -1;
		}
	}
	return 0;
}

/* A small assembler: forward jumps to labels, patched at the end. */
struct filter_prog {
	struct sock_filter fp_ins[4 * SV_NOTIFY_MAX + 32];
	unsigned fp_n;
	unsigned fp_fix[2 * SV_NOTIFY_MAX + 16];   /* (insn << 2) | label */
	unsigned fp_nfix;
};

enum { L_ALLOW, L_NOTIF, L_FUTEX, L_COOKIE, L_NLABELS };

static void emit(struct filter_prog *p, uint16_t code, uint32_t k)
{
	p->fp_ins[p->fp_n++] = (struct sock_filter)BPF_STMT(code, k);
}

/* jeq k: true -> label, false -> next instruction. */
static void emit_jeq(struct filter_prog *p, uint32_t k, int label)
{
	p->fp_fix[p->fp_nfix++] = (p->fp_n << 2) | (unsigned)label;
	p->fp_ins[p->fp_n++] = (struct sock_filter)
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, k, 0, 0);
}

static int filter_link(struct filter_prog *p, const unsigned *where)
{
	for (unsigned i = 0; i < p->fp_nfix; i++) {
		unsigned at = p->fp_fix[i] >> 2, label = p->fp_fix[i] & 3;
		unsigned off = where[label] - at - 1;
		if (off > 255)
			return -E2BIG;
		p->fp_ins[at].jt = (uint8_t)off;
	}
	return 0;
}

#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#define ARG_HI(i) (ARG_LO(i) + 4)

static int filter_build(const struct sv_notify_set *set, struct filter_prog *p)
{
	unsigned where[L_NLABELS];
	memset(p, 0, sizeof *p);
	emit(p, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	p->fp_ins[p->fp_n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ |
		BPF_K, AUDIT_ARCH_X86_64, 1, 0);
	emit(p, BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	emit(p, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	bool futex = false;
	for (int i = 0; i < set->ns_n; i++) {
		if (set->ns_nr[i] == SYS_futex)
			futex = true;
		else
			emit_jeq(p, (uint32_t)set->ns_nr[i], L_COOKIE);
	}
	if (futex)
		emit_jeq(p, SYS_futex, L_FUTEX);
	where[L_ALLOW] = p->fp_n;
	emit(p, BPF_RET | BPF_K, SECCOMP_RET_ALLOW);

	where[L_FUTEX] = p->fp_n;
	emit(p, BPF_LD | BPF_W | BPF_ABS, ARG_LO(1));
	emit(p, BPF_ALU | BPF_AND | BPF_K, FUTEX_CMD_MASK & 0x7f);
	static const uint32_t waits[] = { FUTEX_WAIT, FUTEX_WAIT_BITSET,
		FUTEX_LOCK_PI, FUTEX_WAIT_REQUEUE_PI, 13 /* FUTEX_LOCK_PI2 */ };
	for (size_t i = 0; i < sizeof waits / sizeof waits[0]; i++)
		emit_jeq(p, waits[i], L_COOKIE);
	emit(p, BPF_RET | BPF_K, SECCOMP_RET_ALLOW);

	where[L_COOKIE] = p->fp_n;
	emit(p, BPF_LD | BPF_W | BPF_ABS, ARG_LO(5));
	p->fp_ins[p->fp_n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ |
		BPF_K, (uint32_t)SC_SYSCALL_COOKIE, 0, 3);
	emit(p, BPF_LD | BPF_W | BPF_ABS, ARG_HI(5));
	p->fp_ins[p->fp_n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ |
		BPF_K, (uint32_t)(SC_SYSCALL_COOKIE >> 32), 0, 1);
	emit(p, BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	where[L_NOTIF] = p->fp_n;
	emit(p, BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF);
	return filter_link(p, where);
}

int sv_filter_install(const struct sv_notify_set *set)
{
	struct filter_prog p;
	int err = filter_build(set, &p);
	if (err < 0)
		return err;
	struct sock_fprog fprog = { .len = (unsigned short)p.fp_n,
	                            .filter = p.fp_ins };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
	                  SECCOMP_FILTER_FLAG_NEW_LISTENER, &fprog);
	if (fd < 0)
		return -errno;
	/* The listener must not leak into exec'd images: each image gets
	 * its own (the newest filter wins, see notify.c).  The filter is in
	 * force now: calls made until the supervisor has the listener carry
	 * the cookie, so a notify set naming them cannot deadlock us. */
	(void)sc_marked_syscall(SYS_fcntl, fd, F_SETFD, FD_CLOEXEC, 0, 0);
	return (int)fd;
}

int sv_listener_sync_wakeup(int listener)
{
	long r = sc_marked_syscall(SYS_ioctl, listener,
	                           (long)SECCOMP_IOCTL_NOTIF_SET_FLAGS,
	                           (long)SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, 0, 0);
	return r < 0 ? (int)r : 0;
}
