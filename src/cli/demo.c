/*
 * demo.c - `schedctl demo`: a few threads doing different things, and
 * their schedctl states as another thread sees them.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <schedctl.h>
#include "cli/cli.h"

#define DEMO_WORKLOAD "schedctl-demo-locks"

enum { D_SPIN, D_READ, D_COND, D_NAP, D_HOG_A, D_HOG_B, D_N };

static const char *const demo_what[D_N] = {
	"busy loop",
	"blocked in read() on a pipe",
	"blocked in pthread_cond_wait()",
	"2 ms work, 8 ms nanosleep",
	"busy, pinned to CPU 0 with hog B",
	"busy, pinned to CPU 0 with hog A",
};

struct demo {
	atomic_int dm_stop;
	atomic_int dm_ready;
	sc_shared_t *dm_sc[D_N];
	pthread_t dm_thr[D_N];
	int dm_pipe[2];
	pthread_mutex_t dm_mu;
	pthread_cond_t dm_cv;
	unsigned dm_count[D_N][6];   /* FREE SLEEP RUN ONPROC STOPPED other */
};

struct demo_arg { struct demo *da_d; int da_role; };

static void demo_busy_for(struct demo *d, long ns)
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	do {
		clock_gettime(CLOCK_MONOTONIC, &b);
	} while (!atomic_load(&d->dm_stop) &&
	         (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) < ns);
}

static void demo_pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	(void)sched_setaffinity(0, sizeof set, &set);
}

static void *demo_thread(void *p)
{
	struct demo_arg *a = p;
	struct demo *d = a->da_d;
	int role = a->da_role;
	char c;

	if (role == D_HOG_A || role == D_HOG_B)
		demo_pin(0);
	d->dm_sc[role] = schedctl_self();
	atomic_fetch_add(&d->dm_ready, 1);
	switch (role) {
	case D_READ:
		while (read(d->dm_pipe[0], &c, 1) < 0 && errno == EINTR)
			;
		break;
	case D_COND:
		pthread_mutex_lock(&d->dm_mu);
		while (!atomic_load(&d->dm_stop))
			pthread_cond_wait(&d->dm_cv, &d->dm_mu);
		pthread_mutex_unlock(&d->dm_mu);
		break;
	case D_NAP:
		while (!atomic_load(&d->dm_stop)) {
			demo_busy_for(d, 2000000);
			nanosleep(&(struct timespec){ 0, 8000000 }, NULL);
		}
		break;
	default:
		demo_busy_for(d, 1000L * 1000000000L);
	}
	return NULL;
}

static const char *demo_state_name(int st)
{
	switch (st) {
	case SC_FREE: return "FREE";
	case SC_SLEEP: return "SLEEP";
	case SC_RUN: return "RUN";
	case SC_ONPROC: return "ONPROC";
	case SC_STOPPED: return "STOPPED";
	case SC_WAIT: return "WAIT";
	default: return "unknown";
	}
}

static int demo_bucket(int st)
{
	switch (st) {
	case SC_FREE: return 0;
	case SC_SLEEP: return 1;
	case SC_RUN: return 2;
	case SC_ONPROC: return 3;
	case SC_STOPPED: return 4;
	default: return 5;
	}
}

static const char *demo_source_name(int src)
{
	return src == SCHEDCTL_SOURCE_PERF ? "kernel switch records"
	     : src == SCHEDCTL_SOURCE_SUPERVISOR ? "supervisor" : "none";
}

static void demo_sample(struct demo *d, int n, bool print)
{
	if (print)
		printf("\nsample %d\n  %-6s %-8s %-4s  %s\n", n, "tid", "state",
		       "cpu", "what it does");
	for (int r = 0; r < D_N; r++) {
		int st = schedctl_state(d->dm_sc[r]);
		int cpu = schedctl_cpu(d->dm_sc[r]);
		d->dm_count[r][demo_bucket(st)]++;
		if (print)
			printf("  %-6d %-8s %-4d  %s\n", (int)schedctl_tid(d->dm_sc[r]),
			       demo_state_name(st), cpu, demo_what[r]);
	}
}

static void demo_summary(struct demo *d, int samples)
{
	printf("\nshare of %d samples per state\n  %-34s %6s %6s %6s %6s\n",
	       samples, "thread", "SLEEP", "RUN", "ONPROC", "other");
	for (int r = 0; r < D_N; r++) {
		unsigned *c = d->dm_count[r];
		printf("  %-34s %5.0f%% %5.0f%% %5.0f%% %5.0f%%\n", demo_what[r],
		       100.0 * c[1] / samples, 100.0 * c[2] / samples,
		       100.0 * c[3] / samples, 100.0 * (c[0] + c[4] + c[5]) / samples);
	}
	printf("\nThe observer wakes up on its own CPU to take each sample, so an\n"
	       "unpinned thread that was running there is runnable (RUN) at that\n"
	       "moment: that is the kernel's view, not an error.\n");
}

