/*
 * helper.c - a small program the supervisor tests run under `schedctl
 * run`.  One mode per behaviour; results go to stdout as key=value
 * lines and the exit status (0 = the mode's checks held).
 *
 *   exit N | signal N       exit with N / die by signal N
 *   source                  print this thread's state source
 *   read N                  sample a thread blocked in read() N times
 *   cond N                  same for a thread in pthread_cond_wait
 *   hogs N                  two busy threads pinned to CPU 0, sampled
 *                           from CPU 1: count one-ONPROC-one-RUN samples
 *   threads N               create and join N threads, each with a slot
 *   many N                  N threads blocked at once, all seen SLEEP
 *   fork | vfork | spawn    child processes; each reports its own slot
 *   exec PROG ARGS          exec another program
 *   killsup                 kill our tracer (the supervisor) while
 *                           threads ping-pong and sleep; check results
 *   signals                 sleeps and condvar waits hit by signals
 *   cookie                  a futex wait with the runtime's mark is not
 *                           notified, an unmarked one is
 *   corrupt                 scribble over our slot pages, keep running
 *   thread-exec             a second thread execs `source`
 *   rawclone                a thread made with clone() blocks and exits
 *   name MS                 print the control socket's name, wait MS
 *   stopped [sleeper]       SIGSTOP/SIGCONT a child, reading its slot
 *                           through /proc/PID/map_files (root); a
 *                           sleeper child must read SC_SLEEP after
 *   pexit [fork|cancel]     main() ends with pthread_exit(); with fork,
 *                           its thread forks and the child's only
 *                           thread returns: both processes must end;
 *                           with cancel, the last thread ends with a
 *                           cancel pending
 *   timerfork               a SIGEV_THREAD timer's thread forks; the
 *                           child must end when that thread returns
 *   rawexit                 a thread exits by SYS_exit: its slot must
 *                           read SC_FREE (the supervisor's exit event)
 *   cancel | sigblock | park   the illumos emulations
 *   pingpong N              N mutex+condvar round trips (benchmarks)
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/futex.h>
#include <sys/syscall.h>

#include <schedctl.h>
#include "sc/abi.h"               /* the slot layout, for the raw checks */
#include "supervisor/proto.h"     /* SC_SYSCALL_COOKIE */

extern char **environ;

static atomic_int h_stop;
static atomic_int h_tid;

static void h_pin(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	(void)sched_setaffinity(0, sizeof s, &s);
}

static void h_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static const char *h_srcname(int src)
{
	return src == SCHEDCTL_SOURCE_PERF ? "perf" :
	       src == SCHEDCTL_SOURCE_SUPERVISOR ? "supervisor" : "none";
}

static int mode_source(void)
{
	sc_shared_t *me = schedctl_self();
	printf("source=%s\n", me ? h_srcname(schedctl_source(me)) : "nil");
	return me ? 0 : 1;
}

/* The kernel tid of a live thread, from glibc's pthread_t (the tid is
 * what pthread_getattr_np cannot give; read it from the thread's own
 * registration instead). */
static pthread_mutex_t h_reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct { pthread_t t; pid_t tid; } h_reg[8];

static pid_t h_tid_of(pthread_t t)
{
	for (int tries = 0; tries < 1000; tries++) {
		pthread_mutex_lock(&h_reg_mu);
		for (int i = 0; i < 8; i++)
			if (h_reg[i].tid && pthread_equal(h_reg[i].t, t)) {
				pid_t r = h_reg[i].tid;
				pthread_mutex_unlock(&h_reg_mu);
				return r;
			}
		pthread_mutex_unlock(&h_reg_mu);
		h_sleep_ms(1);
	}
	return 0;
}

static void h_register(void)
{
	pthread_mutex_lock(&h_reg_mu);
	for (int i = 0; i < 8; i++)
		if (!h_reg[i].tid) {
			h_reg[i].t = pthread_self();
			h_reg[i].tid = gettid();
			break;
		}
	pthread_mutex_unlock(&h_reg_mu);
}

/* ---- one blocked thread, sampled ---- */

static int h_pipe[2];
static pthread_mutex_t h_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t h_cv = PTHREAD_COND_INITIALIZER;
static int h_flag;

static void *th_read(void *a)
{
	(void)a;
	schedctl_self();
	atomic_store(&h_tid, gettid());
	char c;
	(void)!read(h_pipe[0], &c, 1);
	return NULL;
}

static void *th_cond(void *a)
{
	(void)a;
	schedctl_self();
	atomic_store(&h_tid, gettid());
	pthread_mutex_lock(&h_mu);
	while (!h_flag)
		pthread_cond_wait(&h_cv, &h_mu);
	pthread_mutex_unlock(&h_mu);
	return NULL;
}

