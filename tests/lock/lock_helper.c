/*
 * lock_helper - an ordinary pthread program (no schedctl headers) whose
 * scenarios assert glibc's documented behaviour.  tests/lock runs each
 * scenario natively (which checks the expectations against glibc
 * itself) and under LD_PRELOAD of the preload with every policy.
 *
 *   lock_helper SCENARIO     exit 0 if every check held, 1 otherwise
 */
#include <stdbool.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static const char *scenario;

#define CHECK(c, ...) do { if (!(c)) { \
	fprintf(stderr, "lock_helper %s:%d: %s: ", scenario, __LINE__, #c); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } } while (0)
#define EQ(a, b) do { long _a = (long)(a), _b = (long)(b); \
	CHECK(_a == _b, "%ld != %ld", _a, _b); } while (0)

static void *in_thread(void *(*fn)(void *), void *arg)
{
	pthread_t t;
	void *r;
	EQ(pthread_create(&t, NULL, fn, arg), 0);
	EQ(pthread_join(t, &r), 0);
	return r;
}

static void *do_trylock(void *m) { return (void *)(intptr_t)pthread_mutex_trylock(m); }
static void *do_unlock(void *m) { return (void *)(intptr_t)pthread_mutex_unlock(m); }
static void *do_lock(void *m) { return (void *)(intptr_t)pthread_mutex_lock(m); }

/* ---- interposed: which implementation answers ---- */
static int s_interposed(void)
{
	Dl_info di;
	void *p = dlsym(RTLD_DEFAULT, "pthread_mutex_lock");
	CHECK(p && dladdr(p, &di), "no pthread_mutex_lock");
	const char *want = getenv("LT_EXPECT_PRELOAD");
	bool ours = strstr(di.dli_fname, "schedctl-preload") != NULL;
	EQ(ours, want && *want == '1');
	return 0;
}

/* ---- counter: no lost updates, every type ---- */
struct counter { pthread_mutex_t m; long n; int iters; int recursive; };

static void *count_worker(void *arg)
{
	struct counter *c = arg;
	for (int i = 0; i < c->iters; i++) {
		pthread_mutex_lock(&c->m);
		if (c->recursive)
			pthread_mutex_lock(&c->m);
		long v = c->n;
		if ((i & 127) == 0)
			sched_yield();
		c->n = v + 1;
		if (c->recursive)
			pthread_mutex_unlock(&c->m);
		pthread_mutex_unlock(&c->m);
	}
	return NULL;
}

static int s_counter(void)
{
	int types[] = { -1, PTHREAD_MUTEX_NORMAL, PTHREAD_MUTEX_RECURSIVE,
	                PTHREAD_MUTEX_ERRORCHECK, PTHREAD_MUTEX_ADAPTIVE_NP };
	for (unsigned k = 0; k < sizeof types / sizeof types[0]; k++) {
		static struct counter c;
		memset(&c, 0, sizeof c);
		c.iters = 20000;
		c.recursive = types[k] == PTHREAD_MUTEX_RECURSIVE;
		if (types[k] >= 0) {
			pthread_mutexattr_t a;
			pthread_mutexattr_init(&a);
			pthread_mutexattr_settype(&a, types[k]);
			EQ(pthread_mutex_init(&c.m, &a), 0);
		}
		pthread_t t[8];
		for (int i = 0; i < 8; i++)
			EQ(pthread_create(&t[i], NULL, count_worker, &c), 0);
		for (int i = 0; i < 8; i++)
			pthread_join(t[i], NULL);
		EQ(c.n, 8L * c.iters);
		EQ(pthread_mutex_destroy(&c.m), 0);
	}
	return 0;
}

