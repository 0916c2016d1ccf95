/* The JSON profile: written from the known pattern, parsed back with the
 * parser `schedctl report` uses, compared field by field; the parser
 * against malformed and mutated input; `schedctl report` end to end. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pattern.h"
#include "util.h"

static void same_frame(const struct prof_frame *a, const struct prof_frame *b)
{
	cr_assert_eq(a->f_pc, b->f_pc);
	cr_assert_eq(a->f_off, b->f_off);
	cr_assert_eq(a->f_line, b->f_line);
	cr_assert_eq(!a->f_func, !b->f_func);
	if (a->f_func)
		cr_assert_str_eq(a->f_func, b->f_func);
	cr_assert_eq(!a->f_file, !b->f_file);
	if (a->f_file)
		cr_assert_str_eq(a->f_file, b->f_file);
}

static void same_counts(const struct prof_counts *a, const struct prof_counts *b)
{
	/* Every counter the schema carries. */
	cr_assert_eq(a->c_acq, b->c_acq);
	cr_assert_eq(a->c_contended, b->c_contended);
	for (int i = 0; i < PROF_NOUTCOMES; i++)
		cr_assert_eq(a->c_outcome[i], b->c_outcome[i], "outcome %d", i);
	cr_assert_eq(a->c_spin_won_ns, b->c_spin_won_ns);
	cr_assert_eq(a->c_spin_lost_ns, b->c_spin_lost_ns);
	cr_assert_eq(a->c_park_ns, b->c_park_ns);
	cr_assert_eq(a->c_wait_ns, b->c_wait_ns);
	cr_assert_eq(a->c_wait_max_ns, b->c_wait_max_ns);
	cr_assert_eq(a->c_hold_ns, b->c_hold_ns);
	cr_assert_eq(a->c_hold_max_ns, b->c_hold_max_ns);
	cr_assert_eq(a->c_hold_n, b->c_hold_n);
	for (int i = 0; i < PROF_HIST_N; i++)
		cr_assert_eq(a->c_hold_hist[i], b->c_hold_hist[i]);
	for (int i = 0; i < PROF_OS_N; i++)
		cr_assert_eq(a->c_ostate[i], b->c_ostate[i]);
	for (int i = 1; i < PROF_PARK_N; i++)
		cr_assert_eq(a->c_park_reason[i], b->c_park_reason[i]);
	cr_assert_eq(a->c_lhp, b->c_lhp);
	cr_assert_eq(a->c_timeouts, b->c_timeouts);
	cr_assert_eq(a->c_try_failed, b->c_try_failed);
}

static char *dump_pattern_json(char *path, size_t *len)
{
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
	start_profiler(NULL, path, NULL, 0);
	pattern_run();
	cr_assert_eq(prof_dump(true), 0);
	char *j = slurp(path, len);
	cr_assert_not_null(j);
	return j;
}

Test(prof_json, round_trip_field_by_field, .timeout = 60)
{
	char path[] = "/tmp/prof_json_XXXXXX";
	size_t len;
	char *j = dump_pattern_json(path, &len);
	unlink(path);
	const char *err = NULL;
	struct prof_snap *p = prof_json_parse(j, len, &err);
	cr_assert_not_null(p, "parse: %s", err);
	struct prof_snap *s = prof_snap_take(true);
	prof_snap_sort(s, PROF_SORT_CONTENDED);
	prof_snap_sort(p, PROF_SORT_CONTENDED);
	cr_assert_eq(p->version, 1);
	cr_assert_eq(p->pid, getpid());
	cr_assert_str_eq(p->policy, "owner");
	cr_assert(p->spin_measured && p->final);
	cr_assert_eq(p->nlocks, s->nlocks);
	for (size_t i = 0; i < s->nlocks; i++) {
		const struct prof_slock *a = &s->locks[i], *b = &p->locks[i];
		cr_assert_eq(a->l_addr, b->l_addr);
		cr_assert_eq(!a->l_name, !b->l_name);
		if (a->l_name)
			cr_assert_str_eq(a->l_name, b->l_name);
		same_counts(&a->l_c, &b->l_c);
		cr_assert_eq(a->l_nsites, b->l_nsites);
		for (size_t k = 0; k < a->l_nsites; k++) {
			const struct prof_ssite *x = &a->l_sites[k], *y = &b->l_sites[k];
			same_frame(&x->s_where, &y->s_where);
			same_counts(&x->s_c, &y->s_c);
			cr_assert_eq(x->s_nstacks, y->s_nstacks);
			for (size_t t = 0; t < x->s_nstacks; t++) {
				cr_assert_eq(x->s_stacks[t].k_samples, y->s_stacks[t].k_samples);
				cr_assert_eq(x->s_stacks[t].k_n, y->s_stacks[t].k_n);
				for (size_t f = 0; f < x->s_stacks[t].k_n; f++)
					same_frame(&x->s_stacks[t].k_frames[f],
					           &y->s_stacks[t].k_frames[f]);
			}
			cr_assert_eq(x->s_nblk, y->s_nblk);
			for (size_t t = 0; t < x->s_nblk; t++) {
				cr_assert_eq(x->s_blk[t].b_tid, y->s_blk[t].b_tid);
				cr_assert_eq(x->s_blk[t].b_n, y->s_blk[t].b_n);
				same_frame(&x->s_blk[t].b_site, &y->s_blk[t].b_site);
			}
		}
	}
	/* The fields the issue names, by their JSON names. */
	cr_assert(strstr(j, "\"locks\":["));
	const char *keys[] = { "\"acquisitions\":", "\"contended\":", "\"spin_acquired\":",
	                       "\"parked\":", "\"spin_ns\":", "\"park_ns\":",
	                       "\"hold_ns\":", "\"sites\":[", "\"stack\":[" };
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
		cr_assert(strstr(j, keys[i]), "%s", keys[i]);
	prof_snap_free(p);
	prof_snap_free(s);
	free(j);
}

