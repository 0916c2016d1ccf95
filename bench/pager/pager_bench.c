/*
 * pager_bench - managed regions against the kernel's anonymous memory,
 * side by side in one run: every round measures each variant once, in
 * turn, and the table gives medians over the rounds and ratios to the
 * kernel's figure.
 *
 *   first touch   write one byte to each page of a fresh 64 MiB region:
 *                 native anonymous memory with 4 KiB pages
 *                 (MADV_NOHUGEPAGE) against a managed region under each
 *                 advice.  RANDOM means one pager round trip per page.
 *   copy          uvm_copy() of a populated 256 MiB region against fork()
 *                 of a process holding 256 MiB of anonymous memory (4 KiB
 *                 pages, and transparent huge pages as the kernel
 *                 default gives them).
 *   COW write     after the copy / fork, write one byte to each page of
 *                 64 MiB: the kernel's copy-on-write after fork against
 *                 the pager's (sequential and random page order).  Random
 *                 writes over the whole region make the pager collapse
 *                 the copy's mappings (one copy of the rest, then case 1A
 *                 faults); 400 random pages stay below that and measure
 *                 one case 1B fault each.
 *   read          read one byte of each page of the copy: the child
 *                 after fork, against a uvm_copy() (the kernel serves
 *                 these faults from the shared pool pages).
 *
 * Usage: pager_bench [--rounds N] [--quick]
 */
#include <schedctl/uvm.h>

#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG 4096u
#define MIB ((size_t)1 << 20)

static size_t touch_len = 64 * MIB, copy_len = 256 * MIB;

static void die(const char *what)
{
	fprintf(stderr, "pager_bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void *native(size_t len, int thp)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	madvise(p, len, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	return p;
}

static void touch(volatile char *b, size_t len, char v)
{
	for (size_t i = 0; i < len; i += PG)
		b[i] = v;
}

/* A permutation of the pages, for random-order writes. */
static size_t *perm(size_t n)
{
	size_t *p = malloc(n * sizeof *p);
	unsigned long long x = 88172645463325252ULL;
	for (size_t i = 0; i < n; i++)
		p[i] = i;
	for (size_t i = n - 1; i > 0; i--) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t j = (size_t)(x % (i + 1)), t = p[i];
		p[i] = p[j], p[j] = t;
	}
	return p;
}

/* ---- first touch --------------------------------------------------- */

static double ft_native(void)
{
	char *b = native(touch_len, 0);
	double t = now_ns();
	touch(b, touch_len, 1);
	t = now_ns() - t;
	munmap(b, touch_len);
	return t / (double)(touch_len / PG);
}

static double ft_managed(int advice)
{
	struct uvm_region *r = uvm_map_anon(touch_len, PROT_READ | PROT_WRITE);
	if (!r)
		die("uvm_map_anon");
	uvm_advise(r, advice);
	double t = now_ns();
	touch(uvm_base(r), touch_len, 1);
	t = now_ns() - t;
	uvm_unmap(r, 0, touch_len);
	return t / (double)(touch_len / PG);
}

/* ---- copy: uvm_copy against fork ----------------------------------- */

static double copy_fork(int thp)
{
	char *b = native(copy_len, thp);
	touch(b, copy_len, 1);
	double t = now_ns();
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	t = now_ns() - t;
	if (pid < 0)
		die("fork");
	waitpid(pid, NULL, 0);
	munmap(b, copy_len);
	return t;
}

static double copy_uvm(void)
{
	struct uvm_region *r = uvm_map_anon(copy_len, PROT_READ | PROT_WRITE);
	if (!r)
		die("uvm_map_anon");
	uvm_advise(r, UVM_ADV_SEQUENTIAL);
	touch(uvm_base(r), copy_len, 1);
	double t = now_ns();
	struct uvm_region *c = uvm_copy(r);
	t = now_ns() - t;
	if (!c)
		die("uvm_copy");
	uvm_unmap(c, 0, copy_len);
	uvm_unmap(r, 0, copy_len);
	return t;
}

/* ---- copy-on-write write faults ------------------------------------ */

