/*
 * region.c - the shared slot region: one memfd per process, carved into
 * 64-byte slots, one page at a time (cf. illumos schedctl's sc_page
 * chain).
 *
 * Invariants:
 *   - rg_base maps the whole memfd (SC_REGION_SIZE, sparse) for the life
 *     of the process; pages are handed out in order and never unmapped,
 *     so a slot pointer stays readable after its thread is gone.
 *   - rg_npages (mirrored in the header's rh_npages) only grows; a slot
 *     index below rg_npages * SC_SLOTS_PER_PAGE is mapped.
 *   - rg_bitmap[p] bit i is set iff slot i of page p is taken; bit 0 of
 *     page 0 is the header and always set.
 *   - rg_rings[p] is the ring window of page p: SC_SLOTS_PER_PAGE rings
 *     of SC_RING_SIZE, always mapped (a perf ring or a zero placeholder).
 *   - the mapping and the ring windows carry MADV_DONTFORK: a fork child
 *     starts without them and builds its own (sc_region_forget_after_fork).
 *
 * Lock: rg_lock (leaf) serialises take/give-back and page growth.
 * Readers are lock-free: rg_npages is stored with release after the
 * page's ring window is in rg_rings, and loaded with acquire.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sc/sc.h"

static struct {
	struct sc_ilock rg_lock;
	char *rg_base;                       /* acquire/release with rg_npages */
	uint32_t rg_npages;                  /* release by take, acquire by readers */
	uint64_t rg_bitmap[SC_REGION_PAGES]; /* under rg_lock */
	char *rg_rings[SC_REGION_PAGES];     /* written before rg_npages grows */
	void (*rg_created_hook)(int fd, void *base);
	int rg_early_fd;     /* memfd kept for a hook set after creation */
} rg = { .rg_lock = SC_ILOCK_INIT, .rg_early_fd = -1 };

