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

/* The holder's word carries LK_SPINNING and someone is parked: unlock
 * leaves LK_CONTENDED in the free word instead of waking, and the next
 * holder carries it, so its unlock wakes. */
static int mark_and_unlock(pthread_mutex_t *m)
{
	sc_lock_mutex_lock(m);
	__atomic_or_fetch(&LM(m)->lm_word, LK_CONTENDED | LK_SPINNING,
	                  __ATOMIC_RELAXED);
	__atomic_store_n(&LM(m)->lm_parked, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&wakes, 0, __ATOMIC_RELAXED);
	sc_lock_mutex_unlock(m);
	return (int)__atomic_load_n(&wakes, __ATOMIC_RELAXED);
}

Test(lock_wake, spinner_mark_defers_the_wake)
{
	lk_set_policy(LK_PARK);
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	cr_assert_eq(mark_and_unlock(&m), 0, "no wake: the spinner takes it");
	cr_assert_eq(word(&m), LK_CONTENDED, "the duty stays in the free word");
	sc_lock_mutex_lock(&m);
	cr_assert(word(&m) & LK_CONTENDED, "the next holder carries the flag");
	sc_lock_mutex_unlock(&m);
	cr_assert_eq(__atomic_load_n(&wakes, __ATOMIC_RELAXED), 1,
	             "and its unlock wakes the parked");
	cr_assert_eq(word(&m), 0);
	cr_assert_eq(LM(&m)->lm_parked, 1, "the fake parked count is untouched");
}

/* In a fork child the parent's spinners are gone: a mark found there
 * must not keep the child's parked waiters asleep. */
Test(lock_wake, fork_child_ignores_marks)
{
	lk_set_policy(LK_PARK);
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	sc_lock_mutex_lock(&m);      /* sets up this thread (and atfork) */
	sc_lock_mutex_unlock(&m);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int w = mark_and_unlock(&m);
		_exit(w == 1 && word(&m) == 0 ? 0 : 1);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	          "the child woke its parked waiter despite the mark");
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
