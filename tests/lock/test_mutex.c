/* The replacement mutex through the lock API (src/lock), no preload. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lock/lock.h"
#include "util.h"

#define NTHREADS 6
#define NITERS   20000

struct stress {
	pthread_mutex_t st_m;
	long st_counter;
	int st_type;
};

static void *stress_worker(void *arg)
{
	struct stress *st = arg;
	for (int i = 0; i < NITERS; i++) {
		int r = sc_lock_mutex_lock(&st->st_m);
		if (r)
			return (void *)(intptr_t)r;
		if (st->st_type == PTHREAD_MUTEX_RECURSIVE && (i & 7) == 0) {
			if ((r = sc_lock_mutex_lock(&st->st_m)) != 0)
				return (void *)(intptr_t)r;
			st->st_counter++;
			sc_lock_mutex_unlock(&st->st_m);
		} else {
			st->st_counter++;
		}
		/* Plain read-modify-write: a lost update shows a broken lock. */
		long v = st->st_counter;
		if ((i & 63) == 0)
			sched_yield();
		st->st_counter = v;
		if ((r = sc_lock_mutex_unlock(&st->st_m)) != 0)
			return (void *)(intptr_t)r;
	}
	return NULL;
}

static void run_stress(int policy, int type)
{
	lk_set_policy(policy);
	struct stress st = { .st_type = type };
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, type);
	cr_assert_eq(sc_lock_mutex_init(&st.st_m, &a), 0);
	pthread_t t[NTHREADS];
	for (int i = 0; i < NTHREADS; i++)
		pthread_create(&t[i], NULL, stress_worker, &st);
	for (int i = 0; i < NTHREADS; i++) {
		void *ret;
		pthread_join(t[i], &ret);
		cr_assert_null(ret, "policy %s type %d: error %d",
		               lk_policy_name(policy), type, (int)(intptr_t)ret);
	}
	long want = (long)NTHREADS * NITERS;
	cr_assert_eq(st.st_counter, want, "policy %s type %d: %ld != %ld",
	             lk_policy_name(policy), type, st.st_counter, want);
	cr_assert_eq(sc_lock_mutex_destroy(&st.st_m), 0);
}

static void stress_all_types(int policy)
{
	int types[] = { PTHREAD_MUTEX_NORMAL, PTHREAD_MUTEX_RECURSIVE,
	                PTHREAD_MUTEX_ERRORCHECK, PTHREAD_MUTEX_ADAPTIVE_NP };
	for (unsigned i = 0; i < 4; i++)
		run_stress(policy, types[i]);
}

TestSuite(lock_mutex, .timeout = 60);

Test(lock_mutex, stress_owner) { stress_all_types(LK_OWNER); }
Test(lock_mutex, stress_spin)  { stress_all_types(LK_SPIN); }
Test(lock_mutex, stress_park)  { stress_all_types(LK_PARK); }

static void *hold_and_report(void *arg)
{
	pthread_mutex_t *m = arg;
	return (void *)(intptr_t)sc_lock_mutex_trylock(m);
}

static int trylock_from_other_thread(pthread_mutex_t *m)
{
	pthread_t t;
	void *ret;
	pthread_create(&t, NULL, hold_and_report, m);
	pthread_join(t, &ret);
	return (int)(intptr_t)ret;
}

static void *unlock_other(void *arg)
{
	return (void *)(intptr_t)sc_lock_mutex_unlock(arg);
}

static int unlock_from_other_thread(pthread_mutex_t *m)
{
	pthread_t t;
	void *ret;
	pthread_create(&t, NULL, unlock_other, m);
	pthread_join(t, &ret);
	return (int)(intptr_t)ret;
}

Test(lock_mutex, normal_codes)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	cr_assert_eq(sc_lock_mutex_trylock(&m), 0);
	cr_assert_eq(sc_lock_mutex_trylock(&m), EBUSY);
	cr_assert_eq(trylock_from_other_thread(&m), EBUSY);
	cr_assert_eq(sc_lock_mutex_destroy(&m), EBUSY, "destroying a held mutex");
	cr_assert_eq(sc_lock_mutex_unlock(&m), 0);
	cr_assert_eq(trylock_from_other_thread(&m), 0, "left locked by the thread");
	cr_assert_eq(sc_lock_mutex_unlock(&m), 0, "normal: anyone may unlock");
	cr_assert_eq(sc_lock_mutex_consistent(&m), EINVAL, "not robust");
	cr_assert_eq(sc_lock_mutex_destroy(&m), 0);
	cr_assert_eq(sc_lock_mutex_lock(&m), EINVAL, "use after destroy, as glibc");
	cr_assert_eq(sc_lock_mutex_init(&m, NULL), 0, "init again");
	cr_assert_eq(sc_lock_mutex_lock(&m), 0);
	cr_assert_eq(sc_lock_mutex_unlock(&m), 0);
}

