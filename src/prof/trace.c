/*
 * trace.c - the timeline: contended lock waits and holds recorded by the
 * hooks, run states sampled from the schedctl slots by the agent thread,
 * written as Chrome Trace Event JSON (loads in ui.perfetto.dev and
 * chrome://tracing).
 *
 * Layout of the output, per thread T of process P:
 *   pid P, tid T            its run states ("ONPROC", "RUN", "SLEEP",
 *                           "STOPPED", "unknown") as complete ("X") slices
 *                           from one observed change to the next
 *   pid P, tid T+10000000   "locks T": "wait 0x..." and "hold 0x..." slices
 *   pid P, tid T+20000000   holds released out of LIFO order (they would
 *                           not nest on the track above)
 * Linux tids stay below 2^22, so the offsets never collide.
 *
 * Memory: one pool of SCHEDCTL_TRACE_EVENTS events, taken in chunks;
 * when it is spent, further events are counted as dropped (and the
 * count is written into the file), never allocated.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "prof/out.h"
#include "prof/prof_int.h"
#include "prof/trace.h"

#define TRACK_LOCKS  10000000
#define TRACK_LOCKS2 20000000

static struct prof_tchunk *tr_pool;
static unsigned tr_nchunks, tr_next;      /* tr_next: atomic */
static struct prof_tchunk *tr_list;       /* release CAS / acquire */
static uint64_t tr_dropped;               /* atomic */
static struct prof_tchunk *tr_sampler;    /* agent thread's chunk */
static uint8_t *tr_last;                  /* per slot: last state + 1 */
static uint32_t *tr_lastgen;
static int32_t *tr_lasttid;

