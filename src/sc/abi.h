/*
 * abi.h - the schedctl slot region, shared between a process and its
 * supervisor.  This header is the only definition of that layout.
 *
 * The region is one memfd per process, SC_REGION_PAGES pages long and
 * sparse: pages are handed out front to back as threads need slots and
 * are never returned while the process lives, because a waiter may read
 * the slot of a thread that has already exited and must find SC_FREE
 * there (as illumos keeps schedctl pages mapped until exit).
 *
 * Page 0 slot 0 is the region header; every other 64-byte slot belongs
 * to at most one thread at a time.  The per-page allocation bitmaps are
 * private to the process (src/sc/slots.c); the supervisor finds live
 * slots by their non-zero ss_tid.
 *
 * The supervisor maps the same memfd.  Everything it reads here was
 * written by the supervised program and is untrusted: bounds-check every
 * index, never follow a value as a pointer.
 *
 * Memory-order protocol of one slot (writer: the owning thread, or the
 * library on its behalf; W = supervisor writes):
 *
 *   set-up    ss_tid, ss_gen, ss_source, the sc_* mirrors (relaxed)
 *             then sc_state = SC_ONPROC               (release)
 *   release   sc_state = SC_FREE                      (release)
 *             then the perf ring is replaced, ss_tid = 0 (relaxed)
 *   (W)       sc_state, sc_cpu, ss_sysno, ss_stamp_ns (relaxed),
 *             only while ss_source == SCHEDCTL_SOURCE_SUPERVISOR, except
 *             SC_STOPPED, which it may store for any source (and must
 *             replace when the stop ends: for a PERF slot SC_STOPPED
 *             overrides a switch-out record; a SUPERVISOR slot gets
 *             SC_SLEEP back if it slept when the stop began, as its
 *             call restarts, else SC_ONPROC)
 *   owner     (sc_cpu,) ss_sysno, ss_stamp_ns, then sc_state (relaxed),
 *             in its own SUPERVISOR slot (sc_slot_self_mark): SC_SLEEP
 *             just before a sleep it makes without a notification (with
 *             the cookie, src/supervisor/sleep.c; the runtime's lock
 *             parking, src/lock/mutex.c lk_park), which is what the
 *             supervisor would store on that call's notification; and
 *             SC_ONPROC on its CPU as soon as such a park returns, which
 *             is what the sampler would see next
 *   readers   ss_gen (acquire), sc_state (acquire), then the rest, then
 *             re-check ss_gen: a change means the slot changed hands.
 *
 * sc_state's acquire pairs with the set-up's release, so a reader that
 * sees a live state also sees that thread's ss_source and ring.
 */
#ifndef SC_ABI_H
#define SC_ABI_H

#include <stddef.h>
#include <stdint.h>

#include <schedctl.h>

#define SC_PAGE_SIZE        4096u
#define SC_SLOT_SIZE        64u
#define SC_SLOTS_PER_PAGE   (SC_PAGE_SIZE / SC_SLOT_SIZE)
#define SC_REGION_PAGES     1024u        /* 65535 threads at once */
#define SC_REGION_SIZE      ((size_t)SC_REGION_PAGES * SC_PAGE_SIZE)
#define SC_REGION_SLOTS     (SC_REGION_PAGES * SC_SLOTS_PER_PAGE)
#define SC_REGION_MAGIC     0x4c544353u  /* "SCTL" */
#define SC_REGION_VERSION   1u
#define SC_REGION_MEMFD_NAME "schedctl-slots"

/* rh_flags */
#define SC_RH_SUPERVISED    0x1u         /* a supervisor maps this region */

/* ss_flags: private to the owning thread, visible to the supervisor. */
#define SS_IN_RUNTIME       0x1u  /* thread is inside the runtime's own
                                     blocking (lock parking): not a
                                     program-visible sleep */

/* The header in page 0, slot 0. */
struct sc_region_hdr {
	uint32_t rh_magic;       /* SC_REGION_MAGIC once initialised */
	uint16_t rh_version;     /* SC_REGION_VERSION */
	uint16_t rh_slot_size;   /* SC_SLOT_SIZE */
	uint32_t rh_npages;      /* pages handed out (release; readers acquire) */
	uint32_t rh_maxpages;    /* SC_REGION_PAGES */
	int32_t  rh_pid;         /* the process that owns the region */
	uint32_t rh_flags;       /* SC_RH_* (relaxed) */
	uint64_t rh_notif_id;    /* W: id of the newest seccomp notification
	                            the supervisor received for this process
	                            (relaxed); the watchdog answers the ones
	                            after it if the supervisor dies
	                            (src/supervisor/notify.c) */
	uint64_t rh_reserved[4];
};

/* One thread's slot. */
struct sc_slot {
	sc_shared_t ss_pub;          /* the illumos structure */
	int32_t     ss_tid;          /* owner's kernel tid, 0 when free */
	uint32_t    ss_gen;          /* bumped each time the slot is taken */
	uint8_t     ss_source;       /* SCHEDCTL_SOURCE_* for this thread */
	uint8_t     ss_pad0[3];
	uint32_t    ss_sysno;        /* W: syscall it is blocked in, or ~0u */
	uint64_t    ss_stamp_ns;     /* W: CLOCK_MONOTONIC of last update */
	uint32_t    ss_flags;        /* SS_* */
	uint32_t    ss_lhp;          /* preemptions seen while sc_nopreempt */
	uint64_t    ss_reserved[2];
};

_Static_assert(sizeof(sc_shared_t) == 16, "illumos sc_shared_t is 16 bytes");
_Static_assert(offsetof(sc_shared_t, sc_cpu) == 4, "sc_cpu offset");
_Static_assert(offsetof(sc_shared_t, sc_preemptctl) == 12, "sc_preemptctl offset");
_Static_assert(sizeof(struct sc_slot) == SC_SLOT_SIZE, "slot is 64 bytes");
_Static_assert(offsetof(struct sc_slot, ss_pub) == 0, "public part first");
_Static_assert(offsetof(struct sc_slot, ss_tid) == 16, "ss_tid offset");
_Static_assert(offsetof(struct sc_slot, ss_stamp_ns) == 32, "ss_stamp_ns offset");
_Static_assert(sizeof(struct sc_region_hdr) == SC_SLOT_SIZE, "header fills slot 0");
_Static_assert(offsetof(struct sc_region_hdr, rh_notif_id) == 24, "rh_notif_id offset");
_Static_assert(SC_SLOTS_PER_PAGE == 64, "one 64-bit bitmap word per page");

#endif /* SC_ABI_H */
