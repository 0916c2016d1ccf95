/*
 * loan.c - page loans, after UVM's loanout: pages of a region handed to
 * another consumer without copying, and kept safe by copy-on-write.
 *
 * A loan is a reference on an anon, like an amap slot's (anon.c), so
 * a loaned page is never written in place again while the loan lives:
 *   - view (uvm_loan_view): a new read-only mapping of the loaned pool
 *     pages, not registered with the userfaultfd (the kernel serves its
 *     reads; a write raises SIGSEGV).  Pages with no anon loan as the
 *     kernel's zero page (a read-only anonymous mapping).  An owner
 *     write to a loaned page is a write to a shared anon: case 1B (or
 *     2B, or obj_break in a shared object region) gives the owner a
 *     copy and the view keeps the old page.  A page the owner releases
 *     keeps the loan's reference: it lives until the unloan (orphan).
 *   - splice (uvm_loan_splice): the loaned pool pages go into a pipe by
 *     reference, spliced straight from the pool file (no view mapping);
 *     like a vmsplice of the view, the pipe must be drained before the
 *     unloan, since the loan is what keeps the pages copy-on-write.
 *   - into (uvm_loan_into): the pages become anons of another region's
 *     amap, shared with the source (anon->anon, or the object's cached
 *     page -> anon).  Both sides are write-protected: either side's
 *     write copies.
 *
 * Invariants:
 *   1. ln_anon[k] holds one reference on its anon, or is NULL (zero
 *      page); the view maps exactly those pages.
 *   2. Every region mapping a loaned anon write-protects it.
 *   3. A loan is live iff it is in up_loans; only live loans are
 *      dereferenced (a second unloan gives EINVAL).
 *
 * Locking: uvm_lock held for everything (pager.h):
 *       uvm_lock  =>  (nothing)
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "pager/inject.h"
#include "pager/pager.h"

/* Loans of up to LOAN_INLINE pages keep their anon array in the loan
 * itself: a small loan then costs no mmap/munmap of its own array (and
 * no page fault on it), which was a third of a 4 KiB loan's cost. */
#define LOAN_INLINE 32

struct uvm_loan {
	uintptr_t ln_base;           /* the view */
	size_t ln_npages;
	struct vm_anon **ln_anon;    /* per page: loaned anon or NULL;
	                                ln_inline for small loans */
	struct vm_anon *ln_inline[LOAN_INLINE];
};

static struct pool_slab loan_slab = { .sl_size = sizeof(struct uvm_loan) };

/* ---- the table of live loans ------------------------------------------ */

static int loan_table_insert(struct uvm_loan *l)
{
	struct uvm_pager *p = &uvm_pager;
	if (p->up_nloans == p->up_caploans) {
		size_t ncap = p->up_caploans ? p->up_caploans * 2 : 64;
		struct uvm_loan **nt = pool_mem_alloc(ncap * sizeof *nt);
		if (!nt)
			return -ENOMEM;
		if (p->up_loans)
			memcpy(nt, p->up_loans, p->up_nloans * sizeof *nt);
		pool_mem_free(p->up_loans, p->up_caploans * sizeof *nt);
		p->up_loans = nt;
		p->up_caploans = ncap;
	}
	p->up_loans[p->up_nloans++] = l;
	return 0;
}

/* Is l a live loan?  Compares pointers only.  => uvm_lock held. */
bool loan_valid(const struct uvm_loan *l)
{
	for (size_t k = 0; l && k < uvm_pager.up_nloans; k++)
		if (uvm_pager.up_loans[k] == l)
			return true;
	return false;
}

static void loan_table_remove(struct uvm_loan *l)
{
	struct uvm_pager *p = &uvm_pager;
	for (size_t k = 0; k < p->up_nloans; k++)
		if (p->up_loans[k] == l) {
			p->up_loans[k] = p->up_loans[--p->up_nloans];
			return;
		}
}

/* ---- shared steps ------------------------------------------------------- */

/* Are pages [first, first+n) of r all accessible (not released, not
 * poisoned)? */
static bool loan_pages_ok(const struct uvm_region *r, size_t first, size_t n)
{
	for (size_t i = first; i < first + n; i++)
		if (!PA_REAL(r->rg_map[i]))
			return false;
	return true;
}

/* The page the loan takes for page i of r: its anon, the object's cached
 * page, or NULL (never touched: zero).  => uvm_lock held, amap private.
 * 0 or -errno (the object page could not be fetched). */
static int loan_page(struct uvm_region *r, size_t i, struct vm_anon **out)
{
	int e = 0;
	*out = amap_lookup(r->rg_amap, i);
	if (!*out && r->rg_obj)
		*out = obj_getpage(r->rg_obj, i, &e);
	return e;
}

