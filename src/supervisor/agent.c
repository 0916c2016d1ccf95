/*
 * agent.c - the supervisor's side inside the supervised program (linked
 * into the preload; preload/preload.c only calls in here).
 *
 * Per process image (the constructor, and again in every fork child):
 *   1. connect to the supervisor (SCHEDCTL_SUPERVISOR); unreachable ->
 *      agent_orphaned() below;
 *   2. take the calling thread's slot, which creates the slot region;
 *      the region hook keeps a copy of the memfd for step 5 (and if a
 *      dependency's constructor took a slot first, the library kept the
 *      fd for us and the slot is promoted to the supervisor source);
 *   3. start the watchdog, then install the seccomp filter (filter.c) on
 *      this, the only, thread: NEW_LISTENER excludes TSYNC, so it must
 *      happen while the image is single-threaded (the constructor, a
 *      fork child), and the watchdog, created first, is not bound by it;
 *   4. hand the listener to the watchdog and make one notified call (a
 *      zero clock_nanosleep, if the notify set has it) that the watchdog
 *      answers: it now knows an id of this listener's sequence (ids are
 *      per listener and ascending);
 *   5. send the hello with the listener and the region (proto.h), and
 *      close the listener: the supervisor and its backstop hold it.
 * From 3 to 5 the filter is in force but nobody else has the listener:
 * every call made there carries the cookie, whatever the notify set.
 *
 * One listener per program.  The kernel lets a chain of filters have
 * only one live listener: NEW_LISTENER fails with EBUSY while a filter
 * the process inherited has one open anywhere.  Filters survive fork and
 * exec, so only the first image installs one; in every fork child and
 * exec'd image descended from it step 3 fails with EBUSY, 4 is skipped
 * and the hello carries no listener: their calls notify the first
 * image's listener, which the supervisor reads for the whole program
 * (notify.c finds each thread's slot in its own image's region).  Such
 * an image waits, after the hello, until the supervisor has mapped its
 * region (SC_RH_SUPERVISED), so that its first notified call already
 * gets the emulations (a cancel flag set before it, say).
 *
 * The watchdog (one thread per image, all signals blocked, only
 * cookie-marked system calls) blocks reading the control socket.  The
 * supervisor never writes to it, so the read returns only when the
 * supervisor is gone (killed, crashed, or it dropped us).  Then states
 * it can no longer vouch for become SCHEDCTL_SOURCE_NONE
 * (schedctl_state() says ENOTSUP rather than a stale state).  The
 * notifications are answered by the supervisor's backstop process
 * (backstop.c), not by watchdogs: a thread of a program process that
 * exits between receiving a notification and answering it would leave
 * that call waiting, and with one listener for the whole program that
 * would be another process's call.
 *
 * An image that starts after the supervisor died (agent_orphaned())
 * shares the program's listener, still answered by the backstop; if no
 * copy of it is open anywhere (the backstop died too), it installs a
 * filter of its own answered by its own watchdog, which then also
 * answers that image's descendants while it lives.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "supervisor/sv.h"

#define AGENT_PROBE_IDS 512   /* ids after rh_notif_id answered at takeover */
#define AGENT_MAP_WAIT_MS 500 /* longest wait for the supervisor to map a
                                 shared-filter image's region */

typedef int (*agent_create_fn)(pthread_t *, const pthread_attr_t *,
                               void *(*)(void *), void *);

static struct {
	int ag_conn;                  /* control socket, -1 if unsupervised */
	int ag_listener;              /* installed here, until the hello (or
	                                 for good, orphaned); -1 if none */
	int ag_region_fd;             /* until sent */
	struct sc_region_hdr *ag_hdr; /* this image's region */
	uint64_t ag_learned_id;       /* written by the watchdog before it
	                                 answers the learning call */
	agent_create_fn ag_create;
	struct sv_notify_set ag_set;
	bool ag_enabled;              /* SCHEDCTL_SUPERVISOR was set */
	bool ag_verbose;              /* SCHEDCTL_VERBOSE: notices wanted */
	bool ag_watch_live;           /* this image's watchdog runs (one
	                                 that watches a supervisor is joinable:
	                                 agent_stop_watchdog) */
	bool ag_fork_alone;           /* at the last fork, no thread but the
	                                 forking one and the watchdog */
	bool ag_watch_deferred;       /* a fork child's watchdog waits for
	                                 the image's first new thread */
} ag = { -1, -1, -1, NULL, 0, NULL, { 0, { 0 } }, false, false, false,
         false, false };

