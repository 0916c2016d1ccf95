/*
 * Concurrent faults: many threads zero-filling, writing in place and
 * copying on write at once, while another thread takes copies.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>

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
