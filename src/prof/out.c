/*
 * out.c - buffered writes to a file descriptor; atomic file replacement.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "prof/out.h"

void po_init(struct prof_out *o, int fd)
{
	o->o_fd = fd;
	o->o_err = 0;
	o->o_n = 0;
}

static void po_drain(struct prof_out *o)
{
	size_t off = 0;
	while (off < o->o_n && !o->o_err) {
		ssize_t r = write(o->o_fd, o->o_buf + off, o->o_n - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			o->o_err = r < 0 ? errno : EIO;
		else
			off += (size_t)r;
	}
	o->o_n = 0;
}

void po_write(struct prof_out *o, const char *s, size_t n)
{
	while (n) {
		if (o->o_n == sizeof o->o_buf)
			po_drain(o);
		size_t k = sizeof o->o_buf - o->o_n;
		if (k > n)
			k = n;
		memcpy(o->o_buf + o->o_n, s, k);
		o->o_n += k;
		s += k;
		n -= k;
	}
}

void po_puts(struct prof_out *o, const char *s)
{
	po_write(o, s, strlen(s));
}

void po_printf(struct prof_out *o, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	po_write(o, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

void po_json_str(struct prof_out *o, const char *s)
{
	if (!s) {
		po_puts(o, "null");
		return;
	}
	po_write(o, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\') {
			char e[2] = { '\\', (char)*p };
			po_write(o, e, 2);
		} else if (*p < 0x20 || *p == 0x7f) {
			po_printf(o, "\\u%04x", *p);
		} else {
			po_write(o, (const char *)p, 1);
		}
	}
	po_write(o, "\"", 1);
}

void po_xml(struct prof_out *o, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<': po_puts(o, "&lt;"); break;
		case '>': po_puts(o, "&gt;"); break;
		case '&': po_puts(o, "&amp;"); break;
		case '"': po_puts(o, "&quot;"); break;
		default:
			if ((unsigned char)*s >= 0x20)
				po_write(o, s, 1);
		}
	}
}

int po_flush(struct prof_out *o)
{
	po_drain(o);
	return o->o_err ? -o->o_err : 0;
}

int po_open(struct prof_file *pf, const char *path)
{
	pf->f_path = path;
	pf->f_tmp[0] = 0;
	/* Not a regular file (/dev/null, a FIFO, a terminal): write to it
	 * directly; renaming over it would replace the device. */
	struct stat st;
	if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
		int fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
		return fd < 0 ? -errno : fd;
	}
	int n = snprintf(pf->f_tmp, sizeof pf->f_tmp, "%s.tmp.%d", path,
	                 (int)getpid());
	if (n < 0 || (size_t)n >= sizeof pf->f_tmp)
		return -ENAMETOOLONG;
	(void)unlink(pf->f_tmp);
	int fd = open(pf->f_tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	              O_CLOEXEC, 0644);
	return fd < 0 ? -errno : fd;
}

int po_commit(struct prof_file *pf, int fd, int err)
{
	if (close(fd) != 0 && !err)
		err = -errno;
	if (!pf->f_tmp[0])
		return err;
	if (!err && rename(pf->f_tmp, pf->f_path) != 0)
		err = -errno;
	if (err)
		(void)unlink(pf->f_tmp);
	return err;
}
