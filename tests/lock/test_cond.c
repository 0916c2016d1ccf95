/* The replacement condvar through the lock API (src/lock), no preload. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "lock/lock.h"
#include "util.h"

TestSuite(lock_cond, .timeout = 60);

struct box {
	pthread_mutex_t b_m;
	pthread_cond_t b_c;
	int b_ready;      /* predicate, under b_m */
	int b_woken;      /* under b_m */
	int b_waiting;    /* under b_m */
};

static void *waiter(void *arg)
{
	struct box *b = arg;
	sc_lock_mutex_lock(&b->b_m);
	b->b_waiting++;
	while (!b->b_ready) {
		int r = sc_lock_cond_wait(&b->b_c, &b->b_m);
		if (r) {
			sc_lock_mutex_unlock(&b->b_m);
			return (void *)(intptr_t)r;
		}
	}
	b->b_ready--;         /* consume one token */
	b->b_woken++;
	sc_lock_mutex_unlock(&b->b_m);
	return NULL;
}

static void wait_for_waiters(struct box *b, int n)
{
	for (;;) {
		sc_lock_mutex_lock(&b->b_m);
		int w = b->b_waiting;
		sc_lock_mutex_unlock(&b->b_m);
		if (w >= n)
			break;
		lt_sleep_ms(1);
	}
	lt_sleep_ms(20);   /* let them reach the futex */
}

static int woken(struct box *b)
{
	sc_lock_mutex_lock(&b->b_m);
	int w = b->b_woken;
	sc_lock_mutex_unlock(&b->b_m);
	return w;
}

static void signal_case(int policy)
{
	lk_set_policy(policy);
	struct box b = { .b_m = PTHREAD_MUTEX_INITIALIZER,
	                 .b_c = PTHREAD_COND_INITIALIZER };
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, waiter, &b);
	wait_for_waiters(&b, 4);
	cr_assert_eq(woken(&b), 0, "nobody wakes without a signal");
	for (int k = 1; k <= 4; k++) {
		sc_lock_mutex_lock(&b.b_m);
		b.b_ready++;
		sc_lock_cond_signal(&b.b_c);
		sc_lock_mutex_unlock(&b.b_m);
		int64_t t0 = lt_now_ms(CLOCK_MONOTONIC);
		while (woken(&b) < k && lt_now_ms(CLOCK_MONOTONIC) - t0 < 10000)
			lt_sleep_ms(1);
		cr_assert_eq(woken(&b), k, "signal %d woke %d", k, woken(&b));
	}
	for (int i = 0; i < 4; i++) {
		void *ret;
		pthread_join(t[i], &ret);
		cr_assert_null(ret);
	}
	cr_assert_eq(sc_lock_cond_destroy(&b.b_c), 0);
}

Test(lock_cond, signal_owner) { signal_case(LK_OWNER); }
Test(lock_cond, signal_park)  { signal_case(LK_PARK); }

Test(lock_cond, broadcast_wakes_all)
{
	struct box b = { .b_m = PTHREAD_MUTEX_INITIALIZER };
	cr_assert_eq(sc_lock_cond_init(&b.b_c, NULL), 0);
	pthread_t t[8];
	for (int i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, waiter, &b);
	wait_for_waiters(&b, 8);
	sc_lock_mutex_lock(&b.b_m);
	b.b_ready = 8;
	sc_lock_cond_broadcast(&b.b_c);
	sc_lock_mutex_unlock(&b.b_m);
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(b.b_woken, 8);
	/* Destroy right after the last waiter left, then reuse the memory. */
	cr_assert_eq(sc_lock_cond_destroy(&b.b_c), 0);
	cr_assert_eq(sc_lock_cond_init(&b.b_c, NULL), 0);
	cr_assert_eq(sc_lock_cond_signal(&b.b_c), 0, "no waiters: no-op");
}

