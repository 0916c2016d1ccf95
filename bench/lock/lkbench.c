/*
 * lkbench.c - lock throughput: Mops/s of lock + critical section +
 * unlock, per variant, across threads x critical section x CPU hogs.
 *
 * Method: for every repetition, for every configuration, every variant
 * runs once in turn (interleaved), so slow drifts of a shared machine
 * hit all variants alike; the table shows the median per variant.  The
 * order of the variants rotates by one each repetition, so that each
 * runs first in a configuration about as often as the others (exactly
 * when the repetitions are a multiple of the variants: 5 and 5 by
 * default): the first
 * inherits the scheduler's state from the previous configuration's
 * last run (where its threads and the hogs were placed, the CPUs' load
 * averages); and each run starts after an idle gap (--settle), so that
 * the previous run's threads weigh less in those averages.  With a
 * fixed order and no gap glibc's default mutex always ran right
 * after the previous configuration and read 4.0-8.3 Mops/s (median 6.3,
 * 16 runs) at 2 threads x 100 ns x 2 hogs in full runs, against 2.5-5.2
 * (13 runs) where that configuration ran alone or after other hog
 * configurations; owner read 2.7-5.3 in both.  With both, owner / best
 * glibc there read 0.96x and 1.02x in two full runs (docs/benchmarks.md,
 * session 5).
 * Workers loop lock / busy critical section / shared counter++ /
 * unlock until told to stop; the counter is checked against the sum of
 * the workers' own counts (a lost update fails the run).  Hogs are
 * threads spinning on the CPU for the whole run.  glibc variants call
 * glibc directly; ours go through the same dispatch the preload uses,
 * and their threads have schedctl slots (with a kernel switch ring
 * where perf allows), which glibc's threads get only with --glibc-slots.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "lock/lock.h"
#include "lkbench.h"

enum { V_GLIBC, V_ADAPTIVE, V_OWNER, V_SPIN, V_PARK, V_N };
static const char *const v_names[V_N] = { "glibc", "adaptive", "owner",
                                          "spin", "park" };
#define MAXLIST 16
#define MAXTHREADS 256

struct lkb_opts {
	int o_threads[MAXLIST], o_nthreads;
	int o_cs[MAXLIST], o_ncs;
	int o_hogs[MAXLIST], o_nhogs;
	int o_variants[V_N], o_nvariants;
	int o_reps, o_ms;
	int o_settle_ms;             /* idle before each run */
	bool o_csv;
	bool o_glibc_slots;
	bool o_stats;
};

struct lkb_shared {
	pthread_mutex_t s_m;
	long s_counter;
	char s_pad[64];
	int s_go, s_stop;            /* acquire/release flags */
	int s_ready;                 /* workers set up and waiting for s_go */
	int s_variant;
	bool s_slots;                /* glibc variants: set up schedctl too */
	bool s_stats;                /* --stats: count hand-offs, switches */
	unsigned s_cs_iters;
	int s_last;                  /* --stats: last holder (under the lock) */
};

struct lkb_worker {
	struct lkb_shared *w_sh;
	long w_ops;
	long w_handoffs;             /* --stats: acquisitions after another */
	long w_vcsw, w_ivcsw;        /* --stats: context switches in the run */
	char w_pad[64];
};

static double lkb_ns_per_iter;
static struct lkb_worker lkb_workers[MAXTHREADS];
static bool lkb_glibc_slots;   /* --glibc-slots */

static inline void lkb_busy(unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		__asm__ __volatile__("" : : "r"(i) : "memory");
}

static double lkb_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The fastest of many short timings spread over ~100 ms: on a busy
 * machine a long one is likely to include a preemption (or a busy
 * hyperthread sibling), which would shorten every critical section of
 * the run. */
static void lkb_calibrate(void)
{
	unsigned n = 1u << 17;
	double best = 1e9;
	for (int i = 0; i < 61; i++) {
		struct timespec gap = { 0, 1000000 };
		nanosleep(&gap, NULL);
		double t0 = lkb_now();
		lkb_busy(n);
		double dt = lkb_now() - t0;
		if (dt < best)
			best = dt;
	}
	lkb_ns_per_iter = best * 1e9 / n;
}

