/*
 * prof.h - the spin-versus-park lock profiler: the hook API the locks
 * call (src/prof).
 *
 * HOW A LOCK CALLS THE PROFILER
 * -----------------------------
 * Every hook is an inline function that costs one predictable branch on
 * a global flag while profiling is off.  `pc` is the program's call site,
 * the return address of the exported pthread_* wrapper.  The wrappers
 * note it and the lock passes NULL ("the call site this thread noted
 * last"); a lock that knows the pc may pass it instead.
 *
 *  preload/mutex.c, preload/cond.c: first statement of
 *      pthread_mutex_lock, _trylock, _timedlock, _clocklock and
 *      pthread_cond_wait, _timedwait, _clockwait:
 *          prof_note_caller(__builtin_return_address(0));
 *
 *  src/lock/mutex.c (#include "prof/prof.h"):
 *   lk_lock_common, fast-path CAS won (normal/adaptive, and the first
 *      lock of recursive/errorcheck; not a recursive re-lock):
 *          prof_acquired(m, NULL);
 *   lk_lock_slow, on entry:
 *          struct prof_acq pa = { 0 };
 *          if (prof_on()) {
 *              uint32_t o = lm_word & LK_OWNER_MASK;
 *              prof_acq_begin(&pa, m, o == LK_ANON_OWNER ? 0 : o, 0);
 *              pa.pa_park_reason_next = PROF_PARK_POLICY;
 *          }
 *      (the profiler reads the holder's slot: its tid, its state on
 *      arrival, and the site where it acquired the lock)
 *   lk_spin, pass &pa in:
 *      spinner cap refused:  pa->pa_park_reason_next = PROF_PARK_SPINNER_CAP
 *      at its start:         uint64_t ps = prof_on() ? sc_now_ns() : 0;
 *      it stops because the holder is not running:
 *                            reason PROF_PARK_OWNER_OFFCPU, else
 *                            PROF_PARK_SPIN_BUDGET
 *      at its end (got = took the lock):
 *          if (prof_on()) {
 *              prof_acq_spun(pa, sc_now_ns() - ps, got, PROF_SPINS);
 *              pa->pa_park_reason_next = reason;
 *          }
 *   lk_lock_slow, around each lk_park():
 *          uint64_t p0 = prof_on() ? sc_now_ns() : 0;
 *          ... lk_park(...) ...
 *          if (prof_on())
 *              prof_acq_parked(&pa, sc_now_ns() - p0, pa.pa_park_reason_next);
 *   lk_lock_slow, every return with the lock held:
 *          prof_contended(m, &pa, NULL);
 *   lk_lock_slow, return ETIMEDOUT:   prof_timedout(m, &pa, NULL);
 *   lk_mutex_trylock: success prof_acquired(m, NULL);
 *                     EBUSY   prof_try_failed(m, NULL);
 *   lk_mutex_unlock, when the word is really released (not a recursive
 *      unlock that only decrements), right AFTER the exchange that frees
 *      the word and before any futex wake:
 *          prof_released(m);
 *      (the hold then ends a few ns late, but the accounting runs outside
 *      the critical section instead of lengthening it)
 *   Condvars need nothing more: their waits release and retake the mutex
 *   through lk_mutex_unlock/lk_mutex_lock.
 *
 *  src/lock/pthread.c, pass-through (policy glibc, and the mutex kinds
 *  left to glibc): in sc_lock_mutex_lock
 *          if (prof_on())
 *              return prof_glibc_lock(m, NULL, lk_real.mutex_lock,
 *                                     lk_real.mutex_trylock);
 *      and in sc_lock_mutex_unlock, before glibc's unlock:
 *          prof_released(m);
 *      (glibc's lock cannot tell spinning from parking: its waits are
 *      "blocked", and the report leaves the spin/park columns empty)
 *
 *  The preload's constructor and destructor (preload/prof.c) start the
 *  profiler from SCHEDCTL_PROFILE* / SCHEDCTL_TRACE and write the reports
 *  at exit; nothing else is needed.
 *
  * Nothing here allocates with malloc or uses stdio: records come from
 * pools mmap'ed at prof_init(), lookups are lock-free (liburcu-bp
 * cds_lfht), counters are per thread until report time.  Hooks re-entered
 * from inside the profiler (liburcu, libunwind taking a mutex) are
 * no-ops for that nested call.
 */
