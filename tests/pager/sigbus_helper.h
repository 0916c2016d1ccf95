/*
 * Helpers of the SIGBUS suites (test_sigbus.c, test_sigbus_pending.c):
 * a SIGBUS handler that counts, and returns or jumps; the pager's counts
 * of failed faults; the written regions of a failed write fault (1B) and
 * their check; a read that ends in a poisoned page.  Each program gets
 * its own copy of the state below.
 */
#ifndef TESTS_PAGER_SIGBUS_HELPER_H
#define TESTS_PAGER_SIGBUS_HELPER_H

#include "test_inject.h"

#define NPG 32

/* ---- a SIGBUS handler that counts, and returns or jumps ------------ */

static sigjmp_buf sb_jmp;
static volatile sig_atomic_t sb_n;      /* SIGBUS taken by this access */
static volatile sig_atomic_t sb_bail;   /* jump out at this count */
static void *volatile sb_addr;          /* si_addr of the last one */
static volatile int sb_code;            /* si_code of the last one */
static volatile unsigned char sb_val;   /* what a read access read */
static void (*volatile sb_on)(int n);   /* called with the count */

static void sb_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	__atomic_fetch_add(&sb_n, 1, __ATOMIC_RELAXED);   /* threads too */
	sb_addr = si->si_addr;
	sb_code = si->si_code;
	if (sb_on)
		sb_on(sb_n);
	if (sb_n >= sb_bail)
		siglongjmp(sb_jmp, 1);
}

static inline void sb_install(void)
{
	struct sigaction sa = { .sa_sigaction = sb_handler,
	                        .sa_flags = SA_SIGINFO };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

/* Read (or write v to) *p; the handler returns until the bail-th SIGBUS.
 * => 0 if the access completed, -1 if it was left by the handler. */
static inline int sb_access(volatile unsigned char *p, bool write,
                            unsigned char v, int bail)
{
	sb_n = 0;
	sb_bail = bail;
	sb_addr = NULL;
	if (sigsetjmp(sb_jmp, 1))
		return -1;
	if (write)
		*p = v;
	else
		sb_val = *p;
	return 0;
}

/* The pager's counts of failed faults: signalled, poisoned. */
static inline void sb_counts(uint64_t *sig, uint64_t *poi)
{
	pthread_mutex_lock(&uvm_pager.up_lock);
	*sig = uvm_pager.up_bus_signals;
	*poi = uvm_pager.up_bus_poisons;
	pthread_mutex_unlock(&uvm_pager.up_lock);
}

/* Since (s0, p0): ds signals and dp poisons more. */
static inline void sb_expect_counts(uint64_t s0, uint64_t p0, uint64_t ds,
                                    uint64_t dp, const char *what)
{
	uint64_t s, p;
	sb_counts(&s, &p);
	cr_assert_eq(s - s0, ds, "%s: %lu signals, want %lu", what,
	             (unsigned long)(s - s0), (unsigned long)ds);
	cr_assert_eq(p - p0, dp, "%s: %lu poisons, want %lu", what,
	             (unsigned long)(p - p0), (unsigned long)dp);
}

/* The handler installed, a new anonymous region, one page a fault. */
static inline struct uvm_region *sb_anon(void)
{
	sb_install();
	struct uvm_region *r = uvm_map_anon(NPG * PG, RW);
	cr_assert_not_null(r);
	cr_assert_eq(uvm_advise(r, UVM_ADV_RANDOM), 0);
	return r;
}

/* ---- the written regions of section 2 (test_sigbus.c) ------------- */

static struct uvm_region *wr, *ws;   /* the written region, its source */
static int wfd = -1;

/* 1B: a copy whose page 5 is shared with its source ws. */
static inline unsigned char *w_cow(void)
{
	ws = uvm_map_anon(NPG * PG, RW);
	cr_assert_not_null(ws);
	cr_assert_eq(uvm_advise(ws, UVM_ADV_RANDOM), 0);
	ij_fill(uvm_base(ws), 1, 0, NPG);
	wr = uvm_copy(ws);
	cr_assert_not_null(wr);
	((unsigned char *)uvm_base(wr))[1] = 1;   /* amap copied, window */
	return uvm_base(wr);
}

/* w_cow() with the handler installed, the counts taken into *s0 and *p0
 * and the next pool write armed to fail once (ENOSPC): a 1B write that
 * cannot copy its page. */
static inline unsigned char *w_cow_pool_write_fails(uint64_t *s0, uint64_t *p0)
{
	sb_install();
	unsigned char *p = w_cow();
	sb_counts(s0, p0);
	inj_arm(INJ_POOL_WRITE, 0, 1, ENOSPC);
	return p;
}

static inline void w_teardown(void)
{
	if (wr)
		cr_assert_eq(uvm_unmap(wr, 0, NPG * PG), 0);
	if (ws)
		cr_assert_eq(uvm_unmap(ws, 0, NPG * PG), 0);
	if (wfd >= 0)
		close(wfd);
	wr = ws = NULL;
	wfd = -1;
	ij_all_gone();
}

/* After the failed write: page 5 holds its old data (pattern 1) but for
 * byte 100, which holds v if the write landed; the source, if any, is
 * untouched. */
static inline void w_check(const unsigned char *p, int v, const char *what)
{
	cr_assert(ij_holds(p, 1, 5, 1), "%s: the page keeps its data", what);
	cr_assert(ij_holds(p, 1, 0, 5) && ij_holds(p, 1, 6, NPG - 6),
	          "%s: the other pages too", what);
	if (v >= 0)
		cr_assert_eq(p[5 * PG + 100], v, "%s: the write landed", what);
	if (ws)
		cr_assert(ij_holds(uvm_base(ws), 1, 0, NPG), "%s: source", what);
}

/* Read page 7 of a new region while its zero fill fails copies times
 * (-1: always) and set(true) stands in the way of the signal: the page
 * is poisoned (the last resort) and the thread takes the poison's own
 * SIGBUS.  => how many fills failed. */
static inline unsigned sb_read_poisoned(int copies, void (*set)(bool on))
{
	struct uvm_region *r = sb_anon();
	unsigned char *p = uvm_base(r);
	uint64_t s0, p0;
	sb_counts(&s0, &p0);
	inj_arm(INJ_COPY, 0, copies, ENOMEM);
	set(true);
	int a = sb_access(p + 7 * PG, false, 0, 1);
	set(false);
	unsigned failed = inj_failed(INJ_COPY);
	inj_reset();
	cr_assert_eq(a, -1);
	cr_assert_eq(sb_addr, p + 7 * PG);
	cr_assert_neq(sb_code, SI_QUEUE, "the poisoned page's SIGBUS");
	sb_expect_counts(s0, p0, 0, 1, "poisoned");
	cr_assert_eq(sb_access(p + 7 * PG, false, 0, 1), -1, "poisoned");
	cr_assert_eq(uvm_unmap(r, 0, NPG * PG), 0);
	ij_all_gone();
	return failed;
}

#endif