int prof_trace_init(unsigned max_events)
{
	tr_nchunks = max_events / PROF_CHUNK_EV + 1;
	tr_pool = mmap(NULL, (size_t)tr_nchunks * sizeof *tr_pool,
	               PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	size_t per = SC_REGION_SLOTS;
	void *st = mmap(NULL, per * (1 + 4 + 4), PROT_READ | PROT_WRITE,
	                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (tr_pool == MAP_FAILED || st == MAP_FAILED)
		return -ENOMEM;
	tr_lastgen = st;
	tr_lasttid = (int32_t *)(tr_lastgen + per);
	tr_last = (uint8_t *)(tr_lasttid + per);
	__atomic_store_n(&prof_g.g_trace, true, __ATOMIC_RELEASE);
	return 0;
}

static struct prof_tchunk *chunk_new(void)
{
	unsigned i = __atomic_fetch_add(&tr_next, 1, __ATOMIC_RELAXED);
	if (i >= tr_nchunks) {
		__atomic_store_n(&tr_next, tr_nchunks, __ATOMIC_RELAXED);
		return NULL;
	}
	struct prof_tchunk *c = &tr_pool[i];
	c->c_n = 0;
	struct prof_tchunk *head = __atomic_load_n(&tr_list, __ATOMIC_RELAXED);
	do
		c->c_next = head;
	while (!__atomic_compare_exchange_n(&tr_list, &head, c, true,
	                                    __ATOMIC_RELEASE, __ATOMIC_RELAXED));
	return c;
}

static void put(struct prof_tchunk **cp, int32_t tid, int kind, uint64_t t0,
                uint64_t t1, uintptr_t lock, int sub)
{
	struct prof_tchunk *c = *cp;
	if (!c || c->c_n == PROF_CHUNK_EV) {
		c = *cp = chunk_new();
		if (!c) {
			__atomic_add_fetch(&tr_dropped, 1, __ATOMIC_RELAXED);
			return;
		}
	}
	struct prof_tev *e = &c->c_ev[c->c_n];
	e->e_t0 = t0;
	e->e_t1 = t1;
	e->e_lock = lock;
	e->e_tid = tid;
	e->e_kind = (uint8_t)kind;
	e->e_sub = (uint8_t)sub;
	__atomic_store_n(&c->c_n, c->c_n + 1, __ATOMIC_RELEASE);
}

void prof_trace_event(struct prof_thread *pt, int kind, uint64_t t0,
                      uint64_t t1, const void *lock, int sub)
{
	if (!__atomic_load_n(&prof_g.g_trace, __ATOMIC_RELAXED))
		return;
	put(&pt->pt_chunk, pt->pt_tid, kind, t0, t1, (uintptr_t)lock, sub);
}

void prof_trace_sample(void)
{
	struct sc_region_hdr *h = sc_region_hdr();
	if (!h || !tr_last)
		return;
	uint32_t np = __atomic_load_n(&h->rh_npages, __ATOMIC_ACQUIRE);
	if (np > SC_REGION_PAGES)
		np = SC_REGION_PAGES;
	uint64_t now = prof_tick();
	for (uint32_t i = 1; i < np * SC_SLOTS_PER_PAGE; i++) {
		struct sc_slot *s = sc_slot_at(i);
		if (!s)
			break;
		int32_t tid = __atomic_load_n(&s->ss_tid, __ATOMIC_RELAXED);
		uint32_t gen = __atomic_load_n(&s->ss_gen, __ATOMIC_ACQUIRE);
		if (tid <= 0) {
			if (tr_last[i] && tr_lasttid[i] > 0)
				put(&tr_sampler, tr_lasttid[i], PROF_EV_STATE, now, now, 0,
				    SC_FREE);
			tr_last[i] = 0;
			continue;
		}
		int st = sc_slot_state(s, NULL);
		uint8_t code = (uint8_t)(st < 0 ? 0xff : st);
		if (tr_last[i] && tr_lastgen[i] == gen && tr_lasttid[i] == tid &&
		    tr_last[i] == (uint8_t)(code + 1))
			continue;
		if (tr_last[i] && tr_lasttid[i] != tid && tr_lasttid[i] > 0)
			put(&tr_sampler, tr_lasttid[i], PROF_EV_STATE, now, now, 0,
			    SC_FREE);
		tr_last[i] = (uint8_t)(code + 1);
		tr_lastgen[i] = gen;
		tr_lasttid[i] = tid;
		put(&tr_sampler, tid, PROF_EV_STATE, now, now, 0, code);
	}
}

void prof_trace_after_fork_child(void)
{
	if (!tr_pool)
		return;
	tr_list = NULL;
	tr_next = 0;
	tr_dropped = 0;
	tr_sampler = NULL;
	memset(tr_last, 0, SC_REGION_SLOTS);
}

/* ---- writer ---- */

static int ev_cmp(const void *a, const void *b)
{
	const struct prof_tev *x = a, *y = b;
	if (x->e_tid != y->e_tid)
		return x->e_tid < y->e_tid ? -1 : 1;
	int gx = x->e_kind == PROF_EV_STATE, gy = y->e_kind == PROF_EV_STATE;
	if (gx != gy)
		return gx - gy;
	if (x->e_t0 != y->e_t0)
		return x->e_t0 < y->e_t0 ? -1 : 1;
	if (x->e_t1 != y->e_t1)
		return x->e_t1 > y->e_t1 ? -1 : 1;   /* outer slice first */
	return (int)x->e_kind - (int)y->e_kind;
}

static const char *state_name(int st)
{
	switch (st) {
	case SC_ONPROC:  return "ONPROC";
	case SC_RUN:     return "RUN";
	case SC_SLEEP:   return "SLEEP";
	case SC_STOPPED: return "STOPPED";
	case SC_WAIT:    return "WAIT";
	default:         return "unknown";
	}
}

static const char *outcome_name(int oc)
{
	static const char *const n[] = { "uncontended", "spin-won", "spun-parked",
	                                 "parked", "blocked" };
	return oc >= 0 && oc < PROF_NOUTCOMES ? n[oc] : "?";
}

static void us(char *b, size_t n, uint64_t ticks)
{
	uint64_t ns = prof_tick_to_ns(ticks);
	snprintf(b, n, "%llu.%03llu", (unsigned long long)(ns / 1000),
	         (unsigned long long)(ns % 1000));
}

static void emit_x(struct prof_out *o, bool *first, int pid, long tid,
                   const char *name, const char *cat, uint64_t t0, uint64_t t1,
                   const struct prof_tev *e)
{
	char ts[32], dur[32];
	us(ts, sizeof ts, t0);
	uint64_t d = t1 > t0 ? prof_ticks_ns(t1 - t0) : 0;
	snprintf(dur, sizeof dur, "%llu.%03llu", (unsigned long long)(d / 1000),
	         (unsigned long long)(d % 1000));
	po_printf(o, "%s\n{\"ph\":\"X\",\"pid\":%d,\"tid\":%ld,\"ts\":%s,\"dur\":%s,"
	          "\"cat\":\"%s\",\"name\":\"%s\"", *first ? "" : ",", pid, tid,
	          ts, dur, cat, name);
	if (e && e->e_kind != PROF_EV_STATE)
		po_printf(o, ",\"args\":{\"lock\":\"0x%lx\"%s%s%s}",
		          (unsigned long)e->e_lock,
		          e->e_kind == PROF_EV_WAIT ? ",\"outcome\":\"" : "",
		          e->e_kind == PROF_EV_WAIT ? outcome_name(e->e_sub) : "",
		          e->e_kind == PROF_EV_WAIT ? "\"" : "");
	po_puts(o, "}");
	*first = false;
}

static void thread_comm(int32_t tid, char *b, size_t n)
{
	unsigned nthr = __atomic_load_n(&prof_g.g_nthr, __ATOMIC_RELAXED);
	for (unsigned t = 0; t < nthr; t++)
		if (prof_g.g_thrpool[t].pt_last_tid == tid &&
		    prof_g.g_thrpool[t].pt_comm[0]) {
			snprintf(b, n, "%.15s", prof_g.g_thrpool[t].pt_comm);
			return;
		}
	char path[64];
	snprintf(path, sizeof path, "/proc/self/task/%d/comm", (int)tid);
	FILE *f = fopen(path, "re");
	b[0] = 0;
	if (f) {
		if (fgets(b, (int)n, f))
			b[strcspn(b, "\n")] = 0;
		fclose(f);
	}
	if (!b[0])
		snprintf(b, n, "thread");
}

static void emit_meta(struct prof_out *o, bool *first, int pid, long tid,
                      const char *what, const char *name, long sort)
{
	po_printf(o, "%s\n{\"ph\":\"M\",\"pid\":%d,\"tid\":%ld,\"name\":\"%s\","
	          "\"args\":{\"name\":", *first ? "" : ",", pid, tid, what);
	po_json_str(o, name);
	po_puts(o, "}}");
	*first = false;
	if (sort >= 0)
		po_printf(o, ",\n{\"ph\":\"M\",\"pid\":%d,\"tid\":%ld,"
		          "\"name\":\"thread_sort_index\",\"args\":{\"sort_index\":%ld}}",
		          pid, tid, sort);
}

/* Lock events of one thread, sorted outer-first: mark (e_pad 1) those
 * that do not nest in the slices before them; returns how many. */
static size_t mark_unnested(struct prof_tev *e, size_t n)
{
	uint64_t stack[64];
	size_t depth = 0, bad = 0;
	for (size_t i = 0; i < n; i++) {
		while (depth && stack[depth - 1] <= e[i].e_t0)
			depth--;
		bool nests = !depth || e[i].e_t1 <= stack[depth - 1];
		e[i].e_pad = !nests;
		bad += !nests;
		if (nests && depth < 64)
			stack[depth++] = e[i].e_t1;
	}
	return bad;
}

static void emit_locks(struct prof_out *o, bool *first, int pid,
                       const struct prof_tev *e, size_t n)
{
	char name[48];
	for (size_t i = 0; i < n; i++) {
		long track = e[i].e_tid + (e[i].e_pad ? TRACK_LOCKS2 : TRACK_LOCKS);
		snprintf(name, sizeof name, "%s 0x%lx",
		         e[i].e_kind == PROF_EV_WAIT ? "wait" : "hold",
		         (unsigned long)e[i].e_lock);
		emit_x(o, first, pid, track, name, "lock", e[i].e_t0, e[i].e_t1, &e[i]);
	}
}

int prof_trace_write(int fd)
{
	size_t n = 0;
	for (struct prof_tchunk *c = __atomic_load_n(&tr_list, __ATOMIC_ACQUIRE);
	     c; c = c->c_next)
		n += __atomic_load_n(&c->c_n, __ATOMIC_ACQUIRE);
	struct prof_tev *ev = malloc((n ? n : 1) * sizeof *ev);
	if (!ev)
		return -ENOMEM;
	size_t k = 0;
	for (struct prof_tchunk *c = __atomic_load_n(&tr_list, __ATOMIC_ACQUIRE);
	     c && k < n; c = c->c_next) {
		uint32_t cn = __atomic_load_n(&c->c_n, __ATOMIC_ACQUIRE);
		for (uint32_t i = 0; i < cn && k < n; i++)
			ev[k++] = c->c_ev[i];
	}
	n = k;
	qsort(ev, n, sizeof *ev, ev_cmp);
	uint64_t end = prof_tick();
	int pid = prof_g.g_pid;
	struct prof_out *o = malloc(sizeof *o);
	if (!o) {
		free(ev);
		return -ENOMEM;
	}
	po_init(o, fd);
	bool first = true;
	char comm[32], label[64];
	po_printf(o, "{\"displayTimeUnit\":\"ns\",\"otherData\":{\"producer\":"
	          "\"schedctl\",\"pid\":%d,\"dropped_events\":%llu},\n"
	          "\"traceEvents\":[", pid,
	          (unsigned long long)__atomic_load_n(&tr_dropped, __ATOMIC_RELAXED));
	thread_comm(pid, comm, sizeof comm);
	snprintf(label, sizeof label, "%s (pid %d)", comm, pid);
	emit_meta(o, &first, pid, pid, "process_name", label, -1);
	for (size_t i = 0; i < n;) {
		int32_t tid = ev[i].e_tid;
		size_t j = i;
		while (j < n && ev[j].e_tid == tid && ev[j].e_kind != PROF_EV_STATE)
			j++;
		thread_comm(tid, comm, sizeof comm);
		snprintf(label, sizeof label, "%s %d", comm, (int)tid);
		emit_meta(o, &first, pid, tid, "thread_name", label, 3L * tid);
		if (j > i) {
			snprintf(label, sizeof label, "locks %d", (int)tid);
			emit_meta(o, &first, pid, tid + TRACK_LOCKS, "thread_name", label,
			          3L * tid + 1);
			if (mark_unnested(ev + i, j - i)) {
				snprintf(label, sizeof label, "locks %d (unnested)", (int)tid);
				emit_meta(o, &first, pid, tid + TRACK_LOCKS2, "thread_name",
				          label, 3L * tid + 2);
			}
			emit_locks(o, &first, pid, ev + i, j - i);
		}
		for (i = j; i < n && ev[i].e_tid == tid; i++) {
			if (ev[i].e_sub == SC_FREE)
				continue;
			uint64_t t1 = i + 1 < n && ev[i + 1].e_tid == tid ? ev[i + 1].e_t0
			                                                  : end;
			emit_x(o, &first, pid, tid, state_name(ev[i].e_sub), "state",
			       ev[i].e_t0, t1, &ev[i]);
		}
	}
	po_puts(o, "\n]}\n");
	int r = po_flush(o);
	free(o);
	free(ev);
	return r;
}
