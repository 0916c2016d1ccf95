/*
 * Lock-holder preemption is counted: a holder sharing its CPU with a
 * hog is preempted while it holds the lock; a waiter on the other CPU
 * sees it runnable but off the CPU, parks instead of spinning, and
 * counts one preemption in the holder's slot (ss_lhp).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include "lock/lock.h"
#include "util.h"

static pthread_mutex_t lm = PTHREAD_MUTEX_INITIALIZER;
static int phase;                 /* 1 holder has it, 2 holder done */
static struct sc_slot *holder_slot;
static bool holder_had_ring;      /* written before holder_slot (release) */

static void pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	cr_assert_eq(pthread_setaffinity_np(pthread_self(), sizeof set, &set), 0);
}

static void *hog(void *arg)
{
	pin(0);
	while (__atomic_load_n(&phase, __ATOMIC_ACQUIRE) != 2)
		;
	return arg;
}

static void *holder(void *arg)
{
	pin(0);
	struct sc_slot *s = sc_thread_setup();
	holder_had_ring = s && __atomic_load_n(&s->ss_source, __ATOMIC_RELAXED) ==
	                  SCHEDCTL_SOURCE_PERF;
	__atomic_store_n(&holder_slot, s, __ATOMIC_RELEASE);
	sc_lock_mutex_lock(&lm);
	__atomic_store_n(&phase, 1, __ATOMIC_RELEASE);
	int64_t t0 = lt_now_ms(CLOCK_MONOTONIC);
	while (lt_now_ms(CLOCK_MONOTONIC) - t0 < 400)
		;   /* hold it, busy, sharing CPU 0 with the hog */
	sc_lock_mutex_unlock(&lm);
	__atomic_store_n(&phase, 2, __ATOMIC_RELEASE);
	return arg;
}

Test(lock_lhp, waiter_counts_preempted_holder, .timeout = 30)
{
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		cr_skip_test("needs two CPUs");
	lk_set_policy(LK_OWNER);
	pin(1);
	struct sc_slot *me = sc_thread_setup();
	cr_assert_not_null(me);
	if (sc_slot_state(me, NULL) < 0 ||
	    __atomic_load_n(&me->ss_source, __ATOMIC_RELAXED) != SCHEDCTL_SOURCE_PERF)
		cr_skip_test("no kernel switch records here (perf_event_paranoid)");
	pthread_t th, tg;
	pthread_create(&th, NULL, holder, NULL);
	while (__atomic_load_n(&phase, __ATOMIC_ACQUIRE) != 1)
		lt_sleep_ms(1);
	pthread_create(&tg, NULL, hog, NULL);
	int tries = 0;
	while (__atomic_load_n(&phase, __ATOMIC_ACQUIRE) != 2) {
		struct timespec ts = lt_after_ms(CLOCK_MONOTONIC, 2);
		if (sc_lock_mutex_clocklock(&lm, CLOCK_MONOTONIC, &ts) == 0) {
			sc_lock_mutex_unlock(&lm);
			break;
		}
		tries++;
	}
	pthread_join(th, NULL);
	pthread_join(tg, NULL);
	struct sc_slot *hs = __atomic_load_n(&holder_slot, __ATOMIC_ACQUIRE);
	cr_assert_not_null(hs);
	if (!holder_had_ring)
		cr_skip_test("the holder got no kernel switch ring (perf mlock "
		             "budget spent by other tests?)");
	cr_assert_gt(tries, 10);
	/* The holder has exited; its slot is free but its count stays until
	 * the slot is taken again. */
	cr_assert_geq(__atomic_load_n(&hs->ss_lhp, __ATOMIC_RELAXED), 1,
	              "no lock-holder preemption counted in %d tries", tries);
}
