/*
 * unmap_bench - the price of giving memory back: uvm_unmap of a written
 * managed region against munmap of the kernel's anonymous memory, side
 * by side in one run (each round measures every variant once, in turn;
 * the table gives medians over the rounds and ratios to munmap).
 *
 *   munmap        mmap 16 MiB anonymous (4 KiB pages, MADV_NOHUGEPAGE),
 *                 write every byte, time munmap.
 *   uvm full      uvm_map_anon 16 MiB, write every byte, time uvm_unmap
 *                 of all of it (the region goes, its pages are freed).
 *   uvm half      the same, time uvm_unmap of the first 8 MiB only (the
 *                 region stays; its pages there become PROT_NONE).
 *   uvm view      uvm_loan_view of 16 MiB written, uvm_unmap of the whole
 *                 region (the loan keeps the pages), time uvm_unloan (the
 *                 view goes and frees the orphaned pages).
 *
 * The pager frees each page by punching it out of its pool file; every
 * punch unmaps the range from the file's mappings and flushes the TLB,
 * which is what this measures.
 *
 * Usage: unmap_bench [--rounds N] [--mib M]
 */
#include <schedctl/uvm.h>

#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)

static size_t len = 16 * MIB;

static void die(const char *what)
{
	fprintf(stderr, "unmap_bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double b_munmap(void)
{
	char *b = mmap(NULL, len, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b == MAP_FAILED)
		die("mmap");
	madvise(b, len, MADV_NOHUGEPAGE);
	memset(b, 1, len);
	double t = now_ns();
	munmap(b, len);
	return now_ns() - t;
}

static struct uvm_region *written(void)
{
	struct uvm_region *r = uvm_map_anon(len, PROT_READ | PROT_WRITE);
	if (!r)
		die("uvm_map_anon");
	uvm_advise(r, UVM_ADV_SEQUENTIAL);
	memset(uvm_base(r), 1, len);
	return r;
}

static double b_uvm_full(void)
{
	struct uvm_region *r = written();
	double t = now_ns();
	if (uvm_unmap(r, 0, len))
		die("uvm_unmap");
	return now_ns() - t;
}

static double b_uvm_half(void)
{
	struct uvm_region *r = written();
	double t = now_ns();
	if (uvm_unmap(r, 0, len / 2))
		die("uvm_unmap");
	t = now_ns() - t;
	if (uvm_unmap(r, 0, len))
		die("uvm_unmap");
	return t;
}

static double b_uvm_view(void)
{
	struct uvm_region *r = written();
	struct uvm_loan *l = uvm_loan_view(r, 0, len);
	if (!l)
		die("uvm_loan_view");
	if (uvm_unmap(r, 0, len))
		die("uvm_unmap");
	double t = now_ns();
	if (uvm_unloan(l))
		die("uvm_unloan");
	return now_ns() - t;
}

static const struct {
	const char *name;
	double (*fn)(void);
} variants[] = {
	{ "munmap", b_munmap },
	{ "uvm full", b_uvm_full },
	{ "uvm half", b_uvm_half },
	{ "uvm view", b_uvm_view },
};
#define NVAR (sizeof variants / sizeof variants[0])

int main(int argc, char **argv)
{
	int rounds = 15;
	for (int k = 1; k < argc; k++) {
		if (!strcmp(argv[k], "--rounds") && k + 1 < argc) {
			rounds = atoi(argv[++k]);
		} else if (!strcmp(argv[k], "--mib") && k + 1 < argc) {
			len = (size_t)atol(argv[++k]) * MIB;
		} else {
			fprintf(stderr, "usage: unmap_bench [--rounds N] [--mib M]\n");
			return 2;
		}
	}
	if (rounds < 1 || rounds > MAXROUNDS || len < 2 * MIB) {
		fprintf(stderr, "unmap_bench: rounds 1..%d, at least 2 MiB\n",
		        MAXROUNDS);
		return 2;
	}
	double v[NVAR][MAXROUNDS];
	for (int r = 0; r < rounds; r++)
		for (size_t k = 0; k < NVAR; k++)
			v[k][r] = variants[k].fn();
	double base = median(v[0], rounds);
	printf("%-10s %12s %10s   (%zu MiB written, %d rounds, medians)\n",
	       "variant", "time (us)", "vs munmap", len / MIB, rounds);
	for (size_t k = 0; k < NVAR; k++) {
		double m = median(v[k], rounds);
		printf("%-10s %12.1f %10.2f\n", variants[k].name, m / 1e3,
		       m / base);
	}
	return 0;
}
