/*
 * Physical sharing and the number of kernel mappings.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "pager/pager.h"
#include "util.h"

#define MIB (1024u * 1024u)

static void fill(unsigned char *b, size_t len, unsigned salt)
{
	for (size_t i = 0; i < len; i += PG)
		memset(b + i, (int)((i / PG + salt) & 0xff), 64);
}

/* Four copies of a 64 MiB region, each read in full, add (almost)
 * nothing: measured by the pager's count and by the kernel's blocks. */
Test(share, four_copies_read_in_full, .timeout = 60)
{
	size_t len = 64 * MIB;
	struct uvm_region *r = uvm_map_anon(len, PROT_READ | PROT_WRITE);
	cr_assert_not_null(r);
	unsigned char *b = uvm_base(r);
	fill(b, len, 0);
	long long before = pu_pool_bytes();
	uint64_t pages_before = pu_pool_pages(r);
	cr_assert_geq(before, (long long)len, "pool holds %lld", before);

	struct uvm_region *c[4];
	unsigned long sum = 0;
	for (int k = 0; k < 4; k++) {
		c[k] = uvm_copy(r);
		cr_assert_not_null(c[k]);
		volatile unsigned char *q = uvm_base(c[k]);
		for (size_t i = 0; i < len; i += 64)
			sum += q[i];
		for (size_t i = 0; i < len; i += PG)
			cr_assert_eq(q[i], (unsigned char)(i / PG), "copy %d", k);
	}
	long long after = pu_pool_bytes();
	uint64_t pages_after = pu_pool_pages(r);
	cr_log_info("pool: %lld -> %lld bytes, %lu -> %lu pages (sum %lu)",
	            before, after, (unsigned long)pages_before,
	            (unsigned long)pages_after, sum);
	cr_assert_lt(after - before, (long long)len,
	             "copies added %lld bytes", after - before);
	cr_assert_eq(pages_after, pages_before);
	struct uvm_stats st;
	cr_assert_eq(uvm_stats(c[0], &st), 0);
	cr_assert_eq(st.us_anons, len / PG);
	cr_assert_eq(st.us_shared, len / PG);

	/* a write copies exactly one page, on its side only */
	unsigned char *q0 = uvm_base(c[0]);
	q0[5 * PG] = 0xee;
	cr_assert_eq(pu_pool_pages(r), pages_before + 1);
	cr_assert_eq(b[5 * PG], 5);
	for (int k = 1; k < 4; k++)
		cr_assert_eq(((unsigned char *)uvm_base(c[k]))[5 * PG], 5);
	for (int k = 0; k < 4; k++)
		cr_assert_eq(uvm_unmap(c[k], 0, len), 0);
	cr_assert_eq(pu_pool_pages(r), len / PG);
	cr_assert_eq(uvm_unmap(r, 0, len), 0);
}

/* Random writes to a copy split its mappings one page at a time; the
 * pager must keep their number bounded (vm.max_map_count). */
Test(share, mappings_bounded_under_random_writes, .timeout = 90)
{
	size_t len = 64 * MIB, np = len / PG;
	struct uvm_region *r = uvm_map_anon(len, PROT_READ | PROT_WRITE);
	cr_assert_not_null(r);
	unsigned char *b = uvm_base(r);
	fill(b, len, 0);
	struct uvm_region *c = uvm_copy(r);
	cr_assert_not_null(c);
	unsigned char *q = uvm_base(c);
	long base = pu_maps();
	long peak = base;
	unsigned char *want = malloc(np);
	for (size_t i = 0; i < np; i++)
		want[i] = (unsigned char)i;
	unsigned long long x = 12345;
	for (int k = 0; k < 12000; k++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		size_t i = (size_t)(x >> 33) % np;
		q[i * PG] = want[i] = (unsigned char)(x >> 20);
		if (k % 500 == 0) {
			long m = pu_maps();
			peak = m > peak ? m : peak;
		}
	}
	long end = pu_maps();
	peak = end > peak ? end : peak;
	struct uvm_stats st;
	cr_assert_eq(uvm_stats(c, &st), 0);
	cr_log_info("maps: %ld before, peak %ld, end %ld; 1b %lu collapses "
	            "%lu", base, peak, end, (unsigned long)st.us_fault_1b,
	            (unsigned long)st.us_collapses);
	/* the region's allowance is 64 + np/16 mappings */
	cr_assert_leq(peak - base, (long)(64 + np / 16 + 8));
	cr_assert_geq(st.us_collapses, 1);
	for (size_t i = 0; i < np; i++) {
		cr_assert_eq(q[i * PG], want[i], "copy page %zu", i);
		cr_assert_eq(b[i * PG], (unsigned char)i, "source page %zu", i);
	}
	free(want);
	uvm_unmap(c, 0, len);
	uvm_unmap(r, 0, len);
}

