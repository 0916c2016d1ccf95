/*
 * Failure injection, API calls: every call site of each injection
 * point is failed in turn (the first call, then the second, ...) under
 * uvm_map_anon, uvm_copy, uvm_map_file, uvm_map_object, uvm_loan_view,
 * uvm_loan_into, uvm_wire, uvm_flush and uvm_unmap.  A failed call must
 * return its documented error and change nothing (mappings,
 * descriptors, pool pages and memory, regions, loans, contents), and
 * everything must work once the failure stops; at the end of each case
 * every pool page is back.
 */
#include <sys/resource.h>

#include "test_inject.h"

#define NPG 32

/* One case: set-up, the call under test (true: it succeeded), a check
 * that nothing changed and everything still works, tear-down. */
struct ij_case {
	const char *c_name;
	void (*c_setup)(void);
	bool (*c_call)(void);
	void (*c_check)(void);   /* after a failed call */
	void (*c_teardown)(void);
	int c_errno;             /* the error a failed call must give */
	bool c_cache;            /* a failed call may leave object pages
	                            fetched into the cache (documented) */
};

/* Fail point p at its first, second, ... call during c_call until the
 * call goes through without reaching it.  => failures seen (calls that
 * failed as they should). */
static int ij_run(const struct ij_case *c, enum inj_point p, int err)
{
	int failures = 0;
	/* once without failures: the allocators' caches (slab chunks) are
	 * filled then, they are not what a failed call changes */
	c->c_setup();
	cr_assert(c->c_call(), "%s without injection", c->c_name);
	c->c_teardown();
	for (int skip = 0; skip < 200; skip++) {
		c->c_setup();
		struct ij_snap before, after;
		ij_snap(&before);
		inj_arm(p, skip, 1, err);
		errno = 0;
		bool ok = c->c_call();
		int e = errno;
		unsigned failed = inj_failed(p);
		inj_reset();
		char what[96];
		snprintf(what, sizeof what, "%s, point %d, skip %d",
		         c->c_name, p, skip);
		if (!ok) {
			cr_assert_eq(failed, 1, "%s: failed with no injection "
			             "(skip %d): %s", c->c_name, skip, strerror(e));
			cr_assert_eq(e, c->c_errno, "%s, point %d skip %d: "
			             "errno %s", c->c_name, p, skip, strerror(e));
			ij_snap(&after);
			if (c->c_cache) {
				cr_assert_geq(after.sn_pages, before.sn_pages);
				after.sn_pages = before.sn_pages;
				after.sn_bytes = before.sn_bytes;
			}
			ij_same(&before, &after, what);
			c->c_check();
			failures++;
		}
		c->c_teardown();
		ij_all_gone();
		if (ok && failed == 0)
			return failures;
	}
	cr_assert_fail("%s: point %d still reached after 200 calls",
	               c->c_name, p);
	return failures;
}

/* ---- the regions the cases work on ---------------------------------- */

static struct uvm_region *ra, *rb, *rc;   /* rc: made by the call */
static struct uvm_loan *rl;
static int rfd = -1;

static void teardown(void)
{
	if (rl)
		cr_assert_eq(uvm_unloan(rl), 0);
	rl = NULL;
	struct uvm_region **all[] = { &rc, &rb, &ra };
	for (size_t k = 0; k < 3; k++) {
		if (*all[k])
			cr_assert_eq(uvm_unmap(*all[k], 0, uvm_size(*all[k])), 0);
		*all[k] = NULL;
	}
	if (rfd >= 0)
		close(rfd);
	rfd = -1;
}

/* ra: an anonymous region, half written, with a copy rb sharing it. */
static void setup_anon(void)
{
	ra = uvm_map_anon(NPG * PG, RW);
	cr_assert_not_null(ra);
	ij_fill(uvm_base(ra), 1, 0, NPG / 2);
	rb = uvm_copy(ra);
	cr_assert_not_null(rb);
	ij_fill(uvm_base(ra), 2, 0, 4);   /* ra's own copies of 4 pages */
}

