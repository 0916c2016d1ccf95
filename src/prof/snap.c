/*
 * snap.c - take a snapshot of the live records (report time: may
 * allocate), merge counters, sort.
 *
 * Per-thread counters are read with relaxed loads while their threads
 * may still run: a live snapshot is exact for quiescent threads and may
 * miss acquisitions in flight for running ones.
 */
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "prof/snap.h"

int prof_sort_parse(const char *s)
{
	static const char *const names[] = { "contended", "wait", "spin", "hold" };
	for (int i = 0; i < 4; i++)
		if (s && !strcmp(s, names[i]))
			return i;
	return -1;
}

const char *prof_sort_name(int key)
{
	static const char *const names[] = { "contended", "wait", "spin", "hold" };
	return key >= 0 && key < 4 ? names[key] : "contended";
}

void prof_counts_add(struct prof_counts *dst, const struct prof_counts *src)
{
	uint64_t wmax = dst->c_wait_max_ns, hmax = dst->c_hold_max_ns;
	uint64_t *d = (uint64_t *)dst;
	const uint64_t *s = (const uint64_t *)src;
	for (size_t i = 0; i < sizeof *dst / sizeof(uint64_t); i++)
		d[i] += s[i];
	dst->c_wait_max_ns = wmax > src->c_wait_max_ns ? wmax : src->c_wait_max_ns;
	dst->c_hold_max_ns = hmax > src->c_hold_max_ns ? hmax : src->c_hold_max_ns;
}

uint64_t prof_sort_value(const struct prof_counts *c, int key)
{
	switch (key) {
	case PROF_SORT_WAIT: return c->c_wait_ns;
	case PROF_SORT_SPIN: return c->c_spin_won_ns + c->c_spin_lost_ns;
	case PROF_SORT_HOLD: return prof_hold_total(c);
	default:             return c->c_contended;
	}
}

uint64_t prof_hold_mean(const struct prof_counts *c)
{
	return c->c_hold_n ? c->c_hold_ns / c->c_hold_n : 0;
}

uint64_t prof_hold_total(const struct prof_counts *c)
{
	if (c->c_hold_n >= c->c_acq)
		return c->c_hold_ns;
	return (uint64_t)((double)c->c_hold_ns * (double)c->c_acq /
	                  (double)(c->c_hold_n ? c->c_hold_n : 1));
}

static int sort_key;

static int cmp_site(const void *a, const void *b)
{
	const struct prof_ssite *x = a, *y = b;
	uint64_t vx = prof_sort_value(&x->s_c, sort_key);
	uint64_t vy = prof_sort_value(&y->s_c, sort_key);
	if (vx != vy)
		return vx < vy ? 1 : -1;
	if (x->s_c.c_acq != y->s_c.c_acq)
		return x->s_c.c_acq < y->s_c.c_acq ? 1 : -1;
	return x->s_where.f_pc < y->s_where.f_pc ? -1 : x->s_where.f_pc > y->s_where.f_pc;
}

static int cmp_lock(const void *a, const void *b)
{
	const struct prof_slock *x = a, *y = b;
	uint64_t vx = prof_sort_value(&x->l_c, sort_key);
	uint64_t vy = prof_sort_value(&y->l_c, sort_key);
	if (vx != vy)
		return vx < vy ? 1 : -1;
	if (x->l_c.c_acq != y->l_c.c_acq)
		return x->l_c.c_acq < y->l_c.c_acq ? 1 : -1;
	return x->l_addr < y->l_addr ? -1 : x->l_addr > y->l_addr;
}

void prof_snap_sort(struct prof_snap *s, int key)
{
	sort_key = key;
	for (size_t i = 0; i < s->nlocks; i++)
		qsort(s->locks[i].l_sites, s->locks[i].l_nsites,
		      sizeof *s->locks[i].l_sites, cmp_site);
	qsort(s->locks, s->nlocks, sizeof *s->locks, cmp_lock);
}

static void frame_free(struct prof_frame *f)
{
	free(f->f_func);
	free(f->f_file);
	free(f->f_obj);
}

void prof_snap_free(struct prof_snap *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nlocks; i++) {
		struct prof_slock *l = &s->locks[i];
		for (size_t j = 0; j < l->l_nsites; j++) {
			struct prof_ssite *st = &l->l_sites[j];
			frame_free(&st->s_where);
			for (size_t k = 0; k < st->s_nstacks; k++) {
				for (size_t f = 0; f < st->s_stacks[k].k_n; f++)
					frame_free(&st->s_stacks[k].k_frames[f]);
				free(st->s_stacks[k].k_frames);
			}
			free(st->s_stacks);
			for (size_t k = 0; k < st->s_nblk; k++)
				frame_free(&st->s_blk[k].b_site);
			free(st->s_blk);
		}
		free(l->l_sites);
		free(l->l_name);
	}
	free(s->locks);
	free(s);
}

