/*
 * Failure injection, fault path: a fault the pager cannot serve gives
 * SIGBUS to the faulting thread only (never a hang, never a signal to
 * another thread, the pager thread keeps serving), as a signal: the
 * page is not poisoned (test_sigbus.c has the details), transient
 * errors (EAGAIN) are retried, and once the failure stops every page,
 * the one that failed included, works and everything is freed.  Also: a caller's store failing (short
 * reads, EIO in get, put at flush and at destroy), a file shrinking
 * under its regions, and fork while a fault is being served.
 */
#include <stdatomic.h>
#include <sys/syscall.h>

#include "test_inject.h"

#define NPG 32

/* ---- SIGBUS per thread ------------------------------------------------ */

static __thread sigjmp_buf tf_jmp;
static __thread int tf_armed;
static atomic_int tf_sigs;        /* signals taken, by any thread */
static atomic_int tf_sig_tid;     /* the thread that took the last */
static atomic_int tf_sig_no;

static void tf_handler(int sig)
{
	atomic_fetch_add(&tf_sigs, 1);
	atomic_store(&tf_sig_tid, (int)syscall(SYS_gettid));
	atomic_store(&tf_sig_no, sig);
	if (tf_armed)
		siglongjmp(tf_jmp, 1);
	_exit(99);   /* a thread that was not probing got a signal */
}

static void tf_install(void)
{
	struct sigaction sa = { .sa_handler = tf_handler };
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
}

/* Write (or read) *p in this thread: 0, or the signal it raised. */
static int tf_touch(volatile unsigned char *p, bool write)
{
	int sig = 0;
	tf_armed = 1;
	if (sigsetjmp(tf_jmp, 1) == 0) {
		if (write)
			*p = 0x5a;
		else
			(void)*p;
	} else {
		sig = atomic_load(&tf_sig_no);
	}
	tf_armed = 0;
	return sig;
}

struct tf_job {
	volatile unsigned char *tj_p;
	bool tj_write;
	int tj_sig;
	int tj_tid;
};

static void *tf_thread(void *arg)
{
	struct tf_job *j = arg;
	j->tj_tid = (int)syscall(SYS_gettid);
	j->tj_sig = tf_touch(j->tj_p, j->tj_write);
	return NULL;
}

/* Touch p in a new thread while this one keeps reading present pages
 * [q, q+n): the new thread must get sig (0: none), this one nothing. */
static void tf_expect(volatile unsigned char *p, bool write, int sig,
                      const unsigned char *q, size_t n, const char *what)
{
	struct tf_job j = { .tj_p = p, .tj_write = write };
	int before = atomic_load(&tf_sigs);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, tf_thread, &j), 0);
	unsigned sum = 0;
	for (int round = 0; round < 20; round++)
		for (size_t k = 0; k < n; k++)
			sum += q[k * PG];
	(void)sum;
	pthread_join(t, NULL);
	cr_assert_eq(j.tj_sig, sig, "%s: signal %d, want %d", what, j.tj_sig,
	             sig);
	cr_assert_eq(atomic_load(&tf_sigs) - before, sig ? 1 : 0,
	             "%s: only the faulting thread is signalled", what);
	if (sig)
		cr_assert_eq(atomic_load(&tf_sig_tid), j.tj_tid, "%s", what);
	pthread_mutex_lock(&uvm_pager.up_lock);
	uint64_t poisons = uvm_pager.up_bus_poisons;
	pthread_mutex_unlock(&uvm_pager.up_lock);
	cr_assert_eq(poisons, 0, "%s: a signal, no page poisoned", what);
}

/* ---- anonymous regions ------------------------------------------------- */

/* r: pages 0..15 written (pattern 1); c: a copy of r. */
static struct uvm_region *ra, *rc;

static void anon_setup(void)
{
	tf_install();
	ra = uvm_map_anon(NPG * PG, RW);
	cr_assert_not_null(ra);
	cr_assert_eq(uvm_advise(ra, UVM_ADV_RANDOM), 0);   /* one page a fault */
	ij_fill(uvm_base(ra), 1, 0, NPG / 2);
	rc = uvm_copy(ra);
	cr_assert_not_null(rc);
}

