/*
 * bus.c - giving up on a fault: SIGBUS for the faulting thread.
 *
 * When the pager cannot serve a fault (pool or memory exhausted, the
 * store's pgo_get failing, an mmap or userfaultfd ioctl failing), the
 * kernel's own answer to a file page it cannot read is the model: the
 * faulting thread gets SIGBUS, nothing is lost, and the next access
 * tries again.  So the page is left exactly as it was (a missing page
 * stays missing; a write-protected page keeps its anon, its data and
 * its protection) and the thread is sent SIGBUS itself
 * (rt_tgsigqueueinfo, with the thread id the userfaultfd message
 * carries: UFFD_FEATURE_THREAD_ID).  The faulting thread sleeps in
 * handle_userfault interruptibly: the signal wakes it, the fault
 * returns VM_FAULT_RETRY, the thread runs its handler and, if the
 * handler returns, executes the access again, which faults again and
 * reaches the pager again.  A failure that lasts therefore gives one
 * SIGBUS per access, each one delivered before the next try: the pager
 * never loops without a signal in between.
 *
 * The kernel lets a thread send a signal with a kernel si_code
 * (BUS_ADRERR) only to itself (EPERM otherwise, checked on 6.18), so
 * the signal carries si_code SI_QUEUE; si_addr is the page's address
 * (the bytes of si_pid and si_uid, which share the union with it).
 *
 * Where a signal cannot stand for the fault, the page is poisoned as a
 * last resort (bus_poison): UFFDIO_POISON for a missing page, else a
 * mapping of an empty memfd; the page then raises SIGBUS until it is
 * released.  That is when (read from /proc/self/task/TID/status, with
 * open and read only: the pager's rules, pager.h):
 *   - SIGBUS is blocked in the thread or ignored: the kernel forces a
 *     synchronous SIGBUS to its default action (the process dies), and
 *     the poisoned page's own SIGBUS does the same.  Ignored is checked
 *     again after the send: another thread may set SIG_IGN in between,
 *     and the kernel drops a signal sent then without waking anyone;
 *   - SIGBUS is still pending for the thread at the second failure in
 *     a row of the same page (bus_seen, below);
 *   - the thread waits uninterruptibly (state D: a fault taken by
 *     get_user_pages, as mlock's populate, sleeps killable only, and a
 *     signal would not wake it);
 *   - no thread id (the kernel lacks THREAD_ID), the status cannot be
 *     read (the fault comes from another process: process_vm_writev),
 *     or the signal cannot be sent.
 * SIGBUS pending means the thread faulted again without taking the
 * one sent for its last failed fault.  A fault inside a system call
 * does that: a kernel access to user memory retries the fault while a
 * signal that is not fatal is pending, and the access must fail instead
 * (EFAULT).  So does a thread woken meanwhile by another signal (a timer,
 * a profiler), whose handler returned and whose access faulted again
 * while the pager served the first fault: the SIGBUS then reaches it
 * asleep on the new fault, and the pager may read that message before
 * the thread takes the signal.  The first such message of a (thread,
 * page) pair is only woken and remembered (bus_seen): the woken thread
 * takes its SIGBUS, and the retry, if it fails again, is a failure of
 * its own.  Only a pair that comes again with SIGBUS still pending is a
 * system call spinning, and is poisoned; its next message comes at once.
 * A thread seen without SIGBUS pending forgets its pairs (it took the
 * signal).  The table is small and fixed (no malloc: pager.h); a pair is
 * replaced only when stale (BUS_STALE_NS), and a full table poisons at
 * once, as before the table: an LRU that replaced fresh pairs could
 * let more spinning threads than entries replace each other for ever.
 * A thread that no longer exists anywhere (it exited while the pager
 * worked on its fault) gets neither: nobody waits for that fault, and a
 * poison would drop the page's data for the other threads.
 * A fault inside a system call keeps retrying while the pager works, so
 * messages it queued before its page was poisoned may still be read:
 * if the fill fails again, a missing page that holds a poison marker
 * already (bus_marked, from /proc/self/pagemap) is only woken.  If the
 * fill works, UFFDIO_COPY replaces the marker (it stops only at a page,
 * EEXIST: fault.c, flt_found; checked on 6.18) and the page is served:
 * that undoes the poison of a page that held nothing, which is harmless.
 * A page poisoned for a write fault (present, write-protected) cannot
 * keep its private data: the slot's anon is dropped (region.c,
 * invariant 2: a slot's anon is what the page maps).
 *
 * A message read late (its thread was woken since, by another thread's
 * fault on the page, a release, or a last-resort poison of the whole
 * region) may name a thread that no longer waits for this page; if
 * serving it fails, that thread still gets the SIGBUS, or, if the
 * SIGBUS of its last failure is still pending, it is woken (and the page
 * poisoned if that pair comes again so, as above).
 * A late message finds its page served already (flt_missing only wakes
 * it; a write finds the anon exclusive and unprotects it again), so this
 * needs that ioctl to fail.
 * The alternative, asking /proc whether the thread still sleeps in
 * handle_userfault (wchan), is not reliable: it reads 0 while the
 * thread is still on its way to sleep.
 *
 * Locking: uvm_lock held for everything here (pager.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pager/inject.h"
#include "pager/pager.h"
#include "sc/clock.h"

#ifndef UFFDIO_POISON
struct uffdio_poison {
	struct uffdio_range range;
	__u64 mode;
	__s64 updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, 0x08, struct uffdio_poison)
#endif

#define BUS_BIT ((uint64_t)1 << (SIGBUS - 1))   /* in the status masks */
#define BUS_NSEEN 16                  /* (thread, page) pairs remembered */
#define BUS_STALE_NS 1000000000ull    /* an older pair may be replaced */

