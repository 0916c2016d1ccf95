/*
 * window.c - a sleep or other wait interrupted while nothing answers
 * for it: the notification window of issue 8, made deterministic.
 *
 * Under `schedctl run` a notified call waits for the supervisor's answer
 * before the kernel runs it; a signal arriving in that wait withdraws the
 * notification and the call ends with -ERESTARTSYS: EINTR without the
 * time left, or (SA_RESTART) a restart with the full duration.  Here the
 * supervisor (our tracer) is SIGSTOPped before a thread enters each
 * sleep, so a notified sleep waits for good; the thread is signalled
 * once it is blocked in the call, and the supervisor continued once the
 * thread sits in its signal-delivery stop (the tracer must let the
 * signal through).  Natively (no tracer) the same steps run without the
 * stop.  Checked, as signal(7) and the manual pages say for Linux:
 *
 *   nanosleep, relative clock_nanosleep, usleep, thrd_sleep, and raw
 *     syscall(SYS_nanosleep): fail with EINTR (thrd_sleep: -1) with or
 *     without SA_RESTART, and the time left is written (more than 0, at
 *     most what was asked, and at least what was asked less the time
 *     until the signal, less a slack);
 *   clock_nanosleep TIMER_ABSTIME, and its raw call: EINTR (a handler
 *     ran: no restart);
 *   a raw nanosleep with an invalid request (under a tracer only: it
 *     never blocks natively): EINVAL, after the handler ran;
 *   sleep: returns the whole seconds left (> 0);
 *   while blocked in the sleep the thread's slot says SC_SLEEP, whatever
 *     the state source (under the supervisor source with the supervisor
 *     stopped, only the sleeping thread itself can have said so);
 *   pthread_cancel of a thread in nanosleep or sleep cancels it;
 *   the other waits, as raw calls (8 s timeouts where they take one):
 *     pause, rt_sigsuspend (nothing blocked), poll (and without a
 *     timeout), ppoll, select, pselect6, epoll_wait, epoll_pwait,
 *     epoll_pwait2, rt_sigtimedwait (for SIGUSR2, blocked, never sent),
 *     futex FUTEX_WAIT with a timeout: EINTR with or without SA_RESTART
 *     (a restart is a failure: a call still waiting 12 s after the
 *     signal, ended by a second one, or a timeout's 0/EAGAIN/ETIMEDOUT);
 *     ppoll, select and pselect6 write the time left;
 *   epoll_wait hit by SIGWINCH (ignored by default) first waits on, then
 *     fails with EINTR on SIGUSR1;
 *   under a tracer only (they never block natively): ppoll with an
 *     invalid timeout and epoll_wait on a pipe fail with EINVAL,
 *     wait4(WNOHANG) without children with ECHILD, after the handler.
 * The preload's sleeps are not notified (src/supervisor/sleep.c); raw
 * calls are, and the supervisor repairs them at the signal's delivery
 * stop (src/supervisor/withdraw.c); their slot state is not checked
 * (nobody marks it while the supervisor is stopped).
 *
 * Time is only a hang bound and the slack on the time left.  Exit 0 when
 * every check held; one line per failure.  Usage: window
 */
#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <schedctl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <threads.h>
#include <time.h>
#include <unistd.h>

#include "tracer.h"

#define REQ_S   8L          /* every sleep asks this much */
#define SLACK_MS 2000L      /* the time left may be short by this much */
#define HANG_MS 30000L      /* a step that takes longer has hung */
#define JOIN_MS 12000L      /* a call not over by then has restarted */

static int failures;

#define CHECK(c, name, ...) do {                                        \
	if (!(c)) {                                                      \
		fprintf(stderr, "window: FAIL %s: ", name);              \
		fprintf(stderr, __VA_ARGS__);                            \
		fputc('\n', stderr);                                     \
		failures++;                                              \
	}                                                                \
} while (0)

/* The sleeps, then the other waits withdraw.c repairs (raw calls, all
 * notified): K_PAUSE..K_FUTEX block natively too; from K_PPOLL_BAD on
 * they never block natively (only their notification does, under a
 * tracer). */