static inline int lkb_lock(struct lkb_shared *sh)
{
	if (sh->s_variant <= V_ADAPTIVE)
		return pthread_mutex_lock(&sh->s_m);
	return sc_lock_mutex_lock(&sh->s_m);
}

static inline int lkb_unlock(struct lkb_shared *sh)
{
	if (sh->s_variant <= V_ADAPTIVE)
		return pthread_mutex_unlock(&sh->s_m);
	return sc_lock_mutex_unlock(&sh->s_m);
}

/* The worker loop of --stats: also counts hand-offs (the lock taken
 * right after another thread held it) and the thread's context
 * switches, which say why a variant is fast or slow. */
static void *lkb_work_stats(struct lkb_worker *w)
{
	struct lkb_shared *sh = w->w_sh;
	unsigned iters = sh->s_cs_iters;
	int me = (int)(w - lkb_workers) + 1;
	long ops = 0, handoffs = 0;
	struct rusage r0, r1;
	getrusage(RUSAGE_THREAD, &r0);
	while (!__atomic_load_n(&sh->s_stop, __ATOMIC_RELAXED)) {
		if (lkb_lock(sh))
			break;
		lkb_busy(iters);
		sh->s_counter++;
		if (sh->s_last != me) {
			sh->s_last = me;
			handoffs++;
		}
		lkb_unlock(sh);
		ops++;
	}
	getrusage(RUSAGE_THREAD, &r1);
	w->w_ops = ops;
	w->w_handoffs = handoffs;
	w->w_vcsw = r1.ru_nvcsw - r0.ru_nvcsw;
	w->w_ivcsw = r1.ru_nivcsw - r0.ru_nivcsw;
	return NULL;
}

static void *lkb_work(void *arg)
{
	struct lkb_worker *w = arg;
	struct lkb_shared *sh = w->w_sh;
	unsigned iters = sh->s_cs_iters;
	long ops = 0;
	/* Set-up (a slot, a kernel ring) before the clock starts. */
	if (sh->s_slots || sh->s_variant > V_ADAPTIVE)
		(void)sc_thread_setup();
	__atomic_add_fetch(&sh->s_ready, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&sh->s_go, __ATOMIC_ACQUIRE))
		sched_yield();
	if (sh->s_stats)
		return lkb_work_stats(w);
	while (!__atomic_load_n(&sh->s_stop, __ATOMIC_RELAXED)) {
		if (lkb_lock(sh))
			break;
		lkb_busy(iters);
		sh->s_counter++;
		lkb_unlock(sh);
		ops++;
	}
	w->w_ops = ops;
	return NULL;
}

static void *lkb_hog(void *arg)
{
	struct lkb_shared *sh = arg;
	while (!__atomic_load_n(&sh->s_stop, __ATOMIC_RELAXED))
		lkb_busy(1000);
	return NULL;
}

/* One run; Mops/s, or -1 with a message on stderr.  With --stats,
 * st[0..2] get hand-offs, voluntary and involuntary switches per 1000
 * operations. */