static void write_pages(volatile char *b, const size_t *order, size_t n)
{
	for (size_t k = 0; k < n; k++)
		b[(order ? order[k] : k) * PG] = 2;
}

/* The kernel: the parent writes while a forked child holds the pages. */
static double cow_fork(const size_t *order, size_t n)
{
	char *b = native(touch_len, 0);
	touch(b, touch_len, 1);
	int p[2];
	if (pipe(p))
		die("pipe");
	pid_t pid = fork();
	if (pid == 0) {
		char x;
		close(p[1]);
		_exit(read(p[0], &x, 1) < 0);
	}
	close(p[0]);
	double t = now_ns();
	write_pages(b, order, n);
	t = now_ns() - t;
	close(p[1]);
	waitpid(pid, NULL, 0);
	munmap(b, touch_len);
	return t / (double)n;
}

static double cow_uvm(const size_t *order, size_t n, int advice)
{
	struct uvm_region *r = uvm_map_anon(touch_len, PROT_READ | PROT_WRITE);
	if (!r)
		die("uvm_map_anon");
	touch(uvm_base(r), touch_len, 1);
	struct uvm_region *c = uvm_copy(r);
	if (!c)
		die("uvm_copy");
	uvm_advise(c, advice);
	double t = now_ns();
	write_pages(uvm_base(c), order, n);
	t = now_ns() - t;
	uvm_unmap(c, 0, touch_len);
	uvm_unmap(r, 0, touch_len);
	return t / (double)n;
}

/* Reading a copy: the child after fork reads its inherited pages; the
 * pager's copy is read by the kernel from the shared pool pages. */
static double read_fork(void)
{
	size_t n = touch_len / PG;
	char *b = native(touch_len, 0);
	touch(b, touch_len, 1);
	int p[2];
	if (pipe(p))
		die("pipe");
	pid_t pid = fork();
	if (pid == 0) {
		double t = now_ns();
		volatile char sum = 0;
		for (size_t i = 0; i < touch_len; i += PG)
			sum += b[i];
		t = now_ns() - t;
		_exit(write(p[1], &t, sizeof t) != sizeof t);
	}
	double t = 0;
	if (read(p[0], &t, sizeof t) != sizeof t)
		die("read");
	close(p[0]);
	close(p[1]);
	waitpid(pid, NULL, 0);
	munmap(b, touch_len);
	return t / (double)n;
}

static double read_uvm(void)
{
	size_t n = touch_len / PG;
	struct uvm_region *r = uvm_map_anon(touch_len, PROT_READ | PROT_WRITE);
	if (!r)
		die("uvm_map_anon");
	touch(uvm_base(r), touch_len, 1);
	struct uvm_region *c = uvm_copy(r);
	if (!c)
		die("uvm_copy");
	volatile char *q = uvm_base(c);
	volatile char sum = 0;
	double t = now_ns();
	for (size_t i = 0; i < touch_len; i += PG)
		sum += q[i];
	t = now_ns() - t;
	uvm_unmap(c, 0, touch_len);
	uvm_unmap(r, 0, touch_len);
	return t / (double)n;
}

/* ---- the table ------------------------------------------------------ */

enum {
	FT_NATIVE, FT_NORMAL, FT_RANDOM, FT_SEQ,
	CP_FORK4K, CP_FORKTHP, CP_UVM,
	COW_FORK_SEQ, COW_UVM_SEQ, COW_UVM_SEQADV, COW_FORK_RND, COW_UVM_RND,
	COW_FORK_FEW, COW_UVM_FEW, RD_FORK, RD_UVM, NVAR
};

