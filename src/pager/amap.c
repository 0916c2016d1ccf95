/*
 * amap.c - anonymous maps: arrays of anon slots.
 *
 * A region reaches its anons through one amap; slot i is the region's
 * page i.  uvm_copy() does not copy the amap: the copy references the
 * same amap and both sides are marked "needs copy" (region.c); the
 * first fault that must change a slot copies the amap (amap_copy), as
 * UVM does on its first write fault after a fork.
 *
 * References.  am_ref counts the regions referencing the amap.  A region
 * that releases part of its range (uvm_unmap) keeps the amap but stops
 * referencing those slots; the per-page reference counts (am_ppref,
 * UVM's "ppref") say how many regions still reference each slot, and a
 * slot whose count reaches 0 loses its anon.  am_ppref is created on the
 * first partial release of a shared amap; until then every slot has
 * am_ref references.  (UVM run-length encodes ppref; a plain array costs
 * 4 bytes a page and keeps every update O(1).)
 *
 * Invariants:
 *   1. A slot of an amap with am_ref > 1 never changes except to drop to
 *      empty when its last reference goes: shared amaps are read-only,
 *      writers copy first.
 *   2. With am_ppref, am_ppref[i] is the number of referencing regions
 *      for which page i is still accessible (released pages drop their
 *      reference).  Counts of empty slots may be stale; nothing reads
 *      them.
 *   3. am_nused is the number of non-empty slots.
 *
 * Locking: uvm_lock held for everything (pager.h).
 */
#include <errno.h>
#include <string.h>

#include "pager/pager.h"

static struct pool_slab amap_slab = { .sl_size = sizeof(struct vm_amap) };

/* => uvm_lock held.  A new amap of nslot empty slots with one
 * reference, NULL when out of memory. */
struct vm_amap *amap_alloc(size_t nslot)
{
	struct vm_amap *am = pool_slab_alloc(&amap_slab);
	if (!am)
		return NULL;
	am->am_anon = pool_mem_alloc(nslot * sizeof *am->am_anon);
	if (!am->am_anon) {
		pool_slab_free(&amap_slab, am);
		return NULL;
	}
	am->am_nslot = nslot;
	am->am_ref = 1;
	return am;
}

static void amap_free(struct vm_amap *am)
{
	pool_mem_free(am->am_anon, am->am_nslot * sizeof *am->am_anon);
	pool_mem_free(am->am_ppref, am->am_nslot * sizeof *am->am_ppref);
	pool_slab_free(&amap_slab, am);
}

struct vm_anon *amap_lookup(const struct vm_amap *am, size_t slot)
{
	return am && slot < am->am_nslot ? am->am_anon[slot] : NULL;
}

/* Put an into an empty slot.  => uvm_lock held, am not shared (1). */
void amap_add(struct vm_amap *am, size_t slot, struct vm_anon *an)
{
	am->am_anon[slot] = an;
	am->am_nused++;
}

/* Empty a slot, handing its anon (and its reference) to the caller.
 * => uvm_lock held.  The anon, or NULL if the slot was empty. */
struct vm_anon *amap_remove(struct vm_amap *am, size_t slot)
{
	struct vm_anon *an = am->am_anon[slot];
	if (an) {
		am->am_anon[slot] = NULL;
		am->am_nused--;
	}
	return an;
}

/* How many regions reference the slot. */
static int32_t amap_slot_refs(const struct vm_amap *am, size_t slot)
{
	return am->am_ppref ? am->am_ppref[slot] : (int32_t)am->am_ref;
}

/* Is the page in this slot shared with another region or process? */
bool amap_slot_shared(const struct vm_amap *am, size_t slot)
{
	const struct vm_anon *an = am->am_anon[slot];
	return an && (amap_slot_refs(am, slot) > 1 || !anon_exclusive(an));
}

static void amap_wipe_slot(struct vm_amap *am, size_t slot)
{
	struct vm_anon *an = amap_remove(am, slot);
	if (an)
		anon_unref(an);
}

static void amap_wipeout(struct vm_amap *am)
{
	for (size_t i = 0; i < am->am_nslot && am->am_nused; i++)
		amap_wipe_slot(am, i);
	amap_free(am);
}

/* Create the per-page counts, each at am_ref.  => 0 or -ENOMEM. */
static int amap_pp_establish(struct vm_amap *am)
{
	if (am->am_ppref)
		return 0;
	am->am_ppref = pool_mem_alloc(am->am_nslot * sizeof *am->am_ppref);
	if (!am->am_ppref)
		return -ENOMEM;
	for (size_t i = 0; i < am->am_nslot; i++)
		am->am_ppref[i] = (int32_t)am->am_ref;
	return 0;
}

/* A region whose accessible pages are those with map[i] != PA_NONE
 * starts referencing am.  => uvm_lock held. */
void amap_ref(struct vm_amap *am, const pool_addr_t *map, size_t n)
{
	am->am_ref++;
	if (!am->am_ppref)
		return;
	for (size_t i = 0; i < n; i++)
		if (map[i] != PA_NONE)
			am->am_ppref[i]++;
}

/* The region described by map stops referencing am.  Slots nobody
 * references any more lose their anons; the last reference frees am.
 * => uvm_lock held. */
void amap_unref(struct vm_amap *am, const pool_addr_t *map, size_t n)
{
	if (--am->am_ref == 0) {
		amap_wipeout(am);
		return;
	}
	if (!am->am_ppref)
		return;
	for (size_t i = 0; i < n; i++)
		if (map[i] != PA_NONE && --am->am_ppref[i] == 0)
			amap_wipe_slot(am, i);
}

/* One region releases slots [slot, slot+n) but keeps the amap.
 * => uvm_lock held, the pages were accessible to that region.
 * => 0, or -ENOMEM (nothing changed). */
int amap_unref_range(struct vm_amap *am, size_t slot, size_t n)
{
	if (am->am_ref == 1 && !am->am_ppref) {
		for (size_t i = slot; i < slot + n; i++)
			amap_wipe_slot(am, i);
		return 0;
	}
	int e = amap_pp_establish(am);
	if (e)
		return e;
	for (size_t i = slot; i < slot + n; i++)
		if (--am->am_ppref[i] <= 0)
			amap_wipe_slot(am, i);
	return 0;
}

/* Give the region described by map its own copy of a shared amap: the
 * new amap holds a reference on each anon of the region's accessible
 * pages, and the region's reference on am is dropped.
 * => uvm_lock held.  The new amap, or NULL (nothing changed). */
struct vm_amap *amap_copy(struct vm_amap *am, const pool_addr_t *map,
                          size_t n)
{
	struct vm_amap *nam = amap_alloc(n);
	if (!nam)
		return NULL;
	for (size_t i = 0; i < n && i < am->am_nslot; i++) {
		struct vm_anon *an = am->am_anon[i];
		if (!an || map[i] == PA_NONE)
			continue;
		anon_ref(an);
		amap_add(nam, i, an);
	}
	amap_unref(am, map, n);
	return nam;
}
