/*
 * pthread.c - the pthread_mutex_* / pthread_cond_* entry points behind
 * the preload's wrappers: our lock, or glibc's own function.
 *
 * Decision, per call, from the object itself (no table, no allocation):
 *   SCHEDCTL_POLICY=glibc            everything goes to glibc
 *   mutex __kind has a pass-through  process-shared, robust, PI or PP:
 *     bit (LK_KIND_PASSTHRU)         glibc, exactly (it set those bits in
 *                                    its pthread_mutex_init; -1 after
 *                                    destroy also lands there -> EINVAL)
 *   otherwise                        ours, in place (all-zero static
 *                                    initialisers included)
 *   condvar __wrefs bit 0 (shared)   glibc, for every operation.  Waiting
 *                                    on it with a replaced (private)
 *                                    mutex cannot work, because glibc
 *                                    would release our lock as its own:
 *                                    EINVAL (documented limitation)
 *   other condvars                   ours, with either kind of mutex
 *
 * Until sc_lock_preload_init() has run, each entry point runs it first
 * (the preload's constructor normally did).
 */
#include <errno.h>

#include "lock/lock.h"
#include "prof/prof.h"

#define LK_M(m) ((struct lk_mutex *)(void *)(m))
#define LK_C(c) ((struct lk_cond *)(void *)(c))

static inline void lk_ready(void)
{
	if (__builtin_expect(!sc_lock_ready(), 0))
		sc_lock_preload_init();
}

static inline bool lk_glibc(void)
{
	return lk_policy() == LK_GLIBC;
}

static inline bool lk_mutex_passthru(const pthread_mutex_t *m)
{
	return (__atomic_load_n(&LK_M(m)->lm_kind, __ATOMIC_RELAXED) &
	        LK_KIND_PASSTHRU) != 0;
}

static inline bool lk_cond_shared(const pthread_cond_t *c)
{
	return (__atomic_load_n(&LK_C(c)->lc_flags, __ATOMIC_RELAXED) &
	        LC_PSHARED) != 0;
}

/* Calls glibc's fn, or fails with EAGAIN if it could not be resolved
 * (only possible inside the start-up's own symbol look-up). */
#define LK_REAL(fn, ...) \
	(lk_real.fn ? lk_real.fn(__VA_ARGS__) : EAGAIN)

int sc_lock_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *a)
{
	lk_ready();
	if (lk_glibc())
		return LK_REAL(mutex_init, m, a);
	int type = PTHREAD_MUTEX_NORMAL, pshared = PTHREAD_PROCESS_PRIVATE;
	int robust = PTHREAD_MUTEX_STALLED, proto = PTHREAD_PRIO_NONE;
	if (a) {
		if (pthread_mutexattr_gettype(a, &type) ||
		    pthread_mutexattr_getpshared(a, &pshared) ||
		    pthread_mutexattr_getrobust(a, &robust) ||
		    pthread_mutexattr_getprotocol(a, &proto))
			return EINVAL;
	}
	if (pshared != PTHREAD_PROCESS_PRIVATE || robust != PTHREAD_MUTEX_STALLED ||
	    proto != PTHREAD_PRIO_NONE)
		return LK_REAL(mutex_init, m, a);
	if (type < 0 || type > PTHREAD_MUTEX_ADAPTIVE_NP)
		return EINVAL;
	lk_mutex_init(LK_M(m), type);
	return 0;
}

int sc_lock_mutex_destroy(pthread_mutex_t *m)
{
	lk_ready();
	if (lk_glibc() || lk_mutex_passthru(m))
		return LK_REAL(mutex_destroy, m);
	return lk_mutex_destroy(LK_M(m));
}

/* Ready, not policy glibc, and a plain replaced mutex: the fast paths
 * below apply.  One predictable branch each on the common path. */
static inline bool lk_fast(const pthread_mutex_t *m)
{
	return __builtin_expect(sc_lock_ready() && !lk_glibc() &&
	                        lk_kind_plain(LK_M(m)), 1);
}

int sc_lock_mutex_lock(pthread_mutex_t *m)
{
	if (lk_fast(m)) {
		if (__builtin_expect(lk_mutex_take_fast(LK_M(m)), 1)) {
			prof_acquired(m, NULL);
			return 0;
		}
		return lk_mutex_lock(LK_M(m));
	}
	lk_ready();
	if (__builtin_expect(lk_glibc() || lk_mutex_passthru(m), 0)) {
		if (prof_on() && lk_real.mutex_lock && lk_real.mutex_trylock)
			return prof_glibc_lock(m, NULL, lk_real.mutex_lock,
			                       lk_real.mutex_trylock);
		return LK_REAL(mutex_lock, m);
	}
	return lk_mutex_lock(LK_M(m));
}

int sc_lock_mutex_trylock(pthread_mutex_t *m)
{
	lk_ready();
	if (lk_glibc() || lk_mutex_passthru(m))
		return LK_REAL(mutex_trylock, m);
	return lk_mutex_trylock(LK_M(m));
}

int sc_lock_mutex_timedlock(pthread_mutex_t *m, const struct timespec *abs)
{
	lk_ready();
	if (lk_glibc() || lk_mutex_passthru(m))
		return LK_REAL(mutex_timedlock, m, abs);
	return lk_mutex_timedlock(LK_M(m), CLOCK_REALTIME, abs);
}

int sc_lock_mutex_clocklock(pthread_mutex_t *m, clockid_t clock,
                            const struct timespec *abs)
{
	lk_ready();
	if (lk_glibc() || lk_mutex_passthru(m))
		return LK_REAL(mutex_clocklock, m, clock, abs);
	if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC)
		return EINVAL;
	return lk_mutex_timedlock(LK_M(m), clock, abs);
}

