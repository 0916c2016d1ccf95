/*
 * lock.h - internal interface of the owner-aware locks (src/lock).
 *
 * Modules:
 *   policy.c  SCHEDCTL_POLICY, CPU count, spin bounds, preemption-control
 *             probe, glibc's real pthread functions (resolved once)
 *   mutex.c   the replacement mutex living in pthread_mutex_t storage
 *   cond.c    the replacement condvar living in pthread_cond_t storage
 *   pthread.c the pthread_* dispatch used by the preload wrappers:
 *             replaced object, or glibc's own function (pass-through)
 *
 * Lock order: none.  Nothing in src/lock holds an internal lock; every
 * shared field is a single atomic word (see the top of mutex.c and
 * cond.c for each word's protocol).
 *
 * pthread_rwlock_* is deliberately NOT replaced: glibc's rwlock does not
 * use pthread_mutex_t, so leaving it entirely to glibc keeps it whole.
 */
#ifndef SC_LOCK_H
#define SC_LOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "prof/prof.h"
#include "sc/sc.h"

/* ---- policy.c ---- */

enum lk_policy {
	LK_OWNER = 0,  /* spin while the owner is on a CPU, else park */
	LK_SPIN  = 1,  /* bounded blind spin, then park (glibc adaptive) */
	LK_PARK  = 2,  /* futex only */
	LK_GLIBC = 3,  /* no replacement: glibc's own locks */
};

/* The policy in force (relaxed; set once at start-up or by a test). */
SC_HIDDEN extern int lk_pol;
static inline int lk_policy(void)
{
	return __atomic_load_n(&lk_pol, __ATOMIC_RELAXED);
}
SC_HIDDEN void lk_set_policy(int policy);
/* "owner" -> LK_OWNER ...; -1 if name is not a policy. */
SC_HIDDEN int lk_policy_parse(const char *name);
SC_HIDDEN const char *lk_policy_name(int policy);

/* Spinners allowed on one lock at once: ncpus - 1 (0 on one CPU),
 * at most 255. */
SC_HIDDEN unsigned lk_max_spinners(void);
/* Bound on one spin phase in ns for a policy. */
SC_HIDDEN uint64_t lk_spin_limit_ns(int policy);
/* Most pause instructions between two looks at a held lock word (the
 * wait doubles from 1 up to this): about 1.2 us, calibrated at the
 * first call, or SCHEDCTL_SPIN_BACKOFF. */
SC_HIDDEN unsigned lk_backoff_max(void);

/* One spin-wait hint to the CPU (pause on x86). */
static inline void lk_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/* Whether the kernel offers the rseq time-slice extension; the reason
 * in words for the report (never NULL). */
SC_HIDDEN bool lk_slice_ext_available(const char **why);

/* glibc's own functions, resolved with dlsym(RTLD_NEXT) by
 * sc_lock_preload_init().  NULL before that (outside the preload they
 * are simply glibc's, see pthread.c). */
struct lk_real {
	int (*mutex_init)(pthread_mutex_t *, const pthread_mutexattr_t *);
	int (*mutex_destroy)(pthread_mutex_t *);
	int (*mutex_lock)(pthread_mutex_t *);
	int (*mutex_trylock)(pthread_mutex_t *);
	int (*mutex_timedlock)(pthread_mutex_t *, const struct timespec *);
	int (*mutex_clocklock)(pthread_mutex_t *, clockid_t,
	                       const struct timespec *);
	int (*mutex_unlock)(pthread_mutex_t *);
	int (*mutex_consistent)(pthread_mutex_t *);
	int (*cond_init)(pthread_cond_t *, const pthread_condattr_t *);
	int (*cond_destroy)(pthread_cond_t *);
	int (*cond_wait)(pthread_cond_t *, pthread_mutex_t *);
	int (*cond_timedwait)(pthread_cond_t *, pthread_mutex_t *,
	                      const struct timespec *);
	int (*cond_clockwait)(pthread_cond_t *, pthread_mutex_t *, clockid_t,
	                      const struct timespec *);
	int (*cond_signal)(pthread_cond_t *);
	int (*cond_broadcast)(pthread_cond_t *);
};
SC_HIDDEN extern struct lk_real lk_real;

/* Reads SCHEDCTL_POLICY and resolves lk_real; idempotent, thread-safe.
 * The preload's wrappers call it lazily (and its constructor once). */
SC_HIDDEN void sc_lock_preload_init(void);
SC_HIDDEN extern int lk_state;        /* LKS_READY once initialised */
#define LKS_READY 2
static inline bool sc_lock_ready(void)
{
	return __atomic_load_n(&lk_state, __ATOMIC_ACQUIRE) == LKS_READY;
}

