/*
 * mutex.c - the preload's pthread_mutex_* wrappers.  Exported wrappers
 * only: the logic is src/lock/pthread.c (our lock, or glibc's own for
 * process-shared, robust and PI/PP mutexes and SCHEDCTL_POLICY=glibc).
 */
#include "lock/lock.h"
#include "prof/prof.h"

#define PRELOAD_EXPORT __attribute__((visibility("default")))

__attribute__((constructor)) static void preload_mutex_init(void)
{
	sc_lock_preload_init();
}

PRELOAD_EXPORT int pthread_mutex_init(pthread_mutex_t *m,
                                      const pthread_mutexattr_t *a)
{
	return sc_lock_mutex_init(m, a);
}

PRELOAD_EXPORT int pthread_mutex_destroy(pthread_mutex_t *m)
{
	return sc_lock_mutex_destroy(m);
}

PRELOAD_EXPORT int pthread_mutex_lock(pthread_mutex_t *m)
{
	prof_note_caller(__builtin_return_address(0));
	return sc_lock_mutex_lock(m);
}

PRELOAD_EXPORT int pthread_mutex_trylock(pthread_mutex_t *m)
{
	prof_note_caller(__builtin_return_address(0));
	return sc_lock_mutex_trylock(m);
}

PRELOAD_EXPORT int pthread_mutex_timedlock(pthread_mutex_t *m,
                                           const struct timespec *abs)
{
	prof_note_caller(__builtin_return_address(0));
	return sc_lock_mutex_timedlock(m, abs);
}

PRELOAD_EXPORT int pthread_mutex_clocklock(pthread_mutex_t *m, clockid_t clock,
                                           const struct timespec *abs)
{
	prof_note_caller(__builtin_return_address(0));
	return sc_lock_mutex_clocklock(m, clock, abs);
}

PRELOAD_EXPORT int pthread_mutex_unlock(pthread_mutex_t *m)
{
	return sc_lock_mutex_unlock(m);
}

PRELOAD_EXPORT int pthread_mutex_consistent(pthread_mutex_t *m)
{
	return sc_lock_mutex_consistent(m);
}
