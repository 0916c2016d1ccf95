/* fork and exec: the child starts with structures of its own. */
#include <criterion/criterion.h>
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <schedctl.h>
#include "sc/sc.h"

static int wait_exit(pid_t pid)
{
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st), "child died: status %#x", st);
	return WEXITSTATUS(st);
}

Test(fork, child_gets_fresh_structures)
{
	sc_shared_t *parent = schedctl_self();
	pid_t ptid = gettid();
	cr_assert_not_null(parent);
	pid_t pid = fork();
	if (pid == 0) {
		/* Nothing inherited: no structure, no region. */
		if (schedctl_lookup() != NULL)
			_exit(10);
		if (sc_region_hdr() != NULL)
			_exit(11);
		errno = 0;
		if (schedctl_state(parent) != -1 || errno != EINVAL)
			_exit(12);
		sc_shared_t *me = schedctl_self();
		if (!me || schedctl_tid(me) != gettid())
			_exit(13);
		if (sc_region_hdr()->rh_pid != getpid())
			_exit(14);
		if (schedctl_state(me) != SC_ONPROC)
			_exit(15);
		if (schedctl_of(ptid) != NULL)
			_exit(16);
		_exit(0);
	}
	cr_assert_eq(wait_exit(pid), 0, "child check failed");
	/* The parent's own structure is untouched. */
	cr_assert_eq(schedctl_tid(parent), ptid);
	cr_assert_eq(schedctl_state(parent), SC_ONPROC);
	cr_assert_eq(sc_region_hdr()->rh_pid, getpid());
}

static void *child_thread(void *p)
{
	(void)p;
	sc_shared_t *s = schedctl_self();
	return (void *)(intptr_t)(s && schedctl_tid(s) == gettid());
}

Test(fork, child_threads_work)
{
	cr_assert_not_null(schedctl_self());
	pid_t pid = fork();
	if (pid == 0) {
		for (int i = 0; i < 100; i++) {
			pthread_t t;
			void *ok;
			if (pthread_create(&t, NULL, child_thread, NULL) != 0)
				_exit(10);
			pthread_join(t, &ok);
			if (!ok)
				_exit(11);
		}
		if (sc_region_hdr()->rh_npages != 1)
			_exit(12);
		_exit(0);
	}
	cr_assert_eq(wait_exit(pid), 0);
}

Test(fork, exec_starts_clean)
{
	cr_assert_not_null(schedctl_self());
	const char *helper = getenv("SC_EXEC_HELPER");
	cr_assert_not_null(helper, "SC_EXEC_HELPER not set by the test harness");
	pid_t pid = fork();
	if (pid == 0) {
		execl(helper, helper, (char *)NULL);
		_exit(127);
	}
	cr_assert_eq(wait_exit(pid), 0, "helper after exec failed");
}

/* sc_status_field and sc_status_mask find their key after a Groups line
 * longer than any fixed buffer (hundreds of supplementary groups): the
 * supervisor checks a connecting program's TracerPid that way, and the
 * withdrawal repair reads SigIgn/SigCgt. */
Test(fork, status_fields_after_a_long_groups_line)
{
	pid_t c = fork();
	cr_assert_geq(c, 0);
	if (c == 0) {
		static gid_t g[1500];
		for (int i = 0; i < 1500; i++)
			g[i] = (gid_t)(1000000 + i);
		if (setgroups(1500, g) != 0)
			_exit(77);                  /* no CAP_SETGID */
		signal(SIGUSR2, SIG_IGN);
		uint64_t ign = 0;
		_exit(sc_status_field(getpid(), "Threads") == 1 &&
		      sc_status_field(getpid(), "Tgid") == getpid() &&
		      sc_status_mask(getpid(), "SigIgn", &ign) == 0 &&
		      (ign & (1ULL << (SIGUSR2 - 1))) ? 0 : 1);
	}
	int rc = wait_exit(c);
	if (rc == 77)
		cr_skip_test("setgroups needs CAP_SETGID");
	cr_assert_eq(rc, 0, "a status field was not found");
}
