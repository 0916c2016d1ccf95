/*
 * Randomized model test: managed regions against plain memory.
 *
 * Each live region has a model buffer.  Random steps write, copy
 * (uvm_copy: the model is memcpy'd, which is what fork would show),
 * release ranges, destroy, advise and wire; after every step every
 * accessible page of every region is compared with its model, and
 * released pages must fault.  At the end of each seed every page must
 * have gone back to the system.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "pager/pager.h"
#include "util.h"

#define MAXR 6

struct mreg {
	struct uvm_region *r;
	unsigned char *model;
	unsigned char *released;
	unsigned char *touched;   /* accessed: compared after every step */
	size_t npages;
};

static struct mreg regs[MAXR];
static unsigned long long rng;
static bool eager;   /* compare untouched pages too (populates them) */
static bool forked;  /* this seed forked: its pages stay frozen */

static unsigned rnd(unsigned n)
{
	rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
	return (unsigned)((rng >> 33) % n);
}

static void mreg_new(struct mreg *m, size_t npages)
{
	m->r = uvm_map_anon(npages * PG, PROT_READ | PROT_WRITE);
	cr_assert_not_null(m->r, "uvm_map_anon: %s", strerror(errno));
	m->npages = npages;
	m->model = calloc(npages, PG);
	m->released = calloc(npages, 1);
	m->touched = calloc(npages, 1);
}

static void mreg_free(struct mreg *m)
{
	cr_assert_eq(uvm_unmap(m->r, 0, m->npages * PG), 0);
	free(m->model);
	free(m->released);
	free(m->touched);
	memset(m, 0, sizeof *m);
}

static void check_all(unsigned seed, int step)
{
	for (int k = 0; k < MAXR; k++) {
		struct mreg *m = &regs[k];
		if (!m->r)
			continue;
		unsigned char *b = uvm_base(m->r);
		for (size_t i = 0; i < m->npages; i++) {
			if (m->released[i] || !(eager || m->touched[i]))
				continue;
			if (memcmp(b + i * PG, m->model + i * PG, PG) != 0)
				cr_assert_fail("seed %u step %d: region %d page %zu "
				         "differs", seed, step, k, i);
		}
	}
}

static struct mreg *pick(void)
{
	int live[MAXR], n = 0;
	for (int k = 0; k < MAXR; k++)
		if (regs[k].r)
			live[n++] = k;
	return n ? &regs[live[rnd((unsigned)n)]] : NULL;
}

static struct mreg *free_slot(void)
{
	for (int k = 0; k < MAXR; k++)
		if (!regs[k].r)
			return &regs[k];
	return NULL;
}

static void op_write(struct mreg *m)
{
	unsigned char *b = uvm_base(m->r);
	int n = 1 + (int)rnd(8);
	for (int k = 0; k < n; k++) {
		size_t i = rnd((unsigned)m->npages);
		if (m->released[i])
			continue;
		size_t off = i * PG + rnd(PG - 64);
		size_t len = 1 + rnd(64);
		unsigned char v = (unsigned char)rnd(256);
		memset(b + off, v, len);
		memset(m->model + off, v, len);
		m->touched[i] = 1;
	}
}

static void op_copy(struct mreg *m)
{
	struct mreg *c = free_slot();
	if (!c)
		return;
	c->r = uvm_copy(m->r);
	cr_assert_not_null(c->r, "uvm_copy: %s", strerror(errno));
	c->npages = m->npages;
	c->model = malloc(m->npages * PG);
	memcpy(c->model, m->model, m->npages * PG);
	c->released = malloc(m->npages);
	memcpy(c->released, m->released, m->npages);
	c->touched = malloc(m->npages);
	memcpy(c->touched, m->touched, m->npages);
	cr_assert_eq(uvm_size(c->r), m->npages * PG);
}

static void op_release(struct mreg *m)
{
	size_t first = rnd((unsigned)m->npages);
	size_t n = 1 + rnd((unsigned)(m->npages - first));
	if (first == 0 && n == m->npages)
		n--;
	if (n == 0)
		return;
	cr_assert_eq(uvm_unmap(m->r, first * PG, n * PG), 0,
	             "uvm_unmap: %s", strerror(errno));
	memset(m->released + first, 1, n);
	memset(m->model + first * PG, 0, n * PG);
	unsigned char *b = uvm_base(m->r);
	cr_assert_eq(pu_probe((char *)b + first * PG, 0), SIGSEGV);
}

static void op_wire(struct mreg *m)
{
	size_t first = rnd((unsigned)m->npages);
	size_t n = 1 + rnd((unsigned)(m->npages - first));
	cr_assert_eq(uvm_wire(m->r, first * PG, n * PG), 0,
	             "uvm_wire: %s", strerror(errno));
}

