/*
 * pager.h - internals of the userfaultfd pager (UVM's upper layer).
 *
 * Layering, after NetBSD UVM (one subsystem per file, each with its own
 * prefix):
 *
 *   api.c     uvm_*     public entry points: argument checks, errno
 *   region.c  rg_*      a managed region: its address range, its amap
 *                       reference, and the kernel mappings backing it
 *   fault.c   flt_*     the pager thread and UVM's fault cases
 *   bus.c     bus_*     a fault that cannot be served: SIGBUS
 *   loan.c    loan_*    page loans: read-only views, loans into regions
 *   object.c  obj_*     the lower layer: pages of a backing store
 *   amap.c    amap_*    arrays of anon slots with per-page references
 *   anon.c    anon_*    reference-counted pages
 *   pool.c    pool_*    the memfd page pool and mmap-backed allocators
 *   fork.c    fork_*    pthread_atfork handling
 *
 * Physical model.  Every anon is one page of a memfd (the pool), named
 * by a pool address (file, page number).  A region's page i is a
 * MAP_SHARED mapping of the pool page rg_map[i]; adjacent pages whose
 * pool addresses are consecutive share one kernel mapping (VMA).  Two
 * regions that map the same pool page share it physically; the kernel
 * serves read faults on such pages itself, and userfaultfd write-protect
 * faults tell the pager when a shared page is about to be written.
 *
 * Locking.  One mutex, uvm_lock, protects every region, amap, anon and
 * the pool.  There is a single pager thread, so fault service is serial
 * anyway; the lock orders it against the API calls.  Lock order:
 *
 *       uvm_lock  =>  (nothing of ours; a caller's store may take its
 *                      own locks in pgo_get/pgo_put, object.c)
 *
 * Rules that keep the faulting threads and the pager apart:
 *   - Nothing holding uvm_lock touches managed memory: page data moves
 *     through the pool's file descriptors, never through a region.  A
 *     thread holding uvm_lock therefore never waits for the pager.
 *   - The library never calls malloc or stdio (a faulting thread may hold
 *     their locks); all memory comes from mmap (pool.c).
 *   - Operations that may fault on managed memory from the kernel
 *     (mlock's populate) run after uvm_lock is dropped.
 */
#ifndef SCHEDCTL_PAGER_H
#define SCHEDCTL_PAGER_H

#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schedctl/uvm.h"

#define PG_SHIFT 12
#define PG_SIZE  ((size_t)1 << PG_SHIFT)

/* Largest region, in pages (64 GiB).  The pager keeps per page 8 bytes
 * of rg_map, 1 of rg_wired and 8 of amap slot (4 more of ppref after a
 * partial release of a shared amap): 1/240 of the region. */
#define UVM_MAXPAGES ((size_t)1 << 24)

/* ---- pool.c ------------------------------------------------------- */

/* A pool address: file index in the top 16 bits, page number below. */
typedef uint64_t pool_addr_t;
#define PA_SHIFT      48
#define PA_MAKE(f, p) (((uint64_t)(f) << PA_SHIFT) | (p))
#define PA_FILE(a)    ((unsigned)((a) >> PA_SHIFT))
#define PA_PGNO(a)    ((a) & (((uint64_t)1 << PA_SHIFT) - 1))
#define PA_NONE       UINT64_MAX          /* released: not accessible */
#define PA_POISON     (UINT64_MAX - 1)    /* poisoned: SIGBUS on access */
#define PA_REAL(a)    ((a) < PA_POISON)

#define POOL_MAXFILES 64

struct pool_file {
	int pf_fd;             /* memfd, -1 if the slot is unused */
	uint64_t pf_next;      /* next page number never handed out */
	uint64_t pf_size;      /* pages in the file */
	uint64_t pf_frozen;    /* pages below this may be mapped by another
	                          process (fork): never written in place,
	                          never punched */
	uint64_t pf_floor;     /* pf_frozen never drops below this: all of an
	                          inherited file, in a fork child */
};