/* ---- codes: the error codes glibc returns ---- */
static int s_codes(void)
{
	pthread_mutex_t n = PTHREAD_MUTEX_INITIALIZER;
	EQ(pthread_mutex_trylock(&n), 0);
	EQ(pthread_mutex_trylock(&n), EBUSY);
	EQ((intptr_t)in_thread(do_trylock, &n), EBUSY);
	EQ(pthread_mutex_destroy(&n), EBUSY);
	EQ((intptr_t)in_thread(do_unlock, &n), 0);   /* normal: anyone */
	EQ(pthread_mutex_destroy(&n), 0);
	EQ(pthread_mutex_init(&n, NULL), 0);

	pthread_mutex_t e = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
	EQ(pthread_mutex_unlock(&e), EPERM);
	EQ(pthread_mutex_lock(&e), 0);
	EQ(pthread_mutex_lock(&e), EDEADLK);
	EQ(pthread_mutex_trylock(&e), EBUSY);
	struct timespec ts = lt_after_ms(CLOCK_REALTIME, 10);
	EQ(pthread_mutex_timedlock(&e, &ts), EDEADLK);
	EQ((intptr_t)in_thread(do_unlock, &e), EPERM);
	EQ(pthread_mutex_unlock(&e), 0);

	pthread_mutex_t r = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
	EQ(pthread_mutex_unlock(&r), EPERM);
	for (int i = 0; i < 3; i++)
		EQ(pthread_mutex_lock(&r), 0);
	EQ(pthread_mutex_trylock(&r), 0);
	EQ((intptr_t)in_thread(do_trylock, &r), EBUSY);
	EQ((intptr_t)in_thread(do_unlock, &r), EPERM);
	for (int i = 0; i < 4; i++)
		EQ(pthread_mutex_unlock(&r), 0);
	EQ(pthread_mutex_unlock(&r), EPERM);
	EQ((intptr_t)in_thread(do_lock, &r), 0);  /* thread exits holding it */
	EQ(pthread_mutex_trylock(&r), EBUSY);

	pthread_mutex_t a = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;
	EQ(pthread_mutex_lock(&a), 0);
	EQ(pthread_mutex_trylock(&a), EBUSY);
	EQ(pthread_mutex_unlock(&a), 0);
	EQ(pthread_mutex_consistent(&a), EINVAL);

	pthread_mutexattr_t at;
	pthread_mutexattr_init(&at);
	EQ(pthread_mutexattr_settype(&at, 42), EINVAL);
	return 0;
}

/* ---- timed: timeouts on both clocks, bad times ---- */
static int timed_steps_done;   /* the holder lets go only after them */

static void *timed_worker(void *m)
{
	struct timespec ts = lt_after_ms(CLOCK_REALTIME, 80);
	long t0 = lt_now_ms(CLOCK_MONOTONIC);
	EQ(pthread_mutex_timedlock(m, &ts), ETIMEDOUT);
	CHECK(lt_now_ms(CLOCK_MONOTONIC) - t0 >= 75, "returned after %ld ms", lt_now_ms(CLOCK_MONOTONIC) - t0);
	ts = lt_after_ms(CLOCK_MONOTONIC, 40);
	EQ(pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts), ETIMEDOUT);
	struct timespec past = { 0, 0 }, bad = { 0, -1 };
	EQ(pthread_mutex_timedlock(m, &past), ETIMEDOUT);
	EQ(pthread_mutex_timedlock(m, &bad), EINVAL);
	EQ(pthread_mutex_clocklock(m, CLOCK_PROCESS_CPUTIME_ID, &ts), EINVAL);
	__atomic_store_n(&timed_steps_done, 1, __ATOMIC_RELEASE);
	ts = lt_after_ms(CLOCK_MONOTONIC, 20000);
	EQ(pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts), 0);
	EQ(pthread_mutex_unlock(m), 0);
	return NULL;
}

static int s_timed(void)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	struct timespec past = { 0, 0 };
	EQ(pthread_mutex_timedlock(&m, &past), 0);
	pthread_t t;
	EQ(pthread_create(&t, NULL, timed_worker, &m), 0);
	while (!__atomic_load_n(&timed_steps_done, __ATOMIC_ACQUIRE))
		lt_sleep_ms(1);
	lt_sleep_ms(20);   /* let it park in the last, long clocklock */
	EQ(pthread_mutex_unlock(&m), 0);
	pthread_join(t, NULL);
	return 0;
}

