/*
 * fork() of a process owning managed regions: the child sees the
 * contents at the fork, and writes stay on their side.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "pager/pager.h"
#include "util.h"

#define NP 256

static struct uvm_region *filled(unsigned salt)
{
	struct uvm_region *r = uvm_map_anon(NP * PG, PROT_READ | PROT_WRITE);
	cr_assert_not_null(r);
	unsigned char *b = uvm_base(r);
	for (size_t i = 0; i < NP; i += 2)   /* odd pages stay empty */
		b[i * PG] = (unsigned char)(i + salt);
	return r;
}

static int check(struct uvm_region *r, unsigned salt)
{
	unsigned char *b = uvm_base(r);
	for (size_t i = 0; i < NP; i++) {
		unsigned char want = i % 2 ? 0 : (unsigned char)(i + salt);
		if (b[i * PG] != want)
			return (int)i + 1;
	}
	return 0;
}

Test(fork, writes_stay_on_their_side, .timeout = 30)
{
	struct uvm_region *r = filled(0), *c = uvm_copy(r);
	cr_assert_not_null(c);
	unsigned char *b = uvm_base(r), *q = uvm_base(c);
	q[2 * PG] = 0x77;   /* c diverges from r before the fork */
	int go[2], done[2];
	cr_assert_eq(pipe(go), 0);
	cr_assert_eq(pipe(done), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char x;
		if (q[2 * PG] != 0x77 || b[2 * PG] != 2)
			_exit(2);
		/* the child's writes: shared pages, empty pages, both regions */
		b[0] = 0xc0;
		b[1 * PG] = 0xc1;
		q[4 * PG] = 0xc4;
		q[3 * PG] = 0xc3;
		if (write(done[1], "w", 1) != 1 || read(go[0], &x, 1) != 1)
			_exit(3);
		/* the parent has written meanwhile: none of it shows here */
		if (b[0] != 0xc0 || b[1 * PG] != 0xc1 || b[6 * PG] != 6 ||
		    b[7 * PG] != 0 || q[4 * PG] != 0xc4 || q[8 * PG] != 8)
			_exit(4);
		/* the pager works in the child: new regions and copies too */
		struct uvm_region *n = uvm_map_anon(16 * PG, PROT_READ | PROT_WRITE);
		struct uvm_region *nc = n ? uvm_copy(n) : NULL;
		if (!nc)
			_exit(5);
		((char *)uvm_base(n))[0] = 1;
		if (((char *)uvm_base(nc))[0] != 0)
			_exit(6);
		_exit(0);
	}
	char x;
	cr_assert_eq(read(done[0], &x, 1), 1);
	cr_assert_eq(b[0], 0, "child's write reached the parent");
	cr_assert_eq(b[1 * PG], 0);
	cr_assert_eq(q[4 * PG], 4);
	cr_assert_eq(q[3 * PG], 0);
	b[6 * PG] = 0xa6;
	b[7 * PG] = 0xa7;
	q[8 * PG] = 0xa8;
	cr_assert_eq(write(go[1], "g", 1), 1);
	cr_assert_eq(pu_wait(pid), 0);
	cr_assert_eq(b[6 * PG], 0xa6);
	cr_assert_eq(b[7 * PG], 0xa7);
	cr_assert_eq(q[2 * PG], 0x77);
	cr_assert_eq(b[2 * PG], 2);
}

/* Children of children, and many forks: every generation keeps its own
 * contents, and the parent's memory is never written by a child. */
Test(fork, generations, .timeout = 60)
{
	struct uvm_region *r = filled(3);
	for (int gen = 0; gen < 3; gen++) {
		pid_t pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0) {
			if (check(r, 3) != 0)
				_exit(10);
			unsigned char *b = uvm_base(r);
			for (size_t i = 0; i < NP; i++)
				b[i * PG] = 0xee;
			pid_t g = fork();
			if (g == 0) {
				for (size_t i = 0; i < NP; i++)
					if (b[i * PG] != 0xee)
						_exit(11);
				memset(b, 0x11, NP * PG);
				_exit(0);
			}
			if (pu_wait(g) != 0)
				_exit(12);
			for (size_t i = 0; i < NP; i++)
				if (b[i * PG] != 0xee || b[i * PG + 1] != 0)
					_exit(13);
			_exit(0);
		}
		cr_assert_eq(pu_wait(pid), 0, "generation %d", gen);
		cr_assert_eq(check(r, 3), 0);
	}
	/* and the parent can still write in place after it */
	unsigned char *b = uvm_base(r);
	b[0] = 0x55;
	cr_assert_eq(b[0], 0x55);
}

/* A region whose amap is shared (a copy, not yet written) forks. */
Test(fork, shared_amap_then_fork, .timeout = 30)
{
	struct uvm_region *r = filled(9), *c = uvm_copy(r);
	pid_t pid = fork();
	if (pid == 0) {
		unsigned char *q = uvm_base(c);
		q[0] = 1;
		_exit(check(r, 9) == 0 && q[0] == 1 && q[2 * PG] == 11 ? 0 : 1);
	}
	cr_assert_eq(pu_wait(pid), 0);
	cr_assert_eq(check(r, 9), 0);
	cr_assert_eq(check(c, 9), 0);
}

/* When the child is gone (exit or exec), the parent's pages thaw: writes
 * are in place again (case 1A) and the pages freed while the child lived
 * go back to the system. */
static void thaw_after(int exec_child)
{
	size_t np = 64;
	struct uvm_region *r = uvm_map_anon(np * PG, PROT_READ | PROT_WRITE);
	char *b = uvm_base(r);
	for (size_t i = 0; i < np; i++)
		b[i * PG] = 1;
	long long before = pu_pool_bytes();
	int go[2];
	cr_assert_eq(pipe(go), 0);
	pid_t pid = fork();
	if (pid == 0) {
		char x;
		close(go[1]);
		if (read(go[0], &x, 1) != 1 || b[0] != 1)
			_exit(1);
		if (exec_child)
			execl("/bin/true", "true", (char *)NULL);
		_exit(0);
	}
	close(go[0]);
	b[0] = 2;                        /* frozen: copied (1B) */
	struct uvm_stats st;
	uvm_stats(r, &st);
	cr_assert_eq(st.us_fault_1b, 1);
	cr_assert_eq(pu_pool_bytes(), before + PG);
	cr_assert_eq(write(go[1], "g", 1), 1);
	cr_assert_eq(pu_wait(pid), 0);
	cr_assert(pu_leases_drained(), "lease never retired");
	/* the old page 0 was punched; a write now is made in place */
	cr_assert_eq(pu_pool_bytes(), before);
	b[PG] = 3;
	uvm_stats(r, &st);
	cr_assert_eq(st.us_fault_1a, 1, "1a %lu 1b %lu",
	             (unsigned long)st.us_fault_1a, (unsigned long)st.us_fault_1b);
	cr_assert_eq(st.us_fault_1b, 1);
	cr_assert_eq(pu_pool_bytes(), before);
	cr_assert_eq(b[0], 2);
	cr_assert_eq(uvm_unmap(r, 0, np * PG), 0);
}

Test(fork, thaw_after_child_exits, .timeout = 30)
{
	thaw_after(0);
}

Test(fork, thaw_after_child_execs, .timeout = 30)
{
	thaw_after(1);
}
