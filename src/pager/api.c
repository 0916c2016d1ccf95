/*
 * api.c - the public uvm_* functions (include/schedctl/uvm.h).
 *
 * Each call checks its arguments, takes uvm_lock, starts the pager on
 * first use and maps -errno results to -1/errno.  A region pointer is
 * checked against the table of live regions before it is dereferenced,
 * so a stale or garbage pointer gives EINVAL, never a crash.
 *
 * Locking: uvm_lock is held for the whole of each call except the mlock
 * in uvm_wire, which may fault on managed memory and so must let the
 * pager run (pager.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pager/pager.h"

struct uvm_pager uvm_pager = {
	.up_lock = PTHREAD_MUTEX_INITIALIZER,
	.up_uffd = -1,
	.up_kick_fd = -1,
	.up_pool = { .p_poison_fd = -1 },
};

/* vm.max_map_count, read without stdio. */
static size_t uvm_max_map_count(void)
{
	char buf[32] = { 0 };
	size_t v = 0;
	int fd = open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof buf - 1);
		close(fd);
		for (ssize_t k = 0; k < n && buf[k] >= '0' && buf[k] <= '9'; k++)
			v = v * 10 + (size_t)(buf[k] - '0');
	}
	return v ? v : 65530;
}

/* Start the pager on first use.  => uvm_lock held.  0 or -errno. */
static int uvm_start(void)
{
	if (uvm_pager.up_started)
		return 0;
	if (sysconf(_SC_PAGESIZE) != (long)PG_SIZE)
		return -ENOSYS;
	int e = pool_init();
	if (!e)
		e = flt_init();
	if (!e)
		e = fork_init();
	if (!e)
		e = flt_start();
	if (e) {
		pool_fini();
		if (uvm_pager.up_uffd >= 0)
			close(uvm_pager.up_uffd);
		if (uvm_pager.up_kick_fd >= 0)
			close(uvm_pager.up_kick_fd);
		uvm_pager.up_uffd = uvm_pager.up_kick_fd = -1;
		return e;
	}
	/* leave half of the process's mapping budget to everyone else */
	uvm_pager.up_maxruns = uvm_max_map_count() / 2;
	if (!uvm_pager.up_runs_base)
		uvm_pager.up_runs_base = 64;
	uvm_pager.up_started = true;
	return 0;
}

static void uvm_lock(void)
{
	pthread_mutex_lock(&uvm_pager.up_lock);
}

/* Take uvm_lock and start the pager on first use.
 * => uvm_lock held either way.  0 or -errno. */
static int uvm_lock_start(void)
{
	uvm_lock();
	return uvm_start();
}

/* Drop the lock and turn an -errno result into -1/errno. */
static int uvm_unlock_ret(int e)
{
	uvm_unlock();
	if (e) {
		errno = -e;
		return -1;
	}
	return 0;
}

/* Drop the lock and return p, or, if p is NULL, NULL with errno -e
 * (callers pass -errno as the failed call left it). */
static void *uvm_unlock_ptr(void *p, int e)
{
	uvm_unlock_ret(p ? 0 : e);
	return p;
}

/* Bad arguments of a call returning a pointer: NULL, errno EINVAL. */
static void *uvm_einval_ptr(void)
{
	errno = EINVAL;
	return NULL;
}

/* Is r a live region and [off, off+len) a non-empty page-aligned range
 * inside it?  => uvm_lock held. */
static bool uvm_range_ok(const struct uvm_region *r, size_t off, size_t len)
{
	if (!rg_valid(r))
		return false;
	size_t size = r->rg_npages << PG_SHIFT;
	return len > 0 && (off | len) % PG_SIZE == 0 && off < size &&
	       len <= size - off;
}

/* Take uvm_lock and check r and [off, off+len) (uvm_range_ok).
 * => uvm_lock held either way. */
static bool uvm_lock_range(const struct uvm_region *r, size_t off,
                           size_t len)
{
	uvm_lock();
	return uvm_range_ok(r, off, len);
}

/* Is len a size a new region may have, and prot a protection? */
static bool uvm_len_prot_ok(size_t len, int prot)
{
	return len && len % PG_SIZE == 0 && len / PG_SIZE <= UVM_MAXPAGES &&
	       !(prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC));
}

struct uvm_region *uvm_map_anon(size_t len, int prot)
{
	if (!uvm_len_prot_ok(len, prot))
		return uvm_einval_ptr();
	int e = uvm_lock_start();
	struct uvm_region *r = e ? NULL : rg_create(len / PG_SIZE, prot,
	                                            PA_NONE);
	return uvm_unlock_ptr(r, e ? e : -errno);
}

