/*
 * withdraw.c - a notified call that a signal interrupted before the
 * supervisor answered gets the outcome of the native call interrupted as
 * it began (main thread only: it is the tracer).
 *
 * A signal arriving while a notification waits for its answer withdraws
 * it: the call ends with -ERESTARTSYS before it ran, which the kernel
 * turns into EINTR, or (SA_RESTART) a restart with the whole call.  Few
 * waits end so natively: pause waiting for another signal after its
 * handler ran was a hang.  Before the kernel decides, the thread stops
 * for the signal's delivery (we trace it) with that value in rax, so
 * trace.c calls sv_withdrawn() there and we rewrite rax, for the calls
 * of withdraw_calls[] only, and only in the cases where they never end
 * with -ERESTARTSYS natively (so the value means "withdrawn"; checked
 * natively by tests/storm/window.c: EINTR after an SA_RESTART handler;
 * sources fs/select.c, fs/eventpoll.c, kernel/signal.c,
 * kernel/futex/waitwake.c, kernel/exit.c, kernel/time/):
 *
 *   call                        native code, when a signal interrupts it
 *   nanosleep, clock_nanosleep  ERESTART_RESTARTBLOCK / ERESTARTNOHAND
 *   pause, rt_sigsuspend,       ERESTARTNOHAND (poll: RESTARTBLOCK): EINTR
 *   poll, ppoll, select,          if a handler runs, even with SA_RESTART,
 *   pselect6                      a restart otherwise (a stop, a signal
 *                                 ignored); ppoll, select, pselect6 write
 *                                 the time left (EINTR if they cannot)
 *   epoll_wait, epoll_pwait,    EINTR, handler or not
 *   epoll_pwait2, rt_sigtimedwait
 *   futex WAIT, WAIT_BITSET     ERESTART_RESTARTBLOCK (EINTR after a
 *   with a timeout                handler), untimed ERESTARTSYS: left alone
 *   wait4, waitid with WNOHANG  none (never sleeps); without: ERESTARTSYS,
 *                                 left alone
 *
 * The call never began, so the time left is the whole timeout (relative
 * ones restart with it; poll's restart block would keep an end time).
 * A signal that neither runs a handler nor stops the thread (ignored,
 * or ignored by default: SIGCHLD, SIGURG, SIGWINCH, SIGCONT) still
 * withdraws a traced thread's notification; natively it does not reach
 * the wait at all, so the outcome is a restart (-ERESTARTNOINTR),
 * whatever the call.
 *
 * Arguments a native call would refuse before waiting (EFAULT, EINVAL)
 * give rax = -ERESTARTNOINTR: the handler runs, then the call is made
 * again and fails natively, as if the signal had come just before the
 * call; so do calls that never wait natively (WNOHANG, a zero
 * epoll/rt_sigtimedwait timeout, a futex word that differs).  Checked
 * here: pointers read (process_vm_readv), sizes, timeouts, the epoll
 * fd (/proc/TID/fd); not checked: the fds of poll and select (natively
 * POLLNVAL or EBADF at once) and their readiness, epoll's event buffer
 * (natively EFAULT only for a kernel address): those get EINTR, and the
 * program's retry sees the native result.  rt_sigtimedwait hit by a
 * signal of its own set that the thread left unblocked gets EINTR and
 * the handler where natively it returns the signal (POSIX leaves this
 * undefined).  The masks of rt_sigsuspend, ppoll, pselect6 and
 * epoll_pwait[2] were never set: only a signal the thread's own mask
 * lets through withdraws them (others wait for the kernel's call), and
 * its handler runs with that mask.
 *
 * If the supervisor is stopped, the thread waits in its delivery stop
 * until we run: the outcome is the same.  Only x86_64 tasks (cs 0x33):
 * the filter notifies nothing else.  Cost: one PTRACE_GETREGS per
 * delivered signal, a few reads per withdrawn call.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sc/sc.h"
#include "supervisor/withdraw.h"

#if defined(__x86_64__)
/* The kernel's restart codes (include/linux/errno.h, not uapi). */
#define WD_ERESTARTSYS    512
#define WD_ERESTARTNOINTR 513
#define WD_ERESTARTNOHAND 514
#define WD_USER_CS_64     0x33
#define WD_LEAVE   (-WD_ERESTARTSYS)     /* rax stays */
#define WD_REDO    (-WD_ERESTARTNOINTR)
#define WD_NOHAND  (-WD_ERESTARTNOHAND)
#define WD_EPOLL_MAX (0x7fffffff / 12)   /* EP_MAX_EVENTS */