static double lkb_run(int variant, int threads, int cs_ns, int hogs, int ms,
                      double *st)
{
	static struct lkb_shared sh;
	struct lkb_worker *w = lkb_workers;
	pthread_t tw[MAXTHREADS], th[MAXLIST];
	memset(&sh, 0, sizeof sh);
	sh.s_variant = variant;
	sh.s_slots = lkb_glibc_slots;
	sh.s_stats = st != NULL;
	sh.s_cs_iters = cs_ns > 0 ? (unsigned)(cs_ns / lkb_ns_per_iter + 0.5) : 0;
	if (variant <= V_ADAPTIVE) {
		pthread_mutexattr_t a;
		pthread_mutexattr_init(&a);
		pthread_mutexattr_settype(&a, variant == V_ADAPTIVE ?
		                          PTHREAD_MUTEX_ADAPTIVE_NP :
		                          PTHREAD_MUTEX_NORMAL);
		pthread_mutex_init(&sh.s_m, &a);
	} else {
		lk_set_policy(variant == V_OWNER ? LK_OWNER :
		              variant == V_SPIN ? LK_SPIN : LK_PARK);
		sc_lock_mutex_init(&sh.s_m, NULL);
	}
	int nh = 0, nw = 0;
	double mops = -1, dt = 1;
	for (; nh < hogs; nh++)
		if (pthread_create(&th[nh], NULL, lkb_hog, &sh))
			goto out;
	for (; nw < threads; nw++) {
		w[nw].w_sh = &sh;
		w[nw].w_ops = 0;
		w[nw].w_handoffs = w[nw].w_vcsw = w[nw].w_ivcsw = 0;
		if (pthread_create(&tw[nw], NULL, lkb_work, &w[nw]))
			goto out;
	}
	while (__atomic_load_n(&sh.s_ready, __ATOMIC_ACQUIRE) < nw)
		sched_yield();
	double t0 = lkb_now();
	__atomic_store_n(&sh.s_go, 1, __ATOMIC_RELEASE);
	struct timespec d = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&d, &d) != 0)
		;
	__atomic_store_n(&sh.s_stop, 1, __ATOMIC_RELAXED);
	dt = lkb_now() - t0;
	mops = 0;
out:
	__atomic_store_n(&sh.s_go, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&sh.s_stop, 1, __ATOMIC_RELAXED);
	long total = 0, ho = 0, vcsw = 0, ivcsw = 0;
	for (int i = 0; i < nw; i++) {
		pthread_join(tw[i], NULL);
		total += w[i].w_ops;
		ho += w[i].w_handoffs;
		vcsw += w[i].w_vcsw;
		ivcsw += w[i].w_ivcsw;
	}
	for (int i = 0; i < nh; i++)
		pthread_join(th[i], NULL);
	if (mops < 0) {
		fprintf(stderr, "schedctl bench: cannot start threads: %s\n",
		        strerror(errno));
		return -1;
	}
	if (total != sh.s_counter) {
		fprintf(stderr, "schedctl bench: %s lost updates: %ld != %ld\n",
		        v_names[variant], sh.s_counter, total);
		return -1;
	}
	if (st) {
		double k = total > 0 ? 1000.0 / (double)total : 0;
		st[0] = (double)ho * k;
		st[1] = (double)vcsw * k;
		st[2] = (double)ivcsw * k;
	}
	return total / dt / 1e6;
}

static int lkb_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* => the median of v[0..n-1], n <= 101 (--reps); v is left in its
 * order (repetition i of every variant stays at index i). */
