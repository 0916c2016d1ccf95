/*
 * The sampler's rule that one CPU runs one thread (src/supervisor/
 * sample.c): a later thread read on a CPU in the same sweep marks the
 * earlier one SC_RUN, unless that one has marked itself since (it woke
 * from the runtime's park: sc_slot_self_mark), which is fresher.
 */
#include <criterion/criterion.h>
#include <stdbool.h>
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

/* a read on CPU 0, then (perhaps after a's own mark) b read on cpu_b. */
static void two_readings(int cpu_b, bool a_marks_itself, int want_a)
{
	struct sc_slot a, b;
	slot_init(&a, 101);
	slot_init(&b, 102);
	read_on_cpu(&a, 0);
	tick();
	if (a_marks_itself) {
		sc_slot_self_mark(&a, SC_ONPROC, ~0u);
		tick();
	}
	read_on_cpu(&b, cpu_b);
	cr_assert_eq(a.ss_pub.sc_state, want_a);
	cr_assert_eq(b.ss_pub.sc_state, SC_ONPROC);
}

Test(sup_sample, later_reading_on_a_cpu_demotes_the_earlier)
{
	two_readings(0, false, SC_RUN);
}

/* a ran after it was read: fresher than both readings. */
Test(sup_sample, thread_that_marked_itself_running_is_not_demoted)
{
	two_readings(0, true, SC_ONPROC);
}

Test(sup_sample, readings_on_other_cpus_leave_each_other_alone)
{
	two_readings(1, false, SC_ONPROC);
}