static const struct {
	const char *name, *unit;
	int base;   /* the kernel figure it is compared with, or -1 */
} vars[NVAR] = {
	[FT_NATIVE]   = { "first touch, native anonymous (4 KiB pages)", "ns/page", -1 },
	[FT_NORMAL]   = { "first touch, managed, ADV_NORMAL", "ns/page", FT_NATIVE },
	[FT_SEQ]      = { "first touch, managed, ADV_SEQUENTIAL", "ns/page", FT_NATIVE },
	[FT_RANDOM]   = { "first touch, managed, ADV_RANDOM (1 fault/page)", "ns/page", FT_NATIVE },
	[CP_FORK4K]   = { "fork() holding 256 MiB (4 KiB pages)", "us", -1 },
	[CP_FORKTHP]  = { "fork() holding 256 MiB (huge pages)", "us", -1 },
	[CP_UVM]      = { "uvm_copy() of 256 MiB", "us", CP_FORK4K },
	[COW_FORK_SEQ]= { "COW write after fork, sequential", "ns/page", -1 },
	[COW_UVM_SEQ] = { "COW write after uvm_copy, sequential", "ns/page", COW_FORK_SEQ },
	[COW_UVM_SEQADV] = { "COW write after uvm_copy, sequential, ADV_SEQUENTIAL", "ns/page", COW_FORK_SEQ },
	[COW_FORK_RND]= { "COW write after fork, random order", "ns/page", -1 },
	[COW_UVM_RND] = { "COW write after uvm_copy, random order (collapses)", "ns/page", COW_FORK_RND },
	[COW_FORK_FEW]= { "COW write after fork, 400 random pages", "ns/page", -1 },
	[COW_UVM_FEW] = { "COW write after uvm_copy, 400 random pages (1B each)", "ns/page", COW_FORK_FEW },
	[RD_FORK]     = { "read every page, child after fork", "ns/page", -1 },
	[RD_UVM]      = { "read every page of a uvm_copy", "ns/page", RD_FORK },
};

int main(int argc, char **argv)
{
	int rounds = 7;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--quick"))
			rounds = 3, touch_len = 16 * MIB, copy_len = 64 * MIB;
		else {
			fprintf(stderr, "usage: pager_bench [--rounds N] [--quick]\n");
			return 2;
		}
	}
	if (rounds < 1 || rounds > MAXROUNDS) {
		fprintf(stderr, "pager_bench: --rounds must be 1..%d\n", MAXROUNDS);
		return 2;
	}
	size_t *order = perm(touch_len / PG);
	static double v[NVAR][MAXROUNDS];
	for (int k = 0; k < rounds; k++) {
		v[FT_NATIVE][k] = ft_native();
		v[FT_NORMAL][k] = ft_managed(UVM_ADV_NORMAL);
		v[FT_SEQ][k] = ft_managed(UVM_ADV_SEQUENTIAL);
		v[FT_RANDOM][k] = ft_managed(UVM_ADV_RANDOM);
		v[CP_FORK4K][k] = copy_fork(0) / 1e3;
		v[CP_FORKTHP][k] = copy_fork(1) / 1e3;
		v[CP_UVM][k] = copy_uvm() / 1e3;
		size_t np = touch_len / PG;
		v[COW_FORK_SEQ][k] = cow_fork(NULL, np);
		v[COW_UVM_SEQ][k] = cow_uvm(NULL, np, UVM_ADV_NORMAL);
		v[COW_UVM_SEQADV][k] = cow_uvm(NULL, np, UVM_ADV_SEQUENTIAL);
		v[COW_FORK_RND][k] = cow_fork(order, np);
		v[COW_UVM_RND][k] = cow_uvm(order, np, UVM_ADV_RANDOM);
		v[COW_FORK_FEW][k] = cow_fork(order, 400);
		v[COW_UVM_FEW][k] = cow_uvm(order, 400, UVM_ADV_RANDOM);
		v[RD_FORK][k] = read_fork();
		v[RD_UVM][k] = read_uvm();
	}
	printf("pager_bench: %d rounds, first touch and COW over %zu MiB, "
	       "copy of %zu MiB\n\n", rounds, touch_len / MIB, copy_len / MIB);
	printf("| measurement | median | ratio to kernel |\n|---|---|---|\n");
	for (int i = 0; i < NVAR; i++) {
		double m = median(v[i], rounds);
		printf("| %s | %.1f %s |", vars[i].name, m, vars[i].unit);
		if (vars[i].base >= 0)
			printf(" %.2fx |\n", m / median(v[vars[i].base], rounds));
		else
			printf(" — |\n");
	}
	free(order);
	return 0;
}
