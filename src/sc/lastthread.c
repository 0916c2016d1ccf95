/*
 * lastthread.c - the process ends when the program's last thread does,
 * not when the runtime's threads do.
 *
 * glibc ends the process (exit(0)) when the last thread that pthread
 * made finishes: a program whose main() calls pthread_exit() ends when
 * its other threads have returned; a fork child made from a worker
 * thread ends when that thread returns.  glibc counts every thread
 * pthread_create made, and under `schedctl run` that includes the
 * runtime's own (the supervisor's watchdog, the profiler's agent), which
 * block forever: the program's last thread left, the process stayed,
 * with a zombie leader, and whoever waited for it waited for good
 * (CPython's test_threading: test_3_join_in_forked_from_thread).
 *
 * So the preload counts the program's threads itself: the main thread,
 * and each pthread_create through its wrapper (counted before the real
 * call, so that a thread which ends at once cannot take the count to 0
 * first; uncounted again if the call fails).  A thread the runtime
 * starts for itself may come through that wrapper too (calls inside the
 * preload bind to its own pthread_create); it uncounts itself when it
 * says it is the runtime's (sc_runtime_thread_count).  Every counted
 * thread carries a pthread key whose destructor runs as it ends (a
 * return from its start routine, or pthread_exit, after its cleanup
 * handlers); the destructor that takes the count to 0 stops and joins
 * the runtime's threads (the stops registered with
 * sc_runtime_stop_at_end).  The ending thread then goes on through
 * glibc's exit path and, being glibc's last thread too, calls exit(0)
 * itself, as natively.
 *
 * Threads this does not see (made with raw clone(), by glibc itself for
 * SIGEV_THREAD timers, or before the preload's constructor by another
 * library's) are not counted (a fork child's only thread is, whichever
 * it was): if the count reaches 0 while one still runs, the runtime's
 * threads stop early (no watchdog, no live profile dumps) and the
 * process goes on until that thread ends, as natively.  Outside the
 * preload nothing here is enabled.  An orphaned image's watchdog (it
 * answers a listener of its own: supervisor and backstop both died) is
 * never stopped: the ending thread's own last calls need it.
 *
 * Memory order: prog_count is decremented with acq_rel, so the thread
 * that takes it to 0 sees everything the other ended threads did;
 * increments are relaxed (the new thread is made after them by the
 * same thread).  prog_stops: each entry goes from NULL to a function
 * once (a release compare-and-swap; read with acquire).
 */
#include <pthread.h>

#include "sc/sc.h"

#define PROG_MAX_STOPS 4

static bool prog_enabled;               /* release/acquire: set by the
                                           constructor, after the key */
static int prog_count;                  /* program threads running */
static bool prog_stopped;               /* the stops ran (exchange) */
static pthread_key_t prog_key;
static void (*prog_stops[PROG_MAX_STOPS])(void);

/* Once: the count can go back up (a thread made by a later destructor,
 * or by a thread we do not count) and reach 0 again, and two stops of
 * one thread must not both join it.  Not cancellable: a cancel still
 * pending when a thread ends acts at the first cancellation point, and
 * the joins are such points; unwinding out of here would leave a
 * runtime thread running and the process alive. */
static void prog_stop_runtime(void)
{
	if (__atomic_exchange_n(&prog_stopped, true, __ATOMIC_ACQ_REL))
		return;
	int old;
	(void)pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	for (int i = 0; i < PROG_MAX_STOPS; i++) {
		void (*fn)(void) = __atomic_load_n(&prog_stops[i], __ATOMIC_ACQUIRE);
		if (fn)
			fn();
	}
	(void)pthread_setcancelstate(old, NULL);
}

/* => a counted thread is ending (its key's destructor). */
static void prog_thread_ended(void *mark)
{
	(void)mark;
	if (__atomic_sub_fetch(&prog_count, 1, __ATOMIC_ACQ_REL) == 0)
		prog_stop_runtime();
}

/* A fork child has one thread, the forking one, and it is the
 * program's whatever it was in the parent (a thread we did not count,
 * or one whose destructor already ran and forked from a later one:
 * glibc runs a destructor again when its value is set again). */
static void prog_atfork_child(void)
{
	__atomic_store_n(&prog_count, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&prog_stopped, false, __ATOMIC_RELAXED);
	sc_program_thread_begin();
}

void sc_program_threads_start(void)
{
	if (pthread_key_create(&prog_key, prog_thread_ended) != 0)
		return;
	__atomic_store_n(&prog_count, 1, __ATOMIC_RELAXED);
	sc_program_thread_begin();
	(void)pthread_atfork(NULL, NULL, prog_atfork_child);
	__atomic_store_n(&prog_enabled, true, __ATOMIC_RELEASE);
}

bool sc_program_thread_creating(int delta)
{
	if (!__atomic_load_n(&prog_enabled, __ATOMIC_ACQUIRE))
		return false;
	__atomic_add_fetch(&prog_count, delta, __ATOMIC_RELAXED);
	return true;
}

/* Only for a thread whose creation was counted: one made before the
 * constructor (another library's constructor starting a pool) must not
 * take the count down when it ends. */
void sc_program_thread_begin(void)
{
	(void)pthread_setspecific(prog_key, (void *)1);
}

/* The calling thread turned out to be the runtime's: uncount it.  Its
 * creator, a program thread, is waiting for it to start, so the count
 * stays above 0 here. */
void sc_program_thread_is_runtime(void)
{
	if (!__atomic_load_n(&prog_enabled, __ATOMIC_ACQUIRE) ||
	    pthread_getspecific(prog_key) == NULL)
		return;
	(void)pthread_setspecific(prog_key, NULL);
	__atomic_sub_fetch(&prog_count, 1, __ATOMIC_ACQ_REL);
}

void sc_runtime_stop_at_end(void (*stop)(void))
{
	for (int i = 0; i < PROG_MAX_STOPS; i++) {
		void (*cur)(void) = NULL;
		if (__atomic_compare_exchange_n(&prog_stops[i], &cur, stop, false,
		                                __ATOMIC_RELEASE, __ATOMIC_ACQUIRE) ||
		    cur == stop)
			return;
	}
}
