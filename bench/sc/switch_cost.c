/*
 * switch_cost - what a context-switch record source costs a switch.
 *
 * Two threads pinned to one CPU hand a futex word back and forth, so
 * every hand-off is two context switches.  Variants, interleaved, each
 * run RUNS times (median and range of the per-round-trip time):
 *
 *   none        no perf event
 *   per-thread  each thread has its own context_switch event, as
 *               src/sc/perf.c opens it (what schedctl uses)
 *   per-cpu     one CPU-wide context_switch event per CPU (needs
 *               perf_event_paranoid <= 0 or CAP_PERFMON; skipped
 *               otherwise): a per-task event is switched in and out
 *               with its task, a CPU-wide one only writes records
 *
 * The per-cpu row is the price of a state source that would read the
 * owner's CPU ring instead of the owner's own (issue 4's note).
 *
 *   switch_cost [ROUNDS [RUNS]]     default 20000 round trips, 9 runs
 */
#include <linux/futex.h>
#include <linux/perf_event.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sc/sc.h"

enum { V_NONE, V_THREAD, V_CPU, V_N };
static const char *const vname[V_N] = { "none", "per-thread", "per-cpu" };

static _Atomic int turn;
static int rounds = 20000;

/* A context_switch dummy event on (pid, cpu), ring mapped read-only
 * (overwrite mode), the event src/sc/perf.c opens.  => fd, or -1. */
static int sw_open(pid_t pid, int cpu, void **ring)
{
	struct perf_event_attr a;
	sc_perf_switch_attr(&a);
	int fd = (int)syscall(SYS_perf_event_open, &a, pid, cpu, -1,
	                      PERF_FLAG_FD_CLOEXEC);
	if (fd < 0)
		return -1;
	*ring = mmap(NULL, 9 * 4096, PROT_READ, MAP_SHARED, fd, 0);
	if (*ring == MAP_FAILED) {
		close(fd);
		return -1;
	}
	return fd;
}

static void sw_close(int fd, void *ring)
{
	munmap(ring, 9 * 4096);
	close(fd);
}

static void wait_while(int v)
{
	while (atomic_load_explicit(&turn, memory_order_acquire) == v)
		syscall(SYS_futex, &turn, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
}

static void hand(int v)
{
	atomic_store_explicit(&turn, v, memory_order_release);
	syscall(SYS_futex, &turn, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *peer(void *arg)
{
	int v = *(int *)arg, fd = -1;
	void *ring = NULL;
	if (v == V_THREAD && (fd = sw_open(0, -1, &ring)) < 0)
		perror("switch_cost: perf_event_open (peer)");
	for (int i = 0; i < rounds; i++) {
		wait_while(0);
		hand(0);
	}
	if (fd >= 0)
		sw_close(fd, ring);
	return NULL;
}

/* One run of variant v.  => ns per round trip, or -1. */
static double run(int v)
{
	int fd = -1, cfd[CPU_SETSIZE];
	void *ring = NULL, *cring[CPU_SETSIZE];
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN), nc = 0;
	double ns = -1;
	if (v == V_CPU)
		for (; nc < ncpu && nc < CPU_SETSIZE; nc++)
			if ((cfd[nc] = sw_open(-1, nc, &cring[nc])) < 0)
				goto out;
	if (v == V_THREAD && (fd = sw_open(0, -1, &ring)) < 0)
		goto out;
	atomic_store(&turn, 0);
	pthread_t t;
	if (pthread_create(&t, NULL, peer, &v) != 0)
		goto out;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < rounds; i++) {
		hand(1);
		wait_while(1);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	pthread_join(t, NULL);
	ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) /
	     rounds;
out:
	if (fd >= 0)
		sw_close(fd, ring);
	while (nc-- > 0)
		if (cfd[nc] >= 0)
			sw_close(cfd[nc], cring[nc]);
	return ns;
}

static int dbl_order(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	int runs = 9;
	if (argc > 1)
		rounds = atoi(argv[1]);
	if (argc > 2)
		runs = atoi(argv[2]);
	if (rounds <= 0 || runs <= 0 || runs > 1000) {
		fprintf(stderr, "usage: switch_cost [ROUNDS [RUNS]]\n");
		return 2;
	}
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu() < 0 ? 0 : sched_getcpu(), &one);
	if (sched_setaffinity(0, sizeof one, &one) != 0) {  /* threads inherit */
		perror("switch_cost: sched_setaffinity");
		return 1;
	}
	double *t[V_N];
	int ok[V_N] = { 1, 1, 1 };
	for (int v = 0; v < V_N; v++)
		if (!(t[v] = calloc((size_t)runs, sizeof *t[v])))
			return 1;
	for (int r = 0; r < runs; r++)
		for (int k = 0; k < V_N; k++) {
			int v = (r + k) % V_N;         /* rotate the order */
			if (ok[v] && (t[v][r] = run(v)) < 0)
				ok[v] = 0;
		}
	printf("futex round trip between two threads on one CPU, %d rounds, "
	       "%d runs: median [min..max] us\n", rounds, runs);
	for (int v = 0; v < V_N; v++) {
		if (!ok[v]) {
			printf("%-11s not measured (perf_event_open refused)\n", vname[v]);
			continue;
		}
		qsort(t[v], (size_t)runs, sizeof *t[v], dbl_order);
		printf("%-11s %6.2f [%.2f..%.2f]\n", vname[v], t[v][runs / 2] / 1e3,
		       t[v][0] / 1e3, t[v][runs - 1] / 1e3);
	}
	return 0;
}
