/* refuse CALL[,CALL...] PROGRAM ARGS: run PROGRAM with the named system
 * calls failing with EACCES (as perf_event_open does at
 * perf_event_paranoid >= 3, or seccomp in a container that forbids it). */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: refuse CALL[,CALL...] PROGRAM [ARGS...]\n");
		return 2;
	}
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return 2;
	for (char *c = strtok(argv[1], ","); c; c = strtok(NULL, ",")) {
		int nr = seccomp_syscall_resolve_name(c);
		if (nr == __NR_SCMP_ERROR ||
		    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), nr, 0) != 0) {
			fprintf(stderr, "refuse: cannot refuse '%s'\n", c);
			return 2;
		}
	}
	if (seccomp_load(ctx) != 0) {
		fprintf(stderr, "refuse: cannot install the filter\n");
		return 2;
	}
	seccomp_release(ctx);
	execvp(argv[2], argv + 2);
	perror("refuse: exec");
	return 127;
}
