/*
 * thread.c - per-thread set-up and release of schedctl slots.
 *
 * A thread gets its slot the first time it (or the preload on its
 * behalf) asks, and gives it back from a pthread key destructor when it
 * exits.  After its destructor ran, a thread gets no new slot: a
 * destructor that runs later (and, say, takes a mutex) sees NULL rather
 * than leaking a slot that nobody would free.
 *
 * Source decision for a new thread (SCHEDCTL_STATE_SOURCE):
 *   auto        perf if the kernel gives us a ring, else the supervisor
 *               if one maps the region, else none
 *   perf        perf or none
 *   supervisor  the supervisor or none
 *
 * fork: the child keeps only the forking thread and none of the
 * parent's pages (MADV_DONTFORK); the atfork child handler forgets the
 * region and the thread's slot, so its next call takes a fresh one.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "sc/sc.h"

enum { TS_NONE, TS_LIVE, TS_GONE };

static __thread struct sc_slot *tls_slot __attribute__((tls_model("initial-exec")));
static __thread char *tls_ring __attribute__((tls_model("initial-exec")));
static __thread unsigned char tls_phase __attribute__((tls_model("initial-exec")));

static pthread_once_t thread_once = PTHREAD_ONCE_INIT;
static pthread_key_t thread_key;
static enum sc_want thread_want;
static bool thread_supervised;   /* relaxed: set before threads start */
static bool thread_notices;      /* relaxed */

static void thread_key_destructor(void *arg);
static void thread_atfork_child(void);

static void thread_init_once(void)
{
	const char *s = getenv("SCHEDCTL_STATE_SOURCE");
	if (s && strcmp(s, "perf") == 0)
		thread_want = SC_WANT_PERF;
	else if (s && strcmp(s, "supervisor") == 0)
		thread_want = SC_WANT_SUPERVISOR;
	else
		thread_want = SC_WANT_AUTO;
	const char *v = getenv("SCHEDCTL_VERBOSE");
	if (v && *v && strcmp(v, "0") != 0)
		thread_notices = true;
	/* In the preload under `schedctl run`, a dependency's constructor
	 * can take a slot before the preload's own runs: count on the
	 * supervisor from the start (the preload withdraws this if it cannot
	 * reach it).  Only the preload defines sc_preload_marker. */
	if (&sc_preload_marker != NULL && getenv("SCHEDCTL_SUPERVISOR"))
		__atomic_store_n(&thread_supervised, true, __ATOMIC_RELAXED);
	(void)pthread_key_create(&thread_key, thread_key_destructor);
	(void)pthread_atfork(sc_region_prepare_fork, sc_region_parent_after_fork,
	                     thread_atfork_child);
}

enum sc_want sc_wanted_source(void)
{
	pthread_once(&thread_once, thread_init_once);
	return __atomic_load_n(&thread_want, __ATOMIC_RELAXED);
}

void sc_set_wanted_source(enum sc_want want)
{
	pthread_once(&thread_once, thread_init_once);
	__atomic_store_n(&thread_want, want, __ATOMIC_RELAXED);
}

void sc_set_supervised(bool on)
{
	__atomic_store_n(&thread_supervised, on, __ATOMIC_RELAXED);
}

bool sc_supervised(void)
{
	return __atomic_load_n(&thread_supervised, __ATOMIC_RELAXED);
}

void sc_notices_enable(bool on)
{
	__atomic_store_n(&thread_notices, on, __ATOMIC_RELAXED);
}

void sc_notice(const char *msg)
{
	sc_notice_choice(false, msg);
}

/* A choice the user made explicitly (an option or its variable) that
 * cannot be honoured is always said; automatic decisions only with
 * --verbose. */
void sc_notice_choice(bool chosen, const char *msg)
{
	if (!chosen && !__atomic_load_n(&thread_notices, __ATOMIC_RELAXED))
		return;
	char buf[256];
	size_t n = strlen(msg);
	if (n > sizeof buf - 12)
		n = sizeof buf - 12;
	memcpy(buf, "schedctl: ", 10);
	memcpy(buf + 10, msg, n);
	buf[10 + n] = '\n';
	(void)!write(STDERR_FILENO, buf, 11 + n);
}