Test(lock_cond, timeouts_every_clock)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t c = PTHREAD_COND_INITIALIZER;
	sc_lock_mutex_lock(&m);
	int64_t t0 = lt_now_ms(CLOCK_MONOTONIC);
	struct timespec ts = lt_after_ms(CLOCK_REALTIME, 100);
	int r;
	while ((r = sc_lock_cond_timedwait(&c, &m, &ts)) == 0)
		;   /* spurious wake-ups are allowed */
	cr_assert_eq(r, ETIMEDOUT);
	cr_assert_geq(lt_now_ms(CLOCK_MONOTONIC) - t0, 95);
	cr_assert_eq(sc_lock_mutex_trylock(&m), EBUSY, "mutex held again");

	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_t cm;
	cr_assert_eq(sc_lock_cond_init(&cm, &a), 0);
	ts = lt_after_ms(CLOCK_MONOTONIC, 50);
	t0 = lt_now_ms(CLOCK_MONOTONIC);
	while ((r = sc_lock_cond_timedwait(&cm, &m, &ts)) == 0)
		;
	cr_assert_eq(r, ETIMEDOUT);
	cr_assert_geq(lt_now_ms(CLOCK_MONOTONIC) - t0, 45);

	ts = lt_after_ms(CLOCK_MONOTONIC, 50);
	while ((r = sc_lock_cond_clockwait(&c, &m, CLOCK_MONOTONIC, &ts)) == 0)
		;
	cr_assert_eq(r, ETIMEDOUT);
	ts = lt_after_ms(CLOCK_REALTIME, 20);
	while ((r = sc_lock_cond_clockwait(&c, &m, CLOCK_REALTIME, &ts)) == 0)
		;
	cr_assert_eq(r, ETIMEDOUT);
	cr_assert_eq(sc_lock_cond_clockwait(&c, &m, CLOCK_THREAD_CPUTIME_ID, &ts),
	             EINVAL);
	struct timespec bad = { 1, 1000000000L };
	cr_assert_eq(sc_lock_cond_timedwait(&c, &m, &bad), EINVAL);
	struct timespec past = { 0, 0 };
	cr_assert_eq(sc_lock_cond_timedwait(&c, &m, &past), ETIMEDOUT);
	cr_assert_eq(sc_lock_mutex_unlock(&m), 0);
}

Test(lock_cond, wait_without_mutex_is_eperm)
{
	pthread_mutex_t m = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
	pthread_cond_t c = PTHREAD_COND_INITIALIZER;
	cr_assert_eq(sc_lock_cond_wait(&c, &m), EPERM);
}

/* Producer/consumer through a bounded queue: every item arrives once. */
#define QCAP 4
#define QITEMS 20000
struct queue {
	pthread_mutex_t q_m;
	pthread_cond_t q_notfull, q_notempty;
	int q_buf[QCAP], q_head, q_n;
	long q_sum;
};

static void *producer(void *arg)
{
	struct queue *q = arg;
	for (int i = 1; i <= QITEMS; i++) {
		sc_lock_mutex_lock(&q->q_m);
		while (q->q_n == QCAP)
			sc_lock_cond_wait(&q->q_notfull, &q->q_m);
		q->q_buf[(q->q_head + q->q_n++) % QCAP] = i;
		sc_lock_cond_signal(&q->q_notempty);
		sc_lock_mutex_unlock(&q->q_m);
	}
	return NULL;
}

static void *consumer(void *arg)
{
	struct queue *q = arg;
	for (int i = 0; i < QITEMS; i++) {
		sc_lock_mutex_lock(&q->q_m);
		while (q->q_n == 0)
			sc_lock_cond_wait(&q->q_notempty, &q->q_m);
		q->q_sum += q->q_buf[q->q_head];
		q->q_head = (q->q_head + 1) % QCAP;
		q->q_n--;
		sc_lock_cond_signal(&q->q_notfull);
		sc_lock_mutex_unlock(&q->q_m);
	}
	return NULL;
}

static void queue_case(int policy)
{
	lk_set_policy(policy);
	struct queue q = { .q_m = PTHREAD_MUTEX_INITIALIZER,
	                   .q_notfull = PTHREAD_COND_INITIALIZER,
	                   .q_notempty = PTHREAD_COND_INITIALIZER };
	pthread_t p[2], c[2];
	for (int i = 0; i < 2; i++) {
		pthread_create(&p[i], NULL, producer, &q);
		pthread_create(&c[i], NULL, consumer, &q);
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(p[i], NULL);
		pthread_join(c[i], NULL);
	}
	cr_assert_eq(q.q_sum, 2L * QITEMS * (QITEMS + 1) / 2);
}

Test(lock_cond, queue_owner) { queue_case(LK_OWNER); }
Test(lock_cond, queue_spin)  { queue_case(LK_SPIN); }
Test(lock_cond, queue_park)  { queue_case(LK_PARK); }

/* Cancellation inside the wait: the cleanup handler runs with the mutex
 * held by the cancelled thread. */
static pthread_mutex_t cancel_m = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
static pthread_cond_t cancel_c = PTHREAD_COND_INITIALIZER;
static int cancel_cleanup_rc = -1;
static int cancel_in_wait;

static void cancel_cleanup(void *arg)
{
	(void)arg;
	/* errorcheck: unlock succeeds only if this thread holds it. */
	cancel_cleanup_rc = sc_lock_mutex_unlock(&cancel_m);
}

