/*
 * Page loans: read-only views and loans into regions, every break path
 * (owner write: 1B, 2B, shared object), zero pages, orphans, errors.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <sys/uio.h>

#include "pager/pager.h"
#include "pager_helper.h"

/* A region of npages pages, the first nfill written with pattern seed,
 * and a view of all of it. */
struct loaned {
	struct uvm_region *r;
	unsigned char *p;
	struct uvm_loan *l;
	const unsigned char *v;
};

static struct loaned loaned(size_t npages, size_t nfill, unsigned seed)
{
	struct loaned f;
	f.r = ph_anon(npages, nfill, seed, &f.p);
	f.l = ph_view(f.r, 0, npages * PG, &f.v);
	return f;
}

Test(loan, view_shares_pages_and_is_read_only)
{
	unsigned char *p;
	struct uvm_region *r = ph_anon(16, 16, 1, &p);
	uint64_t before = pu_pool_pages(r);
	const unsigned char *v;
	struct uvm_loan *l = ph_view(r, 4 * PG, 8 * PG, &v);
	ph_expect(v, 8 * PG, 1 + 4 * PG * 13);
	cr_assert_eq(pu_pool_pages(r), before, "a view copies nothing");
	cr_assert_eq(pu_probe((volatile char *)v, 1), SIGSEGV);
	cr_assert_eq(pu_probe((volatile char *)v + 7 * PG, 1), SIGSEGV);
	/* the kernel reads the view: the loan's purpose */
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	struct iovec iov = { (void *)v, PG };
	cr_assert_eq(writev(fds[1], &iov, 1), (ssize_t)PG);
	unsigned char buf[PG];
	cr_assert_eq(read(fds[0], buf, PG), (ssize_t)PG);
	ph_expect(buf, PG, 1 + 4 * PG * 13);
	close(fds[0]);
	close(fds[1]);
	ph_done(l, r, -1);
}

Test(loan, owner_write_breaks_the_loan_for_that_page)
{
	struct loaned f = loaned(4, 4, 2);
	struct uvm_region *r = f.r;
	unsigned char *p = f.p;
	const unsigned char *v = f.v;
	struct uvm_stats s0 = ph_stats(r);
	uint64_t before = pu_pool_pages(r);
	p[PG + 1] = 0xEE;                         /* case 1B: owner copies */
	cr_assert_eq(p[PG + 1], 0xEE);
	ph_expect(v, 4 * PG, 2);                     /* the view keeps the data */
	struct uvm_stats s1 = ph_stats(r);
	cr_assert_eq(s1.us_fault_1b, s0.us_fault_1b + 1);
	cr_assert_eq(pu_pool_pages(r), before + 1, "one page copied");
	p[PG + 2] = 0xEF;                         /* owner's own page now */
	cr_assert_eq(ph_stats(r).us_fault_1b, s1.us_fault_1b);
	cr_assert_eq(uvm_unloan(f.l), 0);
	/* unloaned: written in place again (1A), no copy */
	uint64_t a1 = ph_stats(r).us_fault_1a;
	p[3 * PG] = 1;
	cr_assert_eq(ph_stats(r).us_fault_1a, a1 + 1);
	cr_assert_eq(ph_stats(r).us_fault_1b, s1.us_fault_1b);
	ph_done(NULL, r, -1);
}

Test(loan, never_touched_pages_loan_as_zero)
{
	unsigned char *p;
	struct uvm_region *r = ph_anon(8, 0, 0, &p);
	cr_assert_eq(uvm_advise(r, UVM_ADV_RANDOM), 0);
	p[0] = 7;                                 /* page 0 only */
	uint64_t before = pu_pool_pages(r);
	const unsigned char *v;
	struct uvm_loan *l = ph_view(r, 0, 8 * PG, &v);
	cr_assert_eq(v[0], 7);
	ph_expect_zero(v + 1, 8 * PG - 1 - 0);
	cr_assert_eq(pu_pool_pages(r), before, "zero pages allocate nothing");
	memset(p + 5 * PG, 0x5A, PG);             /* owner fills a zero page */
	ph_expect_zero(v + 5 * PG, PG);
	cr_assert_eq(p[5 * PG], 0x5A);
	ph_done(l, r, -1);
}

