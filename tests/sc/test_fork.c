/* fork and exec: the child starts with structures of its own. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
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
