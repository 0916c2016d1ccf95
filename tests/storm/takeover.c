/*
 * takeover.c - measures the backstop's takeover (not a test): T threads
 * make notified zero clock_nanosleep calls in a loop under `schedctl run`;
 * after WARM ms the supervisor is SIGKILLed.  Prints, in ms: the time
 * from the kill to the supervisor's exit (its pidfd), the longest pause
 * between two answered calls in the 500 ms after the kill (the takeover
 * as the program sees it: the last answer of the supervisor to the first
 * of the backstop), the longest pause in the WARM ms before the kill
 * (the same machine's scheduling noise), and the answered calls per
 * second before the kill and from 0.5 to 1.5 s after it.
 * Usage: takeover [THREADS [WARM_MS [nokill]]]: nokill measures the same
 * windows with the supervisor left alive.
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "tracer.h"

#define NSTAMP 400000
static long stamp[NSTAMP];
static atomic_long nstamp, calls, t_kill, gap_before;
static atomic_bool stop;

static long now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000L + t.tv_nsec / 1000;
}

static void *caller(void *arg)
{
	(void)arg;
	long prev = now_us();
	while (!atomic_load(&stop)) {
		struct timespec zero = { 0, 0 };
		syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &zero, NULL);
		long t = now_us();
		atomic_fetch_add(&calls, 1);
		if (!atomic_load(&t_kill)) {
			long g = t - prev, m = atomic_load(&gap_before);
			while (g > m && !atomic_compare_exchange_weak(&gap_before, &m, g))
				;
		} else {
			long i = atomic_fetch_add(&nstamp, 1);
			if (i < NSTAMP)
				stamp[i] = t;
		}
		prev = t;
	}
	return NULL;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, ms % 1000 * 1000000 };
	while (nanosleep(&ts, &ts) < 0)
		;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int nt = argc > 1 ? atoi(argv[1]) : 2;
	long warm = argc > 2 ? atol(argv[2]) : 500;
	pthread_t th[16];
	if (nt < 1 || nt > 16)
		nt = 2;
	for (int i = 0; i < nt; i++)
		pthread_create(&th[i], NULL, caller, NULL);
	long tw = now_us();
	sleep_ms(warm);
	long sup = tracer_pid();
	if (sup <= 0) {
		fprintf(stderr, "takeover: not supervised\n");
		return 2;
	}
	int pfd = (int)syscall(SYS_pidfd_open, sup, 0);
	long c0 = atomic_load(&calls), t0 = now_us();
	atomic_store(&t_kill, t0);
	if (argc <= 3)
		kill((pid_t)sup, SIGKILL);
	struct pollfd p = { pfd, POLLIN, 0 };
	poll(&p, 1, argc > 3 ? 0 : 10000);
	long t_exit = now_us();
	sleep_ms(500);
	long c1 = atomic_load(&calls), t1 = now_us();
	sleep_ms(1000);
	long c2 = atomic_load(&calls), t2 = now_us();
	atomic_store(&stop, true);
	for (int i = 0; i < nt; i++)
		pthread_join(th[i], NULL);
	long n = atomic_load(&nstamp);
	if (n > NSTAMP)
		n = NSTAMP;
	qsort(stamp, (size_t)n, sizeof stamp[0], cmp_long);
	long gap = 0, prev = t0;
	for (long i = 0; i < n && stamp[i] - t0 < 500000; i++) {
		if (stamp[i] - prev > gap)
			gap = stamp[i] - prev;
		prev = stamp[i];
	}
	printf("takeover: exit %.1f pause_after %.1f pause_before %.1f "
	       "rate_before %.0f rate_after %.0f\n", (t_exit - t0) / 1e3,
	       gap / 1e3, atomic_load(&gap_before) / 1e3,
	       c0 * 1e6 / (t0 - tw), (c2 - c1) * 1e6 / (t2 - t1));
	return 0;
}