Test(loan, released_pages_live_until_the_last_unloan)
{
	unsigned char *p;
	struct uvm_region *r = ph_anon(8, 8, 3, &p);
	struct uvm_loan *l1 = uvm_loan_view(r, 0, 8 * PG);
	struct uvm_loan *l2 = uvm_loan_view(r, 2 * PG, 2 * PG);
	cr_assert(l1 && l2);
	uint64_t before = pu_pool_pages(r);
	cr_assert_eq(uvm_unmap(r, 2 * PG, 4 * PG), 0);   /* orphans */
	cr_assert_eq(uvm_unmap(r, 0, 8 * PG), 0);        /* all orphans */
	const unsigned char *v1 = uvm_loan_base(l1), *v2 = uvm_loan_base(l2);
	ph_expect(v1, 8 * PG, 3);
	ph_expect(v2, 2 * PG, 3 + 2 * PG * 13);
	struct uvm_region *probe = uvm_map_anon(PG, RW);
	cr_assert_eq(pu_pool_pages(probe), before, "orphans still held");
	cr_assert_eq(uvm_unloan(l1), 0);
	ph_expect(v2, 2 * PG, 3 + 2 * PG * 13);
	cr_assert_eq(pu_pool_pages(probe), before - 6, "l2 holds 2");
	cr_assert_eq(uvm_unloan(l2), 0);
	cr_assert_eq(pu_pool_pages(probe), before - 8);
	cr_assert_eq(uvm_unmap(probe, 0, PG), 0);
}

Test(loan, view_of_a_copy_and_copy_after_loan)
{
	unsigned char *p;
	struct uvm_region *r = ph_anon(4, 4, 4, &p);
	struct uvm_region *c = uvm_copy(r);
	const unsigned char *v;
	struct uvm_loan *l = ph_view(c, 0, 4 * PG, &v);
	p[0] = 0;                  /* source writes: view and copy unchanged */
	unsigned char *q = uvm_base(c);
	q[PG] = 0;                 /* copy writes: view unchanged */
	ph_expect(v, 4 * PG, 4);
	struct uvm_region *c2 = uvm_copy(c);
	unsigned char *q2 = uvm_base(c2);
	q2[2 * PG] = 1;
	ph_expect(v, 4 * PG, 4);
	cr_assert_eq(q[2 * PG], (unsigned char)(2 * PG * 13 + 4));
	ph_done(l, c2, -1);
	ph_done(NULL, c, -1);
	ph_done(NULL, r, -1);
}

Test(loan, view_of_a_private_file_region)
{
	int fd = ph_tmpfile(4 * PG, ph_fill, 5);
	unsigned char *p;
	struct uvm_region *r = ph_file_region(fd, 4, RW, UVM_MAP_PRIVATE, &p);
	const unsigned char *v;
	struct uvm_loan *l = ph_view(r, 0, 4 * PG, &v);    /* untouched */
	ph_expect(v, 4 * PG, 5);
	p[0] = 0xFF;                               /* case 2B breaks it */
	cr_assert_eq(ph_stats(r).us_fault_2b, 1);
	ph_expect(v, 4 * PG, 5);
	cr_assert_eq(p[0], 0xFF);
	cr_assert_eq(uvm_unmap(r, 0, 4 * PG), 0);  /* object pages orphaned */
	ph_expect(v, 4 * PG, 5);
	ph_done(l, NULL, fd);
}