static int mode_blocked(int n, void *(*fn)(void *))
{
	pthread_t t;
	if (pipe(h_pipe) < 0 || pthread_create(&t, NULL, fn, NULL))
		return 2;
	while (!atomic_load(&h_tid))
		h_sleep_ms(1);
	h_sleep_ms(50);          /* let it block and be seen */
	sc_shared_t *sc = schedctl_of(atomic_load(&h_tid));
	int sleep = 0, other = 0;
	for (int i = 0; i < n; i++) {
		int st = sc ? schedctl_state(sc) : -1;
		if (st == SC_SLEEP)
			sleep++;
		else
			other++;
		h_sleep_ms(1);
	}
	printf("source=%s sleep=%d other=%d\n",
	       sc ? h_srcname(schedctl_source(sc)) : "nil", sleep, other);
	pthread_mutex_lock(&h_mu);
	h_flag = 1;
	pthread_cond_broadcast(&h_cv);
	pthread_mutex_unlock(&h_mu);
	(void)!write(h_pipe[1], "x", 1);
	pthread_join(t, NULL);
	return 0;
}

/* ---- two hogs on CPU 0 ---- */

static atomic_int h_hog_tid[2];

static void *th_hog(void *a)
{
	int i = (int)(long)a;
	h_pin(0);
	schedctl_self();
	atomic_store(&h_hog_tid[i], gettid());
	while (!atomic_load(&h_stop))
		;
	return NULL;
}

static int mode_hogs(int n)
{
	pthread_t t[2];
	h_pin(1);
	for (long i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, th_hog, (void *)i);
	while (!atomic_load(&h_hog_tid[0]) || !atomic_load(&h_hog_tid[1]))
		h_sleep_ms(1);
	h_sleep_ms(100);
	sc_shared_t *a = schedctl_of(h_hog_tid[0]), *b = schedctl_of(h_hog_tid[1]);
	int pair = 0, both_on = 0, odd = 0, seen_on[2] = { 0 }, seen_run[2] = { 0 };
	for (int i = 0; i < n && a && b; i++) {
		int sa = schedctl_state(a), sb = schedctl_state(b);
		if ((sa == SC_ONPROC && sb == SC_RUN) || (sa == SC_RUN && sb == SC_ONPROC))
			pair++;
		both_on += sa == SC_ONPROC && sb == SC_ONPROC;
		odd += (sa != SC_ONPROC && sa != SC_RUN) ||
		       (sb != SC_ONPROC && sb != SC_RUN);
		seen_on[0] += sa == SC_ONPROC;
		seen_on[1] += sb == SC_ONPROC;
		seen_run[0] += sa == SC_RUN;
		seen_run[1] += sb == SC_RUN;
		h_sleep_ms(1);
	}
	const char *src = a ? h_srcname(schedctl_source(a)) : "nil";
	int cpus_ok = a && b && schedctl_cpu(a) == 0 && schedctl_cpu(b) == 0;
	atomic_store(&h_stop, 1);
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
	printf("source=%s cpu0=%d pair=%d both_on=%d odd=%d total=%d on=%d,%d run=%d,%d\n",
	       src, cpus_ok, pair, both_on, odd, n,
	       seen_on[0], seen_on[1], seen_run[0], seen_run[1]);
	return 0;
}

/* ---- many threads ---- */

static atomic_int h_with_slot;

static void *th_check(void *a)
{
	(void)a;
	sc_shared_t *me = schedctl_of(gettid());   /* set up by the preload */
	if (me && schedctl_state(me) == SC_ONPROC)
		atomic_fetch_add(&h_with_slot, 1);
	return NULL;
}

static int mode_threads(int n)
{
	pthread_t *t = calloc((size_t)n, sizeof *t);
	int made = 0;
	for (int i = 0; i < n; i++)
		if (pthread_create(&t[i], NULL, th_check, NULL) == 0)
			made++;
	for (int i = 0; i < made; i++)
		pthread_join(t[i], NULL);
	printf("created=%d with_slot=%d\n", made, atomic_load(&h_with_slot));
	free(t);
	return made == n && h_with_slot == n ? 0 : 1;
}

/* N threads alive at once, all blocked in a condvar wait: every one is
 * seen SLEEP (the sampler scales its interval with their number). */
static atomic_int h_many_ready;
static pthread_mutex_t h_many_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t h_many_cv = PTHREAD_COND_INITIALIZER;
static int h_many_go;

static void *th_many(void *a)
{
	sc_shared_t **me = a;
	*me = schedctl_of(gettid());
	atomic_fetch_add(&h_many_ready, 1);
	pthread_mutex_lock(&h_many_mu);
	while (!h_many_go)
		pthread_cond_wait(&h_many_cv, &h_many_mu);
	pthread_mutex_unlock(&h_many_mu);
	return NULL;
}

static int mode_many(int n)
{
	pthread_t *t = calloc((size_t)n, sizeof *t);
	sc_shared_t **sc = calloc((size_t)n, sizeof *sc);
	for (int i = 0; i < n; i++)
		pthread_create(&t[i], NULL, th_many, &sc[i]);
	while (atomic_load(&h_many_ready) < n)
		h_sleep_ms(1);
	int sleeping = 0;
	for (int tries = 0; tries < 100 && sleeping < n; tries++) {
		h_sleep_ms(50);
		sleeping = 0;
		for (int i = 0; i < n; i++)
			sleeping += sc[i] && schedctl_state(sc[i]) == SC_SLEEP;
	}
	pthread_mutex_lock(&h_many_mu);
	h_many_go = 1;
	pthread_cond_broadcast(&h_many_cv);
	pthread_mutex_unlock(&h_many_mu);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	printf("threads=%d sleeping=%d\n", n, sleeping);
	free(t);
	free(sc);
	return sleeping == n ? 0 : 1;
}

