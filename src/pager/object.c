/*
 * object.c - the lower layer: regions backed by a store (UVM's
 * uvm_object with its pager operations).
 *
 * An object is a store (a file, or the caller's own through struct
 * uvm_pagerops) cut into pages, plus a cache of those pages in the pool:
 * uo_anon[k] is an anon holding a copy of store page k, fetched by
 * pgo_get on first use.  Holding the cached pages as anons lets loans
 * take references on them like on any other page (loan.c).
 *
 * A region of an object maps page i to the cached page of object page i
 * (rg_objmapped) until its amap gets an anon for slot i:
 *   - private regions map cached pages write-protected; the first write
 *     copies the page into a new anon (case 2B, fault.c);
 *   - shared regions write the cached page in place; the write fault
 *     marks it dirty (uo_dirty) and obj_flush writes dirty pages back.
 *
 * Invariants:
 *   1. uo_ref counts the regions whose rg_obj is this object; at 0 the
 *      dirty pages are written back, the cache is dropped (loaned pages
 *      live on in their loans) and pgo_release is called.
 *   2. A cached page holds the store's data, or, if dirty, data a shared
 *      region wrote since; every region mapping it write-protects it
 *      while it is clean, so the next write reaches the pager.
 *   3. uo_win+k is used only for object page k's first cached copy; a
 *      page replaced by obj_break gets a new one-page window.
 *   4. An object that existed at a fork (uo_forked) shares uo_win with
 *      the other process, whose copy of the object fills the same pool
 *      pages (both with the store's data; a shared region's writes in
 *      place are seen by both, as with a MAP_SHARED file after fork).
 *      So uo_win+k may hold a page that uo_anon[k] does not: it is
 *      adopted as it is when this side needs page k (obj_adopt: the 2A
 *      fault, obj_getpage), never filled over, and when the object goes
 *      its uncached window pages are discarded (pool_discard: punched
 *      now or when the fork's pages thaw), whoever filled them.
 *
 * Pages past the end of a file read as zeros; writes to them in shared
 * regions are dropped at the flush (the file never grows).
 *
 * Locking: uvm_lock held for everything (pager.h); pgo_get and pgo_put
 * are called with it held, so they must not touch managed memory.
 *     uvm_lock  =>  (the store's own locks, if any)
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pager/inject.h"
#include "pager/pager.h"

static struct pool_slab obj_slab = { .sl_size = sizeof(struct vm_object) };

/* One page-sized bounce buffer: fetches and flushes run under uvm_lock. */
static unsigned char obj_buf[PG_SIZE] __attribute__((aligned(4096)));

static size_t obj_arrays_size(size_t npages)
{
	return npages * (sizeof(struct vm_anon *) + 1);
}

/* A new object of npages pages with a pool window for its cache.
 * => uvm_lock held.  NULL when out of memory or pool space. */
struct vm_object *obj_alloc(const struct uvm_pagerops *ops, void *cookie,
                            size_t npages, bool shared)
{
	struct vm_object *o = pool_slab_alloc(&obj_slab);
	if (!o)
		return NULL;
	o->uo_anon = pool_mem_alloc(obj_arrays_size(npages));
	o->uo_win = pool_window(npages);
	if (!o->uo_anon || o->uo_win == PA_NONE) {
		pool_mem_free(o->uo_anon, obj_arrays_size(npages));
		pool_slab_free(&obj_slab, o);
		return NULL;
	}
	o->uo_dirty = (uint8_t *)(o->uo_anon + npages);
	o->uo_ref = 1;
	o->uo_shared = shared;
	o->uo_ops = ops;
	o->uo_cookie = cookie;
	o->uo_npages = npages;
	return o;
}

void obj_ref(struct vm_object *o)
{
	o->uo_ref++;
}

/* The window pages of o that it never cached, which another process
 * sharing the window may have filled (invariant 4): give them back.
 * => uvm_lock held, no region left. */
