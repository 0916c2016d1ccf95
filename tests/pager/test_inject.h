/* Helpers of the failure-injection suites (src/pager/inject.h). */
#ifndef TESTS_PAGER_TEST_INJECT_H
#define TESTS_PAGER_TEST_INJECT_H

#include <fcntl.h>
#include <stdbool.h>

#include "pager/inject.h"
#include "pager/pager.h"
#include "pager_helper.h"

/* What a failed call must leave as it was. */
struct ij_snap {
	long sn_maps;          /* /proc/self/maps lines */
	int sn_fds;            /* open descriptors */
	uint64_t sn_pages;     /* pool pages held by anons */
	size_t sn_regions;     /* live regions */
	size_t sn_runs;        /* the pager's count of kernel mappings */
	size_t sn_loans;       /* live loans */
	long long sn_bytes;    /* memory of the pool files */
};

static inline int ij_fds(void)
{
	int n = 0;
	for (int fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

static inline void ij_snap(struct ij_snap *s)
{
	pthread_mutex_lock(&uvm_pager.up_lock);
	s->sn_pages = uvm_pager.up_pool.p_pages;
	s->sn_regions = uvm_pager.up_nregions;
	s->sn_runs = uvm_pager.up_runs;
	s->sn_loans = uvm_pager.up_nloans;
	pthread_mutex_unlock(&uvm_pager.up_lock);
	s->sn_maps = pu_maps();
	s->sn_fds = ij_fds();
	s->sn_bytes = pu_pool_bytes();
}

static inline void ij_same(const struct ij_snap *a, const struct ij_snap *b,
                           const char *what)
{
	cr_assert_eq(a->sn_maps, b->sn_maps, "%s: maps %ld -> %ld", what,
	             a->sn_maps, b->sn_maps);
	cr_assert_eq(a->sn_fds, b->sn_fds, "%s: fds %d -> %d", what,
	             a->sn_fds, b->sn_fds);
	cr_assert_eq(a->sn_pages, b->sn_pages, "%s: pool pages %lu -> %lu",
	             what, (unsigned long)a->sn_pages,
	             (unsigned long)b->sn_pages);
	cr_assert_eq(a->sn_regions, b->sn_regions, "%s: regions", what);
	cr_assert_eq(a->sn_runs, b->sn_runs, "%s: runs %zu -> %zu", what,
	             a->sn_runs, b->sn_runs);
	cr_assert_eq(a->sn_loans, b->sn_loans, "%s: loans", what);
	cr_assert_eq(a->sn_bytes, b->sn_bytes, "%s: pool bytes %lld -> %lld",
	             what, a->sn_bytes, b->sn_bytes);
}

/* Nothing of the pager's is left: no region, no loan, no pool page. */
static inline void ij_all_gone(void)
{
	pthread_mutex_lock(&uvm_pager.up_lock);
	uint64_t pages = uvm_pager.up_pool.p_pages;
	size_t nr = uvm_pager.up_nregions, nl = uvm_pager.up_nloans;
	pthread_mutex_unlock(&uvm_pager.up_lock);
	cr_assert_eq(nr, 0, "regions left: %zu", nr);
	cr_assert_eq(nl, 0, "loans left: %zu", nl);
	cr_assert_eq(pages, 0, "pool pages left: %lu", (unsigned long)pages);
	cr_assert_eq(pu_pool_bytes(), 0, "pool memory left");
}

/* Byte k of page pg of a test pattern with seed s. */
static inline unsigned char ij_byte(unsigned s, size_t pg, size_t k)
{
	return (unsigned char)(s * 31 + pg * 7 + k % 251 + 1);
}

static inline void ij_fill(unsigned char *p, unsigned s, size_t first,
                           size_t n)
{
	for (size_t pg = first; pg < first + n; pg++)
		for (size_t k = 0; k < PG; k += 512)
			p[pg * PG + k] = ij_byte(s, pg, k);
}

/* Does [first, first+n) hold pattern s (sampled every 512 bytes)? */
static inline bool ij_holds(const unsigned char *p, unsigned s, size_t first,
                            size_t n)
{
	for (size_t pg = first; pg < first + n; pg++)
		for (size_t k = 0; k < PG; k += 512)
			if (p[pg * PG + k] != ij_byte(s, pg, k))
				return false;
	return true;
}

static inline void ij_fill_file(unsigned char *buf, size_t n, unsigned s)
{
	ij_fill(buf, s, 0, n / PG);
}

/* A temporary file of npages pages of pattern s. */
static inline int ij_file(unsigned s, size_t npages)
{
	return ph_tmpfile(npages * PG, ij_fill_file, s);
}

static inline bool ij_file_holds(int fd, unsigned s, size_t first, size_t n)
{
	unsigned char *buf = malloc(n * PG);
	bool ok = pread(fd, buf, n * PG, (off_t)(first * PG)) ==
	          (ssize_t)(n * PG);
	for (size_t pg = 0; ok && pg < n; pg++)
		for (size_t k = 0; k < PG; k += 512)
			if (buf[pg * PG + k] != ij_byte(s, first + pg, k))
				ok = false;
	free(buf);
	return ok;
}

#endif
