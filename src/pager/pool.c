/*
 * pool.c - the page pool (memfds) and the pager's own allocators.
 *
 * Pages.  Anons live in pool files: memfds of a fixed, huge, sparse
 * size.  Page numbers are handed out by a bump pointer in windows (a
 * window is a run of page numbers reserved for one region, so a region's
 * pages stay contiguous in the file and its kernel mappings stay few)
 * and are never reused: a freed page is punched out of the file, which
 * returns its memory, and its number is dead.  Because numbers are
 * never reused, a page number that no anon holds has no page in the
 * file: the zero-fill fault relies on that (see region.c, invariant 3).
 * One exception: an object's window that existed at a fork is shared
 * with the other process, which may fill its pages (object.c,
 * invariant 4); the object adopts such pages or discards them when it
 * goes (pool_discard), never the zero-fill path.
 *
 * Files.  The process allocates from file p_cur.  A fork child cannot
 * share the parent's bump pointer, so it starts a new file
 * (pool_newfile) and treats every inherited file as frozen for good
 * (pf_floor); the parent freezes the pages it had handed out at the fork
 * (pf_frozen).  Frozen pages may be mapped by the other process, so they
 * are never written in place and never punched: a frozen page that is
 * freed waits in p_deferred (runs of pages) until pool_thaw (the child
 * is gone, fork.c) lowers the watermark below it, or until the process
 * exits.  A child never punches the files it inherited (pf_floor).
 *
 * Punching in runs.  Each punch is a fallocate that unmaps the range
 * from every mapping of the file and flushes the TLB, so freeing pages
 * one by one cost ~30 us a page (a 16 MiB uvm_unmap took ~110 ms).  So
 * freed pages gather in one pending run, p_punch (one file, consecutive
 * page numbers, grown at either end), punched when a page that does not
 * extend it is freed and by pool_flush.  Until then the run's pages still
 * hold data: the rule above ("no anon, no page") holds again only once
 * the run is punched.  Hence:
 *   - uvm_unlock (pager.h) flushes: no other thread, and no forked child
 *     (fork's prepare takes uvm_lock, so the run is empty at a fork), ever
 *     sees the run.  (The pager wakes a faulting thread before it drops
 *     the lock, so memory its fault freed is returned a moment after the
 *     thread runs again; the thread cannot reach those pages);
 *   - under the lock, whatever reads or fills a pool page flushes first
 *     if the run covers it (pool_settle: reads, writes, SEEK_DATA, a new
 *     anon on the page, pool_take).  A freed page number is reused under
 *     the same lock only by its own region page (a zero fill that stopped
 *     short, a COW page whose mapping failed), and those paths all come
 *     through here before the page gets data.  (region.c's
 *     rg_adopt_strays looks for data with lseeks of its own, in a COW
 *     window, at pages mapped with an empty slot: such a page never held
 *     data of a freed anon, so the run cannot mislead it.)
 *
 * Memory for the pager's structures comes from mmap, never malloc: the
 * pager thread must not take a lock a faulting thread may hold.
 *
 * Locking: everything here runs under uvm_lock (pager.h), except
 * pool_mem_alloc/pool_mem_free, which are plain system calls.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pager/inject.h"
#include "pager/pager.h"

/* Size of each pool file: sparse, so it costs nothing until used.  At
 * most RLIMIT_FSIZE, or growing it would raise SIGXFSZ. */
#define POOL_FILE_BYTES ((off_t)1 << 46)

static uint64_t pool_file_pages(void)
{
	struct rlimit rl;
	uint64_t max = (uint64_t)POOL_FILE_BYTES;
	if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < max)
		max = rl.rlim_cur;
	return max >> PG_SHIFT;
}

#define SLAB_CHUNK ((size_t)64 << 10)

