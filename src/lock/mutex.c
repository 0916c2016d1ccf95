/*
 * mutex.c - the owner-aware adaptive mutex, living in the program's own
 * pthread_mutex_t (struct lk_mutex in lock.h).
 *
 * Lock word (lm_word, the futex word):
 *   0                      unlocked
 *   id | [LK_LHP_SEEN]     held by the thread whose schedctl slot index
 *                          is id (1..65535), or LK_ANON_OWNER when the
 *                          holder has no slot (its slot could not be set
 *                          up, or it runs after its slot was released)
 *   LK_LHP_SEEN            a waiter saw this holder preempted while it
 *                          held the lock and counted it in the holder's
 *                          ss_lhp (once per hold)
 * PTHREAD_MUTEX_INITIALIZER (all zeros) is an unlocked normal mutex.
 * The index is a number, not a pointer: in a fork child it names no
 * slot (sc_slot_at() is NULL) or a child thread's slot; either way a
 * waiter only reads a state from it, and the lock stays held, exactly
 * as glibc leaves a mutex held by a thread that does not exist in the
 * child.  Ownership checks (errorcheck, recursive) use lm_tid, as glibc
 * does, so a child never mistakes a parent thread for itself.
 *
 * Memory orders:
 *   acquire   CAS 0 -> id (acquire) pairs with unlock's exchange
 *             (seq_cst, a release) of the previous holder
 *   lm_nwait  waiters add (seq_cst) before they re-read lm_word and park;
 *             unlock exchanges lm_word then loads lm_nwait (seq_cst):
 *             Dekker's pattern, so either the unlocker sees the waiter
 *             or the waiter's futex_wait sees the changed word
 *   lm_spinners  the same pattern between a spinner's decrement and
 *             unlock's load: unlock skips the wake only while a spinner
 *             is registered, and a spinner never leaves without taking
 *             the lock or seeing a new holder (who will wake on unlock);
 *             a timed spinner that gives up passes the wake on
 *   lm_waking one wake in flight: unlock sets it (CAS, seq_cst) before
 *             FUTEX_WAKE and skips waking while it is set; the parked
 *             waiter clears it (seq_cst) as soon as it runs, before it
 *             re-reads lm_word, so an unlock that skipped the wake is
 *             seen by that waiter's next attempt (Dekker again)
 *   lm_tid, lm_count  written by the holder only (relaxed), published to
 *             the next holder by the release/acquire of lm_word
 *   lm_kind   relaxed: set by init, which must happen-before any use
 *
 * Policies (lk_policy()): owner spins only while the holder's slot says
 * SC_ONPROC (re-read every few iterations and whenever the holder
 * changes), at most lk_max_spinners() (ncpus - 1) spinners per lock,
 * for at most lk_spin_limit_ns(); a holder whose state is unknown gets
 * the short blind bound.  spin spins blindly for the short bound.  park
 * never spins.  Every policy parks on the futex through lk_park().
 *
 * Fairness: none promised, as glibc.  A releasing thread does not hand
 * the lock over; a running thread (spinner or newcomer) may take it
 * ahead of parked waiters.  That keeps the lock moving while woken
 * waiters are still being scheduled, at the price of possible barging.
 * unlock wakes one waiter only when some are parked, nobody spins, and
 * no earlier wake is still in flight; a holder that releases and retakes
 * the lock while its woken waiter is being scheduled makes no system
 * call.  Spinners back off exponentially (1..lk_backoff_max() pauses
 * between looks) so that they steal little of the holder's cache line.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "lock/lock.h"

_Static_assert(sizeof(struct lk_mutex) == sizeof(pthread_mutex_t),
               "lk_mutex fills pthread_mutex_t");
_Static_assert(offsetof(struct lk_mutex, lm_kind) ==
               offsetof(pthread_mutex_t, __data.__kind),
               "lm_kind is glibc's __kind");
_Static_assert(offsetof(struct lk_mutex, lm_tid) ==
               offsetof(pthread_mutex_t, __data.__owner),
               "lm_tid is glibc's __owner");

enum { LK_NORMAL = 0, LK_RECURSIVE = 1, LK_ERRORCHECK = 2, LK_ADAPTIVE = 3 };
enum { OS_RUNNING, OS_UNKNOWN, OS_NOT_RUNNING };

static __thread bool lk_in_setup __attribute__((tls_model("initial-exec")));
/* The calling thread's owner id and tid, cached from its slot (0: not
 * yet).  Reset in a fork child, whose thread has a new tid and slot.
 * After the thread's slot is released at exit, the cached id names a
 * free (or reused) slot: waiters then read a state that is not the
 * holder's and at worst park early or spin for the bound. */
