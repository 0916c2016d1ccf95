/*
 * prof_int.h - internals of the lock profiler (src/prof).
 *
 * Modules:
 *   records.c clock, pools, lock and site records (cds_lfht), stacks
 *   core.c    per-thread counters and the hooks
 *   stack.c   backtraces (libunwind) and symbolisation (report time)
 *   snap.c    the snapshot: records merged into plain arrays, sorting
 *   out.c     a small buffered writer on a file descriptor
 *   text.c    the text report            json_out.c  JSON writer
 *   json_in.c the JSON parser (untrusted) trace.c     Chrome trace
 *   svg.c     the SVG chart               agent.c    set-up, agent
 *                                                    thread, exit dump
 *
 * Records (core.c) live in pools mmap'ed once (MAP_NORESERVE: pages are
 * touched only as records are used) and are never freed while the
 * process lives, so any pointer to one stays valid without RCU
 * reclamation.  Locks and sites are found through two cds_lfht tables
 * (liburcu-bp, fixed size, no auto-resize: adding never allocates).
 *
 * Counters: the fast path counts in the calling thread's own table
 * (struct prof_thread, single writer, relaxed stores); the slow path adds
 * to the shared site record with relaxed atomic adds.  A report adds the
 * per-thread counters of live threads to the shared ones; a thread
 * entry that is evicted, or whose thread exits, is first added to the
 * shared record (atomic adds) and then zeroed.  Exact once threads are
 * quiescent; a live report may miss acquisitions in flight.
 *
 * Lock order: prof_ilock (thread pool) is a leaf.
 */
#ifndef SC_PROF_INT_H
#define SC_PROF_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <urcu-bp.h>
#include <urcu/rculfhash.h>

#include "prof/prof.h"

#define PROF_HIST_N        40     /* log2(ns) buckets; last is open */
#define PROF_FRAMES_MAX    PROF_ACQ_FRAMES
#define PROF_SITE_STACKS   4      /* distinct stacks kept per site */
#define PROF_BLOCKERS      4      /* owner sites kept per waiting site */
#define PROF_TENTRIES      64     /* per-thread site cache (power of 2) */
#define PROF_HELD_MAX      32     /* nested holds tracked per thread */
#define PROF_SCHEMA_VERSION 1

/* Counters shared by locks and sites.  In records: relaxed atomics. */
struct prof_counts {
	uint64_t c_acq;           /* acquisitions */
	uint64_t c_contended;     /* slow-path acquisitions */
	uint64_t c_outcome[PROF_NOUTCOMES];
	uint64_t c_spin_won_ns, c_spin_lost_ns, c_park_ns, c_wait_ns;
	uint64_t c_wait_max_ns;
	uint64_t c_hold_ns, c_hold_max_ns;  /* over timed holds */
	uint64_t c_hold_n;        /* timed holds (all, or 1 in N: see hold_sample) */
	uint64_t c_hold_hist[PROF_HIST_N];
	uint64_t c_ostate[PROF_OS_N];   /* arrivals by holder state */
	uint64_t c_park_reason[PROF_PARK_N];
	uint64_t c_lhp;           /* holds during which the holder was preempted */
	uint64_t c_timeouts, c_try_failed;
	uint64_t c_can_spin;      /* contended acquisitions by a spinning lock */
};

/* One backtrace, pool-allocated, immutable once published. */
struct prof_stack {
	uint64_t st_hash;
	uint32_t st_n;
	uint32_t st_pad;
	uintptr_t st_pc[PROF_FRAMES_MAX];
};

struct prof_lockrec;

/* One (lock, call site) pair. */
struct prof_siterec {
	const void *sr_lock;          /* key part 1 (immutable) */
	uintptr_t   sr_pc;            /* key part 2 (immutable) */
	struct prof_lockrec *sr_lr;   /* its lock (immutable) */
	struct prof_siterec *sr_next; /* lock's site list (release/acquire) */
	struct prof_counts sr_c;      /* shared counters (relaxed atomics) */
	/* stacks: claimed by CAS of st pointer (release), counted relaxed */
	struct prof_stack *sr_stack[PROF_SITE_STACKS];
	uint64_t sr_stack_n[PROF_SITE_STACKS];
	uint64_t sr_stack_other;
	/* blockers: owner site claimed by CAS (relaxed), counts relaxed */
	const struct prof_siterec *sr_blk_site[PROF_BLOCKERS];
	uint64_t sr_blk_n[PROF_BLOCKERS];
	int32_t  sr_blk_tid[PROF_BLOCKERS];
	uint64_t sr_blk_other;
	struct cds_lfht_node sr_node; /* in prof_g.g_sites */
};

