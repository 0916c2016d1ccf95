/*
 * schedctl/uvm.h - managed anonymous memory with copy-on-write copies.
 *
 * A managed region is anonymous memory whose pages are served by the
 * libschedctl pager (a userfaultfd thread) after NetBSD UVM's upper
 * layer: every page is an anon (a reference-counted page of a shared
 * memory pool), a region's anons hang off an amap, and uvm_copy() makes
 * a copy-on-write copy that shares every page with its source until one
 * side writes it.  Reading a copy allocates no memory.
 *
 * Semantics, in short (docs/pager.md has the details):
 *   - New regions read as zeros and are populated lazily, on first touch.
 *   - After uvm_copy() each side sees exactly what fork() would show:
 *     the copy holds the source's contents at the time of the call and
 *     later writes stay on their side.
 *   - fork() of the process: the child sees every region's contents and
 *     writes stay on their side, as for ordinary private memory.
 *   - A page the pager cannot serve (pool exhausted, kernel refused a
 *     mapping) raises SIGBUS in the faulting thread; it never hangs.
 *   - Concurrency: all functions are thread-safe, but not
 *     async-signal-safe.  Destroying or unmapping memory another thread
 *     still uses is the caller's bug, as with munmap(): that thread gets
 *     SIGSEGV, the library stays sound.  Do not munmap(), mremap(),
 *     mprotect() or mmap(MAP_FIXED) a region's memory yourself: the
 *     pager owns its mappings and their protection.  Of madvise(), only
 *     hints are safe: MADV_DONTNEED does not zero a region's pages, and
 *     MADV_REMOVE would free pages that copies share.
 *
 * Errors: functions returning int give 0, or -1 with errno set; those
 * returning pointers give NULL with errno set.  EINVAL: NULL region,
 * unaligned or out-of-range offset/length, unknown prot or advice.
 * ENOMEM: no memory or no address space.  ENOSYS/EPERM: the kernel
 * refuses userfaultfd (see docs/pager.md, "Requirements").
 */
#ifndef SCHEDCTL_UVM_H
#define SCHEDCTL_UVM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define UVM_API __attribute__((visibility("default")))
#else
#define UVM_API
#endif

struct uvm_region;

/* Advice for uvm_advise(): how many neighbours a fault brings in,
 * after UVM's advice table (NORMAL 3 behind and 4 ahead, RANDOM none,
 * SEQUENTIAL 7 ahead). */
#define UVM_ADV_NORMAL      0
#define UVM_ADV_RANDOM      1
#define UVM_ADV_SEQUENTIAL  2

/* Counters of one region, from uvm_stats(). */
struct uvm_stats {
	/* Faults the pager served in this region, by UVM case. */
	uint64_t us_fault_1a;    /* write to an anon only this region holds:
	                            made writable in place */
	uint64_t us_fault_1b;    /* write to a shared anon: copied (COW) */
	uint64_t us_fault_2a;    /* object page mapped (read), or written in
	                            place in a UVM_MAP_SHARED region */
	uint64_t us_fault_2b;    /* object page promoted to an anon (first
	                            write to a UVM_MAP_PRIVATE page) */
	uint64_t us_fault_zero;  /* first touch: zero-filled anon */
	uint64_t us_fault_around;/* extra pages served by fault-around (zero
	                            fill, or COW ahead under SEQUENTIAL) */
	uint64_t us_copies;      /* uvm_copy() calls with this region as source */
	uint64_t us_collapses;   /* times the region's mappings were collapsed
	                            to bound the kernel's mapping count */
	/* State now. */
	uint64_t us_anons;       /* pages of the region backed by an anon */
	uint64_t us_shared;      /* ... of which the anon is shared (COW) */
	uint64_t us_maps;        /* kernel mappings (VMAs) backing the region */
	uint64_t us_pool_pages;  /* pool pages allocated, whole process */
};

/* A new region of len bytes (a multiple of the page size, > 0, at most
 * 64 GiB), zero filled and populated lazily.  prot: PROT_NONE or an OR of PROT_READ,
 * PROT_WRITE, PROT_EXEC.  NULL with errno (EINVAL, ENOMEM, ENOSYS,
 * EPERM). */
UVM_API struct uvm_region *uvm_map_anon(size_t len, int prot);

/* A copy-on-write copy of the whole of src, at a new address, with the
 * same size, protection, advice and released ranges (released ranges
 * stay inaccessible in the copy).  Wired ranges are not inherited, as
 * with mlock() and fork().  NULL with errno (EINVAL, ENOMEM). */
UVM_API struct uvm_region *uvm_copy(struct uvm_region *src);

/* Start address and size of the region; NULL / 0 for a NULL region. */
UVM_API void *uvm_base(const struct uvm_region *r);
UVM_API size_t uvm_size(const struct uvm_region *r);

/* Release [off, off+len) (page aligned, inside the region, len > 0):
 * its pages are freed once no copy shares them and the range becomes
 * inaccessible (SIGSEGV).  off 0 and len uvm_size(r) destroy the region:
 * r must not be used again.  0, or -1 with errno EINVAL; destroying the
 * last region of a UVM_MAP_SHARED object writes its dirty pages back
 * first, and if the store fails (EIO, ENOSPC...) the region stays as it
 * was and -1 with the store's errno is returned (retry, or uvm_flush). */
UVM_API int uvm_unmap(struct uvm_region *r, size_t off, size_t len);

