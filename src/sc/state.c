/*
 * state.c - reading any thread's run state.
 *
 * A state is only ever reported if something observed it:
 *   PERF        the newest kernel switch record in the owner's ring; no
 *               record yet means it has run since set-up (SC_ONPROC on
 *               the CPU it set up on).  SC_STOPPED stored by the
 *               supervisor overrides a switch-out.
 *   SUPERVISOR  sc_state/sc_cpu as the supervisor last wrote them.
 *   NONE        unknown: -1, ENOTSUP.
 * Whatever the source, the caller's own slot is SC_ONPROC on the CPU it
 * runs on: it is running this code.
 *
 * The generation check (see abi.h) makes a read whose slot changed hands
 * retry, so a state never mixes two owners.
 */
#include <errno.h>
#include <sched.h>

#include "sc/sc.h"

static int state_from_source(const struct sc_slot *s, int st, int *cpu)
{
	int src = __atomic_load_n(&s->ss_source, __ATOMIC_RELAXED);
	*cpu = __atomic_load_n(&s->ss_pub.sc_cpu, __ATOMIC_RELAXED);

	/* The caller is running this code: that is an observation, and it
	 * is fresher than anything a supervisor sampled a moment ago. */
	if (s == sc_thread_slot()) {
		int c = sched_getcpu();
		if (c >= 0)
			*cpu = c;
		return SC_ONPROC;
	}

	if (src == SCHEDCTL_SOURCE_PERF) {
		int pst, pcpu;
		int r = sc_perf_read(sc_slot_ring(s), &pst, &pcpu);
		if (r == 0)
			return SC_ONPROC;
		if (r < 0) {
			errno = ENOTSUP;
			return -1;
		}
		*cpu = pcpu;
		if (pst == SC_SLEEP && st == SC_STOPPED)
			return SC_STOPPED;
		return pst;
	}
	if (src == SCHEDCTL_SOURCE_SUPERVISOR)
		return st;
	errno = ENOTSUP;
	return -1;
}

/* A signal handler that sleeps inside the thread's own unnotified sleep
 * ends by marking SC_ONPROC while the interrupted sleep goes on; the
 * sampler's next sweep (1-2 ms) repairs that.  Counting nested sleeps in
 * TLS would avoid it, but a handler that siglongjmps out of a sleep
 * (the old alarm-timeout idiom) would leave the count raised for good,
 * and every later wake of that thread would then read SC_SLEEP. */
void sc_slot_self_mark(struct sc_slot *s, int state, uint32_t sysno)
{
	if (!s || __atomic_load_n(&s->ss_source, __ATOMIC_RELAXED) !=
	          SCHEDCTL_SOURCE_SUPERVISOR)
		return;
	uint64_t now = sc_now_ns();
	if (state == SC_ONPROC) {
		int c = sched_getcpu();
		if (c >= 0)
			__atomic_store_n(&s->ss_pub.sc_cpu, c,
			                 __ATOMIC_RELAXED);
	}
	__atomic_store_n(&s->ss_sysno, sysno, __ATOMIC_RELAXED);
	__atomic_store_n(&s->ss_stamp_ns, now, __ATOMIC_RELAXED);
	__atomic_store_n(&s->ss_pub.sc_state, (unsigned short)state,
	                 __ATOMIC_RELAXED);
}

int sc_slot_state(const struct sc_slot *s, int *cpu)
{
	int dummy;
	if (!cpu)
		cpu = &dummy;
	for (;;) {
		uint32_t gen = __atomic_load_n(&s->ss_gen, __ATOMIC_ACQUIRE);
		int st = __atomic_load_n(&s->ss_pub.sc_state, __ATOMIC_ACQUIRE);
		if (st == SC_FREE) {
			*cpu = -1;
			return SC_FREE;
		}
		int r = state_from_source(s, st, cpu);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&s->ss_gen, __ATOMIC_RELAXED) == gen &&
		    __atomic_load_n(&s->ss_pub.sc_state, __ATOMIC_RELAXED) != SC_FREE)
			return r;
	}
}

int schedctl_state(const sc_shared_t *p)
{
	const struct sc_slot *s = sc_slot_from_pub(p);
	if (!s) {
		errno = EINVAL;
		return -1;
	}
	return sc_slot_state(s, NULL);
}

int schedctl_cpu(const sc_shared_t *p)
{
	const struct sc_slot *s = sc_slot_from_pub(p);
	if (!s) {
		errno = EINVAL;
		return -1;
	}
	int cpu;
	if (sc_slot_state(s, &cpu) < 0)
		return -1;
	return cpu;
}

pid_t schedctl_tid(const sc_shared_t *p)
{
	const struct sc_slot *s = sc_slot_from_pub(p);
	if (!s) {
		errno = EINVAL;
		return -1;
	}
	return __atomic_load_n(&s->ss_tid, __ATOMIC_ACQUIRE);
}

int schedctl_source(const sc_shared_t *p)
{
	const struct sc_slot *s = sc_slot_from_pub(p);
	if (!s) {
		errno = EINVAL;
		return -1;
	}
	if (__atomic_load_n(&s->ss_pub.sc_state, __ATOMIC_ACQUIRE) == SC_FREE)
		return SCHEDCTL_SOURCE_NONE;
	return __atomic_load_n(&s->ss_source, __ATOMIC_RELAXED);
}

/* Linear over the pages in use: this is a look-up by name, not a hot
 * path (the mutex refers to owners by slot index). */
sc_shared_t *schedctl_of(pid_t tid)
{
	if (tid > 0) {
		for (uint32_t i = 1; ; i++) {
			struct sc_slot *s = sc_slot_at(i);
			if (!s)
				break;
			if (__atomic_load_n(&s->ss_tid, __ATOMIC_ACQUIRE) == tid &&
			    __atomic_load_n(&s->ss_pub.sc_state,
			                    __ATOMIC_ACQUIRE) != SC_FREE)
				return &s->ss_pub;
		}
	}
	errno = ESRCH;
	return NULL;
}
