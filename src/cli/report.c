/*
 * report.c - `schedctl report FILE.json [--svg=FILE] [--sort=KEY] [--top=N]`:
 * re-render a profile saved by `schedctl run --profile-json=FILE` as the
 * text report on stdout, and optionally as an SVG chart.
 *
 * Exit status: 0 done; 1 the file cannot be read or is not a valid
 * profile, or the SVG cannot be written (one line on stderr says which);
 * 2 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "prof/render.h"

#define REPORT_MAX_BYTES (512u << 20)

static void report_help(FILE *f)
{
	fprintf(f, "usage: schedctl report FILE.json [--svg=FILE] "
	           "[--sort=contended|wait|spin|hold] [--top=N]\n\n"
	           "Print a saved lock profile (schedctl run --profile-json=FILE) "
	           "as the text report.\n"
	           "  --svg=FILE   also draw a chart: per lock, spin vs park vs hold time\n"
	           "  --sort=KEY   order of locks and sites (default contended)\n"
	           "  --top=N      locks, and sites per lock, shown (default 10, 0 all)\n"
	           "exit status: 0 done, 1 unreadable or invalid file, 2 usage error\n");
}

/* => the whole file (NUL-terminated), or NULL with a message printed. */
static char *read_all(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		fprintf(stderr, "schedctl: cannot read %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > REPORT_MAX_BYTES) {
		fprintf(stderr, "schedctl: %s: not a regular file of at most %u MiB\n",
		        path, REPORT_MAX_BYTES >> 20);
		close(fd);
		return NULL;
	}
	size_t cap = (size_t)st.st_size + 1, n = 0;
	char *b = malloc(cap);
	while (b && n < cap - 1) {
		ssize_t r = read(fd, b + n, cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "schedctl: cannot read %s: %s\n", path,
			        strerror(errno));
			free(b);
			b = NULL;
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (!b)
		return NULL;
	b[n] = 0;
	*len = n;
	return b;
}

static int write_svg(const char *path, const struct prof_snap *s, int sort, int top)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
	              0644);
	if (fd < 0) {
		fprintf(stderr, "schedctl: cannot write %s: %s\n", path, strerror(errno));
		return CLI_EXIT_FAIL;
	}
	struct prof_out *o = malloc(sizeof *o);
	int err = -ENOMEM;
	if (o) {
		po_init(o, fd);
		prof_render_svg(o, s, sort, top);
		err = po_flush(o);
		free(o);
	}
	if (close(fd) != 0 && !err)
		err = -errno;
	if (err) {
		fprintf(stderr, "schedctl: cannot write %s: %s\n", path, strerror(-err));
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}

int cli_report_main(int argc, char **argv)
{
	const char *file = NULL, *svg = NULL;
	int sort = PROF_SORT_CONTENDED;
	long top = 10;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			report_help(stdout);
			return CLI_EXIT_OK;
		} else if (!strncmp(a, "--svg=", 6) && a[6]) {
			svg = a + 6;
		} else if (!strncmp(a, "--sort=", 7)) {
			if ((sort = prof_sort_parse(a + 7)) < 0)
				return cli_usage_error("--sort must be contended, wait, "
				                       "spin or hold");
		} else if (!strncmp(a, "--top=", 6)) {
			if ((top = cli_parse_count(a + 6, 1000000)) < 0)
				return cli_usage_error("--top needs a count");
		} else if (a[0] == '-' && a[1]) {
			return cli_usage_error("report: unknown option '%s'", a);
		} else if (file) {
			return cli_usage_error("report takes one FILE.json");
		} else {
			file = a;
		}
	}
	if (!file)
		return cli_usage_error("report needs a FILE.json");
	size_t len = 0;
	char *buf = read_all(file, &len);
	if (!buf)
		return CLI_EXIT_FAIL;
	const char *err = NULL;
	struct prof_snap *s = prof_json_parse(buf, len, &err);
	free(buf);
	if (!s) {
		fprintf(stderr, "schedctl: %s: %s\n", file, err);
		return CLI_EXIT_FAIL;
	}
	prof_snap_sort(s, sort);
	int rc = CLI_EXIT_OK;
	struct prof_out *o = malloc(sizeof *o);
	if (o) {
		po_init(o, 1);
		prof_render_text(o, s, sort, (int)top);
		if (po_flush(o) != 0)
			rc = CLI_EXIT_FAIL;
		free(o);
	}
	if (svg && write_svg(svg, s, sort, (int)top) != CLI_EXIT_OK)
		rc = CLI_EXIT_FAIL;
	prof_snap_free(s);
	return rc;
}
