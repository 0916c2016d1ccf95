/* A program for the process tests: it starts the profiler from the
 * environment as the preload does, dumps at exit, and plays a known
 * number of hook calls in each process it makes.
 *   prof_helper tree     5 acquisitions; a fork child with 7; an exec'd
 *                        child (prof_helper exec) with 11
 *   prof_helper signal   3 acquisitions, SIGUSR2 to itself, waits for the
 *                        live JSON, keeps it as FILE.live, then 4 more
 *   prof_helper forks    a fork child of the process alone (but for the
 *                        agent) has its agent at once; a fork child of
 *                        the process with a thread of its own gets it
 *                        only with its own first thread (exit 0: both) */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "prof/prof.h"

static char helper_lock[40];

static void __attribute__((noinline)) acquire_n(int n)
{
	for (int i = 0; i < n; i++) {
		prof_acquired(helper_lock, __builtin_return_address(0));
		prof_released(helper_lock);
	}
}

static void dump_at_exit(void)
{
	(void)prof_dump(true);
}

static int wait_child(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Threads of this process named schedctl-prof (the agent). */
static int agents(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;
	while (d && (e = readdir(d))) {
		char path[300], comm[32] = "";
		snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
		FILE *f = fopen(path, "r");
		if (f && fgets(comm, sizeof comm, f) &&
		    !strncmp(comm, "schedctl-prof", 13))
			n++;
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	return n;
}

static void *program_thread(void *arg)
{
	char c;
	(void)read(*(int *)arg, &c, 1);    /* until the pipe closes */
	return NULL;
}

static void *begin_thread(void *arg)
{
	(void)arg;
	prof_thread_begin();        /* what the preload's trampoline does */
	return NULL;
}

/* A fork child: the agent threads it has at once (want_now), then after
 * a thread of its own began (want_later). */
static int fork_check(int want_now, int want_later)
{
	pid_t c = fork();
	if (c == 0) {
		if (agents() != want_now)
			_exit(10 + agents());
		pthread_t t;
		if (pthread_create(&t, NULL, begin_thread, NULL) != 0)
			_exit(20);
		pthread_join(t, NULL);
		_exit(agents() == want_later ? 0 : 30 + agents());
	}
	return wait_child(c);
}

static int forks(void)
{
	if (agents() != 1)
		return 40;
	int r = fork_check(1, 1);             /* alone: agent at once */
	if (r)
		return r;
	int p[2];
	pthread_t t;
	if (pipe(p) || pthread_create(&t, NULL, program_thread, &p[0]))
		return 41;
	r = fork_check(0, 1);                 /* a program thread: deferred */
	close(p[1]);
	pthread_join(t, NULL);
	return r;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	if (prof_init_from_env() != 0 || !prof_on())
		return 3;
	atexit(dump_at_exit);
	if (!strcmp(argv[1], "exec")) {
		acquire_n(11);
		return 0;
	}
	if (!strcmp(argv[1], "tree")) {
		acquire_n(5);
		pid_t c = fork();
		if (c == 0) {
			acquire_n(7);
			exit(0);
		}
		if (wait_child(c) != 0)
			return 4;
		c = fork();
		if (c == 0) {
			execl("/proc/self/exe", argv[0], "exec", (char *)NULL);
			_exit(127);
		}
		return wait_child(c) == 0 ? 0 : 5;
	}
	if (!strcmp(argv[1], "signal")) {
		const char *json = getenv("SCHEDCTL_PROFILE_JSON");
		acquire_n(3);
		kill(getpid(), SIGUSR2);
		struct stat st;
		for (int i = 0; i < 500 && stat(json, &st) != 0; i++)
			usleep(10000);
		char live[4200];
		snprintf(live, sizeof live, "%s.live", json);
		if (rename(json, live) != 0)
			return 6;
		acquire_n(4);
		return 0;
	}
	if (!strcmp(argv[1], "forks"))
		return forks();
	return 2;
}