Test(loan, view_of_a_shared_file_region)
{
	int fd = ph_tmpfile(4 * PG, ph_fill, 6);
	unsigned char *p;
	struct uvm_region *r = ph_file_region(fd, 4, RW, UVM_MAP_SHARED, &p);
	struct uvm_region *r2 = uvm_copy(r);        /* a second shared view */
	unsigned char *p2 = uvm_base(r2);
	p2[3 * PG] = 0x10;                          /* dirty and writable */
	const unsigned char *v;
	struct uvm_loan *l = ph_view(r, 0, 4 * PG, &v);
	cr_assert_eq(v[3 * PG], 0x10);
	p[1] = 0x20;                                /* breaks page 0 */
	p2[3 * PG + 1] = 0x30;                      /* breaks page 3 */
	cr_assert_eq(v[1], (unsigned char)(13 + 6));
	cr_assert_eq(v[3 * PG + 1], (unsigned char)((3 * PG + 1) * 13 + 6));
	cr_assert_eq(p2[1], 0x20, "both regions see the object's new page");
	cr_assert_eq(p[3 * PG + 1], 0x30);
	cr_assert_eq(uvm_flush(r), 0);
	unsigned char b[2];
	cr_assert_eq(pread(fd, &b[0], 1, 1), 1);
	cr_assert_eq(pread(fd, &b[1], 1, 3 * PG + 1), 1);
	cr_assert(b[0] == 0x20 && b[1] == 0x30);
	ph_done(l, r2, -1);
	ph_done(NULL, r, fd);
}