/* => rg_lock held.  0 or -errno. */
static int region_create(void)
{
	int fd = memfd_create(SC_REGION_MEMFD_NAME, MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	int err = 0;
	if (ftruncate(fd, (off_t)SC_REGION_SIZE) < 0) {
		err = -errno;
		goto out;
	}
	char *base = mmap(NULL, SC_REGION_SIZE, PROT_READ | PROT_WRITE,
	                  MAP_SHARED | MAP_NORESERVE, fd, 0);
	if (base == MAP_FAILED) {
		err = -errno;
		goto out;
	}
	(void)madvise(base, SC_REGION_SIZE, MADV_DONTFORK);

	struct sc_region_hdr *h = (struct sc_region_hdr *)base;
	h->rh_version = SC_REGION_VERSION;
	h->rh_slot_size = SC_SLOT_SIZE;
	h->rh_maxpages = SC_REGION_PAGES;
	h->rh_pid = getpid();
	__atomic_store_n(&h->rh_magic, SC_REGION_MAGIC, __ATOMIC_RELEASE);
	rg.rg_base = base;
	if (rg.rg_created_hook)
		rg.rg_created_hook(fd, base);
	else if (getenv("SCHEDCTL_SUPERVISOR"))
		/* Under `schedctl run` another library's constructor can take
		 * a slot before the preload's runs: keep the fd for its hook. */
		rg.rg_early_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
out:
	close(fd);
	return err;
}

/* => rg_lock held.  0 or -errno. */
static int region_grow(void)
{
	uint32_t p = rg.rg_npages;
	if (p == SC_REGION_PAGES)
		return -EAGAIN;
	char *rings = sc_perf_reserve(SC_SLOTS_PER_PAGE);
	if (!rings)
		return -ENOMEM;
	rg.rg_rings[p] = rings;
	rg.rg_bitmap[p] = p == 0 ? 1 : 0;     /* the header */
	__atomic_store_n(&rg.rg_npages, p + 1, __ATOMIC_RELEASE);
	struct sc_region_hdr *h = (struct sc_region_hdr *)rg.rg_base;
	__atomic_store_n(&h->rh_npages, p + 1, __ATOMIC_RELEASE);
	return 0;
}

/* => rg_lock held.  Lowest free slot index, or 0 if every page is full. */
static uint32_t region_find_free(void)
{
	for (uint32_t p = 0; p < rg.rg_npages; p++) {
		uint64_t free_bits = ~rg.rg_bitmap[p];
		if (free_bits)
			return p * SC_SLOTS_PER_PAGE +
			       (uint32_t)__builtin_ctzll(free_bits);
	}
	return 0;
}

int sc_region_take(struct sc_taken *out)
{
	int err = 0;
	sc_ilock_acquire(&rg.rg_lock);
	if (!rg.rg_base && (err = region_create()) < 0)
		goto out;
	uint32_t idx = region_find_free();
	if (idx == 0) {
		if ((err = region_grow()) < 0)
			goto out;
		idx = region_find_free();
	}
	uint32_t p = idx / SC_SLOTS_PER_PAGE, i = idx % SC_SLOTS_PER_PAGE;
	rg.rg_bitmap[p] |= 1ull << i;
	out->t_slot = (struct sc_slot *)(rg.rg_base + (size_t)idx * SC_SLOT_SIZE);
	out->t_ring = rg.rg_rings[p] + (size_t)i * SC_RING_SIZE;
out:
	sc_ilock_release(&rg.rg_lock);
	return err;
}

void sc_region_give_back(struct sc_slot *slot)
{
	uint32_t idx = sc_slot_index(slot);
	sc_ilock_acquire(&rg.rg_lock);
	rg.rg_bitmap[idx / SC_SLOTS_PER_PAGE] &= ~(1ull << (idx % SC_SLOTS_PER_PAGE));
	sc_ilock_release(&rg.rg_lock);
}

uint32_t sc_slot_index(const struct sc_slot *slot)
{
	return (uint32_t)(((const char *)slot - rg.rg_base) / SC_SLOT_SIZE);
}

struct sc_slot *sc_slot_at(uint32_t index)
{
	uint32_t n = __atomic_load_n(&rg.rg_npages, __ATOMIC_ACQUIRE);
	if (index == 0 || index >= n * SC_SLOTS_PER_PAGE)
		return NULL;
	return (struct sc_slot *)(rg.rg_base + (size_t)index * SC_SLOT_SIZE);
}

struct sc_slot *sc_slot_from_pub(const sc_shared_t *p)
{
	uint32_t n = __atomic_load_n(&rg.rg_npages, __ATOMIC_ACQUIRE);
	uintptr_t a = (uintptr_t)p, b = (uintptr_t)rg.rg_base;
	if (!p || n == 0 || a < b + SC_SLOT_SIZE ||
	    a >= b + (uintptr_t)n * SC_PAGE_SIZE || (a - b) % SC_SLOT_SIZE)
		return NULL;
	return (struct sc_slot *)p;
}

const char *sc_slot_ring(const struct sc_slot *slot)
{
	uint32_t idx = sc_slot_index(slot);
	return rg.rg_rings[idx / SC_SLOTS_PER_PAGE] +
	       (size_t)(idx % SC_SLOTS_PER_PAGE) * SC_RING_SIZE;
}

struct sc_region_hdr *sc_region_hdr(void)
{
	if (__atomic_load_n(&rg.rg_npages, __ATOMIC_ACQUIRE) == 0)
		return NULL;
	return (struct sc_region_hdr *)rg.rg_base;
}

void sc_region_set_created_hook(void (*fn)(int fd, void *base))
{
	sc_ilock_acquire(&rg.rg_lock);
	rg.rg_created_hook = fn;
	if (fn && rg.rg_base && rg.rg_early_fd >= 0)
		fn(rg.rg_early_fd, rg.rg_base);
	if (rg.rg_early_fd >= 0)
		close(rg.rg_early_fd);
	rg.rg_early_fd = -1;
	sc_ilock_release(&rg.rg_lock);
}

void sc_region_prepare_fork(void)
{
	sc_ilock_acquire(&rg.rg_lock);
}

void sc_region_parent_after_fork(void)
{
	sc_ilock_release(&rg.rg_lock);
}

/* The child has neither the region nor the rings (MADV_DONTFORK); the
 * lock was held across fork by the forking thread, now the only one. */
void sc_region_forget_after_fork(void)
{
	rg.rg_base = NULL;
	rg.rg_npages = 0;
	memset(rg.rg_bitmap, 0, sizeof rg.rg_bitmap);
	memset(rg.rg_rings, 0, sizeof rg.rg_rings);
	rg.rg_lock.il_word = 0;
	if (rg.rg_early_fd >= 0)
		close(rg.rg_early_fd);
	rg.rg_early_fd = -1;
}