static double lkb_median(const double *v, int n)
{
	double s[101];
	memcpy(s, v, (size_t)n * sizeof *s);
	qsort(s, (size_t)n, sizeof *s, lkb_cmp);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void lkb_usage(FILE *f)
{
	fprintf(f,
	"usage: schedctl bench [--quick] [--threads=LIST] [--cs=LIST] [--hogs=LIST]\n"
	"                      [--variants=LIST] [--reps=N] [--ms=N] [--settle=MS]\n"
	"                      [--csv] [--glibc-slots] [--stats]\n"
	"Lock throughput (Mops/s) of glibc's default and adaptive mutexes and the\n"
	"owner, spin and park policies, side by side; medians of interleaved runs.\n"
	"With owner and a glibc variant: owner / the better glibc variant (ratio\n"
	"of medians, and median of the ratios within each repetition), and the\n"
	"repetitions where owner was at least as fast, marked - or + when owner is\n"
	"slower or faster beyond chance (sign test, p < 0.05).\n"
	"  --threads=LIST   worker threads (default 1,2,4,8,16)\n"
	"  --cs=LIST        critical section in ns (default 0,100,1000,10000)\n"
	"  --hogs=LIST      CPU-hog threads (default 0,2)\n"
	"  --variants=LIST  of glibc,adaptive,owner,spin,park (default all)\n"
	"  --reps=N         runs per cell, median shown (default 5)\n"
	"  --ms=N           length of one run in ms (default 100)\n"
	"  --settle=MS      idle time before each run, so that one run's threads\n"
	"                   weigh less on where the next run's are placed\n"
	"                   (default: the run length, at most 100 ms)\n"
	"  --quick          threads 1,4,16, cs 0,1000, hogs 0,2, 3 reps of 50 ms\n"
	"  --csv            comma-separated output\n"
	"  --glibc-slots    give glibc's threads schedctl slots (and kernel switch\n"
	"                   rings) too, to compare the lock algorithms alone\n"
	"  --stats          also print, per variant, hand-offs (the lock taken\n"
	"                   right after another thread held it) and voluntary/\n"
	"                   involuntary context switches per 1000 operations\n"
	"exit status: 0 done, 1 a run failed, 2 usage error\n");
}

static int lkb_parse_list(const char *s, int *out, int max, int lo, int hi)
{
	int n = 0;
	char buf[256];
	if (strlen(s) >= sizeof buf)
		return -1;
	strcpy(buf, s);
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *end;
		errno = 0;
		long v = strtol(tok, &end, 10);
		if (errno || *end || v < lo || v > hi || n == max)
			return -1;
		out[n++] = (int)v;
	}
	return n > 0 ? n : -1;
}

static int lkb_parse_variants(const char *s, struct lkb_opts *o)
{
	char buf[128];
	if (strlen(s) >= sizeof buf)
		return -1;
	strcpy(buf, s);
	o->o_nvariants = 0;
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		int v = 0;
		while (v < V_N && strcmp(tok, v_names[v]) != 0)
			v++;
		if (v == V_N || o->o_nvariants == V_N)
			return -1;
		o->o_variants[o->o_nvariants++] = v;
	}
	return o->o_nvariants > 0 ? 0 : -1;
}

static int lkb_bad(const char *opt)
{
	fprintf(stderr, "schedctl bench: bad value for %s (see 'schedctl bench "
	        "--help')\n", opt);
	return 2;
}

