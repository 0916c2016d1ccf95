/*
 * prof_bench - what the profiler's hooks cost on a contended lock loop.
 *
 * A small futex lock (spin a bounded while, then park) calls the hooks
 * exactly where src/prof/prof.h asks a lock to.  Variants, run side by
 * side and interleaved (rotating order), medians of R runs:
 *   none      the same lock built without any hook call
 *   off       hooks compiled in, profiling off (one branch each)
 *   on        profiling on: per-thread counters, hold times, contended
 *             path records, backtraces on contended acquisitions
 *   on+trace  as on, plus timeline events for contended waits and holds
 *
 * usage: prof_bench [--threads=N] [--ms=MS] [--runs=R] [--cs=ITERS]
 *        prof_bench --single [--runs=R]    ns per uncontended lock+unlock
 *        --hold-sample=N: time 1 in N uncontended holds (default 1)
 *        prof_bench --memory [--seconds=S]   RSS while locks and call
 *                   sites churn for S seconds (bounded by the caps)
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "prof/prof_int.h"
#include "prof/trace.h"

struct blk {
	uint32_t b_word;          /* 0 free, 1 held, 2 held with waiters */
	int32_t b_owner;          /* holder tid (relaxed) */
};

static struct blk bench_lock;
static uint64_t shared_ctr[8];
static int cs_iters = 20;
static volatile int stop;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void futex(uint32_t *w, int op, uint32_t v)
{
	syscall(SYS_futex, w, op | FUTEX_PRIVATE_FLAG, v, NULL, NULL, 0);
}

#define SPIN_LIMIT 300

static __thread int32_t my_tid;

static inline int32_t self_tid(void)
{
	if (__builtin_expect(!my_tid, 0))
		my_tid = (int32_t)gettid();
	return my_tid;
}

static inline __attribute__((always_inline)) void
blk_lock(struct blk *l, bool hooks, const void *pc)
{
	uint32_t z = 0;
	if (__atomic_compare_exchange_n(&l->b_word, &z, 1, false, __ATOMIC_ACQUIRE,
	                                __ATOMIC_RELAXED)) {
		if (hooks)
			prof_acquired(l, pc);
		__atomic_store_n(&l->b_owner, self_tid(), __ATOMIC_RELAXED);
		return;
	}
	struct prof_acq a = { 0 };
	if (hooks)
		prof_acq_begin(&a, l, 0, __atomic_load_n(&l->b_owner, __ATOMIC_RELAXED));
	uint64_t t0 = now_ns();
	for (int i = 0; i < SPIN_LIMIT; i++) {
		z = 0;
		if (__atomic_load_n(&l->b_word, __ATOMIC_RELAXED) == 0 &&
		    __atomic_compare_exchange_n(&l->b_word, &z, 1, false,
		                                __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
			if (hooks) {
				prof_acq_spun(&a, now_ns() - t0, true, PROF_SPINS);
				prof_contended(l, &a, pc);
			}
			__atomic_store_n(&l->b_owner, self_tid(), __ATOMIC_RELAXED);
			return;
		}
		__builtin_ia32_pause();
	}
	if (hooks)
		prof_acq_spun(&a, now_ns() - t0, false, PROF_SPINS);
	while (__atomic_exchange_n(&l->b_word, 2, __ATOMIC_ACQUIRE) != 0) {
		uint64_t p0 = hooks ? now_ns() : 0;
		futex(&l->b_word, FUTEX_WAIT, 2);
		if (hooks)
			prof_acq_parked(&a, now_ns() - p0, PROF_PARK_SPIN_BUDGET);
	}
	if (hooks)
		prof_contended(l, &a, pc);
	__atomic_store_n(&l->b_owner, self_tid(), __ATOMIC_RELAXED);
}

static inline __attribute__((always_inline)) void
blk_unlock(struct blk *l, bool hooks)
{
	if (hooks)
		prof_released(l);
	if (__atomic_exchange_n(&l->b_word, 0, __ATOMIC_RELEASE) == 2)
		futex(&l->b_word, FUTEX_WAKE, 1);
}

static void __attribute__((noinline)) loop_hooks(uint64_t *ops)
{
	uint64_t n = 0;
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		blk_lock(&bench_lock, true, __builtin_return_address(0));
		for (int i = 0; i < cs_iters; i++)
			shared_ctr[i & 7]++;
		blk_unlock(&bench_lock, true);
		n++;
	}
	*ops = n;
}

