/*
 * run.c - `schedctl run [OPTIONS] [--] PROGRAM [ARGS]`: run an unmodified
 * program with the preload injected and the supervisor watching it.
 *
 * Options are a table: each maps to a SCHEDCTL_* environment variable,
 * which is how they reach the program (and its descendants, and scripts
 * started with the variables already set).  An option not given keeps
 * the environment's value; every value, from either place, is checked.
 * Adding an option is one table line.
 *
 * The process exec's the program itself (see src/supervisor/launch.c),
 * so the program's exit status and terminal are its own: a shell sees
 * 128+N for a program killed by signal N.  Our own statuses:
 *   2    usage error (unknown option, bad value, option given twice with
 *        different values, no PROGRAM)
 *   126  PROGRAM found but not executable
 *   127  PROGRAM not found
 *   1    the preload library cannot be found
 * Programs that cannot take LD_PRELOAD (statically linked, setuid or
 * setgid to someone else, with file capabilities) and programs already
 * being traced run unsupervised, with a one-line message.
 *
 * An explicit choice (an option, or its variable) that cannot be
 * honoured is said in one line on stderr and the program runs anyway:
 * --notify where no seccomp filter can be installed (checked here, in a
 * throw-away child), --state-source=perf where the kernel refuses
 * context-switch records (said by the program's first thread without a
 * ring, src/sc/thread.c).  The automatic defaults fall back quietly
 * (--verbose tells).
 *
 * The preload is found at $SCHEDCTL_PRELOAD, else next to this
 * executable in the build tree (../preload/), else in the install
 * libdir (absolute, then relative to this executable).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cli/cli.h"
#include "supervisor/sv.h"

#define RUN_EXIT_NOEXEC   126
#define RUN_EXIT_NOTFOUND 127
#define PRELOAD_NAME "libschedctl-preload.so"

struct run_opt {
	const char *ro_name;          /* without the leading "--" */
	const char *ro_env;
	const char *const *ro_choices;/* NULL: any value; "": a flag */
	const char *ro_default;       /* exported if neither given, or NULL */
	const char *ro_help;
	const char *ro_given;         /* value from the command line */
};

static const char *const run_sources[] = { "auto", "perf", "supervisor", NULL };
static const char *const run_policies[] = { "owner", "spin", "park", "glibc",
                                            NULL };
static const char *const run_flag[] = { NULL };
static const char *const run_sorts[] = { "contended", "wait", "spin", "hold",
                                         NULL };

static struct run_opt run_opts[] = {
	{ "state-source", "SCHEDCTL_STATE_SOURCE", run_sources, NULL,
	  "auto|perf|supervisor: where thread states come from", NULL },
	{ "policy", "SCHEDCTL_POLICY", run_policies, "owner",
	  "owner|spin|park|glibc: lock policy (default owner)", NULL },
	{ "notify", SC_ENV_NOTIFY, NULL, NULL,
	  "LIST: notified system calls, e.g. default,+read,-poll", NULL },
	{ "sample-us", "SCHEDCTL_SAMPLE_US", NULL, NULL,
	  "N: /proc sampling floor in microseconds (>= 50; default 2000, 1000 while a thread waits for a CPU)", NULL },
	{ "supervisor-cpus", "SCHEDCTL_SUPERVISOR_CPUS", NULL, NULL,
	  "LIST: CPUs the supervisor may run on, e.g. 1 or 0,2-3", NULL },
	{ "profile", "SCHEDCTL_PROFILE", run_flag, NULL,
	  "profile lock spin and park behaviour", NULL },
	{ "profile-out", "SCHEDCTL_PROFILE_OUT", NULL, NULL,
	  "FILE: write the profile report to FILE", NULL },
	{ "profile-json", "SCHEDCTL_PROFILE_JSON", NULL, NULL,
	  "FILE: write the profile as JSON to FILE", NULL },
	{ "sort", "SCHEDCTL_PROFILE_SORT", run_sorts, NULL,
	  "contended|wait|spin|hold: profile report order", NULL },
	{ "top", "SCHEDCTL_PROFILE_TOP", NULL, NULL,
	  "N: locks shown in the profile report (default 10)", NULL },
	{ "profile-signal", "SCHEDCTL_PROFILE_SIGNAL", NULL, NULL,
	  "USR2|USR1|N|0: signal for a live profile dump (0: none)", NULL },
	{ "trace", "SCHEDCTL_TRACE", NULL, NULL,
	  "FILE: write a lock event trace to FILE", NULL },
	{ "verbose", "SCHEDCTL_VERBOSE", run_flag, NULL,
	  "one-line notices about what the runtime decided", NULL },
};
#define RUN_NOPTS (sizeof run_opts / sizeof run_opts[0])