struct uvm_region *uvm_copy(struct uvm_region *src)
{
	uvm_lock();
	if (!rg_valid(src))
		return uvm_unlock_ptr(NULL, -EINVAL);
	struct uvm_region *c = rg_copy(src);
	return uvm_unlock_ptr(c, -errno);
}

void *uvm_base(const struct uvm_region *r)
{
	uvm_lock();
	void *b = rg_valid(r) ? (void *)r->rg_base : NULL;
	uvm_unlock_ret(b ? 0 : -EINVAL);
	return b;
}

size_t uvm_size(const struct uvm_region *r)
{
	uvm_lock();
	size_t s = rg_valid(r) ? r->rg_npages << PG_SHIFT : 0;
	uvm_unlock_ret(s ? 0 : -EINVAL);
	return s;
}

int uvm_unmap(struct uvm_region *r, size_t off, size_t len)
{
	if (!uvm_lock_range(r, off, len))
		return uvm_unlock_ret(-EINVAL);
	if (off == 0 && len == r->rg_npages << PG_SHIFT) {
		return uvm_unlock_ret(rg_destroy(r));
	}
	return uvm_unlock_ret(rg_release(r, off >> PG_SHIFT, len >> PG_SHIFT));
}

int uvm_advise(struct uvm_region *r, int advice)
{
	uvm_lock();
	if (!rg_valid(r) || advice < UVM_ADV_NORMAL ||
	    advice > UVM_ADV_SEQUENTIAL)
		return uvm_unlock_ret(-EINVAL);
	r->rg_advice = advice;
	return uvm_unlock_ret(0);
}

/* Populate the empty pages of [first, end) and mark them wired.
 * => uvm_lock held.  0 or -errno. */
static int uvm_wire_fill(struct uvm_region *r, size_t first, size_t end)
{
	int e = rg_prepare_amap(r);
	for (size_t i = first; !e && i < end; i++) {
		if (!PA_REAL(r->rg_map[i]))
			continue;
		if (r->rg_obj && !amap_lookup(r->rg_amap, i)) {
			if (rg_objpage(r, i) && !r->rg_obj->uo_anon[i]) {
				int n = flt_objfill(r, i, i, end);
				if (n < 0)
					return n;
			}
		} else if (!amap_lookup(r->rg_amap, i)) {
			int n = flt_zerofill(r, i, i, end);
			if (n < 0)
				return n;
		}
		r->rg_wired[i] = 1;
	}
	return e;
}

/* The next run of real pages of r in [*i, end), as [*i, *j); false if
 * none is left.  => uvm_lock held. */
static bool uvm_next_real(const struct uvm_region *r, size_t *i, size_t *j,
                          size_t end)
{
	while (*i < end && !PA_REAL(r->rg_map[*i]))
		(*i)++;
	if (*i == end)
		return false;
	*j = *i + 1;
	while (*j < end && PA_REAL(r->rg_map[*j]))
		(*j)++;
	return true;
}

int uvm_wire(struct uvm_region *r, size_t off, size_t len)
{
	if (!uvm_lock_range(r, off, len))
		return uvm_unlock_ret(-EINVAL);
	size_t i = off >> PG_SHIFT, j, end = (off + len) >> PG_SHIFT;
	int e = uvm_wire_fill(r, i, end);
	uintptr_t base = r->rg_base;
	/* Lock each accessible run with uvm_lock dropped: mlock's populate
	 * may fault on the region, and the pager must be free to serve it.
	 * mlock fails on the released pages between runs.  A concurrent
	 * uvm_unmap of the same region is the caller's race; at worst mlock
	 * then reports ENOMEM. */
	while (!e && uvm_next_real(r, &i, &j, end)) {
		uvm_unlock();
		if (mlock((void *)(base + (i << PG_SHIFT)), (j - i) << PG_SHIFT))
			return -1;
		uvm_lock();
		if (!rg_valid(r))
			return uvm_unlock_ret(-EINVAL);
		i = j;
	}
	return uvm_unlock_ret(e);
}

int uvm_stats(const struct uvm_region *r, struct uvm_stats *st)
{
	uvm_lock();
	if (!rg_valid(r) || !st)
		return uvm_unlock_ret(-EINVAL);
	*st = r->rg_st;
	st->us_anons = st->us_shared = 0;
	for (size_t i = 0; i < r->rg_npages && r->rg_amap; i++) {
		if (!PA_REAL(r->rg_map[i]) || !amap_lookup(r->rg_amap, i))
			continue;
		st->us_anons++;
		st->us_shared += amap_slot_shared(r->rg_amap, i);
	}
	st->us_maps = r->rg_runs;
	st->us_pool_pages = uvm_pager.up_pool.p_pages;
	return uvm_unlock_ret(0);
}

