/*
 * api.c - the illumos schedctl entry points.
 *
 * schedctl_start/stop follow illumos: start sets sc_nopreempt; stop
 * clears it and, if the runtime asked for the CPU back meanwhile
 * (sc_yield), clears that too and yields.  Both are called only by the
 * owning thread; the runtime (or, with the rseq slice extension, the
 * kernel) sets sc_yield.  Relaxed stores: the fields are hints to a
 * scheduler, they order nothing else.
 */
#include <errno.h>
#include <sched.h>
#include <stddef.h>

#include "sc/sc.h"

schedctl_t *schedctl_init(void)
{
	struct sc_slot *s = sc_thread_setup();
	return s ? &s->ss_pub.sc_preemptctl : NULL;
}

schedctl_t *schedctl_lookup(void)
{
	struct sc_slot *s = sc_thread_slot();
	return s ? &s->ss_pub.sc_preemptctl : NULL;
}

void schedctl_exit(void)
{
}

sc_shared_t *schedctl_self(void)
{
	struct sc_slot *s = sc_thread_setup();
	return s ? &s->ss_pub : NULL;
}

void schedctl_start(schedctl_t *p)
{
	if (p)
		__atomic_store_n(&p->sc_nopreempt, 1, __ATOMIC_RELAXED);
}

void schedctl_stop(schedctl_t *p)
{
	if (!p)
		return;
	__atomic_store_n(&p->sc_nopreempt, 0, __ATOMIC_RELAXED);
	if (__atomic_load_n(&p->sc_yield, __ATOMIC_RELAXED)) {
		__atomic_store_n(&p->sc_yield, 0, __ATOMIC_RELAXED);
		sched_yield();
	}
}