static void run_help(FILE *f)
{
	fprintf(f, "usage: schedctl run [OPTIONS] [--] PROGRAM [ARGS...]\n\n"
	           "Run PROGRAM with schedctl for every thread, supervised.\n\n"
	           "options (each also from its environment variable):\n");
	for (size_t i = 0; i < RUN_NOPTS; i++) {
		/* Help text "META: what it does" shows as --name=META. */
		const char *h = run_opts[i].ro_help, *colon = strchr(h, ':');
		int ml = colon && run_opts[i].ro_choices != run_flag ?
		         (int)(colon - h) : 0;
		char left[64];
		snprintf(left, sizeof left, "--%s%s%.*s", run_opts[i].ro_name,
		         ml ? "=" : "", ml, h);
		fprintf(f, "  %-32s %s [%s]\n", left, ml ? colon + 2 : h,
		        run_opts[i].ro_env);
	}
	fprintf(f, "  %-32s this help\n\n"
	           "exit status: PROGRAM's own (a shell shows 128+N for signal N);\n"
	           "127 not found, 126 not executable, 2 usage error, 1 preload "
	           "library missing\n\n"
	           "An explicit --notify or --state-source=perf that this machine "
	           "cannot honour\n(no seccomp filter; perf refused) is said in one "
	           "line on stderr and the\nprogram runs anyway with the fallback; "
	           "the defaults fall back quietly\n(--verbose tells).\n",
	           "-h, --help");
}

static int run_check_value(const struct run_opt *o, const char *v,
                           const char *from)
{
	if (o->ro_choices == run_flag)
		return 0;
	if (o->ro_choices) {
		for (const char *const *c = o->ro_choices; *c; c++)
			if (strcmp(*c, v) == 0)
				return 0;
		return cli_usage_error("%s: invalid value '%s' for --%s", from, v,
		                       o->ro_name);
	}
	if (!*v)
		return cli_usage_error("%s: --%s needs a value", from, o->ro_name);
	if (strcmp(o->ro_env, "SCHEDCTL_PROFILE_TOP") == 0 &&
	    cli_parse_count(v, 1000000) < 0)
		return cli_usage_error("%s: --top needs a count", from);
	if (strcmp(o->ro_env, "SCHEDCTL_SAMPLE_US") == 0 &&
	    cli_parse_count(v, 1000000) < 50)
		return cli_usage_error("%s: --sample-us needs a number of "
		                       "microseconds from 50 to 1000000", from);
	cpu_set_t cpus;
	if (strcmp(o->ro_env, "SCHEDCTL_SUPERVISOR_CPUS") == 0 &&
	    sv_parse_cpus(v, &cpus) < 0)
		return cli_usage_error("%s: --supervisor-cpus needs a CPU list "
		                       "such as 1 or 0,2-3", from);
	if (o->ro_env == (const char *)SC_ENV_NOTIFY) {
		struct sv_notify_set set;
		char err[128];
		if (sv_notify_parse(v, &set, err, sizeof err) < 0)
			return cli_usage_error("%s: %s", from, err);
	}
	return 0;
}

/* => index of the first PROGRAM argument, or -(exit status). */
static int run_parse(int argc, char **argv)
{
	int i;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0)
			return i + 1 < argc ? i + 1 :
			       -cli_usage_error("run: missing PROGRAM after --");
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			run_help(stdout);
			return -CLI_EXIT_OK - 1000;
		}
		if (a[0] != '-')
			return i;
		if (a[1] != '-')
			return -cli_usage_error("run: unknown option '%s'", a);
		const char *eq = strchr(a + 2, '=');
		size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
		struct run_opt *o = NULL;
		for (size_t k = 0; k < RUN_NOPTS; k++)
			if (strlen(run_opts[k].ro_name) == n &&
			    strncmp(run_opts[k].ro_name, a + 2, n) == 0)
				o = &run_opts[k];
		if (!o)
			return -cli_usage_error("run: unknown option '%s'", a);
		const char *v;
		if (o->ro_choices == run_flag) {
			if (eq)
				return -cli_usage_error("run: --%s takes no value",
				                        o->ro_name);
			v = "1";
		} else if (eq) {
			v = eq + 1;
		} else if (i + 1 < argc) {
			v = argv[++i];
		} else {
			return -cli_usage_error("run: --%s needs a value", o->ro_name);
		}
		int r = run_check_value(o, v, "run");
		if (r)
			return -r;
		if (o->ro_given && strcmp(o->ro_given, v) != 0)
			return -cli_usage_error("run: conflicting values for --%s",
			                        o->ro_name);
		o->ro_given = v;
	}
	return -cli_usage_error("run: missing PROGRAM");
}

