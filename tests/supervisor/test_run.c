/*
 * test_run.c - `schedctl run` as a command: exit statuses, signals,
 * usage errors, programs it cannot preload, options and environment.
 */
#include <criterion/criterion.h>
#include <sys/stat.h>

#include "util.h"

#define LIMIT 30000

static struct su_result r;

static void run_helper(const char *opt, const char *mode, const char *arg)
{
	cr_assert_eq(su_run_helper(&r, opt, mode, arg, LIMIT), 0);
	cr_assert(!r.timed_out, "timed out; stderr: %s", r.err);
}

static void run_argv(char *const *av)
{
	cr_assert_eq(su_run(&r, av, LIMIT), 0);
	cr_assert(!r.timed_out);
}

Test(run, exit_status_is_the_programs, .timeout = 60)
{
	run_helper(NULL, "exit", "0");
	cr_assert_eq(SU_EXIT(&r), 0);
	run_helper(NULL, "exit", "7");
	cr_assert_eq(SU_EXIT(&r), 7);
	run_helper(NULL, "exit", "255");
	cr_assert_eq(SU_EXIT(&r), 255);
}

Test(run, killed_by_signal_is_reported_as_such, .timeout = 60)
{
	run_helper(NULL, "signal", "9");
	cr_assert_eq(SU_SIG(&r), 9);
	run_helper(NULL, "signal", "15");
	cr_assert_eq(SU_SIG(&r), 15);
	run_helper(NULL, "signal", "6");
	cr_assert_eq(SU_SIG(&r), 6);
}

Test(run, missing_program_is_127, .timeout = 60)
{
	char *av[] = { (char *)su_schedctl(), "run", "--",
	               "/nonexistent/program", NULL };
	run_argv(av);
	cr_assert_eq(SU_EXIT(&r), 127);
	cr_assert(strstr(r.err, "/nonexistent/program"), "%s", r.err);
	cr_assert_eq(strchr(r.err, '\n'), strrchr(r.err, '\n'), "one line: %s", r.err);
	char *av2[] = { (char *)su_schedctl(), "run", "no-such-command-xyz", NULL };
	run_argv(av2);
	cr_assert_eq(SU_EXIT(&r), 127);
	cr_assert(strstr(r.err, "not found"), "%s", r.err);
}

Test(run, not_executable_is_126, .timeout = 60)
{
	char *av[] = { (char *)su_schedctl(), "run", "--", "/etc/passwd", NULL };
	run_argv(av);
	cr_assert_eq(SU_EXIT(&r), 126);
	char *av2[] = { (char *)su_schedctl(), "run", "--", "/tmp", NULL };
	run_argv(av2);
	cr_assert_eq(SU_EXIT(&r), 126);
}

