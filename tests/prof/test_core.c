/* The profiler's records and text report, driven through the hooks with
 * a known pattern (pattern.h) and checked field by field. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pattern.h"
#include "prof/render.h"
#include "util.h"

Test(prof_core, pattern_counts_exact, .timeout = 60)
{
	start_profiler(NULL, NULL, NULL, 0);
	pattern_run();
	struct prof_snap *s = prof_snap_take(true);
	cr_assert_not_null(s);
	prof_snap_sort(s, PROF_SORT_HOLD);
	cr_assert_eq(s->nlocks, 2, "locks seen: %zu", s->nlocks);
	const struct prof_slock *a = find_lock(s, lock_a), *b = find_lock(s, lock_b);
	cr_assert(a && b);
	/* sorted by total hold time, descending */
	cr_assert_geq(s->locks[0].l_c.c_hold_ns, s->locks[1].l_c.c_hold_ns);

	int nc = C_SPIN + C_SPUNPARK + C_PARK;
	cr_assert_eq(a->l_c.c_acq, N_A1 + N_A2 + nc);
	cr_assert_eq(a->l_c.c_contended, nc);
	cr_assert_eq(a->l_c.c_outcome[PROF_SPIN_WON], C_SPIN);
	cr_assert_eq(a->l_c.c_outcome[PROF_SPUN_PARKED], C_SPUNPARK);
	cr_assert_eq(a->l_c.c_outcome[PROF_PARKED], C_PARK);
	cr_assert_eq(a->l_c.c_spin_won_ns, (uint64_t)C_SPIN * SPIN_NS);
	cr_assert_eq(a->l_c.c_spin_lost_ns, (uint64_t)C_SPUNPARK * SPIN_NS);
	cr_assert_eq(a->l_c.c_park_ns, (uint64_t)(C_SPUNPARK + C_PARK) * PARK_NS);
	cr_assert_eq(a->l_c.c_park_reason[PROF_PARK_SPIN_BUDGET], C_SPUNPARK);
	cr_assert_eq(a->l_c.c_park_reason[PROF_PARK_OWNER_OFFCPU], C_PARK);
	uint64_t os = 0;
	for (int i = 0; i < PROF_OS_N; i++)
		os += a->l_c.c_ostate[i];
	cr_assert_eq(os, nc);
	/* The holder sleeps in a barrier meanwhile. */
	if (pat_owner_seen_sleeping)
		cr_assert_geq(a->l_c.c_ostate[PROF_OS_SLEEP], nc - 1,
		              "SLEEP %llu", (unsigned long long)a->l_c.c_ostate[PROF_OS_SLEEP]);
	cr_assert_eq(a->l_c.c_hold_hist[0] + 0, a->l_c.c_hold_hist[0]);
	uint64_t h = 0;
	for (int i = 0; i < PROF_HIST_N; i++)
		h += a->l_c.c_hold_hist[i];
	cr_assert_eq(h, a->l_c.c_acq, "every hold in the histogram");
	cr_assert_eq(a->l_c.c_hold_n, a->l_c.c_acq, "every hold timed");

	cr_assert_eq(b->l_c.c_acq, N_B1);
	cr_assert_eq(b->l_c.c_contended, 0);
	cr_assert_geq(b->l_c.c_hold_ns, (uint64_t)N_B1 * HOLD_B_US * 1000 * 9 / 10);
	/* A's short holds: without its one long hold (site_a2_hold's last,
	 * kept while thread 3 waits to see the holder asleep, which takes
	 * milliseconds on a loaded machine and, in a mean over A's ~1,300
	 * holds, once made A's mean 11 us under TSan). */
	uint64_t mean_a = (a->l_c.c_hold_ns - a->l_c.c_hold_max_ns) /
	                  (a->l_c.c_acq - 1);
	uint64_t mean_b = b->l_c.c_hold_ns / b->l_c.c_acq;
	cr_assert_gt(mean_b, 20 * mean_a, "B held longer: %llu vs %llu",
	             (unsigned long long)mean_b, (unsigned long long)mean_a);
	cr_assert_geq(b->l_c.c_hold_max_ns, HOLD_B_US * 1000);

	/* Sites: named by function, exact counts. */
	cr_assert_eq(a->l_nsites, 3);
	const struct prof_ssite *s1 = find_site(a, "site_a1");
	const struct prof_ssite *s2 = find_site(a, "site_a2_hold");
	const struct prof_ssite *s3 = find_site(a, "site_a1_contended");
	cr_assert(s1 && s2 && s3, "sites named by function");
	cr_assert_eq(s1->s_c.c_acq, N_A1);
	cr_assert_eq(s1->s_c.c_contended, 0);
	cr_assert_eq(s2->s_c.c_acq, N_A2);
	cr_assert_eq(s3->s_c.c_acq, nc);
	cr_assert_eq(s3->s_c.c_contended, nc);
	cr_assert_not_null(s1->s_where.f_file, "file:line from debug info");
	cr_assert(strstr(s1->s_where.f_file, "pattern.h"), "%s", s1->s_where.f_file);
	cr_assert_gt(s1->s_where.f_line, 0);
	/* Who blocked whom: thread 1 at site_a2_hold, every time. */
	cr_assert_eq(s3->s_nblk, 1);
	cr_assert_eq(s3->s_blk[0].b_n, nc);
	cr_assert_eq(s3->s_blk[0].b_tid, pat_owner_tid);
	cr_assert_str_eq(s3->s_blk[0].b_site.f_func, "site_a2_hold");
	/* Stacks start at the call site. */
	cr_assert_geq(s3->s_nstacks, 1);
	cr_assert_str_eq(s3->s_stacks[0].k_frames[0].f_func, "site_a1_contended");
	uint64_t samples = s3->s_stacks_other;
	for (size_t i = 0; i < s3->s_nstacks; i++)
		samples += s3->s_stacks[i].k_samples;
	cr_assert_eq(samples, nc + 1, "first reference + every contended one");
	const struct prof_ssite *sb = find_site(b, "site_b1");
	cr_assert(sb && sb->s_c.c_acq == N_B1);
	prof_snap_free(s);
}