struct prof_lockrec {
	const void *lr_lock;              /* key (immutable) */
	struct prof_siterec *lr_sites;    /* list head (release/acquire) */
	struct prof_siterec *lr_other;    /* acquisitions over the site cap */
	uint32_t lr_live;                 /* 1 once in g_locks (release) */
	uint32_t lr_index;
	struct cds_lfht_node lr_node;     /* in prof_g.g_locks */
};

/* Per-thread counters for one site (single writer: its thread). */
struct prof_tentry {
	struct prof_siterec *te_site;     /* NULL: empty.  Relaxed: written by
	                                     the owner, read by reports, which
	                                     tolerate a torn view of a live
	                                     thread's counters */
	const void *te_lock;              /* copies of the site's key */
	uintptr_t te_pc;
	uint64_t te_acq;
	uint64_t te_hold_ns, te_hold_max_ns, te_hold_n;
	uint32_t te_hist[PROF_HIST_N];
};

struct prof_held {
	const void *h_lock;               /* relaxed store by the owner; a waiter
	                                     reads it (relaxed) after pt_nheld */
	struct prof_tentry *h_te;         /* entry counting this hold */
	struct prof_siterec *h_site;      /* read by waiters (relaxed) */
	uint64_t h_t0;                    /* ticks at acquisition */
	uint32_t h_lhp0;                  /* holder's ss_lhp at acquisition */
	uint64_t h_head0;                 /* its perf ring's data_head then */
	uint32_t h_flags;                 /* PROF_HELD_* */
};
#define PROF_HELD_TRACE 1u                /* trace this hold */
#define PROF_HELD_TIMED 2u                /* time this hold (contended) */

struct prof_tchunk;

struct prof_thread {
	int32_t pt_tid;                   /* 0: free (relaxed) */
	uint32_t pt_nheld;                /* release store by the owner after the
	                                     entry's h_lock/h_site; waiters load
	                                     it with acquire (owner_site) */
	struct prof_thread *pt_next_free;
	struct prof_held pt_held[PROF_HELD_MAX];
	uint64_t pt_untracked;            /* holds beyond PROF_HELD_MAX */
	uint64_t pt_contended_seen;       /* for stack sampling */
	uint32_t pt_hold_left;            /* untimed holds before the next */
	struct prof_tchunk *pt_chunk;     /* trace events (see trace.c) */
	struct sc_slot *pt_slot;          /* its schedctl slot or NULL */
	const uint64_t *pt_head;          /* its perf ring's data_head, or
	                                     NULL (no kernel switch records) */
	char pt_comm[16];
	int32_t pt_last_tid;              /* kept after exit: trace names */
	struct prof_tentry pt_t[PROF_TENTRIES];
};

/* Global state (core.c).  Fields set at init, then read-only, unless
 * marked atomic. */
struct prof_global {
	struct prof_config g_cfg;
	struct cds_lfht *g_locks, *g_sites;
	struct prof_lockrec *g_lockpool;  unsigned g_nlocks;  /* atomic */
	struct prof_siterec *g_sitepool;  unsigned g_nsites;  /* atomic */
	struct prof_stack *g_stackpool;   unsigned g_nstacks; /* atomic */
	struct prof_thread *g_thrpool;    unsigned g_nthr;    /* atomic */
	unsigned g_maxthr;
	struct prof_thread **g_bytid;     /* tid -> thread (relaxed) */
	unsigned g_maxtid;
	unsigned g_sitecap;               /* g_sitepool entries */
	struct prof_lockrec *g_other_lock;/* acquisitions over the lock cap */
	uint64_t g_lock_overflow, g_site_overflow, g_stack_overflow;
	uint64_t g_thr_overflow, g_untracked;       /* atomic */
	uint64_t g_t0_tick, g_t0_ns;      /* clock origin (ticks, MONOTONIC) */
	uint64_t g_mult;                  /* ns = ticks * g_mult >> 32 */
	bool     g_tsc;                   /* ticks are the TSC */
	bool     g_trace;                 /* trace events recorded (release at
	                                     init, relaxed reads: a late reader
	                                     only misses events) */
	unsigned g_bt_every;              /* backtrace 1 in N contended */
	unsigned g_hold_every;            /* time 1 in N uncontended holds */
	pid_t    g_pid;
};
SC_HIDDEN extern struct prof_global prof_g;

