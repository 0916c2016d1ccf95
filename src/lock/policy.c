/*
 * policy.c - lock policy, spin bounds, preemption-control probe, and
 * glibc's real pthread functions.
 *
 * Start-up (sc_lock_preload_init): one thread moves lk_state from
 * LKS_NONE to LKS_BUSY, reads SCHEDCTL_POLICY, counts CPUs, resolves
 * the real functions, then stores LKS_READY with release; others that
 * find LKS_BUSY yield until they load LKS_READY with acquire (pairs
 * with that release), after which lk_real and the policy are stable.
 * A call made by the initialising thread itself while it resolves
 * symbols (dlsym can, in principle, reach a mutex) sees LKS_BUSY with
 * lk_initialising set and goes on with the defaults: replaced locks do
 * not need lk_real.
 *
 * Spin bounds (one spin phase, then park):
 *   owner  LK_OWNER_SPIN_NS while the owner is on a CPU; a holder whose
 *          state is unknown (no state source, no slot) gets the blind
 *          LK_BLIND_SPIN_NS bound instead
 *   spin   LK_BLIND_SPIN_NS, owner ignored (like glibc adaptive)
 *   park   no spinning
 * For experiments, SCHEDCTL_SPIN_US (owner bound, 0..1000000) and
 * SCHEDCTL_SPIN_BACKOFF (most pauses between two looks at a held lock
 * word, 1..4096) are read once at start-up.
 * The spinner cap is ncpus - 1 with ncpus the CPUs online.
 *
 * Backoff: a spinner waits 1, 2, 4 ... pauses between looks at the
 * word, up to about LK_BACKOFF_GAP_NS.  The cap is a time, not a count,
 * because a pause costs from a few ns (older Intel) to ~20 ns (this AMD
 * EPYC) or ~40 ns (Intel since Skylake); the count is calibrated at the
 * first spin.  Why a gap this long: with critical sections of 0-100 ns
 * and threads outnumbering CPUs, a spinner that looks often takes the
 * word in the moment between the holder's unlock and its next lock, and
 * every such hand-off moves the lock's and the data's cache lines to
 * the other CPU; looking at most every ~1 us lets the running holder
 * keep the lock for runs of operations: owner / best glibc at 2-16
 * threads x 100 ns went from 1.23-1.41x with a 16-pause (0.3 us) cap to
 * 1.38-1.60x with 63 here (three alternated pairs of full runs,
 * docs/benchmarks.md, session 5).  A waiter still notices a release
 * within ~1.2 us, well under one park + wake (6-10 us here).
 */
#include <dlfcn.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "lock/lock.h"

#define LK_OWNER_SPIN_NS   20000u   /* 20 us: about two park + wake round
                                       trips here; beyond that, parking
                                       costs less than spinning */
#define LK_BLIND_SPIN_NS   5000u    /* 5 us: ~glibc adaptive's 100 tries */
#define LK_BACKOFF_GAP_NS  1200u    /* longest wait between two looks */
#define LK_BACKOFF_CAP     4096u    /* most pauses, whatever they cost */

enum { LKS_NONE, LKS_BUSY };

struct lk_real lk_real;
int lk_state;                        /* LKS_*: acq/rel, see above */
static __thread bool lk_initialising __attribute__((tls_model("initial-exec")));
int lk_pol = LK_OWNER;               /* relaxed */
static unsigned lk_spinners_cap;     /* relaxed; ncpus, 0 = not computed */
static uint64_t lk_owner_spin_ns = LK_OWNER_SPIN_NS;   /* relaxed */
static unsigned lk_backoff;          /* relaxed; pauses, 0 = not yet
                                        calibrated */

static const char *const lk_names[] = { "owner", "spin", "park", "glibc" };

/* An explicit choice (a test, the benchmark) wins over SCHEDCTL_POLICY:
 * start-up, which reads it, runs first. */