/* ---- mutex.c ---- */

/*
 * Our view of the 40 bytes of pthread_mutex_t.  lm_kind sits where glibc
 * keeps __kind, so glibc's static initialisers (recursive, errorcheck,
 * adaptive) and the pass-through bits it stores for process-shared,
 * robust and PI/PP mutexes mean the same thing to both.
 */
struct lk_mutex {
	uint32_t lm_word;      /* owner id | LK_* flags; futex word */
	uint32_t lm_count;     /* recursion depth (recursive type) */
	int32_t  lm_tid;       /* owner's tid (recursive, errorcheck) */
	uint32_t lm_nusers;    /* glibc __nusers: untouched */
	int32_t  lm_kind;      /* glibc __kind: type | pass-through bits */
	uint8_t  lm_spinners;  /* threads spinning on this lock now */
	uint8_t  lm_bias;      /* owner policy: how much recent spin phases
	                          ended without the lock (0 = spin) */
	uint16_t lm_parked;    /* threads in (or entering) a futex wait on
	                          lm_word; LK_PARKED_MANY is sticky */
	uint64_t lm_unused[2]; /* glibc __list: untouched */
};

#define LK_PARKED_MANY  0xffffu    /* lm_parked saturated: always wake */

/* lm_bias (mutex.c, lk_bias_update): added by a spin phase that ends
 * without the lock; at LK_BIAS_PARK or more a waiter parks at once and
 * takes LK_BIAS_PROBE off. */
#define LK_BIAS_FAIL    32u
#define LK_BIAS_PARK    128u
#define LK_BIAS_PROBE   4u

#define LK_OWNER_MASK   0x1ffffu   /* slot index, or LK_ANON_OWNER */
#define LK_ANON_OWNER   0x10000u   /* holder has no schedctl slot */
#define LK_LHP_SEEN     0x40000000u /* a waiter saw the holder preempted */
#define LK_CONTENDED    0x80000000u /* waiters may be parked */

/* glibc __kind bits (nptl/pthreadP.h). */
#define LK_KIND_TYPE_MASK  3
#define LK_KIND_ROBUST     16
#define LK_KIND_PI         32
#define LK_KIND_PP         64
#define LK_KIND_PSHARED    128
#define LK_KIND_PASSTHRU   (LK_KIND_ROBUST | LK_KIND_PI | LK_KIND_PP | \
                            LK_KIND_PSHARED)

/* A clock and an absolute time, or none (dl_abs == NULL). */
struct lk_deadline {
	clockid_t dl_clock;
	const struct timespec *dl_abs;
};

/* All return 0 or a positive errno value, as pthread_mutex_* do.
 * => lk_mutex_lock/timedlock: may spin and park; never allocate. */
SC_HIDDEN void lk_mutex_init(struct lk_mutex *m, int type);
SC_HIDDEN int lk_mutex_lock(struct lk_mutex *m);
SC_HIDDEN int lk_mutex_trylock(struct lk_mutex *m);
SC_HIDDEN int lk_mutex_timedlock(struct lk_mutex *m, clockid_t clock,
                                 const struct timespec *abs);
SC_HIDDEN int lk_mutex_unlock(struct lk_mutex *m);
/* The unlock's slow part (the released word had LK_CONTENDED). */
SC_HIDDEN void lk_mutex_wake(struct lk_mutex *m);

/* The calling thread's owner id, 0 until its first lock (mutex.c). */
SC_HIDDEN extern __thread uint32_t lk_self_id
	__attribute__((tls_model("initial-exec")));

/* Normal or adaptive, not passed through (-1 after destroy is): the
 * kinds whose lock and unlock are a bare CAS and exchange. */
static inline bool lk_kind_plain(const struct lk_mutex *m)
{
	int32_t k = __atomic_load_n(&m->lm_kind, __ATOMIC_RELAXED);
	return (k & LK_KIND_PASSTHRU) == 0 && ((k + 1) & 2) == 0;
}

/* The uncontended lock of a plain mutex: false if the caller has no
 * owner id yet or the word is not 0 (then lk_mutex_lock). */
