/*
 * json_out.c - the profile as JSON, schema "schedctl-profile" version 1
 * (docs/profile-schema.md is the reference; json_in.c reads it back).
 *
 * Numbers are unsigned integers (nanoseconds for every *_ns field).
 * Spin and park fields are null when the policy does not measure them
 * (policy glibc): absent data is not written as zero.
 */
#include <stdio.h>

#include "prof/render.h"

static const char *const ostate_key[PROF_OS_N] = {
	"unknown", "ONPROC", "RUN", "SLEEP", "STOPPED"
};
static const char *const reason_key[PROF_PARK_N] = {
	"none", "owner_off_cpu", "spin_budget", "spinner_cap", "policy"
};

static void u64(struct prof_out *o, const char *k, uint64_t v, bool comma)
{
	po_printf(o, "\"%s\":%llu%s", k, (unsigned long long)v, comma ? "," : "");
}

static void u64m(struct prof_out *o, const char *k, uint64_t v, bool m)
{
	if (m)
		u64(o, k, v, true);
	else
		po_printf(o, "\"%s\":null,", k);
}

static void counts(struct prof_out *o, const struct prof_counts *c, bool m)
{
	u64(o, "acquisitions", c->c_acq, true);
	u64(o, "contended", c->c_contended, true);
	u64m(o, "spin_acquired", c->c_outcome[PROF_SPIN_WON], m);
	u64m(o, "spun_parked", c->c_outcome[PROF_SPUN_PARKED], m);
	u64m(o, "parked", c->c_outcome[PROF_PARKED], m);
	u64(o, "blocked", c->c_outcome[PROF_BLOCKED], true);
	u64m(o, "spin_ns", c->c_spin_won_ns + c->c_spin_lost_ns, m);
	u64m(o, "spin_won_ns", c->c_spin_won_ns, m);
	u64m(o, "spin_wasted_ns", c->c_spin_lost_ns, m);
	u64m(o, "park_ns", c->c_park_ns, m);
	u64(o, "wait_ns", c->c_wait_ns, true);
	u64(o, "wait_max_ns", c->c_wait_max_ns, true);
	u64(o, "hold_ns", c->c_hold_ns, true);
	u64(o, "hold_timed", c->c_hold_n, true);
	u64(o, "hold_max_ns", c->c_hold_max_ns, true);
	u64(o, "lock_holder_preemptions", c->c_lhp, true);
	u64(o, "timeouts", c->c_timeouts, true);
	u64(o, "trylock_busy", c->c_try_failed, true);
	po_puts(o, "\"hold_hist\":[");
	for (int b = 0; b < PROF_HIST_N; b++)
		po_printf(o, "%s%llu", b ? "," : "", (unsigned long long)c->c_hold_hist[b]);
	po_puts(o, "],\"owner_state\":{");
	for (int i = 0; i < PROF_OS_N; i++)
		po_printf(o, "%s\"%s\":%llu", i ? "," : "", ostate_key[i],
		          (unsigned long long)c->c_ostate[i]);
	po_puts(o, "},\"park_reason\":");
	if (!m) {
		po_puts(o, "null");
		return;
	}
	po_puts(o, "{");
	for (int i = 1; i < PROF_PARK_N; i++)
		po_printf(o, "%s\"%s\":%llu", i > 1 ? "," : "", reason_key[i],
		          (unsigned long long)c->c_park_reason[i]);
	po_puts(o, "}");
}

static void frame(struct prof_out *o, const struct prof_frame *f)
{
	po_printf(o, "{\"pc\":\"0x%llx\",\"function\":", (unsigned long long)f->f_pc);
	po_json_str(o, f->f_func);
	if (f->f_off == PROF_OFF_UNKNOWN)
		po_puts(o, ",\"offset\":null,\"file\":");
	else
		po_printf(o, ",\"offset\":%llu,\"file\":", (unsigned long long)f->f_off);
	po_json_str(o, f->f_file);
	po_printf(o, ",\"line\":%d,\"object\":", f->f_line > 0 ? f->f_line : 0);
	po_json_str(o, f->f_obj);
	po_puts(o, "}");
}