/* Write-protect pages [first, first+n) of r, and, if r is a region of
 * an object, every shared region of it (a loaned cached page must not
 * be written in place anywhere: invariant 2).  => uvm_lock held. */
static int loan_protect(struct uvm_region *r, size_t first, size_t n)
{
	int e = rg_protect(r, first, n);
	if (e)
		return e;
	for (size_t k = 0; r->rg_obj && k < uvm_pager.up_nregions; k++) {
		struct uvm_region *o = uvm_pager.up_regions[k];
		if (o->rg_obj == r->rg_obj && o->rg_shared) {
			e = rg_protect(o, 0, o->rg_npages);
			if (e)
				return e;
		}
	}
	return 0;
}

/* ---- views -------------------------------------------------------------- */

/* First page after the run of loaned pages starting at k (consecutive
 * pool pages: one mapping of the pool file).  ln_anon[k] is not NULL. */
static size_t loan_run_end(const struct uvm_loan *l, size_t k)
{
	pool_addr_t a = l->ln_anon[k]->an_addr;
	size_t j = k + 1;
	while (j < l->ln_npages && l->ln_anon[j] &&
	       l->ln_anon[j]->an_addr == a + (j - k))
		j++;
	return j;
}

/* A read-only mmap for a view (at va: MAP_FIXED), failing as an
 * INJ_MMAP point when a test arms it.  The mapping or MAP_FAILED. */
static void *loan_mmap(void *va, size_t len, int flags, int fd, off_t off)
{
	int e = inj_fail(INJ_MMAP);
	if (e) {
		errno = -e;
		return MAP_FAILED;
	}
	return mmap(va, len, PROT_READ, flags, fd, off);
}

/* Map the view: a read-only anonymous reservation (zero pages), with the
 * loaned pages mapped over it run by run, or, when the loan is one run,
 * just that run's mapping (one mmap instead of two).  The view is not
 * populated: a consumer's first read of each page is a minor fault the
 * kernel serves from the pool file (with its fault-around), and pages
 * never read cost nothing.  => 0 or -errno. */
