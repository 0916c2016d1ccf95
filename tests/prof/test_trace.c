/* The Chrome Trace Event / Perfetto timeline: written from the known
 * pattern, parsed back and checked (every thread, its run states, the
 * contended waits and holds, slices that nest on every track). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pattern.h"
#include "prof/json.h"
#include "util.h"

#define TRACK_LOCKS 10000000

struct slice { double ts, end; };

static const struct jv *events_of(const struct jv *root)
{
	const struct jv *ev = prof_jv_get(root, "traceEvents");
	cr_assert(ev && ev->t == JV_ARR, "traceEvents array");
	return ev;
}

static const char *str(const struct jv *o, const char *k)
{
	const struct jv *v = prof_jv_get(o, k);
	return v && v->t == JV_STR ? v->s : "";
}

static double num(const struct jv *o, const char *k)
{
	const struct jv *v = prof_jv_get(o, k);
	cr_assert(v && v->t == JV_NUM, "number %s", k);
	return v->d;
}

static int count_x(const struct jv *ev, long tid, const char *prefix)
{
	int n = 0;
	for (size_t i = 0; i < ev->n; i++) {
		const struct jv *e = &ev->v[i];
		if (strcmp(str(e, "ph"), "X") || (long)num(e, "tid") != tid)
			continue;
		if (!strncmp(str(e, "name"), prefix, strlen(prefix)))
			n++;
	}
	return n;
}

static bool named(const struct jv *ev, long tid)
{
	for (size_t i = 0; i < ev->n; i++) {
		const struct jv *e = &ev->v[i];
		if (!strcmp(str(e, "ph"), "M") && !strcmp(str(e, "name"), "thread_name") &&
		    (long)num(e, "tid") == tid)
			return true;
	}
	return false;
}

/* Slices on one track, in file order, must nest (Perfetto's rule). */
static void check_nesting(const struct jv *ev, long tid)
{
	struct slice st[64];
	int depth = 0;
	for (size_t i = 0; i < ev->n; i++) {
		const struct jv *e = &ev->v[i];
		if (strcmp(str(e, "ph"), "X") || (long)num(e, "tid") != tid)
			continue;
		double ts = num(e, "ts"), end = ts + num(e, "dur");
		cr_assert_geq(num(e, "dur"), 0);
		while (depth && st[depth - 1].end <= ts + 1e-9)
			depth--;
		if (depth) {
			cr_assert_geq(ts + 1e-6, st[depth - 1].ts, "sorted by start");
			cr_assert_leq(end, st[depth - 1].end + 1e-6, "nested on tid %ld", tid);
		}
		cr_assert_lt(depth, 64);
		st[depth++] = (struct slice){ ts, end };
	}
}

Test(prof_trace, every_thread_states_waits_holds, .timeout = 60)
{
	char path[] = "/tmp/prof_trace_XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
	(void)schedctl_init();
	start_profiler(NULL, NULL, path, 0);
	pat_linger_us = 5000;      /* ten sampling intervals */
	pattern_run();
	usleep(3000);
	cr_assert_eq(prof_dump(true), 0);
	size_t len;
	char *t = slurp(path, &len);
	unlink(path);
	cr_assert_not_null(t);
	struct jv root;
	char err[200];
	cr_assert_eq(prof_jv_parse(t, len, &root, err, sizeof err), 0, "%s", err);
	const struct jv *ev = events_of(&root);
	const struct jv *od = prof_jv_get(&root, "otherData");
	cr_assert(od && num(od, "dropped_events") == 0);
	for (size_t i = 0; i < ev->n; i++) {
		const struct jv *e = &ev->v[i];
		cr_assert(prof_jv_get(e, "ph") && prof_jv_get(e, "pid") &&
		          prof_jv_get(e, "tid"), "event %zu has ph, pid, tid", i);
		cr_assert_eq((long)num(e, "pid"), (long)getpid());
	}
	int nc = C_SPIN + C_SPUNPARK + C_PARK;
	long main_tid = gettid();
	cr_assert(named(ev, main_tid), "main thread named");
	cr_assert_gt(count_x(ev, main_tid, ""), 0, "main thread has run states");
	for (int i = 0; i < 3; i++) {
		cr_assert(named(ev, pat_tids[i]), "thread %d named", i);
		int states = count_x(ev, pat_tids[i], "ONPROC") +
		             count_x(ev, pat_tids[i], "RUN") +
		             count_x(ev, pat_tids[i], "SLEEP") +
		             count_x(ev, pat_tids[i], "unknown");
		cr_assert_gt(states, 0, "thread %d has run states", i);
		check_nesting(ev, pat_tids[i]);
		check_nesting(ev, pat_tids[i] + TRACK_LOCKS);
	}
	/* Thread 3: every contended acquisition is a wait then a hold. */
	long l3 = pat_tids[2] + TRACK_LOCKS;
	cr_assert_eq(count_x(ev, l3, "wait 0x"), nc);
	cr_assert_eq(count_x(ev, l3, "hold 0x") +
	             count_x(ev, pat_tids[2] + 2 * TRACK_LOCKS, "hold 0x"), nc);
	/* Uncontended acquisitions are not traced. */
	cr_assert_eq(count_x(ev, pat_tids[1] + TRACK_LOCKS, ""), 0);
	/* Thread 1 sleeps in a barrier while holding A: SLEEP seen. */
	if (perf_allowed())
		cr_assert_gt(count_x(ev, pat_tids[0], "SLEEP"), 0);
	prof_jv_free(&root);
	free(t);
}
