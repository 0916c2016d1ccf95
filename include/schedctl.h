/*
 * schedctl.h - illumos scheduler control for Linux.
 *
 * Source-compatible with illumos <schedctl.h>: schedctl_init(),
 * schedctl_lookup(), schedctl_exit(), schedctl_start() and
 * schedctl_stop().  The extensions marked below are the supported way
 * to read the run state of any thread of the process.
 *
 * Every thread that calls the API (and, under `schedctl run`, every
 * thread) owns one sc_shared_t in a page shared with the schedctl
 * supervisor.  The structure stays readable for the life of the
 * process: after its thread exits it reads SC_FREE until a new thread
 * takes it over.
 *
 * Concurrency: the fields are written by the owning thread, by the
 * library on its behalf, and by the supervisor process; they are read
 * by any thread.  Read them with schedctl_state() and schedctl_cpu(),
 * which use acquire loads and merge in the kernel's context-switch
 * records; a plain read of sc_state gives the last value published to
 * the page, which can lag the kernel.
 */
#ifndef SCHEDCTL_H
#define SCHEDCTL_H

#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SCHEDCTL_API __attribute__((visibility("default")))
#else
#define SCHEDCTL_API
#endif

/* sc_state values (illumos). */
#define SC_FREE     0x00   /* no thread owns the structure */
#define SC_SLEEP    0x01   /* blocked (voluntarily left the CPU) */
#define SC_RUN      0x02   /* runnable, waiting for a CPU */
#define SC_ONPROC   0x04   /* running on CPU sc_cpu */
#define SC_STOPPED  0x10   /* stopped by a signal or a tracer */
#define SC_WAIT     0x20   /* waiting to be put on a run queue */

/* sc_flgs bits (illumos).  Set by the owning thread, acted on by the
 * supervisor at the thread's next blocking system call. */
#define SC_PARK_FLG    0x01  /* thread is about to park */
#define SC_CANCEL_FLG  0x02  /* cancellation pending */
#define SC_EINTR_FLG   0x04  /* blocking call returned EINTR for cancel */

/* Preemption control, the part of the structure illumos makes public. */
typedef struct sc_public {
	short sc_nopreempt;   /* non-zero: please do not preempt me */
	short sc_yield;       /* set by the runtime: yield at schedctl_stop() */
} sc_public_t;

typedef sc_public_t schedctl_t;

/*
 * The whole per-thread structure, field for field as in illumos.
 * Mirrors of the Linux scheduling attributes:
 *   sc_cid       the Linux policy (SCHED_OTHER 0, FIFO 1, RR 2, BATCH 3,
 *                IDLE 5, DEADLINE 6)
 *   sc_cpri      the nice value for OTHER/BATCH/IDLE, the real-time
 *                priority for FIFO/RR
 *   sc_priority  the kernel's priority as /proc/PID/stat shows it plus 100
 *                (0..99 real-time, 100..139 normal): lower is stronger
 */
typedef struct sc_shared {
	unsigned short sc_state;     /* SC_* run state */
	char           sc_sigblock;  /* block all signals at next syscall */
	unsigned char  sc_flgs;      /* SC_*_FLG */
	int            sc_cpu;       /* CPU the thread runs or last ran on */
	signed char    sc_cid;       /* scheduling policy */
	signed char    sc_cpri;      /* nice or real-time priority */
	unsigned char  sc_priority;  /* kernel priority */
	char           sc_pad;
	sc_public_t    sc_preemptctl;
} sc_shared_t;

/* ---- illumos API ------------------------------------------------- */

/* Set up the calling thread's structure if needed and return its public
 * part.  NULL with errno set (ENOMEM, EAGAIN) if it cannot be set up. */
SCHEDCTL_API schedctl_t *schedctl_init(void);

/* The calling thread's public part, NULL if schedctl_init() (or the
 * preload) has not set it up. */
SCHEDCTL_API schedctl_t *schedctl_lookup(void);

/* Kept for source compatibility.  As in illumos libc it does nothing:
 * the structure belongs to the thread until the thread exits. */
SCHEDCTL_API void schedctl_exit(void);

/* Ask not to be preempted (sets sc_nopreempt).  NULL is ignored. */
SCHEDCTL_API void schedctl_start(schedctl_t *p);

/* Clear sc_nopreempt; if the runtime set sc_yield meanwhile, clear it
 * and yield the CPU.  NULL is ignored. */
SCHEDCTL_API void schedctl_stop(schedctl_t *p);

/* ---- extensions --------------------------------------------------- */

/* The calling thread's whole structure, set up if needed.  NULL with
 * errno set if it cannot be set up. */
SCHEDCTL_API sc_shared_t *schedctl_self(void);

/* The structure of the live thread of this process whose kernel thread
 * id is tid, NULL (errno ESRCH) if no thread with that id has one. */
SCHEDCTL_API sc_shared_t *schedctl_of(pid_t tid);

/* The state of the thread owning sc now: one of the SC_* states.
 * Returns -1 with errno EINVAL for a pointer that is not a schedctl
 * structure, and -1 with errno ENOTSUP when nothing observes that
 * thread (kernel switch records refused and no supervisor running):
 * the library never reports a state it did not observe. */
SCHEDCTL_API int schedctl_state(const sc_shared_t *sc);

/* The CPU the owning thread runs on (ONPROC) or last ran on, -1 with
 * errno as for schedctl_state(). */
SCHEDCTL_API int schedctl_cpu(const sc_shared_t *sc);

/* The kernel thread id owning sc, 0 if free, -1 (EINVAL) if sc is not a
 * schedctl structure. */
SCHEDCTL_API pid_t schedctl_tid(const sc_shared_t *sc);

/* Where the state of the thread owning sc comes from. */
#define SCHEDCTL_SOURCE_NONE        0  /* nothing observes it */
#define SCHEDCTL_SOURCE_PERF        1  /* kernel context-switch records */
#define SCHEDCTL_SOURCE_SUPERVISOR  2  /* the schedctl supervisor */
SCHEDCTL_API int schedctl_source(const sc_shared_t *sc);

#ifdef __cplusplus
}
#endif

#endif /* SCHEDCTL_H */