/* ---- robust: passed through to glibc ---- */
static int s_robust(void)
{
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_t m;
	EQ(pthread_mutex_init(&m, &a), 0);
	EQ((intptr_t)in_thread(do_lock, &m), 0);
	EQ(pthread_mutex_lock(&m), EOWNERDEAD);
	EQ(pthread_mutex_unlock(&m), 0);          /* not made consistent */
	EQ(pthread_mutex_lock(&m), ENOTRECOVERABLE);
	EQ(pthread_mutex_init(&m, &a), 0);
	EQ((intptr_t)in_thread(do_lock, &m), 0);
	EQ(pthread_mutex_trylock(&m), EOWNERDEAD);
	EQ(pthread_mutex_consistent(&m), 0);
	EQ(pthread_mutex_unlock(&m), 0);
	EQ(pthread_mutex_lock(&m), 0);
	EQ(pthread_mutex_unlock(&m), 0);
	/* priority inheritance, errorcheck */
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
	EQ(pthread_mutex_init(&m, &a), 0);
	EQ(pthread_mutex_lock(&m), 0);
	EQ(pthread_mutex_lock(&m), EDEADLK);
	EQ(pthread_mutex_unlock(&m), 0);
	EQ(pthread_mutex_destroy(&m), 0);
	return 0;
}

/* ---- pshared: mutex + condvar in memory shared with a child ---- */
struct shm { pthread_mutex_t m; pthread_cond_t c; int turn; long hits; };

static int s_pshared(void)
{
	struct shm *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE,
	                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(s != MAP_FAILED, "mmap");
	pthread_mutexattr_t ma;
	pthread_condattr_t ca;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	pthread_condattr_init(&ca);
	pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
	EQ(pthread_mutex_init(&s->m, &ma), 0);
	EQ(pthread_cond_init(&s->c, &ca), 0);
	pid_t pid = fork();
	CHECK(pid >= 0, "fork");
	int me = pid == 0;
	for (int i = 0; i < 2000; i++) {
		pthread_mutex_lock(&s->m);
		while (s->turn != me)
			pthread_cond_wait(&s->c, &s->m);
		s->hits++;
		s->turn = !me;
		pthread_cond_broadcast(&s->c);
		pthread_mutex_unlock(&s->m);
	}
	if (pid == 0)
		_exit(0);
	int st;
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child");
	EQ(s->hits, 4000);
	return 0;
}

/* ---- cond: signal, broadcast, timeouts on every clock ---- */
struct q { pthread_mutex_t m; pthread_cond_t ne, nf; int buf[4], head, n; long sum; };
#define QN 20000

static void *prod(void *arg)
{
	struct q *q = arg;
	for (int i = 1; i <= QN; i++) {
		pthread_mutex_lock(&q->m);
		while (q->n == 4)
			pthread_cond_wait(&q->nf, &q->m);
		q->buf[(q->head + q->n++) % 4] = i;
		pthread_cond_signal(&q->ne);
		pthread_mutex_unlock(&q->m);
	}
	return NULL;
}

static void *cons(void *arg)
{
	struct q *q = arg;
	for (int i = 0; i < QN; i++) {
		pthread_mutex_lock(&q->m);
		while (q->n == 0) {
			struct timespec ts = lt_after_ms(CLOCK_REALTIME, 1000);
			pthread_cond_timedwait(&q->ne, &q->m, &ts);
		}
		q->sum += q->buf[q->head];
		q->head = (q->head + 1) % 4;
		q->n--;
		pthread_cond_signal(&q->nf);
		pthread_mutex_unlock(&q->m);
	}
	return NULL;
}

static pthread_mutex_t bm = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t bc = PTHREAD_COND_INITIALIZER;
static int bgo, bwaiting, bdone;

static void *bwaiter(void *arg)
{
	pthread_mutex_lock(&bm);
	bwaiting++;
	while (!bgo)
		pthread_cond_wait(&bc, &bm);
	bdone++;
	pthread_mutex_unlock(&bm);
	return arg;
}

