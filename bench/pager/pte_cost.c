/*
 * pte_cost: what the kernel charges for the one step every loan of
 * just-written pages must take, without the pager around it.
 *
 * A loan is a snapshot: after it, an owner write must not reach the
 * loaned data.  Without copying, that means changing the owner's
 * present page-table entries (write-protect, unmap or move them).  This
 * program times those changes on 16 MiB of just-written pages, side by
 * side with a 16 MiB memcpy, so the bar "a loan costs at most half a
 * memcpy" can be judged against what any design would pay here.
 *
 * Every round times every variant once, in turn; the table shows
 * medians and each median's ratio to the memcpy median.
 *
 * usage: pte_cost [--rounds N]    (N <= 31, default 9)
 */

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

#define LEN (16u << 20)
#define HUGE (2u << 20)

enum backing { SHMEM, ANON, ANON_THP };

struct area {
	enum backing a_backing;
	unsigned char *a_base;
	int a_uffd;            /* registered for WP, or -1 */
};

static void die(const char *what)
{
	fprintf(stderr, "pte_cost: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void *map_backing(enum backing b)
{
	void *p;
	if (b == SHMEM) {
		int fd = memfd_create("pte_cost", MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, LEN) != 0)
			die("memfd");
		p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
		if (p == MAP_FAILED)
			die("mmap shmem");
		return p;
	}
	/* Anonymous, 2 MiB aligned so THP can back it when asked. */
	unsigned char *raw = mmap(NULL, LEN + HUGE, PROT_READ | PROT_WRITE,
	                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		die("mmap anon");
	p = (void *)(((uintptr_t)raw + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
	if (madvise(p, LEN, b == ANON_THP ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) != 0)
		die("madvise");
	return p;
}

static int uffd_wp_register(void *p)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		die("userfaultfd");
	struct uffdio_api api = { .api = UFFD_API,
	                          .features = UFFD_FEATURE_WP_HUGETLBFS_SHMEM };
	if (ioctl(fd, UFFDIO_API, &api) != 0)
		die("UFFDIO_API");
	struct uffdio_register reg = {
		.range = { (uintptr_t)p, LEN },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	if (ioctl(fd, UFFDIO_REGISTER, &reg) != 0)
		die("UFFDIO_REGISTER");
	return fd;
}

static void wp_range(int uffd, unsigned char *p, size_t len, int on)
{
	struct uffdio_writeprotect wp = {
		.range = { (uintptr_t)p, len },
		.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};
	if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) != 0)
		die("UFFDIO_WRITEPROTECT");
}

/* Make every page present, writable and dirty again (untimed). */
static void rewrite(struct area *a, int round)
{
	if (a->a_uffd >= 0)
		wp_range(a->a_uffd, a->a_base, LEN, 0);
	if (mprotect(a->a_base, LEN, PROT_READ | PROT_WRITE) != 0)
		die("mprotect rw");
	memset(a->a_base, round & 0xff, LEN);
}

struct half {
	int h_uffd;
	unsigned char *h_base;
};

static void *wp_half(void *arg)
{
	struct half *h = arg;
	wp_range(h->h_uffd, h->h_base, LEN / 2, 1);
	return NULL;
}

enum variant {
	V_MEMCPY, V_UFFD_SHMEM, V_UFFD_SHMEM_AGAIN, V_UFFD_SHMEM_2T,
	V_MPROTECT_SHMEM, V_ZAP_SHMEM, V_UFFD_ANON, V_MPROTECT_ANON,
	V_UFFD_THP, V_NVARIANTS
};

static const char *const variant_name[V_NVARIANTS] = {
	[V_MEMCPY] = "memcpy 16 MiB (reference)",
	[V_UFFD_SHMEM] = "UFFDIO_WRITEPROTECT, shmem (the loan)",
	[V_UFFD_SHMEM_AGAIN] = "same, pages already protected",
	[V_UFFD_SHMEM_2T] = "same, two threads, 8 MiB each (wall)",
	[V_MPROTECT_SHMEM] = "mprotect(PROT_READ), shmem",
	[V_ZAP_SHMEM] = "MADV_DONTNEED (unmap), shmem",
	[V_UFFD_ANON] = "UFFDIO_WRITEPROTECT, anon 4 KiB pages",
	[V_MPROTECT_ANON] = "mprotect(PROT_READ), anon 4 KiB pages",
	[V_UFFD_THP] = "UFFDIO_WRITEPROTECT, anon THP (2 MiB)",
};

static double run_variant(enum variant v, struct area *shm, struct area *anon,
                          struct area *thp, unsigned char *src,
                          unsigned char *dst, int round)
{
	double t0, t1;
	switch (v) {
	case V_MEMCPY:
		memset(src, round & 0xff, LEN);
		t0 = now_ns();
		memcpy(dst, src, LEN);
		t1 = now_ns();
		break;
	case V_UFFD_SHMEM:
	case V_UFFD_SHMEM_AGAIN:
		rewrite(shm, round);
		if (v == V_UFFD_SHMEM_AGAIN)
			wp_range(shm->a_uffd, shm->a_base, LEN, 1);
		t0 = now_ns();
		wp_range(shm->a_uffd, shm->a_base, LEN, 1);
		t1 = now_ns();
		break;
	case V_UFFD_SHMEM_2T: {
		rewrite(shm, round);
		struct half h = { shm->a_uffd, shm->a_base + LEN / 2 };
		pthread_t t;
		t0 = now_ns();
		if (pthread_create(&t, NULL, wp_half, &h) != 0)
			die("pthread_create");
		wp_range(shm->a_uffd, shm->a_base, LEN / 2, 1);
		pthread_join(t, NULL);
		t1 = now_ns();
		break;
	}
	case V_MPROTECT_SHMEM:
	case V_MPROTECT_ANON: {
		struct area *a = v == V_MPROTECT_SHMEM ? shm : anon;
		rewrite(a, round);
		t0 = now_ns();
		if (mprotect(a->a_base, LEN, PROT_READ) != 0)
			die("mprotect");
		t1 = now_ns();
		break;
	}
	case V_ZAP_SHMEM:
		rewrite(shm, round);
		t0 = now_ns();
		if (madvise(shm->a_base, LEN, MADV_DONTNEED) != 0)
			die("madvise");
		t1 = now_ns();
		break;
	case V_UFFD_ANON:
	case V_UFFD_THP: {
		struct area *a = v == V_UFFD_ANON ? anon : thp;
		rewrite(a, round);
		t0 = now_ns();
		wp_range(a->a_uffd, a->a_base, LEN, 1);
		t1 = now_ns();
		break;
	}
	default:
		return 0;
	}
	return t1 - t0;
}

/* How much of the THP area is really backed by huge pages. */
static long thp_kib(void *p)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[256];
	long kib = -1;
	int in = 0;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
			in = lo <= (uintptr_t)p && (uintptr_t)p < hi;
		else if (in && sscanf(line, "AnonHugePages: %ld kB", &kib) == 1)
			break;
	}
	fclose(f);
	return kib;
}

