/*
 * json_in.c - read a saved profile (json_out.c's format) back into a
 * snapshot.  The file is untrusted: every read is bounds-checked, nesting
 * is limited, numbers must be non-negative integers that fit 64 bits,
 * and any malformation is one error message, never a crash.
 *
 * Two passes: a generic JSON tree (jv), then the schema mapping.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prof/json.h"
#include "prof/render.h"

#define JV_MAX_DEPTH 32

struct jp {
	const char *p, *end, *start;
	char err[200];
};

static char jerr[240];

static bool fail(struct jp *j, const char *what)
{
	if (!j->err[0]) {
		size_t line = 1;
		for (const char *q = j->start; q < j->p && q < j->end; q++)
			line += *q == '\n';
		snprintf(j->err, sizeof j->err, "line %zu: %s", line, what);
	}
	return false;
}

static void ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' ||
	                         *j->p == '\r'))
		j->p++;
}

void prof_jv_free(struct jv *v)
{
	if (!v)
		return;
	free(v->s);
	for (size_t i = 0; i < v->n; i++) {
		prof_jv_free(&v->v[i]);
		if (v->k)
			free(v->k[i]);
	}
	free(v->v);
	free(v->k);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

static bool parse_str(struct jp *j, char **out)
{
	j->p++;                                   /* opening quote */
	size_t cap = 32, n = 0;
	char *b = malloc(cap);
	if (!b)
		return fail(j, "out of memory");
	for (;;) {
		if (j->p >= j->end) {
			free(b);
			return fail(j, "unterminated string");
		}
		unsigned char c = (unsigned char)*j->p++;
		if (c == '"')
			break;
		if (c < 0x20) {
			free(b);
			return fail(j, "control character in string");
		}
		if (n + 4 >= cap) {
			char *nb = realloc(b, cap *= 2);
			if (!nb) {
				free(b);
				return fail(j, "out of memory");
			}
			b = nb;
		}
		if (c != '\\') {
			b[n++] = (char)c;
			continue;
		}
		if (j->p >= j->end) {
			free(b);
			return fail(j, "bad escape");
		}
		char e = *j->p++;
		const char *map = strchr("\"\\/bfnrt", e);
		if (e && map) {
			b[n++] = "\"\\/\b\f\n\r\t"[map - "\"\\/bfnrt"];
		} else if (e == 'u' && j->end - j->p >= 4) {
			int h[4];
			for (int i = 0; i < 4; i++)
				h[i] = hexval(j->p[i]);
			if (h[0] < 0 || h[1] < 0 || h[2] < 0 || h[3] < 0) {
				free(b);
				return fail(j, "bad \\u escape");
			}
			unsigned cp = (unsigned)(h[0] << 12 | h[1] << 8 | h[2] << 4 | h[3]);
			j->p += 4;
			if (cp == 0 || (cp >= 0xd800 && cp < 0xe000))
				cp = '?';
			if (cp < 0x80) {
				b[n++] = (char)cp;
			} else if (cp < 0x800) {
				b[n++] = (char)(0xc0 | cp >> 6);
				b[n++] = (char)(0x80 | (cp & 0x3f));
			} else {
				b[n++] = (char)(0xe0 | cp >> 12);
				b[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				b[n++] = (char)(0x80 | (cp & 0x3f));
			}
		} else {
			free(b);
			return fail(j, "bad escape");
		}
	}
	b[n] = 0;
	*out = b;
	return true;
}

/* Skip a run of decimal digits; false if there was none. */
static bool digits(struct jp *j)
{
	const char *d = j->p;
	while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
		j->p++;
	return j->p != d;
}

static bool parse_num(struct jp *j, struct jv *v)
{
	const char *s = j->p;
	bool neg = false, frac = false;
	if (j->p < j->end && *j->p == '-') {
		neg = true;
		j->p++;
	}
	const char *d = j->p;
	if (!digits(j))
		return fail(j, "bad number");
	if (j->p < j->end && *j->p == '.') {
		frac = true;
		j->p++;
		if (!digits(j))
			return fail(j, "bad number");
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		frac = true;
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (!digits(j))
			return fail(j, "bad number");
	}
	v->t = JV_NUM;
	char tmp[64];
	size_t tl = (size_t)(j->p - s);
	if (tl < sizeof tmp) {
		memcpy(tmp, s, tl);
		tmp[tl] = 0;
		v->d = strtod(tmp, NULL);
	}
	v->num_ok = !neg && !frac;
	if (v->num_ok) {
		uint64_t u = 0;
		for (const char *q = d; q < j->p; q++) {
			unsigned dig = (unsigned)(*q - '0');
			if (u > (UINT64_MAX - dig) / 10) {
				v->num_ok = false;
				break;
			}
			u = u * 10 + dig;
		}
		v->u = u;
	}
	return true;
}

