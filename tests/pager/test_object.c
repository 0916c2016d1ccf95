/*
 * The object layer: file-backed regions (private and shared), short
 * files, copies of file regions, fault-around, a caller's own store, and
 * bad arguments.
 */
#include <fcntl.h>
#include <stdbool.h>

#include "pager/pager.h"
#include "pager_helper.h"

/* The files of these tests: byte k is pattern(k). */
static unsigned char pattern(size_t k)
{
	return (unsigned char)(k * 7 + k / PG + 1);
}

static void fill_pattern(unsigned char *p, size_t n, unsigned unused)
{
	(void)unused;
	for (size_t k = 0; k < n; k++)
		p[k] = pattern(k);
}

static int tmpfile_of(size_t n)
{
	return ph_tmpfile(n, fill_pattern, 0);
}

/* A temporary file of npages pages and a region of all of it. */
static struct uvm_region *file_region(size_t npages, int prot, int flags,
                                      int *fd, unsigned char **p)
{
	*fd = tmpfile_of(npages * PG);
	return ph_file_region(*fd, npages, prot, flags, p);
}

static void expect_file_bytes(const unsigned char *p, size_t n, size_t base)
{
	for (size_t k = 0; k < n; k++)
		if (p[k] != pattern(base + k))
			cr_assert_fail("byte %zu: %d, want %d", k, p[k],
			               pattern(base + k));
}

Test(object, private_reads_file_writes_stay)
{
	int fd;
	unsigned char *p;
	struct uvm_region *r = file_region(16, RW, UVM_MAP_PRIVATE, &fd, &p);
	expect_file_bytes(p, 16 * PG, 0);
	struct uvm_stats st;
	cr_assert_eq(uvm_stats(r, &st), 0);
	cr_assert_gt(st.us_fault_2a, 0);
	cr_assert_eq(st.us_fault_2b, 0);
	cr_assert_eq(st.us_anons, 0, "reads allocate no anon");

	p[3 * PG + 5] = 0xAA;                      /* case 2B */
	cr_assert_eq(p[3 * PG + 5], 0xAA);
	expect_file_bytes(p + 3 * PG + 6, PG - 6, 3 * PG + 6);
	cr_assert_eq(uvm_stats(r, &st), 0);
	cr_assert_eq(st.us_fault_2b, 1);
	cr_assert_eq(st.us_anons, 1);
	p[3 * PG + 6] = 0xBB;                      /* now an anon: 1A */
	cr_assert_eq(uvm_stats(r, &st), 0);
	cr_assert_eq(st.us_fault_2b, 1);

	cr_assert_eq(uvm_flush(r), 0);
	cr_assert_eq(uvm_unmap(r, 0, 16 * PG), 0);
	unsigned char b;
	cr_assert_eq(pread(fd, &b, 1, 3 * PG + 5), 1);
	cr_assert_eq(b, pattern(3 * PG + 5), "the file never changes");
	ph_done(NULL, NULL, fd);
}

Test(object, offset_and_short_file)
{
	/* 2.5 pages of file from page 1 on: 1.5 pages of data, then zeros */
	int fd = tmpfile_of(2 * PG + PG / 2);
	struct uvm_region *r = uvm_map_file(fd, PG, 4 * PG, PROT_READ,
	                                    UVM_MAP_PRIVATE);
	cr_assert_not_null(r);
	const unsigned char *p = uvm_base(r);
	expect_file_bytes(p, PG + PG / 2, PG);
	for (size_t k = PG + PG / 2; k < 4 * PG; k++)
		cr_assert_eq(p[k], 0, "past EOF at %zu", k);
	cr_assert_eq(pu_probe((volatile char *)p, 1), SIGSEGV, "read-only");
	ph_done(NULL, r, fd);
}

Test(object, shared_writes_reach_file_at_flush_and_destroy)
{
	int fd;
	unsigned char *p;
	struct uvm_region *r = file_region(8, RW, UVM_MAP_SHARED, &fd, &p);
	expect_file_bytes(p, 8 * PG, 0);
	p[10] = 0x11;
	unsigned char b;
	cr_assert_eq(pread(fd, &b, 1, 10), 1);
	cr_assert_eq(b, pattern(10), "not before the flush");
	cr_assert_eq(uvm_flush(r), 0);
	cr_assert_eq(pread(fd, &b, 1, 10), 1);
	cr_assert_eq(b, 0x11);

	/* written again after the flush: caught again */
	p[20] = 0x22;
	p[5 * PG] = 0x33;
	cr_assert_eq(uvm_flush(r), 0);
	cr_assert_eq(pread(fd, &b, 1, 20), 1);
	cr_assert_eq(b, 0x22);
	p[6 * PG + 1] = 0x44;
	cr_assert_eq(uvm_unmap(r, 0, 8 * PG), 0);   /* destroy flushes */
	cr_assert_eq(pread(fd, &b, 1, 6 * PG + 1), 1);
	cr_assert_eq(b, 0x44);
	cr_assert_eq(pread(fd, &b, 1, 5 * PG), 1);
	cr_assert_eq(b, 0x33);
	cr_assert_eq(pread(fd, &b, 1, 7 * PG), 1);
	cr_assert_eq(b, pattern(7 * PG), "untouched bytes unchanged");
	ph_done(NULL, NULL, fd);
}