/* Command-line values win; environment values are checked too. */
static int run_export(void)
{
	for (size_t i = 0; i < RUN_NOPTS; i++) {
		const struct run_opt *o = &run_opts[i];
		const char *env = getenv(o->ro_env);
		if (!o->ro_given && env && *env) {
			int r = run_check_value(o, env, o->ro_env);
			if (r)
				return r;
			continue;
		}
		const char *v = o->ro_given ? o->ro_given : o->ro_default;
		if (v && setenv(o->ro_env, v, 1) < 0)
			return CLI_EXIT_FAIL;
	}
	return 0;
}

/* execvp's search, keeping why it failed.  => 0 and path, or exit status. */
static int run_resolve(const char *prog, char *path, size_t len)
{
	struct stat st;
	if (strchr(prog, '/')) {
		snprintf(path, len, "%s", prog);
		if (stat(path, &st) < 0) {
			fprintf(stderr, "schedctl: %s: %s\n", prog, strerror(errno));
			return errno == ENOENT || errno == ENOTDIR ? RUN_EXIT_NOTFOUND
			                                           : RUN_EXIT_NOEXEC;
		}
		if (S_ISDIR(st.st_mode) || access(path, X_OK) < 0) {
			fprintf(stderr, "schedctl: %s: %s\n", prog,
			        S_ISDIR(st.st_mode) ? "is a directory"
			                            : "permission denied");
			return RUN_EXIT_NOEXEC;
		}
		return 0;
	}
	const char *p = getenv("PATH");
	if (!p || !*p)
		p = "/usr/local/bin:/usr/bin:/bin";
	bool denied = false;
	while (*p) {
		const char *end = strchr(p, ':');
		size_t dl = end ? (size_t)(end - p) : strlen(p);
		snprintf(path, len, "%.*s%s%s", (int)dl, p, dl ? "/" : "", prog);
		if (stat(path, &st) == 0) {
			if (!S_ISDIR(st.st_mode) && access(path, X_OK) == 0)
				return 0;
			denied = true;
		}
		p += dl + (end ? 1 : 0);
	}
	fprintf(stderr, "schedctl: %s: %s\n", prog,
	        denied ? "permission denied" : "command not found");
	return denied ? RUN_EXIT_NOEXEC : RUN_EXIT_NOTFOUND;
}

/* => NULL if LD_PRELOAD can reach path, else why not. */
static const char *run_unpreloadable(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return NULL;
	if (((st.st_mode & S_ISUID) && st.st_uid != geteuid()) ||
	    ((st.st_mode & S_ISGID) && st.st_gid != getegid()))
		return "is setuid or setgid";
	if (getxattr(path, "security.capability", NULL, 0) > 0)
		return "has file capabilities";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	Elf64_Ehdr eh;
	const char *why = NULL;
	if (pread(fd, &eh, sizeof eh, 0) != sizeof eh ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phnum > 256)
		goto out;                 /* a script or foreign: let exec decide */
	why = "is statically linked";
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + i * sizeof ph)) !=
		    sizeof ph)
			break;
		if (ph.p_type == PT_INTERP) {
			why = NULL;
			break;
		}
	}
out:
	close(fd);
	return why;
}

/* --notify (or SCHEDCTL_NOTIFY) given, but would the program's filter
 * go in?  The agent installs it after exec and falls back to /proc
 * sampling quietly; try the same install in a child first, so that the
 * user who asked hears it cannot be honoured.  The child's filter
 * notifies nothing it calls before _exit. */
static void run_check_filter(void)
{
	const char *v = getenv(SC_ENV_NOTIFY);
	if (!v || !*v)
		return;
	pid_t pid = fork();
	if (pid == 0) {
		struct sv_notify_set none = { .ns_n = 0 };
		int l = sv_filter_install(&none);
		_exit(l < 0 ? -l & 0xff : 0);
	}
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
	    WEXITSTATUS(st) == 0)
		return;
	fprintf(stderr, "schedctl: --notify: no seccomp filter can be installed "
	        "here (%s): no calls are notified; thread states come from "
	        "/proc sampling only\n", strerror(WEXITSTATUS(st)));
}