enum kind { K_NANOSLEEP, K_CLOCK_REL, K_CLOCK_ABS, K_SLEEP, K_USLEEP,
            K_THRD, K_RAW, K_RAW_ABS, K_PAUSE, K_SIGSUSPEND, K_POLL,
            K_POLL_INF, K_PPOLL, K_SELECT, K_PSELECT, K_EPOLL, K_EPOLL_P,
            K_EPOLL_P2, K_SIGTIMEDWAIT, K_FUTEX, K_EPOLL_IGN, K_RAW_BAD, K_PPOLL_BAD,
            K_EPOLL_BAD, K_WAIT_NOHANG };
static const char *const kind_name[] = { "nanosleep", "clock_nanosleep",
	"clock_nanosleep(TIMER_ABSTIME)", "sleep", "usleep", "thrd_sleep",
	"syscall(SYS_nanosleep)", "syscall(SYS_clock_nanosleep, TIMER_ABSTIME)",
	"pause", "rt_sigsuspend", "poll", "poll(-1)", "ppoll", "select",
	"pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2",
	"rt_sigtimedwait", "futex(FUTEX_WAIT, timeout)",
	"epoll_wait, SIGWINCH (ignored) first",
	"syscall(SYS_nanosleep) with tv_nsec 2e9", "ppoll with tv_nsec 2e9",
	"epoll_wait on a pipe", "wait4(WNOHANG) without children" };
/* The call each kind blocks in; -1: nanosleep or clock_nanosleep. */
static const long kind_nr[] = { -1, -1, -1, -1, -1, -1, -1, -1, SYS_pause,
	SYS_rt_sigsuspend, SYS_poll, SYS_poll, SYS_ppoll, SYS_select,
	SYS_pselect6, SYS_epoll_wait, SYS_epoll_pwait, SYS_epoll_pwait2,
	SYS_rt_sigtimedwait, SYS_futex, SYS_epoll_wait, -1, SYS_ppoll,
	SYS_epoll_wait, SYS_wait4 };

static long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static long ts_ms(const struct timespec *t)
{
	return t->tv_sec * 1000 + t->tv_nsec / 1000000;
}

static atomic_long handled;
static void on_sig(int sig) { (void)sig; atomic_fetch_add(&handled, 1); }

/* One sleep, its outcome. */
struct nap {
	enum kind n_kind;
	int n_go[2];             /* the thread starts its sleep on a byte */
	_Atomic pid_t n_tid;
	long n_ret;              /* the function's return value */
	int n_errno;
	struct timespec n_rem;   /* {-1, -1} until written */
	struct timespec n_to;    /* a timeout the call may update */
	_Atomic bool n_done;     /* the call returned */
};

