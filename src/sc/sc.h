/*
 * sc.h - internal interface of the schedctl slot layer (src/sc).
 *
 * Modules:
 *   region.c  the shared slot region: memfd, pages, bitmaps, fork reset
 *   perf.c    the kernel context-switch record source (one ring/thread)
 *   thread.c  per-thread set-up and release, the source decision
 *   state.c   state readers (schedctl_state and friends)
 *   api.c     the illumos entry points
 *   futex.c   the runtime's own futex calls and internal lock
 *
 * Lock order: sc_region.lock is a leaf; nothing else is taken under it.
 */
#ifndef SC_SC_H
#define SC_SC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "sc/abi.h"
#include "sc/clock.h"

#define SC_HIDDEN __attribute__((visibility("hidden")))

/* ---- futex.c ---- */

/* The runtime's own futex calls.  Every futex wait the runtime makes
 * goes through sc_futex_wait(), so a filter can tell it apart from the
 * program's own waits. */
SC_HIDDEN long sc_futex_wait(uint32_t *uaddr, uint32_t val,
                             const struct timespec *rel, bool private_);
SC_HIDDEN long sc_futex_wake(uint32_t *uaddr, int n, bool private_);
/* A raw system call marked with the cookie, so the supervisor's filter
 * never notifies it (no stdio, no errno: safe in a signal handler, a
 * fork child or the watchdog's takeover); the cookie does not stay in a
 * register afterwards.  => result or -errno. */
SC_HIDDEN long sc_marked_syscall(long nr, long a0, long a1, long a2, long a3,
                                 long a4);

/* A small mutex for the runtime's rare slow paths (slot allocation).
 * Never held across anything that can block for long. */
struct sc_ilock { uint32_t il_word; };
#define SC_ILOCK_INIT { 0 }
SC_HIDDEN void sc_ilock_acquire(struct sc_ilock *l);
SC_HIDDEN void sc_ilock_release(struct sc_ilock *l);

/* ---- region.c ---- */

/* A slot taken for the calling thread: its address and its perf ring
 * address (an 8 KiB window reserved for this slot alone). */
struct sc_taken {
	struct sc_slot *t_slot;
	char *t_ring;
};

/* => takes and drops the region lock.
 * => returns 0 and fills *out, -ENOMEM if the region cannot be made,
 *    -EAGAIN if all SC_REGION_SLOTS are taken. */
SC_HIDDEN int sc_region_take(struct sc_taken *out);

/* => slot's state already published as SC_FREE by the caller. */
SC_HIDDEN void sc_region_give_back(struct sc_slot *slot);

/* The slot behind a public pointer, NULL if p is not the start of a
 * handed-out slot of this process's region.  Lock-free. */
SC_HIDDEN struct sc_slot *sc_slot_from_pub(const sc_shared_t *p);

/* Slot index <-> slot.  Index 0 is the header and never a slot.
 * sc_slot_at() returns NULL for an index not handed out (lock-free). */
SC_HIDDEN uint32_t sc_slot_index(const struct sc_slot *slot);
SC_HIDDEN struct sc_slot *sc_slot_at(uint32_t index);
SC_HIDDEN const char *sc_slot_ring(const struct sc_slot *slot);

/* The region header, NULL before the first slot was taken. */
SC_HIDDEN struct sc_region_hdr *sc_region_hdr(void);

/* Called with the region memfd (still open) and its mapping when the
 * region is created, before the library closes the fd: the preload
 * passes it to the supervisor.  If the region was created before the
 * hook was set (another library's constructor took a slot first) and
 * SCHEDCTL_SUPERVISOR is set, the library kept the fd and the hook is
 * called at once, from sc_region_set_created_hook(). */
SC_HIDDEN void sc_region_set_created_hook(void (*fn)(int fd, void *base));

/* Forget the parent's region in a fork child (called from thread.c's
 * atfork child handler). */
SC_HIDDEN void sc_region_forget_after_fork(void);
SC_HIDDEN void sc_region_prepare_fork(void);
SC_HIDDEN void sc_region_parent_after_fork(void);

/* ---- perf.c ---- */

#define SC_RING_SIZE (2u * SC_PAGE_SIZE)   /* header page + one data page */

/* => opens a context-switch event for the calling thread and maps its
 *    ring at `ring` (replacing the placeholder there), then closes it.
 * => 0 on success; -errno otherwise.  Refusal of perf_event_open itself
 *    (EACCES, EPERM, ENOSYS, ENOENT, ENODEV, EINVAL) marks perf off for
 *    the process; see sc_perf_refused(). */
SC_HIDDEN int sc_perf_attach(char *ring);

/* Replace a ring by a read-only zero placeholder (drops the event). */
SC_HIDDEN void sc_perf_detach(char *ring);

