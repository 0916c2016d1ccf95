/*
 * agent.c - set-up from the environment, the agent thread, the reports.
 *
 * Environment (`schedctl run` sets these from its options):
 *   SCHEDCTL_PROFILE=1           text report at exit (stderr)
 *   SCHEDCTL_PROFILE_OUT=FILE    text report to FILE instead
 *   SCHEDCTL_PROFILE_JSON=FILE   JSON profile (docs/profile-schema.md)
 *   SCHEDCTL_TRACE=FILE          Chrome Trace Event / Perfetto timeline
 *   SCHEDCTL_PROFILE_SORT=contended|wait|spin|hold, SCHEDCTL_PROFILE_TOP=N
 *   SCHEDCTL_PROFILE_SIGNAL=USR2|USR1|N|0   live dump signal (0: none)
 *   SCHEDCTL_PROFILE_MAX_LOCKS, _MAX_SITES, _MAX_STACKS: record caps
 *   SCHEDCTL_PROFILE_HOLD_SAMPLE=N  time 1 in N uncontended holds
 *                                (default 1: every hold, exact)
 *   SCHEDCTL_TRACE_EVENTS=N, SCHEDCTL_TRACE_INTERVAL_US=N
 *
 * Several processes: the first process image that starts profiling
 * records its pid in SCHEDCTL_PROFILE_ROOT; it writes FILE itself, and
 * every other process (fork children, exec'd descendants) writes
 * FILE with ".PID" inserted before the extension (prof.json ->
 * prof.1234.json).  Files are written to a temporary and renamed, never
 * opened through a symlink.
 *
 * The agent thread sleeps on a futex word (through sc_futex_wait, so the
 * supervisor does not see it as the program's sleep).  The signal
 * handler only bumps the word and wakes it: the dump (which allocates
 * and writes files) runs in the agent, never in the handler.  With a
 * trace, the agent also samples run states every interval.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "prof/render.h"
#include "prof/trace.h"

static struct {
	char out[4096], json[4096], trace[4096], sort[16], policy[32];
} ag_str;
static int ag_root = -1;          /* writes FILE (1) or FILE.PID (0) */
static bool ag_started;
static int ag_sort;
static uint32_t ag_word;          /* bumped to wake the agent (futex) */
static uint32_t ag_dumps;         /* dump requests (signal) */
static bool ag_stop;
static pthread_t ag_thread;
static bool ag_fork_alone;        /* at the last fork (atfork_prepare) */
static bool ag_deferred;          /* a fork child's agent waits for the
                                   * child's first thread; acq/rel */
static bool ag_have_thread;
static struct sc_ilock ag_dump_lock = SC_ILOCK_INIT;
static uint32_t ag_running;       /* futex word: the agent thread is in
                                   * agent_main (its runtime's thread
                                   * set-up is over); release/acquire */

static unsigned env_uint(const char *name, unsigned def, unsigned lo,
                         unsigned hi)
{
	const char *s = getenv(name);
	if (!s || !*s)
		return def;
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (*end || v < lo || v > hi)
		return def;
	return (unsigned)v;
}

static int parse_signal(const char *s)
{
	if (!s || !*s)
		return SIGUSR2;
	if (!strncmp(s, "SIG", 3))
		s += 3;
	if (!strcmp(s, "USR2"))
		return SIGUSR2;
	if (!strcmp(s, "USR1"))
		return SIGUSR1;
	char *end;
	long v = strtol(s, &end, 10);
	if (*end || v < 0 || v >= NSIG || v == SIGKILL || v == SIGSTOP)
		return SIGUSR2;
	return (int)v;
}

static const char *copy_env(const char *name, char *buf, size_t n)
{
	const char *s = getenv(name);
	if (!s || !*s)
		return NULL;
	snprintf(buf, n, "%s", s);
	return buf;
}