static bool parse_value(struct jp *j, struct jv *v, int depth);

static bool push(struct jp *j, struct jv *v, size_t *cap, char *key)
{
	if (v->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;
		struct jv *nv = realloc(v->v, nc * sizeof *nv);
		if (!nv)
			return fail(j, "out of memory");
		v->v = nv;
		if (v->t == JV_OBJ) {
			char **nk = realloc(v->k, nc * sizeof *nk);
			if (!nk)
				return fail(j, "out of memory");
			v->k = nk;
		}
		*cap = nc;
	}
	memset(&v->v[v->n], 0, sizeof v->v[v->n]);
	if (v->t == JV_OBJ)
		v->k[v->n] = key;
	v->n++;
	return true;
}

static bool parse_container(struct jp *j, struct jv *v, int depth)
{
	bool obj = *j->p == '{';
	char close = obj ? '}' : ']';
	v->t = obj ? JV_OBJ : JV_ARR;
	size_t cap = 0;
	j->p++;
	ws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		return true;
	}
	for (;;) {
		char *key = NULL;
		ws(j);
		if (obj) {
			if (j->p >= j->end || *j->p != '"')
				return fail(j, "expected a key");
			if (!parse_str(j, &key))
				return false;
			ws(j);
			if (j->p >= j->end || *j->p != ':') {
				free(key);
				return fail(j, "expected ':'");
			}
			j->p++;
		}
		if (!push(j, v, &cap, key)) {
			free(key);
			return false;
		}
		if (!parse_value(j, &v->v[v->n - 1], depth + 1))
			return false;
		ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return true;
		}
		return fail(j, obj ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

static bool lit(struct jp *j, const char *w)
{
	size_t n = strlen(w);
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n))
		return fail(j, "unexpected character");
	j->p += n;
	return true;
}

static bool parse_value(struct jp *j, struct jv *v, int depth)
{
	if (depth > JV_MAX_DEPTH)
		return fail(j, "nested too deeply");
	ws(j);
	if (j->p >= j->end)
		return fail(j, "unexpected end of file");
	switch (*j->p) {
	case '{': case '[':
		return parse_container(j, v, depth);
	case '"':
		v->t = JV_STR;
		return parse_str(j, &v->s);
	case 't':
		v->t = JV_BOOL;
		v->b = true;
		return lit(j, "true");
	case 'f':
		v->t = JV_BOOL;
		return lit(j, "false");
	case 'n':
		v->t = JV_NULL;
		return lit(j, "null");
	default:
		return parse_num(j, v);
	}
}

/* ---- schema mapping ---- */

struct jm {
	char where[96];
	char err[200];
};

const struct jv *prof_jv_get(const struct jv *o, const char *k)
{
	if (!o || o->t != JV_OBJ)
		return NULL;
	for (size_t i = 0; i < o->n; i++)
		if (o->k[i] && !strcmp(o->k[i], k))
			return &o->v[i];
	return NULL;
}

static bool bad(struct jm *m, const char *k, const char *what)
{
	if (!m->err[0])
		snprintf(m->err, sizeof m->err, "%s%s%s: %s", m->where,
		         m->where[0] ? "." : "", k, what);
	return false;
}

/* A count: a non-negative integer, or null (not measured) -> 0. */
static bool u64_at(struct jm *m, const struct jv *o, const char *k, uint64_t *out,
                   bool nullable)
{
	const struct jv *v = prof_jv_get(o, k);
	if (v && v->t == JV_NULL && nullable) {
		*out = 0;
		return true;
	}
	if (!v || v->t != JV_NUM || !v->num_ok)
		return bad(m, k, "missing or not a non-negative integer");
	*out = v->u;
	return true;
}

static bool str_at(struct jm *m, const struct jv *o, const char *k, char **out)
{
	const struct jv *v = prof_jv_get(o, k);
	*out = NULL;
	if (!v || v->t == JV_NULL)
		return true;
	if (v->t != JV_STR)
		return bad(m, k, "not a string");
	*out = strdup(v->s);
	return *out != NULL || bad(m, k, "out of memory");
}