/* A raw call of the kinds from K_PAUSE on: => its return value. */
static long call(struct nap *n)
{
	int p[2] = { -1, -1 }, ep = -1;
	struct pollfd pfd = { .events = POLLIN };
	struct epoll_event ev = { .events = EPOLLIN }, evs[1];
	uint64_t mask = 0, usr2 = 1ULL << (SIGUSR2 - 1);
	_Atomic uint32_t word = 0;
	fd_set rd;
	long r = -1;
	n->n_to = (struct timespec){ REQ_S, 0 };
	if (pipe(p) < 0 || (ep = epoll_create1(0)) < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) < 0)
		abort();
	pfd.fd = p[0];
	FD_ZERO(&rd);
	FD_SET(p[0], &rd);
	errno = 0;
	switch (n->n_kind) {
	case K_PAUSE:
		r = syscall(SYS_pause);
		break;
	case K_SIGSUSPEND:
		r = syscall(SYS_rt_sigsuspend, &mask, sizeof mask);
		break;
	case K_POLL:
	case K_POLL_INF:
		r = syscall(SYS_poll, &pfd, 1,
		            n->n_kind == K_POLL ? (int)(REQ_S * 1000) : -1);
		break;
	case K_PPOLL_BAD:
		n->n_to.tv_nsec = 2000000000L;
		/* fall through */
	case K_PPOLL:
		r = syscall(SYS_ppoll, &pfd, 1, &n->n_to, NULL, 0);
		break;
	case K_SELECT: {
		struct timeval tv = { REQ_S, 0 };
		r = syscall(SYS_select, p[0] + 1, &rd, NULL, NULL, &tv);
		n->n_to = (struct timespec){ tv.tv_sec, tv.tv_usec * 1000 };
		break;
	}
	case K_PSELECT:
		r = syscall(SYS_pselect6, p[0] + 1, &rd, NULL, NULL, &n->n_to,
		            NULL);
		break;
	case K_EPOLL:
	case K_EPOLL_IGN:
		r = syscall(SYS_epoll_wait, ep, evs, 1, (int)(REQ_S * 1000));
		break;
	case K_EPOLL_BAD:
		r = syscall(SYS_epoll_wait, p[0], evs, 1, (int)(REQ_S * 1000));
		break;
	case K_EPOLL_P:
		r = syscall(SYS_epoll_pwait, ep, evs, 1, (int)(REQ_S * 1000),
		            &mask, sizeof mask);
		break;
	case K_EPOLL_P2:
		r = syscall(SYS_epoll_pwait2, ep, evs, 1, &n->n_to, &mask,
		            sizeof mask);
		break;
	case K_SIGTIMEDWAIT:    /* SIGUSR2 is blocked and never sent */
		r = syscall(SYS_rt_sigtimedwait, &usr2, NULL, &n->n_to,
		            sizeof usr2);
		break;
	case K_FUTEX:
		r = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, &n->n_to,
		            NULL, 0);
		break;
	case K_WAIT_NOHANG:
		r = syscall(SYS_wait4, -1, NULL, WNOHANG, NULL);
		break;
	default:
		abort();
	}
	n->n_errno = errno;
	close(p[0]);
	close(p[1]);
	close(ep);
	return r;
}

static void *napper(void *arg)
{
	struct nap *n = arg;
	char c;
	atomic_store(&n->n_tid, (pid_t)syscall(SYS_gettid));
	if (read(n->n_go[0], &c, 1) != 1)
		abort();
	struct timespec req = { REQ_S, 0 }, abs;
	if (n->n_kind >= K_PAUSE && n->n_kind != K_RAW_BAD) {
		n->n_ret = call(n);
		atomic_store(&n->n_done, true);
		return NULL;
	}
	errno = 0;
	switch (n->n_kind) {
	case K_NANOSLEEP:
		n->n_ret = nanosleep(&req, &n->n_rem);
		break;
	case K_CLOCK_REL:
		n->n_ret = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &n->n_rem);
		break;
	case K_CLOCK_ABS:
		clock_gettime(CLOCK_MONOTONIC, &abs);
		abs.tv_sec += REQ_S;
		n->n_ret = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &abs, NULL);
		break;
	case K_SLEEP:
		n->n_ret = sleep((unsigned)REQ_S);
		break;
	case K_USLEEP:
		n->n_ret = usleep((useconds_t)(REQ_S * 1000000));
		break;
	case K_THRD:
		n->n_ret = thrd_sleep(&req, &n->n_rem);
		break;
	case K_RAW:
		n->n_ret = syscall(SYS_nanosleep, &req, &n->n_rem);
		break;
	case K_RAW_ABS:
		clock_gettime(CLOCK_MONOTONIC, &abs);
		abs.tv_sec += REQ_S;
		n->n_ret = syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC,
		                   TIMER_ABSTIME, &abs, NULL);
		break;
	case K_RAW_BAD:
		req.tv_nsec = 2000000000L;
		n->n_ret = syscall(SYS_nanosleep, &req, &n->n_rem);
		break;
	default:
		abort();
	}
	n->n_errno = errno;
	return NULL;
}

/* /proc/self/task/TID/FILE's first line into buf; "" if unreadable. */
static void task_file(pid_t tid, const char *file, char *buf, size_t len)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/task/%d/%s", (int)tid, file);
	FILE *f = fopen(path, "r");
	buf[0] = 0;
	if (f && !fgets(buf, (int)len, f))
		buf[0] = 0;
	if (f)
		fclose(f);
}