/* ---- from live records ---- */

/* Every frame needing a symbol, gathered so that symbolisation runs
 * once over all of them. */
struct symq {
	struct prof_frame **f;
	size_t n, cap;
};

static bool symq_add(struct symq *q, struct prof_frame *f, uint64_t pc)
{
	f->f_pc = pc;
	if (!pc)
		return true;
	if (q->n == q->cap) {
		size_t nc = q->cap ? q->cap * 2 : 256;
		struct prof_frame **nf = realloc(q->f, nc * sizeof *nf);
		if (!nf)
			return false;
		q->f = nf;
		q->cap = nc;
	}
	q->f[q->n++] = f;
	return true;
}

static void symq_run(struct symq *q)
{
	struct prof_frame *tmp = calloc(q->n ? q->n : 1, sizeof *tmp);
	if (!tmp)
		return;
	for (size_t i = 0; i < q->n; i++)
		tmp[i].f_pc = q->f[i]->f_pc;
	prof_symbolise(tmp, q->n);
	for (size_t i = 0; i < q->n; i++)
		*q->f[i] = tmp[i];
	free(tmp);
}

static bool site_fill(struct prof_ssite *o, const struct prof_siterec *sr,
                      struct symq *q)
{
	prof_site_counts(sr, &o->s_c);
	if (!symq_add(q, &o->s_where, sr->sr_pc))
		return false;
	o->s_stacks = calloc(PROF_SITE_STACKS, sizeof *o->s_stacks);
	o->s_blk = calloc(PROF_BLOCKERS, sizeof *o->s_blk);
	if (!o->s_stacks || !o->s_blk)
		return false;
	for (int i = 0; i < PROF_SITE_STACKS; i++) {
		const struct prof_stack *st = __atomic_load_n(&sr->sr_stack[i],
		                                              __ATOMIC_ACQUIRE);
		if (!st)
			break;
		struct prof_sstack *k = &o->s_stacks[o->s_nstacks++];
		k->k_samples = __atomic_load_n(&sr->sr_stack_n[i], __ATOMIC_RELAXED);
		k->k_n = st->st_n > PROF_FRAMES_MAX ? PROF_FRAMES_MAX : st->st_n;
		k->k_frames = calloc(k->k_n ? k->k_n : 1, sizeof *k->k_frames);
		if (!k->k_frames)
			return false;
		for (size_t f = 0; f < k->k_n; f++)
			if (!symq_add(q, &k->k_frames[f], st->st_pc[f]))
				return false;
	}
	o->s_stacks_other = __atomic_load_n(&sr->sr_stack_other, __ATOMIC_RELAXED);
	for (int i = 0; i < PROF_BLOCKERS; i++) {
		const struct prof_siterec *bs = __atomic_load_n(&sr->sr_blk_site[i],
		                                                __ATOMIC_RELAXED);
		if (!bs)
			break;
		struct prof_sblocker *b = &o->s_blk[o->s_nblk++];
		b->b_n = __atomic_load_n(&sr->sr_blk_n[i], __ATOMIC_RELAXED);
		b->b_tid = __atomic_load_n(&sr->sr_blk_tid[i], __ATOMIC_RELAXED);
		if (!symq_add(q, &b->b_site, bs->sr_pc))
			return false;
	}
	o->s_blk_other = __atomic_load_n(&sr->sr_blk_other, __ATOMIC_RELAXED);
	return true;
}

static bool site_used(const struct prof_siterec *sr, const struct prof_counts *c)
{
	return c->c_acq || c->c_contended || c->c_timeouts || c->c_try_failed ||
	       __atomic_load_n(&sr->sr_stack[0], __ATOMIC_RELAXED);
}

/* The exported data symbol a lock lives in, if any ("stats_lock",
 * "table+64"): dladdr sees only dynamic symbols, so static and heap
 * locks stay unnamed. */
static char *lock_symbol(uint64_t addr)
{
	Dl_info di;
	const ElfW(Sym) *sym = NULL;
	if (!addr || !dladdr1((void *)(uintptr_t)addr, &di, (void **)&sym,
	                      RTLD_DL_SYMENT) || !di.dli_sname || !sym)
		return NULL;
	uint64_t base = (uint64_t)(uintptr_t)di.dli_saddr;
	if (addr < base || addr >= base + sym->st_size)
		return NULL;
	char b[512];
	if (addr == base)
		snprintf(b, sizeof b, "%s", di.dli_sname);
	else
		snprintf(b, sizeof b, "%s+%llu", di.dli_sname,
		         (unsigned long long)(addr - base));
	return strdup(b);
}

/* A call site inside the runtime's own objects (libschedctl, the
 * preload, libunwind, liburcu): locks the program did not take itself
 * (libunwind's caches, say), left out of the report and only counted. */