Test(lock_mutex, errorcheck_codes)
{
	pthread_mutex_t m = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
	cr_assert_eq(sc_lock_mutex_unlock(&m), EPERM, "unlock while unlocked");
	cr_assert_eq(sc_lock_mutex_lock(&m), 0);
	cr_assert_eq(sc_lock_mutex_lock(&m), EDEADLK);
	cr_assert_eq(sc_lock_mutex_trylock(&m), EBUSY);
	struct timespec ts = lt_after_ms(CLOCK_REALTIME, 10);
	cr_assert_eq(sc_lock_mutex_timedlock(&m, &ts), EDEADLK);
	cr_assert_eq(unlock_from_other_thread(&m), EPERM, "not the owner");
	cr_assert_eq(sc_lock_mutex_unlock(&m), 0);
	cr_assert_eq(sc_lock_mutex_unlock(&m), EPERM);
}

Test(lock_mutex, recursive_codes)
{
	pthread_mutex_t m = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
	cr_assert_eq(sc_lock_mutex_unlock(&m), EPERM);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(sc_lock_mutex_lock(&m), 0);
	cr_assert_eq(sc_lock_mutex_trylock(&m), 0);
	cr_assert_eq(trylock_from_other_thread(&m), EBUSY);
	cr_assert_eq(unlock_from_other_thread(&m), EPERM);
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(sc_lock_mutex_unlock(&m), 0);
		cr_assert_eq(trylock_from_other_thread(&m), EBUSY, "still held");
	}
	cr_assert_eq(sc_lock_mutex_unlock(&m), 0);
	cr_assert_eq(sc_lock_mutex_unlock(&m), EPERM);
	cr_assert_eq(trylock_from_other_thread(&m), 0);
}

static int timed_steps_done;   /* the holder lets go only after them */

static void *timedlock_worker(void *arg)
{
	pthread_mutex_t *m = arg;
	struct timespec ts = lt_after_ms(CLOCK_REALTIME, 100);
	int64_t t0 = lt_now_ms(CLOCK_MONOTONIC);
	int r = sc_lock_mutex_timedlock(m, &ts);
	int64_t dt = lt_now_ms(CLOCK_MONOTONIC) - t0;
	if (r != ETIMEDOUT || dt < 90)
		return (void *)1;
	ts = lt_after_ms(CLOCK_MONOTONIC, 50);
	r = sc_lock_mutex_clocklock(m, CLOCK_MONOTONIC, &ts);
	if (r != ETIMEDOUT)
		return (void *)2;
	struct timespec past = { 0, 0 };
	if (sc_lock_mutex_timedlock(m, &past) != ETIMEDOUT)
		return (void *)3;
	struct timespec bad = { 0, 1000000000L };
	if (sc_lock_mutex_timedlock(m, &bad) != EINVAL)
		return (void *)4;
	if (sc_lock_mutex_clocklock(m, CLOCK_PROCESS_CPUTIME_ID, &ts) != EINVAL)
		return (void *)5;
	__atomic_store_n(&timed_steps_done, 1, __ATOMIC_RELEASE);
	/* Wait long enough for the holder to let go. */
	ts = lt_after_ms(CLOCK_MONOTONIC, 10000);
	if (sc_lock_mutex_clocklock(m, CLOCK_MONOTONIC, &ts) != 0)
		return (void *)6;
	sc_lock_mutex_unlock(m);
	return NULL;
}

static void timedlock_case(int policy)
{
	lk_set_policy(policy);
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	struct timespec past = { 0, 0 };
	cr_assert_eq(sc_lock_mutex_timedlock(&m, &past), 0, "free: no timeout");
	pthread_t t;
	__atomic_store_n(&timed_steps_done, 0, __ATOMIC_RELEASE);
	pthread_create(&t, NULL, timedlock_worker, &m);
	int64_t t0 = lt_now_ms(CLOCK_MONOTONIC);
	while (!__atomic_load_n(&timed_steps_done, __ATOMIC_ACQUIRE) &&
	       lt_now_ms(CLOCK_MONOTONIC) - t0 < 20000)
		lt_sleep_ms(1);
	lt_sleep_ms(20);
	sc_lock_mutex_unlock(&m);
	void *ret;
	pthread_join(t, &ret);
	cr_assert_null(ret, "policy %s: step %d failed", lk_policy_name(policy),
	               (int)(intptr_t)ret);
}

Test(lock_mutex, timedlock_owner) { timedlock_case(LK_OWNER); }
Test(lock_mutex, timedlock_park)  { timedlock_case(LK_PARK); }
Test(lock_mutex, timedlock_spin)  { timedlock_case(LK_SPIN); }

/* Thousands of mutexes nobody initialised: zero is an unlocked mutex. */
#define NSTATIC 5000
static pthread_mutex_t statics[NSTATIC];