static void agent_region_created(int fd, void *base)
{
	if (ag.ag_region_fd >= 0)
		close(ag.ag_region_fd);
	ag.ag_region_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	ag.ag_hdr = base;
}

static int agent_connect(void)
{
	const char *name = getenv(SC_ENV_SUPERVISOR);
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > SV_SOCK_NAME_MAX)
		return -1;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	memcpy(a.sun_path + 1, name, n);
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	if (connect(fd, (struct sockaddr *)&a, len) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void agent_answer(int listener, uint64_t id)
{
	struct seccomp_notif_resp r = { .id = id,
	                                .flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE };
	(void)sc_marked_syscall(SYS_ioctl, listener,
	                        (long)SECCOMP_IOCTL_NOTIF_SEND, (long)&r, 0, 0);
}

/* => the next notification's id, 0 if the listener is dead. */
static uint64_t agent_receive(int listener)
{
	for (;;) {
		struct seccomp_notif n;
		memset(&n, 0, sizeof n);
		long r = sc_marked_syscall(SYS_ioctl, listener,
		                           (long)SECCOMP_IOCTL_NOTIF_RECV, (long)&n, 0, 0);
		if (r == 0)
			return n.id;
		if (r != -EINTR && r != -ENOENT)
			return 0;
	}
}

/* Threads set up while we take over may still pick the supervisor; a
 * second pass after answering catches them. */
static void agent_demote_slots(void)
{
	sc_set_supervised(false);
	for (uint32_t i = 1;; i++) {
		struct sc_slot *s = sc_slot_at(i);
		if (!s)
			break;
		uint8_t want = SCHEDCTL_SOURCE_SUPERVISOR;
		__atomic_compare_exchange_n(&s->ss_source, &want,
		                            SCHEDCTL_SOURCE_NONE, false,
		                            __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	}
}

/* A notice from the watchdog's takeover: one write(2) of a line the
 * compiler built, with the cookie (the watchdog is bound by the
 * program's filter in every image but the first, and the notify set may
 * name write).  No formatting, stdio or allocation: another thread may
 * fork at that instant, and the child would inherit any lock we held. */
static void agent_notice_raw(const char *line, size_t len)
{
	if (ag.ag_verbose)
		(void)sc_marked_syscall(SYS_write, STDERR_FILENO, (long)line,
		                        (long)len, 0, 0);
}
#define AGENT_NOTICE_RAW(msg) \
	agent_notice_raw("schedctl: " msg "\n", sizeof("schedctl: " msg "\n") - 1)

/* listener: this image's own (orphaned), answered from now on; -1: the
 * backstop answers (supervised images). */
static void agent_takeover(int listener)
{
	agent_demote_slots();
	AGENT_NOTICE_RAW("supervisor gone; the program continues unsupervised");
	if (listener < 0)
		return;
	uint64_t base = ag.ag_hdr ? __atomic_load_n(&ag.ag_hdr->rh_notif_id,
	                                            __ATOMIC_RELAXED) : 0;
	if (base == 0)
		base = ag.ag_learned_id;
	for (uint64_t k = 0; base && k < AGENT_PROBE_IDS; k++)
		agent_answer(listener, base + k);
	agent_demote_slots();
	for (;;) {
		uint64_t id = agent_receive(listener);
		if (id == 0)
			return;
		agent_answer(listener, id);
	}
}

/* The watchdog is started before this image's filter exists, so that
 * filter never applies to it (a filter binds the installing thread and
 * threads it creates later).  Filters inherited from a parent image do,
 * so every call it makes carries the cookie.  It waits on aw_ready for
 * the listener. */
enum { AW_WAIT, AW_GO, AW_QUIT };
static struct agent_watch {
	int aw_conn;                  /* -1: orphan, no supervisor */
	int aw_listener;              /* written before aw_ready = AW_GO: a
	                                 copy to learn with, closed after
	                                 (supervised), or the orphan's own */
	bool aw_learn;                /* expect the learning call */
	bool aw_quit;                 /* the program's last thread is ending
	                                 (release; the watchdog acquires) */
	dev_t aw_dev;                 /* aw_conn's socket, to tell it from */
	ino_t aw_ino;                 /* a descriptor the program reused */
	uint32_t aw_ready;            /* futex word; release/acquire */
	uint32_t aw_started;          /* futex word: the thread is running
	                                 agent_watchdog() (its runtime's
	                                 thread setup is over) */
	pthread_t aw_thread;
} ag_watch;

/* The learning call: a zero clock_nanosleep, if the set notifies it. */
static bool agent_can_learn(void)
{
	for (int i = 0; i < ag.ag_set.ns_n; i++)
		if (ag.ag_set.ns_nr[i] == SYS_clock_nanosleep)
			return true;
	return false;
}

static void *agent_watchdog_run(void *arg)
{
	struct agent_watch *w = arg;
	uint32_t st;
	__atomic_store_n(&w->aw_started, 1, __ATOMIC_RELEASE);
	(void)sc_marked_syscall(SYS_futex, (long)&w->aw_started,
	                        FUTEX_WAKE_PRIVATE, 1, 0, 0);
	while ((st = __atomic_load_n(&w->aw_ready, __ATOMIC_ACQUIRE)) == AW_WAIT)
		(void)sc_marked_syscall(SYS_futex, (long)&w->aw_ready,
		                        FUTEX_WAIT_PRIVATE, AW_WAIT, 0, 0);
	if (st == AW_QUIT)
		return NULL;
	if (w->aw_conn < 0)
		goto orphan;              /* no supervisor to begin with */
	if (w->aw_learn) {
		/* Learning: answer the constructor's zero sleep. */
		uint64_t id = agent_receive(w->aw_listener);
		__atomic_store_n(&ag.ag_learned_id, id, __ATOMIC_RELEASE);
		if (id)
			agent_answer(w->aw_listener, id);
	}
	if (w->aw_listener >= 0) {    /* the backstop answers, not us */
		(void)sc_marked_syscall(SYS_close, w->aw_listener, 0, 0, 0, 0);
		w->aw_listener = -1;
	}
	for (;;) {
		char c;
		struct iovec iov = { &c, 1 };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
		long r = sc_marked_syscall(SYS_recvmsg, w->aw_conn, (long)&m, 0, 0, 0);
		if (r > 0 || r == -EINTR)
			continue;
		break;
	}
	if (__atomic_load_n(&w->aw_quit, __ATOMIC_ACQUIRE))
		return NULL;              /* not the supervisor: our shutdown */
orphan:
	agent_takeover(w->aw_listener);
	return NULL;
}

/* Only system calls: at a fork it holds no lock (sc_fork_alone). */
static void *agent_watchdog(void *arg)
{
	sc_runtime_thread_count(1);
	void *r = agent_watchdog_run(arg);
	sc_runtime_thread_count(-1);
	return r;
}

/* The image may fork as soon as we return (a fork child's handler runs
 * this), and a fork copies whatever locks another thread holds at that
 * moment, e.g. a sanitizer allocator's, which the thread setup of the
 * runtime takes (ASan has no fork handler for them): the child would
 * block on a lock nobody will release.  So the watchdog is joinable and
 * we return only once its setup is over; agent_release_watchdog() joins
 * a watchdog that quits, for the same reason. */
static int agent_start_watchdog(int conn)
{
	ag_watch.aw_conn = conn;
	ag_watch.aw_listener = -1;
	ag_watch.aw_ready = AW_WAIT;
	ag_watch.aw_started = 0;
	ag_watch.aw_quit = false;
	struct stat st = { 0 };
	if (conn >= 0)
		(void)fstat(conn, &st);
	ag_watch.aw_dev = st.st_dev;
	ag_watch.aw_ino = st.st_ino;
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, 64 * 1024);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int e = ag.ag_create(&ag_watch.aw_thread, &a, agent_watchdog, &ag_watch);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&a);
	if (e)
		return -e;
	while (!__atomic_load_n(&ag_watch.aw_started, __ATOMIC_ACQUIRE))
		(void)sc_marked_syscall(SYS_futex, (long)&ag_watch.aw_started,
		                        FUTEX_WAIT_PRIVATE, 0, 0, 0);
	return 0;
}