/* Pairs whose failed fault found SIGBUS pending once, and were only
 * woken (see the top).  uvm_lock. */
static struct bus_seen {
	uint32_t bs_tid;       /* 0: free */
	uintptr_t bs_va;
	uint64_t bs_when;      /* CLOCK_MONOTONIC, ns */
} bus_seen[BUS_NSEEN];

/* Tests: signals to show pending for thread tid besides its own, as if
 * read from its status (the race of the top cannot be timed from
 * outside).  NULL in production.  Acquire, pairs with the test's
 * release store. */
uint64_t (*bus_test_pending)(uint32_t tid);

/* What /proc says about a thread's signals and sleep. */
struct bus_thread {
	char bt_state;         /* State: R, S, D, ... */
	uint64_t bt_pending;   /* SigPnd: pending for the thread itself */
	uint64_t bt_blocked;   /* SigBlk */
	uint64_t bt_ignored;   /* SigIgn (the process's dispositions) */
};

/* The hex mask on the line "<key>:\t<mask>\n" of text into *m.  A line
 * missing or cut short (the buffer ends inside it: a long Groups line
 * comes first) is no answer: its low bits, SIGBUS's, would read as 0.
 * => whether the whole line was there. */
static bool bus_mask(const char *text, const char *key, uint64_t *m)
{
	const char *p = strstr(text, key);
	*m = 0;
	if (!p)
		return false;
	for (p += strlen(key); *p == ':' || *p == '\t' || *p == ' '; p++)
		;
	for (;; p++) {
		unsigned d;
		if (*p >= '0' && *p <= '9')
			d = (unsigned)(*p - '0');
		else if (*p >= 'a' && *p <= 'f')
			d = (unsigned)(*p - 'a' + 10);
		else
			return *p == '\n';
		*m = *m << 4 | d;
	}
}

/* path = pre, the decimal tid, post (path: 48 bytes, pre and post
 * short literals). */
static void bus_path(char *path, const char *pre, uint32_t tid,
                     const char *post)
{
	char digits[12];
	size_t nd = 0, len = strlen(pre);
	memcpy(path, pre, len);
	do
		digits[nd++] = (char)('0' + tid % 10);
	while ((tid /= 10) && nd < sizeof digits);
	while (nd)
		path[len++] = digits[--nd];
	memcpy(path + len, post, strlen(post) + 1);
}

/* Has thread tid exited: no task of that id in any process (/proc/TID
 * finds threads of other processes too: process_vm_writev)?  A thread
 * that left while the pager worked on its fault waits for nothing.
 * => uvm_lock held. */