Test(run, usage_errors_are_2, .timeout = 60)
{
	char *cases[][6] = {
		{ (char *)su_schedctl(), "run", "--bogus", "--", "true", NULL },
		{ (char *)su_schedctl(), "run", "--", NULL },
		{ (char *)su_schedctl(), "run", NULL },
		{ (char *)su_schedctl(), "run", "--state-source=kernel", "true", NULL },
		{ (char *)su_schedctl(), "run", "--policy=fast", "true", NULL },
		{ (char *)su_schedctl(), "run", "--notify=nosuchcall", "true", NULL },
		{ (char *)su_schedctl(), "run", "-x", "true", NULL },
		{ (char *)su_schedctl(), "run", "--sample-us=10", "true", NULL },
		{ (char *)su_schedctl(), "run", "--supervisor-cpus=1-", "true", NULL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		run_argv(cases[i]);
		cr_assert_eq(SU_EXIT(&r), 2, "case %zu: %s", i, r.err);
		cr_assert(strstr(r.err, "schedctl"), "case %zu: %s", i, r.err);
	}
	char *conflict[] = { (char *)su_schedctl(), "run", "--policy=spin",
	                     "--policy=park", "--", "true", NULL };
	run_argv(conflict);
	cr_assert_eq(SU_EXIT(&r), 2);
	cr_assert(strstr(r.err, "conflicting"), "%s", r.err);
}

Test(run, environment_values_are_checked_too, .timeout = 60)
{
	char *av[] = { (char *)su_schedctl(), "run", "--", (char *)su_helper(),
	               "source", NULL };
	const char *bad[] = { "SCHEDCTL_POLICY=bogus", NULL };
	cr_assert_eq(su_run_env(&r, av, bad, NULL, LIMIT), 0);
	cr_assert_eq(SU_EXIT(&r), 2, "%s", r.err);
	cr_assert(strstr(r.err, "SCHEDCTL_POLICY"), "%s", r.err);
	const char *good[] = { "SCHEDCTL_STATE_SOURCE=supervisor", NULL };
	cr_assert_eq(su_run_env(&r, av, good, NULL, LIMIT), 0);
	cr_assert_eq(SU_EXIT(&r), 0, "%s", r.err);
	cr_assert(strstr(r.out, "source=supervisor"), "%s", r.out);
}

Test(run, help_and_version, .timeout = 60)
{
	char *av[] = { (char *)su_schedctl(), "run", "--help", NULL };
	run_argv(av);
	cr_assert_eq(SU_EXIT(&r), 0);
	cr_assert(strstr(r.out, "--state-source"));
	cr_assert(strstr(r.out, "SCHEDCTL_PROFILE_JSON"));
	char *av2[] = { (char *)su_schedctl(), "--help", NULL };
	run_argv(av2);
	cr_assert(strstr(r.out, "run"));
	char *av3[] = { (char *)su_schedctl(), "--version", NULL };
	run_argv(av3);
	cr_assert_eq(SU_EXIT(&r), 0);
}

Test(run, stdin_and_stdout_stay_the_programs, .timeout = 60)
{
	char *av[] = { (char *)su_schedctl(), "run", "--", "/bin/cat", NULL };
	cr_assert_eq(su_run_env(&r, av, NULL, "hello through schedctl\n", LIMIT), 0);
	cr_assert_eq(SU_EXIT(&r), 0);
	cr_assert_str_eq(r.out, "hello through schedctl\n");
	cr_assert_str_eq(r.err, "");
}

Test(run, options_reach_the_program_as_environment, .timeout = 60)
{
	char *av[] = { (char *)su_schedctl(), "run", "--policy", "park",
	               "--profile", "--trace=/dev/null", "--", "/bin/sh", "-c",
	               "echo $SCHEDCTL_POLICY $SCHEDCTL_PROFILE $SCHEDCTL_TRACE", NULL };
	run_argv(av);
	cr_assert_eq(SU_EXIT(&r), 0, "%s", r.err);
	cr_assert_str_eq(r.out, "park 1 /dev/null\n");
	char *av2[] = { (char *)su_schedctl(), "run", "--", "/bin/sh", "-c",
	                "echo $SCHEDCTL_POLICY", NULL };
	run_argv(av2);
	cr_assert_str_eq(r.out, "owner\n");
}

Test(run, missing_preload_is_a_clear_error, .timeout = 60)
{
	char *av[] = { (char *)su_schedctl(), "run", "--", "/bin/true", NULL };
	const char *env[] = { "SCHEDCTL_PRELOAD=/nonexistent/lib.so", NULL };
	cr_assert_eq(su_run_env(&r, av, env, NULL, LIMIT), 0);
	cr_assert_eq(SU_EXIT(&r), 1);
	cr_assert(strstr(r.err, "SCHEDCTL_PRELOAD"), "%s", r.err);
}

Test(run, static_program_runs_unsupervised, .timeout = 60)
{
	const char *st = getenv("SUP_STATIC");
	cr_assert(st);
	char *av[] = { (char *)su_schedctl(), "run", "--", (char *)st, NULL };
	run_argv(av);
	cr_assert_eq(SU_EXIT(&r), 42);
	cr_assert(strstr(r.err, "statically linked"), "%s", r.err);
	cr_assert(strstr(r.out, "tracer=0"), "%s", r.out);
}

Test(run, setuid_program_runs_unsupervised, .timeout = 60)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to make a setuid file");
	char dir[] = "/tmp/sup-suid-XXXXXX";
	cr_assert(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof path, "%s/prog", dir);
	char cmd[512];
	/* the static helper: a copy of the dynamic one would lose its rpath */
	snprintf(cmd, sizeof cmd, "cp %s %s && chown 65534 %s && chmod 4755 %s",
	         getenv("SUP_STATIC"), path, path, path);
	cr_assert_eq(system(cmd), 0);
	chmod(dir, 0755);
	char *av[] = { (char *)su_schedctl(), "run", "--", path, NULL };
	run_argv(av);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	(void)!system(cmd);
	cr_assert_eq(SU_EXIT(&r), 42, "%s", r.err);
	cr_assert(strstr(r.err, "setuid"), "%s", r.err);
	cr_assert(strstr(r.out, "tracer=0"), "%s", r.out);
}

Test(run, already_traced_runs_unsupervised, .timeout = 60)
{
	/* The outer supervisor traces the inner `schedctl run`. */
	char *av[] = { (char *)su_schedctl(), "run", "--", (char *)su_schedctl(),
	               "run", "--", (char *)su_helper(), "exit", "3", NULL };
	run_argv(av);
	cr_assert_eq(SU_EXIT(&r), 3, "%s", r.err);
	cr_assert(strstr(r.err, "already being traced"), "%s", r.err);
}
