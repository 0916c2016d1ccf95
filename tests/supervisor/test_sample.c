/*
 * The sampler's rule that one CPU runs one thread (src/supervisor/
 * sample.c): a later thread read on a CPU in the same sweep marks the
 * earlier one SC_RUN, unless that one has marked itself since (it woke
 * from the runtime's park: sc_slot_self_mark), which is fresher.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <time.h>

#include "sc/sc.h"
#include "supervisor/sv.h"

static void slot_init(struct sc_slot *s, int32_t tid)
{
	memset(s, 0, sizeof *s);
	s->ss_tid = tid;
	s->ss_source = SCHEDCTL_SOURCE_SUPERVISOR;
	s->ss_pub.sc_state = SC_ONPROC;
}

static void read_on_cpu(struct sc_slot *s, int cpu)
{
	sv_sample_claim_cpu(s, cpu, sv_slot_store(s, SC_ONPROC, cpu));
}

/* The clock moves on, so a later stamp differs from an earlier one. */
static void tick(void)
{
	struct timespec t = { 0, 1000 };
	nanosleep(&t, NULL);
}

Test(sup_sample, later_reading_on_a_cpu_demotes_the_earlier)
{
	struct sc_slot a, b;
	slot_init(&a, 101);
	slot_init(&b, 102);
	read_on_cpu(&a, 0);
	tick();
	read_on_cpu(&b, 0);
	cr_assert_eq(a.ss_pub.sc_state, SC_RUN);
	cr_assert_eq(b.ss_pub.sc_state, SC_ONPROC);
}

Test(sup_sample, thread_that_marked_itself_running_is_not_demoted)
{
	struct sc_slot a, b;
	slot_init(&a, 101);
	slot_init(&b, 102);
	read_on_cpu(&a, 0);
	tick();
	sc_slot_self_mark(&a, SC_ONPROC, ~0u);
	tick();
	read_on_cpu(&b, 0);
	cr_assert_eq(a.ss_pub.sc_state, SC_ONPROC, "a ran after it was read");
	cr_assert_eq(b.ss_pub.sc_state, SC_ONPROC);
}

Test(sup_sample, readings_on_other_cpus_leave_each_other_alone)
{
	struct sc_slot a, b;
	slot_init(&a, 101);
	slot_init(&b, 102);
	read_on_cpu(&a, 0);
	tick();
	read_on_cpu(&b, 1);
	cr_assert_eq(a.ss_pub.sc_state, SC_ONPROC);
	cr_assert_eq(b.ss_pub.sc_state, SC_ONPROC);
}
