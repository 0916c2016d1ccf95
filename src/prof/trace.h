/*
 * trace.h - timeline events for the Chrome Trace Event / Perfetto
 * output (trace.c).
 *
 * Events live in chunks taken from one pool mmap'ed at start-up (bounded:
 * SCHEDCTL_TRACE_EVENTS).  A chunk has one writer: the thread that took
 * it (lock waits and holds) or the agent thread (run-state samples).
 * The writer fills an event, then publishes it by a release store of
 * c_n; readers load c_n with acquire.  Chunks are pushed on a global
 * list (release CAS) that readers walk with acquire loads.
 */
#ifndef SC_PROF_TRACE_H
#define SC_PROF_TRACE_H

#include <stdint.h>

#include "sc/sc.h"

struct prof_thread;

enum prof_ev_kind {
	PROF_EV_WAIT = 1,   /* contended wait: e_sub = outcome */
	PROF_EV_HOLD,       /* hold of a contended acquisition */
	PROF_EV_STATE,      /* run state from e_t0: e_sub = SC_* state, or
	                       0xff: not observable */
};

struct prof_tev {
	uint64_t e_t0, e_t1;      /* prof ticks */
	uintptr_t e_lock;
	int32_t e_tid;
	uint8_t e_kind, e_sub;
	uint16_t e_pad;
};

#define PROF_CHUNK_EV 255

struct prof_tchunk {
	struct prof_tchunk *c_next;   /* global list (immutable once pushed) */
	uint32_t c_n;                 /* published events (release/acquire) */
	uint32_t c_pad;
	uint64_t c_pad2;
	struct prof_tev c_ev[PROF_CHUNK_EV];
};

/* => trace on.  Maps the pool (max_events events).  0 or -ENOMEM. */
SC_HIDDEN int prof_trace_init(unsigned max_events);
/* Record one event in pt's current chunk (no-op when tracing is off). */
SC_HIDDEN void prof_trace_event(struct prof_thread *pt, int kind, uint64_t t0,
                                uint64_t t1, const void *lock, int sub);
/* The agent thread: sample every live slot's run state, record changes. */
SC_HIDDEN void prof_trace_sample(void);
/* Write the whole trace as Chrome Trace Event JSON.  0 or -errno. */
SC_HIDDEN int prof_trace_write(int fd);
SC_HIDDEN void prof_trace_after_fork_child(void);

#endif /* SC_PROF_TRACE_H */
