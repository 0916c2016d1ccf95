/*
 * svg.c - a chart of a profile: per lock (top N by the sort key), one
 * stacked bar of its waiting time split into spin won, spin wasted and
 * park (or "blocked" where the policy cannot tell), and one bar of its
 * hold time, on one linear time scale.  Plain SVG 1.1, no scripts.
 */
#include <stdio.h>

#include "prof/render.h"

#define W        960
#define LEFT     250
#define RIGHT    140
#define ROW      46
#define TOP      70

static void rect(struct prof_out *o, double x, double y, double w, double h,
                 const char *fill, const char *title, uint64_t ns)
{
	if (w <= 0)
		return;
	char t[32];
	po_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
	          "fill=\"%s\"><title>%s %s</title></rect>\n", x, y, w, h, fill,
	          title, prof_fmt_ns(t, sizeof t, ns));
}

static void legend(struct prof_out *o, double x, const char *fill,
                   const char *label)
{
	po_printf(o, "<rect x=\"%.0f\" y=\"40\" width=\"12\" height=\"12\" "
	          "fill=\"%s\"/><text x=\"%.0f\" y=\"51\">%s</text>\n", x, fill,
	          x + 16, label);
}

void prof_render_svg(struct prof_out *o, const struct prof_snap *s, int sort,
                     int top)
{
	size_t n = top > 0 && (size_t)top < s->nlocks ? (size_t)top : s->nlocks;
	uint64_t max = 1;
	for (size_t i = 0; i < n; i++) {
		const struct prof_counts *c = &s->locks[i].l_c;
		uint64_t wait = c->c_wait_ns;
		uint64_t parts = c->c_spin_won_ns + c->c_spin_lost_ns + c->c_park_ns;
		if (parts > wait)
			wait = parts;
		if (wait > max)
			max = wait;
		if (prof_hold_total(c) > max)
			max = prof_hold_total(c);
	}
	double scale = (double)(W - LEFT - RIGHT) / (double)max;
	int h = TOP + (int)(n ? n : 1) * ROW + 30;
	po_printf(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
	          "height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n"
	          "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
	          "<text x=\"10\" y=\"22\" font-size=\"15\">schedctl lock profile: ",
	          W, h);
	po_xml(o, s->comm);
	po_printf(o, " (pid %d, policy ", s->pid);
	po_xml(o, s->policy);
	po_printf(o, "), top %zu of %zu locks by %s</text>\n", n, s->nlocks,
	          prof_sort_name(sort));
	legend(o, 10, "#2ca02c", "spin won");
	legend(o, 100, "#ff7f0e", "spin wasted");
	legend(o, 205, "#d62728", "parked");
	legend(o, 285, "#7f7f7f", s->spin_measured ? "other wait" : "blocked (not split)");
	legend(o, 440, "#1f77b4", "hold");
	if (!n)
		po_printf(o, "<text x=\"10\" y=\"%d\">no mutex acquisitions were "
		          "seen</text>\n", TOP + 20);
	for (size_t i = 0; i < n; i++) {
		const struct prof_slock *l = &s->locks[i];
		const struct prof_counts *c = &l->l_c;
		double y = TOP + (double)i * ROW;
		char label[640], t[32];
		const struct prof_ssite *top_site = l->l_nsites ? &l->l_sites[0] : NULL;
		if (l->l_overflow)
			snprintf(label, sizeof label, "(other locks)");
		else if (l->l_name)
			snprintf(label, sizeof label, "%s", l->l_name);
		else if (top_site && top_site->s_where.f_func)
			snprintf(label, sizeof label, "0x%llx %s",
			         (unsigned long long)l->l_addr, top_site->s_where.f_func);
		else
			snprintf(label, sizeof label, "0x%llx", (unsigned long long)l->l_addr);
		po_printf(o, "<text x=\"10\" y=\"%.1f\">", y + 16);
		po_xml(o, label);
		po_printf(o, "</text>\n<text x=\"10\" y=\"%.1f\" fill=\"#555\">"
		          "%llu acq, %llu contended</text>\n", y + 31,
		          (unsigned long long)c->c_acq, (unsigned long long)c->c_contended);
		double x = LEFT;
		uint64_t other = c->c_wait_ns;
		if (s->spin_measured) {
			uint64_t parts = c->c_spin_won_ns + c->c_spin_lost_ns + c->c_park_ns;
			other = other > parts ? other - parts : 0;
			rect(o, x, y + 4, c->c_spin_won_ns * scale, 16, "#2ca02c",
			     "spin won", c->c_spin_won_ns);
			x += c->c_spin_won_ns * scale;
			rect(o, x, y + 4, c->c_spin_lost_ns * scale, 16, "#ff7f0e",
			     "spin wasted", c->c_spin_lost_ns);
			x += c->c_spin_lost_ns * scale;
			rect(o, x, y + 4, c->c_park_ns * scale, 16, "#d62728", "parked",
			     c->c_park_ns);
			x += c->c_park_ns * scale;
		}
		rect(o, x, y + 4, other * scale, 16, "#7f7f7f",
		     s->spin_measured ? "other wait" : "blocked", other);
		x += other * scale;
		po_printf(o, "<text x=\"%.1f\" y=\"%.1f\">wait %s</text>\n", x + 4,
		          y + 17, prof_fmt_ns(t, sizeof t, c->c_wait_ns));
		uint64_t hold = prof_hold_total(c);
		double hw = hold * scale;
		rect(o, LEFT, y + 22, hw, 16, "#1f77b4", "hold", hold);
		po_printf(o, "<text x=\"%.1f\" y=\"%.1f\">hold %s</text>\n",
		          LEFT + hw + 4, y + 35, prof_fmt_ns(t, sizeof t, hold));
	}
	po_puts(o, "</svg>\n");
}