static inline void prof_add(uint64_t *p, uint64_t v)
{
	if (v)
		__atomic_add_fetch(p, v, __ATOMIC_RELAXED);
}

static inline void prof_max(uint64_t *p, uint64_t v)
{
	uint64_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);
	while (cur < v && !__atomic_compare_exchange_n(p, &cur, v, true,
	                                                __ATOMIC_RELAXED,
	                                                __ATOMIC_RELAXED))
		;
}

static inline unsigned long prof_hash2(const void *a, uintptr_t b)
{
	uint64_t x = (uint64_t)(uintptr_t)a * 0x9e3779b97f4a7c15ull;
	x ^= (uint64_t)b * 0xc2b2ae3d27d4eb4full;
	x ^= x >> 29;
	return (unsigned long)(x * 0x94d049bb133111ebull);
}

/* ---- records.c ---- */
SC_HIDDEN uint64_t prof_mono_ns(void);     /* CLOCK_MONOTONIC */
SC_HIDDEN int prof_core_init(const struct prof_config *cfg);
/* The site record of (lock, pc): found, added, or an overflow record. */
SC_HIDDEN struct prof_siterec *prof_site_get(const void *lock, uintptr_t pc);
/* Count one sample of stack pc[0..n) in site sr. */
SC_HIDDEN void prof_site_add_stack(struct prof_siterec *sr, const uintptr_t *pc,
                                   int n);

/* ---- core.c ---- */
SC_HIDDEN int prof_threads_init(void);
/* Add a thread entry's counters to its site record, then zero them. */
SC_HIDDEN void prof_entry_flush(struct prof_tentry *te);
SC_HIDDEN void prof_core_after_fork_child(void);
SC_HIDDEN struct prof_thread *prof_self(void);
SC_HIDDEN void prof_thread_guard(bool on); /* hooks off for this thread */
SC_HIDDEN uint64_t prof_tick(void);
SC_HIDDEN uint64_t prof_tick_to_ns(uint64_t ticks);   /* since g_t0 */
SC_HIDDEN uint64_t prof_ticks_ns(uint64_t dticks);    /* a duration */
SC_HIDDEN unsigned prof_hist_bucket(uint64_t ns);
/* Sum of a site's counters: shared plus every live thread's entry. */
SC_HIDDEN void prof_site_counts(const struct prof_siterec *sr,
                                struct prof_counts *out);

/* ---- stack.c ---- */
SC_HIDDEN void prof_stack_init(void);
/* => fills pc[] with the frames from the program's call site `from`
 *    (0: unknown) outwards; returns their count. */
SC_HIDDEN int prof_backtrace(uintptr_t from, uintptr_t *pc, int max);
SC_HIDDEN uint64_t prof_stack_hash(const uintptr_t *pc, int n);

/* A symbolised frame. */
struct prof_frame {
	uint64_t f_pc;
	char *f_func;       /* NULL unknown */
	uint64_t f_off;     /* PROF_OFF_UNKNOWN: not known */
	char *f_file;       /* NULL unknown */
	int f_line;
	char *f_obj;        /* NULL unknown */
};
#define PROF_OFF_UNKNOWN UINT64_MAX
/* Symbolise n frames (report time: allocates; may run addr2line). */
SC_HIDDEN void prof_symbolise(struct prof_frame *f, size_t n);

#endif /* SC_PROF_INT_H */