/* ra still holds its data and every kind of fault works on it. */
static void check_anon(void)
{
	unsigned char *a = uvm_base(ra), *b = uvm_base(rb);
	cr_assert(ij_holds(a, 2, 0, 4));
	cr_assert(ij_holds(a, 1, 4, NPG / 2 - 4));
	cr_assert(ij_holds(b, 1, 0, NPG / 2));
	ij_fill(a, 3, 0, NPG);            /* 1A, 1B, zero fill */
	cr_assert(ij_holds(a, 3, 0, NPG));
	cr_assert(ij_holds(b, 1, 0, NPG / 2));
	ij_fill(b, 4, 0, NPG);
	cr_assert(ij_holds(a, 3, 0, NPG));
	cr_assert(ij_holds(b, 4, 0, NPG));
}

/* The same, rb written first: a failed call that changed rb's pages
 * must have left the ones it shares with ra write-protected (while ra
 * still shares them, a write in place would reach ra). */
static void check_anon_dst_first(void)
{
	unsigned char *a = uvm_base(ra), *b = uvm_base(rb);
	cr_assert(ij_holds(b, 1, 0, NPG / 2));
	ij_fill(b, 4, 0, NPG);
	cr_assert(ij_holds(a, 2, 0, 4));
	cr_assert(ij_holds(a, 1, 4, NPG / 2 - 4));
	ij_fill(a, 3, 0, NPG);
	cr_assert(ij_holds(a, 3, 0, NPG));
	cr_assert(ij_holds(b, 4, 0, NPG));
}

static bool call_map_anon(void)
{
	rc = uvm_map_anon(NPG * PG, RW);
	return rc != NULL;
}

static bool call_copy(void)
{
	rc = uvm_copy(ra);
	return rc != NULL;
}

static bool call_loan_view(void)
{
	rl = uvm_loan_view(ra, 0, NPG * PG);
	return rl != NULL;
}

static bool call_loan_into(void)
{
	/* rb's first half gets ra's pages 8..23 */
	return uvm_loan_into(rb, 0, ra, 8 * PG, (NPG / 2) * PG) == 0;
}

static bool call_wire(void)
{
	return uvm_wire(ra, 0, NPG * PG) == 0;
}

static const enum inj_point ij_api_points[] = {
	INJ_MEM, INJ_MMAP, INJ_REGISTER, INJ_WP, INJ_COPY,
	INJ_POOL_READ, INJ_POOL_WRITE,
};
#define NPOINTS (sizeof ij_api_points / sizeof ij_api_points[0])

/* Bits of ij_api_points, for the points a call must reach. */
enum {
	P_MEM = 1 << 0, P_MMAP = 1 << 1, P_REGISTER = 1 << 2, P_WP = 1 << 3,
	P_COPY = 1 << 4, P_READ = 1 << 5, P_WRITE = 1 << 6,
};

/* Fail each point of ij_api_points in turn; those in `reached` must
 * have failed the call at least once (the case reaches them). */
static void run_all(struct ij_case c, unsigned reached)
{
	static const char *const what[NPOINTS] = {
		"allocations", "mmap", "register", "write protect",
		"UFFDIO_COPY", "pool read", "pool write",
	};
	for (size_t k = 0; k < NPOINTS; k++) {
		int n = ij_run(&c, ij_api_points[k], ENOMEM);
		if (reached & 1u << k)
			cr_expect_gt(n, 0, "%s: %s never failed", c.c_name,
			             what[k]);
	}
}

/* A case on setup_anon's regions, failing with ENOMEM. */
static struct ij_case anon_case(const char *name, bool (*call)(void))
{
	return (struct ij_case){ name, setup_anon, call, check_anon,
	                         teardown, ENOMEM, false };
}

Test(inject, map_anon, .timeout = 60)
{
	run_all(anon_case("uvm_map_anon", call_map_anon),
	        P_MEM | P_MMAP | P_REGISTER);
}

