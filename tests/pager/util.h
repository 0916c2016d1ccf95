/* Helpers shared by the pager test suites. */
#ifndef TESTS_PAGER_UTIL_H
#define TESTS_PAGER_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <schedctl/uvm.h>

#define PG 4096u

/* Lines of /proc/self/maps: the kernel mappings of the process. */
static inline long pu_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	long n = 0;
	int c;
	if (!f)
		return -1;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* Bytes of memory the kernel holds for the pager's pool files (the
 * memfds named schedctl-uvm-pool), from st_blocks. */
static inline long long pu_pool_bytes(void)
{
	DIR *d = opendir("/proc/self/fd");
	long long sum = 0;
	struct dirent *e;
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[300], link[256];
		snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
		ssize_t n = readlink(path, link, sizeof link - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		if (!strstr(link, "memfd:schedctl-uvm-pool"))
			continue;
		struct stat st;
		if (stat(path, &st) == 0)
			sum += (long long)st.st_blocks * 512;
	}
	closedir(d);
	return sum;
}

/* Which signal an access raises: 0 if none. */
static sigjmp_buf pu_jmp;
static volatile int pu_sig;

static inline void pu_on_signal(int sig)
{
	pu_sig = sig;
	siglongjmp(pu_jmp, 1);
}

static inline int pu_probe(volatile char *p, int write)
{
	struct sigaction sa = { .sa_handler = pu_on_signal }, o1, o2;
	sigaction(SIGSEGV, &sa, &o1);
	sigaction(SIGBUS, &sa, &o2);
	pu_sig = 0;
	if (sigsetjmp(pu_jmp, 1) == 0) {
		if (write)
			*p = *p;
		else
			(void)*p;
	}
	sigaction(SIGSEGV, &o1, NULL);
	sigaction(SIGBUS, &o2, NULL);
	return pu_sig;
}

static inline int pu_wait(pid_t pid)
{
	int st;
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	if (WIFSIGNALED(st))
		return 1000 + WTERMSIG(st);
	return WEXITSTATUS(st);
}

/* Wait (up to 5 s) until the pager has retired every fork lease, i.e.
 * noticed that the children are gone and thawed their pages.  White-box:
 * needs pager/pager.h. */
#ifdef SCHEDCTL_PAGER_H
static inline int pu_leases_drained(void)
{
	for (int i = 0; i < 500; i++) {
		if (__atomic_load_n(&uvm_pager.up_nleases, __ATOMIC_ACQUIRE) == 0) {
			/* the pager retires a lease and thaws under the lock:
			 * taking it waits for the thaw to finish */
			pthread_mutex_lock(&uvm_pager.up_lock);
			pthread_mutex_unlock(&uvm_pager.up_lock);
			return 1;
		}
		usleep(10000);
	}
	return 0;
}
#endif

/* Pool pages of the whole process, as the pager counts them. */
static inline uint64_t pu_pool_pages(const struct uvm_region *r)
{
	struct uvm_stats st;
	if (uvm_stats(r, &st))
		return UINT64_MAX;
	return st.us_pool_pages;
}

#endif
