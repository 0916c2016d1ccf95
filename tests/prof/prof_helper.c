/* A program for the process tests: it starts the profiler from the
 * environment as the preload does, dumps at exit, and plays a known
 * number of hook calls in each process it makes.
 *   prof_helper tree     5 acquisitions; a fork child with 7; an exec'd
 *                        child (prof_helper exec) with 11
 *   prof_helper signal   3 acquisitions, SIGUSR2 to itself, waits for the
 *                        live JSON, keeps it as FILE.live, then 4 more */
#include <errno.h>
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
	return 2;
}