Test(inject, copy, .timeout = 60)
{
	run_all(anon_case("uvm_copy", call_copy),
	        P_MEM | P_MMAP | P_REGISTER | P_WP);
}

Test(inject, loan_view, .timeout = 60)
{
	run_all(anon_case("uvm_loan_view", call_loan_view), P_MMAP | P_WP);
}

/* Every point, the remap of dst and its write protection included
 * (mmap, register, write protect): a failure there must give dst its
 * old pages back, data and all. */
Test(inject, loan_into, .timeout = 60)
{
	struct ij_case c = anon_case("uvm_loan_into", call_loan_into);
	run_all(c, P_MEM | P_MMAP | P_REGISTER | P_WP | P_WRITE);
	c.c_check = check_anon_dst_first;
	run_all(c, P_MMAP | P_REGISTER | P_WP);
}

/* The last resort: dst's mapping cannot be restored either (every
 * UFFDIO_REGISTER fails).  dst's pages are poisoned (SIGBUS: never the
 * loaned data, never garbage), src keeps its data and works, and
 * everything is freed with the regions. */
Test(inject, loan_into_restore_fails, .timeout = 30)
{
	setup_anon();
	inj_arm(INJ_REGISTER, 0, -1, ENOMEM);
	errno = 0;
	cr_assert_eq(uvm_loan_into(rb, 0, ra, 8 * PG, (NPG / 2) * PG), -1);
	cr_assert_eq(errno, ENOMEM);
	cr_assert_geq(inj_failed(INJ_REGISTER), 2, "the remap and its undo");
	inj_reset();
	unsigned char *a = uvm_base(ra), *b = uvm_base(rb);
	for (size_t pg = 0; pg < NPG / 2; pg++)
		cr_assert_eq(pu_probe((volatile char *)b + pg * PG, 0), SIGBUS,
		             "dst page %zu", pg);
	cr_assert(ij_holds(a, 2, 0, 4));
	cr_assert(ij_holds(a, 1, 4, NPG / 2 - 4));
	ij_fill(a, 3, 0, NPG);
	cr_assert(ij_holds(a, 3, 0, NPG));
	ij_fill(b, 4, NPG / 2, NPG / 2);   /* dst's other half works */
	cr_assert(ij_holds(b, 4, NPG / 2, NPG / 2));
	teardown();
	ij_all_gone();
}

Test(inject, wire, .timeout = 60)
{
	run_all(anon_case("uvm_wire", call_wire), P_COPY);
}

/* ---- file regions ----------------------------------------------------- */

static void setup_file(void)
{
	rfd = ij_file(5, NPG);
	ra = uvm_map_file(rfd, 0, NPG * PG, RW, UVM_MAP_SHARED);
	cr_assert_not_null(ra);
	rb = uvm_map_file(rfd, 0, NPG * PG, RW, UVM_MAP_PRIVATE);
	cr_assert_not_null(rb);
	unsigned char *a = uvm_base(ra);
	cr_assert(ij_holds(a, 5, 0, NPG / 2));   /* half cached */
	ij_fill(a, 6, 0, 2);                     /* two dirty pages */
	ij_fill(uvm_base(rb), 7, 2, 2);          /* two promoted */
}

static void check_file(void)
{
	unsigned char *a = uvm_base(ra), *b = uvm_base(rb);
	cr_assert(ij_holds(a, 6, 0, 2));
	cr_assert(ij_holds(a, 5, 2, NPG - 2));
	cr_assert(ij_holds(b, 7, 2, 2));
	cr_assert(ij_holds(b, 5, 4, NPG - 4));
	ij_fill(a, 8, 0, NPG);
	ij_fill(b, 9, 0, NPG);
	cr_assert(ij_holds(a, 8, 0, NPG));
	cr_assert(ij_holds(b, 9, 0, NPG));
	cr_assert_eq(uvm_flush(ra), 0);
	cr_assert(ij_file_holds(rfd, 8, 0, NPG));
}

/* The same, rb (private) written first: it must not write the object's
 * pages in place (ra and the file would see it). */
