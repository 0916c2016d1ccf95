/*
 * fork() of a process with regions of a file object.  Parent and child
 * share the object's pool window (the pages the store fills), so object
 * pages one side fetches first land in the other side's pool file too.
 * The other side must then read and write those pages like any object
 * page (adopting them, never SIGBUS), keep them when the fork's pages
 * thaw, and give their memory back when the object goes.  Every case
 * checks each page's data, that no access raised a signal, that the
 * file never changed (private regions), and that no pool memory is left.
 */
#include <criterion/criterion.h>

#include "test_inject.h"
#include "util.h"

#define NP 64

/* Pages a child fetches first (with fault-around, their neighbours
 * too): single pages, runs, the first and the last page. */
static const size_t fo_pages[] = { 0, 3, 4, 5, 10, 17, 18, 31, 40, 41, 42,
                                   43, 44, 45, 46, 47, NP - 1 };
#define FO_NPAGES (sizeof fo_pages / sizeof fo_pages[0])

static sigjmp_buf fo_jmp;
static volatile sig_atomic_t fo_sig;

static void fo_on_signal(int sig)
{
	fo_sig = sig;
	siglongjmp(fo_jmp, 1);
}

/* Read page pg of p (and, if write, set its byte 1 to v): 0, or the
 * signal the access raised. */
static int fo_touch(unsigned char *p, size_t pg, bool write, unsigned char v)
{
	struct sigaction sa = { .sa_handler = fo_on_signal }, o1, o2;
	volatile unsigned char *q = p + pg * PG;
	sigaction(SIGSEGV, &sa, &o1);
	sigaction(SIGBUS, &sa, &o2);
	fo_sig = 0;
	if (sigsetjmp(fo_jmp, 1) == 0) {
		if (write)
			q[1] = v;
		else
			(void)q[0];
	}
	sigaction(SIGSEGV, &o1, NULL);
	sigaction(SIGBUS, &o2, NULL);
	return fo_sig;
}

static unsigned char fo_mark(size_t pg, unsigned who)
{
	return (unsigned char)(0xa0 + pg * 3 + who);
}

/* Do pages [0, NP) of p hold pattern s, and byte 1 of each page
 * written[pg] ? fo_mark(pg, who) : 0 (the pattern's files hold 0)? */
static bool fo_holds(unsigned char *p, unsigned s, const bool *written,
                     unsigned who)
{
	for (size_t pg = 0; pg < NP; pg++) {
		if (!ij_holds(p, s, pg, 1))
			return false;
		unsigned char want = written && written[pg] ?
		                     fo_mark(pg, who) : 0;
		if (p[pg * PG + 1] != want)
			return false;
	}
	return true;
}

/* Touch every page of [0, NP) (writes: mark them).  => signals raised. */
static int fo_all(unsigned char *p, bool write, bool *written, unsigned who)
{
	int sigs = 0;
	for (size_t pg = 0; pg < NP; pg++) {
		sigs += fo_touch(p, pg, write, fo_mark(pg, who)) != 0;
		if (write && written)
			written[pg] = true;
	}
	return sigs;
}

/* In a child: read the fo_pages of p, check them.  => 0 or an exit code. */
static int fo_fetch(unsigned char *p, unsigned s)
{
	for (size_t k = 0; k < FO_NPAGES; k++) {
		if (fo_touch(p, fo_pages[k], false, 0))
			return 20;
		if (!ij_holds(p, s, fo_pages[k], 1))
			return 21;
	}
	return 0;
}

/* A region (flags, advice adv) of a new file of NP pages of pattern s:
 * the file in *fd, the region's base in *p. */
static struct uvm_region *fo_map(unsigned s, int adv, int flags, int *fd,
                                 unsigned char **p)
{
	*fd = ij_file(s, NP);
	struct uvm_region *r = uvm_map_file(*fd, 0, NP * PG, RW, flags);
	cr_assert_not_null(r);
	cr_assert_eq(uvm_advise(r, adv), 0);
	*p = uvm_base(r);
	return r;
}

/* Wait for child pid (exit 0) and for the pager to retire its lease. */
static void fo_wait(pid_t pid)
{
	int st = pu_wait(pid);
	cr_assert_eq(st, 0, "child: %d", st);
	cr_assert(pu_leases_drained(), "lease never retired");
}

/* In a child: read every page, then write every page, checking the data
 * (pattern s) after each.  => 0 or an exit code. */
static int fo_child_rw(unsigned char *p, unsigned s)
{
	bool written[NP] = { false };
	if (fo_all(p, false, NULL, 1) || !fo_holds(p, s, NULL, 1))
		return 10;
	if (fo_all(p, true, written, 1) || !fo_holds(p, s, written, 1))
		return 11;
	return 0;
}

/* Unmap r, wait for every lease, and check nothing of the pager's is
 * left: no region, no anon, no pool memory (the pages the child fetched
 * into the window included). */