Test(object, shared_short_file_never_grows)
{
	int fd = tmpfile_of(PG + 100);
	unsigned char *p;
	struct uvm_region *r = ph_file_region(fd, 3, RW, UVM_MAP_SHARED, &p);
	cr_assert_eq(p[PG + 100], 0);
	p[PG + 50] = 0x55;
	p[PG + 200] = 0x66;          /* past EOF: dropped */
	p[2 * PG + 1] = 0x77;        /* past EOF: dropped */
	cr_assert_eq(uvm_flush(r), 0);
	struct stat sb;
	cr_assert_eq(fstat(fd, &sb), 0);
	cr_assert_eq(sb.st_size, PG + 100);
	unsigned char b;
	cr_assert_eq(pread(fd, &b, 1, PG + 50), 1);
	cr_assert_eq(b, 0x55);
	cr_assert_eq(p[PG + 200], 0x66, "the region still shows it");
	ph_done(NULL, r, fd);
}

Test(object, copies_of_private_file_regions)
{
	int fd;
	unsigned char *p;
	struct uvm_region *r = file_region(8, RW, UVM_MAP_PRIVATE, &fd, &p);
	p[0] = 1;                                  /* an anon */
	(void)*(volatile unsigned char *)&p[4 * PG];   /* an object page */
	struct uvm_region *c = uvm_copy(r);
	cr_assert_not_null(c);
	unsigned char *q = uvm_base(c);
	cr_assert_eq(q[0], 1);
	expect_file_bytes(q + 1, 8 * PG - 1, 1);
	q[4 * PG] = 9;                             /* 2B in the copy */
	p[1] = 2;                                  /* 1B in the source */
	cr_assert_eq(p[4 * PG], pattern(4 * PG));
	cr_assert_eq(q[1], pattern(1));
	cr_assert_eq(p[0], 1);
	cr_assert_eq(uvm_unmap(r, 0, 8 * PG), 0);  /* the copy keeps the object */
	expect_file_bytes(q + 5 * PG, 3 * PG, 5 * PG);
	cr_assert_eq(q[4 * PG], 9);
	ph_done(NULL, c, fd);
}

Test(object, copies_of_shared_file_regions_share)
{
	int fd;
	unsigned char *p;
	struct uvm_region *r = file_region(4, RW, UVM_MAP_SHARED, &fd, &p);
	p[0] = 1;
	struct uvm_region *c = uvm_copy(r);
	cr_assert_not_null(c);
	unsigned char *q = uvm_base(c);
	cr_assert_eq(q[0], 1);
	q[PG] = 2;                     /* as after fork of MAP_SHARED: seen */
	cr_assert_eq(p[PG], 2);
	p[2 * PG] = 3;
	cr_assert_eq(q[2 * PG], 3);
	cr_assert_eq(uvm_unmap(r, 0, 4 * PG), 0);
	cr_assert_eq(uvm_flush(c), 0);
	unsigned char b[3];
	cr_assert_eq(pread(fd, &b[0], 1, 0), 1);
	cr_assert_eq(pread(fd, &b[1], 1, PG), 1);
	cr_assert_eq(pread(fd, &b[2], 1, 2 * PG), 1);
	cr_assert(b[0] == 1 && b[1] == 2 && b[2] == 3);
	ph_done(NULL, c, fd);
}

