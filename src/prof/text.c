/*
 * text.c - the text report: a summary table of the top locks, then for
 * each of them its detail and its top call sites.
 *
 * Spin and park columns show "-" when the policy does not tell spinning
 * from parking (glibc's own locks): those numbers were never measured.
 */
#include <stdio.h>
#include <string.h>

#include "prof/render.h"

const char *prof_fmt_ns(char *b, size_t n, uint64_t ns)
{
	if (ns < 10000)
		snprintf(b, n, "%lluns", (unsigned long long)ns);
	else if (ns < 10000000)
		snprintf(b, n, "%.1fus", (double)ns / 1e3);
	else if (ns < 10000000000ull)
		snprintf(b, n, "%.1fms", (double)ns / 1e6);
	else
		snprintf(b, n, "%.2fs", (double)ns / 1e9);
	return b;
}

#define NS(x) prof_fmt_ns((char[24]){0}, 24, (x))

/* A spin/park figure, or "-" where it was not measured. */
#define spin_ns(m, x) ((m) ? NS(x) : "-")

static const char *spin_n(bool measured, uint64_t n, char *b, size_t bn)
{
	if (!measured)
		return "-";
	snprintf(b, bn, "%llu", (unsigned long long)n);
	return b;
}

#define CNT(m, x) spin_n((m), (x), (char[24]){0}, 24)

/* "func+0x1a (file.c:42)" or the address. */
void prof_frame_name(const struct prof_frame *f, char *b, size_t n)
{
	int k;
	if (f->f_func && f->f_off == PROF_OFF_UNKNOWN)
		k = snprintf(b, n, "%s", f->f_func);
	else if (f->f_func)
		k = snprintf(b, n, "%s+0x%llx", f->f_func, (unsigned long long)f->f_off);
	else
		k = snprintf(b, n, "0x%llx", (unsigned long long)f->f_pc);
	if (k >= 0 && (size_t)k < n && f->f_file) {
		const char *base = strrchr(f->f_file, '/');
		snprintf(b + k, n - (size_t)k, " (%s:%d)", base ? base + 1 : f->f_file,
		         f->f_line);
	}
}

static const char *site_name(const struct prof_ssite *s, char *b, size_t n)
{
	if (s->s_overflow)
		snprintf(b, n, "(other sites: over the site cap)");
	else if (!s->s_where.f_pc)
		snprintf(b, n, "(unknown caller)");
	else
		prof_frame_name(&s->s_where, b, n);
	return b;
}

static void lock_name(const struct prof_slock *l, char *b, size_t n)
{
	if (l->l_overflow)
		snprintf(b, n, "(other locks)");
	else if (l->l_name)
		snprintf(b, n, "%s", l->l_name);
	else
		snprintf(b, n, "0x%llx", (unsigned long long)l->l_addr);
}

static void print_hist(struct prof_out *o, const struct prof_counts *c)
{
	po_puts(o, "    hold histogram:");
	int any = 0;
	for (int b = 0; b < PROF_HIST_N; b++) {
		if (!c->c_hold_hist[b])
			continue;
		uint64_t lo = b ? 1ull << (b - 1) : 0;
		po_printf(o, "%s >=%s:%llu", any++ % 6 == 5 ? "\n                   " : "",
		          NS(lo), (unsigned long long)c->c_hold_hist[b]);
	}
	po_puts(o, any ? "\n" : " (none)\n");
}

