/*
 * When unlock wakes (src/lock/mutex.c, "Waking"): only if someone is
 * parked, not when a marking spinner will take the lock, and always in
 * a fork child, where a parent's spinner's mark means nothing.  Linked
 * with --wrap for sc_futex_wait and sc_futex_wake to count both.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lock/lock.h"
#include "util.h"

long __real_sc_futex_wait(uint32_t *, uint32_t, const struct timespec *, bool);
long __wrap_sc_futex_wait(uint32_t *u, uint32_t v, const struct timespec *t,
                          bool p);
long __real_sc_futex_wake(uint32_t *, int, bool);
long __wrap_sc_futex_wake(uint32_t *u, int n, bool p);

static unsigned long waits, wakes;

long __wrap_sc_futex_wait(uint32_t *u, uint32_t v, const struct timespec *t,
                          bool p)
{
	__atomic_add_fetch(&waits, 1, __ATOMIC_RELAXED);
	return __real_sc_futex_wait(u, v, t, p);
}

long __wrap_sc_futex_wake(uint32_t *u, int n, bool p)
{
	__atomic_add_fetch(&wakes, 1, __ATOMIC_RELAXED);
	return __real_sc_futex_wake(u, n, p);
}

#define LM(m) ((struct lk_mutex *)(void *)(m))

static uint32_t word(pthread_mutex_t *m)
{
	return __atomic_load_n(&LM(m)->lm_word, __ATOMIC_ACQUIRE);
}

TestSuite(lock_wake, .timeout = 60);

static pthread_mutex_t wm = PTHREAD_MUTEX_INITIALIZER;

static void *lock_unlock(void *arg)
{
	sc_lock_mutex_lock(&wm);
	sc_lock_mutex_unlock(&wm);
	return arg;
}

/* A waiter that parked takes the lock flagged; its own unlock then
 * finds nobody parked and makes no system call. */
Test(lock_wake, flagged_retake_wakes_nobody)
{
	lk_set_policy(LK_PARK);
	__atomic_store_n(&waits, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&wakes, 0, __ATOMIC_RELAXED);
	sc_lock_mutex_lock(&wm);
	pthread_t t;
	pthread_create(&t, NULL, lock_unlock, NULL);
	for (int i = 0; i < 2000 && (__atomic_load_n(&waits, __ATOMIC_RELAXED) == 0 ||
	                             __atomic_load_n(&LM(&wm)->lm_parked,
	                                             __ATOMIC_RELAXED) == 0); i++)
		lt_sleep_ms(1);
	cr_assert_geq(__atomic_load_n(&waits, __ATOMIC_RELAXED), 1,
	              "the waiter parked");
	lt_sleep_ms(20);
	sc_lock_mutex_unlock(&wm);
	pthread_join(t, NULL);
	unsigned long n = __atomic_load_n(&wakes, __ATOMIC_RELAXED);
	cr_assert_eq(n, 1, "one wake for one parked waiter, got %lu", n);
	cr_assert_eq(word(&wm), 0);
	cr_assert_eq(LM(&wm)->lm_parked, 0, "parked count back to 0");
}

/* Someone is parked and a spinner is registered: unlock leaves the wake
 * to the spinner, and the free word is 0, so the next lock is the fast
 * path's.  Without a registered spinner the same unlock wakes. */
static int unlock_flagged(pthread_mutex_t *m, uint8_t spinners)
{
	sc_lock_mutex_lock(m);
	__atomic_or_fetch(&LM(m)->lm_word, LK_CONTENDED, __ATOMIC_RELAXED);
	__atomic_store_n(&LM(m)->lm_parked, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&LM(m)->lm_spinners, spinners, __ATOMIC_RELAXED);
	__atomic_store_n(&wakes, 0, __ATOMIC_RELAXED);
	sc_lock_mutex_unlock(m);
	__atomic_store_n(&LM(m)->lm_spinners, 0, __ATOMIC_RELAXED);
	return (int)__atomic_load_n(&wakes, __ATOMIC_RELAXED);
}

Test(lock_wake, registered_spinner_takes_the_wake_duty)
{
	lk_set_policy(LK_PARK);
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	cr_assert_eq(unlock_flagged(&m, 1), 0, "no wake: a spinner is registered");
	cr_assert_eq(word(&m), 0, "the free word is 0: next lock is the fast path");
	cr_assert_eq(unlock_flagged(&m, 0), 1, "no spinner: the unlock wakes");
	cr_assert_eq(word(&m), 0);
	cr_assert_eq(LM(&m)->lm_parked, 1, "the fake parked count is untouched");
}

/* In a fork child the parent's spinners are gone: a spinner count found
 * there must not keep the child's parked waiters asleep. */
Test(lock_wake, fork_child_ignores_spinners)
{
	lk_set_policy(LK_PARK);
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	sc_lock_mutex_lock(&m);      /* sets up this thread (and atfork) */
	sc_lock_mutex_unlock(&m);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int w = unlock_flagged(&m, 1);
		_exit(w == 1 && word(&m) == 0 ? 0 : 1);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	          "the child woke its parked waiter despite the spinner count");
}

/* A spinner that takes the lock while someone is parked takes it
 * flagged: the unlocks it stood in for did not wake, so its own unlock
 * must.  (Parked count faked; the main thread holds the lock while on
 * a CPU, so the owner policy spins on it.) */
