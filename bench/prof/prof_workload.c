/*
 * prof_workload - an unmodified contended-lock program (plain pthreads,
 * nothing from schedctl) for measuring `schedctl run --profile` against
 * `schedctl run` without it.
 *
 * usage: prof_workload [THREADS [MS [CS_NS [LOCKS]]]]
 *   THREADS threads (default 4) loop for MS milliseconds (default 500):
 *   lock one of LOCKS mutexes (default 1, picked round-robin), spin about
 *   CS_NS ns (default 100) in the critical section, bump a shared
 *   counter, unlock.  Prints "ops N mops M" and checks the counters (exit
 *   1 on a lost update).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MAXLOCKS 64

static pthread_mutex_t locks[MAXLOCKS];
static uint64_t counters[MAXLOCKS];
static int nlocks = 1, stop;
static long cs_ns = 100;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void spin_ns(long ns)
{
	uint64_t end = now_ns() + (uint64_t)ns;
	while (now_ns() < end)
		;
}

static void *worker(void *arg)
{
	uint64_t *ops = arg, n = 0;
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		int k = (int)(n % (uint64_t)nlocks);
		pthread_mutex_lock(&locks[k]);
		if (cs_ns > 0)
			spin_ns(cs_ns);
		counters[k]++;
		pthread_mutex_unlock(&locks[k]);
		n++;
	}
	*ops = n;
	return NULL;
}

int main(int argc, char **argv)
{
	int nthreads = argc > 1 ? atoi(argv[1]) : 4;
	long ms = argc > 2 ? atol(argv[2]) : 500;
	cs_ns = argc > 3 ? atol(argv[3]) : 100;
	nlocks = argc > 4 ? atoi(argv[4]) : 1;
	if (nthreads < 1 || nthreads > 256 || ms < 1 || cs_ns < 0 || nlocks < 1 ||
	    nlocks > MAXLOCKS) {
		fprintf(stderr, "usage: prof_workload [THREADS [MS [CS_NS [LOCKS]]]]\n");
		return 2;
	}
	for (int i = 0; i < nlocks; i++)
		pthread_mutex_init(&locks[i], NULL);
	pthread_t t[256];
	uint64_t ops[256];
	uint64_t t0 = now_ns();
	for (int i = 0; i < nthreads; i++)
		pthread_create(&t[i], NULL, worker, &ops[i]);
	/* A signal (say a live profile dump) must not cut the run short. */
	struct timespec d = { ms / 1000, (ms % 1000) * 1000000 };
	while (nanosleep(&d, &d) != 0)
		;
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	uint64_t total = 0, sum = 0;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(t[i], NULL);
		total += ops[i];
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	for (int i = 0; i < nlocks; i++)
		sum += counters[i];
	printf("ops %llu mops %.3f\n", (unsigned long long)total,
	       (double)total / secs / 1e6);
	return sum == total ? 0 : 1;
}