static void __attribute__((noinline)) loop_plain(uint64_t *ops)
{
	uint64_t n = 0;
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		blk_lock(&bench_lock, false, NULL);
		for (int i = 0; i < cs_iters; i++)
			shared_ctr[i & 7]++;
		blk_unlock(&bench_lock, false);
		n++;
	}
	*ops = n;
}

enum { V_NONE, V_OFF, V_ON, V_TRACE, NV };
static const char *const vname[NV] = { "none", "off", "on", "on+trace" };

struct worker { pthread_t w_thr; int w_variant; uint64_t w_ops; };

static void *worker_main(void *p)
{
	struct worker *w = p;
	if (w->w_variant == V_NONE)
		loop_plain(&w->w_ops);
	else
		loop_hooks(&w->w_ops);
	return NULL;
}

/* One timed run of a variant: Mops/s. */
static double run_once(int variant, int nthreads, int ms)
{
	__atomic_store_n(&prof_on_flag, variant >= V_ON, __ATOMIC_RELEASE);
	__atomic_store_n(&prof_g.g_trace, variant == V_TRACE, __ATOMIC_RELEASE);
	struct worker w[64];
	stop = 0;
	uint64_t t0 = now_ns();
	for (int i = 0; i < nthreads; i++) {
		w[i].w_variant = variant;
		pthread_create(&w[i].w_thr, NULL, worker_main, &w[i]);
	}
	usleep((useconds_t)ms * 1000);
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	uint64_t ops = 0;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(w[i].w_thr, NULL);
		ops += w[i].w_ops;
	}
	uint64_t dt = now_ns() - t0;
	__atomic_store_n(&prof_on_flag, false, __ATOMIC_RELEASE);
	return (double)ops / ((double)dt / 1e3);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	long v = -1;
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, "VmRSS:", 6))
			v = strtol(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return v;
}

/* Churn: a fresh lock address (and call site via the pc argument) per
 * acquisition, far past the caps. */
static int memory_mode(int seconds)
{
	__atomic_store_n(&prof_on_flag, true, __ATOMIC_RELEASE);
	char *arena = malloc(1 << 20);
	uint64_t n = 0, t0 = now_ns();
	printf("%8s %12s %10s\n", "seconds", "acquisitions", "rss_kib");
	for (int s = 1; s <= seconds; s++) {
		while (now_ns() - t0 < (uint64_t)s * 1000000000ull) {
			for (int k = 0; k < 1000; k++, n++) {
				void *l = arena + (n * 8) % (1 << 20);
				prof_acquired(l, (void *)(uintptr_t)(0x1000 + (n % 50000)));
				prof_released(l);
			}
		}
		printf("%8d %12llu %10ld\n", s, (unsigned long long)n, rss_kib());
		fflush(stdout);
	}
	free(arena);
	return 0;
}

/* One thread, no contention: ns per lock/unlock pair for each variant,
 * interleaved, medians. */
