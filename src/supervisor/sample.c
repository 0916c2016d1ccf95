/*
 * sample.c - what notifications cannot show: wake-ups, preemption and
 * the CPU, read from /proc/PID/task/TID/{stat,schedstat,status}.
 *
 * For each traced thread with a supervisor-source slot, on each tick:
 *   stat state   R -> running or runnable (below); S D I W -> SC_SLEEP;
 *                T t -> SC_STOPPED; Z X -> nothing (trace.c handles it)
 *   stat field 39 (processor) -> sc_cpu
 *   R: on a CPU right now iff it has been switched in more often than
 *      switched out: schedstat's third field (times it arrived on a
 *      CPU) exceeds voluntary+nonvoluntary switches (status).  So two
 *      runnable threads sharing one CPU show one SC_ONPROC and one
 *      SC_RUN, whatever the sampling phase.
 *
 * A notification that arrives while we read is newer than what we read:
 * a store is skipped when ss_stamp_ns moved past the tick's start.  Two
 * threads read as on the same CPU in one sweep cannot both be: the later
 * reading wins and the earlier thread becomes SC_RUN.
 *
 * Cost and interval: each thread costs a pread or three on descriptors
 * kept open (no open/close per tick) while the descriptor limit allows,
 * and an open-read-close per file beyond that.  The interval adapts to
 * the load in two ways:
 *   - to the sweep's cost (more threads, longer interval), so sampling
 *     stays within a share of one CPU: interval >= share x sweep;
 *   - to CPU contention: SC_RUN exists only while a thread waits for a
 *     CPU, and it is then that ONPROC against RUN matters (a lock waiter
 *     spins on an ONPROC owner) and changes every slice.  A sweep that
 *     saw a thread SC_RUN halves the floor, to 1 ms, and allows 5% of a
 *     CPU; otherwise the floor is 2 ms at 2%.  (Measured agreement with
 *     the kernel for two threads sharing a CPU: docs/benchmarks.md.)
 *   interval = clamp(share x sweep, floor, 200 ms).
 * SCHEDCTL_SAMPLE_US (`--sample-us`) sets the floor for both cases and
 * allows 10%.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "supervisor/sv.h"

#define SAMPLE_MIN_NS   2000000ull
#define SAMPLE_MAX_NS   200000000ull

static int sample_open(const struct sv_task *t, const char *file)
{
	char path[96];
	snprintf(path, sizeof path, "/proc/%d/task/%d/%s", (int)t->tk_pid,
	         (int)t->tk_tid, file);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* Descriptors kept open, and how many we allow ourselves: the rest of
 * the descriptor limit, less a reserve for images and one-shot reads. */
static unsigned sample_kept, sample_budget;

static unsigned sample_fd_budget(void)
{
	if (!sample_budget) {
		struct rlimit rl;
		rlim_t lim = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
		sample_budget = lim > 256 ? (unsigned)(lim - 128) : (unsigned)lim / 2;
	}
	return sample_budget;
}

/* Read one /proc file of t: through its kept descriptor, opening and
 * keeping one while the budget allows, else open-read-close.
 * => length read, -1 if the thread is gone (or no descriptor at all). */
static ssize_t sample_file(struct sv_task *t, int *fd, const char *file,
                           char *buf, size_t len)
{
	int once = -1;
	if (*fd < 0) {
		int f = sample_open(t, file);
		if (f < 0)
			return -1;
		if (sample_kept < sample_fd_budget()) {
			*fd = f;
			sample_kept++;
		} else {
			once = f;
		}
	}
	ssize_t n = pread(once >= 0 ? once : *fd, buf, len - 1, 0);
	if (once >= 0)
		close(once);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return n;
}

void sv_sample_forget(struct sv_task *t)
{
	int *fds[] = { &t->tk_fd_stat, &t->tk_fd_schedstat, &t->tk_fd_status };
	for (int i = 0; i < 3; i++)
		if (*fds[i] >= 0) {
			close(*fds[i]);
			*fds[i] = -1;
			sample_kept--;
		}
}

