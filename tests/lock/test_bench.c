/* `schedctl bench`: a tiny run prints the table; bad options exit 2. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* => exit status of `schedctl ARGS`, its stdout in out (NUL-ended). */
static int run_schedctl(const char *args, char *out, size_t len)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "%s %s 2>/dev/null", SCHEDCTL_BIN, args);
	FILE *f = popen(cmd, "r");
	cr_assert_not_null(f);
	size_t n = fread(out, 1, len - 1, f);
	out[n] = '\0';
	int st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

TestSuite(lock_bench, .timeout = 60);

Test(lock_bench, tiny_run_prints_every_variant)
{
	static char out[8192];
	cr_assert_eq(run_schedctl("bench --threads=1,2 --cs=0 --hogs=0 --reps=1 "
	                          "--ms=20", out, sizeof out), 0);
	const char *hdr = strstr(out, "threads");
	cr_assert_not_null(hdr, "a table header: %s", out);
	const char *names[] = { "glibc", "adaptive", "owner", "spin", "park" };
	for (int i = 0; i < 5; i++)
		cr_assert_not_null(strstr(hdr, names[i]), "column %s", names[i]);
	int rows = 0;
	for (const char *p = strchr(hdr, '\n'); p && p[1]; p = strchr(p + 1, '\n')) {
		int t, cs, h;
		double v[5];
		if (sscanf(p + 1, "%d %d %d %lf %lf %lf %lf %lf", &t, &cs, &h, &v[0],
		           &v[1], &v[2], &v[3], &v[4]) == 8) {
			rows++;
			/* A shape check, not a speed check: a worker that a loaded
			 * machine never scheduled in the window counts 0. */
			for (int i = 0; i < 5; i++)
				cr_assert_geq(v[i], 0.0, "row %d column %s", rows, names[i]);
		}
	}
	cr_assert_eq(rows, 2, "one row per configuration: %s", out);
	cr_assert_not_null(strstr(out, "owner >= best glibc variant in"));
	cr_assert_not_null(strstr(out, "paired by repetition"));
}

/* The paired columns: wins out of --reps, and a sign only beyond chance
 * (3 repetitions can never reach p < 0.05: 1/8 at best). */
Test(lock_bench, paired_columns_count_repetitions)
{
	static char out[4096];
	cr_assert_eq(run_schedctl("bench --threads=1 --cs=0 --hogs=0 --reps=3 "
	                          "--ms=5 --variants=glibc,owner --csv", out,
	                          sizeof out), 0);
	cr_assert_not_null(strstr(out, ",owner_vs_best_glibc,paired_ratio,"
	                          "owner_wins,reps\n"), "%s", out);
	const char *row = strstr(out, "\n1,0,0,");
	cr_assert_not_null(row, "%s", out);
	double g, own, r, pr;
	int won, reps;
	cr_assert_eq(sscanf(row + 1, "1,0,0,%lf,%lf,%lf,%lf,%d,%d", &g, &own, &r,
	                    &pr, &won, &reps), 6, "%s", out);
	cr_assert_eq(reps, 3);
	cr_assert(won >= 0 && won <= 3, "wins %d of 3", won);
	cr_assert_geq(pr, 0.0);
	memset(out, 0, sizeof out);
	cr_assert_eq(run_schedctl("bench --threads=1 --cs=0 --hogs=0 --reps=3 "
	                          "--ms=5 --variants=glibc,owner", out,
	                          sizeof out), 0);
	cr_assert_not_null(strstr(out, "within noise in 1\n"), "%s", out);
}

Test(lock_bench, csv_and_variant_subset)
{
	static char out[4096];
	cr_assert_eq(run_schedctl("bench --threads=2 --cs=100 --hogs=1 --reps=1 "
	                          "--ms=5 --variants=park,spin --csv", out,
	                          sizeof out), 0);
	cr_assert_not_null(strstr(out, "threads,cs_ns,hogs,park,spin\n"), "%s", out);
	cr_assert_not_null(strstr(out, "\n2,100,1,"), "%s", out);
}

Test(lock_bench, usage_errors_exit_2)
{
	static char out[1024];
	const char *bad[] = { "bench --bogus", "bench --threads=0", "bench --cs=x",
	                      "bench --variants=owner,nope", "bench --reps=0",
	                      "bench --settle=-1", "bench --settle=x",
	                      "bench --settle=10001", "bench extra" };
	for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_eq(run_schedctl(bad[i], out, sizeof out), 2, "%s", bad[i]);
	cr_assert_eq(run_schedctl("bench --help", out, sizeof out), 0);
	cr_assert_not_null(strstr(out, "usage: schedctl bench"));
}