typedef struct user_regs_struct wd_regs;

static bool wd_read(pid_t tid, unsigned long addr, void *buf, size_t len)
{
	struct iovec local = { buf, len }, remote = { (void *)addr, len };
	return process_vm_readv(tid, &local, 1, &remote, 1, 0) == (ssize_t)len;
}

static bool wd_write(pid_t tid, unsigned long addr, const void *buf,
                     size_t len)
{
	struct iovec local = { (void *)buf, len }, remote = { (void *)addr, len };
	return process_vm_writev(tid, &local, 1, &remote, 1, 0) == (ssize_t)len;
}

/* len bytes at addr are readable (read a page at a time). */
static bool wd_readable(pid_t tid, unsigned long addr, size_t len)
{
	char buf[4096];
	for (size_t n; len; addr += n, len -= n) {
		n = len < sizeof buf ? len : sizeof buf;
		if (!wd_read(tid, addr, buf, n))
			return false;
	}
	return true;
}

/* => 1 a valid timespec at addr (in *ts), 0 none (addr 0), -1 unreadable
 * or invalid (natively EFAULT or EINVAL). */
static int wd_timespec(pid_t tid, unsigned long addr, struct timespec *ts)
{
	if (!addr)
		return 0;
	if (!wd_read(tid, addr, ts, sizeof *ts))
		return -1;
	return ts->tv_sec >= 0 && ts->tv_nsec >= 0 &&
	       ts->tv_nsec < 1000000000L ? 1 : -1;
}

static bool wd_zero(const struct timespec *ts)
{
	return ts->tv_sec == 0 && ts->tv_nsec == 0;
}

/* A signal mask argument: none, or sigsetsize 8 and readable. */
static bool wd_mask_ok(pid_t tid, unsigned long addr, unsigned long size)
{
	return !addr || (size == 8 && wd_readable(tid, addr, 8));
}

/* poll's fds: nfds within RLIMIT_NOFILE and the array readable. */
static bool wd_pollfds_ok(pid_t tid, unsigned long fds, unsigned long nfds)
{
	struct rlimit rl;
	if (prlimit(tid, RLIMIT_NOFILE, NULL, &rl) == 0 && nfds > rl.rlim_cur)
		return false;
	return wd_readable(tid, fds, nfds * 8);
}

/* ppoll, select, pselect6 write back the time left: the whole timeout;
 * natively a zero one is not written, and one that cannot be makes EINTR
 * (no restart: the time left is lost). */
static long wd_time_left(pid_t tid, unsigned long addr, const void *tv,
                         bool zero)
{
	if (!addr || zero)
		return WD_NOHAND;
	return wd_write(tid, addr, tv, sizeof(struct timespec)) ? WD_NOHAND :
	       -EINTR;
}

static long wd_sleep(pid_t tid, const wd_regs *r)
{
	unsigned long req = r->rdi, rem = r->rsi;
	long clock = CLOCK_REALTIME;
	bool relative = true;
	if (r->orig_rax == SYS_clock_nanosleep) {
		clock = (long)(int)r->rdi;
		relative = !(r->rsi & TIMER_ABSTIME);
		req = r->rdx;
		rem = r->r10;
	}
	struct timespec ts;
	/* The clocks clock_nanosleep sleeps on without a capability. */
	if ((clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC &&
	     clock != CLOCK_BOOTTIME && clock != CLOCK_TAI) ||
	    wd_timespec(tid, req, &ts) != 1)
		return WD_REDO;
	if (relative && rem && !wd_write(tid, rem, &ts, sizeof ts))
		return -EFAULT;
	return WD_NOHAND;
}