Test(object, fault_around_follows_advice)
{
	int fd;
	unsigned char *base;
	struct uvm_region *r = file_region(64, PROT_READ, UVM_MAP_PRIVATE,
	                                   &fd, &base);
	cr_assert_eq(uvm_advise(r, UVM_ADV_RANDOM), 0);
	const volatile unsigned char *p = base;
	for (size_t i = 0; i < 8; i++)
		(void)p[i * PG];
	struct uvm_stats st;
	cr_assert_eq(uvm_stats(r, &st), 0);
	cr_assert_eq(st.us_fault_2a, 8, "RANDOM: one fault per page (%llu)", (unsigned long long)st.us_fault_2a);
	cr_assert_eq(st.us_fault_around, 0);
	cr_assert_eq(uvm_advise(r, UVM_ADV_SEQUENTIAL), 0);
	for (size_t i = 8; i < 64; i++)
		(void)p[i * PG];
	cr_assert_eq(uvm_stats(r, &st), 0);
	cr_assert_eq(st.us_fault_2a, 8 + 56 / 8, "SEQUENTIAL: 7 ahead");
	cr_assert_eq(st.us_fault_around, 56 - 7);
	expect_file_bytes((const unsigned char *)p, 64 * PG, 0);
	ph_done(NULL, r, fd);
}

Test(object, partial_unmap_and_wire)
{
	int fd;
	unsigned char *p;
	struct uvm_region *r = file_region(8, RW, UVM_MAP_PRIVATE, &fd, &p);
	cr_assert_eq(uvm_wire(r, 0, 4 * PG), 0);
	expect_file_bytes(p, 4 * PG, 0);
	cr_assert_eq(uvm_unmap(r, 2 * PG, 2 * PG), 0);
	cr_assert_eq(pu_probe((volatile char *)p + 2 * PG, 0), SIGSEGV);
	expect_file_bytes(p + 4 * PG, 4 * PG, 4 * PG);
	ph_done(NULL, r, fd);
}

/* A caller's own store: page k reads as byte k+1, puts are recorded. */
struct store { unsigned char put[8]; int puts, released; };

static int st_get(void *cookie, uint64_t off, void *buf, size_t len)
{
	(void)cookie;
	memset(buf, (int)(off / PG) + 1, len);
	return off / PG == 7 ? -EIO : 0;
}

static int st_put(void *cookie, uint64_t off, const void *buf, size_t len)
{
	struct store *s = cookie;
	(void)len;
	s->put[off / PG] = *(const unsigned char *)buf;
	s->puts++;
	return 0;
}

static void st_release(void *cookie)
{
	((struct store *)cookie)->released++;
}

static const struct uvm_pagerops st_ops = {
	.pgo_get = st_get, .pgo_put = st_put, .pgo_release = st_release,
};

Test(object, pluggable_store)
{
	struct store s = { 0 };
	struct uvm_region *r = uvm_map_object(&st_ops, &s, 8 * PG, RW,
	                                      UVM_MAP_SHARED);
	cr_assert_not_null(r);
	cr_assert_eq(uvm_advise(r, UVM_ADV_RANDOM), 0);
	unsigned char *p = uvm_base(r);
	for (int k = 0; k < 7; k++)
		cr_assert_eq(p[k * PG + 3], k + 1);
	cr_assert_eq(pu_probe((volatile char *)p + 7 * PG, 0), SIGBUS,
	             "a failed get raises SIGBUS");
	p[2 * PG] = 0x42;
	cr_assert_eq(uvm_flush(r), 0);
	cr_assert_eq(s.puts, 1, "only the dirty page is written");
	cr_assert_eq(s.put[2], 0x42);
	cr_assert_eq(uvm_flush(r), 0);
	cr_assert_eq(s.puts, 1, "clean after a flush");
	cr_assert_eq(s.released, 0);
	cr_assert_eq(uvm_unmap(r, 0, 8 * PG), 0);
	cr_assert_eq(s.released, 1);
}

Test(object, bad_arguments)
{
	struct store s = { 0 };
	int fd = tmpfile_of(PG);
	errno = 0;
	cr_assert_null(uvm_map_file(fd, 1, PG, PROT_READ, UVM_MAP_PRIVATE));
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(uvm_map_file(fd, 0, PG + 1, PROT_READ, UVM_MAP_PRIVATE));
	cr_assert_null(uvm_map_file(fd, 0, PG, PROT_READ, 0));
	cr_assert_null(uvm_map_file(fd, 0, PG, PROT_READ, 3));
	cr_assert_null(uvm_map_file(fd, -(off_t)PG, PG, PROT_READ, UVM_MAP_PRIVATE));
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_null(uvm_map_file(-1, 0, PG, PROT_READ, UVM_MAP_PRIVATE));
	cr_assert_eq(errno, EBADF);
	int ro = open("/proc/self/exe", O_RDONLY);
	errno = 0;
	cr_assert_null(uvm_map_file(ro, 0, PG, RW, UVM_MAP_SHARED));
	cr_assert_eq(errno, EACCES);
	close(ro);
	struct uvm_pagerops noput = { .pgo_get = st_get };
	errno = 0;
	cr_assert_null(uvm_map_object(&noput, &s, PG, RW, UVM_MAP_SHARED));
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(uvm_map_object(NULL, &s, PG, RW, UVM_MAP_PRIVATE));
	errno = 0;
	cr_assert_eq(uvm_flush(NULL), -1);
	cr_assert_eq(errno, EINVAL);
	struct uvm_region *a = uvm_map_anon(PG, RW);
	cr_assert_eq(uvm_flush(a), 0, "nothing to write");
	cr_assert_eq(uvm_unmap(a, 0, PG), 0);
	close(fd);
}

