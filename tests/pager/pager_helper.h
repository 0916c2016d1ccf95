/*
 * Set-up and tear-down helpers of the pager's criterion suites
 * (test_loan.c, test_object.c, test_inject.c): regions, loans, byte
 * patterns and store files.  Each one checks what it makes, so a test
 * that starts from a failed set-up stops there with a message.
 */
#ifndef TESTS_PAGER_PAGER_HELPER_H
#define TESTS_PAGER_PAGER_HELPER_H

#include <criterion/criterion.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "util.h"

#define RW (PROT_READ | PROT_WRITE)

/* The byte pattern of the loan tests: byte k is k * 13 + seed. */
static inline void ph_fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t k = 0; k < n; k++)
		p[k] = (unsigned char)(k * 13 + seed);
}

static inline void ph_expect(const unsigned char *p, size_t n, unsigned seed)
{
	for (size_t k = 0; k < n; k++)
		if (p[k] != (unsigned char)(k * 13 + seed))
			cr_assert_fail("byte %zu: %d, want %d", k, p[k],
			               (unsigned char)(k * 13 + seed));
}

static inline void ph_expect_zero(const unsigned char *p, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (p[k])
			cr_assert_fail("byte %zu: %d, want 0", k, p[k]);
}

static inline struct uvm_stats ph_stats(const struct uvm_region *r)
{
	struct uvm_stats st;
	cr_assert_eq(uvm_stats(r, &st), 0);
	return st;
}

/* An unlinked temporary file of n bytes, written by fill(buf, n, seed). */
static inline int ph_tmpfile(size_t n,
                             void (*fill)(unsigned char *, size_t, unsigned),
                             unsigned seed)
{
	char path[] = "/tmp/pager-test-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	unlink(path);
	unsigned char *buf = calloc(n + 1, 1);
	cr_assert_not_null(buf);
	fill(buf, n, seed);
	cr_assert_eq(pwrite(fd, buf, n, 0), (ssize_t)n);
	free(buf);
	return fd;
}

/* A new anonymous region of npages pages (RW), its first nfill pages
 * written with ph_fill's pattern seed; *base gets its address. */
static inline struct uvm_region *ph_anon(size_t npages, size_t nfill,
                                         unsigned seed, unsigned char **base)
{
	struct uvm_region *r = uvm_map_anon(npages * PG, RW);
	cr_assert_not_null(r, "uvm_map_anon(%zu pages)", npages);
	*base = uvm_base(r);
	ph_fill(*base, nfill * PG, seed);
	return r;
}

/* A region of the first npages pages of fd (UVM_MAP_PRIVATE or
 * UVM_MAP_SHARED); *base gets its address. */
static inline struct uvm_region *ph_file_region(int fd, size_t npages,
                                                int prot, int flags,
                                                unsigned char **base)
{
	struct uvm_region *r = uvm_map_file(fd, 0, npages * PG, prot, flags);
	cr_assert_not_null(r, "uvm_map_file(%zu pages)", npages);
	*base = uvm_base(r);
	return r;
}

/* A view of [off, off+len) of r; *v gets its address. */
static inline struct uvm_loan *ph_view(struct uvm_region *r, size_t off,
                                       size_t len, const unsigned char **v)
{
	struct uvm_loan *l = uvm_loan_view(r, off, len);
	cr_assert_not_null(l, "uvm_loan_view(%zu, %zu)", off, len);
	*v = uvm_loan_base(l);
	cr_assert_not_null(*v);
	return l;
}

/* End of a test: unloan l, unmap all of r, close fd (each if there). */
static inline void ph_done(struct uvm_loan *l, struct uvm_region *r, int fd)
{
	if (l)
		cr_assert_eq(uvm_unloan(l), 0);
	if (r)
		cr_assert_eq(uvm_unmap(r, 0, uvm_size(r)), 0);
	if (fd >= 0)
		cr_assert_eq(close(fd), 0);
}

#endif