/* Once the failure stops: every page works, the one that got SIGBUS
 * included (faults of every kind), the copy holds its data, copies
 * work, and destroying frees all. */
static void anon_after(void)
{
	unsigned char *a = uvm_base(ra), *c = uvm_base(rc);
	for (size_t i = 0; i < NPG; i++) {
		a[i * PG + 1] = 0x11;                  /* 1A, 1B, zero fill */
		cr_assert_eq(a[i * PG + 1], 0x11);
		if (i < NPG / 2)
			cr_assert_eq(c[i * PG + 512], ij_byte(1, i, 512),
			             "copy page %zu", i);
		c[i * PG + 2] = 0x22;
		cr_assert_eq(c[i * PG + 2], 0x22);
	}
	struct uvm_region *d = uvm_copy(ra);
	cr_assert_not_null(d);
	((unsigned char *)uvm_base(d))[PG] = 0x33;
	cr_assert_eq(a[PG], ij_byte(1, 1, 0), "a copy's write stays there");
	cr_assert_eq(uvm_unmap(d, 0, NPG * PG), 0);
	cr_assert_eq(uvm_unmap(rc, 0, NPG * PG), 0);
	cr_assert_eq(uvm_unmap(ra, 0, NPG * PG), 0);
	ij_all_gone();
}

/* A zero-fill fault whose UFFDIO_COPY fails (ENOMEM): SIGBUS. */
Test(inject_fault, zero_fill_copy_fails, .timeout = 30)
{
	anon_setup();
	unsigned char *a = uvm_base(ra);
	inj_arm(INJ_COPY, 0, -1, ENOMEM);
	tf_expect(a + 20 * PG, true, SIGBUS, a, NPG / 2, "zero fill");
	cr_assert_gt(inj_failed(INJ_COPY), 0);
	inj_reset();
	cr_assert_eq(a[20 * PG], 0, "still an empty page");
	anon_after();
}

/* EAGAIN from UFFDIO_COPY (the kernel's "try again") is retried: the
 * fault is served, no signal. */
Test(inject_fault, zero_fill_copy_eagain, .timeout = 30)
{
	anon_setup();
	unsigned char *a = uvm_base(ra);
	inj_arm(INJ_COPY, 0, 2, EAGAIN);
	tf_expect(a + 20 * PG, true, 0, a, NPG / 2, "zero fill, EAGAIN");
	cr_assert_eq(inj_failed(INJ_COPY), 2);
	cr_assert_eq(a[20 * PG], 0x5a);
	inj_reset();
	anon_after();
}

/* EAGAIN from UFFDIO_WRITEPROTECT (unprotecting a page of its own in
 * case 1A) is retried too. */
Test(inject_fault, write_protect_eagain, .timeout = 30)
{
	anon_setup();
	unsigned char *a = uvm_base(ra);
	a[30 * PG] = 1;                   /* exclusive, then protected: */
	struct uvm_region *d = uvm_copy(ra);
	cr_assert_eq(uvm_unmap(d, 0, NPG * PG), 0);   /* 1A on next write */
	inj_arm(INJ_WP, 0, 2, EAGAIN);
	tf_expect(a + 30 * PG, true, 0, a, NPG / 2, "1A, EAGAIN");
	cr_assert_eq(inj_failed(INJ_WP), 2);
	inj_reset();
	cr_assert_eq(a[30 * PG], 0x5a);
	anon_after();
}

/* Case 1B cannot get its copy: the pool refuses the page (ENOSPC), the
 * pool cannot be read (EIO), the new page cannot be mapped (ENOMEM), the
 * amap cannot be copied.  The writer gets SIGBUS; the source keeps its
 * data.  A registration that fails once is no failure of the fault: the
 * new page is mapped again (never the old, shared one: test_sigbus.c)
 * and the write lands, with no signal. */
