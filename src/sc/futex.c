/*
 * futex.c - the runtime's own futex calls and its internal lock.
 *
 * All futex waits the runtime makes go through sc_futex_wait() so that
 * the supervisor's filter (src/supervisor) can let them pass without a
 * user notification: they are the runtime parking, not the program.
 * The mark is SC_SYSCALL_COOKIE in the sixth argument (FUTEX_WAIT
 * ignores it; see src/supervisor/proto.h for why not an address range).
 * Marked calls go through sc_marked_syscall(), never syscall(3): that
 * leaves the cookie in r9, where glibc's wrappers with fewer than six
 * arguments do not overwrite it, so the program's next system call
 * would pass the filter unnotified.
 * Wakes are never notified, so sc_futex_wake() needs no mark.
 *
 * sc_ilock word: 0 free, 1 held, 2 held with waiters (the classic
 * three-state futex mutex).  Acquire on lock, release on unlock.
 */
#include <errno.h>
#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sc/sc.h"
#include "supervisor/proto.h"

long sc_marked_syscall(long nr, long a0, long a1, long a2, long a3, long a4)
{
#if defined(__x86_64__)
	register long r10 __asm__("r10") = a3;
	register long r8 __asm__("r8") = a4;
	register long r9 __asm__("r9") = (long)SC_SYSCALL_COOKIE;
	long r;
	/* The kernel preserves r9; clear it before any C code runs. */
	__asm__ volatile ("syscall\n\txorl %%r9d, %%r9d"
	                  : "=a"(r), "+r"(r9)
	                  : "0"(nr), "D"(a0), "S"(a1), "d"(a2), "r"(r10), "r"(r8)
	                  : "rcx", "r11", "memory");
	return r;
#else
	/* Other architectures: the cookie may outlive the call in a
	 * register (a missed notification, never a wrong result). */
	int saved = errno;
	long r = syscall(nr, a0, a1, a2, a3, a4, (long)SC_SYSCALL_COOKIE);
	if (r < 0)
		r = -errno;
	errno = saved;
	return r;
#endif
}

long sc_futex_wait(uint32_t *uaddr, uint32_t val, const struct timespec *rel,
                   bool private_)
{
	int op = FUTEX_WAIT | (private_ ? FUTEX_PRIVATE_FLAG : 0);
	return sc_marked_syscall(SYS_futex, (long)uaddr, op, (long)val,
	                         (long)rel, 0);
}

long sc_futex_wake(uint32_t *uaddr, int n, bool private_)
{
	int op = FUTEX_WAKE | (private_ ? FUTEX_PRIVATE_FLAG : 0);
	long r = syscall(SYS_futex, uaddr, op, n, NULL, NULL, 0);
	return r < 0 ? -errno : r;
}

void sc_ilock_acquire(struct sc_ilock *l)
{
	uint32_t c = 0;
	if (__atomic_compare_exchange_n(&l->il_word, &c, 1, false,
	                                __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return;
	if (c != 2)
		c = __atomic_exchange_n(&l->il_word, 2, __ATOMIC_ACQUIRE);
	while (c != 0) {
		sc_futex_wait(&l->il_word, 2, NULL, true);
		c = __atomic_exchange_n(&l->il_word, 2, __ATOMIC_ACQUIRE);
	}
}

void sc_ilock_release(struct sc_ilock *l)
{
	if (__atomic_exchange_n(&l->il_word, 0, __ATOMIC_RELEASE) == 2)
		sc_futex_wake(&l->il_word, 1, true);
}
