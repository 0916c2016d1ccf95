/*
 * loop.c - the supervisor's event loop (main thread).
 *
 * One epoll set, one handler per event kind:
 *   control socket readable   sv_conn_accept()      (conn.c)
 *   an image's socket          sv_conn_readable()    (conn.c)
 *   SIGCHLD (signalfd)         sv_trace_reap()       (trace.c)
 *   sampler timer              sv_sample_tick()      (sample.c)
 *   notify-thread requests     sv_notify_requests()  (notify.c)
 * Notifications themselves never pass through here: each listener has
 * its own thread (notify.c), so a notified system call costs one
 * wake-up of that thread and no epoll round.
 *
 * The loop ends when waitpid reports no tracee left: the program and
 * every descendant are gone.
 *
 * epoll data: a small tag in the low bits of a pointer-sized value
 * (images are 8-byte aligned).
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "supervisor/sv.h"

struct sv_state sv;

enum { EV_LISTEN = 1, EV_SIGCHLD, EV_TIMER, EV_REQUEST };

void sv_log(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	int n = snprintf(buf, sizeof buf, "schedctl: supervisor: ");
	n += vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof buf - 2)
		n = (int)sizeof buf - 2;
	buf[n++] = '\n';
	(void)!write(STDERR_FILENO, buf, (size_t)n);
}

static void loop_add(int fd, uint64_t tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = tag };
	if (epoll_ctl(sv.st_epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		sv_log("epoll: %s", strerror(errno));
		exit(1);
	}
}

static void loop_setup(int listen_fd, pid_t root)
{
	sv.st_root = root;
	sv.st_listen = listen_fd;
	sv.st_interval_ns = 5000000;
	sv.st_epfd = epoll_create1(EPOLL_CLOEXEC);

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	sv.st_sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	sv.st_timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	sv.st_eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sv.st_epfd < 0 || sv.st_sigfd < 0 || sv.st_timerfd < 0 ||
	    sv.st_eventfd < 0) {
		sv_log("setup: %s", strerror(errno));
		exit(1);
	}
	/* /proc files stay open per thread: lift the descriptor limit. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	sv_sigbus_guard();
	loop_add(listen_fd, EV_LISTEN);
	loop_add(sv.st_sigfd, EV_SIGCHLD);
	loop_add(sv.st_timerfd, EV_TIMER);
	loop_add(sv.st_eventfd, EV_REQUEST);
}

static void loop_arm_timer(void)
{
	struct itimerspec it = { 0 };
	it.it_value.tv_sec = (time_t)(sv.st_interval_ns / 1000000000ull);
	it.it_value.tv_nsec = (long)(sv.st_interval_ns % 1000000000ull);
	(void)timerfd_settime(sv.st_timerfd, 0, &it, NULL);
}

static void loop_drain(int fd)
{
	char buf[256];
	while (read(fd, buf, sizeof buf) > 0)
		;
}

void sv_main(int listen_fd, pid_t root)
{
	loop_setup(listen_fd, root);
	loop_arm_timer();
	sv_trace_reap();     /* events that came before the signalfd */
	for (;;) {
		struct epoll_event ev[32];
		int n = epoll_wait(sv.st_epfd, ev, 32, -1);
		if (n < 0 && errno != EINTR) {
			sv_log("epoll_wait: %s", strerror(errno));
			exit(1);
		}
		for (int i = 0; i < n; i++) {
			uint64_t tag = ev[i].data.u64;
			switch (tag) {
			case EV_LISTEN:
				sv_conn_accept();
				break;
			case EV_SIGCHLD:
				loop_drain(sv.st_sigfd);
				sv_trace_reap();
				break;
			case EV_TIMER:
				loop_drain(sv.st_timerfd);
				sv_sample_tick();
				loop_arm_timer();
				break;
			case EV_REQUEST:
				loop_drain(sv.st_eventfd);
				sv_notify_requests();
				break;
			default:
				sv_conn_readable((struct sv_image *)(uintptr_t)tag);
				break;
			}
		}
	}
}