static void frames(struct prof_out *o, const struct prof_frame *f, size_t n)
{
	po_puts(o, "[");
	for (size_t i = 0; i < n; i++) {
		if (i)
			po_puts(o, ",");
		frame(o, &f[i]);
	}
	po_puts(o, "]");
}

static void site(struct prof_out *o, const struct prof_ssite *s, bool m)
{
	po_puts(o, "{\"site\":");
	frame(o, &s->s_where);
	po_printf(o, ",\"overflow\":%s,", s->s_overflow ? "true" : "false");
	counts(o, &s->s_c, m);
	/* "stack": the most sampled one; "stacks": all kept. */
	size_t best = 0;
	for (size_t i = 1; i < s->s_nstacks; i++)
		if (s->s_stacks[i].k_samples > s->s_stacks[best].k_samples)
			best = i;
	po_puts(o, ",\"stack\":");
	if (s->s_nstacks)
		frames(o, s->s_stacks[best].k_frames, s->s_stacks[best].k_n);
	else
		po_puts(o, "[]");
	po_puts(o, ",\"stacks\":[");
	for (size_t i = 0; i < s->s_nstacks; i++) {
		po_printf(o, "%s{\"samples\":%llu,\"frames\":", i ? "," : "",
		          (unsigned long long)s->s_stacks[i].k_samples);
		frames(o, s->s_stacks[i].k_frames, s->s_stacks[i].k_n);
		po_puts(o, "}");
	}
	po_printf(o, "],\"stacks_other\":%llu,\"blocked_by\":[",
	          (unsigned long long)s->s_stacks_other);
	for (size_t i = 0; i < s->s_nblk; i++) {
		po_printf(o, "%s{\"tid\":%d,\"count\":%llu,\"site\":", i ? "," : "",
		          s->s_blk[i].b_tid, (unsigned long long)s->s_blk[i].b_n);
		frame(o, &s->s_blk[i].b_site);
		po_puts(o, "}");
	}
	po_printf(o, "],\"blocked_by_other\":%llu}", (unsigned long long)s->s_blk_other);
}

void prof_render_json(struct prof_out *o, const struct prof_snap *s)
{
	bool m = s->spin_measured;
	po_printf(o, "{\"schema\":\"schedctl-profile\",\"version\":%d,\"pid\":%d,"
	          "\"comm\":", PROF_SCHEMA_VERSION, s->pid);
	po_json_str(o, s->comm);
	po_puts(o, ",\"policy\":");
	po_json_str(o, s->policy);
	po_printf(o, ",\"final\":%s,\"spin_measured\":%s,\"duration_ns\":%llu,"
	          "\"limits\":{\"max_locks\":%llu,\"max_sites\":%llu},"
	          "\"overflow\":{\"locks\":%llu,\"sites\":%llu,\"stacks\":%llu,"
	          "\"threads\":%llu,\"untracked_holds\":%llu},"
	          "\"runtime_acquisitions\":%llu,\n\"locks\":[",
	          s->final ? "true" : "false", m ? "true" : "false",
	          (unsigned long long)s->duration_ns,
	          (unsigned long long)s->max_locks, (unsigned long long)s->max_sites,
	          (unsigned long long)s->lock_overflow,
	          (unsigned long long)s->site_overflow,
	          (unsigned long long)s->stack_overflow,
	          (unsigned long long)s->thread_overflow,
	          (unsigned long long)s->untracked,
	          (unsigned long long)s->runtime_acq);
	for (size_t i = 0; i < s->nlocks; i++) {
		const struct prof_slock *l = &s->locks[i];
		po_printf(o, "%s\n{\"address\":\"0x%llx\",\"name\":", i ? "," : "",
		          (unsigned long long)l->l_addr);
		po_json_str(o, l->l_name);
		po_printf(o, ",\"overflow\":%s,", l->l_overflow ? "true" : "false");
		counts(o, &l->l_c, m);
		po_puts(o, ",\"sites\":[");
		for (size_t j = 0; j < l->l_nsites; j++) {
			po_puts(o, j ? ",\n " : "\n ");
			site(o, &l->l_sites[j], m);
		}
		po_puts(o, "]}");
	}
	po_puts(o, "\n]}\n");
}
