/*
 * loan_bench - page loans and file-backed regions, side by side in one
 * run: every round measures each variant once, in turn; the tables give
 * medians over the rounds and ratios.
 *
 *   loan 16 MiB   uvm_loan_view() of a populated 16 MiB region (and with
 *                 its uvm_unloan()) against memcpy() of 16 MiB into a
 *                 buffer already faulted in.  The region is loaned again
 *                 every round, so its pages are write-protected already;
 *                 "just written" loans a region whose every page was
 *                 written since (the loan must protect them all).
 *                 "first read" adds the consumer's first read of one byte
 *                 per page of the view: the loan does not populate the
 *                 view, so that read pays its minor faults.  "producer":
 *                 a cycle of writing 16 MiB and then copying it out
 *                 (memset + memcpy) or loaning it (memset of a region
 *                 loaned before, whose writes are 1A faults, + loan).
 *   writev        hand N bytes to a pipe drained by another process:
 *                 memcpy into a buffer + writev, against loan + writev of
 *                 the view + unloan, and loan + vmsplice of the view (the
 *                 pipe references the pages; the unloan waits for the
 *                 reader's acknowledgement), and loan + uvm_loan_splice
 *                 (spliced from the pool, no view mapping); N from 4 KiB
 *                 to 64 MiB.  The
 *                 break-even size is the smallest N from which the loan
 *                 wins at every larger size measured.
 *   file touch    read (or write) one byte of each page of a fresh 64 MiB
 *                 mapping of a file in the page cache: a native
 *                 MAP_PRIVATE mapping against uvm_map_file(PRIVATE) under
 *                 each advice.
 *
 * Usage: loan_bench [--rounds N] [--quick] [--no-thp]
 * (--no-thp: the memcpy buffers use 4 KiB pages, like the pool, instead of
 * the transparent huge pages the kernel gives them by default)
 */
#include <schedctl/uvm.h>

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG 4096u
#define MIB ((size_t)1 << 20)

