/* Helpers shared by the prof tests. */
#ifndef TESTS_PROF_UTIL_H
#define TESTS_PROF_UTIL_H

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prof/render.h"

/* Start profiling in this test's process (Criterion forks one per
 * test).  max_locks 0: the default cap. */
static inline void start_profiler(const char *out, const char *json,
                                  const char *trace, unsigned max_locks)
{
	struct prof_config c;
	memset(&c, 0, sizeof c);
	c.pc_text = out != NULL;
	c.pc_out = out;
	c.pc_json = json;
	c.pc_trace = trace;
	c.pc_top = 10;
	c.pc_max_locks = max_locks ? max_locks : 1024;
	c.pc_max_sites = 1024;
	c.pc_max_stacks = 1024;
	c.pc_trace_events = 1u << 16;
	c.pc_trace_interval_us = 500;
	c.pc_policy = "owner";
	cr_assert_eq(prof_init(&c), 0);
}

static inline char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	size_t cap = 1 << 16, n = 0;
	char *b = malloc(cap + 1);
	size_t r;
	while (b && (r = fread(b + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			char *nb = realloc(b, 2 * cap + 1);
			if (!nb) {
				free(b);
				b = NULL;
				break;
			}
			b = nb;
			cap *= 2;
		}
	}
	fclose(f);
	if (b)
		b[n] = 0;
	if (len)
		*len = n;
	return b;
}

static inline const struct prof_slock *find_lock(const struct prof_snap *s,
                                                 const void *addr)
{
	for (size_t i = 0; i < s->nlocks; i++)
		if (s->locks[i].l_addr == (uint64_t)(uintptr_t)addr)
			return &s->locks[i];
	return NULL;
}

static inline const struct prof_ssite *find_site(const struct prof_slock *l,
                                                 const char *func)
{
	for (size_t i = 0; i < l->l_nsites; i++)
		if (l->l_sites[i].s_where.f_func &&
		    !strcmp(l->l_sites[i].s_where.f_func, func))
			return &l->l_sites[i];
	return NULL;
}

static inline bool perf_allowed(void)
{
	FILE *f = fopen("/proc/sys/kernel/perf_event_paranoid", "re");
	int v = 3;
	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = 3;
		fclose(f);
	}
	return v <= 2 && !getenv("SCHEDCTL_STATE_SOURCE");
}

#endif
