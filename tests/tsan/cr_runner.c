/*
 * cr_runner.c - a minimal runner for Criterion tests built with
 * ThreadSanitizer (./dev tsan).
 *
 * Criterion cannot start under ThreadSanitizer: its sandbox (BoxFort)
 * maps an inheritable arena at a random address in a range TSan
 * reserves for its shadow memory, and gives up ("Could not initialize
 * inheritable arena", upstream Snaipe/Criterion#274).  The TSan build
 * links the lock and prof tests against this file instead of
 * libcriterion: the same test sources, registered by Criterion's own
 * Test()/TestSuite() macros, run here one forked child per test (as
 * Criterion does: every test starts in a fresh process).
 *
 * Supported: the cr_assert and cr_expect macros (a failed assert ends
 * the test, a failed expect fails it at its end),
 * cr_skip_test, .init/.fini, .timeout (scaled by CR_TSAN_TIMEOUT_SCALE,
 * default 4, for TSan's slowdown), .disabled, .signal, .exit_code;
 * options --jobs=N and --filter=PATTERN (fnmatch with extglob, on
 * "suite/test", as Criterion's); CR_TSAN_EXCLUDE (see excluded()).  Not: parameterized tests, theories,
 * redirections, reports.  A test fails when its child exits non-zero,
 * which is also how a ThreadSanitizer report ends it (exitcode 66, or
 * at once with halt_on_error=1).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>
#include <criterion/options.h>
#include <fnmatch.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SKIP_STATUS 254       /* a child's exit status for a skipped test */

struct criterion_options criterion_options;

/* The sections Test() and TestSuite() fill; one NULL entry each, so they
 * exist in a program without suites. */
__attribute__((used, section("cr_tst")))
static struct criterion_test *cr_no_test;
__attribute__((used, section("cr_sts")))
static struct criterion_suite *cr_no_suite;
extern struct criterion_test *__start_cr_tst[], *__stop_cr_tst[];
extern struct criterion_suite *__start_cr_sts[], *__stop_cr_sts[];

static struct criterion_test *cur_test;
static struct criterion_suite *cur_suite;
static int cur_failed;        /* a cr_expect failed in this child */

/* ---- what the assertion macros call ---- */

char *cr_translate_assert_msg(int msg_index, ...)
{
	char *s = NULL;
	if (msg_index == CRITERION_ASSERT_MSG_FAIL) {
		s = strdup("The conditions for this assertion were not met.");
	} else {
		va_list ap;
		va_start(ap, msg_index);
		const char *expr = va_arg(ap, const char *);
		va_end(ap);
		if (asprintf(&s, "The expression %s is false.", expr ? expr : "?") < 0)
			s = NULL;
	}
	return s;
}

int cr_asprintf(char **strp, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vasprintf(strp, fmt, ap);
	va_end(ap);
	if (r < 0)
		*strp = NULL;
	return r;
}

void cr_asprintf_free(char *buf)
{
	free(buf);
}

void cri_asserts_passed_incr(void)
{
}

void criterion_send_assert(struct criterion_assert_stats *st)
{
	if (st->passed)
		return;
	cur_failed = 1;
	fprintf(stderr, "[----] %s:%u: Assertion Failed\n[----]   %s\n",
	        st->file, st->line, st->message ? st->message : "");
}

void criterion_abort_test(void)
{
	fflush(NULL);
	_exit(1);
}

void criterion_skip_test(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "[SKIP] %s::%s: ", cur_test->category, cur_test->name);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	fflush(NULL);
	_exit(SKIP_STATUS);
}

void criterion_continue_test(void)
{
}

void criterion_internal_test_setup(void)
{
	if (cur_suite && cur_suite->data && cur_suite->data->init)
		cur_suite->data->init();
	if (cur_test->data && cur_test->data->init)
		cur_test->data->init();
}

void criterion_internal_test_main(void (*fn)(void))
{
	fn();
}

void criterion_internal_test_teardown(void)
{
	if (cur_test->data && cur_test->data->fini)
		cur_test->data->fini();
	if (cur_suite && cur_suite->data && cur_suite->data->fini)
		cur_suite->data->fini();
}

/* ---- the runner ---- */

struct run {
	struct criterion_test *r_test;
	struct criterion_suite *r_suite;
	pid_t r_pid;
	struct timespec r_t0;
};

static struct criterion_suite *suite_of(const struct criterion_test *t)
{
	for (struct criterion_suite **s = __start_cr_sts; s < __stop_cr_sts; s++)
		if (*s && (*s)->name && !strcmp((*s)->name, t->category))
			return *s;
	return NULL;
}

static double timeout_of(const struct run *r)
{
	double t = 0;
	if (r->r_test->data && r->r_test->data->timeout > 0)
		t = r->r_test->data->timeout;
	else if (r->r_suite && r->r_suite->data && r->r_suite->data->timeout > 0)
		t = r->r_suite->data->timeout;
	const char *sc = getenv("CR_TSAN_TIMEOUT_SCALE");
	double scale = sc ? atof(sc) : 4.0;
	return t * (scale > 0 ? scale : 4.0);
}

