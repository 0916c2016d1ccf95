/*
 * gate.c - a new thread's start gate (used by the preload's
 * pthread_create wrapper).
 *
 * Under the supervisor, clone() stops the creator at a ptrace clone
 * event until the supervisor continues it, and the new thread may be
 * continued first.  Natively the creator returns from clone() at once;
 * supervised, a new thread that makes itself SCHED_FIFO could take the
 * creator's CPU (or starve the supervisor) and run for as long as it
 * likes before pthread_create returns -- stress-ng's mutex stressor gave
 * up ("could not create any pthreads") about twice as often as natively
 * that way.  So the new thread waits at the gate until its creator is
 * back, which restores the native order.
 *
 * sg_word: SV_GATE_SHUT (0), SV_GATE_WAITING (2: the new thread sleeps
 * on it), SV_GATE_OPEN (1).  The creator opens with an exchange
 * (release; pairs with the new thread's acquire loads) and makes a
 * futex wake only if it replaced SV_GATE_WAITING, so the usual case
 * (the thread's slot set-up outlasts the creator's return) costs no
 * system call.  The thread's wait is cookie-marked (sc_futex_wait): the
 * runtime parking, never notified.  A creator that longjmps out of a
 * signal handler between clone() and opening leaves its thread waiting.
 */
#include <sched.h>

#include "sc/sc.h"
#include "supervisor/sv.h"

enum { SV_GATE_SHUT = 0, SV_GATE_OPEN = 1, SV_GATE_WAITING = 2 };

void sv_gate_init(struct sv_gate *g)
{
	g->sg_word = SV_GATE_SHUT;
}

void sv_gate_pass(struct sv_gate *g)
{
	uint32_t w = SV_GATE_SHUT;
	if (__atomic_load_n(&g->sg_word, __ATOMIC_ACQUIRE) == SV_GATE_OPEN ||
	    !__atomic_compare_exchange_n(&g->sg_word, &w, SV_GATE_WAITING, false,
	                                 __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE))
		return;           /* open already (w == SV_GATE_OPEN) */
	while (__atomic_load_n(&g->sg_word, __ATOMIC_ACQUIRE) != SV_GATE_OPEN)
		(void)sc_futex_wait(&g->sg_word, SV_GATE_WAITING, NULL, true);
	/* The creator's wake tends to hand us its CPU at once; give it
	 * back, as a thread just cloned natively would not yet have it. */
	(void)sched_yield();
}

void sv_gate_open(struct sv_gate *g)
{
	if (__atomic_exchange_n(&g->sg_word, SV_GATE_OPEN, __ATOMIC_RELEASE) ==
	    SV_GATE_WAITING)
		(void)sc_futex_wake(&g->sg_word, 1, true);
}