/* The program's last thread is ending (src/sc/lastthread.c): a watchdog
 * that only watches the supervisor goes, so that glibc ends the process
 * as it would without us.  Shutting our end for reading wakes its
 * recvmsg with 0 (the supervisor's end sees nothing: it never writes);
 * aw_quit tells it that this is not the supervisor going.  One that
 * answers a listener of its own (orphaned) is never stopped: the ending
 * thread's last calls need it.  If the supervisor went first, the
 * watchdog has returned already and this only joins it.  If the program
 * closed our descriptor (and perhaps reused the number), the watchdog
 * cannot be woken, and the program's own socket must not be shut: it
 * stays (README, a process that closes all its descriptors). */
static void agent_stop_watchdog(void)
{
	if (!ag.ag_watch_live || ag_watch.aw_conn < 0)
		return;
	struct stat st;
	if (fstat(ag_watch.aw_conn, &st) != 0 || st.st_dev != ag_watch.aw_dev ||
	    st.st_ino != ag_watch.aw_ino)
		return;
	ag.ag_watch_live = false;
	__atomic_store_n(&ag_watch.aw_quit, true, __ATOMIC_RELEASE);
	(void)shutdown(ag_watch.aw_conn, SHUT_RD);
	(void)pthread_join(ag_watch.aw_thread, NULL);
}

