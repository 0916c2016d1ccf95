/*
 * sup_bench.c - workloads for the supervisor benchmarks (bench.sh runs
 * them side by side and takes medians).
 *
 *   call N          N notified system calls that return at once (a
 *                   FUTEX_WAIT whose word does not match: EAGAIN).  Run
 *                   natively it is the bare syscall; under `schedctl run`
 *                   each one is a full supervisor round trip (receive,
 *                   slot look-up, state store, CONTINUE).
 *   bare N          the same calls through the same filter, answered by
 *                   the smallest possible supervisor: a forked process
 *                   looping NOTIF_RECV / NOTIF_SEND(CONTINUE), with
 *                   SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP.  The floor.
 *   pingpong N      N mutex+condvar round trips between two threads.
 *   spawn N PROG..  run PROG N times (fork, exec, wait); median time.
 *   accuracy N      under `schedctl run --state-source=supervisor`: two
 *                   busy threads sharing CPU 0 sampled N times from
 *                   CPU 1 (a thread blocked in read() keeps the sampler
 *                   realistic, its ring has no records); each compares
 *                   schedctl_state() with the newest kernel switch record
 *                   of a perf ring this program opens on the thread.
 *
 * Each prints one "name=value" line; times are nanoseconds.
 */
#include <dlfcn.h>
#include <errno.h>
#include <linux/futex.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <sys/mman.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "supervisor/sv.h"

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double calls(long n)
{
	uint32_t word = 1;
	uint64_t t0 = now_ns();
	for (long i = 0; i < n; i++)
		(void)syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
	return (double)(now_ns() - t0) / (double)n;
}

static void bare_server(int sock)
{
	char c;
	int fd = -1;
	union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr a; } u;
	struct iovec iov = { &c, 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
	                    .msg_control = u.b, .msg_controllen = sizeof u.b };
	if (recvmsg(sock, &m, 0) <= 0 || !CMSG_FIRSTHDR(&m))
		_exit(1);
	memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof fd);
	for (;;) {
		struct seccomp_notif n;
		memset(&n, 0, sizeof n);
		if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &n) < 0) {
			if (errno == EINTR || errno == ENOENT)
				continue;
			_exit(0);
		}
		struct seccomp_notif_resp r = { .id = n.id,
			.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE };
		(void)ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &r);
	}
}

static int mode_bare(long n)
{
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) < 0)
		return 1;
	pid_t p = fork();
	if (p == 0) {
		close(sp[0]);
		bare_server(sp[1]);
	}
	close(sp[1]);
	struct sv_notify_set set;
	char err[128];
	if (sv_notify_parse("futex", &set, err, sizeof err) < 0)
		return 1;
	int l = sv_filter_install(&set);
	if (l < 0) {
		fprintf(stderr, "filter: %s\n", strerror(-l));
		return 1;
	}
	int sync = sv_listener_sync_wakeup(l) == 0;
	union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr a; } u;
	memset(&u, 0, sizeof u);
	char c = 'l';
	struct iovec iov = { &c, 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
	                    .msg_control = u.b, .msg_controllen = sizeof u.b };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &l, sizeof l);
	if (sendmsg(sp[0], &m, 0) < 0)
		return 1;
	close(l);
	/* bare-ring: the caller carries a context-switch perf ring, as a
	 * perf-source thread does, to price the records apart. */
	int ring = getenv("SUP_BENCH_RING") && sc_perf_attach(sc_perf_reserve(1)) == 0;
	calls(n / 10 + 1);                  /* warm up */
	printf("bare_ns=%.0f sync_wakeup=%d ring=%d\n", calls(n), sync, ring);
	kill(p, SIGKILL);
	waitpid(p, NULL, 0);
	return 0;
}

static pthread_mutex_t pp_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pp_cv = PTHREAD_COND_INITIALIZER;
static int pp_turn;

/* SUP_BENCH_PIN=same: both threads on CPU 0; split: CPU 0 and CPU 1.
 * Unpinned, the kernel's placement (and, in a VM, idle wake-up latency)
 * moves a native round trip between ~10 and ~50 us from run to run. */
static int pp_cpu(int who)
{
	const char *p = getenv("SUP_BENCH_PIN");
	if (!p)
		return -1;
	return strcmp(p, "split") == 0 ? who : 0;
}

