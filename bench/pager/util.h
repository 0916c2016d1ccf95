/* Timing helpers shared by the pager benchmarks. */
#ifndef BENCH_PAGER_UTIL_H
#define BENCH_PAGER_UTIL_H

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXROUNDS 31

static inline double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Median of v[0..n), n <= MAXROUNDS. */
static inline double median(const double *v, int n)
{
	double tmp[MAXROUNDS];
	memcpy(tmp, v, (size_t)n * sizeof *v);
	qsort(tmp, (size_t)n, sizeof *tmp, cmp_double);
	return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

#endif
