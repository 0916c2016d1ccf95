/*
 * withdraw.c - a notified sleep that a signal interrupted before the
 * supervisor answered gets the outcome of a native sleep interrupted as
 * it began (main thread only: it is the tracer).
 *
 * The preload's sleeps are not notified (sleep.c says why and which);
 * raw syscall(SYS_nanosleep) and syscall(SYS_clock_nanosleep), and a
 * sleep with an illumos request pending, still are.  A signal arriving
 * while such a notification waits for its answer withdraws it: the call
 * ends with -ERESTARTSYS before it ran, and the kernel would turn that
 * into EINTR without the time left, or (SA_RESTART) a restart with the
 * whole duration.  Before it decides, the thread stops for the signal's
 * delivery (we trace it) with that value in rax, so trace.c calls
 * sv_sleep_withdrawn() there.  Nothing else ends these two calls with
 * -ERESTARTSYS: the kernel's sleeps end with ERESTART_RESTARTBLOCK
 * (relative) or ERESTARTNOHAND (absolute).
 *
 *   arguments a native call accepts (the request readable and valid, a
 *   clock it sleeps on): rax = -ERESTARTNOHAND, the absolute sleep's
 *   code: EINTR if a handler runs, with or without SA_RESTART, a restart
 *   otherwise (a stop, an ignored signal); a relative sleep's time left
 *   is written, and it is the whole request, since the sleep had not
 *   begun; if it cannot be written, EFAULT, as natively;
 *   anything else: rax = -ERESTARTNOINTR: the handler runs, then the
 *   call is made again and fails as it natively would (EINVAL, EFAULT),
 *   or, for a clock not listed below, sleeps its whole duration again.
 *
 * If the supervisor is stopped, the thread waits in its delivery stop
 * until we run: the outcome is the same.  Only x86_64 tasks (cs 0x33):
 * the filter notifies nothing else.  Cost: one PTRACE_GETREGS per
 * delivered signal, two more calls and two memory copies per withdrawn
 * sleep.
 */
#include <errno.h>
#include <stdbool.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <time.h>

#include "supervisor/sleep.h"

#if defined(__x86_64__)
/* The kernel's restart codes (include/linux/errno.h, not uapi). */
#define WD_ERESTARTSYS    512
#define WD_ERESTARTNOINTR 513
#define WD_ERESTARTNOHAND 514
#define WD_USER_CS_64     0x33

/* The clocks clock_nanosleep sleeps on without a capability. */
static bool withdraw_clock_ok(long clock)
{
	return clock == CLOCK_REALTIME || clock == CLOCK_MONOTONIC ||
	       clock == CLOCK_BOOTTIME || clock == CLOCK_TAI;
}

/* => 0 and *ts from the tracee, -1 if unreadable or not a valid request. */
static int withdraw_read_req(pid_t tid, unsigned long addr, struct timespec *ts)
{
	struct iovec local = { ts, sizeof *ts };
	struct iovec remote = { (void *)addr, sizeof *ts };
	if (process_vm_readv(tid, &local, 1, &remote, 1, 0) != (ssize_t)sizeof *ts)
		return -1;
	return ts->tv_sec >= 0 && ts->tv_nsec >= 0 &&
	       ts->tv_nsec < 1000000000L ? 0 : -1;
}

static bool withdraw_write_rem(pid_t tid, unsigned long addr,
                               const struct timespec *ts)
{
	struct iovec local = { (void *)ts, sizeof *ts };
	struct iovec remote = { (void *)addr, sizeof *ts };
	return process_vm_writev(tid, &local, 1, &remote, 1, 0) ==
	       (ssize_t)sizeof *ts;
}

/* => the new return value for the withdrawn sleep described by r. */
static long withdraw_outcome(pid_t tid, const struct user_regs_struct *r)
{
	unsigned long req, rem;
	long clock = CLOCK_REALTIME;
	bool relative = true;
	if (r->orig_rax == SYS_nanosleep) {
		req = r->rdi;
		rem = r->rsi;
	} else {
		clock = (long)(int)r->rdi;
		relative = !(r->rsi & TIMER_ABSTIME);
		req = r->rdx;
		rem = r->r10;
	}
	struct timespec ts;
	if (!withdraw_clock_ok(clock) || withdraw_read_req(tid, req, &ts) < 0)
		return -WD_ERESTARTNOINTR;
	if (relative && rem && !withdraw_write_rem(tid, rem, &ts))
		return -EFAULT;
	return -WD_ERESTARTNOHAND;
}

void sv_sleep_withdrawn(pid_t tid)
{
	struct user_regs_struct r;
	if (ptrace(PTRACE_GETREGS, tid, 0, &r) < 0 || r.cs != WD_USER_CS_64 ||
	    (long)r.rax != -WD_ERESTARTSYS ||
	    (r.orig_rax != SYS_nanosleep && r.orig_rax != SYS_clock_nanosleep))
		return;
	r.rax = (unsigned long long)withdraw_outcome(tid, &r);
	(void)ptrace(PTRACE_SETREGS, tid, 0, &r);
}
#else
void sv_sleep_withdrawn(pid_t tid)
{
	(void)tid;
}
#endif