#ifndef SC_PROF_H
#define SC_PROF_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "sc/sc.h"

/* Outcome of one acquisition. */
enum prof_outcome {
	PROF_UNCONTENDED = 0,  /* fast path */
	PROF_SPIN_WON,         /* contended, taken while spinning, never parked */
	PROF_SPUN_PARKED,      /* spun, then parked at least once */
	PROF_PARKED,           /* parked without spinning */
	PROF_BLOCKED,          /* glibc: waited, mechanism unknown */
	PROF_NOUTCOMES
};

/* Holder's state as a waiter found it on arrival. */
enum prof_ostate {
	PROF_OS_UNKNOWN = 0, PROF_OS_ONPROC, PROF_OS_RUN, PROF_OS_SLEEP,
	PROF_OS_STOPPED, PROF_OS_N
};

/* Why a waiter parked (the reason of its first park). */
enum prof_park_reason {
	PROF_PARK_NONE = 0, PROF_PARK_OWNER_OFFCPU, PROF_PARK_SPIN_BUDGET,
	PROF_PARK_SPINNER_CAP, PROF_PARK_POLICY, PROF_PARK_N
};

#define PROF_SPINS  1   /* prof_acq_spun's flag: the lock can spin */
#define PROF_ACQ_FRAMES 16

/* One slow-path acquisition, filled by the lock on its own stack. */
struct prof_acq {
	uint64_t pa_t0;           /* prof clock ticks at arrival */
	uint64_t pa_spin_won_ns;  /* spin phase that took the lock */
	uint64_t pa_spin_lost_ns; /* spin phases that ended in a park */
	uint64_t pa_park_ns;      /* time parked */
	uint32_t pa_nparks;
	int32_t  pa_owner_tid;    /* holder on arrival, 0 unknown */
	uint8_t  pa_owner_state;  /* enum prof_ostate */
	uint8_t  pa_park_reason;  /* enum prof_park_reason (first park) */
	uint8_t  pa_spun;         /* any spin phase */
	uint8_t  pa_can_spin;     /* PROF_SPINS seen: spin columns are real */
	uint8_t  pa_park_reason_next; /* the lock's scratch: why it will park */
	uint8_t  pa_pad8[3];
	uint32_t pa_pad;          /* profiler's mark: begun while profiling */
	const void *pa_owner_site;/* holder's site record, NULL unknown */
	const void *pa_caller;    /* call site noted at arrival */
	/* The waiter's backtrace, taken on arrival (while it waits anyway,
	 * not while it holds the lock); pa_nstack 0: not taken. */
	uint32_t pa_nstack;
	uint32_t pa_pad2;
	uintptr_t pa_stack[PROF_ACQ_FRAMES];
};

/* Global switch (relaxed; set by prof_init, read by every hook). */
SC_HIDDEN extern bool prof_on_flag;
SC_HIDDEN extern __thread const void *prof_caller_tls
	__attribute__((tls_model("initial-exec")));

static inline bool prof_on(void)
{
	return __builtin_expect(__atomic_load_n(&prof_on_flag,
	                                        __ATOMIC_RELAXED), 0);
}

SC_HIDDEN void prof_acquired_slow(const void *lock, const void *pc);
SC_HIDDEN void prof_released_slow(const void *lock);
SC_HIDDEN void prof_acq_begin_slow(struct prof_acq *a, uint32_t owner_slot,
                                   int32_t owner_tid, const void *lock);
SC_HIDDEN void prof_contended_slow(const void *lock, struct prof_acq *a,
                                   const void *pc);
SC_HIDDEN void prof_timedout_slow(const void *lock, struct prof_acq *a,
                                  const void *pc);
SC_HIDDEN void prof_try_failed_slow(const void *lock, const void *pc);

static inline void prof_note_caller(const void *pc)
{
	if (prof_on())
		prof_caller_tls = pc;
}