/* The watchdog goes if there is a supervisor to watch or a listener to
 * answer (orphaned); otherwise it is not needed after all.  listener:
 * installed here, -1 if none.  A supervised watchdog gets a copy to
 * learn with, and closes it. */
static void agent_release_watchdog(int listener)
{
	bool go = ag_watch.aw_conn >= 0 || listener >= 0;
	if (ag_watch.aw_conn >= 0 && listener >= 0) {
		long d = sc_marked_syscall(SYS_fcntl, listener, F_DUPFD_CLOEXEC, 3,
		                           0, 0);
		listener = d < 0 ? -1 : (int)d;
	}
	ag_watch.aw_listener = listener;
	ag_watch.aw_learn = ag_watch.aw_conn >= 0 && listener >= 0 &&
	                    agent_can_learn();
	ag.ag_watch_live = go;
	__atomic_store_n(&ag_watch.aw_ready, go ? AW_GO : AW_QUIT,
	                 __ATOMIC_RELEASE);
	(void)syscall(SYS_futex, &ag_watch.aw_ready, FUTEX_WAKE_PRIVATE, 1,
	              NULL, NULL, 0);
	if (go && ag_watch.aw_conn >= 0) {      /* joined at the end */
		sc_runtime_stop_at_end(agent_stop_watchdog);
	} else if (go) {
		(void)pthread_detach(ag_watch.aw_thread);
	} else {
		(void)pthread_join(ag_watch.aw_thread, NULL);
	}
}

static void agent_send_hello(bool forked)
{
	struct sv_hello h = { .sh_magic = SV_HELLO_MAGIC, .sh_pid = getpid(),
	                      .sh_flags = forked ? SV_HELLO_FORKED : 0 };
	int fds[2], n = 0;
	if (ag.ag_listener >= 0) {
		fds[n++] = ag.ag_listener;
		h.sh_flags |= SV_HELLO_LISTENER;
	}
	if (ag.ag_region_fd >= 0) {
		fds[n++] = ag.ag_region_fd;
		h.sh_flags |= SV_HELLO_REGION;
	}
	h.sh_nfds = (uint32_t)n;
	h.sh_first_id = __atomic_load_n(&ag.ag_learned_id, __ATOMIC_ACQUIRE);
	union {
		char buf[CMSG_SPACE(sizeof fds)];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof u);
	struct iovec iov = { &h, sizeof h };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (n) {
		m.msg_control = u.buf;
		m.msg_controllen = CMSG_SPACE((size_t)n * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)n * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)n * sizeof(int));
	}
	/* The filter is in force and the supervisor does not have the
	 * listener yet: whatever the notify set, these must not notify. */
	while (sc_marked_syscall(SYS_sendmsg, ag.ag_conn, (long)&m, MSG_NOSIGNAL,
	                         0, 0) == -EINTR)
		;
	if (ag.ag_region_fd >= 0) {
		(void)sc_marked_syscall(SYS_close, ag.ag_region_fd, 0, 0, 0, 0);
		ag.ag_region_fd = -1;
	}
}

