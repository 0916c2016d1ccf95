/*
 * sleep.h - the program's sleeps, made without a seccomp notification
 * (sleep.c; called by the preload's wrappers only, preload/sleep.c).
 * The supervisor's repair of notified ones a signal withdrew is
 * withdraw.h.
 *
 * Each function has the contract of the libc function of the same name
 * (glibc's, on Linux: return values, errno, the time left, cancellation
 * point), and is async-signal-safe where that one is.
 */
#ifndef SC_SUPERVISOR_SLEEP_H
#define SC_SUPERVISOR_SLEEP_H

#include <time.h>
#include <unistd.h>

#include "sc/sc.h"

SC_HIDDEN int sv_sleep_nanosleep(const struct timespec *req,
                                 struct timespec *rem);
SC_HIDDEN int sv_sleep_clock_nanosleep(clockid_t clock, int flags,
                                       const struct timespec *req,
                                       struct timespec *rem);
SC_HIDDEN unsigned sv_sleep_sleep(unsigned seconds);
SC_HIDDEN int sv_sleep_usleep(useconds_t usec);
SC_HIDDEN int sv_sleep_thrd_sleep(const struct timespec *req,
                                  struct timespec *rem);

#endif /* SC_SUPERVISOR_SLEEP_H */