Test(prof_core, text_report_fields, .timeout = 60)
{
	char out[] = "/tmp/prof_text_XXXXXX";
	int fd = mkstemp(out);
	cr_assert_geq(fd, 0);
	close(fd);
	start_profiler(out, NULL, NULL, 0);
	pattern_run();
	cr_assert_eq(prof_dump(true), 0);
	char *t = slurp(out, NULL);
	unlink(out);
	cr_assert_not_null(t);
	char want[128];
	snprintf(want, sizeof want, "acquisitions %d  contended %d  spin-acquired %d  "
	         "spun-then-parked %d  parked %d", N_A1 + N_A2 + C_SPIN + C_SPUNPARK +
	         C_PARK, C_SPIN + C_SPUNPARK + C_PARK, C_SPIN, C_SPUNPARK, C_PARK);
	cr_assert(strstr(t, want), "missing '%s' in:\n%s", want, t);
	snprintf(want, sizeof want, "acquisitions %d  contended 0", N_B1);
	cr_assert(strstr(t, want), "missing '%s'", want);
	cr_assert(strstr(t, "site 1: site_a1"), "site names");
	cr_assert(strstr(t, "blocked by tid"), "who blocked whom");
	cr_assert(strstr(t, "at site_a2_hold+0x"), "blocker's site");
	cr_assert(strstr(t, "park reasons: owner off CPU 3  spin budget spent 5"));
	cr_assert(strstr(t, "sorted by contended"));
	/* Lock A is the contended one: first in the table. */
	char *row1 = strstr(t, "\n   1 0x");
	cr_assert_not_null(row1);
	snprintf(want, sizeof want, "0x%llx", (unsigned long long)(uintptr_t)lock_a);
	cr_assert(!strncmp(row1 + 6, want, strlen(want)), "row 1 is lock A");
	free(t);
}