static inline bool lk_mutex_take_fast(struct lk_mutex *m)
{
	uint32_t me = lk_self_id, z = 0;
	return __builtin_expect(me != 0, 1) &&
	       __atomic_compare_exchange_n(&m->lm_word, &z, me, false,
	                                   __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

/* Release a plain mutex held by the caller (see "Waking" in mutex.c):
 * one exchange, and the slow part only if waiters may be parked. */
static inline void lk_mutex_release(struct lk_mutex *m)
{
	uint32_t old = __atomic_exchange_n(&m->lm_word, 0, __ATOMIC_RELEASE);
	prof_released(m);   /* after the release: outside the critical section */
	if (__builtin_expect((old & LK_CONTENDED) != 0, 0))
		lk_mutex_wake(m);
}
SC_HIDDEN int lk_mutex_destroy(struct lk_mutex *m);

/* Park on a futex word as the runtime (marks the slot SS_IN_RUNTIME and
 * goes through sc_futex_wait).  0, -ETIMEDOUT, -EAGAIN, -EINTR. */
SC_HIDDEN long lk_park(uint32_t *word, uint32_t val,
                       const struct lk_deadline *dl, bool private_);
/* What lk_park does once the sleep is over (its own end, or a cancelled
 * condvar wait, which leaves it by unwinding): clear SS_IN_RUNTIME, and
 * mark a supervisor-source slot SC_ONPROC. */
SC_HIDDEN void lk_park_ended(void);
/* Remaining time to dl into *rel; false if it has passed.  EINVAL for
 * a malformed time is the caller's check (lk_timespec_valid). */
SC_HIDDEN bool lk_deadline_left(const struct lk_deadline *dl,
                                struct timespec *rel);
SC_HIDDEN bool lk_timespec_valid(const struct timespec *ts);

/* ---- cond.c ---- */

/*
 * Our view of the 48 bytes of pthread_cond_t.  lc_flags sits where
 * glibc keeps __wrefs, whose bit 0 (process-shared) and bit 1
 * (CLOCK_MONOTONIC) mean the same to both.
 */
struct lk_cond {
	uint32_t lc_seq;       /* bumped by signal/broadcast; futex word */
	uint32_t lc_nwait;     /* waiters inside wait | LC_DESTROYING */
	uint32_t lc_unused[7];
	uint32_t lc_flags;     /* LC_* (glibc __wrefs bits 0-1) */
	uint32_t lc_unused2[2];
};

#define LC_PSHARED      1u
#define LC_MONOTONIC    2u
#define LC_DESTROYING   0x80000000u

/* How a condvar wait releases and retakes its mutex: our own lock, or
 * glibc's (a pass-through mutex). */
struct lk_cond_mutex_ops {
	int (*unlock)(pthread_mutex_t *);
	int (*lock)(pthread_mutex_t *);
};

SC_HIDDEN void lk_cond_init(struct lk_cond *c, clockid_t clock);
SC_HIDDEN int lk_cond_destroy(struct lk_cond *c);
SC_HIDDEN int lk_cond_signal(struct lk_cond *c);
SC_HIDDEN int lk_cond_broadcast(struct lk_cond *c);
/* dl NULL: no timeout.  A cancellation point: the mutex is held again
 * when cancellation handlers run. */
SC_HIDDEN int lk_cond_wait(struct lk_cond *c, pthread_mutex_t *m,
                           const struct lk_cond_mutex_ops *ops,
                           const struct lk_deadline *dl);

/* ---- pthread.c: what the preload wrappers call ---- */

SC_HIDDEN int sc_lock_mutex_init(pthread_mutex_t *, const pthread_mutexattr_t *);
SC_HIDDEN int sc_lock_mutex_destroy(pthread_mutex_t *);
SC_HIDDEN int sc_lock_mutex_lock(pthread_mutex_t *);
SC_HIDDEN int sc_lock_mutex_trylock(pthread_mutex_t *);
SC_HIDDEN int sc_lock_mutex_timedlock(pthread_mutex_t *, const struct timespec *);
SC_HIDDEN int sc_lock_mutex_clocklock(pthread_mutex_t *, clockid_t,
                                      const struct timespec *);
SC_HIDDEN int sc_lock_mutex_unlock(pthread_mutex_t *);
SC_HIDDEN int sc_lock_mutex_consistent(pthread_mutex_t *);
SC_HIDDEN int sc_lock_cond_init(pthread_cond_t *, const pthread_condattr_t *);
SC_HIDDEN int sc_lock_cond_destroy(pthread_cond_t *);
SC_HIDDEN int sc_lock_cond_wait(pthread_cond_t *, pthread_mutex_t *);
SC_HIDDEN int sc_lock_cond_timedwait(pthread_cond_t *, pthread_mutex_t *,
                                     const struct timespec *);
SC_HIDDEN int sc_lock_cond_clockwait(pthread_cond_t *, pthread_mutex_t *,
                                     clockid_t, const struct timespec *);
SC_HIDDEN int sc_lock_cond_signal(pthread_cond_t *);
SC_HIDDEN int sc_lock_cond_broadcast(pthread_cond_t *);

#endif /* SC_LOCK_H */