/* ---- processes ---- */

static int h_child_check(void)
{
	sc_shared_t *me = schedctl_of(gettid());
	return me && schedctl_tid(me) == gettid() ? 0 : 1;
}

static int mode_fork(void)
{
	pid_t p = fork();
	if (p == 0) {
		int r = h_child_check();
		/* a blocking call in the child goes through its own listener */
		h_sleep_ms(5);
		_exit(r ? 10 : 11);
	}
	int st;
	waitpid(p, &st, 0);
	printf("child_status=%d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	return WIFEXITED(st) && WEXITSTATUS(st) == 11 ? 0 : 1;
}

static int mode_vfork(const char *self)
{
	pid_t p = vfork();
	if (p == 0) {
		execl(self, self, "exit", "12", (char *)NULL);
		_exit(99);
	}
	int st;
	waitpid(p, &st, 0);
	printf("child_status=%d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	return WIFEXITED(st) && WEXITSTATUS(st) == 12 ? 0 : 1;
}

static int mode_spawn(const char *self)
{
	pid_t p;
	char *av[] = { (char *)self, (char *)"source", NULL };
	if (posix_spawn(&p, self, NULL, NULL, av, environ) != 0)
		return 2;
	int st;
	waitpid(p, &st, 0);
	printf("child_status=%d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}

/* ---- ping-pong (also the benchmark workload) ---- */

static int h_turn;
static long h_rounds;

static void *th_pong(void *a)
{
	long n = (long)a;
	for (long i = 0; i < n; i++) {
		pthread_mutex_lock(&h_mu);
		while (h_turn != 1)
			pthread_cond_wait(&h_cv, &h_mu);
		h_turn = 0;
		h_rounds++;
		pthread_cond_signal(&h_cv);
		pthread_mutex_unlock(&h_mu);
	}
	return NULL;
}

static long h_pingpong(long n)
{
	pthread_t t;
	h_turn = 0;
	h_rounds = 0;
	pthread_create(&t, NULL, th_pong, (void *)n);
	for (long i = 0; i < n; i++) {
		pthread_mutex_lock(&h_mu);
		h_turn = 1;
		pthread_cond_signal(&h_cv);
		while (h_turn != 0)
			pthread_cond_wait(&h_cv, &h_mu);
		pthread_mutex_unlock(&h_mu);
	}
	pthread_join(t, NULL);
	return h_rounds;
}

static double h_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int mode_pingpong(long n)
{
	double t0 = h_now();
	long r = h_pingpong(n);
	double t1 = h_now();
	printf("rounds=%ld ns_per_round=%.0f\n", r, (t1 - t0) * 1e9 / (double)n);
	return r == n ? 0 : 1;
}

/* ---- the supervisor dies mid-run ---- */

static pid_t h_tracer(void)
{
	char buf[2048];
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *t = strstr(buf, "TracerPid:");
	return t ? atoi(t + 10) : 0;
}

static void *th_sleeper(void *a)
{
	long *count = a;
	while (!atomic_load(&h_stop)) {
		h_sleep_ms(1);
		(*count)++;
	}
	return NULL;
}

/* => 0 if every child did its work (a wait status otherwise). */
static int h_after_death(const char *self)
{
	int st, fds[2];
	pid_t p = fork();
	if (p == 0) {
		h_sleep_ms(2);
		_exit(h_pingpong(1000) == 1000 ? 0 : 1);
	}
	waitpid(p, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return st;
	p = fork();
	if (p == 0) {
		execl(self, self, "pingpong", "2000", (char *)NULL);
		_exit(99);
	}
	waitpid(p, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return st;
	if (pipe(fds) < 0)
		return 1 << 8;
	p = fork();
	if (p == 0) {                  /* exits at once; its child works on */
		if (fork() == 0) {
			h_sleep_ms(20);
			char c = h_pingpong(1000) == 1000 ? 'y' : 'n';
			h_sleep_ms(5);
			(void)!write(fds[1], &c, 1);
			_exit(0);
		}
		_exit(0);
	}
	close(fds[1]);
	waitpid(p, &st, 0);
	char c = 0;
	(void)!read(fds[0], &c, 1);
	close(fds[0]);
	return c == 'y' ? 0 : 2 << 8;
}

static int mode_killsup(const char *self)
{
	pid_t tr = h_tracer();
	if (tr <= 0) {
		printf("no tracer\n");
		return 3;
	}
	pthread_t s;
	long sleeps = 0;
	pthread_create(&s, NULL, th_sleeper, &sleeps);
	long r1 = h_pingpong(20000);
	kill(tr, SIGKILL);
	long r2 = h_pingpong(20000);
	h_sleep_ms(50);
	long r3 = h_pingpong(20000);
	/* After the supervisor is gone: a fork child, an exec'd image, and a
	 * grandchild that outlives its parent must all run. */
	int st = h_after_death(self);
	atomic_store(&h_stop, 1);
	pthread_join(s, NULL);
	sc_shared_t *me = schedctl_self();
	printf("rounds=%ld,%ld,%ld sleeps=%ld child=%d tracer_after=%d "
	       "source_after=%s\n", r1, r2, r3, sleeps,
	       WIFEXITED(st) ? WEXITSTATUS(st) : -1, (int)h_tracer(),
	       me ? h_srcname(schedctl_source(me)) : "nil");
	return r1 == 20000 && r2 == 20000 && r3 == 20000 && sleeps > 0 &&
	       WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}

/* ---- the supervisor and then the first image die; descendants go on ----
 *
 * The kernel allows one live listener per filter chain, so a fork child
 * and an exec'd image share the first image's listener.  After the
 * supervisor is killed and the first image (P) has exited, a copy of
 * that listener held by neither must answer their notified calls, or
 * they fail with ENOSYS (or hang). */

/* Blocks on the pipe until P exits (read is not notified by default),
 * then until P is a zombie: its files, the listener copy among them,
 * are closed by then.  Busy-waits on the vDSO clock, not a notified
 * sleep. */
static void h_wait_parent_gone(int go, pid_t parent)
{
	char c;
	while (read(go, &c, 1) > 0)
		;
	for (;;) {
		char path[64], buf[512];
		snprintf(path, sizeof path, "/proc/%d/stat", (int)parent);
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			break;
		ssize_t n = read(fd, buf, sizeof buf - 1);
		close(fd);
		buf[n > 0 ? n : 0] = 0;
		char *e = strrchr(buf, ')');
		if (!e || e[2] == 'Z' || e[2] == 'X')
			break;
		sched_yield();
	}
}

/* => "ok" if notified calls complete as they would natively. */
static const char *h_notified_calls_work(void)
{
	struct timespec ts = { 0, 2000000 };
	if (nanosleep(&ts, NULL) != 0)
		return errno == ENOSYS ? "enosys" : "error";
	return h_pingpong(1000) == 1000 ? "ok" : "pingpong";
}

static int mode_orphans_exec(int go, int ready, pid_t parent)
{
	(void)!write(ready, "r", 1);
	close(ready);
	h_wait_parent_gone(go, parent);
	printf("orphan_exec=%s\n", h_notified_calls_work());
	return 0;
}

static int mode_orphans(const char *self)
{
	pid_t tr = h_tracer(), me = getpid();
	int go[2], ready[2];
	if (tr <= 0 || pipe(go) < 0 || pipe(ready) < 0)
		return 3;
	if (fork() == 0) {               /* a fork child */
		close(go[1]);
		close(ready[0]);
		close(ready[1]);
		h_wait_parent_gone(go[0], me);
		printf("orphan_fork=%s\n", h_notified_calls_work());
		_exit(0);
	}
	if (fork() == 0) {               /* an exec'd image */
		close(go[1]);
		close(ready[0]);
		char a[3][16];
		snprintf(a[0], sizeof a[0], "%d", go[0]);
		snprintf(a[1], sizeof a[1], "%d", ready[1]);
		snprintf(a[2], sizeof a[2], "%d", (int)me);
		execl(self, self, "orphans-exec", a[0], a[1], a[2], (char *)NULL);
		_exit(99);
	}
	close(ready[1]);
	char c;
	if (read(ready[0], &c, 1) != 1)
		return 4;
	kill(tr, SIGKILL);
	for (int i = 0; i < 5000 && h_tracer() != 0; i++)
		h_sleep_ms(1);
	printf("tracer_after=%d\n", (int)h_tracer());
	return 0;                         /* closes go[1]: the children go on */
}

/* ---- deferred notifications when the supervisor dies ----
 *
 * A thread that sets sc_sigblock has its next notified call deferred to
 * the supervisor's main thread (notify.c); another thread keeps
 * notifying meanwhile, so newer ids pass the deferred one.  The
 * supervisor is killed in the middle: every call must still complete. */

static atomic_long h_sb_calls, h_nap_calls;

static void *th_sigblocker(void *a)
{
	(void)a;
	sc_shared_t *me = schedctl_self();
	sigset_t none;
	sigemptyset(&none);
	while (!atomic_load(&h_stop)) {
		if (me)
			__atomic_store_n(&me->sc_sigblock, 1, __ATOMIC_RELEASE);
		struct timespec ts = { 0, 20000 };
		(void)nanosleep(&ts, NULL);
		pthread_sigmask(SIG_SETMASK, &none, NULL);
		atomic_fetch_add(&h_sb_calls, 1);
	}
	return NULL;
}

static void *th_napper_fast(void *a)
{
	(void)a;
	while (!atomic_load(&h_stop)) {
		struct timespec ts = { 0, 10000 };
		/* the raw call: libc's nanosleep is not notified (sleep.c) */
		(void)syscall(SYS_nanosleep, &ts, NULL);
		atomic_fetch_add(&h_nap_calls, 1);
	}
	return NULL;
}

static int mode_sigblock_killsup(void)
{
	pid_t tr = h_tracer();
	if (tr <= 0)
		return 3;
	pthread_t a, b;
	pthread_create(&a, NULL, th_sigblocker, NULL);
	pthread_create(&b, NULL, th_napper_fast, NULL);
	h_sleep_ms(300);
	long before = atomic_load(&h_sb_calls);
	kill(tr, SIGKILL);
	h_sleep_ms(300);
	long at_stop = atomic_load(&h_sb_calls);
	atomic_store(&h_stop, 1);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	printf("sigblock_calls=%ld,%ld naps=%ld tracer_after=%d\n", before,
	       at_stop, atomic_load(&h_nap_calls), (int)h_tracer());
	return before > 0 && at_stop > before ? 0 : 1;
}

/* ---- emulations in a fork child (its slot is in its own region) ---- */

static int mode_cancel(void);
static int mode_sigblock(void);
static int mode_park(void);

static int mode_fork_emulations(void)
{
	pid_t p = fork();
	if (p == 0)
		_exit(mode_cancel() | mode_sigblock() << 1 | mode_park() << 2);
	int st;
	waitpid(p, &st, 0);
	printf("child_status=%d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}

/* ---- notifications interrupted by signals ---- */

static atomic_int h_sigs;
static atomic_int h_napper_done;

static void h_on_usr1(int sig)
{
	(void)sig;
	atomic_fetch_add(&h_sigs, 1);
}

static double h_now(void);

/* 200 sleeps of 1 ms and 100 condvar waits of 1 ms, each restarted
 * after every signal until its full time has passed. */
static void *th_napper(void *a)
{
	double *slept = a;
	double t0 = h_now();
	for (int i = 0; i < 200; i++)
		h_sleep_ms(1);
	pthread_mutex_lock(&h_mu);
	for (int i = 0; i < 100; i++) {
		struct timespec dl;
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_nsec += 1000000;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
		while (pthread_cond_timedwait(&h_cv, &h_mu, &dl) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&h_mu);
	*slept = h_now() - t0;
	atomic_store(&h_napper_done, 1);
	return NULL;
}

static int mode_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = h_on_usr1;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	double slept = 0;
	pthread_t t;
	pthread_create(&t, NULL, th_napper, &slept);
	int sent = 0;
	while (!atomic_load(&h_napper_done)) {
		pthread_kill(t, SIGUSR1);
		sent++;
		struct timespec ts = { 0, 300000 };
		nanosleep(&ts, NULL);
	}
	pthread_join(t, NULL);
	printf("sent=%d received=%d slept_ms=%.0f\n", sent, atomic_load(&h_sigs),
	       slept * 1000);
	return slept >= 0.300 && atomic_load(&h_sigs) > 0 ? 0 : 1;
}

/* ---- the filter's cookie, and untrusted shared pages ---- */

static uint32_t h_word_a, h_word_b;

static void *th_futex(void *a)
{
	uint32_t *w = a;
	schedctl_self();
	h_register();
	long cookie = w == &h_word_a ? (long)SC_SYSCALL_COOKIE : 0;
	while (__atomic_load_n(w, __ATOMIC_ACQUIRE) == 0)
		syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, cookie);
	return NULL;
}

static struct sc_slot *h_slot_of_tid(pid_t tid)
{
	return (struct sc_slot *)schedctl_of(tid);
}

/* A waiter marked with the cookie is never notified (ss_sysno stays
 * unset); an unmarked one is (ss_sysno = futex). */
static int mode_cookie(void)
{
	pthread_t a, b;
	pthread_create(&a, NULL, th_futex, &h_word_a);
	pthread_create(&b, NULL, th_futex, &h_word_b);
	h_sleep_ms(100);
	struct sc_slot *sa = h_slot_of_tid(h_tid_of(a)), *sb = h_slot_of_tid(h_tid_of(b));
	uint32_t na = sa ? __atomic_load_n(&sa->ss_sysno, __ATOMIC_RELAXED) : 1;
	uint32_t nb = sb ? __atomic_load_n(&sb->ss_sysno, __ATOMIC_RELAXED) : 1;
	__atomic_store_n(&h_word_a, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&h_word_b, 1, __ATOMIC_RELEASE);
	syscall(SYS_futex, &h_word_a, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	syscall(SYS_futex, &h_word_b, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	printf("cookie_sysno=%d plain_sysno=%d\n", (int)na, (int)nb);
	return na == ~0u && nb == SYS_futex ? 0 : 1;
}

/* Scribble over our own slot region, shrink its memfd if we can reach
 * it, and keep making notified calls: the supervisor must neither crash
 * nor stop serving us. */
static int mode_corrupt(void)
{
	struct sc_slot *me = (struct sc_slot *)schedctl_self();
	if (!me)
		return 2;
	char *base = (char *)((uintptr_t)me & ~(uintptr_t)4095);
	struct sc_region_hdr *h = (struct sc_region_hdr *)base;
	if (h->rh_magic != SC_REGION_MAGIC)
		return 3;               /* our slot is not in page 0 */
	__atomic_store_n(&h->rh_npages, 0xffffffffu, __ATOMIC_RELEASE);
	for (int i = 2; i < 64; i++) {
		struct sc_slot *s = (struct sc_slot *)(base + i * 64);
		s->ss_tid = gettid();
		s->ss_source = (uint8_t)(i * 37);
		s->ss_pub.sc_state = (unsigned short)(i * 1009);
		s->ss_pub.sc_flgs = 0xff;
		s->ss_pub.sc_sigblock = (char)(i & 1);
	}
	char path[96];
	snprintf(path, sizeof path, "/proc/self/map_files/%lx-%lx",
	         (unsigned long)base, (unsigned long)base + SC_REGION_SIZE);
	int fd = open(path, O_RDWR);
	int shrunk = fd >= 0 && ftruncate(fd, 4096) == 0;
	for (int i = 0; i < 300; i++) {         /* notified: the raw call */
		struct timespec ts = { 0, 100000 };
		(void)syscall(SYS_nanosleep, &ts, NULL);
	}
	long pp = h_pingpong(2000);
	pid_t tr = h_tracer();
	printf("shrunk=%d tracer_alive=%d rounds=%ld\n", shrunk,
	       tr > 0 && kill(tr, 0) == 0, pp);
	return tr > 0 && pp == 2000 ? 0 : 1;
}

/* ---- group-stop seen in a child's slot (needs root: map_files) ---- */

/* Map the page of another process's slot region holding addr. */
static const volatile sc_shared_t *h_map_remote(pid_t pid, uintptr_t addr)
{
	char path[128], line[512];
	snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	unsigned long lo = 0, hi = 0;
	int found = 0;
	while (!found && fgets(line, sizeof line, f))
		found = sscanf(line, "%lx-%lx", &lo, &hi) == 2 && addr >= lo &&
		        addr < hi && strstr(line, SC_REGION_MEMFD_NAME);
	fclose(f);
	if (!found)
		return NULL;
	snprintf(path, sizeof path, "/proc/%d/map_files/%lx-%lx", (int)pid, lo, hi);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return NULL;
	char *p = mmap(NULL, hi - lo, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	return p == MAP_FAILED ? NULL : (const volatile sc_shared_t *)(p + (addr - lo));
}

/* sleeper: the child sleeps in one long call, and its slot must read
 * SC_SLEEP again as soon as the stop ends (the supervisor's source: the
 * raw sc_state is the state). */
static int mode_stopped(bool sleeper)
{
	int fds[2];
	if (pipe(fds) < 0)
		return 2;
	pid_t c = fork();
	if (c == 0) {
		uintptr_t a = (uintptr_t)schedctl_self();
		(void)!write(fds[1], &a, sizeof a);
		for (;;)
			h_sleep_ms(sleeper ? 100000 : 5);
	}
	uintptr_t a = 0;
	(void)!read(fds[0], &a, sizeof a);
	const volatile sc_shared_t *sc = a ? h_map_remote(c, a) : NULL;
	if (!sc) {
		kill(c, SIGKILL);
		waitpid(c, NULL, 0);
		printf("cannot map the child's slot\n");
		return 3;
	}
	h_sleep_ms(30);
	int before = sc->sc_state;
	kill(c, SIGSTOP);
	int st;
	waitpid(c, &st, WUNTRACED);
	h_sleep_ms(30);
	int stopped = sc->sc_state;
	kill(c, SIGCONT);
	h_sleep_ms(30);
	int after = sc->sc_state;
	kill(c, SIGKILL);
	waitpid(c, NULL, 0);
	printf("before=%d stopped=%d after=%d\n", before, stopped, after);
	if (sleeper)
		return before == SC_SLEEP && stopped == SC_STOPPED &&
		       after == SC_SLEEP ? 0 : 1;
	return before != SC_STOPPED && stopped == SC_STOPPED &&
	       after != SC_STOPPED ? 0 : 1;
}

/* ---- exec from a thread that is not the main one ---- */

static const char *h_self;

static void *th_exec(void *a)
{
	(void)a;
	h_sleep_ms(10);
	execl(h_self, h_self, "source", (char *)NULL);
	return NULL;
}

static int mode_thread_exec(const char *self)
{
	pthread_t t[3];
	h_self = self;
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, th_cond, NULL);   /* bystanders */
	pthread_create(&t[2], NULL, th_exec, NULL);
	pthread_join(t[2], NULL);
	return 5;                 /* not reached: the exec replaces us */
}

/* ---- a thread made with raw clone(): followed, but no slot ---- */

static int h_clone_tid;          /* CLONE_CHILD_CLEARTID: 0 once gone */

static int th_raw(void *a)
{
	(void)a;
	struct timespec ts = { 0, 2000000 };
	for (int i = 0; i < 5; i++)
		syscall(SYS_nanosleep, &ts, NULL);   /* notified, no slot */
	syscall(SYS_exit, 0);
	return 0;
}

static int mode_rawclone(void)
{
	size_t sz = 256 * 1024;
	char *stack = mmap(NULL, sz, PROT_READ | PROT_WRITE,
	                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED)
		return 2;
	int flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND |
	            CLONE_THREAD | CLONE_SYSVSEM | CLONE_PARENT_SETTID |
	            CLONE_CHILD_CLEARTID;
	int tid = clone(th_raw, stack + sz, flags, NULL, &h_clone_tid, NULL,
	                &h_clone_tid);
	if (tid < 0)
		return 3;
	int v;
	while ((v = __atomic_load_n(&h_clone_tid, __ATOMIC_ACQUIRE)) != 0)
		syscall(SYS_futex, &h_clone_tid, FUTEX_WAIT, v, NULL, NULL, 0);
	printf("raw_clone_done=1\n");
	return 0;
}

/* ---- a thread that exits without giving its slot back ---- */

static sc_shared_t *h_raw_sc;

static void *th_rawexit(void *a)
{
	(void)a;
	h_raw_sc = schedctl_self();
	atomic_store(&h_tid, gettid());
	syscall(SYS_exit, 0);     /* no TLS destructors: the slot stays taken */
	return NULL;
}

/* ---- the process ends with the program's last thread ---- */

static void *th_late(void *a)
{
	h_sleep_ms(50);
	printf("%s=1\n", (const char *)a);
	return NULL;
}

/* In a fork child made by a worker thread, the forking thread is alone;
 * once it returns, the child must end (status 0), as natively. */
static void *th_forker(void *a)
{
	(void)a;
	pid_t c = fork();
	if (c == 0) {
		pthread_t t;
		pthread_create(&t, NULL, th_late, "child_thread_done");
		pthread_join(t, NULL);
		return (void *)1;         /* the child's thread returns */
	}
	int st = -1;
	for (int i = 0; i < 2000 && waitpid(c, &st, WNOHANG) == 0; i++)
		h_sleep_ms(5);        /* 10 s at most */
	printf("child_status=%d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	if (!WIFEXITED(st))
		kill(c, SIGKILL);
	return NULL;
}

/* The last thread ends with a cancel still pending (it was disabled
 * when the cancel came, enabled again without a cancellation point):
 * the runtime's stop, which joins threads, must not act on it. */
static int pexit_cancel_seen;

static void *th_cancel_pending(void *a)
{
	(void)pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	while (!__atomic_load_n(&pexit_cancel_seen, __ATOMIC_ACQUIRE))
		h_sleep_ms(1);
	h_sleep_ms(20);                   /* main's pthread_exit is done */
	printf("%s=1\n", (const char *)a);
	(void)pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
	return NULL;
}

/* main() ends with pthread_exit(): the process ends when the last
 * thread has (glibc calls exit(0) in it), not when main's thread does. */
static int mode_pexit(const char *how)
{
	pthread_t t;
	if (how && !strcmp(how, "cancel")) {
		pthread_create(&t, NULL, th_cancel_pending, "thread_done");
		pthread_cancel(t);
		__atomic_store_n(&pexit_cancel_seen, 1, __ATOMIC_RELEASE);
		pthread_exit(NULL);
	}
	pthread_create(&t, NULL, how && !strcmp(how, "fork") ? th_forker
	                                                    : th_late,
	               "thread_done");
	pthread_exit(NULL);
}

/* glibc's SIGEV_THREAD timer runs the callback in a thread it makes
 * itself (not through pthread_create): the callback forks, and the
 * child, whose only thread that is, must still end when it returns. */
static void timer_fork_cb(union sigval v)
{
	(void)v;
	if (th_forker(NULL) == NULL)
		exit(0);                  /* the parent, once the child ended */
}

static int mode_timerfork(void)
{
	timer_t tm;
	struct sigevent ev = { .sigev_notify = SIGEV_THREAD,
	                       .sigev_notify_function = timer_fork_cb };
	struct itimerspec its = { .it_value = { 0, 10 * 1000000L } };
	if (timer_create(CLOCK_MONOTONIC, &ev, &tm) != 0 ||
	    timer_settime(tm, 0, &its, NULL) != 0)
		return 2;
	for (;;)
		pause();
}

static int mode_rawexit(void)
{
	pthread_t t;
	pthread_create(&t, NULL, th_rawexit, NULL);
	pthread_join(t, NULL);    /* the kernel clears the tid word at exit */
	h_sleep_ms(20);
	int st = h_raw_sc ? schedctl_state(h_raw_sc) : -2;
	printf("state_after_exit=%d\n", st);
	return st == SC_FREE ? 0 : 1;
}

/* ---- emulations ---- */

static int mode_cancel(void)
{
	sc_shared_t *me = schedctl_self();
	if (!me)
		return 2;
	__atomic_or_fetch(&me->sc_flgs, SC_CANCEL_FLG, __ATOMIC_RELEASE);
	struct timespec ts = { 0, 1000000 };
	int r = nanosleep(&ts, NULL);
	int e = errno;
	int flg = __atomic_load_n(&me->sc_flgs, __ATOMIC_ACQUIRE);
	__atomic_and_fetch(&me->sc_flgs, ~SC_CANCEL_FLG & 0xff, __ATOMIC_RELEASE);
	int r2 = nanosleep(&ts, NULL);
	printf("r=%d errno=%s eintr_flg=%d after=%d\n", r,
	       e == EINTR ? "EINTR" : strerror(e), !!(flg & SC_EINTR_FLG), r2);
	return r == -1 && e == EINTR && (flg & SC_EINTR_FLG) && r2 == 0 ? 0 : 1;
}

static int mode_sigblock(void)
{
	sc_shared_t *me = schedctl_self();
	if (!me)
		return 2;
	__atomic_store_n(&me->sc_sigblock, 1, __ATOMIC_RELEASE);
	struct timespec ts = { 0, 1000000 };
	int r = nanosleep(&ts, NULL);
	sigset_t cur;
	pthread_sigmask(SIG_SETMASK, NULL, &cur);
	int blocked = sigismember(&cur, SIGUSR1) && sigismember(&cur, SIGTERM) &&
	              sigismember(&cur, SIGINT);
	int flag = __atomic_load_n(&me->sc_sigblock, __ATOMIC_ACQUIRE);
	printf("r=%d blocked=%d flag=%d\n", r, blocked, flag);
	return r == 0 && blocked && flag == 0 ? 0 : 1;
}

static int mode_park(void)
{
	sc_shared_t *me = schedctl_self();
	if (!me)
		return 2;
	__atomic_or_fetch(&me->sc_flgs, SC_PARK_FLG, __ATOMIC_RELEASE);
	struct timespec ts = { 0, 1000000 };
	int r = nanosleep(&ts, NULL);
	int flg = __atomic_load_n(&me->sc_flgs, __ATOMIC_ACQUIRE);
	printf("r=%d park_flg=%d\n", r, !!(flg & SC_PARK_FLG));
	return r == 0 && !(flg & SC_PARK_FLG) ? 0 : 1;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc < 2)
		return 2;
	const char *m = argv[1];
	long n = argc > 2 ? atol(argv[2]) : 0;
	if (!strcmp(m, "exit"))
		return (int)n;
	if (!strcmp(m, "signal")) {
		signal((int)n, SIG_DFL);
		raise((int)n);
		return 3;
	}
	if (!strcmp(m, "source"))
		return mode_source();
	if (!strcmp(m, "read"))
		return mode_blocked((int)n, th_read);
	if (!strcmp(m, "cond"))
		return mode_blocked((int)n, th_cond);
	if (!strcmp(m, "hogs"))
		return mode_hogs((int)n);
	if (!strcmp(m, "threads"))
		return mode_threads((int)n);
	if (!strcmp(m, "many"))
		return mode_many((int)n);
	if (!strcmp(m, "fork"))
		return mode_fork();
	if (!strcmp(m, "vfork"))
		return mode_vfork(argv[0]);
	if (!strcmp(m, "spawn"))
		return mode_spawn(argv[0]);
	if (!strcmp(m, "exec") && argc > 2) {
		execv(argv[2], argv + 2);
		return 4;
	}
	if (!strcmp(m, "killsup"))
		return mode_killsup(argv[0]);
	if (!strcmp(m, "sigblock-killsup"))
		return mode_sigblock_killsup();
	if (!strcmp(m, "fork-emulations"))
		return mode_fork_emulations();
	if (!strcmp(m, "orphans"))
		return mode_orphans(argv[0]);
	if (!strcmp(m, "orphans-exec") && argc > 4)
		return mode_orphans_exec(atoi(argv[2]), atoi(argv[3]),
		                         (pid_t)atoi(argv[4]));
	if (!strcmp(m, "cancel"))
		return mode_cancel();
	if (!strcmp(m, "signals"))
		return mode_signals();
	if (!strcmp(m, "cookie"))
		return mode_cookie();
	if (!strcmp(m, "rawexit"))
		return mode_rawexit();
	if (!strcmp(m, "pexit"))
		return mode_pexit(argc > 2 ? argv[2] : NULL);
	if (!strcmp(m, "timerfork"))
		return mode_timerfork();
	if (!strcmp(m, "stopped"))
		return mode_stopped(argc > 2 && !strcmp(argv[2], "sleeper"));
	if (!strcmp(m, "rawclone"))
		return mode_rawclone();
	if (!strcmp(m, "name")) {       /* for the bystander test */
		printf("name=%s\n", getenv("SCHEDCTL_SUPERVISOR"));
		h_sleep_ms((int)n);
		return 0;
	}
	if (!strcmp(m, "thread-exec"))
		return mode_thread_exec(argv[0]);
	if (!strcmp(m, "corrupt"))
		return mode_corrupt();
	if (!strcmp(m, "sigblock"))
		return mode_sigblock();
	if (!strcmp(m, "park"))
		return mode_park();
	if (!strcmp(m, "pingpong"))
		return mode_pingpong(n);
	return 2;
}
