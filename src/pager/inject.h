/*
 * inject.h - failure injection for the pager's tests.
 *
 * Each point names one call that can fail in production (a system call,
 * an allocation, a userfaultfd ioctl).  The code calls inj_fail(point)
 * right before the real call and takes its error path when that returns
 * non-zero, as if the call had failed with that -errno.  Tests arm
 * points through the internal library (schedctl_internal_dep): nothing
 * here is exported (hidden visibility, names outside schedctl_* and
 * uvm_*), so the ABI does not change.
 *
 * Cost when nothing is armed: one relaxed load of pi_armed and one
 * branch predicted not taken; the rest is out of line (pool.c).
 *
 * Memory order: pi_armed is a relaxed flag; the per-point state is read
 * and written under pi_lock (a mutex of its own, never held while
 * calling out except to the test's callback), so a test that arms a
 * point and then triggers the call sees it take effect.  Arming takes
 * pi_lock and then stores pi_armed with release; a hook that sees the
 * flag takes pi_lock, which orders everything else.
 *
 * Lock order: uvm_lock => pi_lock (hooks run inside the pager).
 */
#ifndef SCHEDCTL_PAGER_INJECT_H
#define SCHEDCTL_PAGER_INJECT_H

#include <pthread.h>
#include <stdbool.h>

enum inj_point {
	INJ_POOL_FILE,    /* pool.c: memfd_create+ftruncate of a pool file */
	INJ_POOL_WRITE,   /* pool.c: pwrite into the pool (ENOSPC) */
	INJ_POOL_READ,    /* pool.c: pread from the pool (EIO) */
	INJ_MEM,          /* pool.c: mmap of the pager's own memory */
	INJ_MMAP,         /* region.c, loan.c: a region's range or run, a view */
	INJ_REGISTER,     /* fault.c: UFFDIO_REGISTER */
	INJ_COPY,         /* fault.c: UFFDIO_COPY (zero fill, object fill) */
	INJ_WP,           /* fault.c: UFFDIO_WRITEPROTECT */
	INJ_POISON,       /* bus.c: UFFDIO_POISON */
	INJ_SIGNAL,       /* bus.c: rt_tgsigqueueinfo of a SIGBUS */
	INJ_FILE_READ,    /* object.c: pread of the file store (EIO) */
	INJ_FILE_SHORT,   /* object.c: the file store's pread stops short */
	INJ_FILE_WRITE,   /* object.c: pwrite of the file store */
	INJ_NPOINTS
};

struct inj_state {
	int is_skip;      /* calls to let through before failing */
	int is_count;     /* calls to fail then; -1: until disarmed */
	int is_errno;     /* positive errno the call fails with */
	unsigned is_hits; /* calls seen while armed (passed or failed) */
	unsigned is_failed; /* calls failed */
};

struct pager_inject {
	int pi_armed;                     /* any point armed (relaxed) */
	pthread_mutex_t pi_lock;
	struct inj_state pi_pt[INJ_NPOINTS];
	/* tests: called (pi_lock dropped, uvm_lock as the caller holds it)
	 * at every armed call of a point, before it fails or passes; may
	 * sleep, must not touch managed memory */
	void (*pi_cb)(enum inj_point p);
};

extern struct pager_inject pager_inject;

int inj_hit(enum inj_point p);        /* 0 or -errno */

/* 0: go on with the real call; -errno: fail it with that error. */
static inline int inj_fail(enum inj_point p)
{
	if (__builtin_expect(__atomic_load_n(&pager_inject.pi_armed,
	                                     __ATOMIC_RELAXED) == 0, 1))
		return 0;
	return inj_hit(p);
}

/* Tests.  Fail point p with err after skip calls, count times (-1:
 * until inj_reset).  inj_reset disarms every point and clears the
 * counters and the callback. */
void inj_arm(enum inj_point p, int skip, int count, int err);
void inj_disarm(enum inj_point p);
void inj_reset(void);
void inj_set_cb(void (*cb)(enum inj_point));
unsigned inj_hits(enum inj_point p);
unsigned inj_failed(enum inj_point p);

#endif /* SCHEDCTL_PAGER_INJECT_H */
