/* Run states as another thread sees them, against what the kernel does. */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <seccomp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <schedctl.h>
#include "sc/sc.h"
#include "util.h"

enum { SAMPLES = 2000 };

static atomic_int stop_flag;

struct watched {
	pthread_t w_thr;
	sc_shared_t *w_sc;
	atomic_int w_ready;
	int w_fd;
	int w_cpu;
};

static void *reader_main(void *p)
{
	struct watched *w = p;
	char c;
	w->w_sc = schedctl_self();
	atomic_store(&w->w_ready, 1);
	while (read(w->w_fd, &c, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

static void *busy_main(void *p)
{
	struct watched *w = p;
	if (w->w_cpu >= 0)
		tu_pin(w->w_cpu);
	w->w_sc = schedctl_self();
	atomic_store(&w->w_ready, 1);
	while (!atomic_load_explicit(&stop_flag, memory_order_relaxed))
		;
	return NULL;
}

static void *napper_main(void *p)
{
	struct watched *w = p;
	w->w_sc = schedctl_self();
	atomic_store(&w->w_ready, 1);
	while (!atomic_load(&stop_flag))
		tu_sleep_us(5000);
	return NULL;
}

static void observer_setup(void)
{
	if (tu_ncpus() > 1)
		tu_pin((int)tu_ncpus() - 1);
	cr_assert_not_null(schedctl_self());
}

Test(state, self_is_onproc_on_its_cpu)
{
	sc_shared_t *me = schedctl_self();
	cr_assert_not_null(me);
	cr_assert_eq(schedctl_state(me), SC_ONPROC);
	tu_pin(0);
	tu_sleep_us(2000);   /* at least one switch out and back in on CPU 0 */
	cr_assert_eq(schedctl_state(me), SC_ONPROC);
	cr_assert_eq(schedctl_cpu(me), 0);
	cr_assert_eq(schedctl_tid(me), gettid());
}

Test(state, blocked_in_read_is_sleep, .timeout = 30)
{
	observer_setup();
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	struct watched w = { .w_fd = fds[0] };
	pthread_create(&w.w_thr, NULL, reader_main, &w);
	cr_assert(tu_wait_flag(&w.w_ready));
	tu_sleep_us(20000);
	cr_assert_eq(schedctl_source(w.w_sc), SCHEDCTL_SOURCE_PERF);
	int sleep_n = 0;
	for (int i = 0; i < SAMPLES; i++) {
		sleep_n += schedctl_state(w.w_sc) == SC_SLEEP;
		tu_sleep_us(100);
	}
	cr_log_info("read(): SLEEP in %d of %d samples", sleep_n, SAMPLES);
	cr_assert_geq(sleep_n * 100, SAMPLES * 95, "SLEEP in %d of %d", sleep_n, SAMPLES);
	cr_assert_eq(write(fds[1], "x", 1), 1);
	pthread_join(w.w_thr, NULL);
	cr_assert_eq(schedctl_state(w.w_sc), SC_FREE);
}

Test(state, nanosleep_is_mostly_sleep, .timeout = 30)
{
	observer_setup();
	struct watched w = { 0 };
	atomic_store(&stop_flag, 0);
	pthread_create(&w.w_thr, NULL, napper_main, &w);
	cr_assert(tu_wait_flag(&w.w_ready));
	int sleep_n = 0;
	for (int i = 0; i < SAMPLES / 4; i++) {
		sleep_n += schedctl_state(w.w_sc) == SC_SLEEP;
		tu_sleep_us(300);
	}
	atomic_store(&stop_flag, 1);
	pthread_join(w.w_thr, NULL);
	cr_assert_geq(sleep_n * 100, (SAMPLES / 4) * 90, "SLEEP in %d", sleep_n);
}

/*
 * Two busy threads pinned to CPU 0, watched from the last CPU: at any
 * moment the kernel runs at most one of them and the other waits.  Both
 * RUN is right too when something else has CPU 0 (a loaded machine), so
 * sampling goes on (up to MAX_SAMPLES) until enough samples caught one
 * of them on CPU 0.  Wrong would be: either one SLEEP (they never
 * block), both ONPROC, or the ONPROC one elsewhere than CPU 0.  On a
 * quiet machine one ONPROC + one RUN holds in over 99% of samples
 * (docs/benchmarks.md).
 */
Test(state, two_threads_sharing_a_cpu, .timeout = 60)
{
	enum { WANT_ONE_EACH = 400, MAX_SAMPLES = 40000 };
	if (tu_ncpus() < 2)
		cr_skip_test("needs two CPUs");
	observer_setup();
	atomic_store(&stop_flag, 0);
	struct watched a = { .w_cpu = 0 }, b = { .w_cpu = 0 };
	pthread_create(&a.w_thr, NULL, busy_main, &a);
	pthread_create(&b.w_thr, NULL, busy_main, &b);
	cr_assert(tu_wait_flag(&a.w_ready) && tu_wait_flag(&b.w_ready));
	tu_sleep_us(20000);
	int n = 0, one_each = 0, both_run = 0, wrong = 0;
	int a_on = 0, a_run = 0, b_on = 0, b_run = 0;
	for (; n < MAX_SAMPLES && (n < SAMPLES || one_each < WANT_ONE_EACH); n++) {
		int sa = schedctl_state(a.w_sc), sb = schedctl_state(b.w_sc);
		int ca = schedctl_cpu(a.w_sc), cb = schedctl_cpu(b.w_sc);
		a_on += sa == SC_ONPROC; a_run += sa == SC_RUN;
		b_on += sb == SC_ONPROC; b_run += sb == SC_RUN;
		if ((sa == SC_ONPROC && sb == SC_RUN && ca == 0) ||
		    (sa == SC_RUN && sb == SC_ONPROC && cb == 0))
			one_each++;
		else if (sa == SC_RUN && sb == SC_RUN)
			both_run++;
		else
			wrong++;
		tu_sleep_us(200);
	}
	atomic_store(&stop_flag, 1);
	pthread_join(a.w_thr, NULL);
	pthread_join(b.w_thr, NULL);
	cr_log_info("of %d samples: one ONPROC on CPU 0 + one RUN %d, both RUN %d, "
	            "impossible %d; a %d/%d b %d/%d", n, one_each, both_run,
	            wrong, a_on, a_run, b_on, b_run);
	cr_assert_leq(wrong * 100, n * 5, "impossible states in %d of %d", wrong, n);
	if (one_each < WANT_ONE_EACH / 4)
		cr_skip_test("CPU 0 too busy to watch: our threads ran in %d of %d "
		             "samples", one_each, n);
	cr_assert(a_on > 0 && a_run > 0 && b_on > 0 && b_run > 0,
	          "each seen in both: a %d/%d b %d/%d", a_on, a_run, b_on, b_run);
}

Test(state, forced_supervisor_source_without_supervisor_is_unknown)
{
	setenv("SCHEDCTL_STATE_SOURCE", "supervisor", 1);
	observer_setup();
	struct watched w = { .w_cpu = -1 };
	atomic_store(&stop_flag, 0);
	pthread_create(&w.w_thr, NULL, busy_main, &w);
	cr_assert(tu_wait_flag(&w.w_ready));
	cr_assert_eq(schedctl_source(w.w_sc), SCHEDCTL_SOURCE_NONE);
	errno = 0;
	cr_assert_eq(schedctl_state(w.w_sc), -1, "a state nobody observed");
	cr_assert_eq(errno, ENOTSUP);
	cr_assert_eq(schedctl_cpu(w.w_sc), -1);
	/* The caller itself is known to run. */
	cr_assert_eq(schedctl_state(schedctl_self()), SC_ONPROC);
	atomic_store(&stop_flag, 1);
	pthread_join(w.w_thr, NULL);
	cr_assert_eq(schedctl_state(w.w_sc), SC_FREE);
}

Test(state, supervised_slots_report_what_the_supervisor_wrote)
{
	setenv("SCHEDCTL_STATE_SOURCE", "supervisor", 1);
	sc_set_supervised(true);
	sc_shared_t *me = schedctl_self();
	cr_assert_eq(schedctl_source(me), SCHEDCTL_SOURCE_SUPERVISOR);
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	struct watched w = { .w_fd = fds[0] };
	pthread_create(&w.w_thr, NULL, reader_main, &w);
	cr_assert(tu_wait_flag(&w.w_ready));
	cr_assert_eq(schedctl_source(w.w_sc), SCHEDCTL_SOURCE_SUPERVISOR);
	/* Stand in for the supervisor process. */
	__atomic_store_n(&w.w_sc->sc_state, SC_STOPPED, __ATOMIC_RELAXED);
	__atomic_store_n(&w.w_sc->sc_cpu, 1, __ATOMIC_RELAXED);
	cr_assert_eq(schedctl_state(w.w_sc), SC_STOPPED);
	cr_assert_eq(schedctl_cpu(w.w_sc), 1);
	/* A thread reading its own slot is running, whatever was sampled. */
	__atomic_store_n(&me->sc_state, SC_SLEEP, __ATOMIC_RELAXED);
	cr_assert_eq(schedctl_state(me), SC_ONPROC);
	cr_assert_eq(write(fds[1], "x", 1), 1);
	pthread_join(w.w_thr, NULL);
}

/* Kernel refuses perf_event_open (as at perf_event_paranoid >= 3): the
 * library says so once and reports no unobserved states. */
static int deny_perf(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return -1;
	int r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES),
	                         SCMP_SYS(perf_event_open), 0);
	if (r == 0)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	return r;
}

Test(state, perf_refused_falls_back_and_says_so_once)
{
	int err[2];
	cr_assert_eq(pipe(err), 0);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(err[1], 2);
		setenv("SCHEDCTL_VERBOSE", "1", 1);
		if (deny_perf() != 0)
			_exit(10);
		sc_shared_t *me = schedctl_self();
		if (!me || schedctl_source(me) != SCHEDCTL_SOURCE_NONE)
			_exit(11);
		struct watched w = { .w_cpu = -1 };
		pthread_create(&w.w_thr, NULL, busy_main, &w);
		while (!atomic_load(&w.w_ready))
			;
		errno = 0;
		if (schedctl_state(w.w_sc) != -1 || errno != ENOTSUP)
			_exit(12);
		if (schedctl_state(me) != SC_ONPROC)
			_exit(13);
		if (sc_perf_refused() != EACCES)
			_exit(14);
		_exit(0);
	}
	close(err[1]);
	char buf[1024] = { 0 };
	size_t n = 0;
	ssize_t r;
	while ((r = read(err[0], buf + n, sizeof buf - 1 - n)) > 0)
		n += (size_t)r;
	int status;
	waitpid(pid, &status, 0);
	cr_assert(WIFEXITED(status));
	cr_assert_eq(WEXITSTATUS(status), 0, "child step %d failed", WEXITSTATUS(status));
	char *first = strstr(buf, "context-switch records refused");
	cr_assert_not_null(first, "notice missing: '%s'", buf);
	cr_assert_null(strstr(first + 1, "context-switch records refused"),
	               "notice said more than once: '%s'", buf);
}