static void print_detail(struct prof_out *o, const struct prof_counts *c,
                         bool m, const char *ind)
{
	uint64_t mean = prof_hold_mean(c);
	po_printf(o, "%sacquisitions %llu  contended %llu  spin-acquired %s  "
	          "spun-then-parked %s  parked %s",
	          ind, (unsigned long long)c->c_acq,
	          (unsigned long long)c->c_contended,
	          CNT(m, c->c_outcome[PROF_SPIN_WON]),
	          CNT(m, c->c_outcome[PROF_SPUN_PARKED]),
	          CNT(m, c->c_outcome[PROF_PARKED]));
	if (c->c_outcome[PROF_BLOCKED])
		po_printf(o, "  blocked %llu",
		          (unsigned long long)c->c_outcome[PROF_BLOCKED]);
	if (c->c_timeouts || c->c_try_failed)
		po_printf(o, "  timeouts %llu  trylock-busy %llu",
		          (unsigned long long)c->c_timeouts,
		          (unsigned long long)c->c_try_failed);
	po_printf(o, "\n%swait %s (max %s)  spin won %s  spin wasted %s  park %s\n",
	          ind, NS(c->c_wait_ns), NS(c->c_wait_max_ns),
	          spin_ns(m, c->c_spin_won_ns), spin_ns(m, c->c_spin_lost_ns),
	          spin_ns(m, c->c_park_ns));
	po_printf(o, "%shold %s%s  mean %s  max %s  holder switched out %llu",
	          ind, c->c_hold_n < c->c_acq ? "~" : "", NS(prof_hold_total(c)),
	          NS(mean), NS(c->c_hold_max_ns), (unsigned long long)c->c_lhp);
	if (c->c_hold_n < c->c_acq)
		po_printf(o, "  (%llu of %llu holds timed)",
		          (unsigned long long)c->c_hold_n, (unsigned long long)c->c_acq);
	po_puts(o, "\n");
	if (c->c_contended)
		po_printf(o, "%sowner on arrival: ONPROC %llu  RUN %llu  SLEEP %llu  "
		          "STOPPED %llu  unknown %llu\n", ind,
		          (unsigned long long)c->c_ostate[PROF_OS_ONPROC],
		          (unsigned long long)c->c_ostate[PROF_OS_RUN],
		          (unsigned long long)c->c_ostate[PROF_OS_SLEEP],
		          (unsigned long long)c->c_ostate[PROF_OS_STOPPED],
		          (unsigned long long)c->c_ostate[PROF_OS_UNKNOWN]);
	uint64_t np = 0;
	for (int i = 0; i < PROF_PARK_N; i++)
		np += c->c_park_reason[i];
	if (np && m)
		po_printf(o, "%spark reasons: owner off CPU %llu  spin budget spent %llu  "
		          "spinner cap %llu  policy %llu\n", ind,
		          (unsigned long long)c->c_park_reason[PROF_PARK_OWNER_OFFCPU],
		          (unsigned long long)c->c_park_reason[PROF_PARK_SPIN_BUDGET],
		          (unsigned long long)c->c_park_reason[PROF_PARK_SPINNER_CAP],
		          (unsigned long long)c->c_park_reason[PROF_PARK_POLICY]);
}

static void print_site(struct prof_out *o, const struct prof_ssite *s,
                       bool m, size_t rank)
{
	char b[600];
	po_printf(o, "  site %zu: %s\n", rank, site_name(s, b, sizeof b));
	print_detail(o, &s->s_c, m, "    ");
	for (size_t i = 0; i < s->s_nblk; i++) {
		prof_frame_name(&s->s_blk[i].b_site, b, sizeof b);
		po_printf(o, "    blocked by tid %d at %s: %llu\n", s->s_blk[i].b_tid,
		          b, (unsigned long long)s->s_blk[i].b_n);
	}
	if (s->s_blk_other)
		po_printf(o, "    blocked by unknown/other sites: %llu\n",
		          (unsigned long long)s->s_blk_other);
	for (size_t i = 0; i < s->s_nstacks; i++) {
		const struct prof_sstack *k = &s->s_stacks[i];
		po_printf(o, "    stack (%llu samples):\n",
		          (unsigned long long)k->k_samples);
		for (size_t f = 0; f < k->k_n; f++) {
			prof_frame_name(&k->k_frames[f], b, sizeof b);
			po_printf(o, "      %s\n", b);
		}
	}
	if (s->s_stacks_other)
		po_printf(o, "    other stacks: %llu samples\n",
		          (unsigned long long)s->s_stacks_other);
}

