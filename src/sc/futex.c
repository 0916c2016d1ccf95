/*
 * futex.c - the runtime's own futex calls and its internal lock.
 *
 * All futex waits the runtime makes go through sc_futex_wait() so that
 * the supervisor's filter (src/supervisor) can let them pass without a
 * user notification: they are the runtime parking, not the program.
 * The mark is SC_SYSCALL_COOKIE in the sixth argument (FUTEX_WAIT
 * ignores it; see src/supervisor/proto.h for why not an address range).
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

long sc_futex_wait(uint32_t *uaddr, uint32_t val, const struct timespec *rel,
                   bool private_)
{
	int op = FUTEX_WAIT | (private_ ? FUTEX_PRIVATE_FLAG : 0);
	long r = syscall(SYS_futex, uaddr, op, val, rel, NULL,
	                 (unsigned long)SC_SYSCALL_COOKIE);
	return r < 0 ? -errno : r;
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