static bool hex_at(struct jm *m, const struct jv *o, const char *k, uint64_t *out)
{
	const struct jv *v = prof_jv_get(o, k);
	if (!v || v->t != JV_STR || strncmp(v->s, "0x", 2) || !v->s[2] ||
	    strlen(v->s) > 18)
		return bad(m, k, "missing or not a hex address \"0x...\"");
	uint64_t u = 0;
	for (const char *q = v->s + 2; *q; q++) {
		int h = hexval(*q);
		if (h < 0)
			return bad(m, k, "not a hex address");
		u = u << 4 | (unsigned)h;
	}
	*out = u;
	return true;
}

static bool counts_at(struct jm *m, const struct jv *o, struct prof_counts *c)
{
	static const char *const os[PROF_OS_N] = { "unknown", "ONPROC", "RUN",
	                                           "SLEEP", "STOPPED" };
	static const char *const pr[PROF_PARK_N] = { NULL, "owner_off_cpu",
	                                             "spin_budget", "spinner_cap",
	                                             "policy" };
	if (!u64_at(m, o, "acquisitions", &c->c_acq, false) ||
	    !u64_at(m, o, "contended", &c->c_contended, false) ||
	    !u64_at(m, o, "spin_acquired", &c->c_outcome[PROF_SPIN_WON], true) ||
	    !u64_at(m, o, "spun_parked", &c->c_outcome[PROF_SPUN_PARKED], true) ||
	    !u64_at(m, o, "parked", &c->c_outcome[PROF_PARKED], true) ||
	    !u64_at(m, o, "blocked", &c->c_outcome[PROF_BLOCKED], false) ||
	    !u64_at(m, o, "spin_won_ns", &c->c_spin_won_ns, true) ||
	    !u64_at(m, o, "spin_wasted_ns", &c->c_spin_lost_ns, true) ||
	    !u64_at(m, o, "park_ns", &c->c_park_ns, true) ||
	    !u64_at(m, o, "wait_ns", &c->c_wait_ns, false) ||
	    !u64_at(m, o, "wait_max_ns", &c->c_wait_max_ns, false) ||
	    !u64_at(m, o, "hold_ns", &c->c_hold_ns, false) ||
	    !u64_at(m, o, "hold_timed", &c->c_hold_n, false) ||
	    !u64_at(m, o, "hold_max_ns", &c->c_hold_max_ns, false) ||
	    !u64_at(m, o, "lock_holder_preemptions", &c->c_lhp, false) ||
	    !u64_at(m, o, "timeouts", &c->c_timeouts, false) ||
	    !u64_at(m, o, "trylock_busy", &c->c_try_failed, false))
		return false;
	uint64_t spin;
	if (!u64_at(m, o, "spin_ns", &spin, true))
		return false;
	const struct jv *h = prof_jv_get(o, "hold_hist");
	if (!h || h->t != JV_ARR || h->n > PROF_HIST_N)
		return bad(m, "hold_hist", "missing or not an array of <= 40 counts");
	for (size_t i = 0; i < h->n; i++) {
		if (h->v[i].t != JV_NUM || !h->v[i].num_ok)
			return bad(m, "hold_hist", "not a non-negative integer");
		c->c_hold_hist[i] = h->v[i].u;
	}
	const struct jv *s = prof_jv_get(o, "owner_state");
	if (!s || s->t != JV_OBJ)
		return bad(m, "owner_state", "missing or not an object");
	for (int i = 0; i < PROF_OS_N; i++)
		if (!u64_at(m, s, os[i], &c->c_ostate[i], false))
			return false;
	const struct jv *r = prof_jv_get(o, "park_reason");
	if (r && r->t == JV_OBJ) {
		for (int i = 1; i < PROF_PARK_N; i++)
			if (!u64_at(m, r, pr[i], &c->c_park_reason[i], false))
				return false;
	} else if (!r || r->t != JV_NULL) {
		return bad(m, "park_reason", "missing or not an object");
	}
	return true;
}