/* Released ranges give their pages back once no copy shares them. */
Test(share, release_frees_unshared_pages)
{
	size_t np = 64;
	struct uvm_region *r = uvm_map_anon(np * PG, PROT_READ | PROT_WRITE);
	cr_assert_not_null(r);
	fill(uvm_base(r), np * PG, 1);
	cr_assert_eq(pu_pool_pages(r), np);
	struct uvm_region *c = uvm_copy(r);
	cr_assert_eq(uvm_unmap(r, 0, 32 * PG), 0);   /* still shared by c */
	cr_assert_eq(pu_pool_pages(r), np);
	cr_assert_eq(uvm_unmap(c, 16 * PG, 32 * PG), 0);
	/* pages 16..31 are now referenced by nobody */
	cr_assert_eq(pu_pool_pages(r), np - 16);
	unsigned char *q = uvm_base(c);
	cr_assert_eq(q[3 * PG], 4);
	cr_assert_eq(q[60 * PG], 61);
	cr_assert_eq(pu_probe((char *)q + 20 * PG, 0), SIGSEGV);
	cr_assert_eq(uvm_unmap(c, 0, np * PG), 0);
	cr_assert_eq(pu_pool_pages(r), np - 32);
	cr_assert_eq(uvm_unmap(r, 0, np * PG), 0);
}

/* A thread that touches an empty page while a collapse has it mapped
 * but not yet registered gets a page from the kernel, not the pager.
 * The collapse must adopt it: its data stays, and no page is left in
 * the pool without an anon.  The hook plays that thread, deterministically
 * (it runs in the pager thread, where an unregistered mapping is safe to
 * touch). */
static char *stray_page;   /* atomics: set by the test, taken by the hook */

static void touch_in_window(uintptr_t va, size_t len)
{
	char *s = __atomic_load_n(&stray_page, __ATOMIC_ACQUIRE);
	if (s && (uintptr_t)s >= va && (uintptr_t)s < va + len) {
		*(volatile char *)s = 0x5a;
		__atomic_store_n(&stray_page, NULL, __ATOMIC_RELEASE);
	}
}

Test(share, collapse_adopts_pages_touched_while_unwatched)
{
	size_t np = 256;
	struct uvm_region *r = uvm_map_anon(np * PG, PROT_READ | PROT_WRITE);
	uvm_advise(r, UVM_ADV_RANDOM);
	char *b = uvm_base(r);
	for (size_t i = 0; i < np; i += 2)
		b[i * PG] = 1;
	struct uvm_region *c = uvm_copy(r);
	uvm_advise(c, UVM_ADV_RANDOM);
	char *q = uvm_base(c);
	__atomic_store_n(&stray_page, q + 101 * PG, __ATOMIC_RELEASE);
	/* atomic stores: plain ones around a plain store would be merged */
	__atomic_store_n(&uvm_pager.up_runs_base, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&uvm_pager.up_test_window, touch_in_window,
	                 __ATOMIC_SEQ_CST);
	*(volatile char *)q = 2;              /* COW fault, then collapse */
	__atomic_store_n(&uvm_pager.up_test_window, NULL, __ATOMIC_SEQ_CST);
	__atomic_store_n(&uvm_pager.up_runs_base, 64, __ATOMIC_SEQ_CST);
	cr_assert_null(__atomic_load_n(&stray_page, __ATOMIC_ACQUIRE),
	               "the hook did not run");
	struct uvm_stats st;
	cr_assert_eq(uvm_stats(c, &st), 0);
	cr_assert_eq(st.us_collapses, 1);
	cr_assert_eq(q[101 * PG], 0x5a);
	cr_assert_eq(st.us_anons, np / 2 + 1);
	struct uvm_region *snap = uvm_copy(c);  /* the page is c's anon now */
	cr_assert_eq(((char *)uvm_base(snap))[101 * PG], 0x5a);
	uvm_unmap(snap, 0, np * PG);
	uvm_unmap(c, 0, np * PG);
	cr_assert_eq(uvm_stats(r, &st), 0);
	cr_assert_eq(st.us_pool_pages, np / 2);
	cr_assert_eq(pu_pool_bytes(), (long long)(np / 2) * PG);
	uvm_unmap(r, 0, np * PG);
}