static long wd_pause(pid_t tid, const wd_regs *r)
{
	(void)tid;
	(void)r;
	return WD_NOHAND;
}

static long wd_sigsuspend(pid_t tid, const wd_regs *r)
{
	return r->rdi && wd_mask_ok(tid, r->rdi, r->rsi) ? WD_NOHAND : WD_REDO;
}

static long wd_poll(pid_t tid, const wd_regs *r)
{
	return wd_pollfds_ok(tid, r->rdi, (unsigned)r->rsi) ? WD_NOHAND : WD_REDO;
}

static long wd_ppoll(pid_t tid, const wd_regs *r)
{
	struct timespec ts = { 0, 0 };
	if (wd_timespec(tid, r->rdx, &ts) < 0 || !wd_mask_ok(tid, r->r10, r->r8) ||
	    !wd_pollfds_ok(tid, r->rdi, (unsigned)r->rsi))
		return WD_REDO;
	return wd_time_left(tid, r->rdx, &ts, wd_zero(&ts));
}

/* select (a timeval, normalised as the kernel does) and pselect6 (a
 * timespec; its sixth argument points to { sigset_t *, size }). */
static long wd_select(pid_t tid, const wd_regs *r)
{
	/* The kernel reads at most its fd table's size of each set; that is
	 * at most fs.nr_open (default 2^20) bits: read no more. */
	int n = (int)r->rdi;
	size_t bits = n < 0 ? 0 : n > (1 << 20) ? (1 << 20) : (size_t)n;
	size_t bytes = (bits + 63) / 64 * 8;
	struct timespec ts = { 0, 0 };
	if (n < 0 || (r->rsi && !wd_readable(tid, r->rsi, bytes)) ||
	    (r->rdx && !wd_readable(tid, r->rdx, bytes)) ||
	    (r->r10 && !wd_readable(tid, r->r10, bytes)))
		return WD_REDO;
	if (r->orig_rax == SYS_pselect6) {
		uint64_t sig[2];
		if (wd_timespec(tid, r->r8, &ts) < 0 || (r->r9 &&
		    (!wd_read(tid, r->r9, sig, sizeof sig) ||
		     !wd_mask_ok(tid, sig[0], sig[1]))))
			return WD_REDO;
		return wd_time_left(tid, r->r8, &ts, wd_zero(&ts));
	}
	struct { long sec, usec; } tv = { 0, 0 };
	if (r->r8) {
		if (!wd_read(tid, r->r8, &tv, sizeof tv))
			return WD_REDO;
		tv.sec += tv.usec / 1000000;
		tv.usec %= 1000000;
		if (tv.sec < 0 || tv.usec < 0)
			return WD_REDO;
	}
	return wd_time_left(tid, r->r8, &tv, tv.sec == 0 && tv.usec == 0);
}

/* fd is an epoll instance in tid's file table. */
static bool wd_is_epoll(pid_t tid, int fd)
{
	char path[64], link[64];
	snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)tid, fd);
	ssize_t n = readlink(path, link, sizeof link - 1);
	if (n < 0)
		return false;
	link[n] = 0;
	return strcmp(link, "anon_inode:[eventpoll]") == 0;
}

/* epoll_wait, epoll_pwait (r10: ms), epoll_pwait2 (r10: a timespec). */
static long wd_epoll(pid_t tid, const wd_regs *r)
{
	int max = (int)r->rdx;
	bool zero;
	if (r->orig_rax == SYS_epoll_pwait2) {
		struct timespec ts;
		int t = wd_timespec(tid, r->r10, &ts);
		if (t < 0)
			return WD_REDO;
		zero = t == 1 && wd_zero(&ts);
	} else {
		zero = (int)r->r10 == 0;
	}
	if (zero || max <= 0 || max > WD_EPOLL_MAX ||
	    (r->orig_rax != SYS_epoll_wait && !wd_mask_ok(tid, r->r8, r->r9)) ||
	    !wd_is_epoll(tid, (int)r->rdi))
		return WD_REDO;
	return -EINTR;
}