static void obj_discard_uncached(struct vm_object *o)
{
	for (size_t k = 0; k < o->uo_npages;) {
		size_t j = k;
		while (j < o->uo_npages && !o->uo_anon[j])
			j++;
		if (j > k)
			pool_discard(o->uo_win + k, j - k);
		k = j + 1;
	}
}

/* => uvm_lock held.  The last reference flushes and frees the object;
 *    a flush error is lost here, so the last region's destroy flushes
 *    first and stops on an error (rg_destroy). */
void obj_unref(struct vm_object *o)
{
	if (--o->uo_ref > 0)
		return;
	if (o->uo_shared)
		obj_flush(o);
	if (o->uo_forked)
		obj_discard_uncached(o);
	for (size_t k = 0; k < o->uo_npages; k++)
		if (o->uo_anon[k])
			anon_unref(o->uo_anon[k]);
	if (o->uo_ops->pgo_release)
		o->uo_ops->pgo_release(o->uo_cookie);
	pool_mem_free(o->uo_anon, obj_arrays_size(o->uo_npages));
	pool_slab_free(&obj_slab, o);
}

/* Cache object page pg as the pool holds it at uo_win+pg, filled by
 * another process sharing the window (invariant 4).
 * => uvm_lock held, uo_anon[pg] empty.  The anon, NULL if out of memory. */
struct vm_anon *obj_adopt(struct vm_object *o, size_t pg)
{
	struct vm_anon *an = anon_alloc(o->uo_win + pg);
	if (an)
		o->uo_anon[pg] = an;
	return an;
}

/* The cached page of object page pg, fetched from the store if absent
 * (adopted if the other side of a fork fetched it: invariant 4; a fetch
 * racing with that side's own writes the same store data over it).
 * => uvm_lock held.  The anon (the object's reference), or NULL with
 *    *err set. */
struct vm_anon *obj_getpage(struct vm_object *o, size_t pg, int *err)
{
	if (o->uo_anon[pg])
		return o->uo_anon[pg];
	if (o->uo_forked && pool_present(o->uo_win + pg)) {
		struct vm_anon *an = obj_adopt(o, pg);
		if (!an)
			*err = -ENOMEM;
		return an;
	}
	int e = o->uo_ops->pgo_get(o->uo_cookie, (uint64_t)pg << PG_SHIFT,
	                           obj_buf, PG_SIZE);
	if (!e)
		e = pool_write(o->uo_win + pg, obj_buf, 1);
	struct vm_anon *an = e ? NULL : anon_alloc(o->uo_win + pg);
	if (!an) {
		*err = e ? e : -ENOMEM;
		return NULL;
	}
	o->uo_anon[pg] = an;
	return an;
}

/* Write-protect every page of o that a shared region maps, so the next
 * write to it marks it dirty again.  => uvm_lock held.  0 or -errno. */
static int obj_protect_shared(struct vm_object *o)
{
	for (size_t k = 0; k < uvm_pager.up_nregions; k++) {
		struct uvm_region *r = uvm_pager.up_regions[k];
		if (r->rg_obj != o || !r->rg_shared)
			continue;
		int e = rg_protect_all(r, true);
		if (e)
			return e;
	}
	return 0;
}

/* Write o's dirty pages to the store.  Pages are protected before they
 * are read, so a write racing with the flush is caught by a new fault
 * and flushed next time; if they cannot be protected nothing is written
 * (a page written after its flush would never be flushed again).  A
 * page the store refuses stays dirty.
 * => uvm_lock held.  0 or the first -errno. */
int obj_flush(struct vm_object *o)
{
	if (!o->uo_ops->pgo_put)
		return 0;
	int e = obj_protect_shared(o), first = e;
	if (e)
		return e;
	for (size_t k = 0; k < o->uo_npages; k++) {
		if (!o->uo_dirty[k] || !o->uo_anon[k])
			continue;
		o->uo_dirty[k] = 0;
		e = pool_read(o->uo_anon[k]->an_addr, obj_buf, 1);
		if (!e)
			e = o->uo_ops->pgo_put(o->uo_cookie,
			                       (uint64_t)k << PG_SHIFT,
			                       obj_buf, PG_SIZE);
		if (e) {
			o->uo_dirty[k] = 1;
			if (!first)
				first = e;
		}
	}
	return first;
}