static void *cancel_waiter(void *arg)
{
	sc_lock_mutex_lock(&cancel_m);
	pthread_cleanup_push(cancel_cleanup, NULL);
	__atomic_store_n(&cancel_in_wait, 1, __ATOMIC_RELEASE);
	for (;;)
		sc_lock_cond_wait(&cancel_c, &cancel_m);
	pthread_cleanup_pop(1);
	return arg;
}

Test(lock_cond, cancel_in_wait)
{
	pthread_t t;
	pthread_create(&t, NULL, cancel_waiter, NULL);
	while (!__atomic_load_n(&cancel_in_wait, __ATOMIC_ACQUIRE))
		lt_sleep_ms(1);
	lt_sleep_ms(30);
	cr_assert_eq(pthread_cancel(t), 0);
	void *ret;
	cr_assert_eq(pthread_join(t, &ret), 0);
	cr_assert_eq(ret, PTHREAD_CANCELED);
	cr_assert_eq(cancel_cleanup_rc, 0, "mutex held in the cleanup handler");
	cr_assert_eq(sc_lock_mutex_trylock(&cancel_m), 0, "and released by it");
	sc_lock_mutex_unlock(&cancel_m);
	/* The condvar is still usable (the waiter left it). */
	cr_assert_eq(sc_lock_cond_destroy(&cancel_c), 0);
}

/* A condvar with a pass-through (robust) mutex goes through glibc's lock. */
static void *robust_signaller(void *arg)
{
	struct box *b = arg;
	lt_sleep_ms(20);
	sc_lock_mutex_lock(&b->b_m);
	b->b_ready = 1;
	sc_lock_cond_signal(&b->b_c);
	sc_lock_mutex_unlock(&b->b_m);
	return NULL;
}

Test(lock_cond, with_robust_mutex)
{
	struct box b = { .b_c = PTHREAD_COND_INITIALIZER };
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	cr_assert_eq(sc_lock_mutex_init(&b.b_m, &a), 0);
	pthread_t t;
	pthread_create(&t, NULL, robust_signaller, &b);
	sc_lock_mutex_lock(&b.b_m);
	while (!b.b_ready)
		cr_assert_eq(sc_lock_cond_wait(&b.b_c, &b.b_m), 0);
	sc_lock_mutex_unlock(&b.b_m);
	pthread_join(t, NULL);
}

Test(lock_cond, pshared_cond_goes_to_glibc)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	pthread_cond_t c;
	pthread_mutex_t m, priv = PTHREAD_MUTEX_INITIALIZER;
	cr_assert_eq(sc_lock_cond_init(&c, &ca), 0);
	cr_assert_eq(sc_lock_mutex_init(&m, &ma), 0);
	cr_assert(((struct lk_cond *)&c)->lc_flags & LC_PSHARED);
	sc_lock_mutex_lock(&m);
	struct timespec ts = lt_after_ms(CLOCK_REALTIME, 20);
	int r;
	while ((r = sc_lock_cond_timedwait(&c, &m, &ts)) == 0)
		;
	cr_assert_eq(r, ETIMEDOUT);
	sc_lock_mutex_unlock(&m);
	sc_lock_mutex_lock(&priv);
	cr_assert_eq(sc_lock_cond_wait(&c, &priv), EINVAL,
	             "documented: shared condvar with a replaced mutex");
	sc_lock_mutex_unlock(&priv);
	cr_assert_eq(sc_lock_cond_destroy(&c), 0);
}

/*
 * A 1 kHz signal storm (handler without SA_RESTART, so each signal
 * interrupts the futex sleep with EINTR) against condvar waiters that
 * nobody signals: a wait returns only when signalled, so no waiter may
 * return at all, and a timed wait returns only with ETIMEDOUT, never
 * before its deadline.  Native glibc behaves the same way.
 */
#define STORM_WAITERS 3

struct storm {
	pthread_mutex_t s_m;
	pthread_cond_t s_c;
	clockid_t s_clock;        /* timed waits on this clock; -1: untimed */
	int s_stop;               /* under s_m */
	int s_returns;            /* untimed: returns before s_stop; under s_m */
	int s_early;              /* timed: returns before the deadline */
	int s_not_timedout;       /* timed: returns other than ETIMEDOUT */
	int s_timedout;           /* timed: ETIMEDOUT returns */
	int s_ready;              /* atomic: waiters started */
};

static int storm_hits;        /* atomic: signals handled */

static void storm_handler(int sig)
{
	(void)sig;
	__atomic_add_fetch(&storm_hits, 1, __ATOMIC_RELAXED);
}

