/*
 * preload.c - libschedctl-preload.so: what `schedctl run` injects into
 * the program.  Exported wrappers only; the logic is in src/supervisor
 * (agent.c) and src/sc.
 *
 *   constructor      resolve the real symbols once, then set up this
 *                    process image (slot, filter, supervisor hand-over)
 *   pthread_create   every new thread takes its schedctl slot before
 *                    running the program's start routine
 *
 * Threads made with raw clone() have no slot; the supervisor still
 * follows them with ptrace.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

#include "supervisor/sv.h"

typedef int (*preload_create_fn)(pthread_t *, const pthread_attr_t *,
                                 void *(*)(void *), void *);

static preload_create_fn real_pthread_create;

/* Tells the library (src/sc/thread.c) it was injected by schedctl run. */
const char sc_preload_marker = 1;

struct preload_start {
	void *(*ps_fn)(void *);
	void *ps_arg;
};

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
	struct preload_start s = *(struct preload_start *)p;
	free(p);
	sv_agent_thread_begin();
	return s.ps_fn(s.ps_arg);
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
	int e = real_pthread_create(t, attr, preload_trampoline, s);
	if (e)
		free(s);
	return e;
}