Test(prof_json, glibc_policy_leaves_spin_empty, .timeout = 30)
{
	char path[] = "/tmp/prof_glibc_XXXXXX";
	int fd = mkstemp(path);
	close(fd);
	struct prof_config c = { .pc_json = path, .pc_max_locks = 64,
	                         .pc_max_sites = 64, .pc_max_stacks = 64,
	                         .pc_policy = "glibc" };
	cr_assert_eq(prof_init(&c), 0);
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	for (int i = 0; i < 7; i++) {
		cr_assert_eq(prof_glibc_lock(&m, NULL, pthread_mutex_lock,
		                             pthread_mutex_trylock), 0);
		cr_assert_eq(prof_glibc_unlock(&m, pthread_mutex_unlock), 0);
	}
	cr_assert_eq(prof_dump(true), 0);
	size_t len = 0;
	char *j = slurp(path, &len);
	unlink(path);
	cr_assert(strstr(j, "\"spin_ns\":null") && strstr(j, "\"park_ns\":null"));
	cr_assert(strstr(j, "\"spin_measured\":false"));
	const char *err;
	struct prof_snap *p = prof_json_parse(j, len, &err);
	cr_assert_not_null(p, "%s", err);
	cr_assert(!p->spin_measured);
	cr_assert_eq(p->nlocks, 1);
	cr_assert_eq(p->locks[0].l_c.c_acq, 7);
	char tp[] = "/tmp/prof_glibc_txt_XXXXXX";
	int tfd = mkstemp(tp);
	struct prof_out o;
	po_init(&o, tfd);
	prof_render_text(&o, p, PROF_SORT_CONTENDED, 0);
	cr_assert_eq(po_flush(&o), 0);
	close(tfd);
	char *txt = slurp(tp, NULL);
	unlink(tp);
	cr_assert(strstr(txt, "spin-acquired -  spun-then-parked -  parked -"), "%s", txt);
	cr_assert(strstr(txt, "spin won -  spin wasted -  park -"), "%s", txt);
	free(txt);
	prof_snap_free(p);
	free(j);
}

Test(prof_json, malformed_input_is_one_error, .timeout = 30)
{
	const char *bad[] = {
		"", "{", "[]", "null", "{\"schema\":\"other\"}",
		"{\"schema\":\"schedctl-profile\",\"version\":2}",
		"{\"schema\":\"schedctl-profile\",\"version\":1,\"pid\":-1}",
		"{\"schema\":\"schedctl-profile\",\"version\":1,\"pid\":1,"
		"\"duration_ns\":1,\"locks\":[{\"address\":\"zz\"}]}",
		"{\"schema\":\"schedctl-profile\",\"version\":1,\"pid\":1,"
		"\"duration_ns\":1,\"locks\":{}}",
		"{\"a\":\"\\uZZZZ\"}", "{\"a\":1e}", "{\"a\":[1,]}", "{\"a\" 1}",
		"{\"a\":\"unterminated", "{\"a\":99999999999999999999999}",
		"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
		"{\"schema\":\"schedctl-profile\"} trailing",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		const char *err = NULL;
		struct prof_snap *s = prof_json_parse(bad[i], strlen(bad[i]), &err);
		cr_assert_null(s, "accepted: %s", bad[i]);
		cr_assert(err && *err && !strchr(err, '\n'), "one-line error for %s", bad[i]);
	}
}

