/*
 * fork.c - fork() of a process that owns managed regions.
 *
 * The regions are MAP_SHARED mappings of the pool, so without help a
 * child would write straight into the parent's pages.  The kernel does
 * not carry the userfaultfd registration into the child either (no
 * UFFD_FEATURE_EVENT_FORK: its events would reach the parent's pager,
 * which cannot change the child's mappings).  So the pager treats fork
 * as a uvm_copy of every region, across the two processes:
 *
 *   prepare  (parent, before fork)  take uvm_lock; write-protect every
 *            region; freeze every page handed out so far (pool.c): such
 *            a page may now be mapped by the child, so the parent never
 *            writes it in place (case 1B, not 1A) and never punches it.
 *            Reset every COW window (region.c, invariant 4).
 *   parent   drop uvm_lock.
 *   child    a new userfaultfd and pager thread; every inherited pool
 *            file frozen and a new file for the child's own pages; the
 *            child's empty pages moved to that file (invariant 3: the
 *            parent may fill the old ones); every region remapped,
 *            registered and write-protected.  Wired ranges are not
 *            inherited, as with mlock().
 *
 * Limits: frozen pages are freed only when every process using their
 * file has exited, not when the last anon goes.  Only fork() through
 * the C library runs these handlers (a raw clone() without CLONE_VM
 * gives the child plain shared mappings).  If the child's set-up fails,
 * its regions are made PROT_NONE: touching them raises SIGSEGV rather
 * than writing into the parent's pages.
 *
 * Locking: prepare takes uvm_lock, parent releases it, child
 * re-initialises it (only the forking thread exists in the child).
 */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pager/pager.h"

static void fork_prepare(void)
{
	pthread_mutex_lock(&uvm_pager.up_lock);
	if (!uvm_pager.up_started)
		return;
	struct pool *p = &uvm_pager.up_pool;
	for (unsigned f = 0; f < p->p_nfiles; f++)
		p->p_files[f].pf_frozen = p->p_files[f].pf_next;
	for (size_t k = 0; k < uvm_pager.up_nregions; k++) {
		struct uvm_region *r = uvm_pager.up_regions[k];
		rg_protect_all(r, true);
		r->rg_cowwin = PA_NONE;
	}
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&uvm_pager.up_lock);
}

/* Give the child's empty pages pool pages of its own, then map the
 * region afresh on the child's userfaultfd.  => 0 or -errno. */
static int fork_child_region(struct uvm_region *r)
{
	pool_addr_t w = PA_NONE;
	for (size_t i = 0; i < r->rg_npages; i++) {
		r->rg_wired[i] = 0;
		if (!PA_REAL(r->rg_map[i]) || amap_lookup(r->rg_amap, i))
			continue;
		if (w == PA_NONE && (w = pool_window(r->rg_npages)) == PA_NONE)
			return -ENOMEM;
		rg_setmap(r, i, w + i);
	}
	r->rg_cowwin = PA_NONE;
	int e = rg_remap(r, 0, r->rg_npages);
	return e ? e : rg_protect_all(r, true);
}

static int fork_child_setup(void)
{
	struct pool *p = &uvm_pager.up_pool;
	for (unsigned f = 0; f < p->p_nfiles; f++)
		p->p_files[f].pf_frozen = UINT64_MAX;
	close(uvm_pager.up_uffd);
	uvm_pager.up_uffd = -1;
	int e = pool_newfile();
	if (!e)
		e = flt_init();
	for (size_t k = 0; !e && k < uvm_pager.up_nregions; k++)
		e = fork_child_region(uvm_pager.up_regions[k]);
	if (!e)
		e = flt_start();
	return e;
}

static void fork_child(void)
{
	pthread_mutex_init(&uvm_pager.up_lock, NULL);
	if (!uvm_pager.up_started)
		return;
	if (fork_child_setup() == 0)
		return;
	for (size_t k = 0; k < uvm_pager.up_nregions; k++) {
		struct uvm_region *r = uvm_pager.up_regions[k];
		mprotect((void *)r->rg_base, r->rg_npages << PG_SHIFT,
		         PROT_NONE);
	}
}

/* => uvm_lock held.  0 or -errno. */
int fork_init(void)
{
	static bool done;
	if (done)
		return 0;
	int e = pthread_atfork(fork_prepare, fork_parent, fork_child);
	if (e)
		return -e;
	done = true;
	return 0;
}