int sc_lock_mutex_unlock(pthread_mutex_t *m)
{
	if (lk_fast(m)) {
		lk_mutex_release(LK_M(m));
		return 0;
	}
	lk_ready();
	if (__builtin_expect(lk_glibc() || lk_mutex_passthru(m), 0)) {
		prof_released(m);
		return LK_REAL(mutex_unlock, m);
	}
	return lk_mutex_unlock(LK_M(m));
}

int sc_lock_mutex_consistent(pthread_mutex_t *m)
{
	lk_ready();
	if (lk_glibc() || lk_mutex_passthru(m))
		return LK_REAL(mutex_consistent, m);
	return EINVAL;    /* glibc: not a robust mutex */
}

/* ---- condvar ---- */

static int lk_own_unlock(pthread_mutex_t *m)
{
	return lk_mutex_unlock(LK_M(m));
}

static int lk_own_lock(pthread_mutex_t *m)
{
	return lk_mutex_lock(LK_M(m));
}

static int lk_glibc_unlock(pthread_mutex_t *m)
{
	return LK_REAL(mutex_unlock, m);
}

static int lk_glibc_lock(pthread_mutex_t *m)
{
	return LK_REAL(mutex_lock, m);
}

static const struct lk_cond_mutex_ops lk_own_ops = {
	.unlock = lk_own_unlock, .lock = lk_own_lock,
};
static const struct lk_cond_mutex_ops lk_glibc_ops = {
	.unlock = lk_glibc_unlock, .lock = lk_glibc_lock,
};

int sc_lock_cond_init(pthread_cond_t *c, const pthread_condattr_t *a)
{
	lk_ready();
	if (lk_glibc())
		return LK_REAL(cond_init, c, a);
	int pshared = PTHREAD_PROCESS_PRIVATE;
	clockid_t clock = CLOCK_REALTIME;
	if (a && (pthread_condattr_getpshared(a, &pshared) ||
	          pthread_condattr_getclock(a, &clock)))
		return EINVAL;
	if (pshared != PTHREAD_PROCESS_PRIVATE)
		return LK_REAL(cond_init, c, a);
	lk_cond_init(LK_C(c), clock);
	return 0;
}

int sc_lock_cond_destroy(pthread_cond_t *c)
{
	lk_ready();
	if (lk_glibc() || lk_cond_shared(c))
		return LK_REAL(cond_destroy, c);
	return lk_cond_destroy(LK_C(c));
}

int sc_lock_cond_signal(pthread_cond_t *c)
{
	lk_ready();
	if (lk_glibc() || lk_cond_shared(c))
		return LK_REAL(cond_signal, c);
	return lk_cond_signal(LK_C(c));
}

int sc_lock_cond_broadcast(pthread_cond_t *c)
{
	lk_ready();
	if (lk_glibc() || lk_cond_shared(c))
		return LK_REAL(cond_broadcast, c);
	return lk_cond_broadcast(LK_C(c));
}

/* => 1: glibc handles it entirely; 0: ours; or -EINVAL.
 *
 * The wrappers below call glibc's wait, a cancellation point, from a
 * frame without address-taken locals (the waits of our own are in
 * separate, not inlined, functions).  Cancellation unwinds that frame
 * with glibc's internal longjmp, which ASan does not see: redzones left
 * there made an ASan build report its own next use of that stack
 * (tests/lock lock_preload cancel, policy glibc, under ./dev asan). */
static int lk_cond_route(pthread_cond_t *c, pthread_mutex_t *m)
{
	lk_ready();
	bool passthru = lk_mutex_passthru(m);
	if (lk_glibc())
		return 1;
	if (lk_cond_shared(c))
		return passthru ? 1 : -EINVAL;
	return 0;
}

static const struct lk_cond_mutex_ops *lk_cond_ops(pthread_mutex_t *m)
{
	return lk_mutex_passthru(m) ? &lk_glibc_ops : &lk_own_ops;
}

int sc_lock_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
	int route = lk_cond_route(c, m);
	if (route)
		return route > 0 ? LK_REAL(cond_wait, c, m) : -route;
	return lk_cond_wait(LK_C(c), m, lk_cond_ops(m), NULL);
}

__attribute__((noinline))
static int lk_cond_own_timedwait(pthread_cond_t *c, pthread_mutex_t *m,
                                 clockid_t clock, const struct timespec *abs)
{
	if (!lk_timespec_valid(abs))
		return EINVAL;
	struct lk_deadline dl = { .dl_clock = clock, .dl_abs = abs };
	return lk_cond_wait(LK_C(c), m, lk_cond_ops(m), &dl);
}

int sc_lock_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m,
                           const struct timespec *abs)
{
	int route = lk_cond_route(c, m);
	if (route)
		return route > 0 ? LK_REAL(cond_timedwait, c, m, abs) : -route;
	return lk_cond_own_timedwait(c, m,
		(__atomic_load_n(&LK_C(c)->lc_flags, __ATOMIC_RELAXED) &
		 LC_MONOTONIC) ? CLOCK_MONOTONIC : CLOCK_REALTIME, abs);
}

int sc_lock_cond_clockwait(pthread_cond_t *c, pthread_mutex_t *m,
                           clockid_t clock, const struct timespec *abs)
{
	int route = lk_cond_route(c, m);
	if (route)
		return route > 0 ? LK_REAL(cond_clockwait, c, m, clock, abs) : -route;
	if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC)
		return EINVAL;
	return lk_cond_own_timedwait(c, m, clock, abs);
}