static void demo_usage(FILE *f)
{
	fprintf(f, "usage: schedctl demo [locks] [--ms N]\n"
	           "       schedctl demo states [--samples N] [--interval MS] [--show N]\n"
	           "locks (the default): runs a built-in contended-lock workload under\n"
	           "`schedctl run --profile` and shows its spin-versus-park report.\n"
	           "  --ms N         how long the workload runs (default 800; 1..600000)\n"
	           "states: starts six threads (busy, blocked in read, in a condvar wait,\n"
	           "sleeping on and off, two sharing CPU 0) and prints their\n"
	           "states as a seventh thread sees them, then a summary.\n"
	           "  --samples N    samples to take (default 2000; 1..1000000)\n"
	           "  --interval MS  milliseconds between samples (default 1)\n"
	           "  --show N       print the first N samples in full (default 3)\n");
}

static void demo_stop(struct demo *d)
{
	atomic_store(&d->dm_stop, 1);
	(void)!write(d->dm_pipe[1], "x", 1);
	pthread_mutex_lock(&d->dm_mu);
	pthread_cond_broadcast(&d->dm_cv);
	pthread_mutex_unlock(&d->dm_mu);
	for (int r = 0; r < D_N; r++)
		pthread_join(d->dm_thr[r], NULL);
}

/* The workload program: next to this executable (build tree), else in
 * the install's libexecdir. */
static int demo_find_workload(char *out, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = 0;
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = 0;
			int w = snprintf(out, len, "%s/%s", exe, DEMO_WORKLOAD);
			if (w > 0 && (size_t)w < len && access(out, X_OK) == 0)
				return 0;
		}
	}
	snprintf(out, len, "%s/%s", SCHEDCTL_LIBEXECDIR, DEMO_WORKLOAD);
	return access(out, X_OK) == 0 ? 0 : -1;
}

static int demo_locks_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ms", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	long ms = 800;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': ms = cli_parse_count(optarg, 600000);
		          if (ms < 1) return cli_usage_error("bad --ms '%s'", optarg);
		          break;
		case 'h': demo_usage(stdout); return CLI_EXIT_OK;
		default: return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc)
		return cli_usage_error("demo locks takes no arguments");
	char prog[PATH_MAX], msarg[24];
	if (demo_find_workload(prog, sizeof prog) < 0) {
		fprintf(stderr, "schedctl: cannot find %s\n", DEMO_WORKLOAD);
		return CLI_EXIT_FAIL;
	}
	snprintf(msarg, sizeof msarg, "%ld", ms);
	printf("schedctl run --profile -- %s %s\n", DEMO_WORKLOAD, msarg);
	fflush(stdout);
	char *const av[] = { "schedctl", "run", "--profile", "--", prog, msarg, NULL };
	execv("/proc/self/exe", av);
	fprintf(stderr, "schedctl: cannot re-run itself: %s\n", strerror(errno));
	return CLI_EXIT_FAIL;
}

static int demo_states_main(int argc, char **argv);

int cli_demo_main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "states"))
		return demo_states_main(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "locks"))
		return demo_locks_main(argc - 1, argv + 1);
	return demo_locks_main(argc, argv);
}

static int demo_states_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "samples", required_argument, NULL, 's' },
		{ "interval", required_argument, NULL, 'i' },
		{ "show", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	long samples = 2000, interval_ms = 1, show = 3;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's': samples = cli_parse_count(optarg, 1000000);
		          if (samples < 1) return cli_usage_error("bad --samples '%s'", optarg);
		          break;
		case 'i': interval_ms = cli_parse_count(optarg, 60000);
		          if (interval_ms < 0) return cli_usage_error("bad --interval '%s'", optarg);
		          break;
		case 'w': show = cli_parse_count(optarg, 1000000);
		          if (show < 0) return cli_usage_error("bad --show '%s'", optarg);
		          break;
		case 'h': demo_usage(stdout); return CLI_EXIT_OK;
		default: return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc)
		return cli_usage_error("demo states takes no arguments");

	static struct demo d;
	struct demo_arg args[D_N];
	if (pipe(d.dm_pipe) < 0) {
		perror("schedctl: pipe");
		return CLI_EXIT_FAIL;
	}
	pthread_mutex_init(&d.dm_mu, NULL);
	pthread_cond_init(&d.dm_cv, NULL);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu > 1)
		demo_pin((int)ncpu - 1);
	sc_shared_t *me = schedctl_self();
	if (!me) {
		fprintf(stderr, "schedctl: cannot set up schedctl: %s\n", strerror(errno));
		return CLI_EXIT_FAIL;
	}
	for (int r = 0; r < D_N; r++) {
		args[r] = (struct demo_arg){ &d, r };
		if (pthread_create(&d.dm_thr[r], NULL, demo_thread, &args[r]) != 0) {
			fprintf(stderr, "schedctl: cannot start threads\n");
			return CLI_EXIT_FAIL;
		}
	}
	while (atomic_load(&d.dm_ready) < D_N)
		usleep(1000);
	usleep(50000);   /* let the blocked threads block */

	printf("state source: %s; %ld CPUs; observer on CPU %ld\n",
	       demo_source_name(schedctl_source(d.dm_sc[D_SPIN])), ncpu,
	       ncpu > 1 ? ncpu - 1 : 0);
	for (long n = 0; n < samples; n++) {
		demo_sample(&d, (int)n + 1, n < show);
		if (interval_ms)
			nanosleep(&(struct timespec){ interval_ms / 1000,
			          (interval_ms % 1000) * 1000000 }, NULL);
	}
	demo_summary(&d, (int)samples);
	demo_stop(&d);
	return CLI_EXIT_OK;
}
