/*
 * preload.c - libschedctl-preload.so: what `schedctl run` injects into
 * the program.  Exported wrappers only; the logic is in src/supervisor
 * (agent.c) and src/sc.
 *
 *   constructor      resolve the real symbols once, then set up this
 *                    process image (slot, filter, supervisor hand-over)
 *   pthread_create   every new thread takes its schedctl slot before
 *                    running the program's start routine, and starts
 *                    that routine only once its creator is back from
 *                    pthread_create (the start gate below)
 *
 * Start gate.  Under the supervisor, clone() stops the creator at a
 * ptrace clone event until the supervisor continues it, and the new
 * thread may be continued first.  Natively the creator returns from
 * clone() at once; supervised, a new thread that makes itself
 * SCHED_FIFO could take the creator's CPU (or starve the supervisor)
 * and run for as long as it likes before pthread_create returns --
 * stress-ng's mutex stressor gave up ("could not create any pthreads")
 * about twice as often as natively that way.  So the new thread waits
 * on ps_back until its creator is back, which restores the native
 * order at the price of one futex wake per thread (the wait itself is
 * rare: setting up the slot usually takes longer than the creator's
 * return).  A creator that longjmps out of a signal handler between
 * clone() and the gate's release would leave its new thread waiting.
 *
 * Threads made with raw clone() have no slot; the supervisor still
 * follows them with ptrace.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>

#include "sc/sc.h"
#include "supervisor/sv.h"

typedef int (*preload_create_fn)(pthread_t *, const pthread_attr_t *,
                                 void *(*)(void *), void *);

static preload_create_fn real_pthread_create;

/* Tells the library (src/sc/thread.c) it was injected by schedctl run. */
const char sc_preload_marker = 1;

/* One per pthread_create; freed by whichever of the creator and the new
 * thread drops the last reference. */
struct preload_start {
	void *(*ps_fn)(void *);
	void *ps_arg;
	uint32_t ps_back;   /* 1 once the creator is back from the real
	                     * pthread_create: release store, pairs with the
	                     * new thread's acquire load (futex word) */
	uint32_t ps_refs;   /* 2 at creation; acq_rel decrements */
};

static void preload_start_put(struct preload_start *s)
{
	if (__atomic_sub_fetch(&s->ps_refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(s);
}

/* dlsym returns an object pointer; the union converts it to a function
 * pointer without the cast ISO C frowns on. */
static preload_create_fn preload_resolve(void)
{
	union { void *p; preload_create_fn f; } u = { dlsym(RTLD_NEXT, "pthread_create") };
	return u.f;
}

__attribute__((constructor)) static void preload_init(void)
{
	real_pthread_create = preload_resolve();
	sv_agent_start(real_pthread_create);
}

static void *preload_trampoline(void *p)
{
	struct preload_start *s = p;
	sv_agent_thread_begin();
	if (!__atomic_load_n(&s->ps_back, __ATOMIC_ACQUIRE)) {
		while (!__atomic_load_n(&s->ps_back, __ATOMIC_ACQUIRE))
			(void)sc_futex_wait(&s->ps_back, 0, NULL, true);
		/* The creator's wake tends to hand us its CPU at once;
		 * give it back, as a thread just cloned natively would
		 * not yet have it. */
		(void)sched_yield();
	}
	void *(*fn)(void *) = s->ps_fn;
	void *arg = s->ps_arg;
	preload_start_put(s);
	return fn(arg);
}

__attribute__((visibility("default")))
int pthread_create(pthread_t *t, const pthread_attr_t *attr,
                   void *(*fn)(void *), void *arg)
{
	if (!real_pthread_create)
		real_pthread_create = preload_resolve();
	struct preload_start *s = malloc(sizeof *s);
	if (!s)
		return real_pthread_create(t, attr, fn, arg);
	s->ps_fn = fn;
	s->ps_arg = arg;
	s->ps_back = 0;
	s->ps_refs = 2;
	int e = real_pthread_create(t, attr, preload_trampoline, s);
	if (e) {
		free(s);
		return e;
	}
	__atomic_store_n(&s->ps_back, 1, __ATOMIC_RELEASE);
	(void)sc_futex_wake(&s->ps_back, 1, true);
	preload_start_put(s);
	return 0;
}
