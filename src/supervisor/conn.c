/*
 * conn.c - the control socket: each process image of the program
 * connects once and introduces itself with one struct sv_hello carrying
 * its seccomp listener and its slot region (proto.h).
 *
 * Checks, because anyone who knows the abstract name can connect:
 *   - the peer's uid (SO_PEERCRED) is ours;
 *   - the peer's process is traced by us (TracerPid), so it is part of
 *     the supervised program and not a bystander;
 *   - the hello's pid is the peer's pid; the descriptors are what they
 *     claim (a seccomp listener, a memfd at least the region's size).
 * A peer failing a check is dropped; the program is never affected.
 *
 * The socket staying open is the image's life: it is close-on-exec in
 * the program, so exec and exit both show as a hang-up here.
 *
 * A hello with a listener comes from the first image only (the kernel
 * allows one live listener per filter chain, agent.c): it starts the
 * listener's notify thread and its backstop (backstop.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "supervisor/sv.h"

void sv_conn_accept(void)
{
	int c = accept4(sv.st_listen, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (c < 0)
		return;
	struct ucred cr;
	socklen_t len = sizeof cr;
	if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 ||
	    cr.uid != getuid() || sc_status_field(cr.pid, "TracerPid") != getpid()) {
		close(c);
		return;
	}
	struct sv_image *im = sv_image_new(cr.pid, c);
	if (!im) {
		close(c);
		return;
	}
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP,
	                          .data.u64 = (uint64_t)(uintptr_t)im };
	if (epoll_ctl(sv.st_epfd, EPOLL_CTL_ADD, c, &ev) < 0)
		sv_image_gone(im);
}

static bool conn_fd_is(int fd, const char *prefix)
{
	char path[64], link[128];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, link, sizeof link - 1);
	if (n < 0)
		return false;
	link[n] = 0;
	return strncmp(link, prefix, strlen(prefix)) == 0;
}

/* => the hello's descriptors are checked and taken over (or closed). */
static void conn_hello(struct sv_image *im, const struct sv_hello *h,
                       const int *fds, int nfds)
{
	int listener = -1, region = -1, i = 0;
	if ((h->sh_flags & SV_HELLO_LISTENER) && i < nfds)
		listener = fds[i++];
	if ((h->sh_flags & SV_HELLO_REGION) && i < nfds)
		region = fds[i++];
	for (; i < nfds; i++)
		close(fds[i]);
	if (listener >= 0 && !conn_fd_is(listener, "anon_inode:seccomp notify")) {
		close(listener);
		listener = -1;
	}
	if (region >= 0) {
		struct stat st;
		if (!conn_fd_is(region, "/memfd:" SC_REGION_MEMFD_NAME) ||
		    fstat(region, &st) < 0 || (size_t)st.st_size < SC_REGION_SIZE ||
		    sv_image_map(im, region) < 0)
			sv_log("pid %d: unusable slot region; states not tracked",
			       (int)im->im_pid);
		close(region);
	}
	if (im->im_base) {
		/* Wakes an image that waits for this before its first
		 * notified call (agent.c): from now on notify.c finds its
		 * threads' slots. */
		uint32_t *f = &((struct sc_region_hdr *)im->im_base)->rh_flags;
		__atomic_or_fetch(f, SC_RH_SUPERVISED, __ATOMIC_RELEASE);
		(void)syscall(SYS_futex, f, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
	}
	if (listener >= 0) {
		im->im_listener = listener;
		if (h->sh_first_id && im->im_base)
			__atomic_store_n(&((struct sc_region_hdr *)im->im_base)->rh_notif_id,
			                 h->sh_first_id, __ATOMIC_RELAXED);
		if (sv_backstop_start(listener, im->im_base) < 0)
			sv_log("pid %d: cannot start the backstop; if the supervisor "
			       "dies, notified calls fail", (int)im->im_pid);
		if (sv_notify_start(im) < 0)
			sv_log("pid %d: cannot start a notification thread",
			       (int)im->im_pid);
	}
}

void sv_conn_readable(struct sv_image *im)
{
	struct sv_hello h;
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { &h, sizeof h };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
	                    .msg_control = u.buf, .msg_controllen = sizeof u.buf };
	ssize_t n = recvmsg(im->im_conn, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	int fds[4], nfds = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int j = 0; j < k && nfds < 4; j++)
			memcpy(&fds[nfds++], CMSG_DATA(c) + j * sizeof(int), sizeof(int));
	}
	if (n <= 0) {                    /* exec or exit: the image is over */
		for (int j = 0; j < nfds; j++)
			close(fds[j]);
		sv_image_gone(im);
		return;
	}
	bool ok = n == sizeof h && h.sh_magic == SV_HELLO_MAGIC &&
	          h.sh_pid == im->im_pid && h.sh_nfds == (uint32_t)nfds &&
	          !(m.msg_flags & MSG_CTRUNC) && im->im_listener < 0 &&
	          !im->im_base;
	if (!ok) {
		for (int j = 0; j < nfds; j++)
			close(fds[j]);
		sv_log("pid %d: bad hello; dropping its connection", (int)im->im_pid);
		sv_image_gone(im);
		return;
	}
	conn_hello(im, &h, fds, nfds);
}