static int lkb_parse(int argc, char **argv, struct lkb_opts *o)
{
	static const int d_threads[] = { 1, 2, 4, 8, 16 }, d_cs[] = { 0, 100, 1000, 10000 };
	memcpy(o->o_threads, d_threads, sizeof d_threads);
	o->o_nthreads = 5;
	memcpy(o->o_cs, d_cs, sizeof d_cs);
	o->o_ncs = 4;
	o->o_hogs[0] = 0;
	o->o_hogs[1] = 2;
	o->o_nhogs = 2;
	for (int v = 0; v < V_N; v++)
		o->o_variants[v] = v;
	o->o_nvariants = V_N;
	o->o_reps = 5;
	o->o_ms = 100;
	o->o_settle_ms = -1;         /* the run length, at most 100 ms */
	o->o_csv = false;
	o->o_glibc_slots = false;
	o->o_stats = false;
	enum { O_THREADS = 256, O_CS, O_HOGS, O_VARIANTS, O_REPS, O_MS, O_QUICK,
	       O_CSV, O_HELP, O_SLOTS, O_STATS, O_SETTLE };
	static const struct option lo[] = {
		{ "threads", required_argument, NULL, O_THREADS },
		{ "cs", required_argument, NULL, O_CS },
		{ "hogs", required_argument, NULL, O_HOGS },
		{ "variants", required_argument, NULL, O_VARIANTS },
		{ "reps", required_argument, NULL, O_REPS },
		{ "ms", required_argument, NULL, O_MS },
		{ "settle", required_argument, NULL, O_SETTLE },
		{ "quick", no_argument, NULL, O_QUICK },
		{ "csv", no_argument, NULL, O_CSV },
		{ "glibc-slots", no_argument, NULL, O_SLOTS },
		{ "stats", no_argument, NULL, O_STATS },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	int c, n;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case O_THREADS:
			if ((n = lkb_parse_list(optarg, o->o_threads, MAXLIST, 1, MAXTHREADS)) < 0)
				return lkb_bad("--threads");
			o->o_nthreads = n;
			break;
		case O_CS:
			if ((n = lkb_parse_list(optarg, o->o_cs, MAXLIST, 0, 1000000)) < 0)
				return lkb_bad("--cs");
			o->o_ncs = n;
			break;
		case O_HOGS:
			if ((n = lkb_parse_list(optarg, o->o_hogs, MAXLIST, 0, MAXLIST)) < 0)
				return lkb_bad("--hogs");
			o->o_nhogs = n;
			break;
		case O_VARIANTS:
			if (lkb_parse_variants(optarg, o) < 0)
				return lkb_bad("--variants");
			break;
		case O_REPS:
			if (lkb_parse_list(optarg, &o->o_reps, 1, 1, 101) < 0)
				return lkb_bad("--reps");
			break;
		case O_MS:
			if (lkb_parse_list(optarg, &o->o_ms, 1, 1, 60000) < 0)
				return lkb_bad("--ms");
			break;
		case O_SETTLE:
			if (lkb_parse_list(optarg, &o->o_settle_ms, 1, 0, 10000) < 0)
				return lkb_bad("--settle");
			break;
		case O_QUICK:
			o->o_threads[0] = 1; o->o_threads[1] = 4; o->o_threads[2] = 16;
			o->o_nthreads = 3;
			o->o_cs[0] = 0; o->o_cs[1] = 1000;
			o->o_ncs = 2;
			o->o_reps = 3;
			o->o_ms = 50;
			break;
		case O_CSV:
			o->o_csv = true;
			break;
		case O_SLOTS:
			o->o_glibc_slots = true;
			break;
		case O_STATS:
			o->o_stats = true;
			break;
		case 'h':
		case O_HELP:
			lkb_usage(stdout);
			return 0;
		default:
			fprintf(stderr, "schedctl bench: unknown option '%s' (see "
			        "'schedctl bench --help')\n", argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "schedctl bench: unexpected argument '%s' (see "
		        "'schedctl bench --help')\n", argv[optind]);
		return 2;
	}
	if (o->o_settle_ms < 0)
		o->o_settle_ms = o->o_ms < 100 ? o->o_ms : 100;
	return -1;
}

/*
 * Paired comparison of one cell (n = repetitions): in every repetition
 * the variants ran back to back, so owner / ref of the same repetition
 * shares most of that moment's load.  ref is the better glibc mutex of
 * the cell (higher median): comparing with the better of the two in
 * each repetition would favour glibc (the larger of two noisy numbers).
 * => the median of those ratios; *won the repetitions where owner >=
 * ref; *sign '-' if owner is slower beyond chance (sign test, one side,
 * p < 0.05: P(X <= won) for X ~ Binomial(n, 1/2)), '+' if faster beyond
 * chance, ' ' otherwise (a tie within this machine's noise).  With 40
 * cells, about two get a sign by chance alone.
 */
static double lkb_paired(const double *own, const double *ref, int n,
                         int *won, char *sign)
{
	double r[101];
	int w = 0;
	for (int i = 0; i < n; i++) {
		r[i] = ref[i] > 0 ? own[i] / ref[i] : 0;
		w += own[i] >= ref[i];
	}
	/* P(X <= w) and P(X >= w), X ~ Binomial(n, 1/2) */
	double lo = 0, hi = 0, c = 1, half_n = 1;   /* c = C(n, i) */
	for (int i = 0; i < n; i++)
		half_n /= 2;
	for (int i = 0; i <= n; i++) {
		double p = c * half_n;
		if (i <= w)
			lo += p;
		if (i >= w)
			hi += p;
		c = c * (n - i) / (i + 1);
	}
	*won = w;
	*sign = lo < 0.05 ? '-' : hi < 0.05 ? '+' : ' ';
	return lkb_median(r, n);
}