/* Set the fault-around advice (UVM_ADV_*).  0, or -1 (EINVAL). */
UVM_API int uvm_advise(struct uvm_region *r, int advice);

/* Fault [off, off+len) in now and keep it resident (mlock): later
 * accesses of the range take no page fault until it is written after a
 * uvm_copy().  0, or -1 with errno EINVAL, ENOMEM, or EPERM/EAGAIN from
 * mlock (RLIMIT_MEMLOCK). */
UVM_API int uvm_wire(struct uvm_region *r, size_t off, size_t len);

/* Fill *st with r's counters.  0, or -1 (EINVAL). */
UVM_API int uvm_stats(const struct uvm_region *r, struct uvm_stats *st);


/* ---- the object layer ---------------------------------------------- */

/* Flags of uvm_map_file() / uvm_map_object(): exactly one of these. */
#define UVM_MAP_PRIVATE  1   /* writes stay in the region (copy on write);
                                the store never changes */
#define UVM_MAP_SHARED   2   /* writes reach the store at uvm_flush() and
                                when the last region of the object goes */

/* A backing store (UVM's pager operations).  Offsets and lengths are
 * multiples of the page size.  Both callbacks run with the pager's lock
 * held, possibly on the pager thread: they must not touch managed memory,
 * call uvm_* functions, or block on anything a faulting thread may hold
 * (no malloc or stdio).  They return 0 or a negative errno; a failed get
 * makes the faulting thread take SIGBUS. */
struct uvm_pagerops {
	/* fill buf with len bytes of the store at off (zeros past its end) */
	int (*pgo_get)(void *cookie, uint64_t off, void *buf, size_t len);
	/* write len bytes of buf at off; NULL: the store is read-only
	 * (UVM_MAP_SHARED is then refused) */
	int (*pgo_put)(void *cookie, uint64_t off, const void *buf, size_t len);
	/* the last region of the object is gone (after the final put);
	 * may be NULL */
	void (*pgo_release)(void *cookie);
};

/* A region of len bytes backed by the store: page i is the store's bytes
 * [i*4096, (i+1)*4096), read on first touch (fault-around after
 * uvm_advise).  flags: UVM_MAP_PRIVATE or UVM_MAP_SHARED.  If the call
 * fails, pgo_release is not called.  NULL with errno (EINVAL, ENOMEM,
 * ENOSYS, EPERM). */
UVM_API struct uvm_region *uvm_map_object(const struct uvm_pagerops *ops,
                                          void *cookie, size_t len,
                                          int prot, int flags);

/* A region of len bytes showing the file fd from offset off (page
 * aligned).  The pager keeps its own duplicate of fd.  Pages (or the
 * part of a page) past the end of the file read as zeros and, in a
 * shared region, writes to them are dropped: the file never grows (at
 * a flush the file's size then is the limit).  NULL with errno (EINVAL,
 * EBADF, ENOMEM, ...). */
UVM_API struct uvm_region *uvm_map_file(int fd, off_t off, size_t len,
                                        int prot, int flags);

/* Write the pages written since the last flush of r's object back to
 * its store.  0 for a private or anonymous region (nothing to write);
 * -1 with errno EINVAL or the store's error (EIO...). */
UVM_API int uvm_flush(struct uvm_region *r);

/* ---- page loans ----------------------------------------------------- */

struct uvm_loan;

/* A read-only view of [off, off+len) of r at a new address: the same
 * physical pages, no copy.  Writing through the view raises SIGSEGV.
 * While the loan lives, a write by the owner gives the owner a copy of
 * the page and the view keeps the loaned data.  Pages never touched
 * loan as zero pages; pages the owner releases live on until the loan
 * goes.  NULL with errno: EINVAL (bad range, released or poisoned page),
 * ENOMEM. */
UVM_API struct uvm_loan *uvm_loan_view(struct uvm_region *r, size_t off,
                                       size_t len);
UVM_API const void *uvm_loan_base(const struct uvm_loan *l);
/* End the loan and unmap its view.  0, or -1 EINVAL (not a live loan:
 * a second unloan of the same loan included). */
UVM_API int uvm_unloan(struct uvm_loan *l);
/* Splice bytes [off, off+len) of the loan into the pipe pipefd without
 * copying or mapping them (splice(2) from the pager's pool; zero pages
 * by vmsplice of the view).  The pipe refers to the loaned pages, so its
 * reader must drain it before uvm_unloan().  flags: SPLICE_F_NONBLOCK,
 * SPLICE_F_MORE.  Bytes spliced (fewer than len only with
 * SPLICE_F_NONBLOCK or after an error), or -1 with errno: EINVAL (not a
 * live loan, range outside it), or splice's (EAGAIN, EPIPE, EBADF...). */
UVM_API ssize_t uvm_loan_splice(const struct uvm_loan *l, size_t off,
                                int pipefd, size_t len, unsigned int flags);

/* Make dst's [doff, doff+len) share src's pages [soff, soff+len)
 * (anonymous or object pages) copy-on-write: both sides see the same
 * data and a write by either copies the page.  dst must not be a
 * UVM_MAP_SHARED region; the ranges must not overlap.  0, or -1 with
 * errno EINVAL (bad range, released pages) or ENOMEM; on error nothing
 * changed. */
UVM_API int uvm_loan_into(struct uvm_region *dst, size_t doff,
                          struct uvm_region *src, size_t soff, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* SCHEDCTL_UVM_H */