static bool frame_at(struct jm *m, const struct jv *f, struct prof_frame *o)
{
	uint64_t line = 0;
	if (!f || f->t != JV_OBJ)
		return bad(m, "frame", "not an object");
	const struct jv *off = prof_jv_get(f, "offset");
	if (off && off->t == JV_NULL)
		o->f_off = PROF_OFF_UNKNOWN;
	else if (!u64_at(m, f, "offset", &o->f_off, false))
		return false;
	if (!hex_at(m, f, "pc", &o->f_pc) ||
	    !u64_at(m, f, "line", &line, true) ||
	    !str_at(m, f, "function", &o->f_func) ||
	    !str_at(m, f, "file", &o->f_file) ||
	    !str_at(m, f, "object", &o->f_obj))
		return false;
	o->f_line = line > 100000000 ? 0 : (int)line;
	return true;
}

/* Member k of o must be an array: its items, and a zeroed array of as
 * many elements of size sz in *out.  NULL (and an error) otherwise. */
static const struct jv *array_at(struct jm *m, const struct jv *o, const char *k,
                                 size_t sz, void **out)
{
	const struct jv *a = prof_jv_get(o, k);
	*out = NULL;
	if (!a || a->t != JV_ARR) {
		bad(m, k, "missing or not an array");
		return NULL;
	}
	*out = calloc(a->n ? a->n : 1, sz);
	if (!*out) {
		bad(m, k, "out of memory");
		return NULL;
	}
	return a;
}

/* Reads one item of an array into elem, the i-th element of its copy. */
typedef bool (*item_fn)(struct jm *m, const struct jv *item, void *elem,
                        size_t i, void *ctx);

/* Member k of o, an array: a zeroed copy of as many elements of size sz
 * in *out, each read by one(); *n counts the elements read, so a caller
 * frees exactly those on failure.  False (and an error) at the first
 * item that fails. */
static bool items_at(struct jm *m, const struct jv *o, const char *k,
                     size_t sz, void **out, size_t *n, item_fn one, void *ctx)
{
	const struct jv *a = array_at(m, o, k, sz, out);
	if (!a)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		*n = i + 1;
		if (!one(m, &a->v[i], (char *)*out + i * sz, i, ctx))
			return false;
	}
	return true;
}

static bool frame_item(struct jm *m, const struct jv *it, void *elem, size_t i,
                       void *ctx)
{
	(void)i, (void)ctx;
	return frame_at(m, it, elem);
}

static bool stack_item(struct jm *m, const struct jv *it, void *elem, size_t i,
                       void *ctx)
{
	struct prof_sstack *k = elem;
	(void)i, (void)ctx;
	return u64_at(m, it, "samples", &k->k_samples, false) &&
	       items_at(m, it, "frames", sizeof *k->k_frames,
	                (void **)&k->k_frames, &k->k_n, frame_item, NULL);
}

static bool blocker_item(struct jm *m, const struct jv *it, void *elem,
                         size_t i, void *ctx)
{
	struct prof_sblocker *b = elem;
	uint64_t tid;
	(void)i, (void)ctx;
	if (!u64_at(m, it, "tid", &tid, false) ||
	    !u64_at(m, it, "count", &b->b_n, false) ||
	    !frame_at(m, prof_jv_get(it, "site"), &b->b_site))
		return false;
	b->b_tid = tid > INT32_MAX ? 0 : (int32_t)tid;
	return true;
}

static bool site_item(struct jm *m, const struct jv *o, void *elem, size_t i,
                      void *ctx)
{
	struct prof_ssite *s = elem;
	snprintf(m->where, sizeof m->where, "locks[%zu].sites[%zu]",
	         *(const size_t *)ctx, i);
	const struct jv *ov = prof_jv_get(o, "overflow");
	s->s_overflow = ov && ov->t == JV_BOOL && ov->b;
	return frame_at(m, prof_jv_get(o, "site"), &s->s_where) &&
	       counts_at(m, o, &s->s_c) &&
	       u64_at(m, o, "stacks_other", &s->s_stacks_other, false) &&
	       u64_at(m, o, "blocked_by_other", &s->s_blk_other, false) &&
	       items_at(m, o, "stacks", sizeof *s->s_stacks, (void **)&s->s_stacks,
	                &s->s_nstacks, stack_item, NULL) &&
	       items_at(m, o, "blocked_by", sizeof *s->s_blk, (void **)&s->s_blk,
	                &s->s_nblk, blocker_item, NULL);
}