static int s_cond(void)
{
	static struct q q = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
	                      PTHREAD_COND_INITIALIZER, {0}, 0, 0, 0 };
	pthread_t t[4];
	for (int i = 0; i < 2; i++) {
		pthread_create(&t[i], NULL, prod, &q);
		pthread_create(&t[2 + i], NULL, cons, &q);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	EQ(q.sum, 2L * QN * (QN + 1) / 2);

	pthread_t w[6];
	for (int i = 0; i < 6; i++)
		pthread_create(&w[i], NULL, bwaiter, NULL);
	for (;;) {
		pthread_mutex_lock(&bm);
		int n = bwaiting;
		pthread_mutex_unlock(&bm);
		if (n == 6)
			break;
		lt_sleep_ms(1);
	}
	lt_sleep_ms(20);
	pthread_mutex_lock(&bm);
	EQ(bdone, 0);
	bgo = 1;
	pthread_cond_broadcast(&bc);
	pthread_mutex_unlock(&bm);
	for (int i = 0; i < 6; i++)
		pthread_join(w[i], NULL);
	EQ(bdone, 6);
	EQ(pthread_cond_destroy(&bc), 0);

	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t c = PTHREAD_COND_INITIALIZER, cm;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	EQ(pthread_cond_init(&cm, &ca), 0);
	pthread_mutex_lock(&m);
	int r;
	long t0 = lt_now_ms(CLOCK_MONOTONIC);
	struct timespec ts = lt_after_ms(CLOCK_REALTIME, 60);
	while ((r = pthread_cond_timedwait(&c, &m, &ts)) == 0)
		;
	EQ(r, ETIMEDOUT);
	CHECK(lt_now_ms(CLOCK_MONOTONIC) - t0 >= 55, "after %ld ms", lt_now_ms(CLOCK_MONOTONIC) - t0);
	ts = lt_after_ms(CLOCK_MONOTONIC, 40);
	while ((r = pthread_cond_timedwait(&cm, &m, &ts)) == 0)
		;
	EQ(r, ETIMEDOUT);
	ts = lt_after_ms(CLOCK_MONOTONIC, 30);
	while ((r = pthread_cond_clockwait(&c, &m, CLOCK_MONOTONIC, &ts)) == 0)
		;
	EQ(r, ETIMEDOUT);
	EQ(pthread_cond_clockwait(&c, &m, CLOCK_PROCESS_CPUTIME_ID, &ts), EINVAL);
	struct timespec bad = { 0, 1000000000L };
	EQ(pthread_cond_timedwait(&c, &m, &bad), EINVAL);
	EQ(pthread_mutex_trylock(&m), EBUSY);   /* held again after each */
	pthread_mutex_unlock(&m);
	pthread_mutex_t e = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
	EQ(pthread_cond_wait(&c, &e), EPERM);
	return 0;
}

/* ---- cancel: cancellation inside pthread_cond_wait ---- */
static pthread_mutex_t cm_ = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
static pthread_cond_t cc_ = PTHREAD_COND_INITIALIZER;
static int c_in, c_cleanup = -1;

static void c_handler(void *arg)
{
	(void)arg;
	c_cleanup = pthread_mutex_unlock(&cm_);
}

static void *c_waiter(void *arg)
{
	pthread_mutex_lock(&cm_);
	pthread_cleanup_push(c_handler, NULL);
	__atomic_store_n(&c_in, 1, __ATOMIC_RELEASE);
	for (;;)
		pthread_cond_wait(&cc_, &cm_);
	pthread_cleanup_pop(1);
	return arg;
}

static int s_cancel(void)
{
	pthread_t t;
	pthread_create(&t, NULL, c_waiter, NULL);
	while (!__atomic_load_n(&c_in, __ATOMIC_ACQUIRE))
		lt_sleep_ms(1);
	lt_sleep_ms(30);
	EQ(pthread_cancel(t), 0);
	void *r;
	EQ(pthread_join(t, &r), 0);
	CHECK(r == PTHREAD_CANCELED, "not cancelled");
	EQ(c_cleanup, 0);
	EQ(pthread_mutex_trylock(&cm_), 0);
	EQ(pthread_mutex_unlock(&cm_), 0);
	return 0;
}

/* ---- fork: another thread holds a lock ---- */
static pthread_mutex_t f_held = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t f_err = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
static pthread_mutex_t f_mine = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t f_free = PTHREAD_MUTEX_INITIALIZER;
static int f_state;

static void *f_holder(void *arg)
{
	pthread_mutex_lock(&f_held);
	__atomic_store_n(&f_state, 1, __ATOMIC_RELEASE);
	while (__atomic_load_n(&f_state, __ATOMIC_ACQUIRE) != 2)
		lt_sleep_ms(1);
	pthread_mutex_unlock(&f_held);
	return arg;
}