Test(inject_fault, cow_fails, .timeout = 60)
{
	static const struct { enum inj_point p; int err, sig; } f[] = {
		{ INJ_POOL_WRITE, ENOSPC, SIGBUS }, { INJ_POOL_READ, EIO, SIGBUS },
		{ INJ_MMAP, ENOMEM, SIGBUS }, { INJ_MEM, ENOMEM, SIGBUS },
		{ INJ_REGISTER, ENOMEM, 0 },
	};
	for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
		anon_setup();
		unsigned char *c = uvm_base(rc);
		if (f[k].p == INJ_MEM)
			;   /* the copy's first write copies the amap: fails */
		else
			c[0] = 9;   /* amap copied, COW window made: only the
			               page's own copy is left to fail */
		inj_arm(f[k].p, 0, 1, f[k].err);
		tf_expect(c + 5 * PG, true, f[k].sig, uvm_base(ra), NPG / 2,
		          "1B");
		cr_assert_eq(inj_failed(f[k].p), 1, "point %d", f[k].p);
		inj_reset();
		cr_assert(ij_holds(uvm_base(ra), 1, 0, NPG / 2));
		if (f[k].sig) {
			cr_assert(ij_holds(c, 1, 1, NPG / 2 - 1), "the copy's too");
		} else {
			cr_assert_eq(c[5 * PG], 0x5a, "the write landed");
			cr_assert(ij_holds(c, 1, 1, 4) &&
			          ij_holds(c, 1, 6, NPG / 2 - 6), "the copy's");
		}
		anon_after();
	}
}

/* ---- object regions ---------------------------------------------------- */

/* A caller's store over a buffer: get fails with get_err for pages in
 * [bad_lo, bad_hi), put fails with put_err while put_fail > 0. */
struct tstore {
	unsigned char data[NPG * PG];
	size_t bad_lo, bad_hi;
	int get_err, put_err, put_fail;
	int puts, released;
};

static int ts_get(void *cookie, uint64_t off, void *buf, size_t len)
{
	struct tstore *s = cookie;
	for (uint64_t o = off; o < off + len; o += PG)
		if (o / PG >= s->bad_lo && o / PG < s->bad_hi)
			return -s->get_err;
	memcpy(buf, s->data + off, len);
	return 0;
}

static int ts_put(void *cookie, uint64_t off, const void *buf, size_t len)
{
	struct tstore *s = cookie;
	if (s->put_fail > 0) {
		s->put_fail--;
		return -s->put_err;
	}
	memcpy(s->data + off, buf, len);
	s->puts++;
	return 0;
}

static void ts_release(void *cookie)
{
	((struct tstore *)cookie)->released++;
}

static const struct uvm_pagerops ts_ops = { ts_get, ts_put, ts_release };

/* pgo_get fails (EIO) for one page: the thread touching it gets SIGBUS,
 * its neighbours (fetched by fault-around) are still served, and the
 * page is served once the store works again, in the same region and in
 * a new one. */
Test(inject_fault, store_get_fails, .timeout = 30)
{
	tf_install();
	static struct tstore s;
	ij_fill(s.data, 4, 0, NPG);
	s.bad_lo = 6;
	s.bad_hi = 7;
	s.get_err = EIO;
	struct uvm_region *r = uvm_map_object(&ts_ops, &s, NPG * PG, RW,
	                                      UVM_MAP_SHARED);
	cr_assert_not_null(r);
	unsigned char *p = uvm_base(r);
	cr_assert(ij_holds(p, 4, 0, 4));
	tf_expect(p + 6 * PG, false, SIGBUS, p, 4, "2A, get fails");
	cr_assert(ij_holds(p, 4, 5, 1));
	cr_assert(ij_holds(p, 4, 7, NPG - 7));
	ij_fill(p, 5, 8, 4);                  /* shared writes still work */
	s.bad_hi = 0;
	cr_assert_eq(uvm_flush(r), 0);
	cr_assert(ij_holds(s.data, 5, 8, 4));
	cr_assert(ij_holds(p, 4, 6, 1), "served once it works");
	struct uvm_region *r2 = uvm_map_object(&ts_ops, &s, NPG * PG, RW,
	                                       UVM_MAP_PRIVATE);
	cr_assert(ij_holds(uvm_base(r2), 4, 6, 1), "served once it works");
	cr_assert_eq(uvm_unmap(r2, 0, NPG * PG), 0);
	cr_assert_eq(uvm_unmap(r, 0, NPG * PG), 0);
	cr_assert_eq(s.released, 2, "one object each");
	ij_all_gone();
}