Test(object, first_access_is_a_write)
{
	int fd = tmpfile_of(32 * PG);
	for (int adv = UVM_ADV_NORMAL; adv <= UVM_ADV_SEQUENTIAL; adv++) {
		struct uvm_region *r = uvm_map_file(fd, 0, 32 * PG, RW,
		                                    UVM_MAP_PRIVATE);
		cr_assert_eq(uvm_advise(r, adv), 0);
		unsigned char *p = uvm_base(r);
		for (size_t i = 0; i < 32; i++)
			p[i * PG + 1] = (unsigned char)~pattern(i * PG + 1);
		for (size_t i = 0; i < 32; i++) {
			cr_assert_eq(p[i * PG + 1],
			             (unsigned char)~pattern(i * PG + 1));
			expect_file_bytes(p + i * PG + 2, PG - 2, i * PG + 2);
			cr_assert_eq(p[i * PG], pattern(i * PG));
		}
		struct uvm_stats st;
		cr_assert_eq(uvm_stats(r, &st), 0);
		cr_assert_eq(st.us_anons, 32, "every page promoted (2B)");
		cr_assert_gt(st.us_fault_2b, 0);
		cr_assert_eq(uvm_unmap(r, 0, 32 * PG), 0);
	}
	unsigned char b;
	cr_assert_eq(pread(fd, &b, 1, 5 * PG + 1), 1);
	cr_assert_eq(b, pattern(5 * PG + 1), "the file never changes");
	close(fd);
}

/* Four threads fault on one file region at once: reads of every page,
 * writes to their own pages (promotions in a private region, in-place
 * writes in a shared one). */
struct toucher { unsigned char *p; size_t npages; int t; };

static void *touch_thread(void *arg)
{
	struct toucher *a = arg;
	for (size_t i = 0; i < a->npages; i++) {
		size_t j = (i * 7 + (size_t)a->t * 13) % a->npages;
		if (a->p[j * PG] != pattern(j * PG))
			return (void *)1;
		if (j % 4 == (size_t)a->t)
			a->p[j * PG + 8 + (size_t)a->t] = 0xC0 | (unsigned char)a->t;
	}
	return NULL;
}

static void touch_concurrently(struct uvm_region *r, size_t npages)
{
	pthread_t th[4];
	struct toucher a[4];
	for (int t = 0; t < 4; t++) {
		a[t] = (struct toucher){ uvm_base(r), npages, t };
		cr_assert_eq(pthread_create(&th[t], NULL, touch_thread, &a[t]), 0);
	}
	for (int t = 0; t < 4; t++) {
		void *ret;
		pthread_join(th[t], &ret);
		cr_assert_null(ret, "thread %d read a wrong byte", t);
	}
	unsigned char *p = uvm_base(r);
	for (size_t j = 0; j < npages; j++) {
		int t = (int)(j % 4);
		cr_assert_eq(p[j * PG + 8 + (size_t)t], 0xC0 | t, "page %zu", j);
		cr_assert_eq(p[j * PG + 100], pattern(j * PG + 100));
	}
}

Test(object, concurrent_faults, .timeout = 60)
{
	size_t n = 256;
	int fd = tmpfile_of(n * PG);
	struct uvm_region *r = uvm_map_file(fd, 0, n * PG, RW, UVM_MAP_PRIVATE);
	touch_concurrently(r, n);
	cr_assert_eq(uvm_unmap(r, 0, n * PG), 0);
	unsigned char b;
	cr_assert_eq(pread(fd, &b, 1, 8), 1);
	cr_assert_eq(b, pattern(8), "private: the file never changes");

	r = uvm_map_file(fd, 0, n * PG, RW, UVM_MAP_SHARED);
	touch_concurrently(r, n);
	cr_assert_eq(uvm_unmap(r, 0, n * PG), 0);
	for (size_t j = 0; j < n; j++) {
		cr_assert_eq(pread(fd, &b, 1, (off_t)(j * PG + 8 + j % 4)), 1);
		cr_assert_eq(b, 0xC0 | (j % 4), "shared: page %zu written back", j);
	}
	close(fd);
}
