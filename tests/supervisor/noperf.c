/* noperf PROGRAM ARGS: run PROGRAM with perf_event_open refused (EACCES),
 * as on machines with perf_event_paranoid >= 3. */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx || seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES),
	                             SCMP_SYS(perf_event_open), 0) != 0 ||
	    seccomp_load(ctx) != 0) {
		fprintf(stderr, "noperf: cannot install the filter\n");
		return 2;
	}
	seccomp_release(ctx);
	execvp(argv[1], argv + 1);
	perror("noperf: exec");
	return 127;
}