/* The object's fill cannot be placed (UFFDIO_COPY ENOMEM): SIGBUS;
 * shared data written before is not lost. */
Test(inject_fault, object_fill_fails, .timeout = 30)
{
	tf_install();
	static struct tstore s;
	ij_fill(s.data, 4, 0, NPG);
	struct uvm_region *r = uvm_map_object(&ts_ops, &s, NPG * PG, RW,
	                                      UVM_MAP_SHARED);
	cr_assert_not_null(r);
	cr_assert_eq(uvm_advise(r, UVM_ADV_RANDOM), 0);
	unsigned char *p = uvm_base(r);
	ij_fill(p, 6, 0, 4);
	inj_arm(INJ_COPY, 0, -1, ENOMEM);
	tf_expect(p + 10 * PG, false, SIGBUS, p, 4, "2A, copy fails");
	inj_arm(INJ_WP, 0, -1, ENOMEM);     /* shared write: unprotect fails */
	cr_assert_eq(uvm_flush(r), -1);     /* ... and the flush cannot protect */
	cr_assert_eq(errno, ENOMEM);
	inj_reset();
	cr_assert_eq(uvm_flush(r), 0);
	cr_assert(ij_holds(s.data, 6, 0, 4), "written before: kept");
	cr_assert(ij_holds(p, 4, 10, 1), "the failed page is served now");
	ij_fill(p, 7, 11, 4);
	cr_assert_eq(uvm_unmap(r, 0, NPG * PG), 0);
	cr_assert(ij_holds(s.data, 7, 11, 4), "written after, at destroy");
	cr_assert(ij_holds(s.data, 4, 16, NPG - 16));
	ij_all_gone();
}

/* pgo_put fails at flush and at destroy: the data stays in the region
 * (uvm_flush and uvm_unmap give the error, the pages stay dirty, the
 * region stays, release is not called), and is written once the store
 * works again. */
Test(inject_fault, store_put_fails, .timeout = 30)
{
	static struct tstore s;
	ij_fill(s.data, 4, 0, NPG);
	struct uvm_region *r = uvm_map_object(&ts_ops, &s, NPG * PG, RW,
	                                      UVM_MAP_SHARED);
	cr_assert_not_null(r);
	unsigned char *p = uvm_base(r);
	ij_fill(p, 8, 2, 3);
	s.put_err = EIO;
	s.put_fail = 2;
	cr_assert_eq(uvm_flush(r), -1);
	cr_assert_eq(errno, EIO);
	cr_assert_eq(s.puts, 1, "the pages after a failed one are written");
	s.put_fail = 1;
	cr_assert_eq(uvm_unmap(r, 0, NPG * PG), -1, "destroy keeps the data");
	cr_assert_eq(errno, EIO);
	cr_assert_eq(s.released, 0);
	cr_assert(ij_holds(p, 8, 2, 3), "the region is intact");
	ij_fill(p, 9, 20, 1);
	cr_assert_eq(uvm_unmap(r, 0, NPG * PG), 0);
	cr_assert_eq(s.released, 1);
	cr_assert(ij_holds(s.data, 8, 2, 3));
	cr_assert(ij_holds(s.data, 9, 20, 1));
	cr_assert(ij_holds(s.data, 4, 5, 15));
	ij_all_gone();
}

/* The file store's reads stop short (a pread returning less than asked)
 * or fail: short reads are continued, failures give SIGBUS. */