static void die(const char *what)
{
	fprintf(stderr, "loan_bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static struct uvm_region *populated(size_t len)
{
	struct uvm_region *r = uvm_map_anon(len, PROT_READ | PROT_WRITE);
	if (!r)
		die("uvm_map_anon");
	memset(uvm_base(r), 0x5a, len);
	return r;
}

static int no_thp;   /* --no-thp: 4 KiB pages for the copy buffers too */

static void *prefaulted(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	if (no_thp)
		madvise(p, len, MADV_NOHUGEPAGE);
	memset(p, 0, len);
	return p;
}

/* ---- loan vs memcpy ------------------------------------------------- */

/* Read one byte of each page of the view: the consumer's first touch,
 * which fills the view's page tables (the loan does not populate them). */
static double first_read(const struct uvm_loan *l, size_t len)
{
	const volatile char *v = uvm_loan_base(l);
	double t0 = now_ns();
	for (size_t o = 0; o < len; o += PG)
		(void)v[o];
	return now_ns() - t0;
}

static void bench_loan16(int rounds)
{
	size_t len = 16 * MIB;
	struct uvm_region *r = populated(len);
	char *dst = prefaulted(len);
	char *src = prefaulted(len);
	double cp[MAXROUNDS], ln[MAXROUNDS], lu[MAXROUNDS], lr[MAXROUNDS],
	       cold[MAXROUNDS], coldr[MAXROUNDS], pc[MAXROUNDS], pl[MAXROUNDS];
	for (int k = 0; k < rounds; k++) {
		/* a region just written: every page writable, so the loan
		 * must write-protect all of them */
		struct uvm_region *w = populated(len);
		double c0 = now_ns();
		struct uvm_loan *wl = uvm_loan_view(w, 0, len);
		cold[k] = now_ns() - c0;
		if (!wl)
			die("loan");
		coldr[k] = cold[k] + first_read(wl, len);
		if (uvm_unloan(wl))
			die("unloan");
		uvm_unmap(w, 0, len);
		double t0 = now_ns();
		memcpy(dst, uvm_base(r), len);
		double t1 = now_ns();
		struct uvm_loan *l = uvm_loan_view(r, 0, len);
		double t2 = now_ns();
		if (!l || uvm_unloan(l))
			die("loan");
		double t3 = now_ns();
		l = uvm_loan_view(r, 0, len);
		if (!l)
			die("loan");
		double t4 = now_ns();
		lr[k] = t4 - t3 + first_read(l, len);
		if (uvm_unloan(l))
			die("unloan");
		/* a producer's cycle: write the buffer, then copy it out or
		 * loan it (the region's pages were loaned before, so its
		 * writes are 1A faults) */
		double t5 = now_ns();
		memset(src, k, len);
		memcpy(dst, src, len);
		double t6 = now_ns();
		memset(uvm_base(r), k, len);
		l = uvm_loan_view(r, 0, len);
		double t7 = now_ns();
		if (!l || uvm_unloan(l))
			die("loan");
		pc[k] = t6 - t5;
		pl[k] = t7 - t6;
		cp[k] = t1 - t0;
		ln[k] = t2 - t1;
		lu[k] = t3 - t1;
	}
	double c = median(cp, rounds);
	static const char *names[] = {
		"memcpy 16 MiB",
		"uvm_loan_view",
		"uvm_loan_view + uvm_unloan",
		"uvm_loan_view + first read",
		"uvm_loan_view, just written",
		"same + first read",
	};
	const double *v[] = { cp, ln, lu, lr, cold, coldr };
	printf("## loan vs memcpy, 16 MiB (%d rounds, medians)\n", rounds);
	printf("%-30s %12s %8s\n", "variant", "us", "ratio");
	for (int i = 0; i < 6; i++) {
		double m = median(v[i], rounds);
		printf("%-30s %12.1f %8.3f\n", names[i], m / 1e3, m / c);
	}
	double mc = median(pc, rounds), ml = median(pl, rounds);
	printf("%-30s %12.1f %8.3f\n", "producer: memset + memcpy", mc / 1e3,
	       1.0);
	printf("%-30s %12.1f %8.3f\n", "producer: memset + loan", ml / 1e3,
	       ml / mc);
	munmap(src, len);
	munmap(dst, len);
	uvm_unmap(r, 0, len);
}

/* ---- writev to a pipe ------------------------------------------------- */

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		struct iovec iov = { (void *)p, n };
		ssize_t w = writev(fd, &iov, 1);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			die("writev");
		}
		p += w;
		n -= (size_t)w;
	}
}

/* A child that reads the pipe until end of file and acknowledges each
 * message of `len` bytes with one byte on ack. */
static pid_t drainer(int rfd, int ack, int wfd_close)
{
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid)
		return pid;
	close(wfd_close);
	static char buf[1 << 20];
	size_t want = 0, got = 0;
	for (;;) {
		if (!want && read(rfd, &want, sizeof want) != sizeof want)
			_exit(0);
		ssize_t n = read(rfd, buf, want - got < sizeof buf ?
		                             want - got : sizeof buf);
		if (n <= 0)
			_exit(0);
		got += (size_t)n;
		if (got == want) {
			char c = 1;
			if (write(ack, &c, 1) != 1)
				_exit(1);
			want = got = 0;
		}
	}
}

/* Hand [p, p+n) to the pipe by reference: vmsplice() without
 * SPLICE_F_GIFT makes the pipe buffers point at the pages themselves, so
 * the only copy is the reader's read().  Safe for a loan view as long as
 * the loan lives until the reader has drained the pipe: the loan keeps
 * the pages copy-on-write, so the owner's writes meanwhile go to copies. */
static void splice_all(int fd, const char *p, size_t n)
{
	while (n) {
		struct iovec iov = { (void *)p, n };
		ssize_t w = vmsplice(fd, &iov, 1, 0);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			die("vmsplice");
		}
		p += w;
		n -= (size_t)w;
	}
}

/* Send n bytes as one message (length, then data, written or spliced)
 * and wait for the drainer's acknowledgement: the pipe is drained when
 * this returns. */
static void send_msg(int wfd, int ackr, const char *p, size_t n, int splice)
{
	write_all(wfd, (const char *)&n, sizeof n);
	if (splice)
		splice_all(wfd, p, n);
	else
		write_all(wfd, p, n);
	char c;
	if (read(ackr, &c, 1) != 1)
		die("ack");
}