static int single_mode(int runs)
{
	enum { N = 2000000 };
	double r[NV][100];
	for (int k = 0; k < runs; k++)
		for (int j = 0; j < NV; j++) {
			int v = (j + k) % NV;
			__atomic_store_n(&prof_on_flag, v >= V_ON, __ATOMIC_RELEASE);
			__atomic_store_n(&prof_g.g_trace, v == V_TRACE, __ATOMIC_RELEASE);
			uint64_t t0 = now_ns();
			for (int i = 0; i < N; i++) {
				if (v == V_NONE) {
					blk_lock(&bench_lock, false, NULL);
					blk_unlock(&bench_lock, false);
				} else {
					blk_lock(&bench_lock, true, __builtin_return_address(0));
					blk_unlock(&bench_lock, true);
				}
			}
			r[v][k] = (double)(now_ns() - t0) / N;
		}
	__atomic_store_n(&prof_on_flag, false, __ATOMIC_RELEASE);
	printf("one thread, uncontended lock+unlock, %d runs, ns per pair "
	       "(median, min)\n", runs);
	for (int v = 0; v < NV; v++) {
		qsort(r[v], (size_t)runs, sizeof r[v][0], cmp_d);
		printf("  %-9s %7.1f %7.1f\n", vname[v], r[v][runs / 2], r[v][0]);
	}
	return 0;
}

static int arg_int(const char *a, const char *name, int *out)
{
	size_t n = strlen(name);
	if (strncmp(a, name, n))
		return 0;
	*out = atoi(a + n);
	return 1;
}

int main(int argc, char **argv)
{
	int nthreads = 4, ms = 300, runs = 7, memory = 0, seconds = 30, single = 0;
	int hold_sample = 1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--memory"))
			memory = 1;
		else if (!strcmp(argv[i], "--single"))
			single = 1;
		else if (!arg_int(argv[i], "--threads=", &nthreads) &&
		         !arg_int(argv[i], "--ms=", &ms) &&
		         !arg_int(argv[i], "--runs=", &runs) &&
		         !arg_int(argv[i], "--cs=", &cs_iters) &&
		         !arg_int(argv[i], "--seconds=", &seconds) &&
		         !arg_int(argv[i], "--hold-sample=", &hold_sample)) {
			fprintf(stderr, "prof_bench: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (nthreads < 1 || nthreads > 64 || runs < 1 || runs > 99)
		return 2;
	struct prof_config c = { .pc_max_locks = 16384, .pc_max_sites = 16384,
	                         .pc_max_stacks = 16384,
	                         .pc_hold_sample = (unsigned)hold_sample,
	                         .pc_trace_events = 1u << 20,
	                         .pc_trace_interval_us = 1000,
	                         .pc_trace = "/dev/null", .pc_policy = "owner" };
	if (prof_init(&c) != 0) {
		fprintf(stderr, "prof_bench: cannot start the profiler\n");
		return 1;
	}
	prof_shutdown();                 /* no agent thread: only the hooks */
	__atomic_store_n(&prof_on_flag, false, __ATOMIC_RELEASE);
	if (memory)
		return memory_mode(seconds);
	if (single)
		return single_mode(runs);
	double r[NV][100];
	for (int k = 0; k < runs; k++)
		for (int j = 0; j < NV; j++) {
			int v = (j + k) % NV;
			r[v][k] = run_once(v, nthreads, ms);
		}
	printf("threads %d, critical section %d increments, %d runs of %d ms, "
	       "medians (Mops/s)\n", nthreads, cs_iters, runs, ms);
	double med[NV];
	for (int v = 0; v < NV; v++) {
		qsort(r[v], (size_t)runs, sizeof r[v][0], cmp_d);
		med[v] = r[v][runs / 2];
	}
	for (int v = 0; v < NV; v++)
		printf("  %-9s %8.3f  (%.1f%% of none, %.1f%% of off)\n", vname[v],
		       med[v], 100.0 * med[v] / med[V_NONE], 100.0 * med[v] / med[V_OFF]);
	uint64_t acq = 0, cont = 0;
	for (unsigned i = 0; i < prof_g.g_nsites; i++) {
		struct prof_counts pc;
		prof_site_counts(&prof_g.g_sitepool[i], &pc);
		acq += pc.c_acq;
		cont += pc.c_contended;
	}
	printf("  profiled runs: %llu acquisitions, %.1f%% contended\n",
	       (unsigned long long)acq, acq ? 100.0 * (double)cont / (double)acq : 0.0);
	return 0;
}
