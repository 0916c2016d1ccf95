/*
 * image.c - process images of the supervised program and their slot
 * regions, as the supervisor maps them.
 *
 * An image is one process between two execs.  It is created when the
 * process connects (conn.c), becomes "gone" when its socket hangs up,
 * and is freed when the last reference drops: the main thread holds one
 * until gone, the image's notify thread one until the listener has no
 * users left.  The region mapping lives as long as the image.
 *
 * Untrusted memory: the program writes the region.  Every index is
 * bounds-checked against SC_REGION_SLOTS (not against the program's
 * rh_npages alone), slot contents are only compared, never followed.
 * If the program shrinks the memfd, our loads would fault with SIGBUS:
 * the guard maps a zero page over the faulting page and lets the load
 * retry, so the supervisor reads zeros (no live slots) instead of dying.
 *
 * The list belongs to the main thread; a notify thread receives the
 * notifications of every image of the program (one listener per filter
 * chain, agent.c) and looks threads of other images up under image_lock,
 * which the main thread takes to link, unlink or map an image.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include "supervisor/sv.h"

static pthread_mutex_t image_lock = PTHREAD_MUTEX_INITIALIZER;

struct sv_image *sv_image_new(pid_t pid, int conn)
{
	struct sv_image *im = calloc(1, sizeof *im);
	if (!im)
		return NULL;
	im->im_pid = pid;
	im->im_conn = conn;
	im->im_listener = -1;
	im->im_refs = 1;
	pthread_mutex_lock(&image_lock);
	im->im_next = sv.st_images;
	sv.st_images = im;
	pthread_mutex_unlock(&image_lock);
	return im;
}

struct sv_image *sv_image_of(pid_t pid)
{
	for (struct sv_image *im = sv.st_images; im; im = im->im_next)
		if (im->im_pid == pid && !im->im_gone)
			return im;
	return NULL;
}

void sv_image_put(struct sv_image *im)
{
	if (__atomic_sub_fetch(&im->im_refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	if (im->im_base)
		munmap(im->im_base, SC_REGION_SIZE);
	if (im->im_listener >= 0)
		close(im->im_listener);
	free(im);
}

/* => main thread.  Unlinks im and drops the main thread's reference. */
void sv_image_gone(struct sv_image *im)
{
	pthread_mutex_lock(&image_lock);
	__atomic_store_n(&im->im_gone, true, __ATOMIC_RELAXED);
	for (struct sv_image **pp = &sv.st_images; *pp; pp = &(*pp)->im_next)
		if (*pp == im) {
			*pp = im->im_next;
			break;
		}
	pthread_mutex_unlock(&image_lock);
	if (im->im_conn >= 0) {
		epoll_ctl(sv.st_epfd, EPOLL_CTL_DEL, im->im_conn, NULL);
		close(im->im_conn);
		im->im_conn = -1;
	}
	sv_image_put(im);
}

int sv_image_map(struct sv_image *im, int memfd)
{
	void *p = mmap(NULL, SC_REGION_SIZE, PROT_READ | PROT_WRITE,
	               MAP_SHARED | MAP_NORESERVE, memfd, 0);
	if (p == MAP_FAILED)
		return -errno;
	const struct sc_region_hdr *h = p;
	if (__atomic_load_n(&h->rh_magic, __ATOMIC_ACQUIRE) != SC_REGION_MAGIC ||
	    h->rh_version != SC_REGION_VERSION || h->rh_slot_size != SC_SLOT_SIZE) {
		munmap(p, SC_REGION_SIZE);
		return -EPROTO;
	}
	pthread_mutex_lock(&image_lock);
	im->im_base = p;
	pthread_mutex_unlock(&image_lock);
	return 0;
}

static struct sc_slot *slot_at(const struct sv_image *im, uint32_t idx)
{
	return (struct sc_slot *)(im->im_base + (size_t)idx * SC_SLOT_SIZE);
}

static bool slot_is(const struct sc_slot *s, pid_t tid)
{
	return __atomic_load_n(&s->ss_tid, __ATOMIC_ACQUIRE) == tid &&
	       __atomic_load_n(&s->ss_pub.sc_state, __ATOMIC_ACQUIRE) != SC_FREE;
}

struct sc_slot *sv_slot_find(const struct sv_image *im, pid_t tid,
                             uint32_t *hint)
{
	if (!im || !im->im_base || tid <= 0)
		return NULL;
	const struct sc_region_hdr *h = (const void *)im->im_base;
	uint32_t npages = __atomic_load_n(&h->rh_npages, __ATOMIC_ACQUIRE);
	if (npages > SC_REGION_PAGES)
		npages = SC_REGION_PAGES;
	uint32_t nslots = npages * SC_SLOTS_PER_PAGE;
	if (*hint > 0 && *hint < nslots && slot_is(slot_at(im, *hint), tid))
		return slot_at(im, *hint);
	for (uint32_t i = 1; i < nslots; i++)
		if (slot_is(slot_at(im, i), tid)) {
			*hint = i;
			return slot_at(im, i);
		}
	return NULL;
}

struct sc_slot *sv_slot_find_any(pid_t tid, uint32_t *hint,
                                 const struct sv_image *skip,
                                 struct sv_image **imp)
{
	struct sc_slot *s = NULL;
	pthread_mutex_lock(&image_lock);
	for (struct sv_image *im = sv.st_images; im && !s; im = im->im_next) {
		if (im == skip || __atomic_load_n(&im->im_gone, __ATOMIC_RELAXED))
			continue;
		s = sv_slot_find(im, tid, hint);
		if (s) {
			__atomic_add_fetch(&im->im_refs, 1, __ATOMIC_RELAXED);
			*imp = im;
		}
	}
	pthread_mutex_unlock(&image_lock);
	return s;
}

/* Publish a state observed by the supervisor (abi.h: W fields, relaxed;
 * readers re-check ss_gen).  Only SUPERVISOR-source slots take any state;
 * PERF-source slots take SC_STOPPED and its clearing only. */
uint64_t sv_slot_store(struct sc_slot *s, int state, int cpu)
{
	int src = __atomic_load_n(&s->ss_source, __ATOMIC_RELAXED);
	if (src != SCHEDCTL_SOURCE_SUPERVISOR) {
		if (src != SCHEDCTL_SOURCE_PERF)
			return 0;
		int cur = __atomic_load_n(&s->ss_pub.sc_state, __ATOMIC_RELAXED);
		if (state == SC_STOPPED || cur == SC_STOPPED)
			__atomic_store_n(&s->ss_pub.sc_state,
			                 state == SC_STOPPED ? SC_STOPPED : SC_ONPROC,
			                 __ATOMIC_RELAXED);
		return 0;
	}
	uint64_t stamp = sc_now_ns();
	if (cpu >= 0)
		__atomic_store_n(&s->ss_pub.sc_cpu, cpu, __ATOMIC_RELAXED);
	__atomic_store_n(&s->ss_stamp_ns, stamp, __ATOMIC_RELAXED);
	__atomic_store_n(&s->ss_pub.sc_state, (unsigned short)state,
	                 __ATOMIC_RELAXED);
	return stamp;
}

static void image_sigbus(int sig, siginfo_t *si, void *ctx)
{
	(void)sig;
	(void)ctx;
	uintptr_t page = (uintptr_t)si->si_addr & ~(uintptr_t)(SC_PAGE_SIZE - 1);
	void *p = mmap((void *)page, SC_PAGE_SIZE, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (p == MAP_FAILED)
		_exit(1);
}

void sv_sigbus_guard(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = image_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGBUS, &sa, NULL);
}
