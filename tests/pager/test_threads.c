/*
 * Concurrent faults: many threads zero-filling, writing in place and
 * copying on write at once, while another thread takes copies.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "pager/pager.h"
#include "util.h"

#define NT 6
#define NP 4096   /* 16 MiB */

struct job {
	unsigned char *base;
	int t;
	unsigned char val;
	int bad;
};

static void *writer(void *arg)
{
	struct job *j = arg;
	unsigned long long x = (unsigned long long)j->t * 7919 + 1;
	/* every page this thread owns, in random order, twice */
	for (int pass = 0; pass < 2; pass++) {
		for (int k = 0; k < NP / NT * 2; k++) {
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
			size_t i = (size_t)(x >> 33) % (NP / NT) * NT + (size_t)j->t;
			j->base[i * PG + (size_t)j->t] = j->val;
		}
	}
	for (size_t i = (size_t)j->t; i < NP / NT * NT; i += NT) {
		unsigned char v = j->base[i * PG + (size_t)j->t];
		if (v != j->val && v != 0)
			j->bad++;
	}
	return NULL;
}

static void run(unsigned char *base, unsigned char val, struct job *jobs)
{
	pthread_t th[NT];
	for (int t = 0; t < NT; t++) {
		jobs[t] = (struct job){ base, t, (unsigned char)(val + t), 0 };
		cr_assert_eq(pthread_create(&th[t], NULL, writer, &jobs[t]), 0);
	}
	for (int t = 0; t < NT; t++)
		pthread_join(th[t], NULL);
	for (int t = 0; t < NT; t++)
		cr_assert_eq(jobs[t].bad, 0, "thread %d", t);
}

Test(threads, zero_fill_and_cow_from_many_threads, .timeout = 60)
{
	struct uvm_region *r = uvm_map_anon(NP * PG, PROT_READ | PROT_WRITE);
	cr_assert_not_null(r);
	unsigned char *b = uvm_base(r);
	struct job jobs[NT];
	run(b, 10, jobs);                 /* zero-fill faults */
	struct uvm_region *c = uvm_copy(r);
	cr_assert_not_null(c);
	unsigned char *q = uvm_base(c);
	run(q, 50, jobs);                 /* copy-on-write faults */
	run(b, 90, jobs);                 /* the source: 1A after 1B */
	for (size_t i = 0; i < NP / NT * NT; i++) {
		int t = (int)(i % NT);
		/* pages not hit by the random order stay at the earlier value */
		unsigned char vq = q[i * PG + (size_t)t];
		cr_assert(vq == 50 + t || vq == 10 + t || vq == 0, "page %zu", i);
		unsigned char vb = b[i * PG + (size_t)t];
		cr_assert(vb == 90 + t || vb == 10 + t || vb == 0, "page %zu", i);
	}
	struct uvm_stats st;
	cr_assert_eq(uvm_stats(c, &st), 0);
	cr_assert_gt(st.us_fault_1b, 0);
	cr_assert_eq(uvm_unmap(c, 0, NP * PG), 0);
	cr_assert_eq(uvm_unmap(r, 0, NP * PG), 0);
}

/* Copies taken while other threads write: every copy is a snapshot in
 * which each page holds some value its writer wrote (or zero). */
static atomic_int stop;

static void *scribbler(void *arg)
{
	unsigned char *b = arg;
	unsigned char v = 1;
	while (!atomic_load(&stop)) {
		for (size_t i = 0; i < 256; i++)
			b[i * PG] = v;
		v = (unsigned char)(v % 200 + 1);
	}
	return NULL;
}

Test(threads, copies_while_writing, .timeout = 60)
{
	struct uvm_region *r = uvm_map_anon(256 * PG, PROT_READ | PROT_WRITE);
	cr_assert_not_null(r);
	pthread_t th[2];
	atomic_store(&stop, 0);
	for (int t = 0; t < 2; t++)
		pthread_create(&th[t], NULL, scribbler, uvm_base(r));
	for (int k = 0; k < 200; k++) {
		struct uvm_region *c = uvm_copy(r);
		cr_assert_not_null(c);
		unsigned char *q = uvm_base(c);
		unsigned char first = q[0];
		for (size_t i = 0; i < 256; i++)
			cr_assert_leq(q[i * PG], 200);
		/* the snapshot does not move while the writers go on */
		for (int spin = 0; spin < 1000; spin++)
			cr_assert_eq(q[0], first);
		cr_assert_eq(uvm_unmap(c, 0, 256 * PG), 0);
	}
	atomic_store(&stop, 1);
	for (int t = 0; t < 2; t++)
		pthread_join(th[t], NULL);
	cr_assert_eq(uvm_unmap(r, 0, 256 * PG), 0);
}

/* Collapses (forced often here, with a pause between mmap and
 * UFFDIO_REGISTER) remap a region under threads that keep touching it,
 * empty pages included: nothing written may be lost, and no page may be
 * left in the pool without an anon. */
