/* Several processes: fork children and exec'd programs each write their
 * own profile (pid in the file name); a signal dumps a live profile
 * without stopping the program; the preload writes profiles for an
 * unmodified program and its children. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"
#include "../sanenv.h"

static int run_env_out(const char *const argv[], const char *const env[],
                       const char *out)
{
	struct san_env se;
	char **envp = san_env(&se, env);
	pid_t pid = fork();
	if (pid == 0) {
		if (out) {
			int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (fd < 0 || dup2(fd, 1) < 0)
				_exit(126);
		}
		execve(argv[0], (char *const *)argv, envp);
		_exit(127);
	}
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int run_env(const char *const argv[], const char *const env[])
{
	return run_env_out(argv, env, NULL);
}

static struct prof_snap *load(const char *path)
{
	size_t len;
	char *j = slurp(path, &len);
	cr_assert_not_null(j, "%s missing", path);
	const char *err;
	struct prof_snap *s = prof_json_parse(j, len, &err);
	cr_assert_not_null(s, "%s: %s", path, err);
	free(j);
	return s;
}

static uint64_t total_acq(const struct prof_snap *s)
{
	uint64_t n = 0;
	for (size_t i = 0; i < s->nlocks; i++)
		n += s->locks[i].l_c.c_acq;
	return n;
}

/* Profiles in dir named prof.*.json, other than prof.json. */
static int others(const char *dir, char names[][512], int max)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	while (d && (e = readdir(d)))
		if (!strncmp(e->d_name, "prof.", 5) && strcmp(e->d_name, "prof.json") &&
		    strstr(e->d_name, ".json") && n < max)
			snprintf(names[n++], 512, "%s/%s", dir, e->d_name);
	if (d)
		closedir(d);
	return n;
}