int main(int argc, char **argv)
{
	int rounds = 9;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: pte_cost [--rounds N]\n");
			return 2;
		}
	}
	if (rounds < 1 || rounds > MAXROUNDS) {
		fprintf(stderr, "pte_cost: --rounds must be 1..%d\n", MAXROUNDS);
		return 2;
	}
	struct area shm = { SHMEM, map_backing(SHMEM), -1 };
	struct area anon = { ANON, map_backing(ANON), -1 };
	struct area thp = { ANON_THP, map_backing(ANON_THP), -1 };
	shm.a_uffd = uffd_wp_register(shm.a_base);
	struct area anon_mp = { ANON, map_backing(ANON), -1 };
	anon.a_uffd = uffd_wp_register(anon.a_base);
	thp.a_uffd = uffd_wp_register(thp.a_base);
	/* The reference copies between plain 4 KiB-page buffers, as a
	 * program's malloc'd buffers of this size are by default. */
	unsigned char *src = map_backing(ANON), *dst = map_backing(ANON);
	memset(dst, 1, LEN);
	memset(thp.a_base, 1, LEN);

	double t[V_NVARIANTS][MAXROUNDS];
	for (int r = 0; r < rounds; r++)
		for (int v = 0; v < V_NVARIANTS; v++)
			t[v][r] = run_variant((enum variant)v, &shm,
			                      v == V_MPROTECT_ANON ? &anon_mp : &anon,
			                      &thp, src, dst, r);

	double ref = median(t[V_MEMCPY], rounds);
	printf("## changing 16 MiB of just-written present PTEs vs memcpy"
	       " (%d rounds, medians)\n", rounds);
	printf("%-44s %10s %7s\n", "operation", "us", "ratio");
	for (int v = 0; v < V_NVARIANTS; v++) {
		double m = median(t[v], rounds);
		printf("%-44s %10.1f %7.3f\n", variant_name[v], m / 1e3, m / ref);
	}
	printf("anon THP area backed by huge pages: %ld KiB of %u\n",
	       thp_kib(thp.a_base), LEN >> 10);
	return 0;
}
