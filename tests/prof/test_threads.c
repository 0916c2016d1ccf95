/* Per-thread records are reused: many more short-lived threads than
 * records, each taking a profiled lock in its body and in pthread key
 * destructors that run after the profiler's own (one in the first
 * destructor round; one that re-arms its key until the last round, as
 * libunwind's trace cache does, and only then locks).  A record taken
 * there and never given back would spend the pool. */
#include <criterion/criterion.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "lock/lock.h"
#include "prof/render.h"
#include "util.h"

#define CAP      32          /* records */
#define BATCH    4           /* threads alive at once */
#define NTHREADS 2000
#define BODY_ACQ 10

static pthread_mutex_t churn_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t early_key, late_key;
static long churn_n;          /* under churn_m */

static void take(void)
{
	cr_assert_eq(sc_lock_mutex_lock(&churn_m), 0);
	churn_n++;
	sc_lock_mutex_unlock(&churn_m);
}

static void early_dtor(void *arg)
{
	(void)arg;
	take();
}

static void late_dtor(void *arg)
{
	uintptr_t round = (uintptr_t)arg;
	if (round < PTHREAD_DESTRUCTOR_ITERATIONS) {
		(void)pthread_setspecific(late_key, (void *)(round + 1));
		return;
	}
	take();
}

static int churn_body;        /* acquisitions in a thread's body */
static bool churn_early;      /* and one in the first destructor round */

static void *churn_thread(void *arg)
{
	for (int i = 0; i < churn_body; i++)
		take();
	if (churn_early)
		(void)pthread_setspecific(early_key, (void *)1);
	(void)pthread_setspecific(late_key, (void *)1);
	return arg;
}

/* NTHREADS threads over CAP records, each taking churn_m body times in
 * its body, once in the first destructor round if early, and once in
 * the last. */
static void churn_case(int body, bool early)
{
	churn_body = body;
	churn_early = early;
	int per = body + (early ? 1 : 0) + 1;
	struct prof_config c;
	memset(&c, 0, sizeof c);
	c.pc_max_locks = c.pc_max_sites = c.pc_max_stacks = 1024;
	c.pc_max_threads = CAP;
	c.pc_policy = "owner";
	cr_assert_eq(prof_init(&c), 0);
	/* Made after the profiler's key, so their destructors run after
	 * its destructor in each round. */
	cr_assert_eq(pthread_key_create(&early_key, early_dtor), 0);
	cr_assert_eq(pthread_key_create(&late_key, late_dtor), 0);
	for (int i = 0; i < NTHREADS; i += BATCH) {
		pthread_t t[BATCH];
		for (int k = 0; k < BATCH; k++)
			cr_assert_eq(pthread_create(&t[k], NULL, churn_thread, NULL),
			             0);
		for (int k = 0; k < BATCH; k++)
			pthread_join(t[k], NULL);
	}
	/* Under the lock: the late destructors' writes are ordered by it (a
	 * join does not cover them under ThreadSanitizer, whose own exit
	 * hook runs before them in the last destructor round). */
	sc_lock_mutex_lock(&churn_m);
	long n = churn_n;
	sc_lock_mutex_unlock(&churn_m);
	cr_assert_eq(n, (long)NTHREADS * per);
	struct prof_snap *s = prof_snap_take(true);
	cr_assert_not_null(s);
	cr_assert_eq(s->thread_overflow, 0, "%llu acquisitions found no record "
	             "(%d threads, %d records)",
	             (unsigned long long)s->thread_overflow, NTHREADS, CAP);
	const struct prof_slock *l = find_lock(s, &churn_m);
	cr_assert_not_null(l);
	/* +1: the read of churn_n above. */
	cr_assert_eq(l->l_c.c_acq, (uint64_t)NTHREADS * (uint64_t)per + 1,
	             "every acquisition counted: %llu",
	             (unsigned long long)l->l_c.c_acq);
	/* Every acquisition in a body (or, without one, the last round's)
	 * went through a thread record (holds are timed there): the last
	 * threads were profiled as the first. */
	cr_assert_geq(l->l_c.c_hold_n, (uint64_t)NTHREADS * (uint64_t)body +
	              (body ? 0 : NTHREADS),
	              "timed holds %llu", (unsigned long long)l->l_c.c_hold_n);
	prof_snap_free(s);
}

/* Each thread locks in its body, so it has a record before the
 * profiler's destructor runs; its later locks must not take another. */
Test(prof_threads, records_reused_after_exit_destructors, .timeout = 60)
{
	churn_case(BODY_ACQ, true);
}

/* A thread's only lock comes in the last destructor round: the record
 * it takes there can be given back by no destructor (none runs after
 * that round), and is taken back once the thread is gone.  Its hold is
 * timed through that record. */
Test(prof_threads, records_taken_in_the_last_round_come_back, .timeout = 60)
{
	churn_case(0, false);
}