void lk_set_policy(int policy)
{
	sc_lock_preload_init();
	if (policy >= LK_OWNER && policy <= LK_GLIBC)
		__atomic_store_n(&lk_pol, policy, __ATOMIC_RELAXED);
}

int lk_policy_parse(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (name && strcmp(name, lk_names[i]) == 0)
			return i;
	return -1;
}

const char *lk_policy_name(int policy)
{
	return policy >= 0 && policy < 4 ? lk_names[policy] : "?";
}

/* CPUs online, not the caller's affinity: the first caller may be a
 * thread pinned to one CPU while the holders run elsewhere. */
static unsigned lk_count_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

unsigned lk_max_spinners(void)
{
	unsigned cap = __atomic_load_n(&lk_spinners_cap, __ATOMIC_RELAXED);
	if (cap == 0) {
		cap = lk_count_cpus();
		__atomic_store_n(&lk_spinners_cap, cap, __ATOMIC_RELAXED);
	}
	return cap - 1 > 255 ? 255 : cap - 1;   /* lm_spinners is 8 bits */
}

uint64_t lk_spin_limit_ns(int policy)
{
	if (policy == LK_OWNER)
		return __atomic_load_n(&lk_owner_spin_ns, __ATOMIC_RELAXED);
	if (policy == LK_SPIN)
		return LK_BLIND_SPIN_NS;
	return 0;
}

/* Pauses that take about LK_BACKOFF_GAP_NS: the fastest of three timed
 * batches (a preemption or an interrupt only makes a batch slower), less
 * the fastest of three empty timings (the clock's own cost: ~25 ns with
 * the vDSO, ~1 us where the clock source needs a system call). */
static unsigned lk_backoff_calibrate(void)
{
	enum { BATCH = 64 };
	uint64_t best = UINT64_MAX, empty = UINT64_MAX;
	for (int r = 0; r < 3; r++) {
		uint64_t t0 = sc_now_ns();
		uint64_t t1 = sc_now_ns();
		for (int i = 0; i < BATCH; i++)
			lk_cpu_relax();
		uint64_t t2 = sc_now_ns();
		if (t1 - t0 < empty)
			empty = t1 - t0;
		if (t2 - t1 < best)
			best = t2 - t1;
	}
	best = best > empty ? best - empty : 0;
	uint64_t n = best ? (uint64_t)LK_BACKOFF_GAP_NS * BATCH / best
	                  : LK_BACKOFF_CAP;
	if (n < 4)
		n = 4;
	return n > LK_BACKOFF_CAP ? LK_BACKOFF_CAP : (unsigned)n;
}

unsigned lk_backoff_max(void)
{
	unsigned n = __atomic_load_n(&lk_backoff, __ATOMIC_RELAXED);
	if (__builtin_expect(n == 0, 0)) {
		/* Racing first spinners may each calibrate; any result will
		 * do, and the last store wins. */
		n = lk_backoff_calibrate();
		__atomic_store_n(&lk_backoff, n, __ATOMIC_RELAXED);
	}
	return n;
}

/*
 * The rseq time-slice extension (Linux 7.0+) would let sc_nopreempt ask
 * the kernel for a short grace period.  Its prctl is not in the headers
 * this was built against (Linux 6.x), and guessing a number would be
 * worse than not using it, so without the constant it is reported absent.
 */
bool lk_slice_ext_available(const char **why)
{
#ifdef PR_RSEQ_SLICE_EXTENSION
	int r = prctl(PR_RSEQ_SLICE_EXTENSION, 0, 0, 0, 0);
	if (r >= 0) {
		*why = "rseq time-slice extension offered by the kernel";
		return true;
	}
	*why = "kernel refuses PR_RSEQ_SLICE_EXTENSION";
	return false;
#else
	*why = "PR_RSEQ_SLICE_EXTENSION unknown to the build headers "
	       "(Linux < 7.0): lock-holder preemptions are counted instead";
	return false;
#endif
}