static long wd_sigtimedwait(pid_t tid, const wd_regs *r)
{
	struct timespec ts;
	int t = wd_timespec(tid, r->rdx, &ts);
	if (r->r10 != 8 || !wd_readable(tid, r->rdi, 8) || t < 0 ||
	    (t == 1 && wd_zero(&ts)))
		return WD_REDO;
	return -EINTR;
}

/* Timed FUTEX_WAIT and FUTEX_WAIT_BITSET only: untimed waits (and the
 * other operations) end with -ERESTARTSYS natively too. */
static long wd_futex(pid_t tid, const wd_regs *r)
{
	int cmd = (int)r->rsi & FUTEX_CMD_MASK;
	if ((cmd != FUTEX_WAIT && cmd != FUTEX_WAIT_BITSET) || !r->r10)
		return WD_LEAVE;
	struct timespec ts;
	uint32_t word;
	if ((cmd == FUTEX_WAIT_BITSET && (uint32_t)r->r9 == 0) || (r->rdi & 3) ||
	    !wd_read(tid, r->rdi, &word, sizeof word) ||
	    word != (uint32_t)r->rdx || wd_timespec(tid, r->r10, &ts) < 0)
		return WD_REDO;
	return WD_NOHAND;
}

static long wd_wait(pid_t tid, const wd_regs *r)
{
	(void)tid;
	unsigned long options = r->orig_rax == SYS_wait4 ? r->rdx : r->r10;
	return options & WNOHANG ? WD_REDO : WD_LEAVE;
}

/* sig runs a handler in tid, or stops it (natively the waits above
 * then end); otherwise it is ignored (SigIgn, or a default action of
 * ignoring: a traced thread still has it queued, and it withdraws the
 * notification), and the native call goes on as if nothing came. */
static bool wd_signal_ends_wait(pid_t tid, int sig)
{
	uint64_t ign, cgt;
	if (sig < 1 || sig > 64 || sc_status_mask(tid, "SigIgn", &ign) != 0 ||
	    sc_status_mask(tid, "SigCgt", &cgt) != 0)
		return true;
	uint64_t bit = 1ULL << (sig - 1);
	if (cgt & bit)
		return true;
	return !(ign & bit) && sig != SIGCHLD && sig != SIGURG &&
	       sig != SIGWINCH && sig != SIGCONT;
}

static const struct {
	long wc_nr;
	long (*wc_outcome)(pid_t tid, const wd_regs *r); /* => new rax */
} withdraw_calls[] = {
	{ SYS_nanosleep, wd_sleep },        { SYS_clock_nanosleep, wd_sleep },
	{ SYS_pause, wd_pause },            { SYS_rt_sigsuspend, wd_sigsuspend },
	{ SYS_poll, wd_poll },              { SYS_ppoll, wd_ppoll },
	{ SYS_select, wd_select },          { SYS_pselect6, wd_select },
	{ SYS_epoll_wait, wd_epoll },       { SYS_epoll_pwait, wd_epoll },
	{ SYS_epoll_pwait2, wd_epoll },     { SYS_rt_sigtimedwait, wd_sigtimedwait },
	{ SYS_futex, wd_futex },            { SYS_wait4, wd_wait },
	{ SYS_waitid, wd_wait },
};

void sv_withdrawn(pid_t tid, int sig)
{
	wd_regs r;
	if (ptrace(PTRACE_GETREGS, tid, 0, &r) < 0 || r.cs != WD_USER_CS_64 ||
	    (long)r.rax != -WD_ERESTARTSYS)
		return;
	for (size_t i = 0; i < sizeof withdraw_calls / sizeof withdraw_calls[0];
	     i++) {
		if ((long)r.orig_rax != withdraw_calls[i].wc_nr)
			continue;
		long rax = withdraw_calls[i].wc_outcome(tid, &r);
		if (rax == WD_LEAVE)
			return;
		if (!wd_signal_ends_wait(tid, sig))
			rax = WD_REDO;
		r.rax = (unsigned long long)rax;
		(void)ptrace(PTRACE_SETREGS, tid, 0, &r);
		return;
	}
}
#else
void sv_withdrawn(pid_t tid, int sig)
{
	(void)tid;
	(void)sig;
}
#endif