static __thread uint32_t lk_self_id __attribute__((tls_model("initial-exec")));
static __thread int32_t lk_self_tid __attribute__((tls_model("initial-exec")));
static pthread_once_t lk_atfork_once = PTHREAD_ONCE_INIT;

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

/* The calling thread's slot, set up on first use; NULL if it has none
 * (and cannot get one, or is being set up right now: re-entry). */
static struct sc_slot *lk_my_slot(void)
{
	struct sc_slot *s = sc_thread_slot();
	if (__builtin_expect(s != NULL, 1) || lk_in_setup)
		return s;
	int saved = errno;
	lk_in_setup = true;
	s = sc_thread_setup();
	lk_in_setup = false;
	errno = saved;
	return s;
}

static void lk_atfork_child(void)
{
	lk_self_id = 0;
	lk_self_tid = 0;
}

static void lk_atfork_register(void)
{
	(void)pthread_atfork(NULL, NULL, lk_atfork_child);
}

/* => the caller's owner id; *tid its tid.  Slow only on first use. */
static uint32_t lk_self_slow(int32_t *tid)
{
	pthread_once(&lk_atfork_once, lk_atfork_register);
	struct sc_slot *s = lk_my_slot();
	if (!s) {
		*tid = (int32_t)gettid();
		return LK_ANON_OWNER;
	}
	lk_self_tid = *tid = __atomic_load_n(&s->ss_tid, __ATOMIC_RELAXED);
	lk_self_id = sc_slot_index(s);
	return lk_self_id;
}

static inline uint32_t lk_self(int32_t *tid)
{
	if (__builtin_expect(lk_self_id != 0, 1)) {
		*tid = lk_self_tid;
		return lk_self_id;
	}
	return lk_self_slow(tid);
}

/* The tid to compare with lm_tid, without setting anything up. */
static int32_t lk_self_tid_only(void)
{
	if (__builtin_expect(lk_self_id != 0, 1))
		return lk_self_tid;
	struct sc_slot *s = sc_thread_slot();
	if (s)
		return __atomic_load_n(&s->ss_tid, __ATOMIC_RELAXED);
	return (int32_t)gettid();
}

bool lk_timespec_valid(const struct timespec *ts)
{
	return ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000L;
}

bool lk_deadline_left(const struct lk_deadline *dl, struct timespec *rel)
{
	struct timespec now;
	clock_gettime(dl->dl_clock, &now);
	long sec = dl->dl_abs->tv_sec - now.tv_sec;
	long nsec = dl->dl_abs->tv_nsec - now.tv_nsec;
	if (nsec < 0) {
		nsec += 1000000000L;
		sec--;
	}
	if (sec < 0 || (sec == 0 && nsec == 0))
		return false;
	rel->tv_sec = sec;
	rel->tv_nsec = nsec;
	return true;
}

/*
 * => called with no lock state of ours; word is a futex word.
 * => 0 woken (or spurious), -EAGAIN *word != val, -EINTR signal,
 *    -ETIMEDOUT the deadline passed (no system call if already past).
 * The slot says SS_IN_RUNTIME meanwhile: this sleep is the runtime's.
 */
