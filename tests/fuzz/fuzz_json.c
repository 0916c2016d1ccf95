/*
 * fuzz_json.c - libFuzzer target for the saved-profile reader that
 * `schedctl report` runs on files it did not write (src/prof/json_in.c):
 * the generic JSON tree and the schema mapping.  Any input must give a
 * snapshot or one error message; ASan/UBSan turn anything else into a
 * crash report.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "prof/json.h"
#include "prof/render.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	/* An exact-size copy so reads past the end are caught. */
	char *buf = malloc(len ? len : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, len);

	struct jv v;
	char err[200];
	if (prof_jv_parse(buf, len, &v, err, sizeof err) == 0)
		prof_jv_free(&v);
	else if (!err[0] || !memchr(err, 0, sizeof err))
		abort();                          /* failure without a message */

	const char *e = NULL;
	struct prof_snap *s = prof_json_parse(buf, len, &e);
	if (s)
		prof_snap_free(s);
	else if (!e || !e[0])
		abort();
	free(buf);
	return 0;
}
