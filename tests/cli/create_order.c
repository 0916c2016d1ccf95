/*
 * create_order.c - does a new thread run before its creator is back from
 * pthread_create?
 *
 * Natively, clone() returns to the creator straight away, so a new thread
 * that makes itself SCHED_FIFO on the creator's CPU has not run its loop
 * yet when pthread_create returns.  Under `schedctl run` the creator is
 * held at a ptrace clone event until the supervisor continues it; the
 * preload's start gate keeps the new thread from starting its routine
 * until then (preload/preload.c).  Without the gate the thread takes the
 * (single) CPU and spins until its time limit before the creator returns.
 *
 * Exit 0: in at most 2 of ROUNDS creations had the thread looped before
 * pthread_create returned; 1 otherwise; 77 without SCHED_FIFO (EPERM).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define ROUNDS 20
#define LIMIT_NS 100000000L     /* a spinning thread gives up after 100 ms */

static long co_loops;           /* relaxed: read by the creator after return */
static int co_back;             /* release/acquire: the creator is back */
static int co_fifo_err;

static long co_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void *co_thread(void *arg)
{
	(void)arg;
	struct sched_param sp = { .sched_priority = 1 };
	int e = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
	if (e) {
		__atomic_store_n(&co_fifo_err, e, __ATOMIC_RELAXED);
		return NULL;
	}
	long t0 = co_ns();
	while (!__atomic_load_n(&co_back, __ATOMIC_ACQUIRE) && co_ns() - t0 < LIMIT_NS) {
		__atomic_add_fetch(&co_loops, 1, __ATOMIC_RELAXED);
		sched_yield();
	}
	return NULL;
}

int main(void)
{
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	if (sched_setaffinity(0, sizeof one, &one) != 0) {
		perror("create_order: sched_setaffinity");
		return 1;
	}
	int early = 0;
	for (int i = 0; i < ROUNDS; i++) {
		pthread_t t;
		__atomic_store_n(&co_loops, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&co_back, 0, __ATOMIC_RELAXED);
		int e = pthread_create(&t, NULL, co_thread, NULL);
		if (e) {
			fprintf(stderr, "create_order: pthread_create: %s\n", strerror(e));
			return 1;
		}
		long loops = __atomic_load_n(&co_loops, __ATOMIC_RELAXED);
		__atomic_store_n(&co_back, 1, __ATOMIC_RELEASE);
		pthread_join(t, NULL);
		if (co_fifo_err == EPERM) {
			printf("create_order: SCHED_FIFO not permitted; skipped\n");
			return 77;
		}
		if (loops > 0)
			early++;
	}
	printf("create_order: the new thread ran first in %d of %d creations\n",
	       early, ROUNDS);
	return early > 2;
}