Test(prof_core, no_locks, .timeout = 30)
{
	char out[] = "/tmp/prof_none_XXXXXX";
	int fd = mkstemp(out);
	cr_assert_geq(fd, 0);
	close(fd);
	start_profiler(out, NULL, NULL, 0);
	cr_assert_eq(prof_dump(true), 0);
	char *t = slurp(out, NULL);
	unlink(out);
	cr_assert(t && strstr(t, "0 lock(s) seen"));
	cr_assert(strstr(t, "no mutex acquisitions were seen"));
	free(t);
}

Test(prof_core, caps_count_overflow_exactly, .timeout = 30)
{
	static char locks[40][8];
	start_profiler(NULL, NULL, NULL, 16);
	for (int r = 0; r < 3; r++)
		for (int i = 0; i < 40; i++) {
			fake_lock(locks[i]);
			fake_unlock(locks[i]);
		}
	struct prof_snap *s = prof_snap_take(true);
	cr_assert_not_null(s);
	cr_assert_eq(s->nlocks, 17, "16 locks + (other locks)");
	uint64_t total = 0;
	const struct prof_slock *other = NULL;
	for (size_t i = 0; i < s->nlocks; i++) {
		total += s->locks[i].l_c.c_acq;
		if (s->locks[i].l_overflow)
			other = &s->locks[i];
	}
	cr_assert_eq(total, 120, "no acquisition lost");
	cr_assert_not_null(other);
	cr_assert_eq(other->l_c.c_acq, 3 * 24);
	cr_assert_geq(s->lock_overflow, 24);
	prof_snap_free(s);
}

Test(prof_core, off_costs_nothing_and_counts_nothing, .timeout = 30)
{
	cr_assert(!prof_on());
	fake_lock(lock_a);
	fake_unlock(lock_a);
	cr_assert_eq(prof_dump(true), -EINVAL);
}

Test(prof_core, hold_sampling_times_one_in_n, .timeout = 30)
{
	struct prof_config c = { .pc_max_locks = 64, .pc_max_sites = 64,
	                         .pc_max_stacks = 64, .pc_hold_sample = 4 };
	cr_assert_eq(prof_init(&c), 0);
	for (int i = 0; i < 100; i++) {
		fake_lock(lock_b);
		fake_unlock(lock_b);
	}
	struct prof_snap *s = prof_snap_take(true);
	cr_assert_eq(s->nlocks, 1);
	cr_assert_eq(s->locks[0].l_c.c_acq, 100, "acquisitions stay exact");
	cr_assert_eq(s->locks[0].l_c.c_hold_n, 25);
	uint64_t h = 0;
	for (int i = 0; i < PROF_HIST_N; i++)
		h += s->locks[0].l_c.c_hold_hist[i];
	cr_assert_eq(h, 25);
	prof_snap_free(s);
}

Test(prof_core, holder_switched_out_while_holding, .timeout = 30)
{
	sc_shared_t *me = schedctl_self();
	cr_assert_not_null(me);
	start_profiler(NULL, NULL, NULL, 0);
	for (int i = 0; i < 3; i++) {
		fake_lock(lock_a);          /* held across a sleep */
		usleep(2000);
		fake_unlock(lock_a);
	}
	for (int i = 0; i < 50; i++) {
		fake_lock(lock_b);          /* short holds */
		fake_unlock(lock_b);
	}
	struct prof_snap *s = prof_snap_take(true);
	const struct prof_slock *a = find_lock(s, lock_a), *b = find_lock(s, lock_b);
	cr_assert(a && b);
	if (schedctl_source(me) == SCHEDCTL_SOURCE_PERF)
		cr_assert_eq(a->l_c.c_lhp, 3, "every sleeping hold: %llu",
		             (unsigned long long)a->l_c.c_lhp);
	cr_assert_leq(b->l_c.c_lhp, 5, "short holds rarely switched out");
	prof_snap_free(s);
}

