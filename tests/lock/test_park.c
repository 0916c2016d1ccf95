/*
 * The runtime's parking goes through sc_futex_wait (linked with
 * --wrap=sc_futex_wait, so every call from src/lock lands here first),
 * with the slot marked SS_IN_RUNTIME while it sleeps; and the owner
 * policy parks at once behind a holder that is asleep.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>

#include "lock/lock.h"
#include "util.h"

long __real_sc_futex_wait(uint32_t *, uint32_t, const struct timespec *, bool);
long __wrap_sc_futex_wait(uint32_t *u, uint32_t v, const struct timespec *t,
                          bool p);

static unsigned long park_calls;
static unsigned long park_marked;
static int park_state_seen = -1;          /* raw sc_state at the call */
static uint32_t park_sysno_seen;
static uint64_t park_stamp_seen;

long __wrap_sc_futex_wait(uint32_t *u, uint32_t v, const struct timespec *t,
                          bool p)
{
	__atomic_add_fetch(&park_calls, 1, __ATOMIC_RELAXED);
	struct sc_slot *s = sc_thread_slot();
	if (s && (__atomic_load_n(&s->ss_flags, __ATOMIC_RELAXED) & SS_IN_RUNTIME))
		__atomic_add_fetch(&park_marked, 1, __ATOMIC_RELAXED);
	if (s) {
		park_state_seen = __atomic_load_n(&s->ss_pub.sc_state,
		                                  __ATOMIC_RELAXED);
		park_sysno_seen = __atomic_load_n(&s->ss_sysno, __ATOMIC_RELAXED);
		park_stamp_seen = __atomic_load_n(&s->ss_stamp_ns,
		                                  __ATOMIC_RELAXED);
		struct timespec us = { 0, 1000 };   /* the clock moves on */
		nanosleep(&us, NULL);
	}
	return __real_sc_futex_wait(u, v, t, p);
}

TestSuite(lock_park, .timeout = 60);

static pthread_mutex_t pm = PTHREAD_MUTEX_INITIALIZER;
static struct sc_slot *waiter_slot;
static double waiter_cpu_ms;

static double thread_cpu_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void *blocked_locker(void *arg)
{
	__atomic_store_n(&waiter_slot, sc_thread_setup(), __ATOMIC_RELEASE);
	double c0 = thread_cpu_ms();
	sc_lock_mutex_lock(&pm);
	waiter_cpu_ms = thread_cpu_ms() - c0;
	sc_lock_mutex_unlock(&pm);
	return arg;
}

static void park_case(int policy)
{
	lk_set_policy(policy);
	park_calls = park_marked = 0;
	waiter_slot = NULL;
	cr_assert_not_null(sc_thread_setup());
	sc_lock_mutex_lock(&pm);
	pthread_t t;
	pthread_create(&t, NULL, blocked_locker, NULL);
	/* Wait for the waiter to park (a loaded machine may not run it for
	 * a while), then keep the holder asleep for 150 ms: the owner
	 * policy must not spin on it. */
	for (int i = 0; i < 5000 &&
	     (!__atomic_load_n(&waiter_slot, __ATOMIC_ACQUIRE) ||
	      !__atomic_load_n(&park_calls, __ATOMIC_RELAXED)); i++)
		lt_sleep_ms(1);
	lt_sleep_ms(150);
	struct sc_slot *ws = __atomic_load_n(&waiter_slot, __ATOMIC_ACQUIRE);
	cr_assert_not_null(ws);
	cr_assert(__atomic_load_n(&ws->ss_flags, __ATOMIC_RELAXED) & SS_IN_RUNTIME,
	          "the parked waiter is marked as the runtime's sleep");
	sc_lock_mutex_unlock(&pm);
	pthread_join(t, NULL);
	cr_assert_geq(park_calls, 1, "parking went through sc_futex_wait");
	cr_assert_eq(park_marked, park_calls, "every park marked SS_IN_RUNTIME");
	cr_assert_eq(__atomic_load_n(&ws->ss_flags, __ATOMIC_RELAXED) & SS_IN_RUNTIME,
	             0, "cleared after waking");
	/* 150 ms blocked; spinning through it would cost ~150 ms of CPU. */
	cr_assert_lt(waiter_cpu_ms, 30.0, "policy %s burnt %.1f ms",
	             lk_policy_name(policy), waiter_cpu_ms);
}