Test(inject_fault, file_short_reads_and_errors, .timeout = 30)
{
	tf_install();
	int fd = ij_file(3, NPG);
	struct uvm_region *r = uvm_map_file(fd, 0, NPG * PG, RW,
	                                    UVM_MAP_PRIVATE);
	cr_assert_not_null(r);
	unsigned char *p = uvm_base(r);
	inj_arm(INJ_FILE_SHORT, 0, -1, EINTR);
	cr_assert(ij_holds(p, 3, 0, 8), "short reads are continued");
	cr_assert_gt(inj_failed(INJ_FILE_SHORT), 0);
	inj_reset();
	cr_assert_eq(uvm_advise(r, UVM_ADV_RANDOM), 0);
	inj_arm(INJ_FILE_READ, 0, -1, EIO);
	tf_expect(p + 12 * PG, false, SIGBUS, p, 8, "file read fails");
	inj_reset();
	cr_assert(ij_holds(p, 3, 12, NPG - 12), "the failed page too");
	ij_fill(p, 4, 0, 4);                   /* 2B still works */
	cr_assert(ij_holds(p, 4, 0, 4));
	cr_assert(ij_file_holds(fd, 3, 0, NPG), "private: the file is as it was");
	cr_assert_eq(uvm_unmap(r, 0, NPG * PG), 0);
	close(fd);
	ij_all_gone();
}

/* The file shrinks under its regions: pages past the new end read as
 * zeros when fetched afterwards (cached ones keep what they showed), no
 * SIGBUS; a shared region's writes past the end are dropped at the
 * flush and the file does not grow; writes inside it are kept. */
Test(inject_fault, file_shrinks, .timeout = 30)
{
	tf_install();
	int fd = ij_file(3, NPG);
	struct uvm_region *s = uvm_map_file(fd, 0, NPG * PG, RW, UVM_MAP_SHARED);
	struct uvm_region *q = uvm_map_file(fd, 0, NPG * PG, RW,
	                                    UVM_MAP_PRIVATE);
	cr_assert_not_null(s);
	cr_assert_not_null(q);
	cr_assert_eq(uvm_advise(s, UVM_ADV_RANDOM), 0);
	cr_assert_eq(uvm_advise(q, UVM_ADV_RANDOM), 0);
	unsigned char *ps = uvm_base(s), *pq = uvm_base(q);
	cr_assert(ij_holds(ps, 3, 0, 4));
	cr_assert(ij_holds(pq, 3, 0, 4));
	cr_assert_eq(ftruncate(fd, 2 * PG + PG / 2), 0);
	cr_assert(ij_holds(ps, 3, 0, 4), "cached pages keep their data");
	for (size_t i = 4; i < NPG; i++) {
		cr_assert_eq(tf_touch(ps + i * PG, false), 0);
		cr_assert_eq(ps[i * PG], 0, "shared page %zu past the end", i);
		cr_assert_eq(pq[i * PG + 7], 0, "private page %zu", i);
	}
	ij_fill(ps, 6, 0, NPG);
	ij_fill(pq, 7, 0, NPG);
	cr_assert_eq(uvm_flush(s), 0);
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_size, 2 * PG + PG / 2, "the file never grows");
	cr_assert(ij_file_holds(fd, 6, 0, 2));
	cr_assert(ij_holds(ps, 6, 0, NPG), "the region keeps its data");
	cr_assert(ij_holds(pq, 7, 0, NPG));
	cr_assert_eq(uvm_unmap(q, 0, NPG * PG), 0);
	cr_assert_eq(uvm_unmap(s, 0, NPG * PG), 0);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_size, 2 * PG + PG / 2);
	close(fd);
	ij_all_gone();
}

/* ---- fork while a fault is being served ---------------------------- */

static atomic_int fk_in_fault;    /* the pager is inside the hook */

/* On the pager thread, under uvm_lock: hold the first fill 200 ms. */
static void fk_slow(enum inj_point p)
{
	if (p != INJ_COPY || atomic_exchange(&fk_in_fault, 1))
		return;
	usleep(200000);
}

struct fk_job {
	unsigned char *fj_p;
	size_t fj_first, fj_n;
};

static void *fk_writer(void *arg)
{
	struct fk_job *j = arg;
	for (size_t i = j->fj_first; i < j->fj_first + j->fj_n; i++)
		j->fj_p[i * PG] = 0x77;
	return NULL;
}

/* fork() while another thread's zero-fill (anonymous region) or object
 * fill (file region) is in the pager: the fork waits for it; both sides
 * then see their own writes only, the child's pager serves the child,
 * the parent's keeps serving the parent. */