struct pool_range {
	pool_addr_t pr_addr;   /* first page */
	uint64_t pr_n;         /* pages */
};

struct pool {
	struct pool_file p_files[POOL_MAXFILES];
	struct pool_range *p_deferred;  /* freed while frozen: punch when
	                                   thawed */
	size_t p_ndeferred, p_capdeferred;
	struct pool_range p_punch;     /* freed pages of one file not punched
	                                  yet (pr_n 0: none); empty whenever
	                                  uvm_lock is free (uvm_unlock) */
	unsigned p_cur;        /* file new windows come from */
	unsigned p_nfiles;
	int p_poison_fd;       /* empty memfd: mapping it raises SIGBUS */
	uint64_t p_pages;      /* pool pages held by live anons */
};

int pool_init(void);                     /* => -errno */
void pool_fini(void);
pool_addr_t pool_window(size_t npages);  /* PA_NONE if out of space */
int pool_newfile(void);                  /* fork child: => -errno */
int pool_fd(pool_addr_t a);
bool pool_frozen(pool_addr_t a);
int pool_copy(pool_addr_t dst, pool_addr_t src);  /* => -errno */
int pool_read(pool_addr_t a, void *buf, size_t n);
int pool_write(pool_addr_t a, const void *buf, size_t n);
bool pool_present(pool_addr_t a);
uint32_t pool_present_map(pool_addr_t a, size_t n);
void pool_take(pool_addr_t a);
void pool_free_page(pool_addr_t a);
void pool_flush(void);
void pool_discard(pool_addr_t a, size_t n);
void pool_thaw(const uint64_t *frozen);

/* mmap-backed memory: safe on the fault path (no malloc). */
void *pool_mem_alloc(size_t bytes);           /* zeroed; NULL on failure */
void pool_mem_free(void *p, size_t bytes);

struct pool_slab {
	size_t sl_size;        /* object size */
	void *sl_free;         /* free list, linked through the objects */
};
void *pool_slab_alloc(struct pool_slab *s);        /* zeroed; NULL on failure */
void pool_slab_free(struct pool_slab *s, void *p);

/* (fork.c) A fork child that may still map pages of this process: its end of
 * fl_fd closes when it (and every process it forked before exec) has
 * exec'd or exited. */
#define FORK_MAXLEASES 32
struct fork_lease {
	int fl_fd;                          /* read end, -1 if unused */
	uint64_t fl_frozen[POOL_MAXFILES];  /* pf_next of each file at fork */
};

/* ---- anon.c ------------------------------------------------------- */

struct vm_anon {
	uint32_t an_ref;       /* amap slots holding this anon */
	uint32_t an_pad;
	pool_addr_t an_addr;   /* the page */
};

struct vm_anon *anon_alloc(pool_addr_t a);
void anon_ref(struct vm_anon *an);
void anon_unref(struct vm_anon *an);
void anon_forget(struct vm_anon *an);
bool anon_exclusive(const struct vm_anon *an);

/* ---- amap.c ------------------------------------------------------- */

struct vm_amap {
	uint32_t am_ref;       /* regions referencing the amap */
	uint32_t am_pad;
	size_t am_nslot;
	size_t am_nused;       /* non-empty slots */
	struct vm_anon **am_anon;
	int32_t *am_ppref;     /* per-slot references, NULL while every
	                          slot has am_ref of them */
};

struct vm_amap *amap_alloc(size_t nslot);
struct vm_anon *amap_lookup(const struct vm_amap *am, size_t slot);
void amap_add(struct vm_amap *am, size_t slot, struct vm_anon *an);
struct vm_anon *amap_remove(struct vm_amap *am, size_t slot);
void amap_ref(struct vm_amap *am, const pool_addr_t *map, size_t n);
void amap_unref(struct vm_amap *am, const pool_addr_t *map, size_t n);
int amap_unref_range(struct vm_amap *am, size_t slot, size_t n);
struct vm_amap *amap_copy(struct vm_amap *am, const pool_addr_t *map,
                          size_t n);
