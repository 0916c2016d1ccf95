/*
 * fault.c - the pager thread and UVM's fault cases.
 *
 * One pager thread reads the process's userfaultfd and serves faults in
 * batches, holding uvm_lock for each batch.  The kernel itself serves
 * every read of a page that exists in the pool (a shared page of a copy
 * included); the pager sees:
 *
 *   MISSING  page i has no pool page: the zero-fill case.  The anon is
 *            created at rg_map[i] (region.c, invariant 3) with
 *            UFFDIO_COPY from a zero buffer, together with the empty
 *            neighbours the region's advice asks for (fault-around, UVM's
 *            advice table: NORMAL 3 behind and 4 ahead, RANDOM none,
 *            SEQUENTIAL 7 ahead).
 *   WP       a write to a write-protected page.  Case 1A: the anon is
 *            held by this region alone and not frozen by a fork, so the
 *            page is unprotected and written in place (with the
 *            exclusive neighbours the advice asks for, up to 64 pages
 *            or 256 ahead, in one ioctl).  Case 1B: the
 *            anon is shared, so it is copied into a new anon at the
 *            region's COW window and page i is remapped to it (under
 *            SEQUENTIAL, with the shared pages right after it, up to 16).
 *
 * Regions of an object (object.c) add UVM's lower-layer cases:
 *   2A       MISSING on a page with no anon: the page maps the object's
 *            window (region.c, invariant 3), so the page is fetched from
 *            the store and filled in place, write-protected, with the
 *            neighbours the advice asks for (UFFDIO_COPY_MODE_WP).
 *            In a shared region a write to it then marks it dirty and
 *            unprotects it (written in place; if a loan holds the page,
 *            the object moves to a copy first: obj_break).
 *   2B       a write to a cached page in a private region: the page is
 *            copied into a new anon at the COW window ("promoted").
 *
 * A region whose amap is shared ("needs copy") gets its own amap first
 * (UVM's amap_copy on fault).  Faults for addresses no region owns any
 * more, or for released pages, are only woken: the retry raises SIGSEGV.
 *
 * If a fault cannot be served (pool or memory exhausted, the store or
 * the kernel failing) every case leaves the page as it was (a missing
 * page missing, a protected page protected with its anon and data; a
 * COW copy whose mmap fails keeps the old mapping, protected) and bus.c
 * sends the faulting thread SIGBUS: its next access tries again.  Only
 * where a signal cannot stand for the fault (SIGBUS blocked or ignored,
 * a fault inside a system call) is the page poisoned (bus.c).  Nothing
 * here waits for a faulting thread, so a fault is always answered.
 *
 * Rules: the pager thread runs with every signal blocked, never calls
 * malloc or stdio, and never touches a managed region (pager.h).
 *
 * Locking: flt_serve and everything under it run with uvm_lock held.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <semaphore.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pager/inject.h"
#include "pager/pager.h"

#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif

#define FLT_MAXRANGE 16   /* most pages one zero-fill maps */
#define FLT_RETRIES  8    /* EAGAIN from an ioctl: tries before giving up */
#define FLT_BATCH    32   /* messages read at once */

static const unsigned char flt_zeros[FLT_MAXRANGE * PG_SIZE]
	__attribute__((aligned(4096)));

/* Fault-around per advice: pages behind and ahead of the fault. */
static const struct { unsigned back, ahead; } flt_advice[] = {
	[UVM_ADV_NORMAL]     = { 3, 4 },
	[UVM_ADV_RANDOM]     = { 0, 0 },
	[UVM_ADV_SEQUENTIAL] = { 0, 7 },
};

/* ---- userfaultfd helpers ------------------------------------------- */

