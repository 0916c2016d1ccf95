/*
 * cond.c - the preload's pthread_cond_* wrappers.  Exported wrappers
 * only: the logic is src/lock/pthread.c and src/lock/cond.c.
 * pthread_rwlock_* is not wrapped: glibc's rwlock stays whole.
 */
#include "lock/lock.h"
#include "prof/prof.h"

#define PRELOAD_EXPORT __attribute__((visibility("default")))

PRELOAD_EXPORT int pthread_cond_init(pthread_cond_t *c,
                                     const pthread_condattr_t *a)
{
	return sc_lock_cond_init(c, a);
}

PRELOAD_EXPORT int pthread_cond_destroy(pthread_cond_t *c)
{
	return sc_lock_cond_destroy(c);
}

PRELOAD_EXPORT int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
	prof_note_caller(__builtin_return_address(0));
	return sc_lock_cond_wait(c, m);
}

PRELOAD_EXPORT int pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m,
                                          const struct timespec *abs)
{
	prof_note_caller(__builtin_return_address(0));
	return sc_lock_cond_timedwait(c, m, abs);
}

PRELOAD_EXPORT int pthread_cond_clockwait(pthread_cond_t *c, pthread_mutex_t *m,
                                          clockid_t clock,
                                          const struct timespec *abs)
{
	prof_note_caller(__builtin_return_address(0));
	return sc_lock_cond_clockwait(c, m, clock, abs);
}

PRELOAD_EXPORT int pthread_cond_signal(pthread_cond_t *c)
{
	return sc_lock_cond_signal(c);
}

PRELOAD_EXPORT int pthread_cond_broadcast(pthread_cond_t *c)
{
	return sc_lock_cond_broadcast(c);
}
