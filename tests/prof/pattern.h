/*
 * pattern.h - a known lock pattern played through the profiler's hooks
 * directly (the way the lock calls them), shared by the prof tests.
 *
 * Locks A and B are plain objects: the hooks never touch a lock.
 *   thread 1: A at site_a1 x N_A1 (short holds), A at site_a2 x N_A2
 *   thread 2: B at site_b1 x N_B1, each held ~HOLD_B_US
 *   thread 3: while thread 1 holds A at site_a2 (held on purpose),
 *             C_SPIN contended acquisitions won while spinning,
 *             C_SPUNPARK spun then parked (spin budget), C_PARK parked
 *             (owner off CPU), all at site_a1; owner = thread 1
 */
#ifndef TESTS_PROF_PATTERN_H
#define TESTS_PROF_PATTERN_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <schedctl.h>

#include "prof/prof.h"

#define N_A1 1000
#define N_A2 300
#define N_B1 50
#define HOLD_B_US 200
#define C_SPIN 10
#define C_SPUNPARK 5
#define C_PARK 3
#define SPIN_NS 1000
#define PARK_NS 5000

static char lock_a[40], lock_b[40];
static int32_t pat_tids[3];
static unsigned pat_linger_us;     /* each thread lives at least this long */
static pthread_barrier_t pat_bar;
static volatile int32_t pat_owner_tid;
static sc_shared_t *volatile pat_owner_sc;
static volatile bool pat_owner_seen_sleeping;

static void __attribute__((noinline)) fake_lock(void *l)
{
	prof_acquired(l, __builtin_return_address(0));
}

static void __attribute__((noinline)) fake_unlock(void *l)
{
	prof_released(l);
}

/* The kind comes from a counter, so the caller's loop has one call. */
static int pat_next_kind;

static void __attribute__((noinline)) fake_contended(void *l)
{
	int i = pat_next_kind++;
	int kind = i < C_SPIN ? 0 : i < C_SPIN + C_SPUNPARK ? 1 : 2;
	struct prof_acq a = { 0 };
	prof_acq_begin(&a, l, 0, pat_owner_tid);
	if (kind == 0) {
		prof_acq_spun(&a, SPIN_NS, true, PROF_SPINS);
	} else if (kind == 1) {
		prof_acq_spun(&a, SPIN_NS, false, PROF_SPINS);
		prof_acq_parked(&a, PARK_NS, PROF_PARK_SPIN_BUDGET);
	} else {
		prof_acq_parked(&a, PARK_NS, PROF_PARK_OWNER_OFFCPU);
	}
	prof_contended(l, &a, __builtin_return_address(0));
}

static void busy_us(unsigned us)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do
		clock_gettime(CLOCK_MONOTONIC, &t);
	while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) <
	       (long)us * 1000);
}

void __attribute__((noinline)) site_a1(void);
void __attribute__((noinline)) site_a2_hold(void);
void __attribute__((noinline)) site_b1(void);
void __attribute__((noinline)) site_a1_contended(void);

void __attribute__((noinline)) site_a1(void)
{
	for (int i = 0; i < N_A1; i++) {
		fake_lock(lock_a);
		fake_unlock(lock_a);
	}
}

void __attribute__((noinline)) site_a2_hold(void)
{
	for (int i = 0; i < N_A2; i++) {
		fake_lock(lock_a);
		if (i == N_A2 - 1) {       /* held while thread 3 contends */
			pat_owner_tid = (int32_t)gettid();
			pat_owner_sc = schedctl_self();
			pthread_barrier_wait(&pat_bar);
			pthread_barrier_wait(&pat_bar);
		}
		fake_unlock(lock_a);
	}
}

void __attribute__((noinline)) site_b1(void)
{
	for (int i = 0; i < N_B1; i++) {
		fake_lock(lock_b);
		busy_us(HOLD_B_US);
		fake_unlock(lock_b);
	}
}

void __attribute__((noinline)) site_a1_contended(void)
{
	pthread_barrier_wait(&pat_bar);
	/* Contend only once the holder is seen asleep in the barrier (when
	 * its state is observable at all), so the owner state is known. */
	for (int i = 0; i < 2000 && pat_owner_sc; i++) {
		if (schedctl_state(pat_owner_sc) == SC_SLEEP) {
			pat_owner_seen_sleeping = true;
			break;
		}
		usleep(1000);
	}
	for (int i = 0; i < C_SPIN + C_SPUNPARK + C_PARK; i++) {
		fake_contended(lock_a);
		fake_unlock(lock_a);
	}
	pthread_barrier_wait(&pat_bar);
}

static void pat_enter(int i)
{
	(void)schedctl_init();     /* a slot: its state can be read */
	pat_tids[i] = (int32_t)gettid();
	if (pat_linger_us)
		usleep(pat_linger_us);
}

static void *pat_t1(void *arg)
{
	(void)arg;
	pat_enter(0);
	site_a1();
	site_a2_hold();
	return NULL;
}

static void *pat_t2(void *arg)
{
	(void)arg;
	pat_enter(1);
	site_b1();
	return NULL;
}

static void *pat_t3(void *arg)
{
	(void)arg;
	pat_enter(2);
	site_a1_contended();
	return NULL;
}

/* Play the whole pattern; every thread joined on return. */
static inline void pattern_run(void)
{
	pthread_t t[3];
	pthread_barrier_init(&pat_bar, NULL, 2);
	pthread_create(&t[0], NULL, pat_t1, NULL);
	pthread_create(&t[1], NULL, pat_t2, NULL);
	pthread_create(&t[2], NULL, pat_t3, NULL);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&pat_bar);
}

#endif