static inline void prof_acquired(const void *lock, const void *pc)
{
	if (prof_on())
		prof_acquired_slow(lock, pc);
}

static inline void prof_released(const void *lock)
{
	if (prof_on())
		prof_released_slow(lock);
}

static inline void prof_acq_begin(struct prof_acq *a, const void *lock,
                                  uint32_t owner_slot, int32_t owner_tid)
{
	if (prof_on())
		prof_acq_begin_slow(a, owner_slot, owner_tid, lock);
}

static inline void prof_acq_spun(struct prof_acq *a, uint64_t ns, bool won,
                                 int flags)
{
	if (!prof_on())
		return;
	a->pa_spun = 1;
	if (flags & PROF_SPINS)
		a->pa_can_spin = 1;
	if (won)
		a->pa_spin_won_ns += ns;
	else
		a->pa_spin_lost_ns += ns;
}

static inline void prof_acq_parked(struct prof_acq *a, uint64_t ns, int reason)
{
	if (!prof_on())
		return;
	if (a->pa_nparks++ == 0)
		a->pa_park_reason = (uint8_t)reason;
	a->pa_park_ns += ns;
}

static inline void prof_contended(const void *lock, struct prof_acq *a,
                                  const void *pc)
{
	if (prof_on())
		prof_contended_slow(lock, a, pc);
}

static inline void prof_timedout(const void *lock, struct prof_acq *a,
                                 const void *pc)
{
	if (prof_on())
		prof_timedout_slow(lock, a, pc);
}

static inline void prof_try_failed(const void *lock, const void *pc)
{
	if (prof_on())
		prof_try_failed_slow(lock, pc);
}

/* glibc pass-through with profiling (policy glibc, or mutex kinds the
 * lock leaves to glibc).  Return what glibc's functions return. */
SC_HIDDEN int prof_glibc_lock(pthread_mutex_t *m, const void *pc,
                              int (*lock)(pthread_mutex_t *),
                              int (*trylock)(pthread_mutex_t *));
SC_HIDDEN int prof_glibc_unlock(pthread_mutex_t *m,
                                int (*unlock)(pthread_mutex_t *));

/* ---- set-up (agent.c) ---- */

/* Configuration: from the environment by prof_init_from_env(), or
 * filled by a test. */
struct prof_config {
	bool        pc_text;        /* text report at exit */
	const char *pc_out;         /* text report file, NULL: stderr */
	const char *pc_json;        /* JSON file or NULL */
	const char *pc_trace;       /* Chrome trace file or NULL */
	const char *pc_sort;        /* contended|wait|spin|hold */
	int         pc_top;         /* locks (and sites per lock) shown */
	int         pc_signal;      /* live-dump signal, 0 none */
	unsigned    pc_max_locks;
	unsigned    pc_max_sites;
	unsigned    pc_max_stacks;
	unsigned    pc_max_threads; /* per-thread records (0: 4096); more
	                               live threads count as overflow */
	unsigned    pc_hold_sample; /* time 1 in N uncontended holds (0, 1: all) */
	unsigned    pc_trace_events;
	unsigned    pc_trace_interval_us;
	const char *pc_policy;      /* policy name for the report */
};

/* Reads SCHEDCTL_PROFILE* and SCHEDCTL_TRACE; starts profiling if any
 * asks for it.  Called from the preload's constructor.  0, or -errno. */
SC_HIDDEN int prof_init_from_env(void);
/* Start profiling with cfg (copied).  Idempotent: later calls fail with
 * -EALREADY.  Starts the agent thread (signal, trace sampling). */
SC_HIDDEN int prof_init(const struct prof_config *cfg);
/* Write the reports cfg asks for (exit path; also used by tests). */
SC_HIDDEN int prof_dump(bool final);
/* Stop the agent thread (tests).  Counters stay. */
SC_HIDDEN void prof_shutdown(void);
/* A new thread of the program's begins (the preload's pthread_create):
 * starts the agent a fork child deferred (agent.c, atfork_child). */
SC_HIDDEN void prof_thread_begin(void);

#endif /* SC_PROF_H */