static void check_file_dst_first(void)
{
	unsigned char *a = uvm_base(ra), *b = uvm_base(rb);
	cr_assert(ij_holds(b, 7, 2, 2));
	cr_assert(ij_holds(b, 5, 4, NPG - 4));
	ij_fill(b, 9, 0, NPG);
	cr_assert(ij_holds(a, 6, 0, 2));
	cr_assert(ij_holds(a, 5, 2, NPG - 2));
	ij_fill(a, 8, 0, NPG);
	cr_assert(ij_holds(a, 8, 0, NPG));
	cr_assert(ij_holds(b, 9, 0, NPG));
	cr_assert_eq(uvm_flush(ra), 0);
	cr_assert(ij_file_holds(rfd, 8, 0, NPG));
}

static bool call_map_file(void)
{
	rc = uvm_map_file(rfd, 0, NPG * PG, RW, UVM_MAP_SHARED);
	return rc != NULL;
}

static bool call_copy_file(void)
{
	rc = uvm_copy(rb);
	return rc != NULL;
}

static bool call_flush(void)
{
	if (uvm_flush(ra))
		return false;
	/* a successful flush wrote the two dirty pages */
	cr_assert(ij_file_holds(rfd, 6, 0, 2));
	return true;
}

static bool call_loan_file(void)
{
	rl = uvm_loan_view(ra, 0, NPG * PG);
	return rl != NULL;
}

/* rb (private) gets ra's (shared) pages 8..23: half of them cached,
 * half fetched from the file by the call. */
static bool call_loan_into_file(void)
{
	return uvm_loan_into(rb, 0, ra, 8 * PG, (NPG / 2) * PG) == 0;
}

/* A case on setup_file's regions; cache: a failed call may leave object
 * pages fetched into the cache. */
static struct ij_case file_case(const char *name, bool (*call)(void),
                                int err, bool cache)
{
	return (struct ij_case){ name, setup_file, call, check_file,
	                         teardown, err, cache };
}

Test(inject, map_file, .timeout = 60)
{
	run_all(file_case("uvm_map_file", call_map_file, ENOMEM, false),
	        P_MEM | P_MMAP | P_WP);
}

Test(inject, copy_file, .timeout = 60)
{
	run_all(file_case("uvm_copy (file)", call_copy_file, ENOMEM, false),
	        P_MMAP);
}

Test(inject, loan_file, .timeout = 60)
{
	run_all(file_case("uvm_loan_view (file)", call_loan_file, ENOMEM,
	                  true), P_MMAP | P_WP);
	struct ij_case c = file_case("uvm_loan_view (file)", call_loan_file,
	                             EIO, true);
	cr_expect_gt(ij_run(&c, INJ_FILE_READ, EIO), 0, "file read");
}

Test(inject, loan_into_file, .timeout = 60)
{
	struct ij_case m = file_case("uvm_loan_into (file)",
	                             call_loan_into_file, ENOMEM, true);
	run_all(m, P_MMAP | P_REGISTER | P_WP);
	m.c_check = check_file_dst_first;
	run_all(m, P_MMAP | P_REGISTER | P_WP);
	struct ij_case c = file_case("uvm_loan_into (file)",
	                             call_loan_into_file, EIO, true);
	cr_expect_gt(ij_run(&c, INJ_FILE_READ, EIO), 0, "file read");
}

/* A flush that cannot write a page returns the store's error and keeps
 * the page dirty (nothing is lost): the next flush writes it. */
Test(inject, flush_write_error, .timeout = 60)
{
	struct ij_case c = file_case("uvm_flush", call_flush, EIO, false);
	cr_assert_gt(ij_run(&c, INJ_FILE_WRITE, EIO), 0);
	c.c_errno = ENOSPC;
	cr_assert_gt(ij_run(&c, INJ_FILE_WRITE, ENOSPC), 0);
	c.c_errno = ENOMEM;
	cr_assert_gt(ij_run(&c, INJ_WP, ENOMEM), 0);
}