/* The same message, the data spliced from the pager's pool by
 * uvm_loan_splice() (no view mapping involved). */
static void send_loan(int wfd, int ackr, const struct uvm_loan *l, size_t n)
{
	write_all(wfd, (const char *)&n, sizeof n);
	if (uvm_loan_splice(l, 0, wfd, n, 0) != (ssize_t)n)
		die("uvm_loan_splice");
	char c;
	if (read(ackr, &c, 1) != 1)
		die("ack");
}

/* Smallest size from which variant v wins at every larger size measured,
 * or 0. */
static size_t breakeven_of(const double *ratio, const size_t *size, int n)
{
	size_t be = 0;
	for (int i = 0; i < n; i++) {
		if (ratio[i] <= 1.0 && !be)
			be = size[i];
		else if (ratio[i] > 1.0)
			be = 0;
	}
	return be;
}

static void print_breakeven(const char *what, size_t be)
{
	if (be)
		printf("break-even, %s: the loan wins from %zu KiB up\n", what,
		       be / 1024);
	else
		printf("break-even, %s: not reached up to the largest size\n",
		       what);
}

static void bench_writev(int rounds, size_t maxlen)
{
	int d[2], a[2];
	if (pipe(d) || pipe(a))
		die("pipe");
	fcntl(d[1], F_SETPIPE_SZ, 1 << 20);
	pid_t pid = drainer(d[0], a[1], d[1]);
	close(d[0]);
	close(a[1]);
	struct uvm_region *r = populated(maxlen);
	char *buf = prefaulted(maxlen);
	printf("\n## memcpy + writev vs loan + writev / vmsplice / splice to a "
	       "pipe (%d rounds, medians, us per message)\n", rounds);
	printf("%-10s %11s %11s %7s %11s %7s %11s %7s\n", "size", "memcpy+wv",
	       "loan+wv", "ratio", "loan+vmspl", "ratio", "loan+splice",
	       "ratio");
	double rw[16], rs[16], rp[16];
	size_t sz[16];
	int nsz = 0;
	for (size_t n = 4096; n <= maxlen && nsz < 16; n *= 4, nsz++) {
		double cp[MAXROUNDS], ln[MAXROUNDS], sp[MAXROUNDS],
		       lp[MAXROUNDS];
		int reps = n <= 256 * 1024 ? 64 : 1;
		for (int k = 0; k < rounds; k++) {
			double t0 = now_ns();
			for (int i = 0; i < reps; i++) {
				memcpy(buf, uvm_base(r), n);
				send_msg(d[1], a[0], buf, n, 0);
			}
			double t1 = now_ns();
			for (int i = 0; i < reps; i++) {
				struct uvm_loan *l = uvm_loan_view(r, 0, n);
				if (!l)
					die("uvm_loan_view");
				send_msg(d[1], a[0], uvm_loan_base(l), n, 0);
				uvm_unloan(l);
			}
			double t2 = now_ns();
			for (int i = 0; i < reps; i++) {
				struct uvm_loan *l = uvm_loan_view(r, 0, n);
				if (!l)
					die("uvm_loan_view");
				send_msg(d[1], a[0], uvm_loan_base(l), n, 1);
				uvm_unloan(l);   /* drained: send_msg waited */
			}
			double t3 = now_ns();
			for (int i = 0; i < reps; i++) {
				struct uvm_loan *l = uvm_loan_view(r, 0, n);
				if (!l)
					die("uvm_loan_view");
				send_loan(d[1], a[0], l, n);
				uvm_unloan(l);   /* drained: send_loan waited */
			}
			double t4 = now_ns();
			lp[k] = (t4 - t3) / reps;
			cp[k] = (t1 - t0) / reps;
			ln[k] = (t2 - t1) / reps;
			sp[k] = (t3 - t2) / reps;
		}
		double c = median(cp, rounds), l = median(ln, rounds),
		       s = median(sp, rounds), q = median(lp, rounds);
		rw[nsz] = l / c;
		rs[nsz] = s / c;
		rp[nsz] = q / c;
		sz[nsz] = n;
		char nm[32];
		if (n >= MIB)
			snprintf(nm, sizeof nm, "%zu MiB", n / MIB);
		else
			snprintf(nm, sizeof nm, "%zu KiB", n / 1024);
		printf("%-10s %11.1f %11.1f %7.3f %11.1f %7.3f %11.1f %7.3f\n",
		       nm, c / 1e3, l / 1e3, l / c, s / 1e3, s / c, q / 1e3,
		       q / c);
	}
	print_breakeven("writev", breakeven_of(rw, sz, nsz));
	print_breakeven("vmsplice", breakeven_of(rs, sz, nsz));
	print_breakeven("uvm_loan_splice", breakeven_of(rp, sz, nsz));
	close(d[1]);
	close(a[0]);
	waitpid(pid, NULL, 0);
	munmap(buf, maxlen);
	uvm_unmap(r, 0, maxlen);
}