Test(loan, unloan_twice_and_bad_views)
{
	unsigned char *p;
	struct uvm_region *r = ph_anon(8, 8, 7, &p);
	const unsigned char *v;
	struct uvm_loan *l = ph_view(r, 0, PG, &v);
	cr_assert_eq(uvm_unloan(l), 0);
	errno = 0;
	cr_assert_eq(uvm_unloan(l), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(uvm_loan_base(l));
	cr_assert_eq(uvm_unloan(NULL), -1);
	char junk[64] = { 0 };
	cr_assert_eq(uvm_unloan((struct uvm_loan *)junk), -1);

	struct uvm_stats s0 = ph_stats(r);
	uint64_t pages = pu_pool_pages(r);
	cr_assert_eq(uvm_unmap(r, 6 * PG, PG), 0);
	errno = 0;
	cr_assert_null(uvm_loan_view(r, 4 * PG, 4 * PG), "released page");
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(uvm_loan_view(r, 8 * PG, PG), "out of range");
	cr_assert_null(uvm_loan_view(r, 4 * PG, 5 * PG));
	cr_assert_null(uvm_loan_view(r, 1, PG));
	cr_assert_null(uvm_loan_view(r, 0, 0));
	cr_assert_null(uvm_loan_view(NULL, 0, PG));
	/* nothing changed: the pages are still written in place */
	p[4 * PG] = 1;
	struct uvm_stats s1 = ph_stats(r);
	cr_assert_eq(s1.us_fault_1b, s0.us_fault_1b);
	cr_assert_eq(pu_pool_pages(r), pages - 1);
	ph_done(NULL, r, -1);
}

Test(loan, into_anon_to_anon)
{
	unsigned char *ps, *pd;
	struct uvm_region *s = ph_anon(8, 0, 0, &ps);
	struct uvm_region *d = ph_anon(8, 0, 0, &pd);
	cr_assert_eq(uvm_advise(s, UVM_ADV_RANDOM), 0);
	ph_fill(ps, 4 * PG, 8);                     /* pages 4..7 untouched */
	memset(pd, 0x77, 8 * PG);
	uint64_t before = pu_pool_pages(s);
	cr_assert_eq(uvm_loan_into(d, 0, s, 0, 8 * PG), 0);
	ph_expect(pd, 4 * PG, 8);
	ph_expect_zero(pd + 4 * PG, 4 * PG);           /* zero pages loaned */
	/* d's 8 old pages were freed; 4 zero pages were made for it */
	cr_assert_eq(pu_pool_pages(s), before - 8 + 4);
	pd[0] = 1;                                  /* COW on dst */
	ps[PG] = 2;                                 /* COW on src */
	cr_assert_eq(ps[0], 8);
	cr_assert_eq(pd[PG], (unsigned char)(PG * 13 + 8));
	cr_assert_eq(ph_stats(d).us_fault_1b, 1);
	cr_assert_eq(ph_stats(s).us_fault_1b, 1);
	ps[4 * PG] = 3;                             /* src's zero page */
	cr_assert_eq(pd[4 * PG], 0);
	cr_assert_eq(uvm_unmap(s, 0, 8 * PG), 0);   /* orphans for d */
	ph_expect(pd + 2 * PG, 2 * PG, 8 + 2 * PG * 13);
	ph_done(NULL, d, -1);
}

Test(loan, into_object_to_anon)
{
	int fd = ph_tmpfile(4 * PG, ph_fill, 9);
	unsigned char *ps, *pd;
	struct uvm_region *s = ph_file_region(fd, 4, RW, UVM_MAP_PRIVATE, &ps);
	struct uvm_region *d = ph_anon(4, 0, 0, &pd);
	cr_assert_eq(uvm_loan_into(d, 0, s, 0, 4 * PG), 0);
	ph_expect(pd, 4 * PG, 9);
	pd[0] = 0;                                  /* dst copies */
	cr_assert_eq(ps[0], 9);
	ps[PG] = 0;                                 /* src promotes (2B) */
	cr_assert_eq(pd[PG], (unsigned char)(PG * 13 + 9));
	cr_assert_eq(uvm_unmap(s, 0, 4 * PG), 0);
	ph_expect(pd + 2 * PG, 2 * PG, 9 + 2 * PG * 13);
	ph_done(NULL, d, -1);

	/* from a shared region: the object moves on, dst keeps the page */
	s = ph_file_region(fd, 4, RW, UVM_MAP_SHARED, &ps);
	d = ph_anon(4, 0, 0, &pd);
	ps[5] = 0x42;
	cr_assert_eq(uvm_loan_into(d, 0, s, 0, 2 * PG), 0);
	cr_assert_eq(pd[5], 0x42);
	ps[6] = 0x43;
	cr_assert_eq(pd[6], (unsigned char)(6 * 13 + 9));
	pd[7] = 0x44;
	cr_assert_eq(ps[7], (unsigned char)(7 * 13 + 9));
	cr_assert_eq(uvm_unmap(s, 0, 4 * PG), 0);   /* flushes */
	unsigned char b[3];
	cr_assert_eq(pread(fd, b, 3, 5), 3);
	cr_assert(b[0] == 0x42 && b[1] == 0x43 && b[2] == (unsigned char)(7 * 13 + 9));
	cr_assert_eq(pd[6], (unsigned char)(6 * 13 + 9));
	ph_done(NULL, d, fd);
}

Test(loan, into_errors_change_nothing)
{
	int fd = ph_tmpfile(2 * PG, ph_fill, 10);
	unsigned char *ps, *pd, *psh;
	struct uvm_region *s = ph_anon(4, 4, 11, &ps);
	struct uvm_region *d = ph_anon(4, 0, 0, &pd);
	struct uvm_region *sh = ph_file_region(fd, 2, RW, UVM_MAP_SHARED, &psh);
	memset(pd, 0x66, 4 * PG);
	cr_assert_eq(uvm_unmap(s, 3 * PG, PG), 0);
	errno = 0;
	cr_assert_eq(uvm_loan_into(d, 0, s, 0, 4 * PG), -1, "released src");
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(uvm_loan_into(d, 0, s, 0, 5 * PG), -1, "out of range");
	cr_assert_eq(uvm_loan_into(d, PG, s, 0, 4 * PG), -1);
	cr_assert_eq(uvm_loan_into(d, 1, s, 0, PG), -1);
	cr_assert_eq(uvm_loan_into(sh, 0, s, 0, PG), -1, "shared dst");
	cr_assert_eq(uvm_loan_into(s, 0, s, PG, 2 * PG), -1, "overlap");
	cr_assert_eq(uvm_loan_into(NULL, 0, s, 0, PG), -1);
	cr_assert_eq(errno, EINVAL);
	for (size_t k = 0; k < 4 * PG; k++)
		cr_assert_eq(pd[k], 0x66);
	cr_assert_eq(ph_stats(d).us_shared, 0);
	uint64_t b1 = ph_stats(s).us_fault_1b;
	ps[0] = 0;                                  /* still exclusive */
	cr_assert_eq(ph_stats(s).us_fault_1b, b1);
	cr_assert_eq(uvm_unmap(d, 2 * PG, PG), 0);
	cr_assert_eq(uvm_loan_into(d, 0, s, 0, 3 * PG), -1, "released dst");
	cr_assert_eq(pd[0], 0x66);
	/* a non-overlapping loan inside one region is fine */
	cr_assert_eq(uvm_loan_into(s, 2 * PG, s, 0, PG), 0);
	cr_assert_eq(ps[2 * PG], 0);
	ph_done(NULL, sh, -1);
	ph_done(NULL, s, -1);
	ph_done(NULL, d, fd);
}

Test(loan, view_survives_fork_and_owner_writes)
{
	struct loaned f = loaned(4, 4, 12);
	unsigned char *p = f.p;
	const unsigned char *v = f.v;
	int go[2];
	cr_assert_eq(pipe(go), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char c;
		if (read(go[0], &c, 1) != 1)
			_exit(2);
		p[0] = 0x99;              /* the child's own write: its copy */
		for (size_t k = 0; k < 4 * PG; k++)
			if (v[k] != (unsigned char)(k * 13 + 12))
				_exit(1);
		_exit(p[0] == 0x99 ? 0 : 3);
	}
	p[1] = 0x98;                      /* the parent writes the owner */
	cr_assert_eq(write(go[1], "x", 1), 1);
	cr_assert_eq(pu_wait(pid), 0, "the child's view kept the data");
	ph_expect(v, 4 * PG, 12);
	cr_assert_eq(p[0], 12);
	ph_done(f.l, f.r, go[0]);
	close(go[1]);
}

Test(loan, views_of_every_size_around_the_inline_array)
{
	/* up to 32 pages the loan keeps its anons inline, beyond in an
	 * array of its own; one run is one mapping, a hole makes three */
	unsigned char *p;
	struct uvm_region *r = ph_anon(80, 40, 9, &p);
	const unsigned char *v;
	static const size_t sizes[] = { 1, 31, 32, 33, 40 };
	for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
		struct uvm_loan *l = ph_view(r, 0, sizes[k] * PG, &v);
		ph_expect(v, sizes[k] * PG, 9);
		cr_assert_eq(uvm_unloan(l), 0);
	}
	/* pages 40..79 never touched: zero pages after the data */
	struct uvm_loan *l = ph_view(r, 8 * PG, 64 * PG, &v);
	ph_expect(v, 32 * PG, 9 + 8 * PG * 13);
	ph_expect_zero(v + 32 * PG, 32 * PG);
	ph_done(l, r, -1);
}