static void fo_end(struct uvm_region *r, int fd)
{
	cr_assert_eq(uvm_unmap(r, 0, NP * PG), 0);
	cr_assert(pu_leases_drained(), "lease never retired");
	close(fd);
	ij_all_gone();
}

/* The child fetches the fo_pages; the parent then reads every page
 * (write_first: writes every page) and writes every page (or reads),
 * either after the child is gone and its pages thawed (child_gone), or
 * while it lives, checking again after the thaw. */
/* What a fetching child checks last: its view of every page of p. */
typedef bool fo_check_fn(unsigned char *p, unsigned s);

static bool fo_unwritten(unsigned char *p, unsigned s)
{
	return fo_holds(p, s, NULL, 0);   /* the parent's writes never show */
}

static bool fo_filedata(unsigned char *p, unsigned s)
{
	return ij_holds(p, s, 0, NP);
}

/* A fork child that fetches the fo_pages of p (pattern s), then, if
 * hold, waits for the parent's go (fo_go) and exits with code bad if
 * check fails at the end.  Returns once the child has fetched; *go_wr
 * is the pipe end to send the go on. */
static pid_t fo_fetcher(unsigned char *p, unsigned s, bool hold,
                        fo_check_fn *check, int bad, int *go_wr)
{
	int go[2], done[2];
	cr_assert_eq(pipe(go), 0);
	cr_assert_eq(pipe(done), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char x;
		int e = fo_fetch(p, s);
		if (write(done[1], "d", 1) != 1)
			_exit(3);
		if (hold && read(go[0], &x, 1) != 1)
			_exit(4);
		if (!e && !check(p, s))
			e = bad;
		_exit(e);
	}
	char x;
	cr_assert_eq(read(done[0], &x, 1), 1);
	*go_wr = go[1];
	return pid;
}

static void fo_go(int go_wr)
{
	cr_assert_eq(write(go_wr, "g", 1), 1);
}

/* The child fetches the fo_pages; the parent then reads every page
 * (write_first: writes every page) and writes every page (or reads),
 * either after the child is gone and its pages thawed (child_gone), or
 * while it lives, checking again after the thaw. */
static void fo_child_fetch(int adv, bool child_gone, bool write_first)
{
	int fd, go;
	unsigned char *p;
	struct uvm_region *r = fo_map(2, adv, UVM_MAP_PRIVATE,
	                              &fd, &p);
	bool written[NP] = { false };
	cr_assert_eq(fo_touch(p, 20, false, 0), 0);  /* cached before */
	pid_t pid = fo_fetcher(p, 2, !child_gone, fo_unwritten, 22, &go);
	if (child_gone)
		fo_wait(pid);
	int sigs = fo_all(p, write_first, written, 0);
	cr_assert_eq(sigs, 0, "%d of %d parent %s signalled", sigs, NP,
	             write_first ? "writes" : "reads");
	cr_assert(fo_holds(p, 2, written, 0), "parent's data");
	if (!child_gone) {
		fo_go(go);
		fo_wait(pid);
		cr_assert(fo_holds(p, 2, written, 0), "data after the thaw");
	}
	sigs = fo_all(p, !write_first, written, 0);
	cr_assert_eq(sigs, 0, "%d of %d parent accesses signalled", sigs, NP);
	cr_assert(fo_holds(p, 2, written, 0), "parent's data at the end");
	cr_assert(ij_file_holds(fd, 2, 0, NP), "the file never changes");
	fo_end(r, fd);
}

Test(fork_object, child_fetch_then_parent_reads, .timeout = 30)
{
	fo_child_fetch(UVM_ADV_NORMAL, true, false);
}

Test(fork_object, child_fetch_then_parent_writes, .timeout = 30)
{
	fo_child_fetch(UVM_ADV_NORMAL, true, true);
}

Test(fork_object, child_fetch_random_advice, .timeout = 30)
{
	fo_child_fetch(UVM_ADV_RANDOM, true, false);
	fo_child_fetch(UVM_ADV_RANDOM, true, true);
}

Test(fork_object, child_fetch_sequential_advice, .timeout = 30)
{
	fo_child_fetch(UVM_ADV_SEQUENTIAL, true, false);
	fo_child_fetch(UVM_ADV_SEQUENTIAL, true, true);
}

Test(fork_object, parent_reads_while_child_lives, .timeout = 30)
{
	fo_child_fetch(UVM_ADV_NORMAL, false, false);
}

Test(fork_object, parent_writes_while_child_lives, .timeout = 30)
{
	fo_child_fetch(UVM_ADV_NORMAL, false, true);
}

/* The other direction: the parent fetches pages after the fork; the
 * child then reads and writes every page (its writes stay its own). */
Test(fork_object, parent_fetch_then_child_accesses, .timeout = 30)
{
	int fd;
	unsigned char *p;
	struct uvm_region *r = fo_map(3, UVM_ADV_NORMAL, UVM_MAP_PRIVATE,
	                              &fd, &p);
	int go[2];
	cr_assert_eq(pipe(go), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char x;
		if (read(go[0], &x, 1) != 1)
			_exit(3);
		_exit(fo_child_rw(p, 3));
	}
	cr_assert_eq(fo_fetch(p, 3), 0);
	cr_assert_eq(write(go[1], "g", 1), 1);
	fo_wait(pid);
	cr_assert(fo_holds(p, 3, NULL, 0), "the child's writes stay there");
	cr_assert(ij_file_holds(fd, 3, 0, NP));
	fo_end(r, fd);
}