/* ---- file first touch --------------------------------------------------- */

static double touch(volatile char *p, size_t len, int write)
{
	double t0 = now_ns();
	for (size_t o = 0; o < len; o += PG) {
		if (write)
			p[o] = 1;
		else
			(void)p[o];
	}
	return now_ns() - t0;
}

static void bench_file(int rounds, size_t len)
{
	char path[] = "/tmp/loan-bench-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		die("mkstemp");
	unlink(path);
	char *blk = prefaulted(MIB);
	memset(blk, 0x33, MIB);
	for (size_t o = 0; o < len; o += MIB)
		if (pwrite(fd, blk, MIB, (off_t)o) != (ssize_t)MIB)
			die("pwrite");
	munmap(blk, MIB);
	static const char *names[] = {
		"native MAP_PRIVATE", "uvm NORMAL", "uvm SEQUENTIAL",
		"uvm RANDOM",
	};
	static const int adv[] = { -1, UVM_ADV_NORMAL, UVM_ADV_SEQUENTIAL,
	                           UVM_ADV_RANDOM };
	double t[2][4][MAXROUNDS];
	for (int k = 0; k < rounds; k++)
		for (int w = 0; w < 2; w++)
			for (int v = 0; v < 4; v++) {
				int prot = PROT_READ | PROT_WRITE;
				if (adv[v] < 0) {
					char *p = mmap(NULL, len, prot,
					               MAP_PRIVATE, fd, 0);
					if (p == MAP_FAILED)
						die("mmap file");
					t[w][v][k] = touch(p, len, w);
					munmap(p, len);
					continue;
				}
				struct uvm_region *r = uvm_map_file(
					fd, 0, len, prot, UVM_MAP_PRIVATE);
				if (!r || uvm_advise(r, adv[v]))
					die("uvm_map_file");
				t[w][v][k] = touch(uvm_base(r), len, w);
				uvm_unmap(r, 0, len);
			}
	for (int w = 0; w < 2; w++) {
		printf("\n## file first touch, %s one byte per page of %zu MiB "
		       "(%d rounds, medians)\n", w ? "write" : "read",
		       len / MIB, rounds);
		printf("%-22s %10s %10s %8s\n", "variant", "ms", "ns/page",
		       "ratio");
		double base = median(t[w][0], rounds);
		for (int v = 0; v < 4; v++) {
			double m = median(t[w][v], rounds);
			printf("%-22s %10.2f %10.0f %8.2f\n", names[v], m / 1e6,
			       m / (double)(len / PG), m / base);
		}
	}
	close(fd);
}

int main(int argc, char **argv)
{
	int rounds = 7;
	size_t maxlen = 64 * MIB, flen = 64 * MIB;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--no-thp"))
			no_thp = 1;
		else if (!strcmp(argv[i], "--quick")) {
			rounds = 3;
			maxlen = 4 * MIB;
			flen = 8 * MIB;
		} else {
			fprintf(stderr, "usage: loan_bench [--rounds N] "
			        "[--quick] [--no-thp]\n");
			return 2;
		}
	}
	if (rounds < 1 || rounds > MAXROUNDS) {
		fprintf(stderr, "loan_bench: --rounds must be 1..%d\n",
		        MAXROUNDS);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	bench_loan16(rounds);
	bench_writev(rounds, maxlen);
	bench_file(rounds, flen);
	return 0;
}