static bool lock_item(struct jm *m, const struct jv *o, void *elem, size_t li,
                      void *ctx)
{
	struct prof_slock *l = elem;
	(void)ctx;
	const struct jv *ov = prof_jv_get(o, "overflow");
	l->l_overflow = ov && ov->t == JV_BOOL && ov->b;
	snprintf(m->where, sizeof m->where, "locks[%zu]", li);
	return hex_at(m, o, "address", &l->l_addr) &&
	       str_at(m, o, "name", &l->l_name) && counts_at(m, o, &l->l_c) &&
	       items_at(m, o, "sites", sizeof *l->l_sites, (void **)&l->l_sites,
	                &l->l_nsites, site_item, &li);
}

static bool top_at(struct jm *m, const struct jv *t, struct prof_snap *s)
{
	const struct jv *v = prof_jv_get(t, "schema");
	if (!v || v->t != JV_STR || strcmp(v->s, "schedctl-profile"))
		return bad(m, "schema", "not a schedctl profile");
	uint64_t ver, pid;
	if (!u64_at(m, t, "version", &ver, false))
		return false;
	if (ver != PROF_SCHEMA_VERSION)
		return bad(m, "version", "unsupported schema version");
	s->version = (int)ver;
	if (!u64_at(m, t, "pid", &pid, false) ||
	    !u64_at(m, t, "duration_ns", &s->duration_ns, false))
		return false;
	s->pid = pid > INT32_MAX ? 0 : (int32_t)pid;
	const struct jv *c = prof_jv_get(t, "comm"), *p = prof_jv_get(t, "policy");
	if (c && c->t == JV_STR)
		snprintf(s->comm, sizeof s->comm, "%s", c->s);
	if (p && p->t == JV_STR)
		snprintf(s->policy, sizeof s->policy, "%s", p->s);
	const struct jv *f = prof_jv_get(t, "final"), *sm = prof_jv_get(t, "spin_measured");
	s->final = f && f->t == JV_BOOL && f->b;
	s->spin_measured = !sm || sm->t != JV_BOOL || sm->b;
	const struct jv *ov = prof_jv_get(t, "overflow"), *lim = prof_jv_get(t, "limits");
	if (ov && (!u64_at(m, ov, "locks", &s->lock_overflow, false) ||
	           !u64_at(m, ov, "sites", &s->site_overflow, false) ||
	           !u64_at(m, ov, "stacks", &s->stack_overflow, false) ||
	           !u64_at(m, ov, "threads", &s->thread_overflow, false) ||
	           !u64_at(m, ov, "untracked_holds", &s->untracked, false)))
		return false;
	const struct jv *ra = prof_jv_get(t, "runtime_acquisitions");
	if (ra && !u64_at(m, t, "runtime_acquisitions", &s->runtime_acq, false))
		return false;
	if (lim && (!u64_at(m, lim, "max_locks", &s->max_locks, false) ||
	            !u64_at(m, lim, "max_sites", &s->max_sites, false)))
		return false;
	return items_at(m, t, "locks", sizeof *s->locks, (void **)&s->locks,
	                &s->nlocks, lock_item, NULL);
}

int prof_jv_parse(const char *buf, size_t len, struct jv *out, char *err,
                  size_t errlen)
{
	struct jp j = { .p = buf, .end = buf + len, .start = buf };
	memset(out, 0, sizeof *out);
	j.err[0] = 0;
	bool ok = parse_value(&j, out, 0);
	if (ok) {
		ws(&j);
		if (j.p != j.end)
			ok = fail(&j, "trailing data after the JSON value");
	}
	if (!ok) {
		snprintf(err, errlen, "%s", j.err);
		prof_jv_free(out);
		memset(out, 0, sizeof *out);
		return -1;
	}
	return 0;
}

struct prof_snap *prof_json_parse(const char *buf, size_t len, const char **err)
{
	struct jv root;
	struct prof_snap *s = NULL;
	char perr[200];
	if (prof_jv_parse(buf, len, &root, perr, sizeof perr) != 0) {
		snprintf(jerr, sizeof jerr, "not valid JSON: %s", perr);
		goto out;
	}
	struct jm m;
	memset(&m, 0, sizeof m);
	s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(jerr, sizeof jerr, "out of memory");
		goto out;
	}
	if (root.t != JV_OBJ || !top_at(&m, &root, s)) {
		snprintf(jerr, sizeof jerr, "not a schedctl profile: %s",
		         m.err[0] ? m.err : "top level is not an object");
		prof_snap_free(s);
		s = NULL;
	}
out:
	prof_jv_free(&root);
	if (!s && err)
		*err = jerr;
	return s;
}
