/*
 * A failed fault whose thread still has its last SIGBUS pending
 * (src/pager/bus.c, bus_seen), shown by the pager's test hook
 * bus_test_pending: woken the first time, nothing lost; poisoned when
 * the same page comes again; a full table of such pairs poisons at
 * once, stale pairs are replaced.  Split from test_sigbus.c (the
 * helpers both use: sigbus_helper.h).
 */
#include <sys/syscall.h>

#include "sigbus_helper.h"

/* A failed fault whose thread still has its last SIGBUS pending: the
 * first message of a (thread, page) pair is only woken, the pair's next
 * one, SIGBUS still pending, poisons (bus.c, bus_seen).  The real race
 * (another signal wakes the thread while the pager serves its fault, and
 * the pager reads its next fault before it takes the SIGBUS) cannot be
 * timed from outside: the kernel withdraws a message its woken thread
 * leaves before the pager read it.  So the pending SIGBUS is shown by
 * the pager's test hook, as if read from the thread's status. */
extern uint64_t (*bus_test_pending)(uint32_t tid);
static _Atomic int pd_times;   /* status reads left to show it pending */
static _Atomic pid_t pd_tid;   /* for this thread */

static uint64_t pd_pending(uint32_t tid)
{
	if ((pid_t)tid != pd_tid || pd_times == 0)
		return 0;
	if (pd_times > 0)
		pd_times--;
	return (uint64_t)1 << (SIGBUS - 1);
}

/* Show SIGBUS pending for this thread at the next times status reads
 * (-1: always; 0: the hook off). */
static void pd_set(int times)
{
	pd_tid = (pid_t)syscall(SYS_gettid);
	pd_times = times;
	__atomic_store_n(&bus_test_pending, times ? pd_pending : NULL,
	                 __ATOMIC_RELEASE);
}

/* A transient failure of a write fault (1B) while the last SIGBUS seems
 * pending: the thread is woken, its retry is served, nothing is lost
 * (the write's data was dropped with a poison before bus_seen). */
Test(sigbus, pending_sigbus_first_time_only_wakes_and_loses_nothing,
     .timeout = 30)
{
	uint64_t s0, p0;
	unsigned char *p = w_cow_pool_write_fails(&s0, &p0);
	pd_set(1);
	int a = sb_access(p + 5 * PG + 100, true, 0xa5, 1);
	pd_set(0);
	cr_assert_eq(inj_failed(INJ_POOL_WRITE), 1);
	inj_reset();
	cr_assert_eq(a, 0, "SIGBUS (code %d): poisoned", sb_code);
	sb_expect_counts(s0, p0, 0, 0, "pending once");
	w_check(p, 0xa5, "pending once");
	w_teardown();
}

static void pd_always(bool on)
{
	pd_set(on ? -1 : 0);
}

/* A failure that lasts while SIGBUS stays pending (a system call's fault
 * spinning): woken once, poisoned the second time. */
Test(sigbus, pending_sigbus_twice_for_one_page_poisons, .timeout = 30)
{
	unsigned failed = sb_read_poisoned(-1, pd_always);
	cr_assert_eq(failed, 2, "%u fills failed: woken once, then poisoned",
	             failed);
}

/* The table of pairs is small: with it full of fresh pairs, a new pair
 * is poisoned at once (so more spinning threads than entries cannot
 * replace each other for ever); a pair that came again is poisoned and
 * frees its entry; stale pairs (older than a second) are replaced.
 * bus_fault is called directly, on missing pages of one region. */
static uint64_t pd_fault(struct uvm_region *r, size_t i)
{
	pthread_mutex_lock(&uvm_pager.up_lock);
	uint64_t p0 = uvm_pager.up_bus_poisons;
	bus_fault(r, i, true, (uint32_t)syscall(SYS_gettid));
	uint64_t dp = uvm_pager.up_bus_poisons - p0;
	pthread_mutex_unlock(&uvm_pager.up_lock);
	return dp;
}

Test(sigbus, pending_sigbus_table_full_poisons_stale_pairs_replaced,
     .timeout = 30)
{
	struct uvm_region *r = sb_anon();
	pd_set(-1);
	size_t k;
	for (k = 0; k < 16; k++)
		cr_assert_eq(pd_fault(r, k), 0, "page %zu: first time", k);
	cr_assert_eq(pd_fault(r, 16), 1, "table full: poisoned");
	cr_assert_eq(pd_fault(r, 0), 1, "page 0 again: poisoned");
	cr_assert_eq(pd_fault(r, 17), 0, "its entry is free again");
	cr_assert_eq(pd_fault(r, 18), 1, "full again");
	usleep(1100 * 1000);
	for (k = 19; k < 19 + 16; k++)
		if (k < NPG)
			cr_assert_eq(pd_fault(r, k), 0, "page %zu: stale "
			             "pairs replaced", k);
	pd_set(0);
	cr_assert_eq(uvm_unmap(r, 0, NPG * PG), 0);
	ij_all_gone();
}
