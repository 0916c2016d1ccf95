/*
 * mutex.c - the owner-aware adaptive mutex, living in the program's own
 * pthread_mutex_t (struct lk_mutex in lock.h).
 *
 * Lock word (lm_word, the futex word):
 *   0                      unlocked
 *   LK_CONTENDED           unlocked, waiters may be parked, and the next
 *                          holder must carry the flag (see Waking)
 *   id | flags             held by the thread whose schedctl slot index
 *                          is id (1..65535), or LK_ANON_OWNER when the
 *                          holder has no slot (its slot could not be set
 *                          up, or it runs after its slot was released)
 *   flags: LK_CONTENDED    waiters may be parked: unlock must look
 *          LK_LHP_SEEN     a waiter saw this holder preempted while it
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
 * Waking (the classic three-state futex mutex, with the owner in the
 * word, plus counts of parked and spinning threads): a thread about to
 * park counts itself in lm_parked, sets LK_CONTENDED and sleeps on the
 * word's value; unlock exchanges the word with 0 and, iff LK_CONTENDED
 * was set, calls lk_mutex_wake(), which
 *   - does nothing if lm_parked is 0: the flag was left by a waiter that
 *     has since gone (woken, timed out, or it took the lock);
 *   - does nothing if a spinner is registered (lm_spinners): the duty to
 *     wake passes to the spinners, which are awake (see below), the word
 *     stays 0, so the next lock (usually the releasing thread's own) is
 *     the fast path's CAS, and the parked stay asleep while running
 *     threads trade the lock;
 *   - otherwise wakes one parked waiter.
 * A registered spinner that takes a free word takes it flagged if anyone
 * is parked (it reads lm_parked after a full fence, so it sees a waiter
 * whose look at the word came before the take); one that stops spinning
 * without the lock unregisters, then goes the parking way: it counts
 * itself parked and looks at the word after a full fence, takes a free
 * word flagged, or flags the held word and sleeps, so that holder's
 * unlock wakes (or the next spinner takes the duty over).  Anyone who
 * takes a free word keeps the LK_CONTENDED found in it, and a thread
 * that has parked takes the lock flagged.  So the duty to wake the
 * parked is always held by the word, a registered spinner, or a thread
 * that is awake.  A spinner preempted while registered delays the wake
 * of the parked until it runs again (the running threads still take
 * the lock meanwhile).  A waiter that gives up (timeout) leaves the
 * flag it set; the count then tells the next unlock whether anyone is
 * still parked.  (Session 2 had a per-hold mark instead of the count: it
 * was lost at every release, so with short critical sections most
 * unlocks woke a waiter that parked again at once; and a free word left
 * flagged for the marking spinner sent every next lock off the fast
 * path.)
 *
 * Memory orders:
 *   lm_word   taking the lock is a CAS with acquire, releasing it an
 *             exchange with release.  A parking waiter's CAS that sets
 *             LK_CONTENDED is a release (it publishes its lm_parked
 *             count to the unlock that reads the flag); the other flag
 *             updates (LK_LHP_SEEN, a spinner adding LK_CONTENDED to
 *             the word it took) are relaxed: they publish nothing but
 *             the flag, and the kernel re-reads the word under its own
 *             lock in FUTEX_WAIT
 *   lm_parked a waiter increments it, then a seq_cst fence, then reads
 *             the word (and the kernel compares it again); lk_mutex_wake
 *             runs a seq_cst fence after the releasing exchange, then
 *             reads the count.  Store-buffering with fences on both
 *             sides: either the unlock sees the count, or the waiter
 *             sees the released word and does not sleep on the old value.
 *             Saturates at LK_PARKED_MANY, which sticks (always wake)
 *   lm_spinners  the spinner cap, and whether the duty to wake can be
 *             left to a spinner: relaxed counter, read by
 *             lk_mutex_wake after its fence; a spinner unregisters
 *             before the fence in lk_parked_enter and its look at the
 *             word (store-buffering with the unlock: either the unlock
 *             sees it gone and wakes, or the spinner sees the released
 *             word and takes it flagged)
 *   lm_bias   relaxed load and store, a hint (lost updates only blur it)
 *   lm_tid, lm_count  written by the holder only (relaxed), published to
 *             the next holder by the release/acquire of lm_word
 *   lm_kind   relaxed: set by init, which must happen-before any use
 * Stale counts in a fork child (parent threads that were parked or
 * spinning) only cost spurious wakes or a smaller spinner allowance,
 * except that a parent's spinner would seem to hold the duty to wake:
 * a fork child never leaves it to spinners (lk_spinners_ignored), it
 * always wakes.
 *
 * Policies (lk_policy()): owner spins only while the holder's slot says
 * SC_ONPROC (re-read every other look and whenever the holder changes),
 * at most lk_max_spinners() (ncpus - 1) spinners per lock, for at most
 * lk_spin_limit_ns(); a holder whose state is unknown gets the short
 * blind bound.  Where its spin phases keep ending without the lock
 * (holders preempted, or held too long), owner parks at once and only
 * probes spinning now and then (lm_bias, see lk_bias_update()).  spin
 * spins blindly for the short bound.  park never spins.  Every policy
 * parks on the futex through lk_park().  Spinners back off
 * exponentially (1..lk_backoff_max() pauses between looks, up to about
 * 1.2 us) so that they steal little of the holder's cache line and a
 * running holder keeps the lock for runs of short critical sections
 * instead of handing it (and the data's cache lines) to the other CPU
 * at every unlock (policy.c, "Backoff").
 *
 * Profiling (src/prof/prof.h): each hook is one predictable branch on
 * a global flag while profiling is off; the slow path fills a struct
 * prof_acq on its own stack (spin time won/lost, park time and why).
 *
 * Fairness: none promised, as glibc.  A releasing thread does not hand
 * the lock over; a running thread (spinner or newcomer) may take it
 * ahead of parked waiters.  That keeps the lock moving while woken
 * waiters are still being scheduled, at the price of possible barging.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lock/lock.h"
#include "prof/prof.h"

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
__thread uint32_t lk_self_id __attribute__((tls_model("initial-exec")));
static __thread int32_t lk_self_tid __attribute__((tls_model("initial-exec")));
static pthread_once_t lk_atfork_once = PTHREAD_ONCE_INIT;

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

/* Set in a fork child: a parent's spinner counted in lm_spinners does
 * not exist here, so the duty to wake is never left to spinners
 * (relaxed; written by the only thread of a fresh child). */