/* A shared region is about to write cached page pg, which a loan also
 * holds: move the object to a copy of the page (the loan keeps the old
 * one) and remap every region showing it.
 * => uvm_lock held.  0 or -errno (nothing changed). */
int obj_break(struct vm_object *o, size_t pg)
{
	struct vm_anon *old = o->uo_anon[pg];
	pool_addr_t a = pool_window(1);
	if (a == PA_NONE)
		return -ENOMEM;
	int e = pool_copy(a, old->an_addr);
	struct vm_anon *an = e ? NULL : anon_alloc(a);
	if (!an)
		return e ? e : -ENOMEM;
	o->uo_anon[pg] = an;
	for (size_t k = 0; k < uvm_pager.up_nregions; k++) {
		struct uvm_region *r = uvm_pager.up_regions[k];
		if (r->rg_obj != o || r->rg_map[pg] != old->an_addr)
			continue;
		e = rg_setpage(r, pg, a);
		if (!e)
			e = flt_wp(r->rg_base + (pg << PG_SHIFT), PG_SIZE, true);
		if (e)
			rg_poison_pages(r, pg, 1);
	}
	anon_unref(old);
	return 0;
}

/* ---- the file store --------------------------------------------------- */

struct obj_file {
	int of_fd;       /* our duplicate of the caller's descriptor */
	off_t of_off;    /* file offset of object page 0 */
};

static struct pool_slab obj_file_slab = { .sl_size = sizeof(struct obj_file) };

static int obj_file_get(void *cookie, uint64_t off, void *buf, size_t len)
{
	struct obj_file *f = cookie;
	size_t got = 0;
	while (got < len) {
		int e = inj_fail(INJ_FILE_READ);
		if (e)
			return e;
		size_t want = len - got;
		if (inj_fail(INJ_FILE_SHORT) && want > PG_SIZE / 2)
			want = PG_SIZE / 2;   /* tests: a short read */
		ssize_t n = pread(f->of_fd, (char *)buf + got, want,
		                  f->of_off + (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;                     /* end of file: zeros */
		got += (size_t)n;
	}
	memset((char *)buf + got, 0, len - got);
	return 0;
}

static int obj_file_put(void *cookie, uint64_t off, const void *buf,
                        size_t len)
{
	struct obj_file *f = cookie;
	struct stat st;
	if (fstat(f->of_fd, &st))
		return -errno;
	off_t at = f->of_off + (off_t)off;
	if (at >= st.st_size)
		return 0;                          /* past the end: dropped */
	if ((off_t)len > st.st_size - at)
		len = (size_t)(st.st_size - at);
	size_t put = 0;
	while (put < len) {
		int e = inj_fail(INJ_FILE_WRITE);
		if (e)
			return e;
		ssize_t n = pwrite(f->of_fd, (const char *)buf + put,
		                   len - put, at + (off_t)put);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		put += (size_t)n;
	}
	return 0;
}

static void obj_file_release(void *cookie)
{
	struct obj_file *f = cookie;
	close(f->of_fd);
	pool_slab_free(&obj_file_slab, f);
}

static const struct uvm_pagerops obj_file_pagerops = {
	.pgo_get = obj_file_get,
	.pgo_put = obj_file_put,
	.pgo_release = obj_file_release,
};

/* The file store for fd from off.  => uvm_lock held.  0 or -errno; on
 * success the cookie owns a duplicate of fd. */
int obj_file_ops(int fd, off_t off, const struct uvm_pagerops **ops,
                 void **cookie)
{
	struct obj_file *f = pool_slab_alloc(&obj_file_slab);
	if (!f)
		return -ENOMEM;
	f->of_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (f->of_fd < 0) {
		int e = -errno;
		pool_slab_free(&obj_file_slab, f);
		return e;
	}
	f->of_off = off;
	*ops = &obj_file_pagerops;
	*cookie = f;
	return 0;
}
