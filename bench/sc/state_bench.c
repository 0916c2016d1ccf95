/*
 * state_bench - what reading a thread's state and setting up a thread
 * cost.  Prints a Markdown table of medians over several runs.
 *
 *   schedctl_state() of another thread (perf source): blocked, busy on
 *   another CPU, and switching thousands of times a second;
 *   the same read on a supervisor-source slot (plain loads);
 *   the /proc/self/task/TID/stat read it replaces;
 *   set-up of a thread's structure (first schedctl_self()) with and
 *   without a kernel ring, against pthread_create+join.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <schedctl.h>
#include "sc/sc.h"

enum { RUNS = 7, READS = 200000, SETUPS = 200 };

static atomic_int stop;

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void pin(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	sched_setaffinity(0, sizeof s, &s);
}

struct target { sc_shared_t *t_sc; atomic_int t_ready; int t_kind; int t_fd[2]; };

static void *target_main(void *p)
{
	struct target *t = p;
	char c;
	pin(0);
	t->t_sc = schedctl_self();
	atomic_store(&t->t_ready, 1);
	switch (t->t_kind) {
	case 0:   /* blocked */
		while (read(t->t_fd[0], &c, 1) < 0 && errno == EINTR)
			;
		break;
	case 1:   /* busy */
		while (!atomic_load_explicit(&stop, memory_order_relaxed))
			;
		break;
	default:  /* switching: yields to a partner on the same CPU */
		while (!atomic_load_explicit(&stop, memory_order_relaxed))
			sched_yield();
	}
	return NULL;
}

static double bench_reads(const sc_shared_t *sc)
{
	double v[RUNS];
	volatile int sink = 0;
	for (int r = 0; r < RUNS; r++) {
		double a = now_ns();
		for (int i = 0; i < READS; i++)
			sink += schedctl_state(sc);
		v[r] = (now_ns() - a) / READS;
	}
	(void)sink;
	return median(v, RUNS);
}

static double bench_proc_reads(pid_t tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
	double v[RUNS];
	for (int r = 0; r < RUNS; r++) {
		double a = now_ns();
		for (int i = 0; i < READS / 100; i++) {
			int fd = open(path, O_RDONLY);
			if (fd < 0 || read(fd, buf, sizeof buf) <= 0)
				abort();
			close(fd);
		}
		v[r] = (now_ns() - a) / (READS / 100);
	}
	return median(v, RUNS);
}

static void *setup_main(void *p)
{
	double a = now_ns();
	sc_shared_t *sc = schedctl_self();
	*(double *)p = now_ns() - a;
	return sc;
}

static void *empty_main(void *p) { return p; }

static double bench_setup(bool with_sc)
{
	double v[SETUPS];
	for (int i = 0; i < SETUPS; i++) {
		pthread_t t;
		double inside = 0, a = now_ns();
		pthread_create(&t, NULL, with_sc ? setup_main : empty_main, &inside);
		pthread_join(t, NULL);
		v[i] = with_sc ? inside : now_ns() - a;
	}
	return median(v, SETUPS);
}

static const char *source_name(int s)
{
	return s == SCHEDCTL_SOURCE_PERF ? "perf" : s == SCHEDCTL_SOURCE_SUPERVISOR
	       ? "supervisor" : "none";
}

int main(void)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	pin((int)ncpu - 1);
	sc_shared_t *me = schedctl_self();
	if (!me) {
		perror("schedctl_self");
		return 1;
	}
	printf("| measurement | median |\n|---|---|\n");
	printf("| own state, schedctl_state(self) (%s) | %.1f ns |\n",
	       source_name(schedctl_source(me)), bench_reads(me));

	const char *names[] = { "blocked in read()", "busy on another CPU",
	                        "yielding to a partner on its CPU" };
	for (int k = 0; k < 3; k++) {
		struct target t = { .t_kind = k }, partner = { .t_kind = 2 };
		pthread_t th, th2 = 0;
		atomic_store(&stop, 0);
		if (pipe(t.t_fd) < 0)
			return 1;
		pthread_create(&th, NULL, target_main, &t);
		if (k == 2)
			pthread_create(&th2, NULL, target_main, &partner);
		while (!atomic_load(&t.t_ready))
			;
		usleep(10000);
		printf("| schedctl_state() of a thread %s (%s) | %.1f ns |\n", names[k],
		       source_name(schedctl_source(t.t_sc)), bench_reads(t.t_sc));
		if (k == 0)
			printf("| read of /proc/self/task/TID/stat, same thread | %.0f ns |\n",
			       bench_proc_reads(schedctl_tid(t.t_sc)));
		atomic_store(&stop, 1);
		(void)!write(t.t_fd[1], "x", 1);
		pthread_join(th, NULL);
		if (th2)
			pthread_join(th2, NULL);
	}

	printf("| pthread_create + join, no schedctl | %.1f us |\n",
	       bench_setup(false) / 1000);
	printf("| thread set-up, first schedctl_self(), with kernel ring | %.1f us |\n",
	       bench_setup(true) / 1000);

	/* Supervisor-source slots: the state is plain loads of the page. */
	sc_set_supervised(true);
	sc_set_wanted_source(SC_WANT_SUPERVISOR);
	printf("| thread set-up, first schedctl_self(), supervisor source | %.1f us |\n",
	       bench_setup(true) / 1000);
	struct target t = { .t_kind = 0 };
	pthread_t th;
	if (pipe(t.t_fd) < 0)
		return 1;
	pthread_create(&th, NULL, target_main, &t);
	while (!atomic_load(&t.t_ready))
		;
	printf("| schedctl_state() of another thread (%s) | %.1f ns |\n",
	       source_name(schedctl_source(t.t_sc)), bench_reads(t.t_sc));
	(void)!write(t.t_fd[1], "x", 1);
	pthread_join(th, NULL);
	return 0;
}