static bool lk_spinners_ignored;

static void lk_atfork_child(void)
{
	lk_self_id = 0;
	lk_self_tid = 0;
	__atomic_store_n(&lk_spinners_ignored, true, __ATOMIC_RELAXED);
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
 * The runtime's futex calls are not notified, so where the supervisor
 * is the slot's source the thread says itself that it sleeps and, once
 * woken, that it runs: otherwise a woken waiter that takes the lock
 * would read SC_SLEEP until the next /proc sweep (1-2 ms), and every
 * waiter would park on it instead of spinning.
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
	if (s) {
		__atomic_or_fetch(&s->ss_flags, SS_IN_RUNTIME, __ATOMIC_RELAXED);
		sc_slot_self_mark(s, SC_SLEEP, SYS_futex);
	}
	long r = sc_futex_wait(word, val, relp, private_);
	lk_park_ended();
	return r;
}

void lk_park_ended(void)
{
	struct sc_slot *s = sc_thread_slot();
	if (s) {
		__atomic_and_fetch(&s->ss_flags, ~SS_IN_RUNTIME, __ATOMIC_RELAXED);
		sc_slot_self_mark(s, SC_ONPROC, ~0u);
	}
}

static inline bool lk_try_take(struct lk_mutex *m, uint32_t me)
{
	uint32_t z = 0;
	return __atomic_compare_exchange_n(&m->lm_word, &z, me, false,
	                                   __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

/* => w: a value of the word with no owner.  Take it as val. */
static inline bool lk_take_free(struct lk_mutex *m, uint32_t w, uint32_t val)
{
	return __atomic_compare_exchange_n(&m->lm_word, &w, val, false,
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
	uint8_t n = __atomic_load_n(&m->lm_spinners, __ATOMIC_RELAXED);
	do {
		if (n >= cap)
			return false;
	} while (!__atomic_compare_exchange_n(&m->lm_spinners, &n,
	                                      (uint8_t)(n + 1), true,
	                                      __ATOMIC_RELAXED,
	                                      __ATOMIC_RELAXED));
	return true;
}

/*
 * The owner policy's per-lock estimate of whether spinning pays
 * (lm_bias, a relaxed hint: lost updates only blur it).  A spin phase
 * that ends without the lock (the holder went off its CPU, or the bound
 * ran out) adds LK_BIAS_FAIL; one that wins takes a quarter (and one)
 * off.  At LK_BIAS_PARK or above a waiter parks at once, as glibc's
 * default mutex does, and takes LK_BIAS_PROBE off, so that every few
 * slow paths one waiter spins again to test whether it now pays
 * (constants in lock.h).
 */
static bool lk_bias_says_park(struct lk_mutex *m)
{
	unsigned b = __atomic_load_n(&m->lm_bias, __ATOMIC_RELAXED);
	if (b < LK_BIAS_PARK)
		return false;
	__atomic_store_n(&m->lm_bias, (uint8_t)(b - LK_BIAS_PROBE),
	                 __ATOMIC_RELAXED);
	return true;
}

static void lk_bias_update(struct lk_mutex *m, bool won)
{
	unsigned b = __atomic_load_n(&m->lm_bias, __ATOMIC_RELAXED);
	if (won)
		b = b > 0 ? b - b / 4 - 1 : 0;
	else
		b = b + LK_BIAS_FAIL > 255 ? 255 : b + LK_BIAS_FAIL;
	__atomic_store_n(&m->lm_bias, (uint8_t)b, __ATOMIC_RELAXED);
}

/* A registered spinner took the free word w as its own, unflagged: the
 * unlocks it stood in for left the parked waiters to it, so it flags
 * the word if anyone is parked.  The fence pairs with the one after a
 * waiter counts itself parked (see "Waking"). */
static void lk_spinner_took(struct lk_mutex *m, uint32_t taken)
{
	if (taken & LK_CONTENDED)
		return;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&m->lm_parked, __ATOMIC_RELAXED) != 0)
		__atomic_or_fetch(&m->lm_word, LK_CONTENDED, __ATOMIC_RELAXED);
}

/* lm_parked, saturating at the sticky LK_PARKED_MANY.  Entering is
 * followed by a full fence (see "Waking" at the top). */
static bool lk_parked_enter(struct lk_mutex *m)
{
	uint16_t n = __atomic_load_n(&m->lm_parked, __ATOMIC_RELAXED);
	do {
		if (n == LK_PARKED_MANY)
			break;
	} while (!__atomic_compare_exchange_n(&m->lm_parked, &n,
	                                      (uint16_t)(n + 1), true,
	                                      __ATOMIC_RELAXED,
	                                      __ATOMIC_RELAXED));
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return n != LK_PARKED_MANY;
}

static void lk_parked_leave(struct lk_mutex *m, bool counted)
{
	if (!counted)
		return;
	uint16_t n = __atomic_load_n(&m->lm_parked, __ATOMIC_RELAXED);
	do {
		if (n == LK_PARKED_MANY || n == 0)
			return;
	} while (!__atomic_compare_exchange_n(&m->lm_parked, &n,
	                                      (uint16_t)(n - 1), true,
	                                      __ATOMIC_RELAXED,
	                                      __ATOMIC_RELAXED));
}

/*
 * One spin phase; flag is LK_CONTENDED for a waiter that has parked
 * before (it takes the lock flagged, for those still parked).
 * => LK_SPUN_GOT: the lock is ours.  LK_SPUN_CAP: not spun (the cap was
 *    reached).  LK_SPUN_FAILED: spun as a registered spinner and stopped
 *    without the lock (park, or the deadline passed): the caller now
 *    holds the registered spinners' duty to wake (see "Waking").  The
 *    registration is dropped in every case.
 */
enum { LK_SPUN_FAILED, LK_SPUN_GOT, LK_SPUN_CAP };

static int lk_spin(struct lk_mutex *m, uint32_t me, int pol,
                    const struct lk_deadline *dl, uint32_t flag,
                    struct prof_acq *pa)
{
	if (!lk_spin_enter(m)) {
		pa->pa_park_reason_next = PROF_PARK_SPINNER_CAP;
		return LK_SPUN_CAP;
	}
	uint64_t ps = prof_on() ? sc_now_ns() : 0;
	int reason = PROF_PARK_SPIN_BUDGET;
	uint64_t limit = lk_spin_limit_ns(pol), blind = lk_spin_limit_ns(LK_SPIN);
	uint64_t t0 = 0;
	uint32_t seen = 0;
	unsigned backoff = 1, backoff_max = lk_backoff_max();
	bool got = false;
	for (unsigned i = 0;; i++) {
		uint32_t w = __atomic_load_n(&m->lm_word, __ATOMIC_RELAXED);
		if ((w & LK_OWNER_MASK) == 0) {
			uint32_t v = me | flag | (w & LK_CONTENDED);
			if (lk_take_free(m, w, v)) {
				lk_spinner_took(m, v);
				got = true;
				break;
			}
			continue;
		}
		if (pol == LK_OWNER && ((w & LK_OWNER_MASK) != seen || (i & 1) == 0)) {
			seen = w & LK_OWNER_MASK;
			int os = lk_holder_state(m, w);
			if (os == OS_NOT_RUNNING) {
				reason = PROF_PARK_OWNER_OFFCPU;
				break;
			}
			if (os == OS_UNKNOWN && limit > blind)
				limit = blind;
		}
		/* The clock costs little beside a long wait: read it at every
		 * look once the waits are long, else every eighth. */
		if ((i & 7) == 0 || backoff >= 16) {
			uint64_t now = sc_now_ns();
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
		backoff = backoff * 2 < backoff_max ? backoff * 2 : backoff_max;
	}
	if (pol == LK_OWNER)
		lk_bias_update(m, got);
	/* Unregistered before the fence in lk_parked_enter (see "Waking"). */
	__atomic_sub_fetch(&m->lm_spinners, 1, __ATOMIC_RELAXED);
	if (prof_on()) {
		prof_acq_spun(pa, sc_now_ns() - ps, got, PROF_SPINS);
		pa->pa_park_reason_next = (uint8_t)reason;
	}
	return got ? LK_SPUN_GOT : LK_SPUN_FAILED;
}

/*
 * => the fast path failed; me is our owner id.
 * => 0 with the lock held, or ETIMEDOUT (dl only) without it; in that
 *    case LK_CONTENDED stays set if we set it, so the holder still wakes
 *    the next waiter.
 */
static int lk_lock_slow(struct lk_mutex *m, uint32_t me,
                        const struct lk_deadline *dl)
{
	int pol = lk_policy();
	uint32_t flag = 0;     /* LK_CONTENDED once we have parked, or
	                          spun: take the lock flagged */
	struct prof_acq pa = { 0 };
	if (prof_on()) {
		uint32_t o = __atomic_load_n(&m->lm_word, __ATOMIC_RELAXED) &
		             LK_OWNER_MASK;
		prof_acq_begin(&pa, m, o == LK_ANON_OWNER ? 0 : o, 0);
		pa.pa_park_reason_next = PROF_PARK_POLICY;
	}
	for (;;) {
		bool spin = pol == LK_SPIN ||
		            (pol == LK_OWNER && !lk_bias_says_park(m));
		int spun = spin ? lk_spin(m, me, pol, dl, flag, &pa) : LK_SPUN_CAP;
		if (spun == LK_SPUN_GOT) {
			prof_contended(m, &pa, NULL);
			return 0;
		}
		/* A spinner's duty to wake is ours now: whatever we take
		 * below, we take flagged (see "Waking"). */
		if (spun == LK_SPUN_FAILED)
			flag = LK_CONTENDED;
		if (!spin && prof_on())
			pa.pa_park_reason_next = PROF_PARK_POLICY;
		/* Count ourselves parked before the last look at the word
		 * (the fence in lk_parked_enter): an unlock that then finds
		 * no one counted has freed a word we will see free. */
		bool counted = lk_parked_enter(m);
		uint32_t w = __atomic_load_n(&m->lm_word, __ATOMIC_RELAXED);
		for (;;) {
			if ((w & LK_OWNER_MASK) == 0) {
				/* Free: take it; flagged if we or others parked. */
				if (lk_take_free(m, w, me | flag | (w & LK_CONTENDED))) {
					lk_parked_leave(m, counted);
					prof_contended(m, &pa, NULL);
					return 0;
				}
				w = __atomic_load_n(&m->lm_word, __ATOMIC_RELAXED);
				continue;
			}
			if (w & LK_CONTENDED)
				break;
			if (__atomic_compare_exchange_n(&m->lm_word, &w,
			                                w | LK_CONTENDED, false,
			                                __ATOMIC_RELEASE,
			                                __ATOMIC_RELAXED)) {
				w |= LK_CONTENDED;
				break;
			}
		}
		uint64_t p0 = prof_on() ? sc_now_ns() : 0;
		long r = lk_park(&m->lm_word, w, dl, true);
		lk_parked_leave(m, counted);
		if (prof_on())
			prof_acq_parked(&pa, sc_now_ns() - p0, pa.pa_park_reason_next);
		if (r == -ETIMEDOUT) {
			prof_timedout(m, &pa, NULL);
			return ETIMEDOUT;
		}
		/* Woken (or not): the unlock that woke us cleared the flag,
		 * and others may still be parked. */
		flag = LK_CONTENDED;
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
		if (__builtin_expect(lk_try_take(m, me), 1)) {
			prof_acquired(m, NULL);
			return 0;
		}
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
		lk_set_holder(m, tid);
		return 0;
	}
	lk_set_holder(m, tid);
	prof_acquired(m, NULL);
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
	if (type == LK_RECURSIVE || type == LK_ERRORCHECK) {
		int r = lk_relock_check(m, type, tid, EBUSY);
		if (r >= 0)
			return r;
	}
	uint32_t w = __atomic_load_n(&m->lm_word, __ATOMIC_RELAXED);
	for (;;) {
		if (w & LK_OWNER_MASK) {
			prof_try_failed(m, NULL);
			return EBUSY;
		}
		/* Keep LK_CONTENDED: parked waiters still need a wake. */
		if (__atomic_compare_exchange_n(&m->lm_word, &w,
		                                me | (w & LK_CONTENDED), false,
		                                __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			break;
	}
	if (type == LK_RECURSIVE || type == LK_ERRORCHECK)
		lk_set_holder(m, tid);
	prof_acquired(m, NULL);
	return 0;
}

/*
 * => the caller released the word, which had LK_CONTENDED set.
 * Wake one parked waiter unless none is parked, or a registered spinner
 * takes over the duty to wake (see "Waking").
 */
void lk_mutex_wake(struct lk_mutex *m)
{
	/* Pairs with the fences after a waiter counts itself in lm_parked
	 * (a spinner that unregistered passes through it before it looks
	 * at the word): one of the two sides sees the other. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&m->lm_parked, __ATOMIC_RELAXED) == 0)
		return;
	if (__atomic_load_n(&m->lm_spinners, __ATOMIC_RELAXED) != 0 &&
	    !__atomic_load_n(&lk_spinners_ignored, __ATOMIC_RELAXED))
		return;
	sc_futex_wake(&m->lm_word, 1, true);
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
	lk_mutex_release(m);
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
