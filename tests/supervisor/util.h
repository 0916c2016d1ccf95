/* Helpers for the supervisor suites: run `schedctl run ...` with a time
 * limit and capture what it printed and how it ended. */
#ifndef TESTS_SUPERVISOR_UTIL_H
#define TESTS_SUPERVISOR_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct su_result {
	int status;          /* waitpid status */
	char out[8192];      /* stdout */
	char err[8192];      /* stderr */
	int timed_out;
};

static inline const char *su_schedctl(void)
{
	const char *p = getenv("SUP_SCHEDCTL");
	return p ? p : "schedctl";
}

static inline const char *su_helper(void)
{
	const char *p = getenv("SUP_HELPER");
	return p ? p : "sup_helper";
}

static inline long su_ms_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Run argv (argv[0] a path) with extra "K=V" environment entries, feed
 * `input` on stdin, give up (SIGKILL) after limit_ms. */
static inline int su_run_env(struct su_result *r, char *const argv[],
                             const char *const *extra_env, const char *input,
                             long limit_ms)
{
	memset(r, 0, sizeof *r);
	int in[2], out[2], err[2];
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
		return -1;
	char *env[256];
	int n = 0;
	for (const char *const *e = extra_env; e && *e && n < 128; e++)
		env[n++] = (char *)*e;
	for (char **e = environ; *e && n < 254; e++) {
		size_t k = strcspn(*e, "=");
		int dup = 0;
		for (int i = 0; i < n && extra_env; i++)
			if (!strncmp(env[i], *e, k) && env[i][k] == '=')
				dup = 1;
		if (!dup)
			env[n++] = *e;
	}
	env[n] = NULL;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	pid_t pid;
	int e = posix_spawn(&pid, argv[0], &fa, NULL, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	close(err[1]);
	if (e) {
		close(in[1]);
		close(out[0]);
		close(err[0]);
		return -1;
	}
	if (input)
		(void)!write(in[1], input, strlen(input));
	close(in[1]);
	size_t len[2] = { 0, 0 };
	char *buf[2] = { r->out, r->err };
	struct pollfd p[2] = { { out[0], POLLIN, 0 }, { err[0], POLLIN, 0 } };
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (p[0].fd >= 0 || p[1].fd >= 0) {
		long left = limit_ms - su_ms_since(&t0);
		if (left <= 0) {
			kill(pid, SIGKILL);
			r->timed_out = 1;
			break;
		}
		if (poll(p, 2, (int)left) <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			if (p[i].fd < 0 || !p[i].revents)
				continue;
			ssize_t k = read(p[i].fd, buf[i] + len[i],
			                 sizeof r->out - 1 - len[i]);
			if (k <= 0)
				p[i].fd = -1;
			else
				len[i] += (size_t)k;
		}
	}
	close(out[0]);
	close(err[0]);
	waitpid(pid, &r->status, 0);
	return 0;
}

static inline int su_run(struct su_result *r, char *const argv[], long limit_ms)
{
	return su_run_env(r, argv, NULL, NULL, limit_ms);
}

/* The number after "key=" in s, -1 if absent. */
static inline long su_field(const char *s, const char *key)
{
	char k[64];
	snprintf(k, sizeof k, "%s=", key);
	const char *p = strstr(s, k);
	return p ? strtol(p + strlen(k), NULL, 10) : -1;
}

/* The first number in a /proc file, dflt if unreadable. */
static inline double su_proc_num(const char *path, double dflt)
{
	double v = dflt;
	FILE *f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%lf", &v) != 1)
			v = dflt;
		fclose(f);
	}
	return v;
}

static inline int su_perf_paranoid(void)
{
	return (int)su_proc_num("/proc/sys/kernel/perf_event_paranoid", 3);
}

/* `schedctl run [opt] -- helper mode [arg]` with a time limit. */
static inline int su_run_helper(struct su_result *r, const char *opt,
                                const char *mode, const char *arg, long limit)
{
	char *av[8];
	int n = 0;
	av[n++] = (char *)su_schedctl();
	av[n++] = (char *)"run";
	if (opt)
		av[n++] = (char *)opt;
	av[n++] = (char *)"--";
	av[n++] = (char *)su_helper();
	av[n++] = (char *)mode;
	if (arg)
		av[n++] = (char *)arg;
	av[n] = NULL;
	return su_run(r, av, limit);
}

#define SU_EXIT(r) (WIFEXITED((r)->status) ? WEXITSTATUS((r)->status) : -1)
#define SU_SIG(r) (WIFSIGNALED((r)->status) ? WTERMSIG((r)->status) : 0)

#endif