static int pool_memfd(const char *name, off_t size)
{
	int e = inj_fail(INJ_POOL_FILE);
	if (e)
		return e;
	int fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (size && ftruncate(fd, size) < 0) {
		e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

/* => uvm_lock held or single-threaded set-up.  0 or -errno. */
int pool_init(void)
{
	struct pool *p = &uvm_pager.up_pool;
	for (unsigned i = 0; i < POOL_MAXFILES; i++)
		p->p_files[i].pf_fd = -1;
	p->p_nfiles = 0;
	p->p_poison_fd = -1;
	int fd = pool_memfd("schedctl-uvm-poison", 0);
	if (fd < 0)
		return fd;
	p->p_poison_fd = fd;
	return pool_newfile();
}

/* Close every pool file (failed start-up). */
void pool_fini(void)
{
	struct pool *p = &uvm_pager.up_pool;
	for (unsigned i = 0; i < p->p_nfiles; i++) {
		close(p->p_files[i].pf_fd);
		p->p_files[i].pf_fd = -1;
	}
	p->p_nfiles = 0;
	p->p_punch.pr_n = 0;
	if (p->p_poison_fd >= 0)
		close(p->p_poison_fd);
	p->p_poison_fd = -1;
}

/* Start a new file and allocate from it.
 * => uvm_lock held (or the single thread of a fork child).  0 or -errno. */
int pool_newfile(void)
{
	struct pool *p = &uvm_pager.up_pool;
	if (p->p_nfiles >= POOL_MAXFILES)
		return -ENOMEM;
	uint64_t pages = pool_file_pages();
	if (pages == 0)
		return -EFBIG;
	int fd = pool_memfd("schedctl-uvm-pool", (off_t)(pages << PG_SHIFT));
	if (fd < 0)
		return fd;
	struct pool_file *f = &p->p_files[p->p_nfiles];
	f->pf_fd = fd;
	f->pf_next = 0;
	f->pf_size = pages;
	f->pf_frozen = 0;
	f->pf_floor = 0;
	p->p_cur = p->p_nfiles++;
	return 0;
}

/* Reserve npages consecutive page numbers, in a new file when the
 * current one is full (files are only as big as RLIMIT_FSIZE allows).
 * => uvm_lock held.  The first address, PA_NONE when no file can hold
 *    the window or a new file cannot be made (the pool is unchanged). */
pool_addr_t pool_window(size_t npages)
{
	struct pool *p = &uvm_pager.up_pool;
	struct pool_file *f = &p->p_files[p->p_cur];
	if (npages > f->pf_size - f->pf_next) {
		if (npages > f->pf_size || pool_newfile())
			return PA_NONE;
		f = &p->p_files[p->p_cur];
	}
	pool_addr_t a = PA_MAKE(p->p_cur, f->pf_next);
	f->pf_next += npages;
	return a;
}

int pool_fd(pool_addr_t a)
{
	if (a == PA_POISON)
		return uvm_pager.up_pool.p_poison_fd;
	return uvm_pager.up_pool.p_files[PA_FILE(a)].pf_fd;
}

bool pool_frozen(pool_addr_t a)
{
	return PA_PGNO(a) < uvm_pager.up_pool.p_files[PA_FILE(a)].pf_frozen;
}

/* ---- punching freed pages, in runs ----------------------------------- */

/* Punch the pending run, if any.  => uvm_lock held. */
void pool_flush(void)
{
	struct pool *p = &uvm_pager.up_pool;
	struct pool_range r = p->p_punch;
	if (!r.pr_n)
		return;
	p->p_punch.pr_n = 0;
	fallocate(pool_fd(r.pr_addr), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
	          (off_t)PA_PGNO(r.pr_addr) << PG_SHIFT,
	          (off_t)r.pr_n << PG_SHIFT);
}

/* Pages [a, a+n) are about to be read, written or searched for holes:
 * punch the pending run first if it covers any of them.  => uvm_lock held. */
static void pool_settle(pool_addr_t a, uint64_t n)
{
	const struct pool_range *r = &uvm_pager.up_pool.p_punch;
	if (r->pr_n && PA_FILE(r->pr_addr) == PA_FILE(a) &&
	    PA_PGNO(a) < PA_PGNO(r->pr_addr) + r->pr_n &&
	    PA_PGNO(r->pr_addr) < PA_PGNO(a) + n)
		pool_flush();
}

/* Give pages [pg, end) of file f back to the system: add them to the
 * pending run if they extend it at either end, else punch the run and
 * start a new one with them.  => uvm_lock held. */
static void pool_punch(unsigned f, uint64_t pg, uint64_t end)
{
	struct pool_range *r = &uvm_pager.up_pool.p_punch;
	uint64_t lo = PA_PGNO(r->pr_addr), hi = lo + r->pr_n;
	if (r->pr_n && PA_FILE(r->pr_addr) == f && (pg == hi || end == lo)) {
		if (end == lo)
			r->pr_addr = PA_MAKE(f, pg);
		r->pr_n += end - pg;
		return;
	}
	pool_flush();
	*r = (struct pool_range){ PA_MAKE(f, pg), end - pg };
}

/* Page a gets an anon: count it, and settle it (it may be a number freed
 * under this lock hold, see above).  => uvm_lock held. */
void pool_take(pool_addr_t a)
{
	uvm_pager.up_pool.p_pages++;
	pool_settle(a, 1);
}

/* Copy one page inside the pool, through the file descriptors (never
 * through a region, see pager.h).  A bounce buffer and pread/pwrite
 * measured faster than copy_file_range, whose splice path is heavy.
 * => uvm_lock held (the bounce buffer is shared).  0 or -errno. */
int pool_copy(pool_addr_t dst, pool_addr_t src)
{
	static unsigned char bounce[PG_SIZE] __attribute__((aligned(4096)));
	off_t so = (off_t)PA_PGNO(src) << PG_SHIFT;
	off_t dof = (off_t)PA_PGNO(dst) << PG_SHIFT;
	pool_settle(src, 1);
	pool_settle(dst, 1);
	int e = inj_fail(INJ_POOL_READ);
	if (e || pread(pool_fd(src), bounce, PG_SIZE, so) != (ssize_t)PG_SIZE)
		return -EIO;
	if ((e = inj_fail(INJ_POOL_WRITE)))
		return e;
	errno = 0;
	if (pwrite(pool_fd(dst), bounce, PG_SIZE, dof) != (ssize_t)PG_SIZE)
		return errno ? -errno : -EIO;
	return 0;
}

/* Read / write n consecutive pool pages through their file.
 * => 0 or -errno. */
int pool_read(pool_addr_t a, void *buf, size_t n)
{
	size_t len = n << PG_SHIFT;
	pool_settle(a, n);
	int e = inj_fail(INJ_POOL_READ);
	if (e)
		return e;
	ssize_t got = pread(pool_fd(a), buf, len,
	                    (off_t)PA_PGNO(a) << PG_SHIFT);
	return got == (ssize_t)len ? 0 : got < 0 ? -errno : -EIO;
}

int pool_write(pool_addr_t a, const void *buf, size_t n)
{
	size_t len = n << PG_SHIFT;
	pool_settle(a, n);
	int e = inj_fail(INJ_POOL_WRITE);
	if (e)
		return e;
	ssize_t put = pwrite(pool_fd(a), buf, len,
	                     (off_t)PA_PGNO(a) << PG_SHIFT);
	return put == (ssize_t)len ? 0 : put < 0 ? -errno : -EIO;
}

/* Does page a hold data in the pool (rather than a hole)? */
bool pool_present(pool_addr_t a)
{
	off_t off = (off_t)PA_PGNO(a) << PG_SHIFT;
	pool_settle(a, 1);
	return lseek(pool_fd(a), off, SEEK_DATA) == off;
}

/* Which of the pages [a, a+n) hold data: bit k for page a+k (n <= 32).
 * Two lseeks per run of present pages, one if there is none.  (lseek
 * moves the file offset the processes sharing the file share too;
 * nobody uses it, all data moves with pread/pwrite.) */
uint32_t pool_present_map(pool_addr_t a, size_t n)
{
	int fd = pool_fd(a);
	off_t lo = (off_t)PA_PGNO(a) << PG_SHIFT;
	off_t hi = lo + (off_t)(n << PG_SHIFT);
	uint32_t map = 0;
	pool_settle(a, n);
	for (off_t d = lo; d < hi;) {
		off_t s = lseek(fd, d, SEEK_DATA);
		if (s < 0 || s >= hi)
			break;              /* ENXIO: no data after d */
		off_t h = lseek(fd, s, SEEK_HOLE);
		if (h < 0 || h > hi)
			h = hi;
		for (off_t x = s; x < h; x += (off_t)PG_SIZE)
			map |= (uint32_t)1 << ((x - lo) >> PG_SHIFT);
		d = h;
	}
	return map;
}

/* Remember frozen pages d for pool_thaw; if that fails they stay until
 * every process using the file is gone, as documented. */
static void pool_defer(struct pool_range d)
{
	struct pool *p = &uvm_pager.up_pool;
	if (!d.pr_n)
		return;
	struct pool_range *last = p->p_ndeferred ?
	                          &p->p_deferred[p->p_ndeferred - 1] : NULL;
	if (last && PA_FILE(last->pr_addr) == PA_FILE(d.pr_addr) &&
	    PA_PGNO(last->pr_addr) + last->pr_n == PA_PGNO(d.pr_addr)) {
		last->pr_n += d.pr_n;       /* pages freed in order: one run */
		return;
	}
	if (p->p_ndeferred == p->p_capdeferred) {
		size_t ncap = p->p_capdeferred ? p->p_capdeferred * 2 : 256;
		struct pool_range *nr = pool_mem_alloc(ncap * sizeof *nr);
		if (!nr)
			return;
		if (p->p_deferred)
			memcpy(nr, p->p_deferred, p->p_ndeferred * sizeof *nr);
		pool_mem_free(p->p_deferred, p->p_capdeferred * sizeof *nr);
		p->p_deferred = nr;
		p->p_capdeferred = ncap;
	}
	p->p_deferred[p->p_ndeferred++] = d;
}

/* Pages [a, a+n) are nobody's in this process: punch the part no other
 * process may map (from pf_frozen on).  Pages below pf_floor (a fork
 * child's inherited file) are never ours to punch: left out.
 * => uvm_lock held.  The part still frozen (pr_n 0 if none). */
static struct pool_range pool_release(pool_addr_t a, uint64_t n)
{
	unsigned f = PA_FILE(a);
	const struct pool_file *pf = &uvm_pager.up_pool.p_files[f];
	uint64_t pg = PA_PGNO(a), end = pg + n;
	if (pg < pf->pf_floor)
		pg = pf->pf_floor < end ? pf->pf_floor : end;
	uint64_t cut = pf->pf_frozen < pg ? pg :
	               pf->pf_frozen > end ? end : pf->pf_frozen;
	if (cut < end)
		pool_punch(f, cut, end);
	return (struct pool_range){ PA_MAKE(f, pg), cut - pg };
}

/* The last anon holding page a is gone: give the memory back, now or,
 * if another process may still map it, when it thaws.  => uvm_lock held. */
void pool_free_page(pool_addr_t a)
{
	uvm_pager.up_pool.p_pages--;
	pool_defer(pool_release(a, 1));
}

/* Pages [a, a+n) that no anon of this process holds, but that another
 * process sharing them may have filled (an object's window after a fork,
 * object.c): give back what is there, now or when it thaws.
 * => uvm_lock held. */
void pool_discard(pool_addr_t a, size_t n)
{
	pool_defer(pool_release(a, n));
}

/* The children that could map some frozen pages are gone: frozen[f] is
 * the new watermark of file f (never below its floor).  Punch the pages
 * freed meanwhile that are no longer frozen.  => uvm_lock held. */
void pool_thaw(const uint64_t *frozen)
{
	struct pool *p = &uvm_pager.up_pool;
	for (unsigned f = 0; f < p->p_nfiles; f++) {
		struct pool_file *pf = &p->p_files[f];
		pf->pf_frozen = frozen[f] > pf->pf_floor ? frozen[f] : pf->pf_floor;
	}
	size_t k = 0;
	for (size_t i = 0; i < p->p_ndeferred; i++) {
		struct pool_range d = p->p_deferred[i];
		d = pool_release(d.pr_addr, d.pr_n);
		if (d.pr_n)
			p->p_deferred[k++] = d;
	}
	p->p_ndeferred = k;
}

/* ---- allocators ---------------------------------------------------- */

static size_t mem_round(size_t bytes)
{
	return (bytes + PG_SIZE - 1) & ~(PG_SIZE - 1);
}

void *pool_mem_alloc(size_t bytes)
{
	if (bytes == 0)
		bytes = 1;
	if (inj_fail(INJ_MEM))
		return NULL;
	void *p = mmap(NULL, mem_round(bytes), PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void pool_mem_free(void *p, size_t bytes)
{
	if (p)
		munmap(p, mem_round(bytes ? bytes : 1));
}

/* Objects are carved from 64 KiB chunks that are never returned: the
 * pager's structures are small and their number follows the pages in
 * use.  => uvm_lock held. */
void *pool_slab_alloc(struct pool_slab *s)
{
	if (!s->sl_free) {
		unsigned char *c = pool_mem_alloc(SLAB_CHUNK);
		if (!c)
			return NULL;
		for (size_t off = 0; off + s->sl_size <= SLAB_CHUNK;
		     off += s->sl_size) {
			*(void **)(c + off) = s->sl_free;
			s->sl_free = c + off;
		}
	}
	void *o = s->sl_free;
	s->sl_free = *(void **)o;
	memset(o, 0, s->sl_size);
	return o;
}

void pool_slab_free(struct pool_slab *s, void *p)
{
	*(void **)p = s->sl_free;
	s->sl_free = p;
}

/* ---- failure injection (inject.h) ----------------------------------- */

struct pager_inject pager_inject = { .pi_lock = PTHREAD_MUTEX_INITIALIZER };

/* An armed call of point p: count it, decide, run the test's callback.
 * => any locks of the caller (uvm_lock, usually).  0 or -errno. */
int inj_hit(enum inj_point p)
{
	struct inj_state *s = &pager_inject.pi_pt[p];
	int e = 0;
	pthread_mutex_lock(&pager_inject.pi_lock);
	s->is_hits++;
	if (s->is_count != 0) {
		if (s->is_skip > 0) {
			s->is_skip--;
		} else {
			e = -s->is_errno;
			s->is_failed++;
			if (s->is_count > 0)
				s->is_count--;
		}
	}
	void (*cb)(enum inj_point) = pager_inject.pi_cb;
	pthread_mutex_unlock(&pager_inject.pi_lock);
	if (cb)
		cb(p);
	return e;
}

void inj_arm(enum inj_point p, int skip, int count, int err)
{
	pthread_mutex_lock(&pager_inject.pi_lock);
	struct inj_state *s = &pager_inject.pi_pt[p];
	s->is_skip = skip;
	s->is_count = count;
	s->is_errno = err;
	s->is_hits = s->is_failed = 0;
	pthread_mutex_unlock(&pager_inject.pi_lock);
	__atomic_store_n(&pager_inject.pi_armed, 1, __ATOMIC_RELEASE);
}

void inj_disarm(enum inj_point p)
{
	pthread_mutex_lock(&pager_inject.pi_lock);
	pager_inject.pi_pt[p].is_count = 0;
	pthread_mutex_unlock(&pager_inject.pi_lock);
}

void inj_reset(void)
{
	__atomic_store_n(&pager_inject.pi_armed, 0, __ATOMIC_RELEASE);
	pthread_mutex_lock(&pager_inject.pi_lock);
	memset(pager_inject.pi_pt, 0, sizeof pager_inject.pi_pt);
	pager_inject.pi_cb = NULL;
	pthread_mutex_unlock(&pager_inject.pi_lock);
}

void inj_set_cb(void (*cb)(enum inj_point))
{
	pthread_mutex_lock(&pager_inject.pi_lock);
	pager_inject.pi_cb = cb;
	pthread_mutex_unlock(&pager_inject.pi_lock);
	__atomic_store_n(&pager_inject.pi_armed, 1, __ATOMIC_RELEASE);
}

unsigned inj_hits(enum inj_point p)
{
	pthread_mutex_lock(&pager_inject.pi_lock);
	unsigned n = pager_inject.pi_pt[p].is_hits;
	pthread_mutex_unlock(&pager_inject.pi_lock);
	return n;
}

unsigned inj_failed(enum inj_point p)
{
	pthread_mutex_lock(&pager_inject.pi_lock);
	unsigned n = pager_inject.pi_pt[p].is_failed;
	pthread_mutex_unlock(&pager_inject.pi_lock);
	return n;
}
