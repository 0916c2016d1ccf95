/*
 * cond.c - the condition variable that goes with the replaced mutex,
 * living in the program's own pthread_cond_t (struct lk_cond, lock.h).
 *
 * glibc's condvar releases and retakes the mutex through glibc's
 * internal functions, which know nothing of our lock word, so every
 * process-private condvar is ours.  It releases and retakes its mutex
 * through lk_cond_mutex_ops: our lock for a replaced mutex, glibc's
 * real functions for a pass-through one (robust, PI/PP, shared), so a
 * robust mutex still reports EOWNERDEAD from the wait.  A
 * process-shared condvar is left to glibc (pthread.c).
 *
 * Words:
 *   lc_seq    the futex word: a waiter reads it before releasing the
 *             mutex and sleeps while it is unchanged; signal and
 *             broadcast add 1 (seq_cst) before waking.  A 2^32 wrap
 *             between a waiter's read and its sleep would hide one
 *             signal: not a practical concern.
 *   lc_nwait  waiters between entry and exit (seq_cst add before
 *             reading lc_seq; signal loads it first and does nothing
 *             when no one waits).  Entry happens under the mutex, so a
 *             signaller that changed the predicate under the mutex
 *             either sees the waiter or the waiter sees the new lc_seq.
 *             LC_DESTROYING: destroy waits (through lk_park) until the
 *             count drains, so waiters woken by a broadcast never touch
 *             a condvar that the program frees after destroy.
 *   lc_flags  LC_MONOTONIC: timedwait's clock; set by init only.
 *
 * Semantics: signal wakes at least one waiter that entered before it
 * (one futex wake); broadcast wakes all (no requeue onto the mutex: the
 * woken threads contend for it, which the owner policy handles by
 * spinning on a running holder).  A signal handled during the wait does
 * not end it (the sleep is redone, see lk_cond_sleep), so a wait returns
 * 0 only after a signal or broadcast, as glibc's does; POSIX would allow
 * spurious wake-ups, programs do not expect them.  A wait that times out while a
 * signal was sent after it started returns 0, so that signal is not
 * lost.  Timeouts on CLOCK_REALTIME are converted to a relative sleep
 * and re-checked against the clock; a clock step during the wait only
 * moves the wake-up: an early return sleeps again.
 *
 * Cancellation: the futex sleep runs with asynchronous cancellation
 * enabled (as glibc does); the cleanup handler leaves the condvar and
 * retakes the mutex before the program's handlers run.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "lock/lock.h"

_Static_assert(sizeof(struct lk_cond) == sizeof(pthread_cond_t),
               "lk_cond fills pthread_cond_t");
_Static_assert(offsetof(struct lk_cond, lc_flags) ==
               offsetof(pthread_cond_t, __data.__wrefs),
               "lc_flags is glibc's __wrefs");

void lk_cond_init(struct lk_cond *c, clockid_t clock)
{
	memset(c, 0, sizeof *c);
	if (clock == CLOCK_MONOTONIC)
		__atomic_store_n(&c->lc_flags, LC_MONOTONIC, __ATOMIC_RELAXED);
}

static void lk_cond_wake(struct lk_cond *c, int n)
{
	if ((__atomic_load_n(&c->lc_nwait, __ATOMIC_SEQ_CST) & ~LC_DESTROYING) == 0)
		return;
	__atomic_add_fetch(&c->lc_seq, 1, __ATOMIC_SEQ_CST);
	sc_futex_wake(&c->lc_seq, n, true);
}

int lk_cond_signal(struct lk_cond *c)
{
	lk_cond_wake(c, 1);
	return 0;
}

int lk_cond_broadcast(struct lk_cond *c)
{
	lk_cond_wake(c, INT_MAX);
	return 0;
}

/* => the last touch of c by a waiter. */
static void lk_cond_leave(struct lk_cond *c)
{
	uint32_t v = __atomic_sub_fetch(&c->lc_nwait, 1, __ATOMIC_SEQ_CST);
	if (v == LC_DESTROYING)
		sc_futex_wake(&c->lc_nwait, INT_MAX, true);
}

