/*
 * backstop.c - the process that answers the program's seccomp
 * notifications once the supervisor is gone.
 *
 * The kernel lets a chain of seccomp filters have one live listener:
 * NEW_LISTENER fails with EBUSY while a filter the process inherited
 * still has one open anywhere.  So the first image's filter is the
 * program's only one: every fork child and exec'd image descended from
 * it notifies that listener (agent.c), and whoever answers it after the
 * supervisor dies answers for the whole program.  That cannot be a
 * thread of a program process: the process may exit between receiving a
 * notification and answering it, and the call would then wait until its
 * thread takes a signal.  So it is a process of its own, started when
 * the listener arrives, holding a copy of it, the read end of a pipe
 * whose write end only the supervisor holds, and the listener image's
 * region mapping (inherited), nothing else:
 *
 *   supervisor alive: blocked reading the pipe;
 *   pipe hang-up (the supervisor died, or exited with the program done):
 *     answer CONTINUE to the ids from rh_notif_id on (the supervisor
 *     records there the oldest id it received and has not answered,
 *     notify.c), then to every later notification, until the listener
 *     has no users left (no process of the program is alive).
 *
 * Forked twice (the supervisor's waitpid(-1) must not wait for it) into
 * a process group of its own (a signal to the supervisor's process group
 * does not reach it), but not a session of its own: with the scheduler's
 * autogroups (sched_autogroup_enabled, the default on desktop kernels) a
 * new session is a new task group, and every answer then has to win the
 * CPU for that group against the machine's other groups instead of
 * following the program's thread within its group.  Under load (~19 on
 * 2 CPUs) that cut the answers after takeover from ~10,000/s to a median
 * of ~1,100/s and down to 58/s, and a 1 kHz signal storm, which
 * withdraws a notification not answered before the next signal, then
 * stretched a 500 ms sleep loop to 17 s (tests/storm, takeover.c).
 * Forked from a multi-threaded process, so from the fork
 * on it makes raw system calls only: no allocation, no stdio, no libc
 * locks, which other threads (or a sanitizer's runtime) may have held at
 * that instant.  If the backstop is killed as well, the listener closes
 * when the supervisor dies and notified calls fail with ENOSYS.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "supervisor/sv.h"

#define BACKSTOP_PROBE_IDS 4096   /* ids from rh_notif_id on; each answer
                                     of an id not pending fails ENOENT */

static int backstop_pipe[2] = { -1, -1 };   /* main thread */

static void backstop_answer(int listener, uint64_t id)
{
	struct seccomp_notif_resp r = { .id = id,
	                                .flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE };
	(void)syscall(SYS_ioctl, listener, SECCOMP_IOCTL_NOTIF_SEND, &r);
}

static bool backstop_listener_dead(int listener)
{
	struct pollfd p = { .fd = listener, .events = POLLIN };
	return syscall(SYS_poll, &p, 1, 0) == 1 &&
	       (p.revents & (POLLHUP | POLLERR | POLLNVAL));
}

/* Close every descriptor but a and b. */
static void backstop_close_others(int a, int b)
{
	int lo = a < b ? a : b, hi = a < b ? b : a;
	if (lo > 0)
		(void)syscall(SYS_close_range, 0, lo - 1, 0);
	if (hi > lo + 1)
		(void)syscall(SYS_close_range, lo + 1, hi - 1, 0);
	(void)syscall(SYS_close_range, hi + 1, ~0u, 0);
}

static void __attribute__((noreturn))
backstop_run(int listener, int rd, const struct sc_region_hdr *h)
{
	sigset_t all;
	memset(&all, 0xff, sizeof all);
	(void)syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, NULL, 8);
	(void)syscall(SYS_setpgid, 0, 0);    /* not setsid: see above */
	(void)syscall(SYS_prctl, PR_SET_NAME, "schedctl-bstop", 0, 0, 0);
	backstop_close_others(listener, rd);
	char c;
	while (syscall(SYS_read, rd, &c, 1) < 0 && errno == EINTR)
		;
	/* The supervisor is gone (its end of the pipe closed). */
	uint64_t base = h ? __atomic_load_n(&h->rh_notif_id, __ATOMIC_RELAXED) : 0;
	for (uint64_t k = 0; base && k < BACKSTOP_PROBE_IDS; k++)
		backstop_answer(listener, base + k);
	for (;;) {
		struct seccomp_notif n;
		memset(&n, 0, sizeof n);
		if (syscall(SYS_ioctl, listener, SECCOMP_IOCTL_NOTIF_RECV, &n) == 0) {
			backstop_answer(listener, n.id);
			continue;
		}
		if (errno == EINTR ||
		    (errno == ENOENT && !backstop_listener_dead(listener)))
			continue;
		break;
	}
	(void)syscall(SYS_exit_group, 0);
	__builtin_unreachable();
}

int sv_backstop_start(int listener, const void *region)
{
	if (backstop_pipe[1] < 0 && pipe2(backstop_pipe, O_CLOEXEC) < 0)
		return -errno;
	pid_t c = fork();
	if (c < 0)
		return -errno;
	if (c == 0) {
		/* Raw clone: glibc's fork would run fork handlers and take
		 * locks another thread of the supervisor may have held. */
		long g = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
		if (g == 0)
			backstop_run(listener, backstop_pipe[0], region);
		(void)syscall(SYS_exit_group, g < 0 ? 1 : 0);
	}
	int st;
	while (waitpid(c, &st, __WALL) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -ECHILD;
}
