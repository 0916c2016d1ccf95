/*
 * Unmodified programs under the preload: every scenario of lock_helper
 * runs natively (glibc, which checks the expectations themselves) and
 * with LD_PRELOAD of libschedctl-preload.so under every policy.
 */
#include <criterion/criterion.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "../sanenv.h"

static const char *const policies[] = { "owner", "spin", "park", "glibc" };

/* => exit status of lock_helper SCENARIO; preload NULL for native. */
static int run_helper(const char *scenario, const char *policy)
{
	char pre[4096], pol[64], expect[32];
	const char *envp[8];
	int n = 0;
	if (policy) {
		snprintf(pre, sizeof pre, "LD_PRELOAD=%s", LOCK_PRELOAD);
		snprintf(pol, sizeof pol, "SCHEDCTL_POLICY=%s", policy);
		envp[n++] = pre;
		envp[n++] = pol;
	}
	snprintf(expect, sizeof expect, "LT_EXPECT_PRELOAD=%d", policy != NULL);
	envp[n++] = expect;
	envp[n++] = "PATH=/usr/bin:/bin";
	envp[n] = NULL;
	char *argv[] = { LOCK_HELPER, (char *)scenario, NULL };
	struct san_env se;
	pid_t pid;
	cr_assert_eq(posix_spawn(&pid, LOCK_HELPER, NULL, NULL, argv,
	                         san_env(&se, envp)), 0);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}

static void scenario(const char *name)
{
	cr_assert_eq(run_helper(name, NULL), 0, "%s: natively, with glibc", name);
	for (unsigned i = 0; i < sizeof policies / sizeof policies[0]; i++)
		cr_expect_eq(run_helper(name, policies[i]), 0,
		             "%s under the preload, policy %s", name, policies[i]);
}

TestSuite(lock_preload, .timeout = 100);

Test(lock_preload, interposed) { scenario("interposed"); }
Test(lock_preload, counter)    { scenario("counter"); }
Test(lock_preload, codes)      { scenario("codes"); }
Test(lock_preload, timed)      { scenario("timed"); }
Test(lock_preload, robust)     { scenario("robust"); }
Test(lock_preload, pshared)    { scenario("pshared"); }
Test(lock_preload, cond)       { scenario("cond"); }
Test(lock_preload, cancel)     { scenario("cancel"); }
Test(lock_preload, fork)       { scenario("fork"); }
Test(lock_preload, statics)    { scenario("statics"); }
Test(lock_preload, rwlock)     { scenario("rwlock"); }