static bool bus_gone(uint32_t tid)
{
	char path[48];
	bus_path(path, "/proc/", tid, "");
	return access(path, F_OK) && errno == ENOENT;
}

/* Read /proc/self/task/TID/status into t.  No malloc, no stdio.
 * => 0, or -errno (no such thread of this process; -EIO: a line
 *    missing or beyond the buffer). */
static int bus_thread(uint32_t tid, struct bus_thread *t)
{
	char path[48], buf[4096];
	bus_path(path, "/proc/self/task/", tid, "/status");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t n = 0;
	ssize_t k;
	while (n < sizeof buf - 1 &&
	       (k = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
		n += (size_t)k;
	close(fd);
	buf[n] = 0;
	const char *s = strstr(buf, "State:");
	if (!s || !bus_mask(buf, "SigPnd", &t->bt_pending) ||
	    !bus_mask(buf, "SigBlk", &t->bt_blocked) ||
	    !bus_mask(buf, "SigIgn", &t->bt_ignored))
		return -EIO;
	for (s += 6; *s == '\t' || *s == ' '; s++)
		;
	t->bt_state = *s;
	uint64_t (*hook)(uint32_t) =
		__atomic_load_n(&bus_test_pending, __ATOMIC_ACQUIRE);
	if (hook)
		t->bt_pending |= hook(tid);
	return 0;
}

/* Send SIGBUS for va to thread tid of this process.  => 0 or -errno. */
static int bus_signal(uint32_t tid, uintptr_t va)
{
	siginfo_t si;
	memset(&si, 0, sizeof si);
	si.si_signo = SIGBUS;
	si.si_code = SI_QUEUE;    /* BUS_ADRERR: EPERM (see the top) */
	si.si_addr = (void *)va;
	int e = inj_fail(INJ_SIGNAL);
	if (!e && syscall(SYS_rt_tgsigqueueinfo, getpid(), (pid_t)tid,
	                  SIGBUS, &si))
		e = -errno;
	return e;
}

/* What the thread's status says to do with its failed fault. */
enum bus_how { BUS_SIGNAL, BUS_PENDING, BUS_POISON, BUS_UNKNOWN };

/* => uvm_lock held.  BUS_SIGNAL: it may take it as a signal; BUS_PENDING:
 *    it could, but its last SIGBUS is still pending; BUS_POISON: blocked,
 *    ignored or asleep in D; BUS_UNKNOWN: no tid or no status (see the
 *    top). */
static enum bus_how bus_look(uint32_t tid)
{
	struct bus_thread t;
	if (!tid || !uvm_pager.up_thread_id || bus_thread(tid, &t))
		return BUS_UNKNOWN;
	if ((t.bt_blocked | t.bt_ignored) & BUS_BIT || t.bt_state == 'D')
		return BUS_POISON;
	return t.bt_pending & BUS_BIT ? BUS_PENDING : BUS_SIGNAL;
}

/* Thread tid took its SIGBUS (or is gone): forget its pairs.
 * => uvm_lock held. */
static void bus_seen_forget(uint32_t tid)
{
	for (size_t k = 0; k < BUS_NSEEN; k++)
		if (bus_seen[k].bs_tid == tid)
			bus_seen[k].bs_tid = 0;
}

/* The fault of (tid, va) failed with SIGBUS pending.  The first time,
 * remember the pair in a free or stale entry.
 * => uvm_lock held.  true: poison (the pair came again: it is forgotten;
 *    or the table is full of fresh pairs), false: only wake. */
static bool bus_seen_again(uint32_t tid, uintptr_t va)
{
	uint64_t now = sc_now_ns();
	struct bus_seen *use = NULL;
	for (size_t k = 0; k < BUS_NSEEN; k++) {
		struct bus_seen *b = &bus_seen[k];
		if (b->bs_tid == tid && b->bs_va == va) {
			b->bs_tid = 0;
			return true;
		}
		if (!use && (!b->bs_tid || now - b->bs_when > BUS_STALE_NS))
			use = b;
	}
	if (!use)
		return true;
	*use = (struct bus_seen){ .bs_tid = tid, .bs_va = va, .bs_when = now };
	return false;
}

/* Is SIGBUS ignored now (checked again after the send: a signal sent
 * while it is ignored is dropped and wakes nobody)?  => uvm_lock held. */
static bool bus_ignored(uint32_t tid)
{
	struct bus_thread t;
	return bus_thread(tid, &t) == 0 && (t.bt_ignored & BUS_BIT);
}

/* Does the page table hold a poison marker at va (UFFDIO_POISON, from
 * an earlier failure of this page)?  /proc/self/pagemap shows a marker
 * as a swap entry (bit 62) without uffd-wp (bit 57, the write-protect
 * marker); a shmem page is never a swap entry in the page table, and a
 * missing page cannot be migrating.  => uvm_lock held. */
static bool bus_marked(uintptr_t va)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool ok = pread(fd, &e, sizeof e, (off_t)(va >> PG_SHIFT) * 8) ==
	          (ssize_t)sizeof e;
	close(fd);
	return ok && (e >> 62 & 1) && !(e >> 57 & 1);
}

/* The last resort: poison page i (see the top).  missing: the fault was
 * for a page not present (UFFDIO_POISON applies).
 * => uvm_lock held. */
static void bus_poison(struct uvm_region *r, size_t i, bool missing)
{
	uintptr_t va = r->rg_base + (i << PG_SHIFT);
	if (missing && uvm_pager.up_poison_ioctl) {
		struct uffdio_poison p = { .range = { va, PG_SIZE } };
		int e = inj_fail(INJ_POISON);
		if (!e && ioctl(uvm_pager.up_uffd, UFFDIO_POISON, &p))
			e = -errno;
		if (e == -EEXIST) {        /* poisoned already, or served */
			flt_wake(va, PG_SIZE);
			return;
		}
		if (!e) {
			uvm_pager.up_bus_poisons++;
			return;
		}
	}
	uvm_pager.up_bus_poisons++;
	if (!r->rg_needs_copy && r->rg_amap) {
		struct vm_anon *an = amap_remove(r->rg_amap, i);
		if (an)
			anon_unref(an);
	}
	if (rg_poison_pages(r, i, 1) == 0) {
		flt_wake(va, PG_SIZE);
		return;
	}
	rg_poison_pages(r, 0, r->rg_npages);          /* last resort */
	flt_wake(r->rg_base, r->rg_npages << PG_SHIFT);
}

/* The fault of thread tid on page i of r cannot be served: SIGBUS for
 * that thread, the page left as it is, or else the page poisoned.
 * => uvm_lock held. */
void bus_fault(struct uvm_region *r, size_t i, bool missing, uint32_t tid)
{
	uintptr_t va = r->rg_base + (i << PG_SHIFT);
	if (missing && uvm_pager.up_poison_ioctl && bus_marked(va)) {
		/* poisoned since the message was queued (a fault inside a
		 * system call retries at once): the retry takes the
		 * marker's SIGBUS, this is no failure of its own */
		flt_wake(va, PG_SIZE);
		return;
	}
	enum bus_how how = bus_look(tid);
	if (how == BUS_SIGNAL)
		bus_seen_forget(tid);   /* it took its last SIGBUS, if any */
	if (how == BUS_PENDING) {
		if (!bus_seen_again(tid, va)) {
			flt_wake(va, PG_SIZE);   /* it takes its SIGBUS first */
			return;
		}
	} else if (how == BUS_SIGNAL && bus_signal(tid, va) == 0) {
		if (!bus_ignored(tid)) {
			uvm_pager.up_bus_signals++;
			return;
		}
		/* ignored since the look (another thread's sigaction): the
		 * kernel may have dropped the signal, which then woke
		 * nobody; the poison wakes the thread */
	} else if (how != BUS_POISON && tid && uvm_pager.up_thread_id &&
	           bus_gone(tid)) {
		bus_seen_forget(tid);
		flt_wake(va, PG_SIZE);   /* the page stays as it was */
		return;
	}
	bus_poison(r, i, missing);
}