/* Mirror the Linux scheduling attributes into the illumos fields. */
static void thread_mirror_policy(sc_shared_t *pub)
{
	int policy = sched_getscheduler(0);
	struct sched_param sp = { 0 };
	(void)sched_getparam(0, &sp);
	errno = 0;
	int nice = getpriority(PRIO_PROCESS, 0);
	if (errno)
		nice = 0;
	if (policy < 0)
		policy = SCHED_OTHER;
	pub->sc_cid = (signed char)policy;
	if (policy == SCHED_FIFO || policy == SCHED_RR) {
		pub->sc_cpri = (signed char)sp.sched_priority;
		pub->sc_priority = (unsigned char)(99 - sp.sched_priority);
	} else {
		pub->sc_cpri = (signed char)nice;
		pub->sc_priority = (unsigned char)(120 + nice);
	}
}

/* Say once why a thread has no kernel ring: always when the user asked
 * for perf (--state-source=perf), else only with --verbose. */
static void thread_explain_no_ring(int err, bool sup, bool chosen)
{
	static int said_refused, said_budget;
	const char *fallback = chosen ? "--state-source=perf not honoured: "
	                                "those threads' states are unknown"
	                     : sup ? "using the supervisor's view of thread states"
	                           : "no supervisor: those threads' states are unknown";
	char msg[200];
	if (sc_perf_refused()) {
		if (__atomic_exchange_n(&said_refused, 1, __ATOMIC_RELAXED))
			return;
		snprintf(msg, sizeof msg, "kernel context-switch records refused (%s); %s",
		         strerror(-err), fallback);
	} else {
		if (__atomic_exchange_n(&said_budget, 1, __ATOMIC_RELAXED))
			return;
		snprintf(msg, sizeof msg, "no kernel context-switch ring for some "
		         "threads (%s: perf mlock budget spent?); %s", strerror(-err),
		         fallback);
	}
	sc_notice_choice(chosen, msg);
}

static uint8_t thread_pick_source(char *ring)
{
	enum sc_want want = sc_wanted_source();
	bool sup = sc_supervised();
	if (want != SC_WANT_SUPERVISOR) {
		int err = sc_perf_attach(ring);
		if (err == 0)
			return SCHEDCTL_SOURCE_PERF;
		thread_explain_no_ring(err, sup && want == SC_WANT_AUTO,
		                       want == SC_WANT_PERF);
		if (want == SC_WANT_PERF)
			return SCHEDCTL_SOURCE_NONE;
	}
	return sup ? SCHEDCTL_SOURCE_SUPERVISOR : SCHEDCTL_SOURCE_NONE;
}

struct sc_slot *sc_thread_slot(void)
{
	return tls_slot;
}

struct sc_slot *sc_thread_setup(void)
{
	if (tls_slot)
		return tls_slot;
	if (tls_phase == TS_GONE) {
		errno = ESRCH;
		return NULL;
	}
	pthread_once(&thread_once, thread_init_once);

	struct sc_taken t;
	int err = sc_region_take(&t);
	if (err < 0) {
		errno = -err;
		return NULL;
	}
	struct sc_slot *s = t.t_slot;
	sc_shared_t *pub = &s->ss_pub;
	/* The slot reads SC_FREE until the release store below.  Fields
	 * other readers load are stored atomically; the generation tells
	 * them the slot changed hands. */
	__atomic_add_fetch(&s->ss_gen, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&s->ss_tid, (int32_t)gettid(), __ATOMIC_RELAXED);
	__atomic_store_n(&s->ss_sysno, ~0u, __ATOMIC_RELAXED);
	__atomic_store_n(&s->ss_stamp_ns, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->ss_flags, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->ss_lhp, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&pub->sc_flgs, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&pub->sc_sigblock, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&pub->sc_preemptctl.sc_nopreempt, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&pub->sc_preemptctl.sc_yield, 0, __ATOMIC_RELAXED);
	thread_mirror_policy(pub);
	__atomic_store_n(&s->ss_source, thread_pick_source(t.t_ring),
	                 __ATOMIC_RELAXED);
	int cpu = sched_getcpu();
	__atomic_store_n(&pub->sc_cpu, cpu < 0 ? 0 : cpu, __ATOMIC_RELAXED);
	__atomic_store_n(&pub->sc_state, SC_ONPROC, __ATOMIC_RELEASE);