static void pp_pin(int cpu)
{
	if (cpu < 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	(void)sched_setaffinity(0, sizeof set, &set);
}

static void *pp_pong(void *a)
{
	long n = (long)a;
	pp_pin(pp_cpu(1));
	for (long i = 0; i < n; i++) {
		pthread_mutex_lock(&pp_mu);
		while (pp_turn != 1)
			pthread_cond_wait(&pp_cv, &pp_mu);
		pp_turn = 0;
		pthread_cond_signal(&pp_cv);
		pthread_mutex_unlock(&pp_mu);
	}
	return NULL;
}

static int mode_pingpong(long n)
{
	pthread_t t;
	pp_pin(pp_cpu(0));
	pthread_create(&t, NULL, pp_pong, (void *)n);
	uint64_t t0 = now_ns();
	for (long i = 0; i < n; i++) {
		pthread_mutex_lock(&pp_mu);
		pp_turn = 1;
		pthread_cond_signal(&pp_cv);
		while (pp_turn != 0)
			pthread_cond_wait(&pp_cv, &pp_mu);
		pthread_mutex_unlock(&pp_mu);
	}
	double ns = (double)(now_ns() - t0) / (double)n;
	pthread_join(t, NULL);
	printf("pingpong_ns=%.0f\n", ns);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int mode_spawn(long n, char **argv)
{
	uint64_t *t = calloc((size_t)n, sizeof *t);
	for (long i = 0; i < n; i++) {
		uint64_t t0 = now_ns();
		pid_t p = fork();
		if (p == 0) {
			execv(argv[0], argv);
			_exit(127);
		}
		int st;
		waitpid(p, &st, 0);
		t[i] = now_ns() - t0;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			return 1;
	}
	qsort(t, (size_t)n, sizeof *t, cmp_u64);
	printf("spawn_ns=%llu\n", (unsigned long long)t[n / 2]);
	free(t);
	return 0;
}

/* ---- accuracy: the supervisor's states against the kernel's records ---- */

static volatile int acc_stop;
static int acc_tid[3];
static int acc_pipe[2];

static void acc_pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	(void)sched_setaffinity(0, sizeof set, &set);
}

static void *acc_hog(void *a)
{
	int i = (int)(long)a;
	acc_pin(0);
	__atomic_store_n(&acc_tid[i], (int)gettid(), __ATOMIC_RELEASE);
	while (!acc_stop)
		;
	return NULL;
}

static void *acc_reader(void *a)
{
	(void)a;
	__atomic_store_n(&acc_tid[2], (int)gettid(), __ATOMIC_RELEASE);
	char c;
	(void)!read(acc_pipe[0], &c, 1);
	return NULL;
}

/* A context-switch ring on another thread of ours, as src/sc/perf.c
 * opens one on itself. */
static char *acc_ring(int tid)
{
	struct perf_event_attr a;
	sc_perf_switch_attr(&a);
	long fd = syscall(SYS_perf_event_open, &a, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0)
		return NULL;
	void *p = mmap(NULL, SC_RING_SIZE, PROT_READ, MAP_SHARED, (int)fd, 0);
	close((int)fd);
	return p == MAP_FAILED ? NULL : p;
}

/* This program links the slot layer statically (for sc_perf_read), so
 * its own schedctl_* would be a second, unsupervised copy: use the
 * preload's, which set up our threads. */
/* CPU seconds the supervisor (our tracer) has used, -1 if unknown. */
static double acc_tracer_cpu(void)
{
	long tracer = sc_status_field(getpid(), "TracerPid");
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%ld/stat", tracer);
	FILE *f = tracer > 0 ? fopen(path, "r") : NULL;
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	unsigned long ut = 0, st = 0;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	                 &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

typedef sc_shared_t *(*acc_of_fn)(pid_t);
typedef int (*acc_state_fn)(const sc_shared_t *);

static int mode_accuracy(long n)
{
	union { void *p; acc_of_fn f; } of = { dlsym(RTLD_NEXT, "schedctl_of") };
	union { void *p; acc_state_fn f; } state = { dlsym(RTLD_NEXT, "schedctl_state") };
	if (!of.p || !state.p) {
		fprintf(stderr, "accuracy: run me under schedctl run\n");
		return 1;
	}
	pthread_t t[3];
	if (pipe(acc_pipe) < 0)
		return 1;
	acc_pin(1);
	for (long i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, acc_hog, (void *)i);
	pthread_create(&t[2], NULL, acc_reader, NULL);
	for (int i = 0; i < 3; i++)
		while (!__atomic_load_n(&acc_tid[i], __ATOMIC_ACQUIRE))
			usleep(1000);
	char *ring[3];
	sc_shared_t *sc[3];
	for (int i = 0; i < 3; i++) {
		ring[i] = acc_ring(acc_tid[i]);
		sc[i] = of.f(acc_tid[i]);
		if (!ring[i] || !sc[i]) {
			fprintf(stderr, "accuracy: no ring or slot\n");
			return 1;
		}
	}
	usleep(100000);
	double cpu0 = acc_tracer_cpu();
	uint64_t t0 = now_ns();
	long agree_hog = 0, seen = 0;
	for (long k = 0; k < n; k++) {
		for (int i = 0; i < 2; i++) {
			int kst, kcpu;
			int st = state.f(sc[i]);
			if (sc_perf_read(ring[i], &kst, &kcpu) != 1)
				continue;
			seen++;
			agree_hog += st == kst;
		}
		usleep(500);
	}
	double cpu = acc_tracer_cpu() - cpu0, wall = (double)(now_ns() - t0) * 1e-9;
	acc_stop = 1;
	(void)!write(acc_pipe[1], "x", 1);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	printf("hog_agree_pct=%.1f samples=%ld supervisor_cpu_pct=%.1f\n",
	       seen ? 100.0 * (double)agree_hog / (double)seen : 0.0, seen,
	       cpu0 >= 0 ? 100.0 * cpu / wall : -1.0);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	long n = atol(argv[2]);
	if (n <= 0)
		return 2;
	if (!strcmp(argv[1], "call")) {
		calls(n / 10 + 1);
		printf("call_ns=%.0f\n", calls(n));
		return 0;
	}
	if (!strcmp(argv[1], "bare"))
		return mode_bare(n);
	if (!strcmp(argv[1], "pingpong"))
		return mode_pingpong(n);
	if (!strcmp(argv[1], "accuracy"))
		return mode_accuracy(n);
	if (!strcmp(argv[1], "spawn") && argc > 3)
		return mode_spawn(n, argv + 3);
	return 2;
}
