/*
 * sleep.c - the preload's sleep wrappers.  Exported wrappers only: the
 * logic, and why sleeps are not left to the seccomp notification, is in
 * src/supervisor/sleep.c.  sleep, usleep and thrd_sleep are wrapped
 * too: glibc calls its nanosleep from them directly, where no preload
 * can step in.
 */
#include <threads.h>

#include "supervisor/sleep.h"

#define PRELOAD_EXPORT __attribute__((visibility("default")))

PRELOAD_EXPORT int nanosleep(const struct timespec *req, struct timespec *rem)
{
	return sv_sleep_nanosleep(req, rem);
}

PRELOAD_EXPORT int clock_nanosleep(clockid_t clock, int flags,
                                   const struct timespec *req,
                                   struct timespec *rem)
{
	return sv_sleep_clock_nanosleep(clock, flags, req, rem);
}

PRELOAD_EXPORT unsigned int sleep(unsigned int seconds)
{
	return sv_sleep_sleep(seconds);
}

PRELOAD_EXPORT int usleep(useconds_t usec)
{
	return sv_sleep_usleep(usec);
}

PRELOAD_EXPORT int thrd_sleep(const struct timespec *req, struct timespec *rem)
{
	return sv_sleep_thrd_sleep(req, rem);
}