static bool runtime_site(uintptr_t pc)
{
	static const char *const own[] = { "libschedctl", "libunwind", "liburcu" };
	Dl_info di;
	struct link_map *lm = NULL;
	if (!pc || !dladdr1((void *)pc, &di, (void **)&lm, RTLD_DL_LINKMAP) ||
	    !lm || !lm->l_name || !lm->l_name[0])
		return false;
	const char *base = strrchr(lm->l_name, '/');
	base = base ? base + 1 : lm->l_name;
	for (size_t i = 0; i < sizeof own / sizeof *own; i++)
		if (!strncmp(base, own[i], strlen(own[i])))
			return true;
	return false;
}

static bool lock_fill(struct prof_snap *s, struct prof_slock *l,
                      struct prof_lockrec *lr, struct symq *q)
{
	size_t n = 1;
	for (struct prof_siterec *sr = __atomic_load_n(&lr->lr_sites, __ATOMIC_ACQUIRE);
	     sr; sr = sr->sr_next)
		n++;
	l->l_addr = (uint64_t)(uintptr_t)lr->lr_lock;
	l->l_overflow = lr == prof_g.g_other_lock;
	l->l_name = l->l_overflow ? NULL : lock_symbol(l->l_addr);
	l->l_sites = calloc(n, sizeof *l->l_sites);
	if (!l->l_sites)
		return false;
	struct prof_siterec *sr = __atomic_load_n(&lr->lr_sites, __ATOMIC_ACQUIRE);
	for (size_t i = 0; i < n; i++) {
		const struct prof_siterec *cur = sr ? sr : lr->lr_other;
		if (sr)
			sr = sr->sr_next;
		bool ovf = cur == lr->lr_other;
		struct prof_counts c;
		prof_site_counts(cur, &c);
		if (!ovf && runtime_site(cur->sr_pc)) {
			s->runtime_acq += c.c_acq;
			continue;
		}
		if (!site_used(cur, &c))
			continue;            /* e.g. an unused overflow site */
		struct prof_ssite *o = &l->l_sites[l->l_nsites++];
		if (!site_fill(o, cur, q))
			return false;
		o->s_overflow = ovf;
		prof_counts_add(&l->l_c, &o->s_c);
	}
	return true;
}

struct prof_snap *prof_snap_take(bool final)
{
	struct prof_global *g = &prof_g;
	struct prof_snap *s = calloc(1, sizeof *s);
	struct symq q = { 0 };
	if (!s)
		return NULL;
	s->version = PROF_SCHEMA_VERSION;
	s->pid = g->g_pid;
	s->final = final;
	char comm[17] = { 0 };
	FILE *f = fopen("/proc/self/comm", "re");
	if (f) {
		if (fgets(comm, sizeof comm, f))
			comm[strcspn(comm, "\n")] = 0;
		fclose(f);
	}
	snprintf(s->comm, sizeof s->comm, "%s", comm);
	snprintf(s->policy, sizeof s->policy, "%s",
	         g->g_cfg.pc_policy ? g->g_cfg.pc_policy : "owner");
	s->spin_measured = strcmp(s->policy, "glibc") != 0;
	uint64_t now = sc_now_ns();
	s->duration_ns = now > g->g_t0_ns ? now - g->g_t0_ns : 0;
	s->lock_overflow = __atomic_load_n(&g->g_lock_overflow, __ATOMIC_RELAXED);
	s->site_overflow = __atomic_load_n(&g->g_site_overflow, __ATOMIC_RELAXED);
	s->stack_overflow = __atomic_load_n(&g->g_stack_overflow, __ATOMIC_RELAXED);
	s->thread_overflow = __atomic_load_n(&g->g_thr_overflow, __ATOMIC_RELAXED);
	s->untracked = __atomic_load_n(&g->g_untracked, __ATOMIC_RELAXED);
	s->max_locks = g->g_cfg.pc_max_locks;
	s->max_sites = g->g_cfg.pc_max_sites;
	unsigned nl = __atomic_load_n(&g->g_nlocks, __ATOMIC_RELAXED);
	s->locks = calloc((size_t)nl + 1, sizeof *s->locks);
	if (!s->locks)
		goto fail;
	for (unsigned i = 0; i <= nl; i++) {
		struct prof_lockrec *lr = i < nl ? &g->g_lockpool[i] : g->g_other_lock;
		if (i < nl && !__atomic_load_n(&lr->lr_live, __ATOMIC_ACQUIRE))
			continue;
		struct prof_slock *l = &s->locks[s->nlocks];
		if (!lock_fill(s, l, lr, &q))
			goto fail;
		if (l->l_nsites)
			s->nlocks++;
		else
			free(l->l_sites), memset(l, 0, sizeof *l);
	}
	symq_run(&q);
	free(q.f);
	return s;
fail:
	free(q.f);
	prof_snap_free(s);
	return NULL;
}