bool amap_slot_shared(const struct vm_amap *am, size_t slot);

/* ---- object.c ----------------------------------------------------- */

struct vm_object {
	uint32_t uo_ref;           /* regions referencing the object */
	bool uo_shared;            /* some region writes it in place */
	bool uo_forked;            /* it existed at a fork: the other process
	                              may fill uo_win too (object.c, 4) */
	const struct uvm_pagerops *uo_ops;
	void *uo_cookie;
	size_t uo_npages;
	pool_addr_t uo_win;        /* page k is cached at uo_win+k at first */
	struct vm_anon **uo_anon;  /* per page: cached page, NULL if absent */
	uint8_t *uo_dirty;         /* per page: written since the last flush */
};

struct vm_object *obj_alloc(const struct uvm_pagerops *ops, void *cookie,
                            size_t npages, bool shared);
void obj_ref(struct vm_object *o);
void obj_unref(struct vm_object *o);
struct vm_anon *obj_getpage(struct vm_object *o, size_t pg, int *err);
struct vm_anon *obj_adopt(struct vm_object *o, size_t pg);
int obj_flush(struct vm_object *o);
int obj_break(struct vm_object *o, size_t pg);
int obj_file_ops(int fd, off_t off, const struct uvm_pagerops **ops,
                 void **cookie);

/* ---- loan.c ------------------------------------------------------- */

struct uvm_loan;
struct uvm_loan *loan_view(struct uvm_region *r, size_t first, size_t n);
int loan_end(struct uvm_loan *l);
bool loan_valid(const struct uvm_loan *l);
int loan_into(struct uvm_region *dst, size_t d, struct uvm_region *src,
              size_t s, size_t n);

/* ---- region.c ----------------------------------------------------- */

struct uvm_region {
	uintptr_t rg_base;
	size_t rg_npages;
	int rg_prot;
	int rg_advice;
	struct vm_amap *rg_amap;   /* NULL until the first anon */
	bool rg_needs_copy;        /* rg_amap is shared: copy before writing */
	pool_addr_t *rg_map;       /* per page: pool page mapped there */
	uint8_t *rg_wired;         /* per page: mlocked */
	uint8_t *rg_wp;            /* per page: known write-protected (a
	                              cleared entry only means "maybe not";
	                              lets loans skip protecting again) */
	pool_addr_t rg_cowwin;     /* window for COW copies, PA_NONE if none */
	size_t rg_runs;            /* kernel mappings backing the region */
	struct vm_object *rg_obj;  /* lower layer: page i is object page i;
	                              NULL for an anonymous region */
	bool rg_shared;            /* UVM_MAP_SHARED: writes go to rg_obj */
	struct uvm_stats rg_st;
};

/* Is page i mapping its object's cached page (cases 2A)? */
static inline bool rg_objmapped(const struct uvm_region *r, size_t i)
{
	const struct vm_object *o = r->rg_obj;
	return o && o->uo_anon[i] && r->rg_map[i] == o->uo_anon[i]->an_addr;
}

/* Is page i mapping its object page, cached or not yet (uo_win+i)? */
static inline bool rg_objpage(const struct uvm_region *r, size_t i)
{
	const struct vm_object *o = r->rg_obj;
	return o && (rg_objmapped(r, i) ||
	             (!o->uo_anon[i] && r->rg_map[i] == o->uo_win + i));
}