static bool run_already_traced(void)
{
	return sc_status_field(getpid(), "TracerPid") > 0;
}

/* dir[/rel]/PRELOAD_NAME readable?  => true and out set. */
static bool run_try(char *out, size_t len, const char *dir, const char *rel)
{
	int n = rel ? snprintf(out, len, "%s/%s/%s", dir, rel, PRELOAD_NAME)
	            : snprintf(out, len, "%s/%s", dir, PRELOAD_NAME);
	return n > 0 && (size_t)n < len && access(out, R_OK) == 0;
}

static int run_find_preload(char *out, size_t len)
{
	const char *env = getenv("SCHEDCTL_PRELOAD");
	if (env && *env) {
		if (access(env, R_OK) == 0 && env[0] == '/') {
			snprintf(out, len, "%s", env);
			return 0;
		}
		fprintf(stderr, "schedctl: SCHEDCTL_PRELOAD=%s: not a readable "
		        "absolute path\n", env);
		return CLI_EXIT_FAIL;
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = 0;
		char *slash = strrchr(exe, '/');
		if (slash)
			*slash = 0;
		if (run_try(out, len, exe, "../../preload") ||
		    run_try(out, len, exe, "../preload"))
			return 0;
	}
#ifdef SCHEDCTL_LIBDIR
	if (run_try(out, len, SCHEDCTL_LIBDIR, NULL))
		return 0;
#endif
	if (n > 0 && (run_try(out, len, exe, "../lib/x86_64-linux-gnu") ||
	              run_try(out, len, exe, "../lib")))
		return 0;
	fprintf(stderr, "schedctl: cannot find %s (set SCHEDCTL_PRELOAD)\n",
	        PRELOAD_NAME);
	return CLI_EXIT_FAIL;
}

static int run_set_preload(const char *lib)
{
	const char *old = getenv("LD_PRELOAD");
	char buf[PATH_MAX * 2];
	if (old && *old)
		snprintf(buf, sizeof buf, "%s:%s", lib, old);
	else
		snprintf(buf, sizeof buf, "%s", lib);
	return setenv("LD_PRELOAD", buf, 1);
}

static int run_exec(const char *path, char **argv)
{
	execv(path, argv);
	if (errno == ENOEXEC) {          /* as execvp: a script without #! */
		int n = 0;
		while (argv[n])
			n++;
		char **av = calloc((size_t)n + 2, sizeof *av);
		if (av) {
			av[0] = (char *)"sh";
			av[1] = (char *)path;
			for (int i = 1; i <= n; i++)
				av[i + 1] = argv[i];
			execv("/bin/sh", av);
		}
	}
	fprintf(stderr, "schedctl: %s: %s\n", argv[0], strerror(errno));
	return errno == ENOENT ? RUN_EXIT_NOTFOUND : RUN_EXIT_NOEXEC;
}

int cli_run_main(int argc, char **argv)
{
	int first = run_parse(argc, argv);
	if (first == -CLI_EXIT_OK - 1000)
		return CLI_EXIT_OK;
	if (first < 0)
		return -first;
	int r = run_export();
	if (r)
		return r;
	char **prog = argv + first;
	char path[PATH_MAX], lib[PATH_MAX];
	if ((r = run_resolve(prog[0], path, sizeof path)) != 0)
		return r;
	const char *why = run_unpreloadable(path);
	if (!why && run_already_traced()) {
		fprintf(stderr, "schedctl: this process is already being traced: "
		        "running %s unsupervised\n", prog[0]);
		return run_exec(path, prog);
	}
	if (why) {
		fprintf(stderr, "schedctl: %s %s: running it unsupervised\n",
		        prog[0], why);
		return run_exec(path, prog);
	}
	if ((r = run_find_preload(lib, sizeof lib)) != 0)
		return r;
	if (run_set_preload(lib) < 0)
		return CLI_EXIT_FAIL;
	run_check_filter();
	fflush(NULL);
	char err[160];
	if (sv_launch(err, sizeof err) < 0)
		fprintf(stderr, "schedctl: supervisor: %s; running %s unsupervised\n",
		        err, prog[0]);
	return run_exec(path, prog);
}