Test(prof_core, global_locks_named_by_symbol, .timeout = 30)
{
	extern char **environ;
	start_profiler(NULL, NULL, NULL, 0);
	fake_lock(&environ);        /* an exported data symbol of libc */
	fake_unlock(&environ);
	fake_lock(lock_a);          /* a static object: no dynamic symbol */
	fake_unlock(lock_a);
	struct prof_snap *s = prof_snap_take(true);
	const struct prof_slock *e = find_lock(s, &environ), *a = find_lock(s, lock_a);
	cr_assert(e && a);
	cr_assert(e->l_name && strstr(e->l_name, "environ"), "%s", e->l_name);
	cr_assert_null(a->l_name);
	prof_snap_free(s);
}

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>

/* A pc in a function libc does not export (start_thread, say) has an
 * exported function before it as its nearest dynamic symbol; naming the
 * frame after that function would send the reader to the wrong code.
 * Such a frame reads object+offset; a pc inside a function keeps its
 * name. */
Test(prof_core, pc_past_a_symbol_end_is_object_plus_offset)
{
	void *cands[] = { (void *)getpid, (void *)pthread_create,
	                  (void *)pthread_mutex_lock, (void *)read,
	                  (void *)write, (void *)qsort, (void *)close,
	                  (void *)pthread_join, (void *)nanosleep, (void *)free,
	                  (void *)malloc, (void *)fopen, (void *)fclose };
	setenv("SCHEDCTL_ADDR2LINE", "", 1);    /* dynamic symbols only */
	for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
		Dl_info d, e;
		const ElfW(Sym) *s = NULL, *t = NULL;
		if (!dladdr1(cands[i], &d, (void **)&s, RTLD_DL_SYMENT) || !s ||
		    !d.dli_sname || s->st_size < 2)
			continue;
		uintptr_t past = (uintptr_t)d.dli_saddr + s->st_size;
		if (dladdr1((void *)past, &e, (void **)&t, RTLD_DL_SYMENT) &&
		    e.dli_sname)
			continue;        /* the next function is exported */
		struct prof_frame f[2];
		memset(f, 0, sizeof f);
		f[0].f_pc = (uintptr_t)d.dli_saddr + 1;
		f[1].f_pc = past;
		prof_symbolise(f, 2);
		cr_assert_not_null(f[0].f_func);
		cr_assert_str_eq(f[0].f_func, d.dli_sname);
		cr_assert_eq(f[0].f_off, 1);
		cr_assert_not_null(f[1].f_func);
		cr_assert_str_neq(f[1].f_func, d.dli_sname,
		                  "pc past %s's end named after it", d.dli_sname);
		const char *base = strrchr(d.dli_fname, '/');
		cr_assert_str_eq(f[1].f_func, base ? base + 1 : d.dli_fname);
		cr_assert_eq(f[1].f_off, past - (uintptr_t)d.dli_fbase);
		for (int k = 0; k < 2; k++) {
			free(f[k].f_func);
			free(f[k].f_file);
			free(f[k].f_obj);
		}
		return;
	}
	cr_skip_test("every candidate is followed by an exported function");
}

/* A report names the same pc many times; each distinct pc is symbolised
 * once and copied.  Every frame must still get its own name, object and
 * offset, in its own allocation (each is freed on its own). */