/* The last region of a shared object goes: its dirty pages are written
 * back first; if that fails, uvm_unmap fails with the store's error and
 * the region stays, with its data, until a later unmap succeeds. */
static bool call_destroy_shared(void)
{
	if (uvm_unmap(ra, 0, NPG * PG))
		return false;
	ra = NULL;
	cr_assert(ij_file_holds(rfd, 6, 0, 2));
	return true;
}

Test(inject, destroy_write_error, .timeout = 60)
{
	struct ij_case c = file_case("uvm_unmap (shared, last)",
	                             call_destroy_shared, EIO, false);
	cr_assert_gt(ij_run(&c, INJ_FILE_WRITE, EIO), 0);
}

/* The pool grows by files when the current one is full (they are only
 * as big as RLIMIT_FSIZE allows).  If a new file cannot be made (memfd
 * or ftruncate fails: ENOSPC, EMFILE) the call that needed the space
 * fails with ENOMEM and nothing changes; the next one grows the pool. */
/* In a child (growth tests): pool files of 64 pages at most. */
static void child_limit_pool(void)
{
	struct rlimit lim = { 64 * PG, 64 * PG };
	if (setrlimit(RLIMIT_FSIZE, &lim))
		_exit(20);
}

/* In a child, last: exit 0 if every pool page is back, else 31. */
static void child_exit_pages_left(void)
{
	pthread_mutex_lock(&uvm_pager.up_lock);
	uint64_t left = uvm_pager.up_pool.p_pages;
	pthread_mutex_unlock(&uvm_pager.up_lock);
	_exit(left ? 31 : 0);
}

/* Run fn in a child; it must exit 0 (else its number says where). */
static void run_in_child(void (*fn)(void))
{
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		fn();
	int st = pu_wait(pid);
	cr_assert_eq(st, 0, "child: %d", st);
}

static void growth_child(void)
{
	child_limit_pool();
	struct uvm_region *r = uvm_map_anon(48 * PG, RW);
	if (!r)
		_exit(21);
	ij_fill(uvm_base(r), 1, 0, 40);   /* a copy needs a window */
	struct ij_snap a, b;
	ij_snap(&a);   /* twice: the first may grow the test's own heap */
	ij_snap(&a);
	inj_arm(INJ_POOL_FILE, 0, 1, ENOSPC);
	errno = 0;
	if (uvm_map_anon(32 * PG, RW) || errno != ENOMEM)
		_exit(22);
	if (inj_failed(INJ_POOL_FILE) != 1)
		_exit(23);
	inj_arm(INJ_POOL_FILE, 0, 1, EMFILE);
	if (uvm_copy(r) || errno != ENOMEM)
		_exit(24);
	inj_reset();
	ij_snap(&b);
	if (a.sn_fds != b.sn_fds || a.sn_runs != b.sn_runs ||
	    a.sn_pages != b.sn_pages || a.sn_regions != b.sn_regions)
		_exit(25);
	if (a.sn_maps != b.sn_maps)
		_exit(32);
	struct uvm_region *s = uvm_map_anon(40 * PG, RW);   /* a new file */
	if (!s || ij_fds() != a.sn_fds + 1)
		_exit(26);
	ij_fill(uvm_base(s), 2, 0, 32);
	if (!ij_holds(uvm_base(s), 2, 0, 32) || !ij_holds(uvm_base(r), 1, 0, 40))
		_exit(27);
	/* a COW fault needing a window (40 pages, 24 are left) while growth
	 * fails: SIGBUS for the writer, the source keeps its data */
	struct uvm_region *c = uvm_copy(s);
	inj_arm(INJ_POOL_FILE, 0, -1, ENOSPC);
	if (!c || pu_probe(uvm_base(c), 1) != SIGBUS)
		_exit(28);
	inj_reset();
	if (!ij_holds(uvm_base(s), 2, 0, 32) || !ij_holds(uvm_base(c), 2, 0, 32))
		_exit(29);                     /* the copy lost nothing */
	ij_fill(uvm_base(c), 3, 0, 32);        /* and works again */
	if (!ij_holds(uvm_base(c), 3, 0, 32) || !ij_holds(uvm_base(s), 2, 0, 32))
		_exit(30);
	uvm_unmap(c, 0, 40 * PG);
	uvm_unmap(s, 0, 40 * PG);
	uvm_unmap(r, 0, 48 * PG);
	child_exit_pages_left();
}

