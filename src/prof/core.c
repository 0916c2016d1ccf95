/*
 * core.c - the hooks the locks call, and the per-thread counters behind
 * them (records.c holds the shared records).
 *
 * Invariants:
 *   - A thread's prof_thread is written only by that thread, except
 *     pt_held/pt_nheld, which waiters read (relaxed; pt_nheld release/
 *     acquire) to find the holder's site, and the counters a report reads
 *     (relaxed).  A prof_thread goes back to the free list when its
 *     thread exits (pthread key destructor), after its counters were
 *     added to the shared records.
 *   - A thread gets at most one prof_thread per life: once its destructor
 *     gave it back (tls_gone), locks the thread still takes (in later
 *     key destructors, e.g. libunwind's cache, which re-arms its key
 *     until the last destructor round and then takes a mutex) count in
 *     the shared records only.  A record taken there could never be
 *     given back: no destructor round would run for it.  A record a
 *     thread took in the last round anyway (its first lock was there)
 *     is taken back by thread_reclaim once the thread is gone.
 *   - tls_busy > 0: the thread is inside the profiler (or is its agent):
 *     every hook returns at once, so locks taken by libunwind, liburcu or
 *     the report code on this thread are not profiled and cannot recurse.
 *
 * Lock state: nothing here blocks except prof_thr_lock (thread pool,
 * leaf, futex based); nothing calls malloc or stdio.
 */
#include <errno.h>
#include <linux/perf_event.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "prof/prof_int.h"
#include "prof/trace.h"

bool prof_on_flag;
__thread const void *prof_caller_tls __attribute__((tls_model("initial-exec")));

static __thread struct prof_thread *tls_pt __attribute__((tls_model("initial-exec")));
static __thread unsigned tls_busy __attribute__((tls_model("initial-exec")));
/* Set when this thread's record went back at exit (never cleared). */
static __thread bool tls_gone __attribute__((tls_model("initial-exec")));
static struct sc_ilock prof_thr_lock = SC_ILOCK_INIT;
static struct prof_thread *prof_free_thr;   /* under prof_thr_lock */
static pthread_key_t prof_key;

#define PROF_ACQ_MAGIC 0x50524f46u


/* ---- threads ---- */

void prof_entry_flush(struct prof_tentry *te)
{
	struct prof_siterec *sr = te->te_site;
	if (!sr)
		return;
	struct prof_counts *c = &sr->sr_c;
	prof_add(&c->c_acq, te->te_acq);
	prof_add(&c->c_hold_ns, te->te_hold_ns);
	prof_add(&c->c_hold_n, te->te_hold_n);
	prof_max(&c->c_hold_max_ns, te->te_hold_max_ns);
	for (int i = 0; i < PROF_HIST_N; i++)
		prof_add(&c->c_hold_hist[i], te->te_hist[i]);
	__atomic_store_n(&te->te_acq, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&te->te_hold_ns, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&te->te_hold_n, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&te->te_hold_max_ns, 0, __ATOMIC_RELAXED);
	for (int i = 0; i < PROF_HIST_N; i++)
		__atomic_store_n(&te->te_hist[i], 0, __ATOMIC_RELAXED);
}

/* Add pt's counters to the shared records and clear it for another
 * thread; tid was its thread's.  => by its own thread, or by
 * thread_reclaim once that thread is gone. */