static void rm_dir(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

Test(prof_procs, fork_and_exec_children_get_their_own_profile, .timeout = 60)
{
	char dir[] = "/tmp/prof_tree_XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char json[600], envj[700];
	snprintf(json, sizeof json, "%s/prof.json", dir);
	snprintf(envj, sizeof envj, "SCHEDCTL_PROFILE_JSON=%s", json);
	const char *argv[] = { getenv("PROF_HELPER"), "tree", NULL };
	const char *env[] = { envj, "SCHEDCTL_PROFILE_SIGNAL=0", NULL };
	cr_assert_eq(run_env(argv, env), 0);
	struct prof_snap *root = load(json);
	cr_assert_eq(total_acq(root), 5);
	char names[8][512];
	int n = others(dir, names, 8);
	cr_assert_eq(n, 2, "one profile per child");
	uint64_t seen[2];
	for (int i = 0; i < 2; i++) {
		struct prof_snap *c = load(names[i]);
		char want[64];
		snprintf(want, sizeof want, "prof.%d.json", c->pid);
		cr_assert(strstr(names[i], want), "pid %d in %s", c->pid, names[i]);
		cr_assert_neq(c->pid, root->pid);
		seen[i] = total_acq(c);
		prof_snap_free(c);
	}
	cr_assert((seen[0] == 7 && seen[1] == 11) || (seen[0] == 11 && seen[1] == 7),
	          "fork child 7, exec'd child 11: %llu %llu",
	          (unsigned long long)seen[0], (unsigned long long)seen[1]);
	prof_snap_free(root);
	rm_dir(dir);
}

/* A fork child starts the agent thread at once only if the parent had
 * no thread of the program's but the forking one (another could have
 * held an allocator lock the agent's start needs: a sanitizer's); else
 * with the child's own first thread.  The helper checks both. */
Test(prof_procs, fork_child_agent_waits_for_its_first_thread, .timeout = 60)
{
	const char *argv[] = { getenv("PROF_HELPER"), "forks", NULL };
	const char *env[] = { "SCHEDCTL_PROFILE=1", "SCHEDCTL_PROFILE_OUT=/dev/null",
	                      NULL };
	cr_assert_eq(run_env(argv, env), 0,
	             "10+n: agents at once, 30+n: after a thread, 4x: set-up");
}

Test(prof_procs, signal_dumps_live_without_stopping, .timeout = 60)
{
	char dir[] = "/tmp/prof_sig_XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char json[600], live[700], envj[700];
	snprintf(json, sizeof json, "%s/prof.json", dir);
	snprintf(live, sizeof live, "%s.live", json);
	snprintf(envj, sizeof envj, "SCHEDCTL_PROFILE_JSON=%s", json);
	const char *argv[] = { getenv("PROF_HELPER"), "signal", NULL };
	const char *env[] = { envj, NULL };
	cr_assert_eq(run_env(argv, env), 0, "the program went on and exited 0");
	struct prof_snap *l = load(live), *f = load(json);
	cr_assert(!l->final && f->final);
	cr_assert_eq(total_acq(l), 3);
	cr_assert_eq(total_acq(f), 7);
	prof_snap_free(l);
	prof_snap_free(f);
	rm_dir(dir);
}

Test(prof_procs, preload_profiles_an_unmodified_program_and_children,
     .timeout = 60)
{
	char dir[] = "/tmp/prof_pre_XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char json[600], envj[700], pre[4200], out[700], envo[800];
	snprintf(json, sizeof json, "%s/prof.json", dir);
	snprintf(out, sizeof out, "%s/prof.txt", dir);
	snprintf(envj, sizeof envj, "SCHEDCTL_PROFILE_JSON=%s", json);
	snprintf(envo, sizeof envo, "SCHEDCTL_PROFILE_OUT=%s", out);
	snprintf(pre, sizeof pre, "LD_PRELOAD=%s", getenv("PROF_PRELOAD"));
	/* A program on its own writes FILE. */
	const char *argv1[] = { "/bin/true", NULL };
	const char *env[] = { envj, envo, pre, "PATH=/usr/bin:/bin", NULL };
	cr_assert_eq(run_env(argv1, env), 0);
	struct prof_snap *r = load(json);
	cr_assert_str_eq(r->comm, "true");
	cr_assert_eq(r->nlocks, 0);
	char *t = slurp(out, NULL);
	cr_assert(t && strstr(t, "schedctl lock profile"), "text report too");
	free(t);
	prof_snap_free(r);
	unlink(json);
	/* dash forks a child for each true and leaves with _exit() (no exit
	 * handlers, so no profile of its own): two children, two files
	 * with their pids. */
	const char *argv2[] = { "/bin/sh", "-c", "/bin/true; /bin/true", NULL };
	cr_assert_eq(run_env(argv2, env), 0);
	char names[8][512];
	cr_assert_eq(others(dir, names, 8), 2, "one profile per child");
	for (int i = 0; i < 2; i++) {
		struct prof_snap *c = load(names[i]);
		char want[64];
		snprintf(want, sizeof want, "prof.%d.json", c->pid);
		cr_assert(strstr(names[i], want));
		cr_assert_str_eq(c->comm, "true");
		prof_snap_free(c);
	}
	rm_dir(dir);
}

Test(prof_procs, device_destination_written_not_replaced, .timeout = 30)
{
	struct stat before, after;
	cr_assert_eq(stat("/dev/null", &before), 0);
	const char *argv[] = { getenv("PROF_HELPER"), "exec", NULL };
	const char *env[] = { "SCHEDCTL_PROFILE_OUT=/dev/null",
	                      "SCHEDCTL_PROFILE_JSON=/dev/null", NULL };
	cr_assert_eq(run_env(argv, env), 0);
	cr_assert_eq(stat("/dev/null", &after), 0);
	cr_assert(S_ISCHR(after.st_mode) && after.st_rdev == before.st_rdev &&
	          after.st_ino == before.st_ino, "/dev/null is still the device");
}

/* Counts through the real lock: skipped while the lock does not call the
 * hooks (the profile then has no locks at all); exact once it does. */
static void real_lock_counts(const char *policy)
{
	char dir[] = "/tmp/prof_real_XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char json[600], envj[700], pre[4200], envp[64], outf[700];
	snprintf(json, sizeof json, "%s/prof.json", dir);
	snprintf(outf, sizeof outf, "%s/out", dir);
	snprintf(envj, sizeof envj, "SCHEDCTL_PROFILE_JSON=%s", json);
	snprintf(pre, sizeof pre, "LD_PRELOAD=%s", getenv("PROF_PRELOAD"));
	snprintf(envp, sizeof envp, "SCHEDCTL_POLICY=%s", policy);
	const char *argv[] = { getenv("PROF_WORKLOAD"), "4", "200", "100", NULL };
	const char *env[] = { envj, pre, envp, NULL };
	cr_assert_eq(run_env_out(argv, env, outf), 0);
	char *out = slurp(outf, NULL);
	unsigned long long ops = 0;
	cr_assert(out && sscanf(out, "ops %llu", &ops) == 1 && ops > 0);
	free(out);
	struct prof_snap *s = load(json);
	if (s->nlocks == 0) {
		prof_snap_free(s);
		rm_dir(dir);
		cr_skip_test("the lock does not call the profiler's hooks yet");
	}
	const struct prof_slock *l = NULL;
	for (size_t i = 0; i < s->nlocks; i++)
		if (find_site(&s->locks[i], "worker"))
			l = &s->locks[i];
	cr_assert_not_null(l, "the workload's lock, its site named 'worker'");
	cr_assert_eq(l->l_c.c_acq, ops, "exact: %llu acquisitions, %llu ops",
	             (unsigned long long)l->l_c.c_acq, ops);
	cr_assert_eq(find_site(l, "worker")->s_c.c_acq, ops);
	cr_assert_str_eq(s->policy, policy);
	cr_assert_eq(s->spin_measured, strcmp(policy, "glibc") != 0);
	if (!s->spin_measured)
		cr_assert_eq(l->l_c.c_outcome[PROF_BLOCKED], l->l_c.c_contended);
	prof_snap_free(s);
	rm_dir(dir);
}

Test(prof_procs, real_lock_counts_exact_owner, .timeout = 60)
{
	real_lock_counts("owner");
}

Test(prof_procs, real_lock_counts_exact_glibc, .timeout = 60)
{
	real_lock_counts("glibc");
}