void prof_render_text(struct prof_out *o, const struct prof_snap *s,
                      int sort, int top)
{
	bool m = s->spin_measured;
	char b[600];
	po_printf(o, "\n=== schedctl lock profile: pid %d (%s), policy %s, %s, %s ===\n",
	          s->pid, s->comm, s->policy, NS(s->duration_ns),
	          s->final ? "at exit" : "live");
	po_printf(o, "%zu lock(s) seen, sorted by %s%s\n", s->nlocks,
	          prof_sort_name(sort),
	          m ? "" : "; spin/park not measured with this policy (\"-\")");
	if (s->lock_overflow || s->site_overflow || s->stack_overflow ||
	    s->thread_overflow || s->untracked)
		po_printf(o, "overflow: locks %llu (cap %llu), sites %llu (cap %llu), "
		          "stacks %llu, threads %llu, untracked holds %llu\n",
		          (unsigned long long)s->lock_overflow,
		          (unsigned long long)s->max_locks,
		          (unsigned long long)s->site_overflow,
		          (unsigned long long)s->max_sites,
		          (unsigned long long)s->stack_overflow,
		          (unsigned long long)s->thread_overflow,
		          (unsigned long long)s->untracked);
	if (s->runtime_acq)
		po_printf(o, "(%llu acquisitions by the runtime's own libraries not "
		          "shown)\n", (unsigned long long)s->runtime_acq);
	if (!s->nlocks) {
		po_puts(o, "no mutex acquisitions were seen\n");
		return;
	}
	size_t n = top > 0 && (size_t)top < s->nlocks ? (size_t)top : s->nlocks;
	po_printf(o, "\n%4s %-18s %10s %9s %9s %9s %9s %9s %9s %9s %9s %9s %9s %5s\n",
	          "#", "lock", "acquired", "contended", "spin-acq", "spun-park",
	          "parked", "wait", "spin-won", "spin-lost", "park", "hold-mean",
	          "hold-max", "lhp");
	for (size_t i = 0; i < n; i++) {
		const struct prof_slock *l = &s->locks[i];
		const struct prof_counts *c = &l->l_c;
		lock_name(l, b, sizeof b);
		po_printf(o, "%4zu %-18.18s %10llu %9llu %9s %9s %9s %9s %9s %9s %9s %9s "
		          "%9s %5llu\n", i + 1, b, (unsigned long long)c->c_acq,
		          (unsigned long long)c->c_contended,
		          CNT(m, c->c_outcome[PROF_SPIN_WON]),
		          CNT(m, c->c_outcome[PROF_SPUN_PARKED]),
		          CNT(m, c->c_outcome[PROF_PARKED]), NS(c->c_wait_ns),
		          spin_ns(m, c->c_spin_won_ns), spin_ns(m, c->c_spin_lost_ns),
		          spin_ns(m, c->c_park_ns),
		          NS(prof_hold_mean(c)),
		          NS(c->c_hold_max_ns), (unsigned long long)c->c_lhp);
	}
	if (n < s->nlocks)
		po_printf(o, "(%zu more locks not shown; --top)\n", s->nlocks - n);
	for (size_t i = 0; i < n; i++) {
		const struct prof_slock *l = &s->locks[i];
		lock_name(l, b, sizeof b);
		po_printf(o, "\nlock %zu: %s", i + 1, b);
		if (l->l_name)
			po_printf(o, " (0x%llx)", (unsigned long long)l->l_addr);
		po_printf(o, ", %zu call site(s)\n", l->l_nsites);
		print_detail(o, &l->l_c, m, "    ");
		print_hist(o, &l->l_c);
		size_t ns = top > 0 && (size_t)top < l->l_nsites ? (size_t)top
		                                                 : l->l_nsites;
		for (size_t j = 0; j < ns; j++)
			print_site(o, &l->l_sites[j], m, j + 1);
		if (ns < l->l_nsites)
			po_printf(o, "  (%zu more sites not shown)\n", l->l_nsites - ns);
	}
}