Test(lock_mutex, thousands_static)
{
	for (int i = 0; i < NSTATIC; i++)
		cr_assert_eq(sc_lock_mutex_lock(&statics[i]), 0);
	for (int i = 0; i < NSTATIC; i += 97)
		cr_assert_eq(trylock_from_other_thread(&statics[i]), EBUSY);
	for (int i = 0; i < NSTATIC; i++)
		cr_assert_eq(sc_lock_mutex_unlock(&statics[i]), 0);
	for (int i = 0; i < NSTATIC; i += 97)
		cr_assert_eq(trylock_from_other_thread(&statics[i]), 0);
}

static void *die_holding(void *arg)
{
	sc_lock_mutex_lock(arg);
	return NULL;
}

Test(lock_mutex, robust_passes_through)
{
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_t m;
	cr_assert_eq(sc_lock_mutex_init(&m, &a), 0);
	cr_assert(((struct lk_mutex *)&m)->lm_kind & LK_KIND_ROBUST);
	pthread_t t;
	pthread_create(&t, NULL, die_holding, &m);
	pthread_join(t, NULL);
	cr_assert_eq(sc_lock_mutex_lock(&m), EOWNERDEAD);
	cr_assert_eq(sc_lock_mutex_consistent(&m), 0);
	cr_assert_eq(sc_lock_mutex_unlock(&m), 0);
	cr_assert_eq(sc_lock_mutex_lock(&m), 0);
	cr_assert_eq(sc_lock_mutex_unlock(&m), 0);
	cr_assert_eq(sc_lock_mutex_destroy(&m), 0);
}

Test(lock_mutex, pshared_and_pi_pass_through)
{
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutex_t m;
	cr_assert_eq(sc_lock_mutex_init(&m, &a), 0);
	cr_assert(((struct lk_mutex *)&m)->lm_kind & LK_KIND_PSHARED);
	cr_assert_eq(sc_lock_mutex_lock(&m), 0);
	cr_assert_eq(((int *)&m)[0], 1, "glibc's own lock word");
	cr_assert_eq(sc_lock_mutex_unlock(&m), 0);
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
	cr_assert_eq(sc_lock_mutex_init(&m, &a), 0);
	cr_assert(((struct lk_mutex *)&m)->lm_kind & LK_KIND_PI);
	cr_assert_eq(sc_lock_mutex_lock(&m), 0);
	cr_assert_eq(sc_lock_mutex_lock(&m), EDEADLK);
	cr_assert_eq(sc_lock_mutex_unlock(&m), 0);
}

/* fork while another thread holds a lock: the child sees it held (as
 * with glibc: the holder does not exist there) and its other mutexes
 * work; a mutex the forking thread held can be released in the child. */
static pthread_mutex_t fork_held = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t fork_mine = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t fork_free = PTHREAD_MUTEX_INITIALIZER;
static int fork_go;

static void *fork_holder(void *arg)
{
	sc_lock_mutex_lock(&fork_held);
	__atomic_store_n(&fork_go, 1, __ATOMIC_RELEASE);
	while (__atomic_load_n(&fork_go, __ATOMIC_ACQUIRE) != 2)
		lt_sleep_ms(1);
	sc_lock_mutex_unlock(&fork_held);
	return arg;
}

static int fork_child(void)
{
	if (sc_lock_mutex_trylock(&fork_held) != EBUSY)
		return 1;
	struct timespec ts = lt_after_ms(CLOCK_REALTIME, 50);
	if (sc_lock_mutex_timedlock(&fork_held, &ts) != ETIMEDOUT)
		return 2;
	if (sc_lock_mutex_unlock(&fork_mine) != 0)
		return 3;
	for (int i = 0; i < 1000; i++) {
		if (sc_lock_mutex_lock(&fork_free) || sc_lock_mutex_unlock(&fork_free))
			return 4;
	}
	/* Threads in the child work with the child's mutexes. */
	pthread_t t;
	if (pthread_create(&t, NULL, hold_and_report, &fork_free))
		return 5;
	void *ret;
	pthread_join(t, &ret);
	if (ret != NULL)
		return 6;
	return 0;
}

static void fork_case(int policy)
{
	lk_set_policy(policy);
	pthread_t t;
	pthread_create(&t, NULL, fork_holder, NULL);
	while (__atomic_load_n(&fork_go, __ATOMIC_ACQUIRE) != 1)
		lt_sleep_ms(1);
	sc_lock_mutex_lock(&fork_mine);
	pid_t pid = fork();
	if (pid == 0)
		_exit(fork_child());
	sc_lock_mutex_unlock(&fork_mine);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	__atomic_store_n(&fork_go, 2, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	          "policy %s: child step %d failed", lk_policy_name(policy),
	          WEXITSTATUS(status));
	cr_assert_eq(sc_lock_mutex_trylock(&fork_held), 0, "parent unaffected");
	sc_lock_mutex_unlock(&fork_held);
}

Test(lock_mutex, fork_owner) { fork_case(LK_OWNER); }
Test(lock_mutex, fork_park)  { fork_case(LK_PARK); }
