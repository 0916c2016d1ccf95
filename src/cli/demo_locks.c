/*
 * schedctl-demo-locks - the built-in workload `schedctl demo` profiles.
 *
 * A plain pthreads program (nothing from schedctl) with three kinds of
 * lock behaviour, eight threads on however few CPUs:
 *   cache_lock  five threads, ~200 ns critical sections at a high rate:
 *               short waits that spinning on a running owner wins
 *   log_lock    two threads hold it ~30 us while "formatting": longer
 *               waits, some spun out and parked
 *   io_lock     one thread sleeps 2 ms while holding it, two others want
 *               it: their owner is asleep, so spinning would be wasted
 * Prints what each lock protected and exits 1 on a lost update.
 *
 * usage: schedctl-demo-locks [MS]   (run time, default 800)
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Global and exported (-rdynamic, default visibility although the
 * project builds with -fvisibility=hidden) so the profile can name them. */
#define DEMO_EXPORTED __attribute__((visibility("default")))
DEMO_EXPORTED pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
DEMO_EXPORTED pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
DEMO_EXPORTED pthread_mutex_t io_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t cache_hits, log_lines, io_ops;
static uint64_t cache_done[5], log_done[2], io_done[3];
static int stop;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void work_ns(uint64_t ns)
{
	uint64_t end = now_ns() + ns;
	while (now_ns() < end)
		;
}

static int stopping(void)
{
	return __atomic_load_n(&stop, __ATOMIC_RELAXED);
}

static void *cache_user(void *arg)
{
	uint64_t *done = arg;
	while (!stopping()) {
		pthread_mutex_lock(&cache_lock);
		cache_hits++;
		work_ns(200);
		pthread_mutex_unlock(&cache_lock);
		(*done)++;
		work_ns(300);
	}
	return NULL;
}

static void *log_writer(void *arg)
{
	uint64_t *done = arg;
	while (!stopping()) {
		pthread_mutex_lock(&log_lock);
		log_lines++;
		work_ns(30000);
		pthread_mutex_unlock(&log_lock);
		(*done)++;
		work_ns(20000);
	}
	return NULL;
}

static void *io_user(void *arg)
{
	uint64_t *done = arg;
	int sleeper = done == &io_done[0];
	while (!stopping()) {
		pthread_mutex_lock(&io_lock);
		io_ops++;
		if (sleeper)
			usleep(2000);      /* blocked while holding the lock */
		else
			work_ns(1000);
		pthread_mutex_unlock(&io_lock);
		(*done)++;
		usleep(sleeper ? 1000 : 200);
	}
	return NULL;
}

static uint64_t sum(const uint64_t *v, int n)
{
	uint64_t s = 0;
	for (int i = 0; i < n; i++)
		s += v[i];
	return s;
}

int main(int argc, char **argv)
{
	long ms = argc > 1 ? strtol(argv[1], NULL, 10) : 800;
	if (ms <= 0 || ms > 600000) {
		fprintf(stderr, "usage: schedctl-demo-locks [MS]\n");
		return 2;
	}
	pthread_t t[10];
	int n = 0;
	for (int i = 0; i < 5; i++)
		pthread_create(&t[n++], NULL, cache_user, &cache_done[i]);
	for (int i = 0; i < 2; i++)
		pthread_create(&t[n++], NULL, log_writer, &log_done[i]);
	for (int i = 0; i < 3; i++)
		pthread_create(&t[n++], NULL, io_user, &io_done[i]);
	usleep((useconds_t)ms * 1000);
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	int ok = cache_hits == sum(cache_done, 5) && log_lines == sum(log_done, 2) &&
	         io_ops == sum(io_done, 3);
	printf("demo workload: cache_lock %llu, log_lock %llu, io_lock %llu "
	       "acquisitions; %s\n", (unsigned long long)cache_hits,
	       (unsigned long long)log_lines, (unsigned long long)io_ops,
	       ok ? "no lost updates" : "LOST UPDATES");
	return ok ? 0 : 1;
}