/* The slot this (only) thread may have taken before the supervisor was
 * known, e.g. when a dependency's constructor locked a mutex: it was
 * given no source, and the supervisor now observes it.  The owner is the
 * one writer of ss_source, so a relaxed store before the supervisor
 * first reads the slot is enough. */
static void agent_promote_self(void)
{
	struct sc_slot *s = sc_thread_slot();
	if (!s) {
		(void)schedctl_self();
		return;
	}
	if (__atomic_load_n(&s->ss_source, __ATOMIC_RELAXED) ==
	    SCHEDCTL_SOURCE_NONE && sc_wanted_source() != SC_WANT_PERF)
		__atomic_store_n(&s->ss_source, SCHEDCTL_SOURCE_SUPERVISOR,
		                 __ATOMIC_RELAXED);
}

/* No supervisor (it died before this image started).  If we inherited
 * the program's filter and its listener is still open (the backstop's
 * copy), NEW_LISTENER fails with EBUSY and the backstop answers us.  If
 * it is closed everywhere, our calls would fail with ENOSYS: a filter of
 * our own, answered by our own watchdog, takes them. */
static void agent_orphaned(bool may_thread)
{
	sc_notice("supervisor unreachable; running unsupervised");
	(void)schedctl_self();
	agent_demote_slots();
	if (!may_thread)                  /* see agent_setup_image() */
		return;
	if (ag.ag_listener >= 0)          /* the parent's */
		close(ag.ag_listener);
	ag.ag_listener = -1;
	if (sc_status_field(getpid(), "Seccomp_filters") <= 0 ||
	    agent_start_watchdog(-1) < 0)
		return;
	int l = sv_filter_install(&ag.ag_set);
	if (l >= 0) {
		(void)sv_listener_sync_wakeup(l);
		ag.ag_listener = l;
	}
	agent_release_watchdog(l < 0 ? -1 : l);
}

/* Steps 1-5 above.  => the image is single-threaded. */
/* A shared-filter image: wait (bounded) until the supervisor has mapped
 * our region, announced by SC_RH_SUPERVISED in its header and a wake on
 * that word (a shared futex: the memfd is mapped in both processes). */
static void agent_wait_mapped(void)
{
	struct sc_region_hdr *h = ag.ag_hdr;
	struct timespec t0, t;
	if (!h)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		uint32_t f = __atomic_load_n(&h->rh_flags, __ATOMIC_ACQUIRE);
		if (f & SC_RH_SUPERVISED)
			return;
		clock_gettime(CLOCK_MONOTONIC, &t);
		long ms = (t.tv_sec - t0.tv_sec) * 1000 +
		          (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (ms >= AGENT_MAP_WAIT_MS)
			return;
		struct timespec left = { 0, (AGENT_MAP_WAIT_MS - ms) * 1000000L };
		(void)sc_marked_syscall(SYS_futex, (long)&h->rh_flags, FUTEX_WAIT,
		                        (long)f, (long)&left, 0);
	}
}

/* A fork child may create a thread (the watchdog) only if the parent
 * had no other thread at the fork: one could have held a lock the
 * thread's set-up needs, e.g. a sanitizer allocator's, which has no
 * fork handler (the child would block forever; POSIX allows only
 * async-signal-safe calls there).  Otherwise the watchdog is started
 * with the child's first thread of its own (sv_agent_thread_begin()), or
 * by the next exec's image; until then, if the supervisor dies, the
 * child's states are not marked unknown (its calls are answered by the
 * backstop all the same).  Everything else here is system calls. */