/* Reserve the ring windows for one page of slots (placeholders). */
SC_HIDDEN char *sc_perf_reserve(unsigned nrings);

/* => the newest switch record in ring: 1 and *state and *cpu set, 0 if the
 *    thread has not been switched since set-up, -1 if the ring holds
 *    something unexpected. Lock-free, no system call. */
SC_HIDDEN int sc_perf_read(const char *ring, int *state, int *cpu);

/* Fill *a with the context-switch event every ring uses (16-byte
 * records carrying the CPU; see perf.c).  Benchmarks open the same. */
struct perf_event_attr;
SC_HIDDEN void sc_perf_switch_attr(struct perf_event_attr *a);

/* errno of the refusal, 0 while perf has not been refused. */
SC_HIDDEN int sc_perf_refused(void);

/* ---- thread.c ---- */

/* Requested state source (SCHEDCTL_STATE_SOURCE). */
enum sc_want { SC_WANT_AUTO, SC_WANT_PERF, SC_WANT_SUPERVISOR };

SC_HIDDEN struct sc_slot *sc_thread_slot(void);   /* NULL if none */
SC_HIDDEN struct sc_slot *sc_thread_setup(void);  /* NULL + errno */
SC_HIDDEN void sc_set_supervised(bool on);

/* Threads the runtime runs for itself (the profiler's agent, the
 * supervisor's watchdog) count themselves while they run.  At a fork
 * they are known to hold no lock the child could need (each one's
 * owner quiets it in its prepare handler), unlike the program's own
 * threads, which may be inside an allocator that has no fork handler
 * (a sanitizer's).  sc_fork_alone(), called from a prepare handler:
 * is the forking thread the program's only thread?  Only then may the
 * child start threads of the runtime's before the program starts one
 * of its own. */
SC_HIDDEN void sc_runtime_thread_count(int delta);

/* ---- lastthread.c: the process ends with the program's last thread ----
 * The preload counts the program's threads (start: in its constructor,
 * on the main thread; creating: +1 before each real pthread_create, -1
 * if it failed; begin: first thing in each new thread it counted).
 * When the last one ends, the stops registered with
 * sc_runtime_stop_at_end (each stops and joins one runtime thread;
 * idempotent) run, so that glibc, whose count includes the runtime's
 * threads, ends the process as it would natively.  No-ops outside the
 * preload. */
SC_HIDDEN void sc_program_threads_start(void);
SC_HIDDEN bool sc_program_thread_creating(int delta);  /* counted? */
SC_HIDDEN void sc_program_thread_begin(void);
SC_HIDDEN void sc_program_thread_is_runtime(void);  /* thread.c */
SC_HIDDEN void sc_runtime_stop_at_end(void (*stop)(void));
/* A numeric field of /proc/PID/status ("TracerPid"), -1 if unreadable. */
SC_HIDDEN long sc_status_field(pid_t pid, const char *key);
/* A signal mask of /proc/PID/status ("SigIgn") into *mask: 0, or -1. */
SC_HIDDEN int sc_status_mask(pid_t pid, const char *key, uint64_t *mask);
SC_HIDDEN bool sc_fork_alone(void);
/* Defined by preload/preload.c only: this copy of the library is the
 * one `schedctl run` injected (weak: NULL elsewhere). */
SC_HIDDEN extern const char sc_preload_marker __attribute__((weak));
SC_HIDDEN bool sc_supervised(void);
SC_HIDDEN enum sc_want sc_wanted_source(void);
/* Override SCHEDCTL_STATE_SOURCE (the CLI and the preload use this). */
SC_HIDDEN void sc_set_wanted_source(enum sc_want want);
/* One-line notices for the user (stderr), once each; off unless the CLI,
 * the preload or SCHEDCTL_VERBOSE turned them on. */
SC_HIDDEN void sc_notices_enable(bool on);
SC_HIDDEN void sc_notice(const char *msg);
/* The same, but always said when chosen: an explicit choice of the user
 * that cannot be honoured. */
SC_HIDDEN void sc_notice_choice(bool chosen, const char *msg);

/* ---- state.c ---- */

/* => state of slot's owner (SC_*), or -1 with errno; *cpu if non-NULL. */
SC_HIDDEN int sc_slot_state(const struct sc_slot *slot, int *cpu);
/* The calling thread's observation of itself, into its own slot when
 * the supervisor is that slot's source (abi.h, "owner"; otherwise
 * nothing): SC_SLEEP with the call it is about to make unnotified, or
 * SC_ONPROC on the CPU it runs on (sysno ~0u) once such a sleep ended.
 * Relaxed stores, stamped so that a sampler sweep begun earlier skips
 * its older reading.  Async-signal-safe (clock_gettime, sched_getcpu). */
SC_HIDDEN void sc_slot_self_mark(struct sc_slot *slot, int state,
                                 uint32_t sysno);


#endif /* SC_SC_H */