static void record_clear(struct prof_thread *pt, int32_t tid)
{
	for (int i = 0; i < PROF_TENTRIES; i++) {
		prof_entry_flush(&pt->pt_t[i]);
		__atomic_store_n(&pt->pt_t[i].te_site, NULL, __ATOMIC_RELAXED);
	}
	prof_add(&prof_g.g_untracked, pt->pt_untracked);
	pt->pt_untracked = 0;
	__atomic_store_n(&pt->pt_nheld, 0, __ATOMIC_RELAXED);
	struct prof_thread *me = pt;
	if (tid > 0 && (unsigned)tid < prof_g.g_maxtid)   /* unless reused */
		__atomic_compare_exchange_n(&prof_g.g_bytid[tid], &me, NULL, false,
		                            __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	__atomic_store_n(&pt->pt_tid, 0, __ATOMIC_RELAXED);
	pt->pt_chunk = NULL;
}

static void thread_release(void *arg)
{
	struct prof_thread *pt = arg;
	if (!pt)
		return;
	tls_busy++;
	uint64_t now = prof_tick();
	prof_trace_event(pt, PROF_EV_STATE, now, now, NULL, SC_FREE);
	record_clear(pt, pt->pt_tid);
	sc_ilock_acquire(&prof_thr_lock);
	pt->pt_next_free = prof_free_thr;
	prof_free_thr = pt;
	sc_ilock_release(&prof_thr_lock);
	tls_pt = NULL;
	tls_busy--;
}

static void thread_exit_destructor(void *arg)
{
	tls_gone = true;
	thread_release(arg);
}

/*
 * The pool is spent: take back the records of threads that are gone
 * without giving theirs back (a first lock in the last destructor
 * round, after the profiler's destructor could run, or a raw exit) onto
 * the free list.  The kernel saying the tid no longer exists (tgkill
 * ESRCH) means that thread can write nothing more; a tid reused by a
 * live thread keeps its record until that one is gone too.  After a
 * scan that found nothing, none for a millisecond (more live threads
 * than records).  => prof_thr_lock held; the number taken back.
 */
static unsigned thread_reclaim(void)
{
	static uint64_t fruitless;     /* under prof_thr_lock */
	uint64_t now = prof_mono_ns();
	if (now - fruitless < 1000000)
		return 0;
	int saved = errno;
	pid_t pid = getpid();
	unsigned n = __atomic_load_n(&prof_g.g_nthr, __ATOMIC_RELAXED), got = 0;
	for (unsigned i = 0; i < n; i++) {
		struct prof_thread *pt = &prof_g.g_thrpool[i];
		int32_t tid = __atomic_load_n(&pt->pt_tid, __ATOMIC_RELAXED);
		if (tid <= 0 || syscall(SYS_tgkill, pid, tid, 0) == 0 ||
		    errno != ESRCH)
			continue;
		record_clear(pt, tid);
		pt->pt_next_free = prof_free_thr;
		prof_free_thr = pt;
		got++;
	}
	errno = saved;
	if (!got)
		fruitless = now;
	return got;
}

int prof_threads_init(void)
{
	return pthread_key_create(&prof_key, thread_exit_destructor) ? -EAGAIN : 0;
}

struct prof_thread *prof_self(void)
{
	struct prof_thread *pt = tls_pt;
	if (__builtin_expect(pt != NULL, 1))
		return pt;
	if (tls_gone)
		return NULL;     /* exiting: shared records only, see above */
	sc_ilock_acquire(&prof_thr_lock);
	if (!prof_free_thr) {
		unsigned idx = __atomic_load_n(&prof_g.g_nthr, __ATOMIC_RELAXED);
		if (idx < prof_g.g_maxthr) {
			prof_free_thr = &prof_g.g_thrpool[idx];
			prof_free_thr->pt_next_free = NULL;
			__atomic_store_n(&prof_g.g_nthr, idx + 1, __ATOMIC_RELAXED);
		} else {
			(void)thread_reclaim();
		}
	}
	pt = prof_free_thr;
	if (pt)
		prof_free_thr = pt->pt_next_free;
	sc_ilock_release(&prof_thr_lock);
	if (!pt) {
		prof_add(&prof_g.g_thr_overflow, 1);
		return NULL;
	}
	int32_t tid = (int32_t)gettid();
	pt->pt_next_free = NULL;
	pt->pt_slot = sc_thread_slot();
	pt->pt_head = NULL;
	if (pt->pt_slot && __atomic_load_n(&pt->pt_slot->ss_source, __ATOMIC_RELAXED) ==
	                   SCHEDCTL_SOURCE_PERF)
		pt->pt_head = (const uint64_t *)&((const struct perf_event_mmap_page *)
		              sc_slot_ring(pt->pt_slot))->data_head;
	(void)prctl(PR_GET_NAME, pt->pt_comm, 0, 0, 0);
	pt->pt_last_tid = tid;
	__atomic_store_n(&pt->pt_tid, tid, __ATOMIC_RELAXED);
	if ((unsigned)tid < prof_g.g_maxtid)
		__atomic_store_n(&prof_g.g_bytid[tid], pt, __ATOMIC_RELAXED);
	tls_pt = pt;
	(void)pthread_setspecific(prof_key, pt);
	/* Running now, by definition: every thread that takes a lock has a
	 * state on the timeline even if the sampler never caught it. */
	uint64_t now = prof_tick();
	prof_trace_event(pt, PROF_EV_STATE, now, now, NULL, SC_ONPROC);
	return pt;
}

void prof_thread_guard(bool on)
{
	if (on)
		tls_busy++;
	else
		tls_busy--;
}

/* The calling thread's entry for (lock, pc), made if needed; NULL if
 * the thread has no prof_thread (pool spent). */
static struct prof_tentry *entry_get(struct prof_thread *pt, const void *lock,
                                     uintptr_t pc)
{
	unsigned h = (unsigned)(prof_hash2(lock, pc) >> 40) & (PROF_TENTRIES - 1);
	struct prof_tentry *empty = NULL;
	for (unsigned i = 0; i < 4; i++) {
		struct prof_tentry *te = &pt->pt_t[(h + i) & (PROF_TENTRIES - 1)];
		if (te->te_lock == lock && te->te_pc == pc && te->te_site)
			return te;
		if (!te->te_site && !empty)
			empty = te;
	}
	struct prof_siterec *sr = prof_site_get(lock, pc);
	struct prof_tentry *te = empty;
	if (!te) {
		te = &pt->pt_t[h];
		prof_entry_flush(te);
	}
	te->te_lock = lock;
	te->te_pc = pc;
	__atomic_store_n(&te->te_site, sr, __ATOMIC_RELAXED);
	return te;
}

static inline uintptr_t caller_pc(const void *pc)
{
	return (uintptr_t)(pc ? pc : prof_caller_tls);
}

static inline uint32_t my_lhp(const struct prof_thread *pt)
{
	return pt->pt_slot ? __atomic_load_n(&pt->pt_slot->ss_lhp,
	                                     __ATOMIC_RELAXED) : 0;
}

/* Bumped by the kernel at each of our context switches (the ring holds
 * only switch records); 0 without a ring. */
static inline uint64_t my_switches(const struct prof_thread *pt)
{
	return pt->pt_head ? __atomic_load_n(pt->pt_head, __ATOMIC_RELAXED) : 0;
}

/* Count one acquisition and start its hold.  => tls_busy held. */
static struct prof_tentry *count_acquired(struct prof_thread *pt,
                                          const void *lock, uintptr_t pc,
                                          uint32_t hflags)
{
	struct prof_tentry *te = entry_get(pt, lock, pc);
	__atomic_store_n(&te->te_acq, te->te_acq + 1, __ATOMIC_RELAXED);
	uint32_t n = pt->pt_nheld;
	if (n >= PROF_HELD_MAX) {
		pt->pt_untracked++;
		return te;
	}
	struct prof_held *h = &pt->pt_held[n];
	h->h_te = te;
	/* Timestamps are most of the fast path's cost: time every
	 * contended hold, and 1 in g_hold_every of the others. */
	if ((hflags & PROF_HELD_TIMED) || pt->pt_hold_left-- == 0) {
		pt->pt_hold_left = prof_g.g_hold_every - 1;
		h->h_t0 = prof_tick();
	} else {
		h->h_t0 = 0;
	}
	h->h_lhp0 = my_lhp(pt);
	h->h_head0 = my_switches(pt);
	h->h_flags = hflags;
	__atomic_store_n(&h->h_site, te->te_site, __ATOMIC_RELAXED);
	__atomic_store_n(&h->h_lock, lock, __ATOMIC_RELAXED);
	__atomic_store_n(&pt->pt_nheld, n + 1, __ATOMIC_RELEASE);
	return te;
}

void prof_acquired_slow(const void *lock, const void *pc)
{
	if (tls_busy)
		return;
	tls_busy++;
	struct prof_thread *pt = prof_self();
	if (pt)
		count_acquired(pt, lock, caller_pc(pc), 0);
	else
		prof_add(&prof_site_get(lock, caller_pc(pc))->sr_c.c_acq, 1);
	tls_busy--;
}

void prof_released_slow(const void *lock)
{
	if (tls_busy)
		return;
	struct prof_thread *pt = tls_pt;
	if (!pt)
		return;
	tls_busy++;
	uint64_t now = 0;
	uint32_t n = pt->pt_nheld;
	for (uint32_t i = n; i-- > 0;) {
		struct prof_held *h = &pt->pt_held[i];
		if (h->h_lock != lock)
			continue;
		struct prof_tentry *te = h->h_te;
		if (h->h_t0) {
			uint64_t ns = prof_ticks_ns((now ? now : (now = prof_tick())) -
			                            h->h_t0);
			te->te_hold_ns += ns;
			te->te_hold_n++;
			if (ns > te->te_hold_max_ns)
				te->te_hold_max_ns = ns;
			unsigned b = prof_hist_bucket(ns);
			if (++te->te_hist[b] >= (1u << 31))
				prof_entry_flush(te);
		}
		if (my_lhp(pt) != h->h_lhp0 || my_switches(pt) != h->h_head0)
			prof_add(&te->te_site->sr_c.c_lhp, 1);
		if ((h->h_flags & PROF_HELD_TRACE) && h->h_t0)
			prof_trace_event(pt, PROF_EV_HOLD, h->h_t0, now, lock, 0);
		/* Remove entry i: later (inner) holds move down one. */
		__atomic_store_n(&h->h_lock, NULL, __ATOMIC_RELAXED);
		for (uint32_t j = i; j + 1 < n; j++)
			pt->pt_held[j] = pt->pt_held[j + 1];
		__atomic_store_n(&pt->pt_nheld, n - 1, __ATOMIC_RELEASE);
		break;
	}
	tls_busy--;
}

static int ostate_of(int st)
{
	switch (st) {
	case SC_ONPROC:  return PROF_OS_ONPROC;
	case SC_RUN:     return PROF_OS_RUN;
	case SC_WAIT:    return PROF_OS_RUN;
	case SC_SLEEP:   return PROF_OS_SLEEP;
	case SC_STOPPED: return PROF_OS_STOPPED;
	default:         return PROF_OS_UNKNOWN;
	}
}

/* The holder's current site for lock, read from its held stack. */
static const void *owner_site(const struct prof_thread *o, const void *lock)
{
	uint32_t n = __atomic_load_n(&o->pt_nheld, __ATOMIC_ACQUIRE);
	if (n > PROF_HELD_MAX)
		n = PROF_HELD_MAX;
	for (uint32_t i = n; i-- > 0;)
		if (__atomic_load_n(&o->pt_held[i].h_lock, __ATOMIC_RELAXED) == lock)
			return __atomic_load_n(&o->pt_held[i].h_site, __ATOMIC_RELAXED);
	return NULL;
}

void prof_acq_begin_slow(struct prof_acq *a, uint32_t owner_slot,
                         int32_t owner_tid, const void *lock)
{
	memset(a, 0, sizeof *a);
	a->pa_pad = PROF_ACQ_MAGIC;
	a->pa_caller = prof_caller_tls;
	a->pa_t0 = prof_tick();
	struct sc_slot *s = owner_slot ? sc_slot_at(owner_slot) : NULL;
	if (s && !owner_tid)
		owner_tid = __atomic_load_n(&s->ss_tid, __ATOMIC_RELAXED);
	a->pa_owner_tid = owner_tid;
	const struct prof_thread *o = NULL;
	if (owner_tid > 0 && (unsigned)owner_tid < prof_g.g_maxtid)
		o = __atomic_load_n(&prof_g.g_bytid[owner_tid], __ATOMIC_RELAXED);
	if (!s && o)
		s = o->pt_slot;
	if (s) {
		int st = sc_slot_state(s, NULL);
		a->pa_owner_state = (uint8_t)(st < 0 ? PROF_OS_UNKNOWN : ostate_of(st));
	}
	if (o)
		a->pa_owner_site = owner_site(o, lock);
	/* Backtrace now, before the lock is ours, when the wrapper noted
	 * the call site (the preload always does). */
	struct prof_thread *pt = tls_pt;
	const void *from = prof_caller_tls;
	if (!tls_busy && pt && from &&
	    (pt->pt_contended_seen++ % prof_g.g_bt_every) == 0) {
		tls_busy++;
		int n = prof_backtrace((uintptr_t)from, a->pa_stack, PROF_ACQ_FRAMES);
		a->pa_nstack = n > 0 ? (uint32_t)n : 0;
		tls_busy--;
	}
}

static void count_blocker(struct prof_siterec *sr, const struct prof_acq *a)
{
	const struct prof_siterec *os = a->pa_owner_site;
	if (!os) {
		prof_add(&sr->sr_blk_other, 1);
		return;
	}
	for (int i = 0; i < PROF_BLOCKERS; i++) {
		const struct prof_siterec *cur =
			__atomic_load_n(&sr->sr_blk_site[i], __ATOMIC_RELAXED);
		if (!cur && __atomic_compare_exchange_n(&sr->sr_blk_site[i], &cur,
		                                        os, false, __ATOMIC_RELAXED,
		                                        __ATOMIC_RELAXED))
			cur = os;
		if (cur == os) {
			prof_add(&sr->sr_blk_n[i], 1);
			__atomic_store_n(&sr->sr_blk_tid[i], a->pa_owner_tid,
			                 __ATOMIC_RELAXED);
			return;
		}
	}
	prof_add(&sr->sr_blk_other, 1);
}

static int outcome_of(const struct prof_acq *a)
{
	if (a->pa_pad == PROF_ACQ_MAGIC + 1)
		return PROF_BLOCKED;
	if (a->pa_nparks == 0)
		return PROF_SPIN_WON;
	return a->pa_spun ? PROF_SPUN_PARKED : PROF_PARKED;
}

void prof_contended_slow(const void *lock, struct prof_acq *a, const void *pc)
{
	if (tls_busy || (a->pa_pad != PROF_ACQ_MAGIC &&
	                 a->pa_pad != PROF_ACQ_MAGIC + 1))
		return;
	tls_busy++;
	uint64_t now = prof_tick();
	uint64_t wait = prof_ticks_ns(now - a->pa_t0);
	struct prof_thread *pt = prof_self();
	uintptr_t cpc = caller_pc(pc ? pc : a->pa_caller);
	struct prof_siterec *sr;
	if (pt) {
		sr = count_acquired(pt, lock, cpc, PROF_HELD_TIMED |
		                    (prof_g.g_trace ? PROF_HELD_TRACE : 0))->te_site;
	} else {
		sr = prof_site_get(lock, cpc);
		prof_add(&sr->sr_c.c_acq, 1);
	}
	struct prof_counts *c = &sr->sr_c;
	int oc = outcome_of(a);
	prof_add(&c->c_contended, 1);
	prof_add(&c->c_outcome[oc], 1);
	prof_add(&c->c_spin_won_ns, a->pa_spin_won_ns);
	prof_add(&c->c_spin_lost_ns, a->pa_spin_lost_ns);
	prof_add(&c->c_park_ns, a->pa_park_ns);
	prof_add(&c->c_wait_ns, wait);
	prof_max(&c->c_wait_max_ns, wait);
	prof_add(&c->c_ostate[a->pa_owner_state < PROF_OS_N ? a->pa_owner_state : 0], 1);
	if (a->pa_nparks)
		prof_add(&c->c_park_reason[a->pa_park_reason < PROF_PARK_N ?
		                      a->pa_park_reason : 0], 1);
	if (a->pa_can_spin)
		prof_add(&c->c_can_spin, 1);
	count_blocker(sr, a);
	if (a->pa_nstack && a->pa_nstack <= PROF_ACQ_FRAMES) {
		prof_site_add_stack(sr, a->pa_stack, (int)a->pa_nstack);
	} else if (pt && (pt->pt_contended_seen++ % prof_g.g_bt_every) == 0) {
		uintptr_t st[PROF_FRAMES_MAX];
		int nf = prof_backtrace(cpc, st, PROF_FRAMES_MAX);
		if (nf > 0)
			prof_site_add_stack(sr, st, nf);
	}
	if (pt)
		prof_trace_event(pt, PROF_EV_WAIT, a->pa_t0, now, lock, oc);
	tls_busy--;
}

void prof_timedout_slow(const void *lock, struct prof_acq *a, const void *pc)
{
	if (tls_busy)
		return;
	tls_busy++;
	struct prof_siterec *sr = prof_site_get(lock, caller_pc(pc ? pc : a->pa_caller));
	prof_add(&sr->sr_c.c_timeouts, 1);
	prof_add(&sr->sr_c.c_wait_ns, prof_ticks_ns(prof_tick() - a->pa_t0));
	tls_busy--;
}

void prof_try_failed_slow(const void *lock, const void *pc)
{
	if (tls_busy)
		return;
	tls_busy++;
	prof_add(&prof_site_get(lock, caller_pc(pc))->sr_c.c_try_failed, 1);
	tls_busy--;
}

/* ---- glibc pass-through ---- */

int prof_glibc_lock(pthread_mutex_t *m, const void *pc,
                    int (*lock)(pthread_mutex_t *),
                    int (*trylock)(pthread_mutex_t *))
{
	if (!prof_on())
		return lock(m);
	int r = trylock(m);
	if (r == 0) {
		prof_acquired_slow(m, pc);
		return 0;
	}
	if (r != EBUSY)
		return r;
	struct prof_acq a;
	prof_acq_begin_slow(&a, 0, m->__data.__owner, m);
	a.pa_pad = PROF_ACQ_MAGIC + 1;      /* outcome: blocked */
	r = lock(m);
	if (r == 0 || r == EOWNERDEAD)
		prof_contended_slow(m, &a, pc);
	return r;
}

int prof_glibc_unlock(pthread_mutex_t *m, int (*unlock)(pthread_mutex_t *))
{
	prof_released(m);
	return unlock(m);
}

/* In a fork child: the profile starts afresh (the parent reports its
 * own); the forking thread keeps its holds. */
void prof_core_after_fork_child(void)
{
	struct prof_global *g = &prof_g;
	struct prof_thread *self = tls_pt;
	unsigned nthr = g->g_nthr;
	prof_thr_lock = (struct sc_ilock)SC_ILOCK_INIT;
	prof_free_thr = NULL;
	for (unsigned t = 0; t < nthr; t++) {
		struct prof_thread *pt = &g->g_thrpool[t];
		if (pt->pt_tid > 0 && (unsigned)pt->pt_tid < g->g_maxtid)
			g->g_bytid[pt->pt_tid] = NULL;
		for (int i = 0; i < PROF_TENTRIES; i++) {
			prof_entry_flush(&pt->pt_t[i]);     /* zeroes the entry */
			if (pt != self)
				pt->pt_t[i].te_site = NULL;
		}
		pt->pt_chunk = NULL;
		pt->pt_untracked = 0;
		if (pt != self) {
			pt->pt_tid = 0;
			pt->pt_nheld = 0;
			pt->pt_next_free = prof_free_thr;
			prof_free_thr = pt;
		}
	}
	/* Only the records in use: the pools' other pages stay untouched. */
	unsigned ns = g->g_nsites, nl = g->g_nlocks, ms = g->g_cfg.pc_max_sites;
	for (unsigned i = 0; i < g->g_sitecap; i++) {
		if (i == ns)
			i = ms;
		if (i == ms + nl)
			i = g->g_sitecap - 1;
		struct prof_siterec *sr = &g->g_sitepool[i];
		memset(&sr->sr_c, 0, sizeof sr->sr_c);
		memset(sr->sr_stack_n, 0, sizeof sr->sr_stack_n);
		sr->sr_stack_other = 0;
		memset(sr->sr_blk_n, 0, sizeof sr->sr_blk_n);
		sr->sr_blk_other = 0;
	}
	g->g_lock_overflow = g->g_site_overflow = g->g_stack_overflow = 0;
	g->g_thr_overflow = g->g_untracked = 0;
	g->g_pid = getpid();
	if (self) {
		self->pt_tid = (int32_t)gettid();
		self->pt_slot = sc_thread_slot();
		if ((unsigned)self->pt_tid < g->g_maxtid)
			g->g_bytid[self->pt_tid] = self;
	}
	g->g_t0_tick = prof_tick();
	g->g_t0_ns = prof_mono_ns();
}
