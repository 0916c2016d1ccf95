/*
 * out.h - a small buffered writer on a file descriptor, for the report
 * writers (no stdio FILE: the same code runs at exit, in the agent
 * thread and in `schedctl report`), and files replaced atomically.
 */
#ifndef SC_PROF_OUT_H
#define SC_PROF_OUT_H

#include <stddef.h>

#include "sc/sc.h"

struct prof_out {
	int o_fd;
	int o_err;          /* first write error (errno), sticky */
	size_t o_n;
	char o_buf[16384];
};

SC_HIDDEN void po_init(struct prof_out *o, int fd);
SC_HIDDEN void po_printf(struct prof_out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
SC_HIDDEN void po_write(struct prof_out *o, const char *s, size_t n);
SC_HIDDEN void po_puts(struct prof_out *o, const char *s);
/* JSON string literal (quotes included) with escapes; NULL -> null. */
SC_HIDDEN void po_json_str(struct prof_out *o, const char *s);
/* XML-escaped text. */
SC_HIDDEN void po_xml(struct prof_out *o, const char *s);
/* => 0 or -errno (the first error seen). */
SC_HIDDEN int po_flush(struct prof_out *o);

/* Write path atomically: open a temporary file next to it
 * (O_EXCL|O_NOFOLLOW), then po_commit renames it over path.  A path that
 * exists and is not a regular file (/dev/null, a FIFO) is written
 * directly.
 * => fd, or -errno. */
struct prof_file { char f_tmp[4200]; const char *f_path; };
SC_HIDDEN int po_open(struct prof_file *pf, const char *path);
/* => 0 or -errno; the temporary is removed on failure. */
SC_HIDDEN int po_commit(struct prof_file *pf, int fd, int err);

#endif /* SC_PROF_OUT_H */