int prof_init_from_env(void)
{
	struct prof_config c;
	memset(&c, 0, sizeof c);
	const char *p = getenv("SCHEDCTL_PROFILE");
	c.pc_text = p && *p && strcmp(p, "0") != 0;
	c.pc_out = copy_env("SCHEDCTL_PROFILE_OUT", ag_str.out, sizeof ag_str.out);
	c.pc_json = copy_env("SCHEDCTL_PROFILE_JSON", ag_str.json, sizeof ag_str.json);
	c.pc_trace = copy_env("SCHEDCTL_TRACE", ag_str.trace, sizeof ag_str.trace);
	if (c.pc_out)
		c.pc_text = true;
	if (!c.pc_text && !c.pc_json && !c.pc_trace)
		return 0;
	c.pc_sort = copy_env("SCHEDCTL_PROFILE_SORT", ag_str.sort, sizeof ag_str.sort);
	c.pc_top = (int)env_uint("SCHEDCTL_PROFILE_TOP", 10, 0, 1000000);
	c.pc_signal = parse_signal(getenv("SCHEDCTL_PROFILE_SIGNAL"));
	c.pc_max_locks = env_uint("SCHEDCTL_PROFILE_MAX_LOCKS", 16384, 16, 1u << 20);
	c.pc_max_sites = env_uint("SCHEDCTL_PROFILE_MAX_SITES", 16384, 16, 1u << 20);
	c.pc_hold_sample = env_uint("SCHEDCTL_PROFILE_HOLD_SAMPLE", 1, 1, 1u << 20);
	c.pc_max_stacks = env_uint("SCHEDCTL_PROFILE_MAX_STACKS", 16384, 16, 1u << 20);
	c.pc_max_threads = env_uint("SCHEDCTL_PROFILE_MAX_THREADS", 4096, 16, 1u << 20);
	c.pc_trace_events = env_uint("SCHEDCTL_TRACE_EVENTS", 1u << 20, 1024, 1u << 26);
	c.pc_trace_interval_us = env_uint("SCHEDCTL_TRACE_INTERVAL_US", 1000, 50,
	                                  1000000);
	c.pc_policy = copy_env("SCHEDCTL_POLICY", ag_str.policy, sizeof ag_str.policy);
	const char *root = getenv("SCHEDCTL_PROFILE_ROOT");
	if (root && *root) {
		ag_root = atoi(root) == getpid() ? 1 : 0;
	} else {
		char b[16];
		snprintf(b, sizeof b, "%d", (int)getpid());
		setenv("SCHEDCTL_PROFILE_ROOT", b, 1);
		ag_root = 1;
	}
	return prof_init(&c);
}

static void on_signal(int sig)
{
	(void)sig;
	int saved = errno;
	__atomic_add_fetch(&ag_dumps, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&ag_word, 1, __ATOMIC_RELEASE);
	sc_futex_wake(&ag_word, 1, true);
	errno = saved;
}

static void *agent_main(void *arg)
{
	(void)arg;
	prof_thread_guard(true);        /* the agent's own locks: not profiled */
	sc_runtime_thread_count(1);     /* quiet at forks: atfork_prepare */
	__atomic_store_n(&ag_running, 1, __ATOMIC_RELEASE);
	sc_futex_wake(&ag_running, 1, true);
	uint32_t seen_dumps = 0;
	unsigned iv = prof_g.g_cfg.pc_trace_interval_us;
	struct timespec rel = { iv / 1000000, (long)(iv % 1000000) * 1000 };
	for (;;) {
		uint32_t w = __atomic_load_n(&ag_word, __ATOMIC_ACQUIRE);
		if (__atomic_load_n(&ag_stop, __ATOMIC_ACQUIRE))
			break;
		uint32_t d = __atomic_load_n(&ag_dumps, __ATOMIC_RELAXED);
		if (d != seen_dumps) {
			seen_dumps = d;
			prof_dump(false);
		}
		if (prof_g.g_trace)
			prof_trace_sample();
		sc_futex_wait(&ag_word, w, prof_g.g_trace ? &rel : NULL, true);
	}
	sc_runtime_thread_count(-1);
	return NULL;
}

/* Returns once the agent thread runs agent_main.  The program may fork
 * right after (this runs in fork children too), and a fork copies the
 * locks other threads hold at that moment: a sanitizer's allocator lock
 * taken by the new thread's set-up (ASan has no fork handler for it)
 * left the child blocked for good -- stress-ng's futex stressor forks
 * its waiter at once, and its waker then spun forever. */
static void agent_start(void)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);   /* signals go elsewhere */
	__atomic_store_n(&ag_running, 0, __ATOMIC_RELAXED);
	ag_have_thread = pthread_create(&ag_thread, NULL, agent_main, NULL) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!ag_have_thread)
		return;
	pthread_setname_np(ag_thread, "schedctl-prof");
	while (!__atomic_load_n(&ag_running, __ATOMIC_ACQUIRE))
		sc_futex_wait(&ag_running, 0, NULL, true);
}

/* A dump allocates: a fork waits for it to finish (same reason). */
static void atfork_prepare(void)
{
	sc_ilock_acquire(&ag_dump_lock);
	ag_fork_alone = sc_fork_alone();
}

static void atfork_parent(void)
{
	sc_ilock_release(&ag_dump_lock);
}

static void atfork_child(void)
{
	prof_core_after_fork_child();
	prof_trace_after_fork_child();
	ag_root = 0;
	ag_dump_lock = (struct sc_ilock)SC_ILOCK_INIT;
	ag_have_thread = false;
	/* The child's first thread may start only if no program thread
	 * could have held an allocator's lock at the fork (sc_fork_alone);
	 * otherwise the agent waits for the child's first thread of its
	 * own (prof_thread_begin).  The final report needs no agent. */
	if (ag_fork_alone)
		agent_start();
	else
		__atomic_store_n(&ag_deferred, true, __ATOMIC_RELEASE);
}