int flt_register(uintptr_t va, size_t len)
{
	struct uffdio_register reg = {
		.range = { .start = va, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
	};
	int e = inj_fail(INJ_REGISTER);
	if (e)
		return e;
	return ioctl(uvm_pager.up_uffd, UFFDIO_REGISTER, &reg) ? -errno : 0;
}

/* Protect (wp) or unprotect [va, va+len); unprotecting wakes waiters. */
int flt_wp(uintptr_t va, size_t len, bool wp)
{
	struct uffdio_writeprotect w = {
		.range = { .start = va, .len = len },
		.mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};
	int e;
	for (int t = 0; t < FLT_RETRIES; t++) {   /* EAGAIN: mm changing */
		e = inj_fail(INJ_WP);
		if (!e && ioctl(uvm_pager.up_uffd, UFFDIO_WRITEPROTECT, &w))
			e = -errno;
		if (e != -EAGAIN)
			break;
	}
	return e;
}

/* UFFDIO_COPY of c.  EAGAIN with nothing copied (the address space was
 * changing) is tried again; a short copy is a result, not an error.
 * => pages copied (>= 1) or -errno. */
static long flt_copy(struct uffdio_copy *c)
{
	long e = -EAGAIN;
	for (int t = 0; t < FLT_RETRIES && e == -EAGAIN; t++) {
		c->copy = 0;
		e = inj_fail(INJ_COPY);
		if (!e && ioctl(uvm_pager.up_uffd, UFFDIO_COPY, c) == 0)
			return (long)(c->len >> PG_SHIFT);
		if (!e)
			e = c->copy > 0 ? (long)(c->copy >> PG_SHIFT) :
			    c->copy < 0 ? (long)c->copy : -errno;
	}
	return e;
}

void flt_wake(uintptr_t va, size_t len)
{
	struct uffdio_range r = { .start = va, .len = len };
	ioctl(uvm_pager.up_uffd, UFFDIO_WAKE, &r);
}

/* ---- zero fill ------------------------------------------------------ */

static uintptr_t flt_va(const struct uvm_region *r, size_t i)
{
	return r->rg_base + (i << PG_SHIFT);
}

static bool flt_fillable(const struct uvm_region *r, size_t i)
{
	return PA_REAL(r->rg_map[i]) && !amap_lookup(r->rg_amap, i);
}

/* Zero-fill pages [a, b) of one run, all empty: one anon per page,
 * then UFFDIO_COPY from the zero buffer; anons of pages the copy did
 * not reach are dropped again.
 * => uvm_lock held, amap private.  Pages filled, or -errno if none. */
static long flt_fill_run(struct uvm_region *r, size_t a, size_t b)
{
	struct vm_anon *an[FLT_MAXRANGE];
	size_t n = 0;
	while (n < b - a && (an[n] = anon_alloc(r->rg_map[a + n])))
		n++;
	struct uffdio_copy c = {
		.dst = flt_va(r, a),
		.src = (uintptr_t)flt_zeros,
		.len = n << PG_SHIFT,
	};
	long done = n ? flt_copy(&c) : -ENOMEM;
	rg_set_wp(r, a, n, false);   /* filled writable */
	for (size_t k = 0; k < n; k++) {
		if ((long)k < done)
			amap_add(r->rg_amap, a + k, an[k]);
		else
			anon_unref(an[k]);
	}
	return done;
}

/* Zero-fill page i and its empty neighbours in [lo, hi) that share its
 * kernel mapping.  => uvm_lock held, amap private, slot i empty.
 * => pages filled (>= 1) or -errno. */
int flt_zerofill(struct uvm_region *r, size_t i, size_t lo, size_t hi)
{
	size_t a = i, b = i + 1;
	while (a > lo && flt_fillable(r, a - 1) &&
	       r->rg_map[a - 1] + 1 == r->rg_map[a])
		a--;
	while (b < hi && flt_fillable(r, b) &&
	       r->rg_map[b - 1] + 1 == r->rg_map[b])
		b++;
	int total = 0;
	for (size_t k = a; k < b;) {
		size_t e = b - k > FLT_MAXRANGE ? k + FLT_MAXRANGE : b;
		long n = flt_fill_run(r, k, e);
		if (n < 0)
			return total ? total : (int)n;
		total += (int)n;
		if ((size_t)n < e - k)
			break;
		k = e;
	}
	return total;
}

/* The pages [*lo, *hi) a fault on page i may bring in, by advice. */
static void flt_around(const struct uvm_region *r, size_t i, size_t *lo,
                       size_t *hi)
{
	unsigned adv = (unsigned)r->rg_advice;
	*lo = i > flt_advice[adv].back ? i - flt_advice[adv].back : 0;
	*hi = i + flt_advice[adv].ahead + 1;
	if (*hi > r->rg_npages)
		*hi = r->rg_npages;
}

/* ---- lower layer: cases 2A and 2B ----------------------------------- */

/* Is page j an object page not cached yet (its first fault fills it)? */
static bool flt_objabsent(const struct uvm_region *r, size_t j)
{
	return PA_REAL(r->rg_map[j]) && !amap_lookup(r->rg_amap, j) &&
	       !r->rg_obj->uo_anon[j] && r->rg_map[j] == r->rg_obj->uo_win + j;
}

/* Keep the fill [*a, *b) around page i (absent) to pages nobody filled:
 * the window of an object that existed at a fork is shared with the
 * other process, which may have filled some (object.c, invariant 4).
 * => uvm_lock held.  Whether page i itself is present. */
static bool flt_objshared(const struct vm_object *o, size_t i, size_t *a,
                          size_t *b)
{
	size_t a0 = *a;
	uint32_t have = pool_present_map(o->uo_win + a0, *b - a0);
	if (have & (uint32_t)1 << (i - a0))
		return true;
	for (size_t k = a0; k < i; k++)
		if (have & (uint32_t)1 << (k - a0))
			*a = k + 1;
	for (size_t k = i + 1; k < *b; k++)
		if (have & (uint32_t)1 << (k - a0)) {
			*b = k;
			break;
		}
	return false;
}

/* Case 2A: fetch object pages [a, b) (page i, and neighbours not yet
 * cached) from the store and fill the object's window in place through
 * the region's own mapping, write-protected, with one UFFDIO_COPY: no
 * remapping, and every region of the object sees the pages at once.
 * In an object that existed at a fork, page i may be in the window
 * already (the other process fetched it): it is adopted as it is, and
 * not woken (*adopted: the caller wakes it, or writes it first).
 * => uvm_lock held, amap private, page i absent.  Pages filled or
 *    adopted, or -errno (page i could not be fetched). */
static int flt_objfill_at(struct uvm_region *r, size_t i, size_t lo,
                          size_t hi, bool *adopted)
{
	static unsigned char buf[FLT_MAXRANGE * PG_SIZE]
		__attribute__((aligned(4096)));
	struct vm_object *o = r->rg_obj;
	struct vm_anon *an[FLT_MAXRANGE];
	size_t a = i, b = i + 1;
	*adopted = false;
	while (a > lo && i - a + 1 < FLT_MAXRANGE / 2 && flt_objabsent(r, a - 1))
		a--;
	while (b < hi && b - a < FLT_MAXRANGE && flt_objabsent(r, b))
		b++;
	if (o->uo_forked && flt_objshared(o, i, &a, &b)) {
		*adopted = true;
		return obj_adopt(o, i) ? 1 : -ENOMEM;
	}
	const struct uvm_pagerops *ops = o->uo_ops;
	int e = ops->pgo_get(o->uo_cookie, (uint64_t)a << PG_SHIFT, buf,
	                     (b - a) << PG_SHIFT);
	if (e && b - a > 1) {             /* a neighbour may be the problem */
		a = i;
		b = i + 1;
		e = ops->pgo_get(o->uo_cookie, (uint64_t)i << PG_SHIFT, buf,
		                 PG_SIZE);
	}
	if (e)
		return e;
	size_t n = 0;
	while (n < b - a && (an[n] = anon_alloc(o->uo_win + a + n)))
		n++;
	struct uffdio_copy c = {
		.dst = flt_va(r, a), .src = (uintptr_t)buf,
		.len = n << PG_SHIFT, .mode = UFFDIO_COPY_MODE_WP,
	};
	long done = n ? flt_copy(&c) : -ENOMEM;
	for (size_t k = 0; k < n; k++) {
		if ((long)k < done)
			o->uo_anon[a + k] = an[k];
		else
			anon_forget(an[k]);   /* not filled by us (EEXIST) */
	}
	if (done > 0 && a + (size_t)done > i)
		return (int)done;
	/* page i not reached: the other side of a fork filled it meanwhile
	 * (EEXIST), or the copy stopped short (the thread faults again) */
	if (o->uo_forked && pool_present(o->uo_win + i)) {
		*adopted = true;
		return obj_adopt(o, i) ? (done > 0 ? (int)done : 0) + 1 :
		       -ENOMEM;
	}
	if (done > 0)
		flt_wake(flt_va(r, i), PG_SIZE);
	return (int)done;
}

int flt_objfill(struct uvm_region *r, size_t i, size_t lo, size_t hi)
{
	bool adopted;
	return flt_objfill_at(r, i, lo, hi, &adopted);
}

/* A fault on object page i, not yet cached: case 2A.  wake: wake page i
 * if it was adopted (a write fault writes it first, then wakes).
 * => uvm_lock held, amap private.  0 or -errno. */
static int flt_obj_missing(struct uvm_region *r, size_t i, bool wake)
{
	size_t lo, hi;
	bool adopted;
	flt_around(r, i, &lo, &hi);
	if (!flt_objabsent(r, i))
		return -EIO;   /* cannot happen: region.c, invariant 3 */
	int n = flt_objfill_at(r, i, lo, hi, &adopted);
	if (n < 0)
		return n;
	if (adopted && wake)
		flt_wake(flt_va(r, i), PG_SIZE);
	r->rg_st.us_fault_2a++;
	r->rg_st.us_fault_around += (uint64_t)n - 1;
	return 0;
}

/* Write the copies in buf into the COW window at pages [i, i+n) and map
 * them there, for anons nan[] (the caller then puts them in the amap).
 * The data reaches the pool before the mapping changes: between mmap and
 * UFFDIO_REGISTER the new mapping is not watched, and a thread touching
 * it then must find the right page.  The old pages are never mapped
 * again: they are shared, and a thread writing them before they were
 * protected again would write them in place (region.c, invariant 5),
 * and a write the new pages took meanwhile would be lost.  If the new
 * pages cannot be mapped:
 *   - the range still registered (the mmap failed and the kernel kept
 *     the old mapping): it is write-protected again (it may have lost
 *     its page-table entries) and nothing changed;
 *   - else (the registration failed: the new pages are mapped, not
 *     watched) the new pages are mapped once more, and the fault is
 *     served if that works (a write made in between is in them);
 *   - only if that fails too are the pages poisoned (a mapping must
 *     always show its slot's anon: region.c, invariant 2).
 * => uvm_lock held.  0: mapped; 1: poisoned (nan[] dropped, threads
 *    woken; the caller empties the slots); -errno: nothing changed
 *    (nan[] dropped). */
static int flt_place(struct uvm_region *r, size_t i, size_t n,
                     struct vm_anon **nan, const unsigned char *buf)
{
	int e = n ? pool_write(r->rg_cowwin + i, buf, n) : -ENOMEM;
	pool_addr_t was[FLT_MAXRANGE];
	for (size_t k = 0; !e && k < n; k++) {
		was[k] = r->rg_map[i + k];
		rg_setmap(r, i + k, r->rg_cowwin + i + k);
	}
	if (e || !(e = rg_remap(r, i, n)))
		goto out;
	for (size_t k = 0; k < n; k++)
		rg_setmap(r, i + k, was[k]);
	if (!flt_wp(flt_va(r, i), n << PG_SHIFT, true)) {
		rg_set_wp(r, i, n, true);       /* the old mapping, intact */
		goto out;
	}
	for (size_t k = 0; k < n; k++)          /* not watched: map again */
		rg_setmap(r, i + k, r->rg_cowwin + i + k);
	if (!(e = rg_remap(r, i, n)))
		return 0;
	if (rg_poison_pages(r, i, n))
		rg_poison_pages(r, 0, r->rg_npages);
	uvm_pager.up_bus_poisons++;
	flt_wake(flt_va(r, i), n << PG_SHIFT);
	e = 1;
out:
	for (size_t k = 0; e && k < n; k++)
		anon_unref(nan[k]);
	return e;
}

/* Case 2B: copy the cached page (and, under ADV_SEQUENTIAL, the cached
 * pages right after it, up to FLT_MAXRANGE) into new anons at the COW
 * window and map those (flt_place).  => uvm_lock held, amap private, page i
 * object-mapped.  0 or -errno. */
static int flt_promote(struct uvm_region *r, size_t i)
{
	static unsigned char buf[FLT_MAXRANGE * PG_SIZE]
		__attribute__((aligned(4096)));
	struct vm_anon *nan[FLT_MAXRANGE];
	if (r->rg_cowwin == PA_NONE &&
	    (r->rg_cowwin = pool_window(r->rg_npages)) == PA_NONE)
		return -ENOMEM;
	size_t ahead = r->rg_advice == UVM_ADV_SEQUENTIAL ? FLT_MAXRANGE : 1;
	size_t n = 0;
	for (size_t j = i; j < r->rg_npages && n < ahead; j++, n++) {
		if (j > i && (!rg_objmapped(r, j) ||
		              amap_lookup(r->rg_amap, j)))
			break;
		if (pool_read(r->rg_obj->uo_anon[j]->an_addr,
		              buf + n * PG_SIZE, 1) ||
		    !(nan[n] = anon_alloc(r->rg_cowwin + j)))
			break;
	}
	int e = flt_place(r, i, n, nan, buf);
	if (e)
		return e < 0 ? e : 0;
	for (size_t k = 0; k < n; k++)
		amap_add(r->rg_amap, i + k, nan[k]);
	r->rg_st.us_fault_2b++;
	r->rg_st.us_fault_around += n - 1;
	flt_wake(flt_va(r, i), n << PG_SHIFT);
	return 0;
}

/* A write to page i, which shows its object page.
 * => uvm_lock held, amap private.  0 or -errno. */
static int flt_obj_write(struct uvm_region *r, size_t i)
{
	if (!r->rg_shared)
		return flt_promote(r, i);                 /* case 2B */
	struct vm_object *o = r->rg_obj;
	int e = o->uo_anon[i]->an_ref > 1 ? obj_break(o, i) : 0;
	if (e)
		return e;
	o->uo_dirty[i] = 1;                               /* in place */
	rg_set_wp(r, i, 1, false);
	e = flt_wp(flt_va(r, i), PG_SIZE, false);
	if (!e)
		r->rg_st.us_fault_2a++;
	return e;
}

/* e, the result of filling missing page i, or 0 if the fill found a
 * page there already (-EEXIST from UFFDIO_COPY; a poison marker is no
 * such thing: the copy replaces it, bus.c).  The thread is woken and its
 * retry finds the page: that is not a failure.
 * => uvm_lock held. */
static int flt_found(struct uvm_region *r, size_t i, int e)
{
	if (e != -EEXIST)
		return e;
	flt_wake(flt_va(r, i), PG_SIZE);
	return 0;
}

static int flt_missing(struct uvm_region *r, size_t i)
{
	int e = rg_prepare_amap(r);
	if (e)
		return e;
	struct vm_anon *an = amap_lookup(r->rg_amap, i);
	if (an) {
		/* Served already (a second thread faulted on the page), or
		 * the anon's data never reached the pool (a failed COW):
		 * waking the latter would fault again forever. */
		if (!pool_present(an->an_addr))
			return -EIO;
		flt_wake(flt_va(r, i), PG_SIZE);
		return 0;
	}
	if (rg_objmapped(r, i)) {       /* served already */
		flt_wake(flt_va(r, i), PG_SIZE);
		return 0;
	}
	if (r->rg_obj)
		return flt_found(r, i, flt_obj_missing(r, i, true));
	size_t lo, hi;
	flt_around(r, i, &lo, &hi);
	int n = flt_zerofill(r, i, lo, hi);
	if (n < 0)
		return flt_found(r, i, n);
	r->rg_st.us_fault_zero++;
	r->rg_st.us_fault_around += (uint64_t)n - 1;
	/* UFFDIO_COPY woke the page's waiters if it reached the page; a
	 * short copy may have stopped before it */
	if (!amap_lookup(r->rg_amap, i))
		flt_wake(flt_va(r, i), PG_SIZE);
	return 0;
}

/* ---- write faults: cases 1A and 1B ---------------------------------- */

/* May page j join a COW fault-around: accessible, holding a shared
 * anon, not yet copied? */
static bool flt_cowable(const struct uvm_region *r, size_t j)
{
	const struct vm_anon *an = amap_lookup(r->rg_amap, j);
	return an && PA_REAL(r->rg_map[j]) && !anon_exclusive(an);
}

/* Case 1B: copy page i (and, under ADV_SEQUENTIAL, the shared pages
 * right after it) into new anons of the COW window, then map them there
 * (flt_place) and wake the faulting threads.
 * => uvm_lock held, amap private, slot i shared.  0 or -errno. */
static int flt_cow(struct uvm_region *r, size_t i)
{
	static unsigned char buf[FLT_MAXRANGE * PG_SIZE]
		__attribute__((aligned(4096)));
	struct vm_anon *old[FLT_MAXRANGE], *nan[FLT_MAXRANGE];
	if (r->rg_cowwin == PA_NONE &&
	    (r->rg_cowwin = pool_window(r->rg_npages)) == PA_NONE)
		return -ENOMEM;
	size_t ahead = r->rg_advice == UVM_ADV_SEQUENTIAL ? FLT_MAXRANGE : 1;
	size_t n = 0;
	for (size_t j = i; j < r->rg_npages && n < ahead; j++, n++) {
		if (j > i && !flt_cowable(r, j))
			break;
		old[n] = amap_lookup(r->rg_amap, j);
		if (pool_read(old[n]->an_addr, buf + n * PG_SIZE, 1) ||
		    !(nan[n] = anon_alloc(r->rg_cowwin + j)))
			break;
	}
	/* pages [i, i+n) are ready */
	int e = flt_place(r, i, n, nan, buf);
	if (e < 0)
		return e;
	for (size_t k = 0; k < n; k++) {
		amap_remove(r->rg_amap, i + k);
		if (!e)
			amap_add(r->rg_amap, i + k, nan[k]);
		anon_unref(old[k]);   /* poisoned: the slot is empty */
	}
	if (e)
		return 0;
	r->rg_st.us_fault_1b++;
	r->rg_st.us_fault_around += n - 1;
	rg_maybe_collapse(r);
	flt_wake(flt_va(r, i), n << PG_SHIFT);
	return 0;
}

/* May page j join a 1A fault-around: accessible, holding an anon this
 * region alone may write in place? */
static bool flt_ownable(const struct uvm_region *r, size_t j)
{
	const struct vm_anon *an = amap_lookup(r->rg_amap, j);
	return an && PA_REAL(r->rg_map[j]) && anon_exclusive(an);
}

/* Pages a 1A fault may unprotect, by advice: NORMAL the aligned block
 * of FLT_OWNBLOCK pages around the fault, SEQUENTIAL FLT_OWNAHEAD pages
 * from it, RANDOM the page alone.  Unprotecting costs about a tenth of a
 * microsecond a page (a page-table walk) against ~10 us for a round trip
 * to the pager, so a block of 64 at most doubles a random writer's fault
 * and saves a rewriting owner 63 round trips in 64. */
#define FLT_OWNBLOCK 64
#define FLT_OWNAHEAD 256

static void flt_own_around(const struct uvm_region *r, size_t i,
                           size_t *lo, size_t *hi)
{
	*lo = i;
	*hi = i + 1;
	if (r->rg_advice == UVM_ADV_NORMAL) {
		*lo = i & ~(size_t)(FLT_OWNBLOCK - 1);
		*hi = *lo + FLT_OWNBLOCK;
	} else if (r->rg_advice == UVM_ADV_SEQUENTIAL) {
		*hi = i + FLT_OWNAHEAD;
	}
	if (*hi > r->rg_npages)
		*hi = r->rg_npages;
}

/* Case 1A: unprotect page i and, as the advice asks, its neighbours in
 * the same kernel mapping whose anons are exclusive too (one ioctl).  An
 * owner rewriting a buffer after its loan ended (or after its copy went)
 * then takes one fault per block of pages instead of one per page;
 * nothing is copied, so unprotecting a page not written yet costs only
 * a protection walk now and at the next loan.
 * => uvm_lock held, amap private, slot i exclusive.  0 or -errno. */
static int flt_own(struct uvm_region *r, size_t i)
{
	size_t lo, hi, a = i, b = i + 1;
	flt_own_around(r, i, &lo, &hi);
	while (a > lo && flt_ownable(r, a - 1) &&
	       r->rg_map[a - 1] + 1 == r->rg_map[a])
		a--;
	while (b < hi && flt_ownable(r, b) &&
	       r->rg_map[b - 1] + 1 == r->rg_map[b])
		b++;
	rg_set_wp(r, a, b - a, false);
	int e = flt_wp(flt_va(r, a), (b - a) << PG_SHIFT, false);
	if (e)
		return e;
	r->rg_st.us_fault_1a++;
	r->rg_st.us_fault_around += b - a - 1;
	return 0;
}

static int flt_write(struct uvm_region *r, size_t i)
{
	int e = rg_prepare_amap(r);
	if (e)
		return e;
	struct vm_anon *an = amap_lookup(r->rg_amap, i);
	if (!an && r->rg_obj && flt_objabsent(r, i)) {
		/* a write to an object page the other side of a fork
		 * fetched (object.c, invariant 4): adopt it, then write */
		e = flt_obj_missing(r, i, false);
		if (e)
			return e;
	}
	if (!an && rg_objmapped(r, i))
		return flt_obj_write(r, i);
	if (!an)
		return flt_missing(r, i);
	if (anon_exclusive(an))
		return flt_own(r, i);                     /* case 1A */
	return flt_cow(r, i);                             /* case 1B */
}

/* Serve one fault of thread tid (0: not known).  => uvm_lock held. */
static void flt_serve(uintptr_t addr, uint64_t flags, uint32_t tid)
{
	uintptr_t va = addr & ~(uintptr_t)(PG_SIZE - 1);
	struct uvm_region *r = rg_lookup(va);
	if (!r) {
		flt_wake(va, PG_SIZE);
		return;
	}
	size_t i = (va - r->rg_base) >> PG_SHIFT;
	if (!PA_REAL(r->rg_map[i])) {
		flt_wake(va, PG_SIZE);
		return;
	}
	bool wp = flags & UFFD_PAGEFAULT_FLAG_WP;
	int e = wp ? flt_write(r, i) : flt_missing(r, i);
	bool missing = !wp;   /* page i absent: what bus_fault may poison */
	/* a write to an object page not yet cached: promote it now rather
	 * than after the thread's retry faults again (2A, then 2B) */
	if (!e && !wp && (flags & UFFD_PAGEFAULT_FLAG_WRITE) && r->rg_obj &&
	    !r->rg_shared && rg_objmapped(r, i) &&
	    !amap_lookup(r->rg_amap, i)) {
		missing = false;   /* filled by 2A: present, protected */
		e = flt_promote(r, i);
	}
	if (e)
		bus_fault(r, i, missing, tid);   /* SIGBUS for tid */
}

/* Read the next batch of messages, sleeping in poll() on the
 * userfaultfd, the fork leases (a lease's end-of-file thaws the pages
 * frozen for it, fork.c) and up_kick_fd, which fork.c writes when it
 * adds a lease.  (Busy-polling for 50 us before sleeping was measured
 * against this and gave no gain, only a CPU burnt on a 2-CPU machine:
 * docs/benchmarks.md.) */
static ssize_t flt_read(int fd, int kick, struct uffd_msg *msg,
                        size_t size)
{
	for (;;) {
		ssize_t n = read(fd, msg, size);
		if (n >= 0 || errno != EAGAIN)
			return n;
		struct pollfd pfd[2 + FORK_MAXLEASES];
		pfd[0] = (struct pollfd){ .fd = fd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = kick, .events = POLLIN };
		int nl = fork_poll_fds(pfd + 2, FORK_MAXLEASES);
		int r = poll(pfd, 2 + (nfds_t)nl, -1);
		if (r < 0 && errno != EINTR)
			return -1;
		uint64_t drain;
		if (r > 0 && pfd[1].revents &&
		    read(kick, &drain, sizeof drain) < 0 && errno != EAGAIN)
			return -1;
		if (r > 0 && nl) {
			pthread_mutex_lock(&uvm_pager.up_lock);
			fork_lease_check(pfd + 2, nl);
			uvm_unlock();
		}
	}
}

/* Posted by the pager thread once it runs its own code (flt_start). */
static sem_t flt_started;

static void *flt_main(void *arg)
{
	int fd = (int)(intptr_t)arg, kick = uvm_pager.up_kick_fd;
	sem_post(&flt_started);
	struct uffd_msg msg[FLT_BATCH];
	for (;;) {
		ssize_t n = flt_read(fd, kick, msg, sizeof msg);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return NULL;
		}
		pthread_mutex_lock(&uvm_pager.up_lock);
		for (size_t k = 0; k < (size_t)n / sizeof msg[0]; k++)
			if (msg[k].event == UFFD_EVENT_PAGEFAULT)
				flt_serve(msg[k].arg.pagefault.address,
				          msg[k].arg.pagefault.flags,
				          msg[k].arg.pagefault.feat.ptid);
		uvm_unlock();
	}
}

