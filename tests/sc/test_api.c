/* The illumos entry points and the scheduling-attribute mirrors. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <schedctl.h>
#include "sc/sc.h"

Test(api, init_then_lookup)
{
	cr_assert_null(schedctl_lookup(), "nothing before schedctl_init");
	schedctl_t *p = schedctl_init();
	cr_assert_not_null(p);
	cr_assert_eq(schedctl_lookup(), p);
	cr_assert_eq(schedctl_init(), p, "init is idempotent");
	sc_shared_t *me = schedctl_self();
	cr_assert_eq(&me->sc_preemptctl, p);
	schedctl_exit();   /* a no-op, as in illumos libc */
	cr_assert_eq(schedctl_lookup(), p);
	cr_assert_eq(schedctl_state(me), SC_ONPROC);
}

Test(api, start_and_stop)
{
	schedctl_t *p = schedctl_init();
	cr_assert_not_null(p);
	cr_assert_eq(p->sc_nopreempt, 0);
	schedctl_start(p);
	cr_assert_eq(p->sc_nopreempt, 1);
	schedctl_stop(p);
	cr_assert_eq(p->sc_nopreempt, 0);
	/* The runtime asked for the CPU back while we were in the section. */
	schedctl_start(p);
	p->sc_yield = 1;
	schedctl_stop(p);
	cr_assert_eq(p->sc_nopreempt, 0);
	cr_assert_eq(p->sc_yield, 0, "stop honours and clears sc_yield");
	schedctl_start(NULL);   /* ignored, as in illumos */
	schedctl_stop(NULL);
}

Test(api, layout_is_illumos)
{
	cr_assert_eq(sizeof(sc_shared_t), 16);
	cr_assert_eq(sizeof(schedctl_t), 4);
	cr_assert_eq(SC_FREE, 0x00);
	cr_assert_eq(SC_SLEEP, 0x01);
	cr_assert_eq(SC_RUN, 0x02);
	cr_assert_eq(SC_ONPROC, 0x04);
	cr_assert_eq(SC_STOPPED, 0x10);
	cr_assert_eq(SC_WAIT, 0x20);
}

static void *niced(void *p)
{
	(void)p;
	cr_assert_eq(setpriority(PRIO_PROCESS, 0, 7), 0);
	return schedctl_self();
}

Test(api, policy_and_nice_are_mirrored)
{
	sc_shared_t *me = schedctl_self();
	int nice = getpriority(PRIO_PROCESS, 0);
	cr_assert_eq(me->sc_cid, SCHED_OTHER);
	cr_assert_eq(me->sc_cpri, nice);
	cr_assert_eq(me->sc_priority, 120 + nice);
	pthread_t t;
	sc_shared_t *other;
	pthread_create(&t, NULL, niced, NULL);
	pthread_join(t, (void **)&other);
	/* Freed now, but the mirror was set for that thread: check a live one. */
	struct sched_param sp = { 0 };
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setschedpolicy(&a, SCHED_BATCH);
	pthread_attr_setschedparam(&a, &sp);
	pthread_attr_setinheritsched(&a, PTHREAD_EXPLICIT_SCHED);
	cr_assert_eq(pthread_create(&t, &a, niced, NULL), 0);
	pthread_join(t, (void **)&other);
	cr_assert_not_null(other);
	cr_assert_eq(schedctl_state(other), SC_FREE);
}

static void *batch_main(void *p)
{
	sc_shared_t **out = p;
	struct sched_param sp = { 0 };
	cr_assert_eq(setpriority(PRIO_PROCESS, 0, 7), 0);
	cr_assert_eq(sched_setscheduler(0, SCHED_BATCH, &sp), 0);
	sc_shared_t *me = schedctl_self();
	*out = me;
	cr_assert_eq(me->sc_cid, SCHED_BATCH);
	cr_assert_eq(me->sc_cpri, 7);
	cr_assert_eq(me->sc_priority, 127);
	return NULL;
}

Test(api, mirrors_follow_the_thread_at_init)
{
	pthread_t t;
	sc_shared_t *s = NULL;
	pthread_create(&t, NULL, batch_main, &s);
	pthread_join(t, NULL);
	cr_assert_not_null(s);
}

Test(api, realtime_policy_is_mirrored)
{
	struct sched_param sp = { .sched_priority = 10 };
	if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0)
		cr_skip_test("cannot use SCHED_FIFO here");
	sc_shared_t *me = schedctl_self();
	cr_assert_eq(me->sc_cid, SCHED_FIFO);
	cr_assert_eq(me->sc_cpri, 10);
	cr_assert_eq(me->sc_priority, 89);
	sp.sched_priority = 0;
	sched_setscheduler(0, SCHED_OTHER, &sp);
}

#if defined(__x86_64__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include "supervisor/proto.h"

/* The cookie that exempts the runtime's calls from the supervisor's
 * filter rides in the sixth argument register (r9).  syscall(3) leaves
 * it there, and glibc's wrappers with fewer arguments do not reload r9,
 * so the program's next call would pass the filter unnotified: the
 * marked calls must clear it. */
static __attribute__((noinline)) long r9_now(void)
{
	long v;
	__asm__ volatile ("movq %%r9, %0" : "=r"(v));
	return v;
}

Test(api, marked_calls_leave_no_cookie_behind)
{
	uint32_t word = 0;
	struct timespec rel = { 0, 1000 };
	long r = sc_futex_wait(&word, 1, &rel, true);     /* value differs */
	cr_assert_eq(r, -EAGAIN, "futex wait: %ld", r);
	cr_assert_neq(r9_now(), (long)SC_SYSCALL_COOKIE,
	              "sc_futex_wait left the cookie in r9");
	r = sc_futex_wait(&word, 0, &rel, true);          /* times out */
	cr_assert_eq(r, -ETIMEDOUT, "futex wait: %ld", r);
	cr_assert_neq(r9_now(), (long)SC_SYSCALL_COOKIE,
	              "sc_futex_wait left the cookie in r9");
	r = sc_marked_syscall(SYS_getpid, 0, 0, 0, 0, 0);
	cr_assert_eq(r, getpid());
	cr_assert_neq(r9_now(), (long)SC_SYSCALL_COOKIE,
	              "sc_marked_syscall left the cookie in r9");
}
#endif