/* ---- the object layer ---------------------------------------------- */

static bool uvm_map_args_ok(size_t len, int prot, int flags)
{
	return uvm_len_prot_ok(len, prot) &&
	       (flags == UVM_MAP_PRIVATE || flags == UVM_MAP_SHARED);
}

/* A region of a new object.  => uvm_lock held, pager started.
 *    The region, or NULL with errno (the object is not made then). */
static struct uvm_region *uvm_map_obj_locked(const struct uvm_pagerops *ops,
                                             void *cookie, size_t npages,
                                             int prot, int flags)
{
	bool shared = flags == UVM_MAP_SHARED;
	struct vm_object *o = obj_alloc(ops, cookie, npages, shared);
	if (!o) {
		errno = ENOMEM;
		return NULL;
	}
	struct uvm_region *r = rg_create(npages, prot, o->uo_win);
	if (r && rg_protect_all(r, true)) {
		rg_destroy(r);
		r = NULL;
		errno = ENOMEM;
	}
	if (!r) {
		int e = errno;
		o->uo_ops = &(const struct uvm_pagerops){ 0 };
		o->uo_shared = false;
		obj_unref(o);   /* empty: fetches nothing, releases nothing */
		errno = e;
		return NULL;
	}
	r->rg_obj = o;
	r->rg_shared = shared;
	return r;
}

struct uvm_region *uvm_map_object(const struct uvm_pagerops *ops,
                                  void *cookie, size_t len, int prot,
                                  int flags)
{
	if (!ops || !ops->pgo_get || !uvm_map_args_ok(len, prot, flags) ||
	    (flags == UVM_MAP_SHARED && !ops->pgo_put))
		return uvm_einval_ptr();
	int e = uvm_lock_start();
	struct uvm_region *r = e ? NULL :
		uvm_map_obj_locked(ops, cookie, len / PG_SIZE, prot, flags);
	return uvm_unlock_ptr(r, e ? e : -errno);
}

struct uvm_region *uvm_map_file(int fd, off_t off, size_t len, int prot,
                                int flags)
{
	if (off < 0 || off % (off_t)PG_SIZE || !uvm_map_args_ok(len, prot, flags))
		return uvm_einval_ptr();
	int acc = fcntl(fd, F_GETFL);
	if (acc < 0)
		return NULL;   /* EBADF */
	acc &= O_ACCMODE;
	if (acc == O_WRONLY || (flags == UVM_MAP_SHARED &&
	                        (prot & PROT_WRITE) && acc != O_RDWR)) {
		errno = EACCES;   /* as mmap() */
		return NULL;
	}
	const struct uvm_pagerops *ops;
	void *cookie;
	int e = uvm_lock_start();
	if (!e)
		e = obj_file_ops(fd, off, &ops, &cookie);
	if (e)
		return uvm_unlock_ptr(NULL, e);
	struct uvm_region *r = uvm_map_obj_locked(ops, cookie, len / PG_SIZE,
	                                          prot, flags);
	if (!r) {
		e = -errno;   /* before the release can change it */
		ops->pgo_release(cookie);
	}
	return uvm_unlock_ptr(r, e);
}

int uvm_flush(struct uvm_region *r)
{
	uvm_lock();
	if (!rg_valid(r))
		return uvm_unlock_ret(-EINVAL);
	if (!r->rg_obj || !r->rg_shared)
		return uvm_unlock_ret(0);
	return uvm_unlock_ret(obj_flush(r->rg_obj));
}

/* ---- loans ------------------------------------------------------------ */

struct uvm_loan *uvm_loan_view(struct uvm_region *r, size_t off, size_t len)
{
	if (!uvm_lock_range(r, off, len))
		return uvm_unlock_ptr(NULL, -EINVAL);
	struct uvm_loan *l = loan_view(r, off >> PG_SHIFT, len >> PG_SHIFT);
	return uvm_unlock_ptr(l, -errno);
}

int uvm_unloan(struct uvm_loan *l)
{
	uvm_lock();
	if (!loan_valid(l))
		return uvm_unlock_ret(-EINVAL);
	return uvm_unlock_ret(loan_end(l));
}

int uvm_loan_into(struct uvm_region *dst, size_t doff,
                  struct uvm_region *src, size_t soff, size_t len)
{
	if (!uvm_lock_range(dst, doff, len) || !uvm_range_ok(src, soff, len) ||
	    dst->rg_shared ||
	    (dst == src && doff < soff + len && soff < doff + len))
		return uvm_unlock_ret(-EINVAL);
	return uvm_unlock_ret(loan_into(dst, doff >> PG_SHIFT, src,
	                                soff >> PG_SHIFT, len >> PG_SHIFT));
}
