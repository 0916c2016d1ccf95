/*
 * sleep.c - the program's sleeps, made without a seccomp notification.
 *
 * Why: a notified call waits for the supervisor's answer before the
 * kernel runs it, and a signal arriving in that wait withdraws the
 * notification: the call ends with -ERESTARTSYS without having run.  A
 * sleep does not end that way natively: nanosleep and a relative
 * clock_nanosleep fail with EINTR and write the time left, whether or
 * not the handler has SA_RESTART (the kernel's ERESTART_RESTARTBLOCK),
 * and an absolute clock_nanosleep fails with EINTR once a handler ran
 * (ERESTARTNOHAND).  Through the notification the time left is never
 * written, and with SA_RESTART the call starts over with its whole
 * duration and the program never sees EINTR (measured on Linux 6.18 with
 * the supervisor stopped: tests/storm/window.c).
 *
 * So the sleeps the program makes through libc (the preload wraps
 * nanosleep, clock_nanosleep, sleep, usleep and thrd_sleep) make their
 * clock_nanosleep here with the cookie (proto.h: the call ignores its
 * sixth argument), and the kernel's own EINTR, time left and restart
 * rules apply.  What the supervisor would have done on the notification
 * (notify.c, step 3) is done here first: a supervisor-source slot is
 * marked SC_SLEEP with the call number, and SC_ONPROC once the call
 * returns, which the sampler (sample.c) would see only at its next
 * sweep (sc_slot_self_mark).  A perf-source slot needs nothing: the
 * kernel records the switches.
 *
 * Still notified (a signal in their window is repaired by the supervisor
 * while it lives, withdraw.c; after its death the window is back):
 *   - a sleep of a thread with an illumos request pending in its slot
 *     (sc_sigblock, SC_CANCEL_FLG, SC_PARK_FLG): the supervisor applies
 *     it on the notification (notify.c, step 2), so the call is made
 *     without the cookie;
 *   - raw syscall(SYS_nanosleep) and syscall(SYS_clock_nanosleep), and
 *     libc's own internal sleeps other than those replaced here.
 *
 * The contract kept is glibc's (2.36): nanosleep is clock_nanosleep on
 * CLOCK_REALTIME; CLOCK_THREAD_CPUTIME_ID is EINVAL without a call and
 * CLOCK_PROCESS_CPUTIME_ID is the kernel's clock of the calling process;
 * clock_nanosleep returns the error number and leaves errno alone; sleep
 * returns the whole seconds left; thrd_sleep returns 0, -1 (a signal) or
 * -2.  Each is a cancellation point: the call runs with asynchronous
 * cancellation enabled, as in glibc, so a cancellation unwinds from the
 * signal handler through the system call.
 *
 * Signal safety (all of these are async-signal-safe): no allocation, no
 * lock; relaxed atomic stores to our own slot; clock_gettime (vDSO);
 * pthread_setcanceltype, which in glibc is a compare-and-swap loop on
 * the thread's cancel word, as glibc's own sleeps do around the call.
 */
#include <errno.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "supervisor/sleep.h"

/* The kernel's id for the calling process's CPU-time clock: (~pid << 3)
 * | CPUCLOCK_SCHED with pid 0, as glibc passes it. */
#define SLEEP_OWN_PROCESS_CLOCK ((clockid_t)-6)

/* Is an illumos request for the supervisor pending in our slot?
 * Relaxed: these are our own requests, or the supervisor clearing one;
 * a clear we do not see yet sends one call through the notification,
 * where the supervisor sees the flag clear. */
static bool sleep_requests_pending(const struct sc_slot *s)
{
	return __atomic_load_n(&s->ss_pub.sc_sigblock, __ATOMIC_RELAXED) ||
	       (__atomic_load_n(&s->ss_pub.sc_flgs, __ATOMIC_RELAXED) &
	        (SC_CANCEL_FLG | SC_PARK_FLG));
}

/* The call without the cookie (explicit zero sixth argument): the
 * supervisor is notified.  => 0 or -errno; errno unchanged. */
static long sleep_notified(clockid_t clock, int flags,
                           const struct timespec *req, struct timespec *rem)
{
	int saved = errno;
	long r = syscall(SYS_clock_nanosleep, (long)clock, (long)flags, req, rem,
	                 0L, 0L);
	if (r < 0)
		r = -errno;
	errno = saved;
	return r;
}

/* => 0 or -errno; errno unchanged (unless cancelled: no return). */
static long sleep_call(clockid_t clock, int flags, const struct timespec *req,
                       struct timespec *rem)
{
	struct sc_slot *s = sc_thread_slot();
	bool notified = s && sleep_requests_pending(s);
	if (!notified)
		sc_slot_self_mark(s, SC_SLEEP, SYS_clock_nanosleep);
	int oldtype;
	(void)pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, &oldtype);
	long r = notified ? sleep_notified(clock, flags, req, rem)
	                  : sc_marked_syscall(SYS_clock_nanosleep, (long)clock,
	                                      (long)flags, (long)req, (long)rem, 0);
	(void)pthread_setcanceltype(oldtype, NULL);
	/* Awake and running this code: say so rather than leave SC_SLEEP
	 * until the sampler's next sweep. */
	sc_slot_self_mark(s, SC_ONPROC, ~0u);
	return r;
}

int sv_sleep_clock_nanosleep(clockid_t clock, int flags,
                             const struct timespec *req, struct timespec *rem)
{
	if (clock == CLOCK_THREAD_CPUTIME_ID)
		return EINVAL;
	if (clock == CLOCK_PROCESS_CPUTIME_ID)
		clock = SLEEP_OWN_PROCESS_CLOCK;
	long r = sleep_call(clock, flags, req, rem);
	return r < 0 ? (int)-r : 0;
}

int sv_sleep_nanosleep(const struct timespec *req, struct timespec *rem)
{
	long r = sleep_call(CLOCK_REALTIME, 0, req, rem);
	if (r < 0) {
		errno = (int)-r;
		return -1;
	}
	return 0;
}

unsigned sv_sleep_sleep(unsigned seconds)
{
	struct timespec ts = { (time_t)seconds, 0 };
	if (sv_sleep_nanosleep(&ts, &ts) < 0)
		return (unsigned)ts.tv_sec;   /* errno says why (EINTR) */
	return 0;
}

int sv_sleep_usleep(useconds_t usec)
{
	struct timespec ts = { (time_t)(usec / 1000000),
	                       (long)(usec % 1000000) * 1000 };
	return sv_sleep_nanosleep(&ts, NULL);
}

int sv_sleep_thrd_sleep(const struct timespec *req, struct timespec *rem)
{
	long r = sleep_call(CLOCK_REALTIME, 0, req, rem);
	return r == 0 ? 0 : r == -EINTR ? -1 : -2;
}