#define CP 2048

struct toucher {
	unsigned char *q;
	int t;
	atomic_int *stop;
	unsigned char *mine;   /* writers: value last written per page */
	long bad;
};

/* Writers write random even pages (shared: COW faults, collapses). */
static void *cw_main(void *arg)
{
	struct toucher *w = arg;
	unsigned long long x = (unsigned long long)w->t * 104729 + 7;
	for (int k = 0; k < 300; k++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		size_t i = (size_t)(x >> 33) % (CP / 4) * 4 + (size_t)w->t * 2;
		unsigned char v = (unsigned char)(x >> 24) | 1;
		w->q[i * PG + 8] = v;
		w->mine[i] = v;
	}
	return NULL;
}

/* Readers sweep the even pages (present: the kernel serves them, the
 * reader keeps running while the pager works) and now and then an odd
 * page, which was never written: zero.  An odd page touched while a
 * collapse has it mapped but not yet registered is allocated by the
 * kernel (region.c, rg_adopt_strays). */
static void *cr_main(void *arg)
{
	struct toucher *w = arg;
	size_t odd = (size_t)w->t * 2 + 1;
	while (!atomic_load(w->stop)) {
		for (size_t i = 0; i < CP; i += 2) {
			if (w->q[i * PG + 8] == 0)
				w->bad++;   /* even pages are never zero */
			if (i % 256 == 0) {
				odd = (odd + 4) % CP;
				if (w->q[odd * PG + 8] != 0)
					w->bad++;
			}
		}
	}
	return NULL;
}

static void slow_window(uintptr_t va, size_t len)
{
	usleep(300);
}

Test(threads, collapse_under_concurrent_touches, .timeout = 60)
{
	struct uvm_region *r = uvm_map_anon(CP * PG, PROT_READ | PROT_WRITE);
	cr_assert_not_null(r);
	unsigned char *b = uvm_base(r);
	uvm_advise(r, UVM_ADV_RANDOM);
	for (size_t i = 0; i < CP; i += 2)   /* odd pages stay empty */
		b[i * PG + 8] = (unsigned char)(i | 1);
	/* collapse at the first COWs, and remap slowly */
	__atomic_store_n(&uvm_pager.up_runs_base, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&uvm_pager.up_test_window, slow_window,
	                 __ATOMIC_RELEASE);
	unsigned long collapses = 0;
	for (int round = 0; round < 8; round++) {
		struct uvm_region *c = uvm_copy(r);
		cr_assert_not_null(c);
		uvm_advise(c, UVM_ADV_RANDOM);
		atomic_int halt = 0;
		struct toucher w[4];
		pthread_t th[4];
		/* readers first, so that they run when the first COW
		 * fault collapses the copy */
		for (int t = 3; t >= 0; t--) {
			w[t] = (struct toucher){ uvm_base(c), t % 2, &halt,
			                         calloc(CP, 1), 0 };
			pthread_create(&th[t], NULL, t < 2 ? cw_main : cr_main,
			               &w[t]);
			if (t == 2)
				usleep(3000);
		}
		pthread_join(th[0], NULL);
		pthread_join(th[1], NULL);
		atomic_store(&halt, 1);
		pthread_join(th[2], NULL);
		pthread_join(th[3], NULL);
		cr_assert_eq(w[2].bad + w[3].bad, 0, "round %d: readers", round);
		unsigned char *q = uvm_base(c);
		for (size_t i = 0; i < CP; i++) {
			unsigned char v = w[(i / 2) % 2].mine[i];
			unsigned char base = i % 2 ? 0 : (unsigned char)(i | 1);
			cr_assert_eq(q[i * PG + 8], v ? v : base,
			             "round %d: copy page %zu", round, i);
			cr_assert_eq(b[i * PG + 8], base, "source page %zu", i);
		}
		struct uvm_stats st;
		uvm_stats(c, &st);
		collapses += st.us_collapses;
		for (int t = 0; t < 4; t++)
			free(w[t].mine);
		cr_assert_eq(uvm_unmap(c, 0, CP * PG), 0);
		/* only r's pages are left (the check above filled its odd
		 * pages): nothing leaked, no stray page in the pool */
		uvm_stats(r, &st);
		cr_assert_eq(st.us_pool_pages, st.us_anons, "round %d", round);
		cr_assert_eq(pu_pool_bytes(), (long long)st.us_anons * PG,
		             "round %d: pages left in the pool", round);
	}
	__atomic_store_n(&uvm_pager.up_runs_base, 64, __ATOMIC_RELAXED);
	__atomic_store_n(&uvm_pager.up_test_window, NULL, __ATOMIC_RELEASE);
	cr_log_info("collapses: %lu", collapses);
	cr_assert_geq(collapses, 8);
	cr_assert_eq(uvm_unmap(r, 0, CP * PG), 0);
}