static int loan_map(struct uvm_loan *l)
{
	size_t len = l->ln_npages << PG_SHIFT;
	if (l->ln_anon[0] && loan_run_end(l, 0) == l->ln_npages) {
		pool_addr_t a = l->ln_anon[0]->an_addr;
		void *va = loan_mmap(NULL, len, MAP_SHARED, pool_fd(a),
		                     (off_t)PA_PGNO(a) << PG_SHIFT);
		if (va == MAP_FAILED)
			return -errno;
		l->ln_base = (uintptr_t)va;
		return 0;
	}
	void *va = loan_mmap(NULL, len,
	                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (va == MAP_FAILED)
		return -errno;
	l->ln_base = (uintptr_t)va;
	for (size_t k = 0; k < l->ln_npages;) {
		if (!l->ln_anon[k]) {
			k++;
			continue;
		}
		pool_addr_t a = l->ln_anon[k]->an_addr;
		size_t j = loan_run_end(l, k);
		void *m = loan_mmap((void *)(l->ln_base + (k << PG_SHIFT)),
		                    (j - k) << PG_SHIFT, MAP_SHARED | MAP_FIXED,
		                    pool_fd(a), (off_t)PA_PGNO(a) << PG_SHIFT);
		if (m == MAP_FAILED) {
			int e = -errno;
			munmap(va, len);
			return e;
		}
		k = j;
	}
	return 0;
}

static void loan_free(struct uvm_loan *l)
{
	if (l->ln_anon != l->ln_inline)
		pool_mem_free(l->ln_anon, l->ln_npages * sizeof *l->ln_anon);
	pool_slab_free(&loan_slab, l);
}

/* A read-only view of pages [first, first+n) of r.
 * => uvm_lock held.  The loan, or NULL with errno; on error r is as
 *    before (but for object pages fetched into the cache). */
struct uvm_loan *loan_view(struct uvm_region *r, size_t first, size_t n)
{
	int e = loan_pages_ok(r, first, n) ? rg_prepare_amap(r) : -EINVAL;
	struct uvm_loan *l = e ? NULL : pool_slab_alloc(&loan_slab);
	if (!e && !l)
		e = -ENOMEM;
	if (e)
		goto fail;
	l->ln_npages = n;
	l->ln_anon = n <= LOAN_INLINE ? l->ln_inline :
	             pool_mem_alloc(n * sizeof *l->ln_anon);
	if (!l->ln_anon) {
		e = -ENOMEM;
		goto fail_free;
	}
	for (size_t k = 0; !e && k < n; k++)
		e = loan_page(r, first + k, &l->ln_anon[k]);
	if (!e)
		e = loan_protect(r, first, n);
	if (!e)
		e = loan_map(l);
	if (e)
		goto fail_free;
	e = loan_table_insert(l);
	if (e) {
		munmap((void *)l->ln_base, n << PG_SHIFT);
		goto fail_free;
	}
	for (size_t k = 0; k < n; k++)
		if (l->ln_anon[k])
			anon_ref(l->ln_anon[k]);
	return l;
fail_free:
	loan_free(l);
fail:
	errno = -e;
	return NULL;
}

/* End loan l: unmap the view and drop its references (the last one
 * frees an orphaned page).  => uvm_lock held, l live.  0. */
int loan_end(struct uvm_loan *l)
{
	loan_table_remove(l);
	munmap((void *)l->ln_base, l->ln_npages << PG_SHIFT);
	for (size_t k = 0; k < l->ln_npages; k++)
		if (l->ln_anon[k])
			anon_unref(l->ln_anon[k]);
	loan_free(l);
	return 0;
}

const void *uvm_loan_base(const struct uvm_loan *l)
{
	pthread_mutex_lock(&uvm_pager.up_lock);
	const void *b = loan_valid(l) ? (const void *)l->ln_base : NULL;
	uvm_unlock();
	if (!b)
		errno = EINVAL;
	return b;
}

/* ---- splicing a loan into a pipe ------------------------------------------ */

/* The next piece of [off, off+len) of loan l to splice: pages of one run
 * of pool pages (*fd, *foff), or, where the loan has no anon, the view's
 * zero pages (*fd = -1, *va).  => uvm_lock held, l live.  Its length. */
static size_t loan_piece(const struct uvm_loan *l, size_t off, size_t len,
                         int *fd, off_t *foff, uintptr_t *va)
{
	size_t k = off >> PG_SHIFT, j = k + 1;
	if (l->ln_anon[k]) {
		pool_addr_t a = l->ln_anon[k]->an_addr;
		j = loan_run_end(l, k);
		*fd = pool_fd(a);
		*foff = (off_t)(PA_PGNO(a) << PG_SHIFT) + (off_t)(off & (PG_SIZE - 1));
	} else {
		while (j < l->ln_npages && !l->ln_anon[j])
			j++;
		*fd = -1;
		*va = l->ln_base + off;
	}
	size_t n = (j << PG_SHIFT) - off;
	return n < len ? n : len;
}

/* Splice bytes [off, off+len) of the loan into a pipe by reference:
 * straight from the pool file (splice(2): the pipe takes the pool's
 * pages, nothing is mapped or copied), the zero pages by vmsplice of
 * the view.  uvm_lock is not held while the pipe may block (a reader
 * in this process may fault on managed memory).  Like vmsplice of the
 * view, safe only while the loan lives: the reader must drain the pipe
 * before uvm_unloan().  Bytes spliced (short only with SPLICE_F_NONBLOCK
 * or after an error), or -1 with errno. */
ssize_t uvm_loan_splice(const struct uvm_loan *l, size_t off, int pipefd,
                        size_t len, unsigned int flags)
{
	size_t done = 0;
	int e = 0;
	while (done < len) {
		int fd = -1;
		off_t foff = 0;
		uintptr_t va = 0;
		size_t n = 0;
		pthread_mutex_lock(&uvm_pager.up_lock);
		if (!loan_valid(l) || off > l->ln_npages << PG_SHIFT ||
		    len > (l->ln_npages << PG_SHIFT) - off)
			e = EINVAL;
		else
			n = loan_piece(l, off + done, len - done, &fd, &foff,
			               &va);
		uvm_unlock();
		if (e)
			break;
		ssize_t w;
		if (fd >= 0) {
			loff_t lo = foff;
			w = splice(fd, &lo, pipefd, NULL, n, flags);
		} else {
			struct iovec iov = { (void *)va, n };
			w = vmsplice(pipefd, &iov, 1, flags);
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			e = errno;
			break;
		}
		done += (size_t)w;
		if (w == 0 || ((size_t)w < n && (flags & SPLICE_F_NONBLOCK)))
			break;
	}
	if (e && !done) {
		errno = e;
		return -1;
	}
	return (ssize_t)done;
}

/* ---- loans into a region ------------------------------------------------- */

/* Point dst's pages [d, d+n) at an[], taking a reference on each anon;
 * old[] gets the anons they held, oldmap[] the pool pages they mapped.
 * Cannot fail.  => uvm_lock held, dst's amap private. */
static void loan_install(struct uvm_region *dst, size_t d, size_t n,
                         struct vm_anon **an, struct vm_anon **old,
                         pool_addr_t *oldmap)
{
	for (size_t k = 0; k < n; k++) {
		old[k] = amap_remove(dst->rg_amap, d + k);
		oldmap[k] = dst->rg_map[d + k];
		anon_ref(an[k]);
		amap_add(dst->rg_amap, d + k, an[k]);
		rg_setmap(dst, d + k, an[k]->an_addr);
	}
}

/* Undo loan_install: dst's slots get their old anons back (the loaned
 * ones lose the reference it took), rg_map its old pool pages, and the
 * kernel maps them again, write-protected (more protection than before
 * costs a fault, never a write: a shared old page must be protected,
 * invariant 2, and a remap leaves nothing protected).  Restoring the
 * mapping is an mmap and ioctls again, so it can fail too; only then
 * are the pages poisoned (SIGBUS) as the last resort.
 * => uvm_lock held, dst's amap private. */
static void loan_uninstall(struct uvm_region *dst, size_t d, size_t n,
                           struct vm_anon **old, const pool_addr_t *oldmap)
{
	for (size_t k = 0; k < n; k++) {
		anon_unref(amap_remove(dst->rg_amap, d + k));
		if (old[k])
			amap_add(dst->rg_amap, d + k, old[k]);
		old[k] = NULL;   /* the slot holds it again */
		rg_setmap(dst, d + k, oldmap[k]);
	}
	int e = rg_remap(dst, d, n);
	if (!e)
		e = rg_protect(dst, d, n);
	if (e && rg_poison_pages(dst, d, n))
		rg_poison_pages(dst, 0, dst->rg_npages);
}

/* Source pages never touched: dst gets zero-filled anons of its own at
 * the pages of a new window (a zero page must read as zero even in a
 * region of an object).  fresh[k] is set for those.
 * => uvm_lock held.  0 or -errno (fresh anons dropped by the caller). */
static int loan_zeros(struct uvm_region *dst, size_t d, size_t n,
                      struct vm_anon **an, struct vm_anon **fresh)
{
	static const unsigned char zero[PG_SIZE] __attribute__((aligned(4096)));
	pool_addr_t w = PA_NONE;
	for (size_t k = 0; k < n; k++) {
		if (an[k])
			continue;
		if (w == PA_NONE && (w = pool_window(dst->rg_npages)) == PA_NONE)
			return -ENOMEM;
		int e = pool_write(w + d + k, zero, 1);
		if (e)
			return e;
		if (!(an[k] = fresh[k] = anon_alloc(w + d + k)))
			return -ENOMEM;
	}
	return 0;
}

/* Share src's pages [s, s+n) into dst's [d, d+n), copy-on-write.
 * Everything that can fail without touching dst comes first (fetching
 * object pages, zero pages, protecting src); then dst's slots change
 * (cannot fail) and the kernel maps and protects the new pages there.
 * If that fails, dst gets its old pages back (loan_uninstall).
 * => uvm_lock held; ranges valid and not overlapping.  0 or -errno;
 *    on error dst and src read as before (src may stay write-protected
 *    and object pages may stay fetched into the cache, as for views;
 *    dst's pages are poisoned only if restoring their mapping fails as
 *    well). */
int loan_into(struct uvm_region *dst, size_t d, struct uvm_region *src,
              size_t s, size_t n)
{
	if (!loan_pages_ok(dst, d, n) || !loan_pages_ok(src, s, n))
		return -EINVAL;
	int e = rg_prepare_amap(src);
	if (!e)
		e = rg_prepare_amap(dst);
	if (e)
		return e;
	size_t size = n * (3 * sizeof(struct vm_anon *) + sizeof(pool_addr_t));
	struct vm_anon **an = pool_mem_alloc(size);
	if (!an)
		return -ENOMEM;
	struct vm_anon **old = an + n, **fresh = an + 2 * n;
	pool_addr_t *oldmap = (pool_addr_t *)(an + 3 * n);
	for (size_t k = 0; !e && k < n; k++)
		e = loan_page(src, s + k, &an[k]);
	if (!e)
		e = loan_zeros(dst, d, n, an, fresh);
	if (!e)
		e = loan_protect(src, s, n);
	if (e)
		goto out;
	loan_install(dst, d, n, an, old, oldmap);
	e = rg_remap(dst, d, n);
	if (!e)   /* not loan_protect: no shared region of dst's object maps
	             a loaned page (src's object's were protected above) */
		e = rg_protect(dst, d, n);
	if (e)
		loan_uninstall(dst, d, n, old, oldmap);
	flt_wake(dst->rg_base + (d << PG_SHIFT), n << PG_SHIFT);
	for (size_t k = 0; k < n; k++)
		if (old[k])
			anon_unref(old[k]);
	if (!e)
		rg_maybe_collapse(dst);
out:
	for (size_t k = 0; k < n; k++)
		if (fresh[k])
			anon_unref(fresh[k]);   /* dst's slot holds it now */
	pool_mem_free(an, size);
	return e;
}