Test(prof_core, repeated_pcs_are_each_named)
{
	void *fn[] = { (void *)getpid, (void *)read, (void *)write };
	int pick[] = { 0, 1, 0, 2, 1, 0, 0 };
	enum { N = sizeof pick / sizeof pick[0] };
	struct prof_frame f[N], one[3];
	setenv("SCHEDCTL_ADDR2LINE", "", 1);
	memset(f, 0, sizeof f);
	memset(one, 0, sizeof one);
	for (int i = 0; i < 3; i++) {
		one[i].f_pc = (uintptr_t)fn[i] + 1;
		prof_symbolise(&one[i], 1);
		cr_assert_not_null(one[i].f_func);
		cr_assert_not_null(one[i].f_obj);
	}
	for (int i = 0; i < N; i++)
		f[i].f_pc = (uintptr_t)fn[pick[i]] + 1;
	prof_symbolise(f, N);
	for (int i = 0; i < N; i++) {
		const struct prof_frame *o = &one[pick[i]];
		cr_assert_eq(f[i].f_pc, o->f_pc, "frame %d moved", i);
		cr_assert_not_null(f[i].f_func, "frame %d unnamed", i);
		cr_assert_str_eq(f[i].f_func, o->f_func, "frame %d", i);
		cr_assert_eq(f[i].f_off, o->f_off, "frame %d", i);
		cr_assert_str_eq(f[i].f_obj, o->f_obj, "frame %d", i);
		for (int j = 0; j < i; j++)
			cr_assert(f[i].f_func != f[j].f_func &&
			          f[i].f_obj != f[j].f_obj,
			          "frames %d and %d share a string", j, i);
	}
	for (int i = 0; i < N; i++) {
		free(f[i].f_func);
		free(f[i].f_file);
		free(f[i].f_obj);
	}
	for (int i = 0; i < 3; i++) {
		free(one[i].f_func);
		free(one[i].f_file);
		free(one[i].f_obj);
	}
}

#include <sys/stat.h>

/* A stand-in addr2line printing NAME and LINE for every address. */
static char *fake_addr2line(char *path, const char *name, const char *line)
{
	strcpy(path, "/tmp/fake-addr2line-XXXXXX");
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	dprintf(fd, "#!/bin/sh\nshift 2\nfor a; do printf '%%s\\n%%s\\n' '%s' '%s'; done\n",
	        name, line);
	fchmod(fd, 0700);
	close(fd);
	return path;
}

/* addr2line without debug information names the nearest symbol before
 * pc, without checking where that symbol ends (in a stripped libc,
 * start_thread read "pthread_condattr_setpshared").  Its name is taken
 * only with a line, i.e. from debug information. */
Test(prof_core, addr2line_name_needs_a_line)
{
	struct prof_frame ours, f;
	memset(&ours, 0, sizeof ours);
	ours.f_pc = (uintptr_t)getpid + 1;
	setenv("SCHEDCTL_ADDR2LINE", "", 1);
	prof_symbolise(&ours, 1);
	cr_assert_not_null(ours.f_func);

	char buf[64];
	char *tool = fake_addr2line(buf, "wrong_guess", "??:0");
	setenv("SCHEDCTL_ADDR2LINE", tool, 1);
	memset(&f, 0, sizeof f);
	f.f_pc = ours.f_pc;
	prof_symbolise(&f, 1);
	unlink(tool);
	cr_assert_str_eq(f.f_func, ours.f_func, "took addr2line's guess");
	cr_assert_eq(f.f_off, ours.f_off);
	cr_assert_null(f.f_file);
	free(f.f_func);
	free(f.f_obj);

	tool = fake_addr2line(buf, "from_dwarf", "/src/x.c:12");
	setenv("SCHEDCTL_ADDR2LINE", tool, 1);
	memset(&f, 0, sizeof f);
	f.f_pc = ours.f_pc;
	prof_symbolise(&f, 1);
	unlink(tool);
	cr_assert_str_eq(f.f_func, "from_dwarf");
	cr_assert_str_eq(f.f_file, "/src/x.c");
	cr_assert_eq(f.f_line, 12);
	free(f.f_func);
	free(f.f_file);
	free(f.f_obj);
	free(ours.f_func);
	free(ours.f_obj);
	setenv("SCHEDCTL_ADDR2LINE", "", 1);
}
