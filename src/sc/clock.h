/*
 * clock.h - CLOCK_MONOTONIC in nanoseconds, the one clock every part of
 * the runtime stamps and times with (slots' ss_stamp_ns, spin bounds,
 * the sampler, the pager's SIGBUS table, the profiler), so stamps from
 * the program and the supervisor compare.  vDSO, async-signal-safe, no
 * allocation: usable in the pager thread and lock slow paths.
 */
#ifndef SC_CLOCK_H
#define SC_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t sc_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif /* SC_CLOCK_H */
