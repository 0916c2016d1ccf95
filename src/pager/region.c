/*
 * region.c - managed regions and the kernel mappings behind them.
 *
 * A region is UVM's map entry and its address range at once: a fixed
 * range of addresses, a reference to an amap (slot i is page i), a
 * "needs copy" flag, and per page the pool page the kernel maps there
 * (rg_map).  The region owns its whole address range for its life:
 * released pages keep a PROT_NONE placeholder, so nothing else is ever
 * mapped inside it.
 *
 * Kernel mappings.  Pages i..j with consecutive pool addresses are one
 * MAP_SHARED mapping of the pool file, registered with the userfaultfd
 * for MISSING and WP faults.  rg_runs counts the mappings (rg_run_end
 * gives their extent); a copy-on-write fault remaps a single page, so
 * random writes after a copy split mappings, and rg_maybe_collapse()
 * bounds their number (rg_collapse moves every page to one window).
 *
 * Invariants (uvm_lock held to read or change any of them):
 *   1. rg_map[i] == PA_NONE iff page i was released; PA_POISON iff the
 *      pager gave up on it (SIGBUS).  Otherwise the kernel maps pool page
 *      rg_map[i] at page i.
 *   2. If slot i holds an anon, rg_map[i] is that anon's page.
 *   3. If page i is accessible, slot i is empty and the region has no
 *      object, rg_map[i] is a pool
 *      page that no anon holds, that has no page in the pool, and that no
 *      other page of any region (in any process) maps.  So the zero-fill
 *      fault can create the anon right there, with no remapping.
 *      uvm_copy keeps this by giving the copy's empty pages a new window;
 *      fork by giving the child's empty pages pages of its new file.
 *      In a region of an object, such a page maps its object page
 *      (rg_objpage): the cached page, or uo_win+i while it is not cached.
 *      The first fault fills uo_win+i in place (fault.c, case 2A).
 *   4. rg_cowwin+i is free for a COW copy of page i: the window is new
 *      since the region's last uvm_copy or fork (either resets it), and
 *      only page i of this region ever uses that pool page.
 *   5. A page whose anon is shared (anon.c, amap.c) is write-protected in
 *      every region mapping it, so writing it reaches the pager.
 *
 * Remapping a live region: between mmap and UFFDIO_REGISTER the new
 * mapping is not watched, and another thread may touch it.  So a COW
 * fault writes the new page into the pool before it maps it (the thread
 * finds the right data), and a collapse adopts the empty pages the
 * kernel allocated meanwhile (rg_adopt_strays), keeping invariant 3.
 *
 * Locking: uvm_lock held for everything here (pager.h).
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pager/inject.h"
#include "pager/pager.h"

static struct pool_slab rg_slab = { .sl_size = sizeof(struct uvm_region) };

static uintptr_t rg_va(const struct uvm_region *r, size_t i)
{
	return r->rg_base + (i << PG_SHIFT);
}

/* ---- the table of regions ------------------------------------------ */

static int rg_table_insert(struct uvm_region *r)
{
	struct uvm_pager *p = &uvm_pager;
	if (p->up_nregions == p->up_capregions) {
		size_t ncap = p->up_capregions ? p->up_capregions * 2 : 64;
		struct uvm_region **nt = pool_mem_alloc(ncap * sizeof *nt);
		if (!nt)
			return -ENOMEM;
		if (p->up_regions)
			memcpy(nt, p->up_regions,
			       p->up_nregions * sizeof *nt);
		pool_mem_free(p->up_regions, p->up_capregions * sizeof *nt);
		p->up_regions = nt;
		p->up_capregions = ncap;
	}
	size_t k = p->up_nregions;
	while (k > 0 && p->up_regions[k - 1]->rg_base > r->rg_base) {
		p->up_regions[k] = p->up_regions[k - 1];
		k--;
	}
	p->up_regions[k] = r;
	p->up_nregions++;
	return 0;
}

static void rg_table_remove(struct uvm_region *r)
{
	struct uvm_pager *p = &uvm_pager;
	for (size_t k = 0; k < p->up_nregions; k++) {
		if (p->up_regions[k] != r)
			continue;
		memmove(&p->up_regions[k], &p->up_regions[k + 1],
		        (p->up_nregions - k - 1) * sizeof *p->up_regions);
		p->up_nregions--;
		return;
	}
}