Test(loan, vmsplice_of_a_view_keeps_the_loaned_data)
{
	/* the pipe references the view's pages (no SPLICE_F_GIFT): the
	 * loan keeps them copy-on-write, so an owner write before the
	 * reader drains the pipe does not reach it */
	struct loaned f = loaned(4, 4, 5);
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	struct iovec iov = { (void *)f.v, 4 * PG };
	cr_assert_eq(vmsplice(fds[1], &iov, 1, 0), (ssize_t)(4 * PG));
	memset(f.p, 0xAB, 4 * PG);             /* 1B on every page */
	static unsigned char buf[4 * PG];
	cr_assert_eq(read(fds[0], buf, sizeof buf), (ssize_t)sizeof buf);
	ph_expect(buf, 4 * PG, 5);
	cr_assert_eq(f.p[3 * PG], 0xAB);
	close(fds[1]);
	ph_done(f.l, f.r, fds[0]);
}

Test(loan, rewrite_after_unloan_unprotects_runs_but_not_loaned_pages)
{
	unsigned char *p;
	struct uvm_region *r = ph_anon(80, 80, 6, &p);
	const unsigned char *v;
	cr_assert_eq(uvm_unloan(ph_view(r, 0, 80 * PG, &v)), 0);
	/* every page protected, none shared: under ADV_NORMAL the first
	 * write unprotects its block of 64 pages, the next block another */
	struct uvm_stats s0 = ph_stats(r);
	for (size_t k = 0; k < 70; k++)
		p[k * PG] = 0x11;
	struct uvm_stats s1 = ph_stats(r);
	cr_assert_eq(s1.us_fault_1a - s0.us_fault_1a, 2);
	cr_assert_eq(s1.us_fault_1b, s0.us_fault_1b);
	/* ADV_RANDOM: one page per fault */
	cr_assert_eq(uvm_advise(r, UVM_ADV_RANDOM), 0);
	cr_assert_eq(uvm_unloan(ph_view(r, 0, 80 * PG, &v)), 0);
	for (size_t k = 0; k < 4; k++)
		p[k * PG] = 0x12;
	struct uvm_stats s2 = ph_stats(r);
	cr_assert_eq(s2.us_fault_1a - s1.us_fault_1a, 4);
	/* a loaned neighbour stays protected: the write to page 12 must not
	 * unprotect page 13, so writing 13 copies it and the view keeps it */
	cr_assert_eq(uvm_advise(r, UVM_ADV_NORMAL), 0);
	cr_assert_eq(uvm_unloan(ph_view(r, 0, 16 * PG, &v)), 0);
	struct uvm_loan *l = ph_view(r, 13 * PG, PG, &v);
	p[12 * PG] = 0x22;
	cr_assert_eq(ph_stats(r).us_fault_1b, s2.us_fault_1b);
	p[13 * PG] = 0x33;
	cr_assert_eq(ph_stats(r).us_fault_1b, s2.us_fault_1b + 1);
	cr_assert_eq(v[0], 0x11);
	ph_expect(v + 1, PG - 1, 6 + 13 * PG * 13 + 13);
	cr_assert_eq(p[13 * PG], 0x33);
	ph_done(l, r, -1);
}