/* runs: per cell and variant, o_reps results in a row (lkb_main). */
static void lkb_print(const struct lkb_opts *o, const double *med,
                      const double *runs, int ncfg)
{
	int owner_col = -1, g = -1, a = -1, n = o->o_reps;
	for (int v = 0; v < o->o_nvariants; v++) {
		if (o->o_variants[v] == V_OWNER) owner_col = v;
		if (o->o_variants[v] == V_GLIBC) g = v;
		if (o->o_variants[v] == V_ADAPTIVE) a = v;
	}
	bool ratio = owner_col >= 0 && (g >= 0 || a >= 0);
	if (o->o_csv) {
		printf("threads,cs_ns,hogs");
		for (int v = 0; v < o->o_nvariants; v++)
			printf(",%s", v_names[o->o_variants[v]]);
		printf(ratio ? ",owner_vs_best_glibc,paired_ratio,owner_wins,reps\n"
		             : "\n");
	} else {
		printf("%7s %6s %4s", "threads", "cs_ns", "hogs");
		for (int v = 0; v < o->o_nvariants; v++)
			printf(" %9s", v_names[o->o_variants[v]]);
		printf(ratio ? "  owner/best-glibc  paired  wins\n" : "\n");
	}
	int k = 0, wins = 0, slower = 0, faster = 0;
	for (int t = 0; t < o->o_nthreads; t++)
	for (int c = 0; c < o->o_ncs; c++)
	for (int h = 0; h < o->o_nhogs; h++, k++) {
		const double *m = med + (size_t)k * o->o_nvariants;
		const double *cell = runs + (size_t)k * o->o_nvariants * n;
		printf(o->o_csv ? "%d,%d,%d" : "%7d %6d %4d", o->o_threads[t],
		       o->o_cs[c], o->o_hogs[h]);
		for (int v = 0; v < o->o_nvariants; v++)
			printf(o->o_csv ? ",%.3f" : " %9.3f", m[v]);
		if (ratio) {
			int ref = g >= 0 && (a < 0 || m[g] >= m[a]) ? g : a;
			double r = m[ref] > 0 ? m[owner_col] / m[ref] : 0;
			wins += r >= 1.0;
			int won;
			char sign;
			double pr = lkb_paired(cell + (size_t)owner_col * n,
			                       cell + (size_t)ref * n, n, &won, &sign);
			slower += sign == '-';
			faster += sign == '+';
			if (o->o_csv)
				printf(",%.2f,%.2f,%d,%d", r, pr, won, n);
			else
				printf("  %15.2fx  %5.2fx %2d/%-2d%c", r, pr, won, n, sign);
		}
		printf("\n");
	}
	if (ratio && !o->o_csv) {
		printf("owner >= best glibc variant in %d of %d configurations\n",
		       wins, ncfg);
		printf("paired by repetition (sign test, p < 0.05): owner slower in "
		       "%d, faster in %d, within noise in %d\n", slower, faster,
		       ncfg - slower - faster);
	}
}

/* --stats: medians per cell and variant of hand-offs / voluntary /
 * involuntary switches per 1000 operations. */
static void lkb_print_stats(const struct lkb_opts *o, const double *sm, int ncfg)
{
	printf("\nper 1000 operations: hand-offs/voluntary/involuntary "
	       "context switches (medians)\n");
	printf("%7s %6s %4s", "threads", "cs_ns", "hogs");
	for (int v = 0; v < o->o_nvariants; v++)
		printf(" %20s", v_names[o->o_variants[v]]);
	printf("\n");
	int k = 0;
	for (int t = 0; t < o->o_nthreads; t++)
	for (int c = 0; c < o->o_ncs; c++)
	for (int h = 0; h < o->o_nhogs; h++, k++) {
		printf("%7d %6d %4d", o->o_threads[t], o->o_cs[c], o->o_hogs[h]);
		for (int v = 0; v < o->o_nvariants; v++) {
			const double *x = sm + ((size_t)k * o->o_nvariants + v) * 3;
			char buf[64];
			snprintf(buf, sizeof buf, "%.1f/%.2f/%.2f", x[0], x[1], x[2]);
			printf(" %20s", buf);
		}
		printf("\n");
	}
	(void)ncfg;
}

