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
 *                    pthread_create (src/supervisor/gate.c says why);
 *                    the program's threads are counted, so that the
 *                    process ends with its last one (src/sc/lastthread.c)
 *
 * Threads made with raw clone() have no slot; the supervisor still
 * follows them with ptrace.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "prof/prof.h"
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
	struct sv_gate ps_gate;
	uint32_t ps_refs;   /* 2 at creation; acq_rel decrements */
	bool ps_counted;    /* src/sc/lastthread.c */
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
	sc_program_threads_start();
	sv_agent_start(real_pthread_create);
}

/* The set-up runs with cancellation off: natively a thread cancelled
 * right after pthread_create meets the cancel at the first cancellation
 * point of its start routine (which may have disabled it first), not in
 * our set-up (the profiler's reads /proc). */
static void *preload_trampoline(void *p)
{
	struct preload_start *s = p;
	int cs;
	(void)pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cs);
	if (s->ps_counted)
		sc_program_thread_begin();
	sv_agent_thread_begin();
	prof_thread_begin();
	sv_gate_pass(&s->ps_gate);
	void *(*fn)(void *) = s->ps_fn;
	void *arg = s->ps_arg;
	preload_start_put(s);
	(void)pthread_setcancelstate(cs, NULL);
	return fn(arg);
}

__attribute__((visibility("default")))
int pthread_create(pthread_t *t, const pthread_attr_t *attr,
                   void *(*fn)(void *), void *arg)
{
	if (!real_pthread_create)
		real_pthread_create = preload_resolve();
	struct preload_start *s = malloc(sizeof *s);
	if (!s)       /* not counted: src/sc/lastthread.c */
		return real_pthread_create(t, attr, fn, arg);
	s->ps_fn = fn;
	s->ps_arg = arg;
	sv_gate_init(&s->ps_gate);
	s->ps_refs = 2;
	s->ps_counted = sc_program_thread_creating(1);
	int e = real_pthread_create(t, attr, preload_trampoline, s);
	if (e) {
		if (s->ps_counted)
			(void)sc_program_thread_creating(-1);
		free(s);
		return e;
	}
	sv_gate_open(&s->ps_gate);
	preload_start_put(s);
	return 0;
}