/* A fork chain: the grandchild fetches pages; then the child (its
 * parent) and the first process write every page. */
Test(fork_object, grandchild_fetch, .timeout = 30)
{
	int fd;
	unsigned char *p;
	struct uvm_region *r = fo_map(4, UVM_ADV_NORMAL, UVM_MAP_PRIVATE,
	                              &fd, &p);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		pid_t g = fork();
		if (g < 0)
			_exit(2);
		if (g == 0)
			_exit(fo_fetch(p, 4));
		if (pu_wait(g) != 0)
			_exit(3);
		_exit(fo_child_rw(p, 4));
	}
	fo_wait(pid);
	bool written[NP] = { false };
	cr_assert_eq(fo_all(p, true, written, 0), 0, "parent writes");
	cr_assert(fo_holds(p, 4, written, 0));
	cr_assert(ij_file_holds(fd, 4, 0, NP));
	fo_end(r, fd);
}

/* The child fetches through a uvm_copy of the region (same object);
 * then the parent writes every page, through the region and a copy it
 * made before the fork. */
Test(fork_object, child_fetch_through_a_copy, .timeout = 30)
{
	int fd;
	unsigned char *p;
	struct uvm_region *r = fo_map(5, UVM_ADV_NORMAL, UVM_MAP_PRIVATE,
	                              &fd, &p);
	struct uvm_region *c = uvm_copy(r);
	cr_assert_not_null(c);
	unsigned char *q = uvm_base(c);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct uvm_region *cc = uvm_copy(r);
		if (!cc)
			_exit(2);
		int e = fo_fetch(uvm_base(cc), 5);
		if (!e && !fo_holds(p, 5, NULL, 0))
			e = 12;
		_exit(e);
	}
	fo_wait(pid);
	bool written[NP] = { false }, wq[NP] = { false };
	cr_assert_eq(fo_all(q, false, NULL, 1), 0, "copy reads");
	cr_assert_eq(fo_all(p, true, written, 0), 0, "parent writes");
	cr_assert_eq(fo_all(q, true, wq, 1), 0, "copy writes");
	cr_assert(fo_holds(p, 5, written, 0));
	cr_assert(fo_holds(q, 5, wq, 1));
	cr_assert(ij_file_holds(fd, 5, 0, NP));
	cr_assert_eq(uvm_unmap(c, 0, NP * PG), 0);
	fo_end(r, fd);
}

/* A shared region: the child fetches pages, the parent writes every page
 * in place and flushes; the file holds the parent's writes. */
Test(fork_object, child_fetch_then_shared_parent_writes, .timeout = 30)
{
	int fd;
	unsigned char *p;
	struct uvm_region *r = fo_map(6, UVM_ADV_NORMAL, UVM_MAP_SHARED,
	                              &fd, &p);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(fo_fetch(p, 6));
	fo_wait(pid);
	bool written[NP] = { false };
	cr_assert_eq(fo_all(p, true, written, 0), 0, "parent writes");
	cr_assert(fo_holds(p, 6, written, 0));
	cr_assert_eq(uvm_flush(r), 0);
	unsigned char b[NP];
	for (size_t pg = 0; pg < NP; pg++)
		cr_assert_eq(pread(fd, &b[pg], 1, (off_t)(pg * PG + 1)), 1);
	for (size_t pg = 0; pg < NP; pg++)
		cr_assert_eq(b[pg], fo_mark(pg, 0), "file page %zu", pg);
	fo_end(r, fd);
}

/* Pages only the child fetched, which the parent never touches, are
 * freed with the object: unmapped after the child is gone, or while it
 * lives (then at the thaw). */
static void fo_leak(bool child_gone)
{
	int fd, go;
	unsigned char *p;
	struct uvm_region *r = fo_map(7, UVM_ADV_NORMAL, UVM_MAP_PRIVATE,
	                              &fd, &p);
	/* the child checks its pages are still there at the end */
	pid_t pid = fo_fetcher(p, 7, true, fo_filedata, 23, &go);
	cr_assert_gt(pu_pool_bytes(), 0, "the child's pages in our file");
	if (child_gone) {
		fo_go(go);
		fo_wait(pid);
		fo_end(r, fd);
		return;
	}
	cr_assert_eq(uvm_unmap(r, 0, NP * PG), 0);
	fo_go(go);                     /* the child still reads */
	fo_wait(pid);
	close(fd);
	ij_all_gone();
}

Test(fork_object, child_pages_freed_after_child, .timeout = 30)
{
	fo_leak(true);
}

Test(fork_object, child_pages_freed_while_child_lives, .timeout = 30)
{
	fo_leak(false);
}
