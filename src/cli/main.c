/*
 * main.c - `schedctl`: dispatch to the subcommands.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sc/sc.h"

static const struct cli_cmd cli_cmds[] = {
	{ "demo", "profile a built-in lock workload, or show live thread states",
	  cli_demo_main },
	{ "bench", "lock throughput: glibc mutexes vs the owner/spin/park policies", cli_bench_main },
	{ "run", "run a program with schedctl for every thread, supervised", cli_run_main },
	{ "report", "re-render a saved lock profile (JSON) as text or SVG", cli_report_main },
};

#define NCMDS (sizeof cli_cmds / sizeof cli_cmds[0])

static void cli_print_help(FILE *f)
{
	fprintf(f, "usage: schedctl COMMAND [OPTIONS]\n"
	           "       schedctl --help | --version\n\ncommands:\n");
	for (size_t i = 0; i < NCMDS; i++)
		fprintf(f, "  %-8s %s\n", cli_cmds[i].cc_name, cli_cmds[i].cc_summary);
	fprintf(f, "\n'schedctl COMMAND --help' describes a command.\n"
	           "exit status: 0 success, 1 runtime failure, 2 usage error\n");
}

long cli_parse_count(const char *s, long max)
{
	if (!s || !*s)
		return -1;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < 0 || v > max)
		return -1;
	return v;
}

int cli_usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("schedctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs(" (see 'schedctl --help')\n", stderr);
	va_end(ap);
	return CLI_EXIT_USAGE;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		cli_print_help(stderr);
		return CLI_EXIT_USAGE;
	}
	sc_notices_enable(true);
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		cli_print_help(stdout);
		return CLI_EXIT_OK;
	}
	if (!strcmp(cmd, "--version")) {
		printf("schedctl %s\n", SCHEDCTL_VERSION);
		return CLI_EXIT_OK;
	}
	for (size_t i = 0; i < NCMDS; i++)
		if (!strcmp(cmd, cli_cmds[i].cc_name))
			return cli_cmds[i].cc_main(argc - 1, argv + 1);
	return cli_usage_error("unknown command '%s'", cmd);
}
