/*
 * anon.c - anons: reference-counted anonymous pages.
 *
 * An anon names one pool page.  an_ref counts the amap slots holding
 * it; a region reaches an anon only through its amap, so two regions
 * sharing one amap (a lazy uvm_copy, "needs copy") share its anons with
 * an_ref 1, and the amap is copied before either writes (amap.c).
 *
 * Invariants:
 *   - an_ref >= 1 while the anon is reachable; at 0 the anon and its
 *     page are freed at once.
 *   - The page of an anon with an_ref == 1 that is not frozen (pool.c)
 *     is mapped by exactly the regions sharing the one amap holding it:
 *     when that amap is not shared, the page may be written in place
 *     (UVM case 1A).  Otherwise a write copies it (case 1B).
 *
 * Locking: uvm_lock held for everything (pager.h).
 */
#include "pager/pager.h"

static struct pool_slab anon_slab = { .sl_size = sizeof(struct vm_anon) };

/* A new anon holding page a, with one reference.
 * => uvm_lock held.  NULL when out of memory. */
struct vm_anon *anon_alloc(pool_addr_t a)
{
	if (__atomic_load_n(&uvm_pager.up_inject_fail, __ATOMIC_RELAXED) &&
	    __atomic_fetch_sub(&uvm_pager.up_inject_fail, 1, __ATOMIC_RELAXED))
		return NULL;
	struct vm_anon *an = pool_slab_alloc(&anon_slab);
	if (!an)
		return NULL;
	an->an_ref = 1;
	an->an_addr = a;
	pool_take(a);
	return an;
}

void anon_ref(struct vm_anon *an)
{
	an->an_ref++;
}

/* Drop a reference; the last one frees the page and the anon.
 * => uvm_lock held. */
void anon_unref(struct vm_anon *an)
{
	if (--an->an_ref > 0)
		return;
	pool_free_page(an->an_addr);
	pool_slab_free(&anon_slab, an);
}

/* Drop the one reference of an anon whose page was never filled (a fill
 * that stopped short): the anon goes, the pool page is left alone, since
 * another process sharing it (an object's window after a fork) may have
 * filled it meanwhile.  => uvm_lock held, an_ref 1. */
void anon_forget(struct vm_anon *an)
{
	uvm_pager.up_pool.p_pages--;
	pool_slab_free(&anon_slab, an);
}

/* May the page be written in place by the (unshared) amap holding it? */
bool anon_exclusive(const struct vm_anon *an)
{
	return an->an_ref == 1 && !pool_frozen(an->an_addr);
}