/* The state letter of /proc/PID/stat (a process) or of a task. */
static char stat_letter(const char *path)
{
	char buf[512];
	FILE *f = fopen(path, "r");
	buf[0] = 0;
	if (f && !fgets(buf, sizeof buf, f))
		buf[0] = 0;
	if (f)
		fclose(f);
	char *p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

static char task_letter(pid_t tid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
	return stat_letter(path);
}

static char proc_letter(long pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	return stat_letter(path);
}

/* Spin (yielding) until ok(arg), or give up after HANG_MS.  No sleeping
 * call: with the supervisor stopped a notified one would never return. */
static bool wait_until(bool (*ok)(void *), void *arg)
{
	long t0 = now_ms();
	while (!ok(arg)) {
		if (now_ms() - t0 > HANG_MS)
			return false;
		sched_yield();
	}
	return true;
}

/* The thread is blocked in a sleeping call (its syscall file shows a
 * call number, not "running"), the one its kind makes. */
struct blocked { pid_t b_tid; long b_nr; };
static bool in_sleep_call(void *arg)
{
	const struct blocked *b = arg;
	char buf[128];
	task_file(b->b_tid, "syscall", buf, sizeof buf);
	long nr = strtol(buf, NULL, 10);
	return (b->b_nr < 0 ? nr == SYS_nanosleep || nr == SYS_clock_nanosleep :
	        nr == b->b_nr) && task_letter(b->b_tid) == 'S';
}

static bool in_signal_stop(void *arg)
{
	return task_letter(*(pid_t *)arg) == 't';
}

static bool proc_stopped(void *arg)
{
	return proc_letter(*(long *)arg) == 'T';
}

/* Its slot says SC_SLEEP (if a state source observes it). */
static void check_state(const char *name, pid_t tid)
{
	sc_shared_t *sc = schedctl_of(tid);
	if (!sc)
		return;                   /* natively: no slot */
	int src = schedctl_source(sc), st = schedctl_state(sc);
	if (src == SCHEDCTL_SOURCE_NONE)
		return;
	CHECK(st == SC_SLEEP, name, "slot state %#x (source %d), want SC_SLEEP",
	      st, src);
}

static void check_outcome(const char *name, const struct nap *n, long sig_ms)
{
	long rem = ts_ms(&n->n_rem), left = REQ_S * 1000 - sig_ms;
	switch (n->n_kind) {
	case K_NANOSLEEP:
	case K_USLEEP:
	case K_RAW:
	case K_RAW_ABS:
		CHECK(n->n_ret == -1 && n->n_errno == EINTR, name,
		      "returned %ld errno %s, want -1 EINTR", n->n_ret,
		      strerror(n->n_errno));
		break;
	case K_CLOCK_REL:
	case K_CLOCK_ABS:
		CHECK(n->n_ret == EINTR, name, "returned %ld, want EINTR", n->n_ret);
		break;
	case K_THRD:
		CHECK(n->n_ret == -1, name, "returned %ld, want -1", n->n_ret);
		break;
	case K_SLEEP:
		CHECK(n->n_ret > 0 && n->n_ret <= REQ_S &&
		      n->n_ret * 1000 >= left - SLACK_MS - 1000, name,
		      "returned %ld s, want the seconds left (%ld ms)", n->n_ret,
		      left);
		return;
	case K_PPOLL_BAD:
	case K_EPOLL_BAD:
	case K_WAIT_NOHANG:
		CHECK(n->n_ret == -1 && n->n_errno == (n->n_kind == K_WAIT_NOHANG ?
		      ECHILD : EINVAL), name, "returned %ld errno %s, want -1 %s",
		      n->n_ret, strerror(n->n_errno),
		      n->n_kind == K_WAIT_NOHANG ? "ECHILD" : "EINVAL");
		return;
	case K_RAW_BAD:
		CHECK(n->n_ret == -1 && n->n_errno == EINVAL &&
		      n->n_rem.tv_sec == -1, name, "returned %ld errno %s, "
		      "time left %s, want -1 EINVAL and no time left",
		      n->n_ret, strerror(n->n_errno),
		      n->n_rem.tv_sec == -1 ? "unwritten" : "written");
		return;
	default:       /* the other waits: EINTR, a handler ran */
		CHECK(n->n_ret == -1 && n->n_errno == EINTR, name,
		      "returned %ld errno %s, want -1 EINTR", n->n_ret,
		      strerror(n->n_errno));
		break;
	}
	/* ppoll, select, pselect6 write the time left to their timeout:
	 * under a tracer the whole of it (the call had not begun), natively
	 * what was left when the signal came. */
	long to = ts_ms(&n->n_to);
	if (n->n_kind == K_PPOLL || n->n_kind == K_SELECT ||
	    n->n_kind == K_PSELECT)
		CHECK(to > 0 && to <= REQ_S * 1000 && to >= left - SLACK_MS, name,
		      "timeout left %ld ms, want about %ld ms", to, left);
	if (n->n_kind == K_NANOSLEEP || n->n_kind == K_CLOCK_REL ||
	    n->n_kind == K_THRD || n->n_kind == K_RAW)
		CHECK(n->n_rem.tv_sec >= 0 && rem > 0 && rem <= REQ_S * 1000 &&
		      rem >= left - SLACK_MS, name, "time left %s%ld ms, want "
		      "about %ld ms", n->n_rem.tv_sec < 0 ? "unwritten " : "",
		      n->n_rem.tv_sec < 0 ? 0 : rem, left);
}

/* Join t; a call still waiting JOIN_MS after its signal has restarted
 * (a timed one then ends by itself, wrongly): a failure, and a second
 * signal ends it.  => false if even that did not. */
static bool join_bounded(pthread_t t, pid_t tid, const char *name)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += JOIN_MS / 1000;
	if (pthread_timedjoin_np(t, NULL, &dl) == 0)
		return true;
	CHECK(0, name, "still waiting %ld ms after the signal (restarted)",
	      JOIN_MS);
	syscall(SYS_tgkill, getpid(), tid, SIGUSR1);
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += HANG_MS / 1000;
	return pthread_timedjoin_np(t, NULL, &dl) == 0;
}