Test(prof_json, truncated_and_mutated_files_never_crash, .timeout = 90)
{
	char path[] = "/tmp/prof_fuzz_XXXXXX";
	size_t len;
	char *j = dump_pattern_json(path, &len);
	unlink(path);
	size_t step = len / 400 + 1;
	for (size_t cut = 0; cut < len - 2; cut += step) {
		const char *err = NULL;
		struct prof_snap *s = prof_json_parse(j, cut, &err);
		cr_assert_null(s, "truncated at %zu accepted", cut);
		cr_assert_not_null(err);
	}
	unsigned seed = 12345;
	char *m = malloc(len);
	for (int round = 0; round < 2000; round++) {
		memcpy(m, j, len);
		for (int k = 0; k < 4; k++) {
			seed = seed * 1103515245u + 12345u;
			m[(seed >> 8) % len] = (char)(seed >> 3);
		}
		const char *err = NULL;
		struct prof_snap *s = prof_json_parse(m, len, &err);
		cr_assert(s || (err && *err));
		prof_snap_free(s);
	}
	free(m);
	free(j);
}

static int run_cli(const char *const argv[], char *out, size_t outsz)
{
	int pfd[2];
	cr_assert_eq(pipe(pfd), 0);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	size_t n = 0;
	ssize_t r;
	while (n + 1 < outsz && (r = read(pfd[0], out + n, outsz - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = 0;
	close(pfd[0]);
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

Test(prof_json, schedctl_report_renders_text_and_svg, .timeout = 60)
{
	const char *cli = getenv("SCHEDCTL_BIN");
	cr_assert_not_null(cli);
	char path[] = "/tmp/prof_cli_XXXXXX";
	size_t len;
	char *j = dump_pattern_json(path, &len);
	free(j);
	char svg[4200], arg[4300];
	snprintf(svg, sizeof svg, "%s.svg", path);
	snprintf(arg, sizeof arg, "--svg=%s", svg);
	static char out[1 << 16];
	const char *a1[] = { cli, "report", path, arg, "--sort=hold", "--top=1", NULL };
	cr_assert_eq(run_cli(a1, out, sizeof out), 0, "%s", out);
	cr_assert(strstr(out, "sorted by hold"), "%s", out);
	cr_assert(strstr(out, "(1 more locks not shown; --top)"), "%s", out);
	struct prof_snap *live = prof_snap_take(true);
	prof_snap_sort(live, PROF_SORT_HOLD);
	char want[64];
	snprintf(want, sizeof want, "\n   1 0x%llx ",
	         (unsigned long long)live->locks[0].l_addr);
	cr_assert(strstr(out, want), "longest total hold first (%s): %s", want, out);
	/* The chart's one row is that lock, named by its first site: B's
	 * (site_b1) on a quiet machine, A's when load stretches A's long
	 * hold past B's total. */
	const struct prof_slock *top = &live->locks[0];
	char site[128];
	snprintf(site, sizeof site, "%s",
	         top->l_nsites && top->l_sites[0].s_where.f_func ?
	         top->l_sites[0].s_where.f_func : "?");
	prof_snap_free(live);
	cr_assert(strncmp(site, "site_", 5) == 0, "top site %s", site);
	char *s = slurp(svg, NULL);
	cr_assert(s && strstr(s, "<svg") && strstr(s, "</svg>") &&
	          strstr(s, site), "svg names %s", site);
	free(s);
	const char *a2[] = { cli, "report", path, "--sort=bogus", NULL };
	cr_assert_eq(run_cli(a2, out, sizeof out), 2);
	const char *a3[] = { cli, "report", "/nonexistent/x.json", NULL };
	cr_assert_eq(run_cli(a3, out, sizeof out), 1);
	cr_assert(strstr(out, "cannot read") && !strchr(strchr(out, '\n') + 1, '\n'));
	FILE *f = fopen(path, "w");
	fputs("{\"schema\":\"schedctl-profile\",\"version\":1,", f);
	fclose(f);
	const char *a4[] = { cli, "report", path, NULL };
	cr_assert_eq(run_cli(a4, out, sizeof out), 1);
	cr_assert(strstr(out, "not valid JSON"), "%s", out);
	unlink(path);
	unlink(svg);
}
