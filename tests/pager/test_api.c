/*
 * The public API: arguments, advice, wiring, statistics, protection,
 * and SIGBUS for a fault the pager cannot serve.
 */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "pager/pager.h"
#include "pager_helper.h"

#define EXPECT_EINVAL(call) do { \
	errno = 0; \
	cr_assert_eq((call), -1, #call); \
	cr_assert_eq(errno, EINVAL, #call ": errno %d", errno); \
} while (0)

Test(api, bad_arguments)
{
	errno = 0;
	cr_assert_null(uvm_map_anon(0, PROT_READ));
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(uvm_map_anon(PG + 1, PROT_READ));
	cr_assert_null(uvm_map_anon(PG, 0x100));
	cr_assert_null(uvm_map_anon((size_t)-1 & ~(size_t)(PG - 1), PROT_READ));
	cr_assert_eq(errno, EINVAL);
	errno = 0;
	cr_assert_null(uvm_copy(NULL));
	cr_assert_eq(errno, EINVAL);
	char junk[256] = { 0 };
	cr_assert_null(uvm_copy((struct uvm_region *)junk));
	cr_assert_null(uvm_base(NULL));
	cr_assert_eq(uvm_size((struct uvm_region *)junk), 0);

	struct uvm_region *r = uvm_map_anon(8 * PG, PROT_READ | PROT_WRITE);
	cr_assert_not_null(r);
	struct uvm_stats st;
	EXPECT_EINVAL(uvm_unmap(r, 1, PG));
	EXPECT_EINVAL(uvm_unmap(r, 0, PG - 1));
	EXPECT_EINVAL(uvm_unmap(r, 0, 0));
	EXPECT_EINVAL(uvm_unmap(r, 8 * PG, PG));
	EXPECT_EINVAL(uvm_unmap(r, 4 * PG, 5 * PG));
	EXPECT_EINVAL(uvm_unmap(r, PG, (size_t)-1 & ~(size_t)(PG - 1)));
	EXPECT_EINVAL(uvm_unmap(NULL, 0, PG));
	EXPECT_EINVAL(uvm_advise(r, 3));
	EXPECT_EINVAL(uvm_advise(r, -1));
	EXPECT_EINVAL(uvm_advise((struct uvm_region *)junk, 0));
	EXPECT_EINVAL(uvm_wire(r, 0, 9 * PG));
	EXPECT_EINVAL(uvm_wire(r, 3, PG));
	EXPECT_EINVAL(uvm_stats(r, NULL));
	EXPECT_EINVAL(uvm_stats(NULL, &st));
	cr_assert_eq(uvm_size(r), 8 * PG);
	cr_assert_eq(uvm_unmap(r, 0, 8 * PG), 0);
	/* a destroyed region is an unknown pointer from then on */
	EXPECT_EINVAL(uvm_unmap(r, 0, 8 * PG));
	EXPECT_EINVAL(uvm_stats(r, &st));
	cr_assert_null(uvm_copy(r));
}

static uint64_t anons(struct uvm_region *r)
{
	struct uvm_stats st;
	cr_assert_eq(uvm_stats(r, &st), 0);
	return st.us_anons;
}

/* Fault-around follows UVM's advice table. */
Test(api, advice_sets_fault_around)
{
	struct { int adv; uint64_t n; } want[] = {
		{ UVM_ADV_RANDOM, 1 },      /* the page alone */
		{ UVM_ADV_NORMAL, 8 },      /* 3 behind, 4 ahead */
		{ UVM_ADV_SEQUENTIAL, 8 },  /* 7 ahead */
	};
	for (int k = 0; k < 3; k++) {
		struct uvm_region *r = uvm_map_anon(64 * PG, PROT_READ);
		cr_assert_eq(uvm_advise(r, want[k].adv), 0);
		volatile char *b = uvm_base(r);
		(void)b[20 * PG];
		cr_assert_eq(anons(r), want[k].n, "advice %d", want[k].adv);
		/* sequential looks ahead only: page 19 is still empty */
		(void)b[19 * PG];
		cr_assert_eq(anons(r), want[k].n + (k != 1), "advice %d",
		             want[k].adv);
		uvm_unmap(r, 0, 64 * PG);
	}
}

/* AddressSanitizer turns mlock() into a no-op: VmLck does not move. */
#ifdef __SANITIZE_ADDRESS__
#define MLOCK_WORKS 0
#else
#define MLOCK_WORKS 1
#endif

static long vm_locked_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

Test(api, wire_populates_and_locks)
{
	struct uvm_region *r = uvm_map_anon(64 * PG, PROT_READ | PROT_WRITE);
	long before = vm_locked_kb();
	cr_assert_eq(uvm_wire(r, 8 * PG, 32 * PG), 0, "%s", strerror(errno));
	cr_assert_eq(anons(r), 32);
	cr_assert(!MLOCK_WORKS || vm_locked_kb() - before >= 32 * 4);
	char *b = uvm_base(r);
	b[10 * PG] = 3;   /* written in place, no further page */
	cr_assert_eq(anons(r), 32);
	/* after a copy the wired page is copied on write, and stays locked */
	struct uvm_region *c = uvm_copy(r);
	b[10 * PG] = 4;
	cr_assert_eq(((char *)uvm_base(c))[10 * PG], 3);
	cr_assert(!MLOCK_WORKS || vm_locked_kb() - before >= 32 * 4);
	/* a range across a released page: each side is locked */
	cr_assert_eq(uvm_unmap(r, 50 * PG, PG), 0);
	cr_assert_eq(uvm_wire(r, 44 * PG, 12 * PG), 0, "%s", strerror(errno));
	cr_assert_eq(anons(r), 32 + 11);
	uvm_unmap(c, 0, 64 * PG);
	uvm_unmap(r, 0, 64 * PG);
	cr_assert(!MLOCK_WORKS || vm_locked_kb() == before);
}

Test(api, stats_count_fault_cases)
{
	struct uvm_region *r = uvm_map_anon(16 * PG, PROT_READ | PROT_WRITE);
	uvm_advise(r, UVM_ADV_RANDOM);
	char *b = uvm_base(r);
	b[0] = 1;
	b[PG] = 1;
	struct uvm_region *c = uvm_copy(r);
	char *q = uvm_base(c);
	q[0] = 2;           /* 1B: shared */
	b[PG] = 3;          /* 1B in r: its amap was shared too */
	q[PG] = 4;          /* 1A: r no longer shares page 1 */
	struct uvm_stats sr, sc;
	uvm_stats(r, &sr);
	uvm_stats(c, &sc);
	cr_assert_eq(sr.us_fault_zero, 2);
	cr_assert_eq(sr.us_fault_around, 0);
	cr_assert_eq(sr.us_copies, 1);
	cr_assert_eq(sr.us_fault_1b, 1);
	cr_assert_eq(sc.us_fault_1b, 1);
	cr_assert_eq(sc.us_fault_1a, 1);
	cr_assert_eq(sc.us_fault_2a + sc.us_fault_2b, 0);
	cr_assert_eq(sr.us_anons, 2);
	cr_assert_eq(sr.us_shared, 0);
	cr_assert_eq(sr.us_pool_pages, 4);
	cr_assert_geq(sr.us_maps, 1);
	cr_assert_eq(b[0], 1);
	cr_assert_eq(q[PG], 4);
}

Test(api, protection_and_release)
{
	struct uvm_region *r = uvm_map_anon(4 * PG, PROT_READ);
	char *b = uvm_base(r);
	cr_assert_eq(pu_probe(b, 0), 0);
	cr_assert_eq(b[PG], 0);
	cr_assert_eq(pu_probe(b, 1), SIGSEGV);
	cr_assert_eq(uvm_unmap(r, PG, PG), 0);
	cr_assert_eq(pu_probe(b + PG, 0), SIGSEGV);
	cr_assert_eq(pu_probe(b + 2 * PG, 0), 0);
	struct uvm_region *c = uvm_copy(r);   /* the hole is copied */
	cr_assert_eq(pu_probe((char *)uvm_base(c) + PG, 0), SIGSEGV);
	cr_assert_eq(uvm_unmap(r, 0, 4 * PG), 0);
	cr_assert_eq(pu_probe(b, 0), SIGSEGV);
	cr_assert_eq(uvm_unmap(c, 0, 4 * PG), 0);
}

/* Page i of a pattern region: the pattern seeded with i. */
static void api_expect_pages(const struct uvm_region *r, size_t first,
                             size_t n, size_t step)
{
	const unsigned char *b = uvm_base((struct uvm_region *)r);
	for (size_t i = first; i < first + n; i += step)
		ph_expect(b + i * PG, PG, (unsigned)i);
}

/* Freed pages are punched out of the pool in runs (pool.c): whatever the
 * order and shape of the frees, the pool holds exactly the pages some
 * region still holds once each call returns (the run never outlives
 * the call), and the pages next to a freed run keep their data. */
Test(api, unmap_returns_pool_memory)
{
	const size_t n = 256;
	cr_assert_eq(pu_pool_bytes(), 0);
	struct uvm_region *r = uvm_map_anon(n * PG, RW);
	cr_assert_not_null(r);
	unsigned char *b = uvm_base(r);
	for (size_t i = 0; i < n; i++)
		ph_fill(b + i * PG, PG, (unsigned)i);
	cr_assert_eq(pu_pool_bytes(), (long long)(n * PG));
	struct uvm_region *c = uvm_copy(r);   /* shares every page */
	cr_assert_not_null(c);
	cr_assert_eq(uvm_unmap(r, 0, 64 * PG), 0);    /* c still holds them */
	cr_assert_eq(pu_pool_bytes(), (long long)(n * PG));
	cr_assert_eq(uvm_unmap(c, 0, 32 * PG), 0);    /* nobody holds 0..31 */
	cr_assert_eq(pu_pool_bytes(), (long long)((n - 32) * PG));
	for (size_t i = 33; i < 64; i += 2)           /* one page at a time */
		cr_assert_eq(uvm_unmap(c, i * PG, PG), 0);
	cr_assert_eq(pu_pool_bytes(), (long long)((n - 48) * PG));
	api_expect_pages(c, 32, 32, 2);               /* the neighbours */
	/* one call freeing runs broken by kept pages: r keeps every fourth
	 * page of 64..127, c lets all of them go */
	for (size_t i = 64; i < 128; i += 4)
		cr_assert_eq(uvm_unmap(r, (i + 1) * PG, 3 * PG), 0);
	cr_assert_eq(pu_pool_bytes(), (long long)((n - 48) * PG));
	cr_assert_eq(uvm_unmap(c, 64 * PG, 64 * PG), 0);
	cr_assert_eq(pu_pool_bytes(), (long long)((n - 96) * PG));
	api_expect_pages(r, 64, 64, 4);
	/* one call freeing pages of two windows in turn: c's even pages of
	 * 128..255 are its alone, its odd ones COW copies (its COW window) */
	unsigned char *cb = uvm_base(c);
	for (size_t i = 128; i < n; i += 2)
		cr_assert_eq(uvm_unmap(r, i * PG, PG), 0);
	for (size_t i = 129; i < n; i += 2)
		ph_fill(cb + i * PG, PG, (unsigned)i + 1);
	/* the pager wakes a writer before it drops uvm_lock (and punches
	 * what the fault freed, a collapse's old pages): uvm_stats waits */
	uint64_t held = ph_stats(c).us_pool_pages;
	long long pool = pu_pool_bytes();
	cr_assert_eq(pool, (long long)(held * PG), "pool %lld pages, anons %llu",
	             pool / PG, (unsigned long long)held);
	cr_assert_eq(uvm_unmap(c, 128 * PG, (n - 128) * PG), 0);
	cr_assert_eq(pu_pool_bytes(), (long long)(96 * PG));
	api_expect_pages(r, 129, n - 129, 2);
	api_expect_pages(c, 32, 32, 2);
	cr_assert_eq(uvm_unmap(c, 0, n * PG), 0);     /* r holds the rest */
	cr_assert_eq(pu_pool_bytes(), (long long)(80 * PG));
	cr_assert_eq(uvm_unmap(r, 0, n * PG), 0);
	cr_assert_eq(pu_pool_bytes(), 0);
}

/* Faults the pager cannot serve (here: out of memory for an anon, by
 * failure injection) raise SIGBUS in the faulting thread; they neither
 * hang nor corrupt the page's other side, and the page is left as it
 * was: the next access is served. */
Test(api, unservable_faults_raise_sigbus, .timeout = 20)
{
	struct uvm_region *r = uvm_map_anon(64 * PG, PROT_READ | PROT_WRITE);
	uvm_advise(r, UVM_ADV_RANDOM);
	char *b = uvm_base(r);
	b[0] = 7;
	struct uvm_region *c = uvm_copy(r);
	char *q = uvm_base(c);
	__atomic_store_n(&uvm_pager.up_inject_fail, 1, __ATOMIC_RELAXED);
	cr_assert_eq(pu_probe(q, 1), SIGBUS);          /* case 1B */
	cr_assert_eq(b[0], 7);
	cr_assert_eq(pu_probe(q, 0), 0);               /* not poisoned */
	cr_assert_eq(q[0], 7);
	cr_assert_eq(pu_probe(q, 1), 0);               /* retried: served */
	__atomic_store_n(&uvm_pager.up_inject_fail, 1, __ATOMIC_RELAXED);
	cr_assert_eq(pu_probe(b + 9 * PG, 0), SIGBUS); /* zero fill */
	cr_assert_eq(pu_probe(b + 10 * PG, 1), 0);     /* the next is served */
	cr_assert_eq(b[0], 7);
	cr_assert_eq(uvm_unmap(c, 0, 64 * PG), 0);
	cr_assert_eq(uvm_unmap(r, 0, 64 * PG), 0);
}

static int read_int_file(const char *path)
{
	FILE *f = fopen(path, "r");
	int v = -1;
	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/* Without privilege (and vm.unprivileged_userfaultfd=0) the pager falls
 * back to UFFD_USER_MODE_ONLY and still works: zero fill, COW, fork.
 * Faults taken inside system calls are not served in that mode, so a
 * read() into an untouched page fails with EFAULT (docs/pager.md). */
Test(api, unprivileged_user_mode_only, .timeout = 30)
{
	if (getuid() != 0)
		cr_skip_test("needs root to drop privileges");
	pid_t pid = fork();
	if (pid == 0) {
		if (setgid(65534) || setuid(65534))
			_exit(20);
		struct uvm_region *r = uvm_map_anon(16 * PG, PROT_READ | PROT_WRITE);
		if (!r)
			_exit(21);
		bool uo = uvm_pager.up_user_only;
		if (read_int_file("/proc/sys/vm/unprivileged_userfaultfd") == 0 &&
		    !uo)
			_exit(22);
		char *b = uvm_base(r);
		b[0] = 5;
		struct uvm_region *c = uvm_copy(r);
		char *q = uvm_base(c);
		q[0] = 6;
		if (b[0] != 5 || q[0] != 6)
			_exit(23);
		int fds[2];
		if (pipe(fds) || write(fds[1], "xyz", 3) != 3)
			_exit(24);
		ssize_t n = read(fds[0], b + 8 * PG, 3);
		if (uo ? !(n == -1 && errno == EFAULT) : n != 3)
			_exit(25);
		pid_t g = fork();
		if (g == 0) {
			b[0] = 9;
			_exit(q[0] == 6 && b[0] == 9 ? 0 : 1);
		}
		_exit(pu_wait(g) == 0 && b[0] == 5 ? 0 : 26);
	}
	int st = pu_wait(pid);
	cr_assert_eq(st, 0, "child: %d", st);
}

/* Odd shapes: PROT_NONE regions, a region released piece by piece then
 * destroyed, a copy of a copy of a region with holes, huge requests. */
Test(api, odd_shapes)
{
	struct uvm_region *n = uvm_map_anon(2 * PG, PROT_NONE);
	cr_assert_not_null(n);
	cr_assert_eq(pu_probe(uvm_base(n), 0), SIGSEGV);
	struct uvm_region *nc = uvm_copy(n);
	cr_assert_not_null(nc);
	cr_assert_eq(uvm_unmap(nc, 0, 2 * PG), 0);
	cr_assert_eq(uvm_unmap(n, 0, 2 * PG), 0);

	struct uvm_region *r = uvm_map_anon(8 * PG, PROT_READ | PROT_WRITE);
	char *b = uvm_base(r);
	for (int i = 0; i < 8; i++)
		b[i * PG] = (char)(i + 1);
	for (int i = 0; i < 8; i += 2)
		cr_assert_eq(uvm_unmap(r, (size_t)i * PG, PG), 0);
	struct uvm_region *c1 = uvm_copy(r), *c2 = uvm_copy(c1);
	char *q = uvm_base(c2);
	for (int i = 0; i < 8; i++) {
		if (i % 2)
			cr_assert_eq(q[i * PG], i + 1);
		else
			cr_assert_eq(pu_probe(q + i * PG, 0), SIGSEGV);
	}
	for (int i = 1; i < 8; i += 2)   /* every page released: still valid */
		cr_assert_eq(uvm_unmap(r, (size_t)i * PG, PG), 0);
	cr_assert_eq(uvm_size(r), 8 * PG);
	cr_assert_eq(pu_pool_pages(r), 4);   /* c1 and c2 still hold them */
	cr_assert_eq(uvm_unmap(r, 0, 8 * PG), 0);
	cr_assert_eq(uvm_unmap(c1, 0, 8 * PG), 0);
	cr_assert_eq(q[3 * PG], 4);
	cr_assert_eq(uvm_unmap(c2, 0, 8 * PG), 0);

	errno = 0;   /* 4 GiB of address space, one page touched */
	struct uvm_region *big = uvm_map_anon((size_t)1 << 32, PROT_READ);
	if (big) {
		cr_assert_eq(((volatile char *)uvm_base(big))[(size_t)1 << 31], 0);
		cr_assert_eq(uvm_unmap(big, 0, (size_t)1 << 32), 0);
	} else {
		cr_assert_eq(errno, ENOMEM);
	}
	errno = 0;   /* beyond the 64 GiB limit */
	cr_assert_null(uvm_map_anon((size_t)1 << 37, PROT_READ));
	cr_assert_eq(errno, EINVAL);
}

/* With a file size limit (ulimit -f) every pool file stays inside it
 * (no SIGXFSZ kills anyone) and the pool grows by files: a region
 * larger than one file fails with ENOMEM, smaller ones go on in new
 * files until the pool has no file left (64), then ENOMEM, and a COW
 * fault that needs a new window raises SIGBUS. */
Test(api, file_size_limit, .timeout = 20)
{
	pid_t pid = fork();
	if (pid == 0) {
		struct rlimit rl = { 64 * PG, 64 * PG };
		if (setrlimit(RLIMIT_FSIZE, &rl))
			_exit(20);
		struct uvm_region *r = uvm_map_anon(40 * PG, PROT_READ | PROT_WRITE);
		if (!r)
			_exit(21);
		memset(uvm_base(r), 1, 40 * PG);
		errno = 0;
		if (uvm_map_anon(65 * PG, PROT_READ) || errno != ENOMEM)
			_exit(22);
		struct uvm_region *c = uvm_copy(r);   /* needs no new page */
		if (!c || ((char *)uvm_base(c))[PG] != 1)
			_exit(23);
		/* a COW copy needs a 40-page window: in a new file */
		if (pu_probe(uvm_base(c), 1) != 0)
			_exit(24);
		struct uvm_region *d = uvm_copy(r);
		int n = 0;
		while (uvm_map_anon(64 * PG, PROT_READ))
			n++;
		if (errno != ENOMEM || n < 50 || n > 64)
			_exit(25);
		if (!d || pu_probe(uvm_base(d), 1) != SIGBUS)
			_exit(26);
		if (pu_probe((char *)uvm_base(r) + PG, 0) ||
		    ((char *)uvm_base(r))[PG] != 1)
			_exit(27);
		_exit(0);
	}
	int st = pu_wait(pid);
	cr_assert_eq(st, 0, "child: %d", st);
}