static void agent_setup_image(bool forked)
{
	bool may_thread = !forked || ag.ag_fork_alone;
	ag.ag_conn = agent_connect();
	if (ag.ag_conn < 0) {
		agent_orphaned(may_thread);
		return;
	}
	if (ag.ag_listener >= 0)          /* an orphaned parent's own */
		close(ag.ag_listener);
	ag.ag_listener = -1;
	sc_set_supervised(true);
	agent_promote_self();
	bool watched = may_thread && agent_start_watchdog(ag.ag_conn) == 0;
	__atomic_store_n(&ag.ag_watch_deferred, !may_thread, __ATOMIC_RELEASE);
	int l = sv_filter_install(&ag.ag_set);
	bool shared = l == -EBUSY;
	if (shared) {
		/* The program's filter (an earlier image's) is in force: its
		 * listener, which the supervisor has, takes our calls. */
		l = -1;
	} else if (l < 0) {
		sc_notice("cannot install the seccomp filter; "
		          "thread states come from /proc sampling only");
	} else if (sv_listener_sync_wakeup(l) < 0) {
		sc_notice("kernel lacks synchronous seccomp wake-ups; "
		          "notified calls are slower");
	}
	ag.ag_listener = l;
	if (watched) {
		agent_release_watchdog(l);
		if (l >= 0 && ag_watch.aw_learn) {
			/* A raw call: the preload's clock_nanosleep would
			 * carry the cookie (sleep.c), and nothing would come
			 * to learn from. */
			struct timespec zero = { 0, 0 };
			(void)syscall(SYS_clock_nanosleep, (long)CLOCK_MONOTONIC,
			              0L, &zero, NULL, 0L, 0L);
		}
	}
	agent_send_hello(forked);
	if (shared)
		agent_wait_mapped();
	if (l >= 0) {                     /* sent: the supervisor has it */
		(void)sc_marked_syscall(SYS_close, l, 0, 0, 0, 0);
		ag.ag_listener = -1;
	}
}

static void agent_atfork_prepare(void)
{
	ag.ag_fork_alone = sc_fork_alone();
}

static void agent_atfork_child(void)
{
	ag.ag_watch_live = false;         /* the parent's: not in this child */
	if (ag.ag_conn >= 0)
		close(ag.ag_conn);
	ag.ag_conn = -1;
	ag.ag_hdr = NULL;
	ag.ag_learned_id = 0;
	agent_setup_image(true);
}

void sv_agent_start(int (*real_pthread_create)(pthread_t *,
                    const pthread_attr_t *, void *(*)(void *), void *))
{
	ag.ag_create = real_pthread_create;
	ag.ag_enabled = getenv(SC_ENV_SUPERVISOR) != NULL && ag.ag_create;
	const char *v = getenv("SCHEDCTL_VERBOSE");   /* as sc_notice() */
	ag.ag_verbose = v && *v && strcmp(v, "0") != 0;
	if (!ag.ag_enabled) {
		(void)schedctl_self();
		return;
	}
	char err[128];
	if (sv_notify_parse(getenv(SC_ENV_NOTIFY), &ag.ag_set, err,
	                    sizeof err) < 0) {
		sc_notice(err);
		(void)sv_notify_parse(NULL, &ag.ag_set, err, sizeof err);
	}
	sc_region_set_created_hook(agent_region_created);
	agent_setup_image(false);
	/* After schedctl_self(): the library's own fork handler (which
	 * forgets the parent's region) must run before ours. */
	(void)pthread_atfork(agent_atfork_prepare, NULL, agent_atfork_child);
}

void sv_agent_thread_begin(void)
{
	(void)schedctl_self();
	if (__atomic_load_n(&ag.ag_watch_deferred, __ATOMIC_ACQUIRE) &&
	    __atomic_exchange_n(&ag.ag_watch_deferred, false, __ATOMIC_ACQ_REL) &&
	    ag.ag_conn >= 0 && agent_start_watchdog(ag.ag_conn) == 0)
		agent_release_watchdog(-1);
}
