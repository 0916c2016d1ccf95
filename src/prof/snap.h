/*
 * snap.h - a profile as plain data: what the text report, the JSON
 * writer and the SVG chart render, built either from the live records
 * (snap.c) or from a saved JSON file (json_in.c).  Everything in it is
 * malloc'ed and owned by the snapshot (prof_snap_free).
 */
#ifndef SC_PROF_SNAP_H
#define SC_PROF_SNAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prof/prof_int.h"

struct prof_sblocker {
	int32_t b_tid;              /* last holder tid seen there */
	struct prof_frame b_site;   /* the holder's acquiring call site */
	uint64_t b_n;               /* contended acquisitions it blocked */
};

struct prof_sstack {
	uint64_t k_samples;
	size_t k_n;
	struct prof_frame *k_frames;
};

struct prof_ssite {
	struct prof_frame s_where;  /* the call site (its pc symbolised) */
	bool s_overflow;            /* acquisitions over the site cap */
	struct prof_counts s_c;
	size_t s_nstacks;
	struct prof_sstack *s_stacks;
	uint64_t s_stacks_other;    /* samples of stacks beyond the kept ones */
	size_t s_nblk;
	struct prof_sblocker *s_blk;
	uint64_t s_blk_other;       /* blocked by an unknown or other site */
};

struct prof_slock {
	uint64_t l_addr;
	char *l_name;               /* "symbol[+off]" of a global lock, or NULL */
	bool l_overflow;            /* locks over the lock cap */
	struct prof_counts l_c;     /* sum of its sites */
	size_t l_nsites;
	struct prof_ssite *l_sites;
};

struct prof_snap {
	int version;
	int32_t pid;
	char comm[64];
	char policy[32];
	bool final;                 /* at exit (else a live dump) */
	bool spin_measured;         /* the policy spins: spin columns real */
	uint64_t duration_ns;
	uint64_t lock_overflow, site_overflow, stack_overflow;
	uint64_t thread_overflow, untracked;
	uint64_t runtime_acq;       /* acquisitions by the runtime's own
	                               libraries (libunwind...), not shown */
	uint64_t max_locks, max_sites;
	size_t nlocks;
	struct prof_slock *locks;
};

enum prof_sort { PROF_SORT_CONTENDED, PROF_SORT_WAIT, PROF_SORT_SPIN,
                 PROF_SORT_HOLD };

/* "contended" -> PROF_SORT_CONTENDED ...; -1 if unknown. */
SC_HIDDEN int prof_sort_parse(const char *s);
SC_HIDDEN const char *prof_sort_name(int key);

/* Live records -> snapshot (symbolised).  NULL on ENOMEM. */
SC_HIDDEN struct prof_snap *prof_snap_take(bool final);
SC_HIDDEN void prof_snap_free(struct prof_snap *s);
/* Lock totals from their sites (the parser uses it too). */
SC_HIDDEN void prof_counts_add(struct prof_counts *dst,
                               const struct prof_counts *src);
/* Sort locks, and the sites of each lock, by key (descending). */
SC_HIDDEN void prof_snap_sort(struct prof_snap *s, int key);
/* Mean of the timed holds; total estimated for all acquisitions (exact
 * when every hold was timed). */
SC_HIDDEN uint64_t prof_hold_mean(const struct prof_counts *c);
SC_HIDDEN uint64_t prof_hold_total(const struct prof_counts *c);
SC_HIDDEN uint64_t prof_sort_value(const struct prof_counts *c, int key);

#endif /* SC_PROF_SNAP_H */