static int f_child(void)
{
	EQ(pthread_mutex_trylock(&f_held), EBUSY);
	struct timespec ts = lt_after_ms(CLOCK_REALTIME, 30);
	EQ(pthread_mutex_timedlock(&f_held, &ts), ETIMEDOUT);
	EQ(pthread_mutex_unlock(&f_mine), 0);
	/* glibc: the child thread has a new tid, so it is not the owner */
	EQ(pthread_mutex_unlock(&f_err), EPERM);
	for (int i = 0; i < 1000; i++) {
		EQ(pthread_mutex_lock(&f_free), 0);
		EQ(pthread_mutex_unlock(&f_free), 0);
	}
	EQ((intptr_t)in_thread(do_trylock, &f_free), 0);
	EQ(pthread_mutex_trylock(&f_free), EBUSY);
	return 0;
}

static int s_fork(void)
{
	pthread_t t;
	pthread_create(&t, NULL, f_holder, NULL);
	while (__atomic_load_n(&f_state, __ATOMIC_ACQUIRE) != 1)
		lt_sleep_ms(1);
	EQ(pthread_mutex_lock(&f_mine), 0);
	EQ(pthread_mutex_lock(&f_err), 0);
	pid_t pid = fork();
	if (pid == 0)
		_exit(f_child());
	int st;
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed");
	EQ(pthread_mutex_unlock(&f_mine), 0);
	EQ(pthread_mutex_unlock(&f_err), 0);
	__atomic_store_n(&f_state, 2, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	EQ(pthread_mutex_trylock(&f_held), 0);
	return 0;
}

/* ---- statics: thousands of never-initialised mutexes ---- */
#define NSTAT 10000
static pthread_mutex_t stat_m[NSTAT];
static pthread_mutex_t stat_r[64] = {
	[0 ... 63] = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP };

static int s_statics(void)
{
	for (int i = 0; i < NSTAT; i++)
		EQ(pthread_mutex_lock(&stat_m[i]), 0);
	for (int i = 0; i < NSTAT; i += 501)
		EQ((intptr_t)in_thread(do_trylock, &stat_m[i]), EBUSY);
	for (int i = 0; i < NSTAT; i++)
		EQ(pthread_mutex_unlock(&stat_m[i]), 0);
	for (int i = 0; i < 64; i++) {
		EQ(pthread_mutex_lock(&stat_r[i]), 0);
		EQ(pthread_mutex_lock(&stat_r[i]), 0);
		EQ(pthread_mutex_unlock(&stat_r[i]), 0);
		EQ(pthread_mutex_unlock(&stat_r[i]), 0);
	}
	return 0;
}

/* ---- rwlock: left to glibc, works beside the replaced mutex ---- */
static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static pthread_mutex_t rwm = PTHREAD_MUTEX_INITIALIZER;
static long rw_val, rw_reads;

static void *rw_worker(void *arg)
{
	long id = (long)(intptr_t)arg;
	for (int i = 0; i < 5000; i++) {
		if ((i + id) % 4 == 0) {
			pthread_rwlock_wrlock(&rw);
			rw_val++;
			pthread_rwlock_unlock(&rw);
		} else {
			pthread_rwlock_rdlock(&rw);
			long v = rw_val;
			pthread_rwlock_unlock(&rw);
			pthread_mutex_lock(&rwm);
			rw_reads += v >= 0;
			pthread_mutex_unlock(&rwm);
		}
	}
	return NULL;
}

static int s_rwlock(void)
{
	pthread_t t[4];
	for (long i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, rw_worker, (void *)(intptr_t)i);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	EQ(rw_val, 4 * 1250);
	EQ(rw_reads, 4 * 3750);
	EQ(pthread_rwlock_trywrlock(&rw), 0);
	EQ(pthread_rwlock_tryrdlock(&rw), EBUSY);
	EQ(pthread_rwlock_unlock(&rw), 0);
	return 0;
}

static const struct { const char *name; int (*fn)(void); } scenarios[] = {
	{ "interposed", s_interposed }, { "counter", s_counter },
	{ "codes", s_codes }, { "timed", s_timed }, { "robust", s_robust },
	{ "pshared", s_pshared }, { "cond", s_cond }, { "cancel", s_cancel },
	{ "fork", s_fork }, { "statics", s_statics }, { "rwlock", s_rwlock },
};

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: lock_helper SCENARIO\n");
		return 2;
	}
	scenario = argv[1];
	for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
		if (strcmp(argv[1], scenarios[i].name) == 0)
			return scenarios[i].fn();
	fprintf(stderr, "lock_helper: unknown scenario %s\n", argv[1]);
	return 2;
}