static void fork_during_fault(bool file)
{
	int fd = file ? ij_file(2, NPG) : -1;
	struct uvm_region *r = file ?
		uvm_map_file(fd, 0, NPG * PG, RW, UVM_MAP_PRIVATE) :
		uvm_map_anon(NPG * PG, RW);
	cr_assert_not_null(r);
	cr_assert_eq(uvm_advise(r, UVM_ADV_RANDOM), 0);
	unsigned char *p = uvm_base(r);
	ij_fill(p, 1, 0, 4);
	atomic_store(&fk_in_fault, 0);
	inj_set_cb(fk_slow);
	struct fk_job j = { p, 8, 8 };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, fk_writer, &j), 0);
	while (!atomic_load(&fk_in_fault))
		usleep(1000);
	pid_t pid = fork();               /* the fault is in flight */
	if (pid == 0) {
		inj_reset();
		/* the writer's pages: written before the fork or not at all
		 * (in a file region the child fetches the object pages the
		 * parent's writer has not reached yet; the parent adopts
		 * them: tests/pager/test_fork_object.c) */
		for (size_t i = 8; i < 16; i++)
			if (p[i * PG] != 0x77 &&
			    p[i * PG] != (file ? ij_byte(2, i, 0) : 0))
				_exit(10);
		if (!ij_holds(p, 1, 0, 4))
			_exit(11);
		/* the child's own faults, object pages the parent never
		 * fetched included */
		ij_fill(p, 5, 0, NPG);
		if (!ij_holds(p, 5, 0, NPG))
			_exit(12);
		_exit(0);
	}
	cr_assert_gt(pid, 0);
	pthread_join(t, NULL);
	inj_reset();
	cr_assert_eq(pu_wait(pid), 0, "child");
	for (size_t i = 8; i < 16; i++)
		cr_assert_eq(p[i * PG], 0x77, "parent page %zu", i);
	cr_assert(ij_holds(p, 1, 0, 4), "the child's writes stay there");
	ij_fill(p, 6, 16, 16);
	cr_assert(ij_holds(p, 6, 16, 16));
	if (file)
		cr_assert(ij_file_holds(fd, 2, 0, NPG));
	cr_assert(pu_leases_drained());
	cr_assert_eq(uvm_unmap(r, 0, NPG * PG), 0);
	if (fd >= 0)
		close(fd);
	/* the object pages the child fetched into the shared window and
	 * the parent never touched went with the object */
	ij_all_gone();
}

Test(inject_fault, fork_during_zero_fill, .timeout = 30)
{
	fork_during_fault(false);
}

Test(inject_fault, fork_during_object_fill, .timeout = 30)
{
	fork_during_fault(true);
}

/* The child's set-up after fork fails (no pool file for it): its
 * regions become inaccessible (SIGSEGV), never the parent's pages; the
 * parent goes on as before. */
Test(inject_fault, fork_child_setup_fails, .timeout = 30)
{
	struct uvm_region *r = uvm_map_anon(NPG * PG, RW);
	cr_assert_not_null(r);
	unsigned char *p = uvm_base(r);
	ij_fill(p, 1, 0, NPG);
	inj_arm(INJ_POOL_FILE, 0, 1, ENOSPC);   /* only the child makes one */
	pid_t pid = fork();
	if (pid == 0) {
		if (pu_probe((volatile char *)p, 1) != SIGSEGV)
			_exit(10);
		if (pu_probe((volatile char *)p + 5 * PG, 0) != SIGSEGV)
			_exit(11);
		_exit(0);
	}
	cr_assert_gt(pid, 0);
	cr_assert_eq(pu_wait(pid), 0, "child");
	cr_assert_eq(inj_failed(INJ_POOL_FILE), 0, "the parent made no file");
	inj_reset();
	cr_assert(ij_holds(p, 1, 0, NPG));
	ij_fill(p, 2, 0, NPG);
	cr_assert(ij_holds(p, 2, 0, NPG));
	cr_assert_eq(uvm_unmap(r, 0, NPG * PG), 0);
	cr_assert(pu_leases_drained());
	ij_all_gone();
}