	tls_slot = s;
	tls_ring = t.t_ring;
	tls_phase = TS_LIVE;
	(void)pthread_setspecific(thread_key, s);
	return s;
}

/* The thread forgets its slot before it frees it: a signal handler that
 * runs in between (and parks on a lock, or sleeps) must not find the
 * slot through sc_thread_slot() and mark it SC_SLEEP/SC_ONPROC over
 * SC_FREE, or, once it is given back, in another thread's hands.  The
 * signal fence keeps the compiler from sinking the TLS stores below
 * the releasing ones (a handler runs on this thread: no CPU fence). */
static void thread_release_slot(void)
{
	struct sc_slot *s = tls_slot;
	char *ring = tls_ring;
	if (!s)
		return;
	tls_slot = NULL;
	tls_ring = NULL;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(&s->ss_pub.sc_state, SC_FREE, __ATOMIC_RELEASE);
	if (s->ss_source == SCHEDCTL_SOURCE_PERF)
		sc_perf_detach(ring);
	__atomic_store_n(&s->ss_tid, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->ss_source, SCHEDCTL_SOURCE_NONE, __ATOMIC_RELAXED);
	sc_region_give_back(s);
}

static void thread_key_destructor(void *arg)
{
	(void)arg;
	tls_phase = TS_GONE;        /* first: no new slot from a handler */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	thread_release_slot();
}

static void thread_atfork_child(void)
{
	sc_region_forget_after_fork();
	tls_slot = NULL;
	tls_ring = NULL;
	tls_phase = TS_NONE;
	(void)pthread_setspecific(thread_key, NULL);
}

/* ---- runtime threads and fork ------------------------------------ */

/* Runtime threads running now; relaxed: read only by a prepare
 * handler, after each counted thread's start was waited for (acquire
 * on its own start word) and while its owner keeps it quiet. */
static int runtime_threads;

void sc_runtime_thread_count(int delta)
{
	if (delta > 0)
		sc_program_thread_is_runtime();
	__atomic_add_fetch(&runtime_threads, delta, __ATOMIC_RELAXED);
}

/* Copy the value of "KEY:" in /proc/PID/status into val.  The file is
 * read in pieces and a line longer than the buffer is skipped, so a long
 * line before the key (Groups, with hundreds of supplementary groups)
 * cannot push it out of a fixed buffer.  => 0, or -1. */
static int status_value(pid_t pid, const char *key, char *val, size_t vlen)
{
	char path[64], buf[1024];
	size_t klen = strlen(key), have = 0;
	bool skipping = false;          /* inside a line longer than buf */
	int rc = -1;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	for (;;) {
		ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		char *line = buf, *nl;
		while ((nl = memchr(line, '\n', have - (size_t)(line - buf)))) {
			*nl = 0;
			if (!skipping && strncmp(line, key, klen) == 0 &&
			    line[klen] == ':') {
				snprintf(val, vlen, "%s", line + klen + 1);
				rc = 0;
				goto out;
			}
			skipping = false;
			line = nl + 1;
		}
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
		if (have == sizeof buf - 1) {
			skipping = true;
			have = 0;
		}
	}
out:
	close(fd);
	return rc;
}

long sc_status_field(pid_t pid, const char *key)
{
	char v[64];
	return status_value(pid, key, v, sizeof v) == 0 ? strtol(v, NULL, 10)
	                                                : -1;
}

int sc_status_mask(pid_t pid, const char *key, uint64_t *mask)
{
	char v[64];
	if (status_value(pid, key, v, sizeof v) != 0)
		return -1;
	*mask = strtoull(v, NULL, 16);
	return 0;
}

bool sc_fork_alone(void)
{
	long n = sc_status_field(getpid(), "Threads");
	return n >= 1 &&
	       n - __atomic_load_n(&runtime_threads, __ATOMIC_RELAXED) <= 1;
}