Test(loan, splice_into_a_pipe_keeps_the_loaned_data)
{
	/* pages 0..5 written, 6..7 never touched (zero pages) */
	struct loaned f = loaned(8, 6, 8);
	struct uvm_loan *l = f.l;
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	/* from the middle of page 1 to the middle of page 7 */
	size_t off = PG + 100, len = 6 * PG;
	cr_assert_eq(uvm_loan_splice(l, off, fds[1], len, 0), (ssize_t)len);
	memset(f.p, 0xCD, 6 * PG);             /* owner writes: copies */
	static unsigned char buf[6 * PG];
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fds[0], buf + got, len - got);
		cr_assert_gt(n, 0);
		got += (size_t)n;
	}
	ph_expect(buf, 5 * PG - 100, 8 + (PG + 100) * 13);
	ph_expect_zero(buf + 5 * PG - 100, PG + 100);
	cr_assert_eq(f.p[PG], 0xCD);
	/* bad ranges and dead loans change nothing */
	errno = 0;
	cr_assert_eq(uvm_loan_splice(l, 8 * PG, fds[1], 1, 0), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(uvm_loan_splice(l, 4 * PG, fds[1], 4 * PG + 1, 0), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(uvm_unloan(l), 0);
	cr_assert_eq(uvm_loan_splice(l, 0, fds[1], PG, 0), -1);
	cr_assert_eq(errno, EINVAL);
	close(fds[1]);
	ph_done(NULL, f.r, fds[0]);
}