/* fork: the child must see every region as the model says, and its
 * writes must stay in the child (check_all after the step checks the
 * parent).  The parent writes while the child runs. */
static int fork_child_checks(void)
{
	for (int k = 0; k < MAXR; k++) {
		struct mreg *m = &regs[k];
		if (!m->r)
			continue;
		unsigned char *b = uvm_base(m->r);
		for (size_t i = 0; i < m->npages; i++) {
			if (m->released[i])
				continue;
			if (memcmp(b + i * PG, m->model + i * PG, PG) != 0)
				return 10 + k;
			b[i * PG + (i % 61)] ^= 0xa5;   /* the child writes */
			m->model[i * PG + (i % 61)] ^= 0xa5;
			if (memcmp(b + i * PG, m->model + i * PG, PG) != 0)
				return 20 + k;
		}
	}
	return 0;
}

static void op_fork(unsigned seed, int step)
{
	int go[2];
	cr_assert_eq(pipe(go), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char x;
		close(go[1]);
		if (read(go[0], &x, 1) != 1)
			_exit(2);
		_exit(fork_child_checks());
	}
	close(go[0]);
	forked = true;
	struct mreg *m = pick();
	if (m)
		op_write(m);   /* the parent's writes: not the child's business */
	cr_assert_eq(write(go[1], "g", 1), 1);
	close(go[1]);
	int st = pu_wait(pid);
	cr_assert_eq(st, 0, "seed %u step %d: fork child failed (%d)", seed,
	             step, st);
}

static void run_seed(unsigned seed, int steps)
{
	rng = seed * 0x9E3779B97F4A7C15ULL + 1;
	eager = seed % 2;
	forked = false;
	cr_assert(pu_leases_drained(), "seed %u: children not retired", seed);
	long long held_before = pu_pool_bytes();
	memset(regs, 0, sizeof regs);
	mreg_new(&regs[0], 1 + rnd(48));
	for (int s = 0; s < steps; s++) {
		struct mreg *m = pick();
		unsigned op = rnd(100);
		if (!m) {
			mreg_new(&regs[0], 1 + rnd(48));
		} else if (op < 45) {
			op_write(m);
		} else if (op < 60) {
			op_copy(m);
		} else if (op < 70) {
			op_release(m);
		} else if (op < 76) {
			mreg_free(m);
		} else if (op < 84) {
			struct mreg *f = free_slot();
			if (f)
				mreg_new(f, 1 + rnd(48));
		} else if (op < 90) {
			cr_assert_eq(uvm_advise(m->r, (int)rnd(3)), 0);
		} else if (op < 93) {
			op_wire(m);
		} else if (op < 94) {
			if (seed % 4 == 0)
				op_fork(seed, s);
		} else {
			/* read a random page (a zero-fill or shared read) */
			size_t i = rnd((unsigned)m->npages);
			unsigned char *b = uvm_base(m->r);
			size_t o = i * PG + rnd(PG);
			if (!m->released[i]) {
				cr_assert_eq(b[o], m->model[o], "seed %u", seed);
				m->touched[i] = 1;
			}
		}
		check_all(seed, s);
	}
	for (int k = 0; k < MAXR; k++)
		if (regs[k].r)
			mreg_free(&regs[k]);
	/* every page went back: the pager's count and the kernel's */
	struct uvm_region *probe = uvm_map_anon(PG, PROT_READ);
	cr_assert_eq(pu_pool_pages(probe), 0, "seed %u leaked pages", seed);
	/* pages frozen by a fork are given back only when both processes
	 * are gone (docs/pager.md) */
	long long held = pu_pool_bytes();
	if (!forked)
		cr_assert_eq(held, held_before, "seed %u: pool holds %lld bytes",
		             seed, held - held_before);
	uvm_unmap(probe, 0, PG);
}

Test(model, random_sequences, .timeout = 100)
{
	for (unsigned seed = 1; seed <= 150; seed++)
		run_seed(seed, 200);
}

/* The same with a tiny mapping allowance, so that copy-on-write faults
 * keep collapsing regions (region.c, rg_collapse). */
Test(model, random_sequences_collapsing, .timeout = 100)
{
	struct uvm_region *r = uvm_map_anon(PG, PROT_READ);
	cr_assert_not_null(r);
	__atomic_store_n(&uvm_pager.up_runs_base, 1, __ATOMIC_RELAXED);
	uvm_unmap(r, 0, PG);
	for (unsigned seed = 1000; seed < 1100; seed++)
		run_seed(seed, 200);
}