static void start(struct run *r)
{
	fflush(NULL);
	clock_gettime(CLOCK_MONOTONIC, &r->r_t0);
	r->r_pid = fork();
	if (r->r_pid < 0) {
		perror("cr_runner: fork");
		exit(2);
	}
	if (r->r_pid > 0)
		return;
	cur_test = r->r_test;
	cur_suite = r->r_suite;
	double t = timeout_of(r);
	if (t > 0)
		alarm((unsigned)(t + 0.999));
	r->r_test->test();
	fflush(NULL);
	_exit(cur_failed ? 1 : 0);
}

/* => 1 passed, 0 failed, -1 skipped. */
static int finish(const struct run *r, int status)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double el = (double)(t1.tv_sec - r->r_t0.tv_sec) +
	            (double)(t1.tv_nsec - r->r_t0.tv_nsec) / 1e9;
	const struct criterion_test_extra_data *d = r->r_test->data;
	int want_sig = d ? d->signal : 0, want_code = d ? d->exit_code : 0;
	const char *why = NULL;
	int ok;
	if (WIFEXITED(status) && WEXITSTATUS(status) == SKIP_STATUS)
		return -1;
	if (WIFSIGNALED(status)) {
		ok = WTERMSIG(status) == want_sig;
		why = WTERMSIG(status) == SIGALRM ? "timed out" : strsignal(WTERMSIG(status));
	} else {
		ok = !want_sig && WEXITSTATUS(status) == want_code;
		why = "exit status";
	}
	if (ok)
		printf("[PASS] %s::%s: (%.2fs)\n", r->r_test->category, r->r_test->name, el);
	else if (WIFSIGNALED(status))
		printf("[FAIL] %s::%s: %s (%.2fs)\n", r->r_test->category,
		       r->r_test->name, why, el);
	else
		printf("[FAIL] %s::%s: %s %d (%.2fs)\n", r->r_test->category,
		       r->r_test->name, why, WEXITSTATUS(status), el);
	fflush(stdout);
	return ok;
}

/* CR_TSAN_EXCLUDE: whitespace-separated fnmatch patterns of tests not run
 * (those TSan itself cannot run; ./dev tsan says why). */
static bool excluded(const char *id)
{
	const char *ex = getenv("CR_TSAN_EXCLUDE");
	char pat[256];
	while (ex && *ex) {
		size_t n = strcspn(ex, " \t\n");
		if (n > 0 && n < sizeof pat) {
			memcpy(pat, ex, n);
			pat[n] = 0;
			if (fnmatch(pat, id, FNM_EXTMATCH) == 0) {
				printf("[----] %s: excluded (CR_TSAN_EXCLUDE)\n", id);
				return true;
			}
		}
		ex += n;
		ex += strspn(ex, " \t\n");
	}
	return false;
}

static int by_name(const void *a, const void *b)
{
	const struct criterion_test *x = *(struct criterion_test *const *)a;
	const struct criterion_test *y = *(struct criterion_test *const *)b;
	int c = strcmp(x->category, y->category);
	return c ? c : strcmp(x->name, y->name);
}

int main(int argc, char **argv)
{
	int jobs = 1;
	const char *filter = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "--jobs=", 7) || !strncmp(argv[i], "-j", 2))
			jobs = atoi(argv[i] + (argv[i][1] == 'j' ? 2 : 7));
		else if (!strncmp(argv[i], "--filter=", 9))
			filter = argv[i] + 9;
		/* other Criterion options: ignored */
	}
	if (jobs < 1)
		jobs = 1;
	size_t n = 0, cap = (size_t)(__stop_cr_tst - __start_cr_tst);
	struct criterion_test **tests = calloc(cap ? cap : 1, sizeof *tests);
	struct run *runs = calloc((size_t)jobs, sizeof *runs);
	if (!tests || !runs)
		return 2;
	for (struct criterion_test **t = __start_cr_tst; t < __stop_cr_tst; t++) {
		if (!*t || !(*t)->name || !(*t)->category || !*(*t)->name)
			continue;
		if ((*t)->data && (*t)->data->disabled)
			continue;
		char id[512];
		snprintf(id, sizeof id, "%s/%s", (*t)->category, (*t)->name);
		if (filter && fnmatch(filter, id, FNM_EXTMATCH) != 0)
			continue;
		if (excluded(id))
			continue;
		tests[n++] = *t;
	}
	qsort(tests, n, sizeof *tests, by_name);
	size_t next = 0, pass = 0, fail = 0, skip = 0;
	int active = 0;
	while (next < n || active) {
		while (active < jobs && next < n) {
			for (int j = 0; j < jobs; j++) {
				if (runs[j].r_pid)
					continue;
				runs[j].r_test = tests[next++];
				runs[j].r_suite = suite_of(runs[j].r_test);
				start(&runs[j]);
				active++;
				break;
			}
		}
		int status;
		pid_t pid = wait(&status);
		if (pid < 0)
			break;
		for (int j = 0; j < jobs; j++) {
			if (runs[j].r_pid != pid)
				continue;
			int r = finish(&runs[j], status);
			if (r > 0)
				pass++;
			else if (r == 0)
				fail++;
			else
				skip++;
			runs[j].r_pid = 0;
			active--;
		}
	}
	printf("[====] Synthesis: Tested: %zu | Passing: %zu | Failing: %zu | "
	       "Skipped: %zu\n", pass + fail, pass, fail, skip);
	free(tests);
	free(runs);
	return fail ? 1 : 0;
}