int lk_cond_destroy(struct lk_cond *c)
{
	uint32_t v = __atomic_or_fetch(&c->lc_nwait, LC_DESTROYING,
	                               __ATOMIC_SEQ_CST);
	while (v != LC_DESTROYING) {
		(void)lk_park(&c->lc_nwait, v, NULL, true);
		v = __atomic_load_n(&c->lc_nwait, __ATOMIC_SEQ_CST);
	}
	return 0;
}

struct lk_cwait {
	struct lk_cond *cw_cond;
	pthread_mutex_t *cw_mutex;
	const struct lk_cond_mutex_ops *cw_ops;
};

/* Cancellation inside the sleep: leave, retake the mutex, and let the
 * program's cleanup handlers run with it held (POSIX). */
static void lk_cond_cancelled(void *arg)
{
	struct lk_cwait *w = arg;
	lk_park_ended();
	lk_cond_leave(w->cw_cond);
	(void)w->cw_ops->lock(w->cw_mutex);
}

/*
 * Sleep until lc_seq moves away from seq (a signal or broadcast), the
 * futex is woken, or dl passes.  A signal delivered to the thread
 * (EINTR), or a relative sleep that ended while a CLOCK_REALTIME
 * deadline is still ahead (the clock was set back), sleeps again: the
 * program sees a return only for a wake-up or a real timeout, as with
 * glibc's condvar.
 * => 0 (signalled, or woken), -ETIMEDOUT.
 */
static long lk_cond_sleep(struct lk_cond *c, uint32_t seq,
                          const struct lk_deadline *dl)
{
	for (;;) {
		long r = lk_park(&c->lc_seq, seq, dl, true);
		/* Acquire: pairs with the seq_cst add of lk_cond_wake. */
		if (__atomic_load_n(&c->lc_seq, __ATOMIC_ACQUIRE) != seq)
			return 0;   /* also a signal that raced with the timeout */
		if (r == 0)
			return 0;   /* a wake-up meant for us */
		if (r == -ETIMEDOUT) {
			struct timespec rel;
			if (!dl || !dl->dl_abs || !lk_deadline_left(dl, &rel))
				return -ETIMEDOUT;
		}
		/* -EINTR, -EAGAIN with lc_seq back at seq (2^32 wrap), or
		 * an early relative timeout: sleep again. */
	}
}

/*
 * => m held by the caller (as ops see it); dl NULL or a valid deadline.
 * => 0 (signalled or woken), ETIMEDOUT, or the mutex's own error
 *    (EPERM from releasing a mutex we do not hold, EOWNERDEAD from
 *    retaking a robust one); m held again except after an EPERM.
 */
int lk_cond_wait(struct lk_cond *c, pthread_mutex_t *m,
                 const struct lk_cond_mutex_ops *ops,
                 const struct lk_deadline *dl)
{
	__atomic_add_fetch(&c->lc_nwait, 1, __ATOMIC_SEQ_CST);
	uint32_t seq = __atomic_load_n(&c->lc_seq, __ATOMIC_SEQ_CST);
	int err = ops->unlock(m);
	if (err) {
		lk_cond_leave(c);
		return err;
	}
	struct lk_cwait w = { .cw_cond = c, .cw_mutex = m, .cw_ops = ops };
	long r;
	int oldtype;
	pthread_cleanup_push(lk_cond_cancelled, &w);
	(void)pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, &oldtype);
	r = lk_cond_sleep(c, seq, dl);
	(void)pthread_setcanceltype(oldtype, NULL);
	pthread_cleanup_pop(0);
	lk_cond_leave(c);
	err = ops->lock(m);
	if (err)
		return err;
	return r == -ETIMEDOUT ? ETIMEDOUT : 0;
}
