/*
 * records.c - the profiler's clock, pools and records: lock and site
 * records found through two cds_lfht tables, backtraces kept per site.
 *
 * Invariants:
 *   - A lock record (prof_lockrec) and a site record (prof_siterec) are
 *     taken from their pools by an atomic bump of g_nlocks/g_nsites and
 *     never returned.  A record is published by cds_lfht_add_unique();
 *     a record that lost the race to another thread stays unpublished
 *     (lr_live 0, not on any list) and is ignored by reports.
 *   - Site pool layout: [0, max_sites) ordinary sites, then one overflow
 *     site per lock record (lr_other), then the global overflow lock's.
 *   - Each lock's published sites form a push-only list (lr_sites,
 *     sr_next): pushed with a release CAS, walked with acquire loads.
 *   - The two cds_lfht tables are used WITHOUT rcu read-side sections:
 *     nothing is ever removed from them and they never resize (fixed
 *     bucket count, no CDS_LFHT_AUTO_RESIZE), so no node or bucket is
 *     ever reclaimed and a lookup can never see freed memory.  This is
 *     required, not a shortcut: liburcu-bp registers a thread on its
 *     first read-side lock by taking its registry mutex, and when the
 *     acquisition being profiled is that very mutex (liburcu's own
 *     thread registration and exit paths lock it through our
 *     pthread_mutex_lock) the thread would deadlock on itself.
 *
 * Lock state: nothing here blocks; nothing on the lock paths calls
 * malloc or stdio (the tables are made at start-up).
 */
#include <cpuid.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include "prof/prof_int.h"

__extension__ typedef unsigned __int128 u128;

struct prof_global prof_g;

/* ---- clock ---- */

uint64_t prof_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t prof_tick(void)
{
#if defined(__x86_64__)
	if (__builtin_expect(prof_g.g_tsc, 1))
		return __rdtsc();
#endif
	return prof_mono_ns();
}

uint64_t prof_ticks_ns(uint64_t d)
{
	if (!prof_g.g_tsc)
		return d;
	u128 v = (u128)d * prof_g.g_mult;
	return (uint64_t)(v >> 32);
}

uint64_t prof_tick_to_ns(uint64_t t)
{
	return t > prof_g.g_t0_tick ? prof_ticks_ns(t - prof_g.g_t0_tick) : 0;
}

/* The TSC, if invariant, calibrated against CLOCK_MONOTONIC for 2 ms;
 * else CLOCK_MONOTONIC itself. */
static void prof_clock_init(void)
{
	prof_g.g_tsc = false;
#if defined(__x86_64__)
	unsigned a, b, c, d;
	if (__get_cpuid(0x80000007, &a, &b, &c, &d) && (d & (1u << 8))) {
		uint64_t n0 = prof_mono_ns(), t0 = __rdtsc(), n1, t1;
		do {
			n1 = prof_mono_ns();
			t1 = __rdtsc();
		} while (n1 - n0 < 2000000);
		if (t1 > t0) {
			prof_g.g_mult = (uint64_t)(((u128)(n1 - n0) << 32)
			                           / (t1 - t0));
			prof_g.g_tsc = prof_g.g_mult != 0;
		}
	}
#endif
	prof_g.g_t0_tick = prof_tick();
	prof_g.g_t0_ns = prof_mono_ns();
}

unsigned prof_hist_bucket(uint64_t ns)
{
	unsigned b = ns ? 64u - (unsigned)__builtin_clzll(ns) : 0;
	return b < PROF_HIST_N ? b : PROF_HIST_N - 1;
}

/* ---- pools and tables ---- */