/* The region containing va.  => uvm_lock held.  NULL if none. */
struct uvm_region *rg_lookup(uintptr_t va)
{
	struct uvm_pager *p = &uvm_pager;
	size_t lo = 0, hi = p->up_nregions;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct uvm_region *r = p->up_regions[mid];
		if (va < r->rg_base)
			hi = mid;
		else if (va - r->rg_base >= r->rg_npages << PG_SHIFT)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

/* Is r a live region?  Compares pointers only, so any value is safe.
 * => uvm_lock held. */
bool rg_valid(const struct uvm_region *r)
{
	for (size_t k = 0; r && k < uvm_pager.up_nregions; k++)
		if (uvm_pager.up_regions[k] == r)
			return true;
	return false;
}

/* ---- runs of pages that share one kernel mapping -------------------- */

static bool rg_continues(const struct uvm_region *r, size_t i)
{
	pool_addr_t a = r->rg_map[i - 1], b = r->rg_map[i];
	if (a == PA_NONE || b == PA_NONE)
		return a == b;
	return PA_REAL(a) && PA_REAL(b) && b == a + 1;
}

static bool rg_starts_run(const struct uvm_region *r, size_t i)
{
	return i < r->rg_npages && (i == 0 || !rg_continues(r, i));
}

/* First page after the run that contains page i. */
size_t rg_run_end(const struct uvm_region *r, size_t i)
{
	size_t j = i + 1;
	while (j < r->rg_npages && rg_continues(r, j))
		j++;
	return j;
}

/* Point page i at pool page a, keeping rg_runs and up_runs exact. */
void rg_setmap(struct uvm_region *r, size_t i, pool_addr_t a)
{
	size_t before = rg_starts_run(r, i) + rg_starts_run(r, i + 1);
	r->rg_map[i] = a;
	size_t after = rg_starts_run(r, i) + rg_starts_run(r, i + 1);
	r->rg_runs += after - before;
	uvm_pager.up_runs += after - before;
}

/* ---- kernel mappings ---------------------------------------------- */

/* Map pages [i, j), which form one run, as rg_map says.  Real pages are
 * registered with the userfaultfd; wired ones are locked on fault (not
 * populated: the pager must not fault on its own regions).
 * => uvm_lock held.  0 or -errno (the old mapping may be gone). */
static int rg_kmap_run(struct uvm_region *r, size_t i, size_t j)
{
	void *va = (void *)rg_va(r, i);
	size_t len = (j - i) << PG_SHIFT;
	pool_addr_t a = r->rg_map[i];
	void *m;
	int e = inj_fail(INJ_MMAP);
	if (e) {
		errno = -e;
		m = MAP_FAILED;
	} else if (a == PA_NONE)
		m = mmap(va, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
		         MAP_NORESERVE | MAP_FIXED, -1, 0);
	else if (a == PA_POISON)
		m = mmap(va, len, r->rg_prot ? r->rg_prot : PROT_READ,
		         MAP_SHARED | MAP_FIXED, pool_fd(a), 0);
	else
		m = mmap(va, len, r->rg_prot, MAP_SHARED | MAP_FIXED,
		         pool_fd(a), (off_t)PA_PGNO(a) << PG_SHIFT);
	rg_set_wp(r, i, j - i, false);   /* a new mapping: unprotected */
	if (m == MAP_FAILED)
		return -errno;
	if (!PA_REAL(a))
		return 0;
	void (*hook)(uintptr_t, size_t) =   /* tests: act inside the window */
		__atomic_load_n(&uvm_pager.up_test_window, __ATOMIC_ACQUIRE);
	if (hook)
		hook((uintptr_t)va, len);
	e = flt_register((uintptr_t)va, len);
	if (e)
		return e;
	for (size_t k = i; k < j; k++) {
		if (!r->rg_wired[k])
			continue;
		size_t l = k + 1;
		while (l < j && r->rg_wired[l])
			l++;
		mlock2((void *)rg_va(r, k), (l - k) << PG_SHIFT,
		       MLOCK_ONFAULT);
		k = l;
	}
	return 0;
}

/* (Re)map pages [first, first+n) as rg_map says.
 * => uvm_lock held.  0 or -errno. */
int rg_remap(struct uvm_region *r, size_t first, size_t n)
{
	for (size_t i = first; i < first + n;) {
		size_t j = rg_run_end(r, i);
		if (j > first + n)
			j = first + n;
		int e = rg_kmap_run(r, i, j);
		if (e)
			return e;
		i = j;
	}
	return 0;
}

/* Point page i at pool page a and map it there.
 * => uvm_lock held.  0 or -errno. */
int rg_setpage(struct uvm_region *r, size_t i, pool_addr_t a)
{
	rg_setmap(r, i, a);
	return rg_remap(r, i, 1);
}

/* Make the accessible pages of [first, first+n) raise SIGBUS.
 * => uvm_lock held.  0 or -errno. */
int rg_poison_pages(struct uvm_region *r, size_t first, size_t n)
{
	for (size_t i = first; i < first + n; i++)
		if (r->rg_map[i] != PA_NONE)
			rg_setmap(r, i, PA_POISON);
	return rg_remap(r, first, n);
}

/* Record that pages [first, first+n) are (wp) or may not be protected. */
void rg_set_wp(struct uvm_region *r, size_t first, size_t n, bool wp)
{
	memset(r->rg_wp + first, wp, n);
}

/* Write-protect (wp) or unprotect every real page of r.
 * => uvm_lock held.  0 or -errno. */
int rg_protect_all(struct uvm_region *r, bool wp)
{
	for (size_t i = 0; i < r->rg_npages;) {
		size_t j = rg_run_end(r, i);
		if (PA_REAL(r->rg_map[i])) {
			int e = flt_wp(rg_va(r, i), (j - i) << PG_SHIFT, wp);
			if (e)
				return e;
			rg_set_wp(r, i, j - i, wp);
		}
		i = j;
	}
	return 0;
}

/* Write-protect the real pages of [first, first+n) not known to be
 * protected already (a page-table walk saved on each page that is).
 * => uvm_lock held.  0 or -errno. */
int rg_protect(struct uvm_region *r, size_t first, size_t n)
{
	for (size_t i = first; i < first + n;) {
		if (r->rg_wp[i] || !PA_REAL(r->rg_map[i])) {
			i++;
			continue;
		}
		size_t j = i + 1;
		while (j < first + n && !r->rg_wp[j] && PA_REAL(r->rg_map[j]))
			j++;
		int e = flt_wp(rg_va(r, i), (j - i) << PG_SHIFT, true);
		if (e)
			return e;
		rg_set_wp(r, i, j - i, true);
		i = j;
	}
	return 0;
}

/* Register every real run of r (fork child: new userfaultfd).
 * => uvm_lock held.  0 or -errno. */
int rg_register_all(struct uvm_region *r)
{
	for (size_t i = 0; i < r->rg_npages;) {
		size_t j = rg_run_end(r, i);
		if (PA_REAL(r->rg_map[i])) {
			int e = flt_register(rg_va(r, i), (j - i) << PG_SHIFT);
			if (e)
				return e;
		}
		i = j;
	}
	return 0;
}

/* ---- life cycle ---------------------------------------------------- */

static size_t rg_arrays_size(size_t npages)
{
	return npages * (sizeof(pool_addr_t) + 2);
}

static void rg_free(struct uvm_region *r)
{
	if (r->rg_base)
		munmap((void *)r->rg_base, r->rg_npages << PG_SHIFT);
	pool_mem_free(r->rg_map, rg_arrays_size(r->rg_npages));
	pool_slab_free(&rg_slab, r);
}

/* A region with its arrays and an address range reserved PROT_NONE;
 * rg_map all PA_NONE.  => uvm_lock held.  NULL with errno. */
static struct uvm_region *rg_alloc(size_t npages, int prot)
{
	struct uvm_region *r = pool_slab_alloc(&rg_slab);
	if (!r)
		goto nomem;
	r->rg_npages = npages;
	r->rg_prot = prot;
	r->rg_cowwin = PA_NONE;
	r->rg_map = pool_mem_alloc(rg_arrays_size(npages));
	if (!r->rg_map)
		goto nomem;
	r->rg_wired = (uint8_t *)(r->rg_map + npages);
	r->rg_wp = r->rg_wired + npages;
	memset(r->rg_map, 0xff, npages * sizeof *r->rg_map);
	void *va = inj_fail(INJ_MMAP) ? MAP_FAILED :
	           mmap(NULL, npages << PG_SHIFT, PROT_NONE,
	                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (va == MAP_FAILED)
		goto nomem;
	r->rg_base = (uintptr_t)va;
	r->rg_runs = 1;   /* the placeholder */
	return r;
nomem:
	if (r)
		rg_free(r);
	errno = ENOMEM;
	return NULL;
}

/* Count r's runs into rg_runs and up_runs, and enter it in the table. */
static int rg_publish(struct uvm_region *r)
{
	r->rg_runs = 0;
	for (size_t i = 0; i < r->rg_npages; i = rg_run_end(r, i))
		r->rg_runs++;
	int e = rg_table_insert(r);
	if (e)
		return e;
	uvm_pager.up_runs += r->rg_runs;
	return 0;
}

/* A new region of npages pages mapping window w (a new window if w is
 * PA_NONE: a zero-filled region; an object's window for its regions).
 * => uvm_lock held.  NULL with errno. */
struct uvm_region *rg_create(size_t npages, int prot, pool_addr_t w)
{
	struct uvm_region *r = rg_alloc(npages, prot);
	if (!r)
		return NULL;
	if (w == PA_NONE)
		w = pool_window(npages);
	int e = -ENOMEM;
	if (w == PA_NONE)
		goto fail;
	for (size_t i = 0; i < npages; i++)
		r->rg_map[i] = w + i;
	e = rg_remap(r, 0, npages);
	if (e)
		goto fail;
	e = rg_publish(r);
	if (e)
		goto fail;
	return r;
fail:
	rg_free(r);
	errno = -e;
	return NULL;
}

/* A copy-on-write copy of src (see uvm.h).  The source is
 * write-protected first, so the copy holds its contents as of that
 * moment; both then share src's amap, "needs copy".
 * => uvm_lock held.  NULL with errno (src unchanged but for write
 *    protection, which costs one extra fault per page written). */
struct uvm_region *rg_copy(struct uvm_region *src)
{
	int e = rg_protect_all(src, true);
	if (e) {
		errno = -e;
		return NULL;
	}
	size_t n = src->rg_npages;
	struct uvm_region *c = rg_alloc(n, src->rg_prot);
	if (!c)
		return NULL;
	pool_addr_t w = PA_NONE;
	for (size_t i = 0; i < n; i++) {
		pool_addr_t a = src->rg_map[i];
		if (rg_objpage(src, i)) {
			/* object pages: the copy shows them too */
		} else if (PA_REAL(a) && !amap_lookup(src->rg_amap, i)) {
			/* invariant 3: the copy's empty pages get their own */
			if (w == PA_NONE && (w = pool_window(n)) == PA_NONE) {
				e = -ENOMEM;
				goto fail;
			}
			a = w + i;
		}
		c->rg_map[i] = a;
	}
	e = rg_remap(c, 0, n);
	if (!e)
		e = rg_protect_all(c, true);
	if (!e)
		e = rg_publish(c);
	if (e)
		goto fail;
	c->rg_advice = src->rg_advice;
	c->rg_obj = src->rg_obj;        /* object pages: shared by both, */
	c->rg_shared = src->rg_shared;  /* as fork shares a file mapping */
	if (c->rg_obj)
		obj_ref(c->rg_obj);
	if (src->rg_amap) {
		amap_ref(src->rg_amap, c->rg_map, n);
		c->rg_amap = src->rg_amap;
		c->rg_needs_copy = src->rg_needs_copy = true;
	}
	src->rg_cowwin = PA_NONE;   /* invariant 4 */
	src->rg_st.us_copies++;
	return c;
fail:
	rg_free(c);
	errno = -e;
	return NULL;
}

/* Destroy r.  If r is the last region of an object that shared regions
 * wrote, the dirty pages are written back first; if that fails, r stays
 * as it was (the data is still in its pages) and the store's error is
 * returned, so nothing written to a shared region is lost silently.
 * => uvm_lock held.  0 (r is gone) or -errno (r unchanged). */
int rg_destroy(struct uvm_region *r)
{
	struct vm_object *o = r->rg_obj;
	if (o && o->uo_ref == 1 && o->uo_shared) {
		int e = obj_flush(o);
		if (e)
			return e;
	}
	rg_table_remove(r);
	uvm_pager.up_runs -= r->rg_runs;
	if (r->rg_amap)
		amap_unref(r->rg_amap, r->rg_map, r->rg_npages);
	if (r->rg_obj)
		obj_unref(r->rg_obj);
	rg_free(r);
	return 0;
}

/* Release pages [first, first+n): drop their slots' references, then
 * make them inaccessible.  => uvm_lock held.  0 or -errno. */
int rg_release(struct uvm_region *r, size_t first, size_t n)
{
	for (size_t i = first; i < first + n; i++) {
		if (r->rg_map[i] == PA_NONE || !r->rg_amap)
			continue;
		size_t j = i + 1;
		while (j < first + n && r->rg_map[j] != PA_NONE)
			j++;
		int e = amap_unref_range(r->rg_amap, i, j - i);
		if (e)
			return e;
		i = j;
	}
	for (size_t i = first; i < first + n; i++) {
		rg_setmap(r, i, PA_NONE);
		r->rg_wired[i] = 0;
	}
	int e = rg_remap(r, first, n);
	flt_wake(rg_va(r, first), n << PG_SHIFT);
	return e;
}

/* Make r's amap private before a slot changes: create it, or copy it if
 * shared (UVM's amap_copy on the first write after a copy).
 * => uvm_lock held.  0 or -ENOMEM. */
int rg_prepare_amap(struct uvm_region *r)
{
	if (!r->rg_amap) {
		r->rg_amap = amap_alloc(r->rg_npages);
		r->rg_needs_copy = false;
		return r->rg_amap ? 0 : -ENOMEM;
	}
	if (!r->rg_needs_copy)
		return 0;
	if (r->rg_amap->am_ref > 1) {
		struct vm_amap *nam = amap_copy(r->rg_amap, r->rg_map,
		                                r->rg_npages);
		if (!nam)
			return -ENOMEM;
		r->rg_amap = nam;
	}
	r->rg_needs_copy = false;
	return 0;
}

/* ---- bounding the number of kernel mappings ------------------------- */

/* Between mmap and UFFDIO_REGISTER a new mapping is not watched: a
 * thread touching an empty page of it then has the kernel allocate a
 * zero page in the pool.  Adopt such pages in window w as their slots'
 * anons (they hold what that thread wrote).  Two lseeks per run of
 * present pages.  => uvm_lock held, amap private. */
static void rg_adopt_strays(struct uvm_region *r, pool_addr_t w)
{
	int fd = pool_fd(w);
	off_t lo = (off_t)PA_PGNO(w) << PG_SHIFT;
	off_t hi = lo + (off_t)(r->rg_npages << PG_SHIFT);
	for (off_t d = lseek(fd, lo, SEEK_DATA); d >= 0 && d < hi;
	     d = lseek(fd, d, SEEK_DATA)) {
		off_t h = lseek(fd, d, SEEK_HOLE);
		if (h < 0 || h > hi)
			h = hi;
		for (; d < h; d += (off_t)PG_SIZE) {
			size_t i = (size_t)((d - lo) >> PG_SHIFT);
			if (r->rg_map[i] != w + i ||
			    amap_lookup(r->rg_amap, i))
				continue;
			struct vm_anon *an = anon_alloc(w + i);
			if (an)
				amap_add(r->rg_amap, i, an);
		}
	}
}

/* Move every accessible page to one window (the COW window), copying the
 * pages that are elsewhere, and map the region with as few mappings as
 * its released ranges allow.  Costs a copy of every page not yet copied
 * since the last uvm_copy; after it every anon is exclusive.
 * => uvm_lock held, r's amap private.  0 or -errno. */
int rg_collapse(struct uvm_region *r)
{
	/* writers wait for the pager while their pages move */
	int e = rg_protect_all(r, true);
	if (e)
		return e;
	if (r->rg_cowwin == PA_NONE &&
	    (r->rg_cowwin = pool_window(r->rg_npages)) == PA_NONE)
		return -ENOMEM;
	for (size_t i = 0; i < r->rg_npages; i++) {
		pool_addr_t to = r->rg_cowwin + i, a = r->rg_map[i];
		if (!PA_REAL(a) || a == to)
			continue;
		struct vm_anon *old = amap_lookup(r->rg_amap, i);
		if (old) {
			if (pool_copy(to, old->an_addr))
				return -EIO;
			struct vm_anon *an = anon_alloc(to);
			if (!an)
				return -ENOMEM;
			amap_remove(r->rg_amap, i);
			amap_add(r->rg_amap, i, an);
			anon_unref(old);
		}
		rg_setmap(r, i, to);
	}
	e = rg_remap(r, 0, r->rg_npages);
	rg_adopt_strays(r, r->rg_cowwin);
	r->rg_cowwin = PA_NONE;   /* its pages are all taken now */
	r->rg_st.us_collapses++;
	return e;
}

/* Collapse r if its mappings passed its share: up_runs_base (64) plus
 * one per 16 pages, or 16 when the process as a whole nears
 * vm.max_map_count.  => uvm_lock held. */
void rg_maybe_collapse(struct uvm_region *r)
{
	/* An object region's untouched pages must show the object, which a
	 * collapse cannot keep (it adopts strays as zero pages): object
	 * regions are not collapsed; docs/pager.md, "Limits". */
	if (r->rg_obj)
		return;
	size_t limit = __atomic_load_n(&uvm_pager.up_runs_base,
	                               __ATOMIC_RELAXED) + r->rg_npages / 16;
	if (uvm_pager.up_runs > uvm_pager.up_maxruns)
		limit = 16;
	if (r->rg_runs > limit)
		rg_collapse(r);
}