/* The perf path is meant for unprivileged users (perf_event_paranoid 2). */
Test(state, unprivileged_user_gets_kernel_records)
{
	int paranoid = tu_perf_paranoid();
	if (paranoid > 2)
		cr_skip_test("perf_event_paranoid=%d refuses unprivileged records", paranoid);
	pid_t pid = fork();
	if (pid == 0) {
		if (getuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
			_exit(10);
		observer_setup();
		int fds[2];
		if (pipe(fds) != 0)
			_exit(11);
		struct watched w = { .w_fd = fds[0] };
		pthread_create(&w.w_thr, NULL, reader_main, &w);
		while (!atomic_load(&w.w_ready))
			;
		tu_sleep_us(20000);
		if (schedctl_source(w.w_sc) != SCHEDCTL_SOURCE_PERF)
			_exit(12);
		if (schedctl_state(w.w_sc) != SC_SLEEP)
			_exit(13);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	cr_assert(WIFEXITED(status));
	cr_assert_eq(WEXITSTATUS(status), 0, "child step %d failed", WEXITSTATUS(status));
}

/* Unprivileged, with no mlock allowance beyond perf_event_mlock_kb:
 * threads past the perf budget have no ring and report unknown rather
 * than a guess; the others keep exact states. */
Test(state, perf_budget_spent_degrades_per_thread, .timeout = 60)
{
	int paranoid = tu_perf_paranoid();
	if (paranoid > 2)
		cr_skip_test("perf_event_paranoid=%d", paranoid);
	pid_t pid = fork();
	if (pid == 0) {
		enum { N = 300 };
		static struct watched w[N];
		struct rlimit rl = { 0, 0 };
		if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0)
			_exit(10);
		if (getuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
			_exit(11);
		int fds[2];
		if (pipe(fds) != 0)
			_exit(12);
		int n_perf = 0, n_none = 0;
		for (int i = 0; i < N; i++) {
			w[i].w_fd = fds[0];
			if (pthread_create(&w[i].w_thr, NULL, reader_main, &w[i]) != 0)
				_exit(13);
			while (!atomic_load(&w[i].w_ready))
				;
		}
		tu_sleep_us(20000);
		for (int i = 0; i < N; i++) {
			int src = schedctl_source(w[i].w_sc);
			errno = 0;
			int st = schedctl_state(w[i].w_sc);
			if (src == SCHEDCTL_SOURCE_PERF) {
				n_perf++;
				if (st != SC_SLEEP)
					_exit(14);
			} else if (src == SCHEDCTL_SOURCE_NONE) {
				n_none++;
				if (st != -1 || errno != ENOTSUP)
					_exit(15);
			} else {
				_exit(16);
			}
		}
		close(fds[1]);
		for (int i = 0; i < N; i++)
			pthread_join(w[i].w_thr, NULL);
		/* Rings are given back at exit: a new thread gets one again. */
		if (pipe(fds) != 0)
			_exit(12);
		struct watched again = { .w_fd = fds[0] };
		pthread_create(&again.w_thr, NULL, reader_main, &again);
		while (!atomic_load(&again.w_ready))
			;
		int again_src = schedctl_source(again.w_sc);
		close(fds[1]);
		pthread_join(again.w_thr, NULL);
		if (n_perf == 0 || again_src != SCHEDCTL_SOURCE_PERF)
			_exit(17);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	cr_assert(WIFEXITED(status));
	cr_assert_eq(WEXITSTATUS(status), 0, "child step %d failed", WEXITSTATUS(status));
}