/* => 0 and *st, *cpu from stat, -1 if the thread is gone. */
static int sample_stat(struct sv_task *t, char *st, int *cpu)
{
	char buf[1024];
	if (sample_file(t, &t->tk_fd_stat, "stat", buf, sizeof buf) <= 0)
		return -1;
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return -1;
	*st = p[2];
	p += 2;
	for (int field = 3; field < 39 && p; field++) {   /* to processor */
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	*cpu = p ? atoi(p) : -1;
	return 0;
}

static unsigned long sample_field(const char *buf, const char *key)
{
	const char *p = strstr(buf, key);
	return p ? strtoul(p + strlen(key), NULL, 10) : 0;
}

/* => 1 on a CPU, 0 runnable but waiting, -1 unknown. */
static int sample_oncpu(struct sv_task *t)
{
	char ss[128], status[4096];
	/* schedstat first: read the other way round, a switch that lands
	 * while status is formatted is counted as an arrival without its
	 * departure far more often (measured: 69% vs 99% right). */
	if (sample_file(t, &t->tk_fd_schedstat, "schedstat", ss, sizeof ss) <= 0 ||
	    sample_file(t, &t->tk_fd_status, "status", status, sizeof status) <= 0)
		return -1;
	unsigned long run, delay, arrivals;
	if (sscanf(ss, "%lu %lu %lu", &run, &delay, &arrivals) != 3 ||
	    (run == 0 && arrivals == 0))
		return -1;
	unsigned long out = sample_field(status, "\nvoluntary_ctxt_switches:") +
	                    sample_field(status, "\nnonvoluntary_ctxt_switches:");
	return arrivals > out;
}

static int sample_state(struct sv_task *t, char st)
{
	switch (st) {
	case 'R': {
		int on = sample_oncpu(t);
		return on < 0 ? SC_ONPROC : on ? SC_ONPROC : SC_RUN;
	}
	case 'S': case 'D': case 'I': case 'W': case 'P':
		return SC_SLEEP;
	case 'T': case 't':
		return SC_STOPPED;
	default:
		return -1;
	}
}

struct sample_tick {
	uint64_t sk_t0;          /* start of the sweep */
	unsigned sk_runnable;    /* threads seen SC_RUN */
};

/* One CPU runs one thread: the last thread of a sweep found on a CPU is
 * the freshest reading, and an earlier one found there has been switched
 * out since it was read (reads are not simultaneous).  Per CPU, the slot
 * that claimed it in this sweep (valid while sample_gen[cpu] matches)
 * and the stamp this sweep stored in it.  The earlier claimer is marked
 * SC_RUN only while its slot still holds that reading (same stamp, same
 * CPU): a thread that has marked itself since (sc_slot_self_mark, on
 * waking from the runtime's park, perhaps on another CPU) is fresher
 * than both readings. */
#define SAMPLE_MAXCPU 1024
static struct sc_slot *sample_onproc[SAMPLE_MAXCPU];
static uint64_t sample_stamp[SAMPLE_MAXCPU];
static uint32_t sample_gen[SAMPLE_MAXCPU], sample_sweep;

void sv_sample_claim_cpu(struct sc_slot *s, int cpu, uint64_t stamp)
{
	if (cpu < 0 || cpu >= SAMPLE_MAXCPU)
		return;
	struct sc_slot *prev = sample_gen[cpu] == sample_sweep ?
	                       sample_onproc[cpu] : NULL;
	if (prev && prev != s &&
	    __atomic_load_n(&prev->ss_stamp_ns, __ATOMIC_RELAXED) ==
	    sample_stamp[cpu] &&
	    __atomic_load_n(&prev->ss_pub.sc_cpu, __ATOMIC_RELAXED) == cpu &&
	    __atomic_load_n(&prev->ss_pub.sc_state, __ATOMIC_RELAXED) == SC_ONPROC)
		sv_slot_store(prev, SC_RUN, cpu);
	sample_onproc[cpu] = s;
	sample_stamp[cpu] = stamp;
	sample_gen[cpu] = sample_sweep;
}

static void sample_task(struct sv_task *t, void *arg)
{
	struct sample_tick *k = arg;
	if (t->tk_group_stopped)
		return;
	struct sv_image *im = sv_image_of(t->tk_pid);
	struct sc_slot *s = im ? sv_slot_find(im, t->tk_tid, &t->tk_slot_hint)
	                       : NULL;
	if (!s || __atomic_load_n(&s->ss_source, __ATOMIC_RELAXED) !=
	          SCHEDCTL_SOURCE_SUPERVISOR)
		return;
	char st;
	int cpu;
	if (sample_stat(t, &st, &cpu) < 0) {
		sv_sample_forget(t);
		return;
	}
	int state = sample_state(t, st);
	if (state < 0)
		return;
	k->sk_runnable += state == SC_RUN;
	if (__atomic_load_n(&s->ss_stamp_ns, __ATOMIC_RELAXED) > k->sk_t0)
		return;                   /* a notification is newer */
	if (state != SC_SLEEP)
		__atomic_store_n(&s->ss_sysno, ~0u, __ATOMIC_RELAXED);
	uint64_t stamp = sv_slot_store(s, state, cpu);
	if (state == SC_ONPROC)
		sv_sample_claim_cpu(s, cpu, stamp);
}

/* => the floor and the CPU share (as a multiple of the sweep's cost). */
static void sample_policy(bool contended, uint64_t *floor_ns, uint64_t *factor)
{
	static long user_us = -1;
	if (user_us < 0) {
		const char *e = getenv("SCHEDCTL_SAMPLE_US");
		long us = e ? strtol(e, NULL, 10) : 0;
		user_us = us >= 50 ? us : 0;
	}
	if (user_us) {
		*floor_ns = (uint64_t)user_us * 1000;
		*factor = 10;
	} else if (contended) {
		*floor_ns = SAMPLE_MIN_NS / 2;
		*factor = 20;
	} else {
		*floor_ns = SAMPLE_MIN_NS;
		*factor = 50;
	}
}

void sv_sample_tick(void)
{
	struct sample_tick k = { sc_now_ns(), 0 };
	sample_sweep++;
	sv_task_foreach(sample_task, &k);
	uint64_t cost = sc_now_ns() - k.sk_t0, floor_ns, factor;
	sample_policy(k.sk_runnable > 0, &floor_ns, &factor);
	uint64_t iv = cost * factor;
	if (iv < floor_ns)
		iv = floor_ns;
	if (iv > SAMPLE_MAX_NS)
		iv = SAMPLE_MAX_NS;
	sv.st_interval_ns = iv;
}
