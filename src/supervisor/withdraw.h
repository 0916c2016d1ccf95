/*
 * withdraw.h - the supervisor's repair of a notified call that a signal
 * withdrew before its answer (withdraw.c).
 */
#ifndef SC_SUPERVISOR_WITHDRAW_H
#define SC_SUPERVISOR_WITHDRAW_H

#include <sys/types.h>

#include "sc/sc.h"

/* Main thread (the tracer), at tid's signal-delivery stop: a notified
 * call the signal withdrew before its answer gets the outcome of the
 * native call interrupted as it began (sig: the signal being delivered);
 * anything else is left alone. */
SC_HIDDEN void sv_withdrawn(pid_t tid, int sig);

#endif /* SC_SUPERVISOR_WITHDRAW_H */