/* The thread waits in its call again (or never left it), or is done. */
static bool waiting_or_done(void *arg)
{
	const struct nap *n = arg;
	struct blocked b = { atomic_load(&n->n_tid), kind_nr[n->n_kind] };
	return atomic_load(&n->n_done) || in_sleep_call(&b);
}

/* K_EPOLL_IGN: a SIGWINCH first, which a traced thread has queued (and
 * which withdraws its notification) although nothing catches it; under
 * a tracer its delivery stop is let through.  Natively it never reaches
 * the wait: the thread must wait on.  => false if a step hung. */
static bool ignored_first(long sup, struct nap *n, const char *name)
{
	pid_t tid = atomic_load(&n->n_tid);
	syscall(SYS_tgkill, getpid(), tid, SIGWINCH);
	if (sup > 0) {
		bool ok = wait_until(in_signal_stop, &tid);
		CHECK(ok, name, "no delivery stop for SIGWINCH");
		kill((pid_t)sup, SIGCONT);
		if (!ok)
			return false;
	}
	bool ok = wait_until(waiting_or_done, n);
	CHECK(ok && !atomic_load(&n->n_done), name, "SIGWINCH (ignored) "
	      "ended the wait: returned %ld errno %s", n->n_ret,
	      strerror(n->n_errno));
	return ok;
}