Test(inject, pool_growth_fails, .timeout = 30)
{
	run_in_child(growth_child);
}

/* uvm_loan_into needs a window for dst's zero pages: when the pool
 * cannot grow for it, the call fails with ENOMEM and changes nothing;
 * the next one grows the pool. */
static void loan_growth_child(void)
{
	child_limit_pool();
	struct uvm_region *s = uvm_map_anon(48 * PG, RW);
	struct uvm_region *d = uvm_map_anon(12 * PG, RW);   /* 4 pages left */
	if (!s || !d)
		_exit(21);
	unsigned char *ps = uvm_base(s), *pd = uvm_base(d);
	ij_fill(ps, 1, 0, 8);                /* pages 8..47 never touched */
	ij_fill(pd, 2, 0, 12);
	struct ij_snap a, b;
	ij_snap(&a);   /* twice: the first may grow the test's own heap */
	ij_snap(&a);
	inj_arm(INJ_POOL_FILE, 0, 1, ENOSPC);
	errno = 0;
	if (uvm_loan_into(d, 0, s, 4 * PG, 8 * PG) == 0 || errno != ENOMEM)
		_exit(22);
	if (inj_failed(INJ_POOL_FILE) != 1)
		_exit(23);
	inj_reset();
	ij_snap(&b);
	if (a.sn_fds != b.sn_fds || a.sn_runs != b.sn_runs ||
	    a.sn_pages != b.sn_pages || a.sn_maps != b.sn_maps ||
	    a.sn_bytes != b.sn_bytes)
		_exit(24);
	if (!ij_holds(pd, 2, 0, 12) || !ij_holds(ps, 1, 0, 8))
		_exit(25);
	if (uvm_loan_into(d, 0, s, 4 * PG, 8 * PG))   /* a new file */
		_exit(26);
	if (memcmp(pd, ps + 4 * PG, 4 * PG) || !ij_holds(pd, 2, 8, 4))
		_exit(27);
	for (size_t k = 4 * PG; k < 8 * PG; k++)
		if (pd[k])
			_exit(28);
	uvm_unmap(d, 0, 12 * PG);
	uvm_unmap(s, 0, 48 * PG);
	child_exit_pages_left();
}

Test(inject, loan_into_pool_growth_fails, .timeout = 30)
{
	run_in_child(loan_growth_child);
}

/* The pager fails to start (no pool file, no userfaultfd): the first
 * call fails, nothing is left open, and the next call starts it. */
Test(inject, start_fails, .timeout = 30)
{
	int fds = ij_fds();
	long maps = pu_maps();
	inj_arm(INJ_POOL_FILE, 0, 1, ENOSPC);
	errno = 0;
	cr_assert_null(uvm_map_anon(NPG * PG, RW));
	cr_assert_eq(errno, ENOSPC);
	inj_reset();
	cr_assert_eq(ij_fds(), fds);
	cr_assert_eq(pu_maps(), maps);
	inj_arm(INJ_POOL_FILE, 1, 1, ENOSPC);   /* the second file */
	cr_assert_null(uvm_map_anon(NPG * PG, RW));
	inj_reset();
	cr_assert_eq(ij_fds(), fds);
	struct uvm_region *r = uvm_map_anon(NPG * PG, RW);
	cr_assert_not_null(r);
	ij_fill(uvm_base(r), 1, 0, NPG);
	cr_assert(ij_holds(uvm_base(r), 1, 0, NPG));
	cr_assert_eq(uvm_unmap(r, 0, NPG * PG), 0);
	ij_all_gone();
}
