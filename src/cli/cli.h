/*
 * cli.h - the schedctl command: one file per subcommand.
 *
 * Exit codes of the command itself (a supervised program's own status is
 * passed through by `schedctl run`):
 *   0  success
 *   1  the runtime failed (a message says why)
 *   2  usage error
 */
#ifndef SC_CLI_H
#define SC_CLI_H

#define CLI_EXIT_OK     0
#define CLI_EXIT_FAIL   1
#define CLI_EXIT_USAGE  2

struct cli_cmd {
	const char *cc_name;
	const char *cc_summary;
	int (*cc_main)(int argc, char **argv);   /* argv[0] is the name */
};

int cli_demo_main(int argc, char **argv);
int cli_run_main(int argc, char **argv);
int cli_bench_main(int argc, char **argv);
int cli_report_main(int argc, char **argv);

/* Parse a non-negative decimal option value; -1 if malformed. */
long cli_parse_count(const char *s, long max);
/* Print "schedctl: <msg>" and return CLI_EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