static void *pool_map(size_t n, size_t size)
{
	void *p = mmap(NULL, n * size, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static int lock_match(struct cds_lfht_node *n, const void *key)
{
	return caa_container_of(n, struct prof_lockrec, lr_node)->lr_lock == key;
}

struct site_key { const void *lock; uintptr_t pc; };

static int site_match(struct cds_lfht_node *n, const void *key)
{
	const struct prof_siterec *sr =
		caa_container_of(n, struct prof_siterec, sr_node);
	const struct site_key *k = key;
	return sr->sr_lock == k->lock && sr->sr_pc == k->pc;
}

static void site_init(struct prof_siterec *sr, struct prof_lockrec *lr,
                      const void *lock, uintptr_t pc)
{
	sr->sr_lock = lock;
	sr->sr_pc = pc;
	sr->sr_lr = lr;
	cds_lfht_node_init(&sr->sr_node);
}

static void lock_init(struct prof_lockrec *lr, unsigned idx, const void *lock)
{
	lr->lr_lock = lock;
	lr->lr_index = idx;
	lr->lr_other = &prof_g.g_sitepool[prof_g.g_cfg.pc_max_sites + idx];
	site_init(lr->lr_other, lr, lock, 0);
	cds_lfht_node_init(&lr->lr_node);
}

int prof_core_init(const struct prof_config *cfg)
{
	struct prof_global *g = &prof_g;
	g->g_cfg = *cfg;
	unsigned nl = cfg->pc_max_locks, ns = cfg->pc_max_sites;
	g->g_sitecap = ns + nl + 1;
	g->g_maxthr = cfg->pc_max_threads ? cfg->pc_max_threads : 4096;
	g->g_maxtid = 1u << 22;
	g->g_lockpool = pool_map(nl + 1, sizeof *g->g_lockpool);
	g->g_sitepool = pool_map(g->g_sitecap, sizeof *g->g_sitepool);
	g->g_stackpool = pool_map(cfg->pc_max_stacks, sizeof *g->g_stackpool);
	g->g_thrpool = pool_map(g->g_maxthr, sizeof *g->g_thrpool);
	g->g_bytid = pool_map(g->g_maxtid, sizeof *g->g_bytid);
	if (!g->g_lockpool || !g->g_sitepool || !g->g_stackpool ||
	    !g->g_thrpool || !g->g_bytid)
		return -ENOMEM;
	/* Fixed-size tables: no resize, so adding never allocates. */
	unsigned long nb = 1024;
	while (nb < nl && nb < (1ul << 20))
		nb <<= 1;
	g->g_locks = cds_lfht_new(nb, nb, nb, 0, NULL);
	nb = 1024;
	while (nb < ns && nb < (1ul << 20))
		nb <<= 1;
	g->g_sites = cds_lfht_new(nb, nb, nb, 0, NULL);
	if (!g->g_locks || !g->g_sites)
		return -ENOMEM;
	g->g_other_lock = &g->g_lockpool[nl];
	lock_init(g->g_other_lock, nl, NULL);
	g->g_bt_every = 1;
	g->g_hold_every = cfg->pc_hold_sample ? cfg->pc_hold_sample : 1;
	g->g_pid = getpid();
	if (prof_threads_init() != 0)
		return -EAGAIN;
	prof_clock_init();
	return 0;
}

/* The lock's record: found, added, or the
 *    overflow record when the pool is spent. */
static struct prof_lockrec *lock_get(const void *lock)
{
	struct prof_global *g = &prof_g;
	unsigned long h = prof_hash2(lock, 0);
	struct cds_lfht_iter it;
	cds_lfht_lookup(g->g_locks, h, lock_match, lock, &it);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
	if (n)
		return caa_container_of(n, struct prof_lockrec, lr_node);
	unsigned idx = __atomic_fetch_add(&g->g_nlocks, 1, __ATOMIC_RELAXED);
	if (idx >= g->g_cfg.pc_max_locks) {
		__atomic_store_n(&g->g_nlocks, g->g_cfg.pc_max_locks,
		                 __ATOMIC_RELAXED);
		__atomic_add_fetch(&g->g_lock_overflow, 1, __ATOMIC_RELAXED);
		return g->g_other_lock;
	}
	struct prof_lockrec *lr = &g->g_lockpool[idx];
	lock_init(lr, idx, lock);
	n = cds_lfht_add_unique(g->g_locks, h, lock_match, lock, &lr->lr_node);
	if (n != &lr->lr_node)
		return caa_container_of(n, struct prof_lockrec, lr_node);
	__atomic_store_n(&lr->lr_live, 1, __ATOMIC_RELEASE);
	return lr;
}

static void site_push(struct prof_lockrec *lr, struct prof_siterec *sr)
{
	struct prof_siterec *head = __atomic_load_n(&lr->lr_sites, __ATOMIC_RELAXED);
	do
		sr->sr_next = head;
	while (!__atomic_compare_exchange_n(&lr->lr_sites, &head, sr, true,
	                                    __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

/* The site record of (lock, pc): found, added, or the lock's overflow
 * site. */
struct prof_siterec *prof_site_get(const void *lock, uintptr_t pc)
{
	struct prof_global *g = &prof_g;
	struct site_key k = { lock, pc };
	unsigned long h = prof_hash2(lock, pc + 1);
	struct cds_lfht_iter it;
	struct prof_siterec *sr = NULL;
	bool fresh = false;
	cds_lfht_lookup(g->g_sites, h, site_match, &k, &it);
	struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
	if (n) {
		sr = caa_container_of(n, struct prof_siterec, sr_node);
		goto out;
	}
	struct prof_lockrec *lr = lock_get(lock);
	if (lr == g->g_other_lock) {
		sr = lr->lr_other;
		goto out;
	}
	unsigned idx = __atomic_fetch_add(&g->g_nsites, 1, __ATOMIC_RELAXED);
	if (idx >= g->g_cfg.pc_max_sites) {
		__atomic_store_n(&g->g_nsites, g->g_cfg.pc_max_sites,
		                 __ATOMIC_RELAXED);
		__atomic_add_fetch(&g->g_site_overflow, 1, __ATOMIC_RELAXED);
		sr = lr->lr_other;
		goto out;
	}
	sr = &g->g_sitepool[idx];
	site_init(sr, lr, lock, pc);
	n = cds_lfht_add_unique(g->g_sites, h, site_match, &k, &sr->sr_node);
	if (n != &sr->sr_node) {
		sr = caa_container_of(n, struct prof_siterec, sr_node);
		goto out;
	}
	site_push(lr, sr);
	fresh = true;
out:
	if (fresh) {
		/* First reference: every site gets one stack, contended
		 * or not. */
		uintptr_t st[PROF_FRAMES_MAX];
		int nf = prof_backtrace(pc, st, PROF_FRAMES_MAX);
		if (nf > 0)
			prof_site_add_stack(sr, st, nf);
	}
	return sr;
}


/* Count one sample of stack pc[0..n) in site sr. */
void prof_site_add_stack(struct prof_siterec *sr, const uintptr_t *pc, int n)
{
	uint64_t h = prof_stack_hash(pc, n);
	for (int i = 0; i < PROF_SITE_STACKS; i++) {
		struct prof_stack *st = __atomic_load_n(&sr->sr_stack[i],
		                                        __ATOMIC_ACQUIRE);
		if (!st) {
			unsigned idx = __atomic_fetch_add(&prof_g.g_nstacks, 1,
			                                  __ATOMIC_RELAXED);
			if (idx >= prof_g.g_cfg.pc_max_stacks) {
				__atomic_store_n(&prof_g.g_nstacks,
				                 prof_g.g_cfg.pc_max_stacks,
				                 __ATOMIC_RELAXED);
				prof_add(&prof_g.g_stack_overflow, 1);
				break;
			}
			struct prof_stack *ns = &prof_g.g_stackpool[idx];
			ns->st_hash = h;
			ns->st_n = (uint32_t)n;
			memcpy(ns->st_pc, pc, (size_t)n * sizeof *pc);
			if (__atomic_compare_exchange_n(&sr->sr_stack[i], &st, ns,
			                                false, __ATOMIC_RELEASE,
			                                __ATOMIC_ACQUIRE)) {
				prof_add(&sr->sr_stack_n[i], 1);
				return;
			}
			/* lost the slot: ns is wasted, st is the winner */
		}
		if (st->st_hash == h) {
			prof_add(&sr->sr_stack_n[i], 1);
			return;
		}
	}
	prof_add(&sr->sr_stack_other, 1);
}

/* ---- report-time access ---- */

void prof_site_counts(const struct prof_siterec *sr, struct prof_counts *out)
{
	memset(out, 0, sizeof *out);
	const uint64_t *src = (const uint64_t *)&sr->sr_c;
	uint64_t *dst = (uint64_t *)out;
	for (size_t i = 0; i < sizeof *out / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
	unsigned nthr = __atomic_load_n(&prof_g.g_nthr, __ATOMIC_RELAXED);
	for (unsigned t = 0; t < nthr; t++) {
		const struct prof_thread *pt = &prof_g.g_thrpool[t];
		if (!__atomic_load_n(&pt->pt_tid, __ATOMIC_RELAXED))
			continue;
		for (int i = 0; i < PROF_TENTRIES; i++) {
			const struct prof_tentry *te = &pt->pt_t[i];
			if (__atomic_load_n(&te->te_site, __ATOMIC_RELAXED) != sr)
				continue;
			out->c_acq += __atomic_load_n(&te->te_acq, __ATOMIC_RELAXED);
			out->c_hold_ns += __atomic_load_n(&te->te_hold_ns,
			                                  __ATOMIC_RELAXED);
			out->c_hold_n += __atomic_load_n(&te->te_hold_n,
			                                 __ATOMIC_RELAXED);
			uint64_t mx = __atomic_load_n(&te->te_hold_max_ns,
			                              __ATOMIC_RELAXED);
			if (mx > out->c_hold_max_ns)
				out->c_hold_max_ns = mx;
			for (int b = 0; b < PROF_HIST_N; b++)
				out->c_hold_hist[b] += __atomic_load_n(&te->te_hist[b],
				                                       __ATOMIC_RELAXED);
		}
	}
}
