/*
 * soak_work.c - the soak workload (bench/soak/soak.sh): for SECONDS,
 * four threads take and release four mutexes in a pattern that makes
 * them contend, a producer/consumer pair hands items over a condvar
 * (with timed waits), and a churner creates and joins short-lived
 * threads (each takes the shared mutexes a few times), 50 a second,
 * while allocating and freeing.  Prints one line of totals at the end.
 * Usage: soak_work SECONDS
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t mx[4] = { PTHREAD_MUTEX_INITIALIZER,
	PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
	PTHREAD_MUTEX_INITIALIZER };
static pthread_mutex_t qm = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qc = PTHREAD_COND_INITIALIZER;
static long queued;
static atomic_bool stop;
static atomic_long locks, handoffs, spawned;
static long shared[4];

static void *locker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	long n = 0;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		int i = rand_r(&seed) % 4;
		pthread_mutex_lock(&mx[i]);
		shared[i]++;
		for (unsigned k = 0; k < seed % 200; k++)
			__asm__ __volatile__("" ::: "memory");   /* hold a while */
		pthread_mutex_unlock(&mx[i]);
		n++;
	}
	atomic_fetch_add(&locks, n);
	return NULL;
}

static void *producer(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		pthread_mutex_lock(&qm);
		while (queued >= 16 && !atomic_load(&stop)) {
			struct timespec dl;
			clock_gettime(CLOCK_REALTIME, &dl);
			dl.tv_nsec += 5000000;
			if (dl.tv_nsec >= 1000000000) {
				dl.tv_nsec -= 1000000000;
				dl.tv_sec++;
			}
			pthread_cond_timedwait(&qc, &qm, &dl);
		}
		queued++;
		pthread_cond_broadcast(&qc);
		pthread_mutex_unlock(&qm);
	}
	return NULL;
}

static void *consumer(void *arg)
{
	(void)arg;
	long n = 0;
	pthread_mutex_lock(&qm);
	while (!atomic_load(&stop)) {
		if (queued == 0) {
			pthread_cond_wait(&qc, &qm);
			continue;
		}
		queued--;
		n++;
		pthread_cond_broadcast(&qc);
	}
	pthread_mutex_unlock(&qm);
	atomic_fetch_add(&handoffs, n);
	return NULL;
}

static void *shortlived(void *arg)
{
	size_t sz = 1024 + (size_t)(uintptr_t)arg % 65536;
	char *p = malloc(sz);
	if (p)
		memset(p, 1, sz);
	for (int r = 0; r < 100; r++) {
		pthread_mutex_lock(&mx[r % 4]);
		shared[r % 4]++;
		pthread_mutex_unlock(&mx[r % 4]);
	}
	free(p);
	return NULL;
}

static void *churner(void *arg)
{
	(void)arg;
	uintptr_t i = 0;
	while (!atomic_load(&stop)) {
		pthread_t t[5];
		for (int k = 0; k < 5; k++)
			pthread_create(&t[k], NULL, shortlived, (void *)i++);
		for (int k = 0; k < 5; k++)
			pthread_join(t[k], NULL);
		atomic_fetch_add(&spawned, 5);
		struct timespec ts = { 0, 100 * 1000000 };   /* 50 threads/s */
		nanosleep(&ts, NULL);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	long secs = argc > 1 ? atol(argv[1]) : 10;
	pthread_t t[8];
	int n = 0;
	for (int i = 0; i < 4; i++)
		pthread_create(&t[n++], NULL, locker, (void *)(uintptr_t)(i + 1));
	pthread_create(&t[n++], NULL, producer, NULL);
	pthread_create(&t[n++], NULL, consumer, NULL);
	pthread_create(&t[n++], NULL, churner, NULL);
	struct timespec ts = { secs, 0 };
	nanosleep(&ts, NULL);
	atomic_store(&stop, true);
	pthread_mutex_lock(&qm);
	pthread_cond_broadcast(&qc);
	pthread_mutex_unlock(&qm);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	printf("soak_work: %ld s, %ld lock ops, %ld handoffs, %ld threads spawned\n",
	       secs, atomic_load(&locks), atomic_load(&handoffs),
	       atomic_load(&spawned));
	return 0;
}
