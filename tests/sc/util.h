/* Helpers shared by the sc test suites. */
#ifndef TESTS_SC_UTIL_H
#define TESTS_SC_UTIL_H

#include <pthread.h>
#include <stdio.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

static inline void tu_pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	(void)sched_setaffinity(0, sizeof set, &set);
}

static inline long tu_ncpus(void)
{
	return sysconf(_SC_NPROCESSORS_ONLN);
}

static inline void tu_sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* Poll until *flag is non-zero (bounded: about 10 s). */
static inline int tu_wait_flag(atomic_int *flag)
{
	for (int i = 0; i < 10000; i++) {
		if (atomic_load(flag))
			return 1;
		tu_sleep_us(1000);
	}
	return 0;
}

/* perf_event_paranoid, 3 if it cannot be read (assume the strict case). */
static inline int tu_perf_paranoid(void)
{
	FILE *f = fopen("/proc/sys/kernel/perf_event_paranoid", "r");
	int v = 3;
	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = 3;
		fclose(f);
	}
	return v;
}

#endif
