/*
 * json.h - the generic JSON tree behind json_in.c, also used by the tests
 * to read traces.  Input is untrusted: bounded nesting (32), numbers
 * checked, strings unescaped (\\u0000 and lone surrogates become '?').
 */
#ifndef SC_PROF_JSON_H
#define SC_PROF_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sc/sc.h"

enum jv_type { JV_NULL, JV_BOOL, JV_NUM, JV_STR, JV_ARR, JV_OBJ };

struct jv {
	enum jv_type t;
	bool b;
	bool num_ok;            /* a non-negative integer fitting uint64 */
	uint64_t u;
	double d;               /* any number (approximate) */
	char *s;                /* JV_STR (NUL-terminated, no embedded NUL) */
	size_t n;               /* JV_ARR, JV_OBJ: items */
	struct jv *v;           /* items */
	char **k;               /* JV_OBJ keys */
};

/* => 0 and *out filled (free with prof_jv_free), or -1 and a one-line
 *    message in err. */
SC_HIDDEN int prof_jv_parse(const char *buf, size_t len, struct jv *out,
                            char *err, size_t errlen);
SC_HIDDEN void prof_jv_free(struct jv *v);
/* Member k of object o, NULL if o is not an object or has none. */
SC_HIDDEN const struct jv *prof_jv_get(const struct jv *o, const char *k);

#endif