void prof_thread_begin(void)
{
	if (__atomic_load_n(&ag_deferred, __ATOMIC_ACQUIRE) &&
	    __atomic_exchange_n(&ag_deferred, false, __ATOMIC_ACQ_REL))
		agent_start();
}

int prof_init(const struct prof_config *cfg)
{
	if (__atomic_exchange_n(&ag_started, true, __ATOMIC_ACQ_REL))
		return -EALREADY;
	int r = prof_core_init(cfg);
	if (r)
		return r;
	if (ag_root < 0)
		ag_root = 1;
	ag_sort = prof_sort_parse(cfg->pc_sort);
	if (ag_sort < 0)
		ag_sort = PROF_SORT_CONTENDED;
	prof_stack_init();
	if (cfg->pc_trace && (r = prof_trace_init(cfg->pc_trace_events)) != 0)
		return r;
	if (cfg->pc_signal > 0) {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_signal;
		sa.sa_flags = SA_RESTART;
		sigemptyset(&sa.sa_mask);
		sigaction(cfg->pc_signal, &sa, NULL);
	}
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	agent_start();
	sc_runtime_stop_at_end(prof_shutdown);   /* src/sc/lastthread.c */
	__atomic_store_n(&prof_on_flag, true, __ATOMIC_RELEASE);
	return 0;
}

void prof_shutdown(void)
{
	if (!ag_have_thread)
		return;
	__atomic_store_n(&ag_stop, true, __ATOMIC_RELEASE);
	__atomic_add_fetch(&ag_word, 1, __ATOMIC_RELEASE);
	sc_futex_wake(&ag_word, 1, true);
	pthread_join(ag_thread, NULL);
	ag_have_thread = false;
	__atomic_store_n(&ag_stop, false, __ATOMIC_RELEASE);
}

/* FILE for the root process, else FILE with ".PID" before the extension. */
static void file_name(const char *path, char *b, size_t n)
{
	if (ag_root != 0) {
		snprintf(b, n, "%s", path);
		return;
	}
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(slash ? slash + 1 : path, '.');
	if (!dot || dot == (slash ? slash + 1 : path))
		snprintf(b, n, "%s.%d", path, (int)getpid());
	else
		snprintf(b, n, "%.*s.%d%s", (int)(dot - path), path, (int)getpid(), dot);
}

static void complain(const char *what, const char *path, int err)
{
	char b[4400];
	int n = snprintf(b, sizeof b, "schedctl: cannot write %s %s: %s\n", what,
	                 path, strerror(-err));
	if (n > 0)
		(void)!write(2, b, (size_t)n < sizeof b ? (size_t)n : sizeof b - 1);
}

typedef void (*render_fn)(struct prof_out *, const struct prof_snap *);

static void write_file(const char *what, const char *path,
                       const struct prof_snap *s, render_fn fn)
{
	char name[4200];
	file_name(path, name, sizeof name);
	struct prof_file pf;
	int fd = po_open(&pf, name);
	if (fd < 0) {
		complain(what, name, fd);
		return;
	}
	struct prof_out *o = malloc(sizeof *o);
	int err = -ENOMEM;
	if (o) {
		po_init(o, fd);
		fn(o, s);
		err = po_flush(o);
		free(o);
	}
	if ((err = po_commit(&pf, fd, err)) != 0)
		complain(what, name, err);
}

static void render_text_cfg(struct prof_out *o, const struct prof_snap *s)
{
	prof_render_text(o, s, ag_sort, prof_g.g_cfg.pc_top);
}

int prof_dump(bool final)
{
	if (!__atomic_load_n(&ag_started, __ATOMIC_ACQUIRE))
		return -EINVAL;
	const struct prof_config *c = &prof_g.g_cfg;
	prof_thread_guard(true);
	sc_ilock_acquire(&ag_dump_lock);
	struct prof_snap *s = prof_snap_take(final);
	int r = s ? 0 : -ENOMEM;
	if (s) {
		prof_snap_sort(s, ag_sort);
		if (c->pc_text && c->pc_out) {
			write_file("profile", c->pc_out, s, render_text_cfg);
		} else if (c->pc_text) {
			struct prof_out *o = malloc(sizeof *o);
			if (o) {
				po_init(o, 2);
				render_text_cfg(o, s);
				(void)po_flush(o);
				free(o);
			}
		}
		if (c->pc_json)
			write_file("JSON profile", c->pc_json, s, prof_render_json);
		prof_snap_free(s);
	}
	if (c->pc_trace) {
		char name[4200];
		file_name(c->pc_trace, name, sizeof name);
		struct prof_file pf;
		int fd = po_open(&pf, name);
		int err = fd < 0 ? fd : prof_trace_write(fd);
		if (fd >= 0)
			err = po_commit(&pf, fd, err);
		if (err)
			complain("trace", name, err);
	}
	sc_ilock_release(&ag_dump_lock);
	prof_thread_guard(false);
	return r;
}
