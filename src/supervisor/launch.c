/*
 * launch.c - start the supervisor for a process that is about to exec
 * the program (`schedctl run`).
 *
 * Shape (as strace -D does it): the program keeps the process `schedctl
 * run` started as, so the shell waits for the program itself and gets
 * its exit status and terminal as usual, and the supervisor's death
 * cannot take the exit status with it.  The supervisor is a grandchild
 * (double fork), in its own process group so terminal signals (^C, ^Z)
 * reach only the program, and it traces the program as a non-parent
 * tracer.
 *
 *   P (becomes the program)          S (supervisor, grandchild)
 *   listen on the control socket
 *   fork S1 --> S1 forks S, reports S's pid on pipe a, exits
 *   PR_SET_PTRACER S (Yama), "go" on pipe b --> PTRACE_SEIZE P
 *                                          <-- "k" on pipe a
 *   exec PROGRAM                            sv_main()
 *
 * If anything fails, P gets EOF or an error on pipe a and runs the
 * program unsupervised (the caller says so).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "supervisor/sv.h"

static int launch_listen(char *name, size_t namelen)
{
	uint64_t rnd = 0;
	if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd)
		rnd = (uint64_t)sc_now_ns() * 0x9e3779b97f4a7c15ull;
	snprintf(name, namelen, "schedctl-%d-%016llx", (int)getpid(),
	         (unsigned long long)rnd);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	size_t n = strlen(name);
	memcpy(a.sun_path + 1, name, n);     /* abstract: no file to attack */
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	if (bind(fd, (struct sockaddr *)&a, len) < 0 || listen(fd, 128) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

/* Close every descriptor the supervisor inherited except keep[]. */
static void launch_close_others(const int *keep, int nkeep)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	int dfd = dirfd(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);
		bool k = fd <= 2 || fd == dfd || e->d_name[0] == '.';
		for (int i = 0; i < nkeep; i++)
			k = k || fd == keep[i];
		if (!k)
			close(fd);
	}
	closedir(d);
}

int sv_parse_cpus(const char *s, cpu_set_t *set)
{
	CPU_ZERO(set);
	if (!s || !*s)
		return -1;
	while (*s) {
		char *end;
		long a = strtol(s, &end, 10), b = a;
		if (end == s || a < 0 || a >= CPU_SETSIZE)
			return -1;
		if (*end == '-') {
			s = end + 1;
			b = strtol(s, &end, 10);
			if (end == s || b < a || b >= CPU_SETSIZE)
				return -1;
		}
		for (long c = a; c <= b; c++)
			CPU_SET((int)c, set);
		if (*end == ',')
			end++;
		else if (*end)
			return -1;
		s = end;
	}
	return 0;
}

/* In S: wait for "go", seize P, report, become the supervisor. */
static void launch_supervisor(pid_t p, int lfd, int a_w, int b_r)
{
	char c;
	/* Out of the terminal's foreground group, so ^C and ^Z reach only the
	 * program, but in the same session: with autogroup scheduling a new
	 * session would be a new task group, and every synchronous hand-off
	 * between the program and us would cross groups (measured ~20%
	 * slower notifications). */
	(void)setpgid(0, 0);
	int ign[] = { SIGHUP, SIGINT, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU };
	for (size_t i = 0; i < sizeof ign / sizeof ign[0]; i++)
		signal(ign[i], SIG_IGN);
	(void)prctl(PR_SET_NAME, "schedctl-sup", 0, 0, 0);
	/* SCHEDCTL_SUPERVISOR_CPUS: keep the sampler off the program's CPUs,
	 * where taking a sample displaces the thread it is about to read. */
	cpu_set_t cpus;
	if (sv_parse_cpus(getenv("SCHEDCTL_SUPERVISOR_CPUS"), &cpus) == 0)
		(void)sched_setaffinity(0, sizeof cpus, &cpus);
	int keep[] = { lfd, a_w, b_r };
	launch_close_others(keep, 3);
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		close(null);
	}
	if (read(b_r, &c, 1) != 1)
		_exit(1);
	if (sv_trace_seize(p) < 0) {
		int e = errno;
		(void)!write(a_w, &e, sizeof e);
		_exit(1);
	}
	int ok = 0;
	(void)!write(a_w, &ok, sizeof ok);
	close(a_w);
	close(b_r);
	sv_main(lfd, p);
}

int sv_launch(char *err, size_t errlen)
{
	char name[SV_SOCK_NAME_MAX];
	int a[2] = { -1, -1 }, b[2] = { -1, -1 }, ret = -1;
	int lfd = launch_listen(name, sizeof name);
	if (lfd < 0) {
		snprintf(err, errlen, "control socket: %s", strerror(-lfd));
		return -1;
	}
	if (pipe2(a, O_CLOEXEC) < 0 || pipe2(b, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto out;
	}
	pid_t p = getpid();
	pid_t s1 = fork();
	if (s1 < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		goto out;
	}
	if (s1 == 0) {
		close(a[0]);
		close(b[1]);
		pid_t s = fork();
		if (s == 0)
			launch_supervisor(p, lfd, a[1], b[0]);
		int32_t v = s;
		(void)!write(a[1], &v, sizeof v);
		_exit(0);
	}
	close(a[1]);
	close(b[0]);
	a[1] = b[0] = -1;
	(void)waitpid(s1, NULL, 0);
	int32_t spid = -1;
	if (read(a[0], &spid, sizeof spid) != sizeof spid || spid <= 0) {
		snprintf(err, errlen, "could not start the supervisor");
		goto out;
	}
	(void)prctl(PR_SET_PTRACER, (unsigned long)spid, 0, 0, 0);
	if (write(b[1], "g", 1) != 1) {
		snprintf(err, errlen, "supervisor exited at start-up");
		goto out;
	}
	int result = -1;
	ssize_t n = read(a[0], &result, sizeof result);
	if (n != sizeof result || result != 0) {
		snprintf(err, errlen, "supervisor cannot trace the program: %s",
		         n == sizeof result ? strerror(result) : "it exited");
		goto out;
	}
	if (setenv(SC_ENV_SUPERVISOR, name, 1) < 0) {
		snprintf(err, errlen, "setenv: %s", strerror(errno));
		goto out;
	}
	ret = 0;
out:
	close(lfd);
	for (int i = 0; i < 2; i++) {
		if (a[i] >= 0)
			close(a[i]);
		if (b[i] >= 0)
			close(b[i]);
	}
	return ret;
}