static void *storm_waiter(void *arg)
{
	struct storm *s = arg;
	sc_lock_mutex_lock(&s->s_m);
	__atomic_add_fetch(&s->s_ready, 1, __ATOMIC_RELEASE);
	while (!s->s_stop) {
		if (s->s_clock < 0) {
			int r = sc_lock_cond_wait(&s->s_c, &s->s_m);
			if (!s->s_stop && r == 0)
				s->s_returns++;
			continue;
		}
		struct timespec dl = lt_after_ms(s->s_clock, 60), now;
		int r = sc_lock_cond_clockwait(&s->s_c, &s->s_m, s->s_clock, &dl);
		clock_gettime(s->s_clock, &now);
		if (s->s_stop)
			break;
		if (r != ETIMEDOUT)
			s->s_not_timedout++;
		else
			s->s_timedout++;
		if (now.tv_sec < dl.tv_sec ||
		    (now.tv_sec == dl.tv_sec && now.tv_nsec < dl.tv_nsec))
			s->s_early++;
	}
	sc_lock_mutex_unlock(&s->s_m);
	return NULL;
}

/* Start the waiters, signal each of them every millisecond for ms (and
 * on, up to 10 s, until 300 signals were handled: a loaded machine
 * delivers fewer), stop them; => the number of signals handled. */
static int storm_run(struct storm *s, int policy, long ms)
{
	lk_set_policy(policy);
	struct sigaction sa = { .sa_handler = storm_handler };   /* no SA_RESTART */
	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	__atomic_store_n(&storm_hits, 0, __ATOMIC_RELAXED);
	pthread_t t[STORM_WAITERS];
	for (int i = 0; i < STORM_WAITERS; i++)
		pthread_create(&t[i], NULL, storm_waiter, s);
	while (__atomic_load_n(&s->s_ready, __ATOMIC_ACQUIRE) < STORM_WAITERS)
		lt_sleep_ms(1);
	int64_t t0 = lt_now_ms(CLOCK_MONOTONIC);
	for (;;) {
		int64_t el = lt_now_ms(CLOCK_MONOTONIC) - t0;
		if (el >= 10000 || (el >= ms &&
		    __atomic_load_n(&storm_hits, __ATOMIC_RELAXED) >= 300))
			break;
		for (int i = 0; i < STORM_WAITERS; i++)
			pthread_kill(t[i], SIGUSR1);
		struct timespec d = { 0, 1000000 };
		nanosleep(&d, NULL);
	}
	sc_lock_mutex_lock(&s->s_m);
	s->s_stop = 1;
	sc_lock_cond_broadcast(&s->s_c);
	sc_lock_mutex_unlock(&s->s_m);
	for (int i = 0; i < STORM_WAITERS; i++)
		pthread_join(t[i], NULL);
	return __atomic_load_n(&storm_hits, __ATOMIC_RELAXED);
}

static void storm_wait_case(int policy)
{
	struct storm s = { .s_m = PTHREAD_MUTEX_INITIALIZER,
	                   .s_c = PTHREAD_COND_INITIALIZER, .s_clock = -1 };
	int hits = storm_run(&s, policy, 500);
	cr_assert_geq(hits, 100, "the storm reached the waiters (%d signals)", hits);
	cr_assert_eq(s.s_returns, 0, "%d returns from an unsignalled wait under "
	             "%d signals", s.s_returns, hits);
}

static void storm_timedwait_case(int policy, clockid_t clock)
{
	struct storm s = { .s_m = PTHREAD_MUTEX_INITIALIZER,
	                   .s_c = PTHREAD_COND_INITIALIZER, .s_clock = clock };
	int hits = storm_run(&s, policy, 500);
	cr_assert_geq(hits, 100, "the storm reached the waiters (%d signals)", hits);
	cr_assert_gt(s.s_timedout, 0);
	cr_assert_eq(s.s_not_timedout, 0, "%d timed waits returned without "
	             "ETIMEDOUT (%d timed out)", s.s_not_timedout, s.s_timedout);
	cr_assert_eq(s.s_early, 0, "%d timed waits returned early", s.s_early);
}

Test(lock_cond, signal_storm_wait_owner) { storm_wait_case(LK_OWNER); }
Test(lock_cond, signal_storm_wait_park)  { storm_wait_case(LK_PARK); }
Test(lock_cond, signal_storm_timedwait_realtime)
{
	storm_timedwait_case(LK_OWNER, CLOCK_REALTIME);
}
Test(lock_cond, signal_storm_timedwait_monotonic)
{
	storm_timedwait_case(LK_PARK, CLOCK_MONOTONIC);
}
