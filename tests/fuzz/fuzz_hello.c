/*
 * fuzz_hello.c - libFuzzer target for the supervisor's control socket
 * (src/supervisor/conn.c): one message of any length and content, with
 * any of a genuine slot-region memfd (header bytes from the input), a
 * memfd with another name, /dev/null, attached, read by
 * sv_conn_readable exactly as the main loop does.  If the image
 * survives, its region is then read with sv_slot_find.
 *
 * Layout: byte 0 = flags (bit 0: sh_pid := our pid, bit 1: attach the
 * region memfd, bit 2: attach a foreign memfd, bit 3: attach /dev/null,
 * bit 4: sh_nfds := the real count, bit 5: sh_magic := SV_HELLO_MAGIC),
 * byte 1 = message length (mod 64), the message, then the region's
 * first bytes.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "supervisor/sv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

#define HELLO_REGION_MAX 8192u

static int region_fd = -1, foreign_fd = -1, null_fd = -1;

static void hello_init(void)
{
	sv.st_epfd = -1;
	region_fd = memfd_create(SC_REGION_MEMFD_NAME, MFD_CLOEXEC);
	foreign_fd = memfd_create("not-the-region", MFD_CLOEXEC);
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (region_fd < 0 || foreign_fd < 0 || null_fd < 0 ||
	    ftruncate(region_fd, SC_REGION_SIZE) < 0 ||
	    ftruncate(foreign_fd, SC_REGION_SIZE) < 0)
		abort();
}

static void hello_send(int s, const uint8_t *msg, size_t n, const int *fds,
                       int nfds)
{
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof u);
	struct iovec iov = { (void *)msg, n };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (nfds > 0) {
		m.msg_control = u.buf;
		m.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	if (sendmsg(s, &m, MSG_DONTWAIT) < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	if (region_fd < 0)
		hello_init();
	if (len < 2)
		return 0;
	uint8_t flags = data[0];
	size_t n = data[1] % 64;
	data += 2;
	len -= 2;
	if (n > len)
		n = len;
	uint8_t msg[64];
	memset(msg, 0, sizeof msg);
	memcpy(msg, data, n);
	data += n;
	len -= n;
	size_t rn = len < HELLO_REGION_MAX ? len : HELLO_REGION_MAX;
	if (pwrite(region_fd, data, rn, 0) != (ssize_t)rn)
		abort();

	int fds[3], nfds = 0;
	if (flags & 2)
		fds[nfds++] = region_fd;
	if (flags & 4)
		fds[nfds++] = foreign_fd;
	if (flags & 8)
		fds[nfds++] = null_fd;
	struct sv_hello h;
	size_t hn = n < sizeof h ? n : sizeof h;
	memcpy(&h, msg, sizeof h);
	if (flags & 1)
		h.sh_pid = getpid();
	if (flags & 16)
		h.sh_nfds = (uint32_t)nfds;
	if (flags & 32)
		h.sh_magic = SV_HELLO_MAGIC;
	memcpy(msg, &h, hn);

	int sp[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		abort();
	struct sv_image *im = sv_image_new(getpid(), sp[0]);
	if (!im)
		abort();
	hello_send(sp[1], msg, n, fds, nfds);
	sv_conn_readable(im);
	if (sv_image_of(getpid()) == im) {          /* accepted */
		uint32_t hint = 0;
		for (size_t i = 0; i + 4 <= rn && i < 256; i += 4) {
			int32_t tid;
			memcpy(&tid, data + i, 4);
			struct sc_slot *s = sv_slot_find(im, tid, &hint);
			if (s && ((char *)s < im->im_base ||
			          (char *)s >= im->im_base + SC_REGION_SIZE))
				abort();
		}
		sv_image_gone(im);
	}
	close(sp[1]);
	if (sv.st_images)
		abort();                  /* an image leaked on the list */
	static const char zero[HELLO_REGION_MAX];
	if (pwrite(region_fd, zero, rn, 0) != (ssize_t)rn)
		abort();
	return 0;
}
