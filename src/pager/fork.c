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
 *            Reset every COW window (region.c, invariant 4).  Mark every
 *            object forked: the child fills the same object window
 *            (object.c, invariant 4).  Open the child's lease (below).
 *   parent   keep the lease's read end; drop uvm_lock.
 *   child    a new userfaultfd and pager thread; every inherited pool
 *            file frozen for good and a new file for the child's own
 *            pages; the child's empty pages moved to that file
 *            (invariant 3: the parent may fill the old ones); every
 *            region remapped, registered and write-protected.  Wired
 *            ranges are not inherited, as with mlock().
 *
 * Leases.  The child keeps the write end of a close-on-exec pipe; when
 * the child and every process it forked before exec'ing have exec'd or
 * exited, the parent's pager sees end-of-file and thaws: pages frozen
 * only for that child are written in place again, and those freed
 * meanwhile are punched.  So fork+exec costs the parent one COW fault per
 * page written before the child's exec, not for ever.  The child side
 * stays frozen: a child does not learn when its parent goes.
 *
 * Limits: with more than FORK_MAXLEASES children alive at once, further
 * children get no lease and their pages stay frozen until exit.  Only
 * fork() through the C library runs these handlers (a raw clone()
 * without CLONE_VM gives the child plain shared mappings).  If the
 * child's set-up fails, its regions are made PROT_NONE: touching them
 * raises SIGSEGV rather than writing into the parent's pages.
 *
 * Locking: prepare takes uvm_lock, parent releases it, child
 * re-initialises it (only the forking thread exists in the child).
 * up_leases is changed under uvm_lock: appended by prepare, retired by
 * the pager thread.  The pager also reads it without the lock to build
 * its poll set: up_nleases is stored with release after the new entry
 * is complete and loaded with acquire.  The parent handler then writes
 * up_kick_fd so that a sleeping pager adds the new lease to its set.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pager/pager.h"

static int fork_wfd = -1;   /* the lease being handed to the child */

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
		if (r->rg_obj)   /* its window is shared from now on */
			r->rg_obj->uo_forked = true;
	}
	fork_wfd = -1;
	int n = uvm_pager.up_nleases, fds[2];
	if (n < FORK_MAXLEASES && pipe2(fds, O_CLOEXEC) == 0) {
		struct fork_lease *l = &uvm_pager.up_leases[n];
		__atomic_store_n(&l->fl_fd, fds[0], __ATOMIC_RELAXED);
		for (unsigned f = 0; f < p->p_nfiles; f++)
			l->fl_frozen[f] = p->p_files[f].pf_next;
		for (unsigned f = p->p_nfiles; f < POOL_MAXFILES; f++)
			l->fl_frozen[f] = 0;
		fork_wfd = fds[1];
		/* release: the lease is complete before the pager sees it
		 * (pairs with the acquire in fork_poll_fds) */
		__atomic_store_n(&uvm_pager.up_nleases, n + 1, __ATOMIC_RELEASE);
	} else {
		/* no lease: no thaw may lower the watermark below what this
		 * child may map, until exit */
		for (unsigned f = 0; f < p->p_nfiles; f++)
			p->p_files[f].pf_floor = p->p_files[f].pf_next;
	}
}

static void fork_parent(void)
{
	if (fork_wfd >= 0) {
		close(fork_wfd);   /* the child's end: EOF when it is gone */
		uint64_t one = 1;  /* the pager should watch the new lease */
		if (write(uvm_pager.up_kick_fd, &one, sizeof one) < 0) {
			/* full counter: the pager is awake anyway */
		}
	}
	fork_wfd = -1;
	uvm_unlock();
}

/* Give the child's empty pages pool pages of its own, then map the
 * region afresh on the child's userfaultfd.  => 0 or -errno. */
static int fork_child_region(struct uvm_region *r)
{
	pool_addr_t w = PA_NONE;
	for (size_t i = 0; i < r->rg_npages; i++) {
		r->rg_wired[i] = 0;
		if (!PA_REAL(r->rg_map[i]) || amap_lookup(r->rg_amap, i) ||
		    rg_objpage(r, i))
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
		p->p_files[f].pf_frozen = p->p_files[f].pf_floor = UINT64_MAX;
	p->p_ndeferred = 0;   /* the parent's pages: never ours to punch */
	for (int k = 0; k < uvm_pager.up_nleases; k++)
		close(uvm_pager.up_leases[k].fl_fd);  /* the parent's leases */
	uvm_pager.up_nleases = 0;
	fork_wfd = -1;        /* ours: stays open until exec or exit */
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

/* The pager's poll set: the lease descriptors, at most max of them.
 * Called without uvm_lock; a lease closed meanwhile only makes poll()
 * report POLLNVAL, which fork_lease_check ignores. */
int fork_poll_fds(struct pollfd *pfd, int max)
{
	int n = __atomic_load_n(&uvm_pager.up_nleases, __ATOMIC_ACQUIRE);
	if (n > max)
		n = max;
	for (int k = 0; k < n; k++)
		pfd[k] = (struct pollfd){
			.fd = __atomic_load_n(&uvm_pager.up_leases[k].fl_fd,
			                      __ATOMIC_RELAXED),
			.events = POLLIN,
		};
	return n;
}

/* Retire the leases whose children are gone (EOF) and thaw what only
 * they kept frozen.  => uvm_lock held. */
void fork_lease_check(const struct pollfd *pfd, int n)
{
	bool changed = false;
	for (int k = 0; k < n; k++) {
		if (!(pfd[k].revents & (POLLIN | POLLHUP)))
			continue;
		char c;
		if (read(pfd[k].fd, &c, 1) != 0)
			continue;   /* not EOF (nobody writes; be safe) */
		for (int j = 0; j < uvm_pager.up_nleases; j++) {
			struct fork_lease *l = &uvm_pager.up_leases[j];
			if (l->fl_fd != pfd[k].fd)
				continue;
			close(l->fl_fd);
			int last = uvm_pager.up_nleases - 1;
			*l = uvm_pager.up_leases[last];
			__atomic_store_n(&uvm_pager.up_nleases, last,
			                 __ATOMIC_RELEASE);
			changed = true;
			break;
		}
	}
	if (!changed)
		return;
	uint64_t frozen[POOL_MAXFILES] = { 0 };
	for (int j = 0; j < uvm_pager.up_nleases; j++)
		for (unsigned f = 0; f < POOL_MAXFILES; f++)
			if (uvm_pager.up_leases[j].fl_frozen[f] > frozen[f])
				frozen[f] = uvm_pager.up_leases[j].fl_frozen[f];
	pool_thaw(frozen);
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