Test(lock_park, owner) { park_case(LK_OWNER); }
Test(lock_park, spin)  { park_case(LK_SPIN); }
Test(lock_park, park)  { park_case(LK_PARK); }

static pthread_cond_t pc = PTHREAD_COND_INITIALIZER;

Test(lock_park, condvar)
{
	park_calls = park_marked = 0;
	sc_lock_mutex_lock(&pm);
	struct timespec ts = lt_after_ms(CLOCK_REALTIME, 30);
	while (sc_lock_cond_timedwait(&pc, &pm, &ts) != ETIMEDOUT)
		;
	sc_lock_mutex_unlock(&pm);
	cr_assert_geq(park_calls, 1);
	cr_assert_eq(park_marked, park_calls);
}

/* The spinner's longest wait between looks is a time (~1.2 us), not a
 * count of pauses, whatever a pause costs on this CPU: n pauses take
 * between 0.5 and 20 us (fastest of five timings; a preemption only
 * slows one down). */
Test(lock_park, backoff_cap_is_about_a_microsecond)
{
	unsigned n = lk_backoff_max();
	cr_assert(n >= 4 && n <= 4096, "backoff cap %u pauses", n);
	cr_assert_eq(lk_backoff_max(), n, "calibrated once");
	uint64_t best = UINT64_MAX;
	for (int r = 0; r < 5; r++) {
		uint64_t t0 = sc_now_ns();
		for (unsigned i = 0; i < n; i++)
			lk_cpu_relax();
		uint64_t d = sc_now_ns() - t0;
		if (d < best)
			best = d;
	}
	cr_assert(best >= 500 && best <= 20000,
	          "%u pauses took %lu ns", n, (unsigned long)best);
}

/* The supervisor is not told of the runtime's parking (its futex calls
 * are unnotified), so a supervisor-source slot says itself that it
 * sleeps, and that it runs again once the park returns; without the
 * second mark a woken waiter that takes the lock reads SC_SLEEP until
 * the next /proc sweep and every other waiter parks behind it. */
static void park_once_with_slot_at(int planted, int want_in, int want_after,
                                   uint32_t want_sysno_after)
{
	struct sc_slot *s = sc_thread_setup();
	cr_assert_not_null(s);
	__atomic_store_n(&s->ss_pub.sc_state, (unsigned short)planted,
	                 __ATOMIC_RELAXED);
	__atomic_store_n(&s->ss_sysno, 7u, __ATOMIC_RELAXED);
	uint32_t word = 1;
	cr_assert_eq(lk_park(&word, 2, NULL, true), -EAGAIN);
	cr_assert_eq(park_state_seen, want_in, "state in the park %d",
	             park_state_seen);
	cr_assert_eq(__atomic_load_n(&s->ss_pub.sc_state, __ATOMIC_RELAXED),
	             want_after);
	cr_assert_eq(__atomic_load_n(&s->ss_sysno, __ATOMIC_RELAXED),
	             want_sysno_after);
	if (want_after == SC_ONPROC)
		cr_assert_gt(__atomic_load_n(&s->ss_stamp_ns, __ATOMIC_RELAXED),
		             park_stamp_seen,
		             "stamped, so an older sweep skips its reading");
}

Test(lock_park, supervisor_slot_marks_its_own_park)
{
	sc_set_wanted_source(SC_WANT_SUPERVISOR);
	sc_set_supervised(true);
	park_once_with_slot_at(SC_RUN, SC_SLEEP, SC_ONPROC, ~0u);
	cr_assert_eq(park_sysno_seen, (uint32_t)SYS_futex);
}

Test(lock_park, other_sources_are_left_alone)
{
	sc_set_wanted_source(SC_WANT_SUPERVISOR);
	sc_set_supervised(false);             /* no supervisor: source none */
	park_once_with_slot_at(SC_RUN, SC_RUN, SC_RUN, 7u);
}