/* dlvsym for the symbols glibc versions twice (the condvar), so we get
 * the current implementation rather than the 2.2.5 compatibility one. */
static void *lk_resolve(const char *name, const char *version)
{
	void *p = NULL;
	if (version)
		p = dlvsym(RTLD_NEXT, name, version);
	if (!p)
		p = dlsym(RTLD_NEXT, name);
	return p;
}

#define LK_RESOLVE(field, name, ver) \
	(*(void **)&lk_real.field = lk_resolve(name, ver))

static void lk_resolve_all(void)
{
	LK_RESOLVE(mutex_init, "pthread_mutex_init", NULL);
	LK_RESOLVE(mutex_destroy, "pthread_mutex_destroy", NULL);
	LK_RESOLVE(mutex_lock, "pthread_mutex_lock", NULL);
	LK_RESOLVE(mutex_trylock, "pthread_mutex_trylock", NULL);
	LK_RESOLVE(mutex_timedlock, "pthread_mutex_timedlock", NULL);
	LK_RESOLVE(mutex_clocklock, "pthread_mutex_clocklock", NULL);
	LK_RESOLVE(mutex_unlock, "pthread_mutex_unlock", NULL);
	LK_RESOLVE(mutex_consistent, "pthread_mutex_consistent", NULL);
	LK_RESOLVE(cond_init, "pthread_cond_init", "GLIBC_2.3.2");
	LK_RESOLVE(cond_destroy, "pthread_cond_destroy", "GLIBC_2.3.2");
	LK_RESOLVE(cond_wait, "pthread_cond_wait", "GLIBC_2.3.2");
	LK_RESOLVE(cond_timedwait, "pthread_cond_timedwait", "GLIBC_2.3.2");
	LK_RESOLVE(cond_clockwait, "pthread_cond_clockwait", NULL);
	LK_RESOLVE(cond_signal, "pthread_cond_signal", "GLIBC_2.3.2");
	LK_RESOLVE(cond_broadcast, "pthread_cond_broadcast", "GLIBC_2.3.2");
}

static void lk_read_env(void)
{
	const char *p = getenv("SCHEDCTL_POLICY");
	if (p && *p) {
		int pol = lk_policy_parse(p);
		if (pol < 0)
			sc_notice("SCHEDCTL_POLICY is not owner|spin|park|glibc; "
			          "using owner");
		else
			__atomic_store_n(&lk_pol, pol, __ATOMIC_RELAXED);
	}
	const char *s = getenv("SCHEDCTL_SPIN_US");
	if (s && *s) {
		char *end;
		unsigned long us = strtoul(s, &end, 10);
		if (*end == '\0' && us <= 1000000)
			__atomic_store_n(&lk_owner_spin_ns, (uint64_t)us * 1000,
			                 __ATOMIC_RELAXED);
	}
	const char *b = getenv("SCHEDCTL_SPIN_BACKOFF");
	if (b && *b) {
		char *end;
		unsigned long n = strtoul(b, &end, 10);
		if (*end == '\0' && n >= 1 && n <= LK_BACKOFF_CAP)
			__atomic_store_n(&lk_backoff, (unsigned)n, __ATOMIC_RELAXED);
	}
	(void)lk_max_spinners();
}

void sc_lock_preload_init(void)
{
	int st = __atomic_load_n(&lk_state, __ATOMIC_ACQUIRE);
	if (st == LKS_READY)
		return;
	st = LKS_NONE;
	if (__atomic_compare_exchange_n(&lk_state, &st, LKS_BUSY, false,
	                                __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE)) {
		lk_initialising = true;
		lk_read_env();
		lk_resolve_all();
		lk_initialising = false;
		__atomic_store_n(&lk_state, LKS_READY, __ATOMIC_RELEASE);
		return;
	}
	if (lk_initialising)
		return;
	while (__atomic_load_n(&lk_state, __ATOMIC_ACQUIRE) != LKS_READY)
		sched_yield();
}