long lk_park(uint32_t *word, uint32_t val, const struct lk_deadline *dl,
             bool private_)
{
	struct timespec rel, *relp = NULL;
	if (dl && dl->dl_abs) {
		if (!lk_deadline_left(dl, &rel))
			return -ETIMEDOUT;
		relp = &rel;
	}
	struct sc_slot *s = sc_thread_slot();
	if (s)
		__atomic_or_fetch(&s->ss_flags, SS_IN_RUNTIME, __ATOMIC_RELAXED);
	long r = sc_futex_wait(word, val, relp, private_);
	if (s)
		__atomic_and_fetch(&s->ss_flags, ~SS_IN_RUNTIME, __ATOMIC_RELAXED);
	return r;
}

static inline bool lk_try_take(struct lk_mutex *m, uint32_t me)
{
	uint32_t z = 0;
	return __atomic_compare_exchange_n(&m->lm_word, &z, me, false,
	                                   __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

/* A waiter saw holder slot s runnable but off CPU: count one lock-holder
 * preemption for this hold (the first waiter to mark the word wins). */
static void lk_count_lhp(struct lk_mutex *m, uint32_t w, struct sc_slot *s)
{
	if (w & LK_LHP_SEEN)
		return;
	if (__atomic_compare_exchange_n(&m->lm_word, &w, w | LK_LHP_SEEN, false,
	                                __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		__atomic_add_fetch(&s->ss_lhp, 1, __ATOMIC_RELAXED);
}

/* => w: a held lock word.  Whether its holder is known to run now. */
static int lk_holder_state(struct lk_mutex *m, uint32_t w)
{
	uint32_t id = w & LK_OWNER_MASK;
	if (id == LK_ANON_OWNER)
		return OS_UNKNOWN;
	struct sc_slot *s = sc_slot_at(id);
	if (!s)
		return OS_NOT_RUNNING;      /* not a thread of this process */
	int st = sc_slot_state(s, NULL);
	if (st == SC_ONPROC)
		return OS_RUNNING;
	if (st < 0)
		return OS_UNKNOWN;
	if (st == SC_RUN)
		lk_count_lhp(m, w, s);
	return OS_NOT_RUNNING;
}

/* Register as a spinner unless the cap is reached. */
static bool lk_spin_enter(struct lk_mutex *m)
{
	unsigned cap = lk_max_spinners();
	uint16_t n = __atomic_load_n(&m->lm_spinners, __ATOMIC_RELAXED);
	do {
		if (n >= cap)
			return false;
	} while (!__atomic_compare_exchange_n(&m->lm_spinners, &n,
	                                      (uint16_t)(n + 1), true,
	                                      __ATOMIC_SEQ_CST,
	                                      __ATOMIC_RELAXED));
	return true;
}

/*
 * Waiters are parked and the lock was just released: wake one, unless a
 * running thread will take the lock anyway (a spinner) or a waiter woken
 * earlier has not run yet (lm_waking).  The woken waiter clears
 * lm_waking when it runs (lk_woke), so while it is being scheduled the
 * holder can release and retake the lock without a system call each
 * time.  If the wake found nobody, the flag is cleared here.
 */
static void lk_wake_one(struct lk_mutex *m)
{
	if (__atomic_load_n(&m->lm_spinners, __ATOMIC_SEQ_CST) != 0 ||
	    __atomic_load_n(&m->lm_waking, __ATOMIC_SEQ_CST) != 0)
		return;
	uint16_t z = 0;
	if (!__atomic_compare_exchange_n(&m->lm_waking, &z, 1, false,
	                                 __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
		return;
	if (sc_futex_wake(&m->lm_word, 1, true) <= 0)
		__atomic_store_n(&m->lm_waking, 0, __ATOMIC_SEQ_CST);
}

/* A parked waiter is running again (woken or not): it stands for the
 * wake in flight, so later unlocks may wake another. */
static inline void lk_woke(struct lk_mutex *m)
{
	if (__atomic_load_n(&m->lm_waking, __ATOMIC_RELAXED))
		__atomic_store_n(&m->lm_waking, 0, __ATOMIC_SEQ_CST);
}

/* A waiter leaving without the lock: if the lock is free and others are
 * parked, the wake that unlock may have skipped for us is passed on. */
static void lk_pass_wake(struct lk_mutex *m)
{
	if (__atomic_load_n(&m->lm_word, __ATOMIC_SEQ_CST) == 0 &&
	    __atomic_load_n(&m->lm_nwait, __ATOMIC_SEQ_CST) != 0)
		lk_wake_one(m);
}

/*
 * One spin phase.
 * => true: the lock is ours.  false: stop spinning and park (or the
 *    deadline passed).  The spinner registration is dropped either way.
 */
static bool lk_spin(struct lk_mutex *m, uint32_t me, int pol,
                    const struct lk_deadline *dl)
{
	if (!lk_spin_enter(m))
		return false;
	uint64_t limit = lk_spin_limit_ns(pol), blind = lk_spin_limit_ns(LK_SPIN);
	uint64_t t0 = 0;
	uint32_t seen = 0;
	unsigned backoff = 1, backoff_max = lk_backoff_max();
	bool got = false;
	for (unsigned i = 0;; i++) {
		uint32_t w = __atomic_load_n(&m->lm_word, __ATOMIC_RELAXED);
		if (w == 0) {
			if (lk_try_take(m, me)) {
				got = true;
				break;
			}
			w = __atomic_load_n(&m->lm_word, __ATOMIC_RELAXED);
			if (w == 0)
				continue;
		}
		if (pol == LK_OWNER && ((w & LK_OWNER_MASK) != seen || (i & 1) == 0)) {
			seen = w & LK_OWNER_MASK;
			int os = lk_holder_state(m, w);
			if (os == OS_NOT_RUNNING)
				break;
			if (os == OS_UNKNOWN && limit > blind)
				limit = blind;
		}
		if ((i & 7) == 0) {
			uint64_t now = lk_now_ns();
			if (t0 == 0)
				t0 = now;
			else if (now - t0 > limit)
				break;
			struct timespec rel;
			if (dl && !lk_deadline_left(dl, &rel))
				break;
		}
		for (unsigned k = 0; k < backoff; k++)
			lk_cpu_relax();
		if (backoff < backoff_max)
			backoff <<= 1;
	}
	__atomic_sub_fetch(&m->lm_spinners, 1, __ATOMIC_SEQ_CST);
	return got;
}

/*
 * => the fast path failed; me is our owner id.
 * => 0 with the lock held, or ETIMEDOUT (dl only) without it.
 */
static int lk_lock_slow(struct lk_mutex *m, uint32_t me,
                        const struct lk_deadline *dl)
{
	int pol = lk_policy();
	for (;;) {
		if (pol != LK_PARK && lk_spin(m, me, pol, dl))
			return 0;
		__atomic_add_fetch(&m->lm_nwait, 1, __ATOMIC_SEQ_CST);
		uint32_t w = __atomic_load_n(&m->lm_word, __ATOMIC_SEQ_CST);
		long r = 0;
		if (w != 0) {
			r = lk_park(&m->lm_word, w, dl, true);
			lk_woke(m);
		}
		if (r != -ETIMEDOUT) {
			if (lk_try_take(m, me)) {
				__atomic_sub_fetch(&m->lm_nwait, 1, __ATOMIC_SEQ_CST);
				return 0;
			}
		}
		__atomic_sub_fetch(&m->lm_nwait, 1, __ATOMIC_SEQ_CST);
		if (r == -ETIMEDOUT) {
			lk_pass_wake(m);
			return ETIMEDOUT;
		}
	}
}

void lk_mutex_init(struct lk_mutex *m, int type)
{
	memset(m, 0, sizeof *m);
	__atomic_store_n(&m->lm_kind, type & LK_KIND_TYPE_MASK, __ATOMIC_RELAXED);
}

static inline int lk_type(const struct lk_mutex *m)
{
	return __atomic_load_n(&m->lm_kind, __ATOMIC_RELAXED) & LK_KIND_TYPE_MASK;
}

/* Recursive and errorcheck: the checks glibc makes against the holder's
 * tid.  => 0 acquired again (recursive), an error, or -1: not ours. */
static int lk_relock_check(struct lk_mutex *m, int type, int32_t tid,
                           int busy_err)
{
	if (__atomic_load_n(&m->lm_tid, __ATOMIC_RELAXED) != tid)
		return -1;
	if (type == LK_ERRORCHECK)
		return busy_err;
	if (m->lm_count == UINT32_MAX)
		return EAGAIN;
	m->lm_count++;
	return 0;
}

static void lk_set_holder(struct lk_mutex *m, int32_t tid)
{
	__atomic_store_n(&m->lm_tid, tid, __ATOMIC_RELAXED);
	m->lm_count = 1;
}

/* The common lock path; dl NULL for no timeout. */
static int lk_lock_common(struct lk_mutex *m, const struct lk_deadline *dl)
{
	int32_t tid;
	uint32_t me = lk_self(&tid);
	int type = lk_type(m);
	if (__builtin_expect(type == LK_NORMAL || type == LK_ADAPTIVE, 1)) {
		if (__builtin_expect(lk_try_take(m, me), 1))
			return 0;
		if (dl && !lk_timespec_valid(dl->dl_abs))
			return EINVAL;
		return lk_lock_slow(m, me, dl);
	}
	int r = lk_relock_check(m, type, tid, EDEADLK);
	if (r >= 0)
		return r;
	if (!lk_try_take(m, me)) {
		if (dl && !lk_timespec_valid(dl->dl_abs))
			return EINVAL;
		if ((r = lk_lock_slow(m, me, dl)) != 0)
			return r;
	}
	lk_set_holder(m, tid);
	return 0;
}

int lk_mutex_lock(struct lk_mutex *m)
{
	return lk_lock_common(m, NULL);
}

int lk_mutex_timedlock(struct lk_mutex *m, clockid_t clock,
                       const struct timespec *abs)
{
	struct lk_deadline dl = { .dl_clock = clock, .dl_abs = abs };
	return lk_lock_common(m, &dl);
}

int lk_mutex_trylock(struct lk_mutex *m)
{
	int32_t tid;
	uint32_t me = lk_self(&tid);
	int type = lk_type(m);
	if (type == LK_NORMAL || type == LK_ADAPTIVE)
		return lk_try_take(m, me) ? 0 : EBUSY;
	int r = lk_relock_check(m, type, tid, EBUSY);
	if (r >= 0)
		return r;
	if (!lk_try_take(m, me))
		return EBUSY;
	lk_set_holder(m, tid);
	return 0;
}

int lk_mutex_unlock(struct lk_mutex *m)
{
	int type = lk_type(m);
	if (type == LK_RECURSIVE || type == LK_ERRORCHECK) {
		int32_t tid = lk_self_tid_only();
		if (__atomic_load_n(&m->lm_tid, __ATOMIC_RELAXED) != tid)
			return EPERM;
		if (type == LK_RECURSIVE && --m->lm_count != 0)
			return 0;
		__atomic_store_n(&m->lm_tid, 0, __ATOMIC_RELAXED);
	}
	(void)__atomic_exchange_n(&m->lm_word, 0, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&m->lm_nwait, __ATOMIC_SEQ_CST) != 0)
		lk_wake_one(m);
	return 0;
}

int lk_mutex_destroy(struct lk_mutex *m)
{
	if (__atomic_load_n(&m->lm_word, __ATOMIC_RELAXED) & LK_OWNER_MASK)
		return EBUSY;
	/* As glibc: an invalid kind, so use after destroy fails (EINVAL)
	 * until pthread_mutex_init. */
	__atomic_store_n(&m->lm_kind, -1, __ATOMIC_RELAXED);
	return 0;
}