/* One case: => false if a step hung (the run cannot go on). */
static bool run_case(long sup, enum kind k, bool restart)
{
	char name[96];
	snprintf(name, sizeof name, "%s, %sSA_RESTART", kind_name[k],
	         restart ? "" : "no ");
	struct sigaction sa = { .sa_handler = on_sig,
	                        .sa_flags = restart ? SA_RESTART : 0 };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);

	struct nap n = { .n_kind = k, .n_rem = { -1, -1 } };
	pthread_t t;
	if (pipe(n.n_go) < 0 || pthread_create(&t, NULL, napper, &n) != 0)
		abort();
	while (!atomic_load(&n.n_tid))
		sched_yield();
	pid_t tid = atomic_load(&n.n_tid);
	struct blocked b = { tid, kind_nr[k] };
	bool ok = true;
	if (sup > 0) {
		kill((pid_t)sup, SIGSTOP);
		ok = wait_until(proc_stopped, &sup);
		CHECK(ok, name, "the supervisor (%ld) did not stop", sup);
	}
	long t0 = now_ms();
	if (ok && write(n.n_go[1], "g", 1) == 1)
		ok = wait_until(in_sleep_call, &b);
	CHECK(ok, name, "the thread never blocked in its sleep");
	if (ok && k < K_RAW)
		check_state(name, tid);
	long sig_ms = now_ms() - t0;
	if (ok) {
		if (k == K_EPOLL_IGN && !ignored_first(sup, &n, name)) {
			(void)join_bounded(t, tid, name);
			close(n.n_go[0]);
			close(n.n_go[1]);
			return false;
		}
		long before = atomic_load(&handled);
		syscall(SYS_tgkill, getpid(), tid, SIGUSR1);
		if (sup > 0 && k != K_EPOLL_IGN) {   /* it runs again */
			ok = wait_until(in_signal_stop, &tid);
			CHECK(ok, name, "the thread did not reach its "
			      "signal-delivery stop");
		}
		if (sup > 0)
			kill((pid_t)sup, SIGCONT);
		ok = join_bounded(t, tid, name);
		CHECK(atomic_load(&handled) > before, name, "handler did not run");
		check_outcome(name, &n, sig_ms);
	} else if (sup > 0) {
		kill((pid_t)sup, SIGCONT);
	}
	close(n.n_go[0]);
	close(n.n_go[1]);
	return ok;
}

/* pthread_cancel of a thread asleep in nanosleep or sleep. */
static void *cancel_napper(void *arg)
{
	struct nap *n = arg;
	atomic_store(&n->n_tid, (pid_t)syscall(SYS_gettid));
	struct timespec req = { REQ_S * 4, 0 };
	if (n->n_kind == K_SLEEP)
		(void)sleep((unsigned)REQ_S * 4);
	else
		(void)nanosleep(&req, NULL);
	return (void *)1;             /* not cancelled */
}

static void run_cancel(enum kind k)
{
	char name[64];
	snprintf(name, sizeof name, "pthread_cancel in %s", kind_name[k]);
	struct nap n = { .n_kind = k };
	pthread_t t;
	if (pthread_create(&t, NULL, cancel_napper, &n) != 0)
		abort();
	while (!atomic_load(&n.n_tid))
		sched_yield();
	pid_t tid = atomic_load(&n.n_tid);
	struct blocked b = { tid, -1 };
	bool ok = wait_until(in_sleep_call, &b);
	CHECK(ok, name, "the thread never blocked in its sleep");
	long t0 = now_ms();
	pthread_cancel(t);
	void *res = NULL;
	pthread_join(t, &res);
	CHECK(res == PTHREAD_CANCELED, name, "thread ended without being "
	      "cancelled (after %ld ms)", now_ms() - t0);
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	long sup = tracer_pid();
	printf("window: %s\n", sup > 0 ? "under a tracer (the supervisor), "
	       "stopped around each sleep" : "native");
	/* The invalid requests never block natively: only under a tracer,
	 * where their notification does.  SIGUSR2 stays blocked (it is what
	 * rt_sigtimedwait waits for). */
	enum kind last = sup > 0 ? K_WAIT_NOHANG : K_RAW_BAD - 1;
	sigset_t usr2;
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &usr2, NULL);
	for (int k = K_NANOSLEEP; k <= (int)last; k++)
		for (int restart = 0; restart < 2; restart++)
			if (!run_case(sup, (enum kind)k, restart)) {
				fprintf(stderr, "window: a step hung; giving up\n");
				return 1;
			}
	run_cancel(K_NANOSLEEP);
	run_cancel(K_SLEEP);
	printf("window: %d failures\n", failures);
	return failures != 0;
}