int lkb_main(int argc, char **argv)
{
	struct lkb_opts o;
	int r = lkb_parse(argc, argv, &o);
	if (r >= 0)
		return r;
	int ncfg = o.o_nthreads * o.o_ncs * o.o_nhogs;
	size_t cells = (size_t)ncfg * o.o_nvariants;
	double *runs = calloc(cells * o.o_reps, sizeof *runs);
	double *med = calloc(cells, sizeof *med);
	double *stats = o.o_stats ? calloc(cells * o.o_reps * 3, sizeof *stats) : NULL;
	double *smed = o.o_stats ? calloc(cells * 3, sizeof *smed) : NULL;
	if (!runs || !med || (o.o_stats && (!stats || !smed))) {
		fprintf(stderr, "schedctl bench: out of memory\n");
		free(runs);
		free(med);
		free(stats);
		free(smed);
		return 1;
	}
	/* Start-up first: it reads SCHEDCTL_POLICY, which must not override
	 * the variant each run sets. */
	sc_lock_preload_init();
	lkb_calibrate();
	lkb_glibc_slots = o.o_glibc_slots;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	const char *why;
	(void)lk_slice_ext_available(&why);
	if (!o.o_csv)
		printf("lock throughput, Mops/s: median of %d interleaved runs of "
		       "%d ms; %ld CPUs; critical section loop %.3f ns/iteration; "
		       "preemption control: %s\n",
		       o.o_reps, o.o_ms, ncpu, lkb_ns_per_iter, why);
	bool tty = isatty(STDERR_FILENO);
	int total = (int)cells * o.o_reps, done = 0, status = 0;
	for (int rep = 0; rep < o.o_reps && !status; rep++) {
		int k = 0;
		for (int t = 0; t < o.o_nthreads; t++)
		for (int c = 0; c < o.o_ncs; c++)
		for (int h = 0; h < o.o_nhogs; h++, k++)
		for (int n = 0; n < o.o_nvariants && !status; n++) {
			/* Rotated by the repetition: see "Method" at the top. */
			int v = (n + rep) % o.o_nvariants;
			if (tty)
				fprintf(stderr, "\r[%d/%d] rep %d threads %d cs %d ns "
				        "hogs %d %-8s ", ++done, total, rep + 1,
				        o.o_threads[t], o.o_cs[c], o.o_hogs[h],
				        v_names[o.o_variants[v]]);
			size_t at = ((size_t)k * o.o_nvariants + v) * o.o_reps + rep;
			if (o.o_settle_ms > 0) {
				struct timespec gap = { o.o_settle_ms / 1000,
				                        (o.o_settle_ms % 1000) * 1000000L };
				while (nanosleep(&gap, &gap) != 0)
					;
			}
			double st[3];
			double x = lkb_run(o.o_variants[v], o.o_threads[t], o.o_cs[c],
			                   o.o_hogs[h], o.o_ms, stats ? st : NULL);
			if (x < 0)
				status = 1;
			runs[at] = x;
			for (int i = 0; stats && i < 3; i++)
				stats[i * cells * o.o_reps + at] = st[i];
		}
		if (!tty)
			fprintf(stderr, "schedctl bench: repetition %d of %d done\n",
			        rep + 1, o.o_reps);
	}
	if (tty)
		fprintf(stderr, "\r%-70s\r", "");
	if (!status) {
		for (size_t i = 0; i < cells; i++)
			med[i] = lkb_median(runs + i * o.o_reps, o.o_reps);
		lkb_print(&o, med, runs, ncfg);
		for (size_t i = 0; stats && i < cells; i++)
			for (int j = 0; j < 3; j++)
				smed[i * 3 + j] = lkb_median(stats + j * cells * o.o_reps +
				                             i * o.o_reps, o.o_reps);
		if (stats)
			lkb_print_stats(&o, smed, ncfg);
	}
	free(runs);
	free(med);
	free(stats);
	free(smed);
	return status;
}