static pthread_mutex_t sm = PTHREAD_MUTEX_INITIALIZER;
static uint32_t spinner_saw;
static int spinner_go;

static void *spin_taker(void *arg)
{
	sc_lock_mutex_lock(&sm);
	__atomic_store_n(&spinner_saw, word(&sm) | 1u, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&spinner_go, __ATOMIC_ACQUIRE))
		lt_sleep_ms(1);
	sc_lock_mutex_unlock(&sm);
	return arg;
}

Test(lock_wake, spinner_takes_flagged_when_someone_parked)
{
	lk_set_policy(LK_OWNER);
	cr_assert_not_null(sc_thread_setup());
	__atomic_store_n(&LM(&sm)->lm_bias, 0, __ATOMIC_RELAXED);
	sc_lock_mutex_lock(&sm);
	__atomic_store_n(&LM(&sm)->lm_parked, 1, __ATOMIC_RELAXED);
	pthread_t t;
	pthread_create(&t, NULL, spin_taker, NULL);
	/* Stay on the CPU until the other thread spins (or has parked). */
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do
		clock_gettime(CLOCK_MONOTONIC, &now);
	while (__atomic_load_n(&LM(&sm)->lm_spinners, __ATOMIC_RELAXED) == 0 &&
	       __atomic_load_n(&LM(&sm)->lm_parked, __ATOMIC_RELAXED) < 2 &&
	       now.tv_sec - t0.tv_sec < 5);
	__atomic_store_n(&wakes, 0, __ATOMIC_RELAXED);
	sc_lock_mutex_unlock(&sm);
	for (int i = 0; i < 5000 && !__atomic_load_n(&spinner_saw,
	                                             __ATOMIC_ACQUIRE); i++)
		lt_sleep_ms(1);
	uint32_t w = __atomic_load_n(&spinner_saw, __ATOMIC_ACQUIRE);
	cr_assert(w & LK_CONTENDED, "taken flagged: word %#x", w);
	__atomic_store_n(&spinner_go, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	cr_assert_geq(__atomic_load_n(&wakes, __ATOMIC_RELAXED), 1,
	              "its unlock woke the parked");
	__atomic_store_n(&LM(&sm)->lm_parked, 0, __ATOMIC_RELAXED);
}

/* Many threads, every policy: the counts come back to zero and the word
 * to 0 (a leaked count or a lost flag would show here, a lost wake as a
 * hang). */
#define NT 8
#define NOPS 20000
static long shared_count;

static void *hammer(void *arg)
{
	for (int i = 0; i < NOPS; i++) {
		sc_lock_mutex_lock(&wm);
		shared_count++;
		sc_lock_mutex_unlock(&wm);
	}
	return arg;
}

static void counts_balance(int policy)
{
	lk_set_policy(policy);
	shared_count = 0;
	pthread_t t[NT];
	for (int i = 0; i < NT; i++)
		pthread_create(&t[i], NULL, hammer, NULL);
	for (int i = 0; i < NT; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(shared_count, (long)NT * NOPS);
	cr_assert_eq(word(&wm), 0, "word %#x", word(&wm));
	cr_assert_eq(LM(&wm)->lm_parked, 0);
	cr_assert_eq(LM(&wm)->lm_spinners, 0);
}

Test(lock_wake, counts_balance_owner) { counts_balance(LK_OWNER); }
Test(lock_wake, counts_balance_spin)  { counts_balance(LK_SPIN); }
Test(lock_wake, counts_balance_park)  { counts_balance(LK_PARK); }

/* Owner policy's lm_bias: a spin phase that ends without the lock (the
 * holder is asleep) raises it; at a high bias a waiter parks without
 * spinning, taking only LK_BIAS_PROBE off per slow path (a spin phase
 * would have saturated it, and a win taken a quarter off). */
static pthread_mutex_t bm = PTHREAD_MUTEX_INITIALIZER;

static void *lock_unlock_bm(void *arg)
{
	sc_lock_mutex_lock(&bm);
	sc_lock_mutex_unlock(&bm);
	return arg;
}

static unsigned contend_once(void)
{
	sc_lock_mutex_lock(&bm);
	pthread_t t;
	pthread_create(&t, NULL, lock_unlock_bm, NULL);
	/* Asleep holding it (spinning cannot pay) until the waiter parks. */
	for (int i = 0; i < 5000 && __atomic_load_n(&LM(&bm)->lm_parked,
	                                            __ATOMIC_RELAXED) == 0; i++)
		lt_sleep_ms(1);
	lt_sleep_ms(10);
	sc_lock_mutex_unlock(&bm);
	pthread_join(t, NULL);
	return __atomic_load_n(&LM(&bm)->lm_bias, __ATOMIC_RELAXED);
}

Test(lock_wake, bias_parks_where_spinning_fails)
{
	lk_set_policy(LK_OWNER);
	cr_assert_not_null(sc_thread_setup());
	unsigned b = contend_once();
	cr_assert(b > 0 && b < LK_BIAS_FAIL, "one failed phase, one win: %u", b);
	__atomic_store_n(&LM(&bm)->lm_bias, 255, __ATOMIC_RELAXED);
	b = contend_once();
	cr_assert(b < 255 && b >= 255 - 4 * LK_BIAS_PROBE,
	          "parked at once, no spin phase: bias %u", b);
}
