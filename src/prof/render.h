/*
 * render.h - the renderers of a snapshot (text.c, json_out.c, svg.c)
 * and the JSON parser (json_in.c).
 */
#ifndef SC_PROF_RENDER_H
#define SC_PROF_RENDER_H

#include "prof/out.h"
#include "prof/snap.h"

/* top <= 0: everything. */
SC_HIDDEN void prof_render_text(struct prof_out *o, const struct prof_snap *s,
                                int sort, int top);
SC_HIDDEN void prof_render_json(struct prof_out *o, const struct prof_snap *s);
SC_HIDDEN void prof_render_svg(struct prof_out *o, const struct prof_snap *s,
                               int sort, int top);
/* "123ns", "4.5us", "6.7ms", "8.90s" into b. */
SC_HIDDEN const char *prof_fmt_ns(char *b, size_t n, uint64_t ns);
SC_HIDDEN void prof_frame_name(const struct prof_frame *f, char *b, size_t n);

/* Parse a profile saved by prof_render_json.  buf need not be
 * NUL-terminated.  => a snapshot, or NULL with *err set to a one-line
 * message (static storage). */
SC_HIDDEN struct prof_snap *prof_json_parse(const char *buf, size_t len,
                                            const char **err);

#endif /* SC_PROF_RENDER_H */