/* ---- set-up --------------------------------------------------------- */

static int flt_uffd_open(bool *user_only)
{
	*user_only = false;
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0)
		return fd;
	if (errno != EPERM)
		return -errno;
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		close(dev);
		if (fd >= 0)
			return fd;
	}
	fd = (int)syscall(SYS_userfaultfd,
	                  O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return -errno;
	*user_only = true;
	return fd;
}

/* Open the userfaultfd and agree on the features the pager needs.
 * => uvm_lock held or single-threaded.  0 or -errno. */
int flt_init(void)
{
	const uint64_t need = UFFD_FEATURE_MISSING_SHMEM |
	                      UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
	bool uo;
	int fd = flt_uffd_open(&uo);
	if (fd < 0)
		return fd;
	struct uffdio_api api = { .api = UFFD_API };
	int e = ioctl(fd, UFFDIO_API, &api) ? -errno : 0;
	close(fd);
	if (e)
		return e;
	if ((api.features & need) != need)
		return -ENOSYS;
	/* THREAD_ID: a fault that cannot be served is a signal to its
	 * thread (bus.c) */
	uint64_t want = need | (api.features & (UFFD_FEATURE_POISON |
	                                        UFFD_FEATURE_THREAD_ID));
	fd = flt_uffd_open(&uo);
	if (fd < 0)
		return fd;
	api = (struct uffdio_api){ .api = UFFD_API, .features = want };
	if (ioctl(fd, UFFDIO_API, &api)) {
		e = -errno;
		close(fd);
		return e;
	}
	if (uvm_pager.up_kick_fd >= 0)
		close(uvm_pager.up_kick_fd);   /* a fork child's inherited one */
	uvm_pager.up_kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (uvm_pager.up_kick_fd < 0) {
		e = -errno;
		close(fd);
		return e;
	}
	uvm_pager.up_uffd = fd;
	uvm_pager.up_user_only = uo;
	uvm_pager.up_poison_ioctl = want & UFFD_FEATURE_POISON;
	uvm_pager.up_thread_id = want & UFFD_FEATURE_THREAD_ID;
	return 0;
}

/* Start the pager thread with every signal blocked, and wait until it
 * runs flt_main: a thread's start-up in a sanitizer's runtime allocates
 * (ASan: pthread_getattr_np), and a fork() taken meanwhile would copy
 * the allocator's lock held into the child, whose own pager thread then
 * never starts (seen with a fork right after the first region).
 * => uvm_lock held or single-threaded.  0 or -errno. */
int flt_start(void)
{
	sigset_t all, old;
	sigfillset(&all);
	sem_init(&flt_started, 0, 0);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int e = pthread_create(&uvm_pager.up_thread, NULL, flt_main,
	                       (void *)(intptr_t)uvm_pager.up_uffd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e)
		return -e;
	pthread_detach(uvm_pager.up_thread);
	while (sem_wait(&flt_started) && errno == EINTR)
		;
	return 0;
}