struct uvm_pager {
	pthread_mutex_t up_lock;
	int up_uffd;
	int up_kick_fd;            /* eventfd: wakes the pager (new lease) */
	bool up_user_only;         /* UFFD_USER_MODE_ONLY was needed */
	bool up_poison_ioctl;      /* UFFDIO_POISON available */
	bool up_thread_id;         /* messages carry the thread id */
	uint64_t up_bus_signals;   /* failed faults given as a signal, */
	uint64_t up_bus_poisons;   /* as a poisoned page (bus.c; uvm_lock;
	                              tests read them) */
	bool up_started;
	pthread_t up_thread;
	struct uvm_region **up_regions;  /* sorted by base */
	size_t up_nregions, up_capregions;
	size_t up_runs;            /* sum of rg_runs */
	size_t up_maxruns;         /* collapse beyond this (max_map_count) */
	size_t up_runs_base;       /* per-region allowance (tests lower it);
	                              read with relaxed atomics */
	int up_inject_fail;        /* tests: fail this many anon_alloc()s;
	                              relaxed atomics, it orders nothing */
	/* tests: called between mmap and UFFDIO_REGISTER (region.c);
	 * loaded with acquire, pairs with the test's store */
	void (*up_test_window)(uintptr_t va, size_t len);
	struct pool up_pool;
	struct uvm_loan **up_loans;      /* live loans (loan.c) */
	size_t up_nloans, up_caploans;
	struct fork_lease up_leases[FORK_MAXLEASES];
	int up_nleases;            /* atomic: stored with release under
	                              uvm_lock, loaded with acquire by the
	                              pager to build its poll set (fork.c) */
};

extern struct uvm_pager uvm_pager;

/* Drop uvm_lock.  Every unlock goes through here: freed pages are punched
 * in runs (pool.c), and the run must be gone before another thread can
 * fault on, map or look for holes in the pool (region.c, invariant 3).
 * => uvm_lock held; released on return. */
static inline void uvm_unlock(void)
{
	pool_flush();
	pthread_mutex_unlock(&uvm_pager.up_lock);
}

struct uvm_region *rg_create(size_t npages, int prot, pool_addr_t w);
struct uvm_region *rg_copy(struct uvm_region *src);
int rg_destroy(struct uvm_region *r);
int rg_release(struct uvm_region *r, size_t first, size_t n);
struct uvm_region *rg_lookup(uintptr_t va);
bool rg_valid(const struct uvm_region *r);
int rg_prepare_amap(struct uvm_region *r);
int rg_remap(struct uvm_region *r, size_t first, size_t n);
void rg_setmap(struct uvm_region *r, size_t i, pool_addr_t a);
int rg_setpage(struct uvm_region *r, size_t i, pool_addr_t a);
int rg_poison_pages(struct uvm_region *r, size_t first, size_t n);
int rg_collapse(struct uvm_region *r);
void rg_maybe_collapse(struct uvm_region *r);
int rg_protect_all(struct uvm_region *r, bool wp);
int rg_protect(struct uvm_region *r, size_t first, size_t n);
void rg_set_wp(struct uvm_region *r, size_t first, size_t n, bool wp);
int rg_register_all(struct uvm_region *r);
size_t rg_run_end(const struct uvm_region *r, size_t i);

/* ---- fault.c ------------------------------------------------------ */

int flt_init(void);                      /* uffd + pager thread */
int flt_start(void);
int flt_zerofill(struct uvm_region *r, size_t i, size_t lo, size_t hi);
int flt_objfill(struct uvm_region *r, size_t i, size_t lo, size_t hi);
int flt_register(uintptr_t va, size_t len);
int flt_wp(uintptr_t va, size_t len, bool wp);
void flt_wake(uintptr_t va, size_t len);

/* ---- bus.c -------------------------------------------------------- */

void bus_fault(struct uvm_region *r, size_t i, bool missing, uint32_t tid);

/* ---- fork.c ------------------------------------------------------- */

int fork_init(void);
int fork_poll_fds(struct pollfd *pfd, int max);
void fork_lease_check(const struct pollfd *pfd, int n);

#endif /* SCHEDCTL_PAGER_H */
