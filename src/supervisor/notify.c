/*
 * notify.c - seccomp user notifications: one thread per listener.
 *
 * A notification means "thread TID is entering a call that may block".
 * The program has one listener (the first image's: the kernel allows one
 * live listener per filter chain, agent.c), so its thread receives the
 * notifications of every process and image of the program and finds the
 * thread's slot in its own image first, then in the others.  The thread
 * blocks in ioctl(NOTIF_RECV) (no epoll round: with
 * SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP the kernel hands the CPU straight
 * from the notifying thread to us and back), then:
 *
 *   1. records a low-water id in the region header (rh_notif_id) of the
 *      listener's image and of the thread's image, so a watchdog that
 *      outlives us can answer what we received but did not answer: the
 *      oldest id deferred to the main thread and not yet handled (it
 *      waits for an answer too), else this one; ids ascend, and the
 *      watchdogs answer a window from it on (agent.c);
 *   2. applies the illumos emulations, in illumos order:
 *        sc_sigblock set   -> the main thread (the tracer) interrupts the
 *                             thread, blocks every maskable signal and
 *                             clears the flag; the call restarts and
 *                             notifies again (trace.c)
 *        SC_CANCEL_FLG set -> the call fails with EINTR, SC_EINTR_FLG set
 *        SC_PARK_FLG set   -> the park is recorded and the flag cleared,
 *                             as illumos clears it when the park returns
 *                             (the return is the one point we cannot see)
 *   3. marks the thread SC_SLEEP with the call number (supervisor-source
 *      slots only) and answers CONTINUE: the kernel runs the real call.
 *
 * The program's sleeps through libc (nanosleep, clock_nanosleep, sleep,
 * usleep, thrd_sleep) come here only when step 2 has work (an illumos
 * request pending in the slot): otherwise they carry the cookie and do
 * step 3 themselves (sleep.c says why).
 *
 * The sampler (sample.c) sees the thread wake up; notifications cannot.
 *
 * Interrupted notifications: a signal or ptrace stop withdraws a pending
 * notification, and our answer then fails with ENOENT, which is fine:
 * the state we wrote is SC_SLEEP for a thread that is about to run a
 * signal handler or stop, and the sampler or trace.c corrects it; a
 * restarted call notifies again and is handled afresh.
 *
 * The thread ends when the listener has no users left (NOTIF_RECV fails
 * and poll says POLLHUP): no process uses this filter any more.
 */
#include <errno.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "supervisor/sv.h"

/* Requests from notify threads to the main thread (sv_lock, leaf). */
struct notify_req {
	pid_t nr_tid;
	uint64_t nr_id;
	struct sv_image *nr_im;   /* holds a reference */
};
#define NOTIFY_NREQ 256
static pthread_mutex_t sv_lock = PTHREAD_MUTEX_INITIALIZER;
static struct notify_req notify_q[NOTIFY_NREQ];
static unsigned notify_nq;

#define NOTIFY_HINTS 256
struct notify_cache {
	pid_t nc_tid[NOTIFY_HINTS];
	uint32_t nc_idx[NOTIFY_HINTS];
	bool nc_other[NOTIFY_HINTS];  /* the slot is in another image */
};

/* => tid's slot: in im (the listener's image) or, with a reference on
 * that image in *owner, in another one; NULL if none. */
static struct sc_slot *notify_slot(struct sv_image *im, struct notify_cache *c,
                                   pid_t tid, struct sv_image **owner)
{
	unsigned h = (unsigned)tid % NOTIFY_HINTS;
	bool known = c->nc_tid[h] == tid;
	uint32_t hint = known ? c->nc_idx[h] : 0;
	struct sc_slot *s = NULL;
	*owner = NULL;
	if (!known || !c->nc_other[h])
		s = sv_slot_find(im, tid, &hint);
	if (!s)
		s = sv_slot_find_any(tid, &hint, im, owner);
	if (s) {
		c->nc_tid[h] = tid;
		c->nc_idx[h] = hint;
		c->nc_other[h] = *owner != NULL;
	}
	return s;
}

static void notify_send(int listener, uint64_t id, int error)
{
	struct seccomp_notif_resp r = { .id = id };
	if (error)
		r.error = -error;
	else
		r.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	while (ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &r) < 0 && errno == EINTR)
		;
}

/* => true if the answer is deferred to the main thread.  im: the
 * listener's image, whose listener the main thread answers on. */
static bool notify_sigblock(struct sv_image *im, pid_t tid, uint64_t id)
{
	bool queued = false;
	pthread_mutex_lock(&sv_lock);
	if (notify_nq < NOTIFY_NREQ) {
		__atomic_add_fetch(&im->im_refs, 1, __ATOMIC_RELAXED);
		notify_q[notify_nq++] = (struct notify_req){ tid, id, im };
		if (!im->im_deferred_low)
			__atomic_store_n(&im->im_deferred_low, id, __ATOMIC_RELAXED);
		queued = true;
	}
	pthread_mutex_unlock(&sv_lock);
	if (queued) {
		uint64_t one = 1;
		(void)!write(sv.st_eventfd, &one, sizeof one);
	}
	return queued;
}

/* Steps 2 and 3 for the thread whose slot is s; im: the listener's
 * image.  => as notify_handle(). */
static int notify_emulate(struct sv_image *im, struct sc_slot *s,
                          const struct seccomp_notif *n)
{
	sc_shared_t *pub = &s->ss_pub;
	if (__atomic_load_n(&pub->sc_sigblock, __ATOMIC_ACQUIRE) &&
	    notify_sigblock(im, (pid_t)n->pid, n->id))
		return -1;
	unsigned char flgs = __atomic_load_n(&pub->sc_flgs, __ATOMIC_ACQUIRE);
	if ((flgs & SC_CANCEL_FLG) && !__atomic_load_n(&pub->sc_sigblock,
	                                               __ATOMIC_RELAXED)) {
		__atomic_or_fetch(&pub->sc_flgs, SC_EINTR_FLG, __ATOMIC_RELEASE);
		return EINTR;
	}
	if (flgs & SC_PARK_FLG)
		__atomic_and_fetch(&pub->sc_flgs, (unsigned char)~SC_PARK_FLG,
		                   __ATOMIC_RELEASE);
	if (__atomic_load_n(&s->ss_source, __ATOMIC_RELAXED) ==
	    SCHEDCTL_SOURCE_SUPERVISOR) {
		__atomic_store_n(&s->ss_sysno, (uint32_t)n->data.nr, __ATOMIC_RELAXED);
		sv_slot_store(s, SC_SLEEP, -1);
	}
	return 0;
}

/* Step 1 for one region (relaxed: the watchdog reads it after the
 * supervisor is dead, ordered by its socket's hang-up). */
static void notify_record(struct sv_image *im, uint64_t id)
{
	struct sc_region_hdr *h = (struct sc_region_hdr *)im->im_base;
	if (h)
		__atomic_store_n(&h->rh_notif_id, id, __ATOMIC_RELAXED);
}

/* => the id to record for a notification just received (step 1).  Only
 * this thread raises im_deferred_low from 0; the main thread lowers or
 * clears it, under sv_lock, once a deferral is handled. */
static uint64_t notify_low(struct sv_image *im, uint64_t id)
{
	uint64_t low = __atomic_load_n(&im->im_deferred_low, __ATOMIC_RELAXED);
	return low && low < id ? low : id;
}

/* => the errno to fail the call with, 0 to let it run; -1 if deferred.
 * im: the listener's image; the thread may belong to any image. */
static int notify_handle(struct sv_image *im, struct notify_cache *c,
                         const struct seccomp_notif *n, uint64_t low)
{
	struct sv_image *owner;
	struct sc_slot *s = notify_slot(im, c, (pid_t)n->pid, &owner);
	if (!s)
		return 0;
	if (owner)
		notify_record(owner, low);
	int err = notify_emulate(im, s, n);
	if (owner)
		sv_image_put(owner);
	return err;
}

static bool notify_listener_dead(int listener)
{
	struct pollfd p = { .fd = listener, .events = POLLIN };
	return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR | POLLNVAL));
}

static void *notify_thread(void *arg)
{
	struct sv_image *im = arg;
	struct notify_cache *c = calloc(1, sizeof *c);
	struct seccomp_notif n;
	if (!c)
		goto out;
	for (;;) {
		memset(&n, 0, sizeof n);
		if (ioctl(im->im_listener, SECCOMP_IOCTL_NOTIF_RECV, &n) < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOENT && !notify_listener_dead(im->im_listener))
				continue;
			break;
		}
		uint64_t low = notify_low(im, n.id);
		notify_record(im, low);
		__atomic_add_fetch(&im->im_notified, 1, __ATOMIC_RELAXED);
		int err = notify_handle(im, c, &n, low);
		if (err >= 0)
			notify_send(im->im_listener, n.id, err);
	}
out:
	free(c);
	sv_image_put(im);
	return NULL;
}

int sv_notify_start(struct sv_image *im)
{
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, 64 * 1024);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	__atomic_add_fetch(&im->im_refs, 1, __ATOMIC_RELAXED);
	int e = pthread_create(&im->im_thread, &a, notify_thread, im);
	pthread_attr_destroy(&a);
	if (e) {
		sv_image_put(im);
		return -e;
	}
	im->im_has_thread = true;
	return 0;
}

void sv_notify_requests(void)
{
	struct notify_req q[NOTIFY_NREQ];
	pthread_mutex_lock(&sv_lock);
	unsigned n = notify_nq;
	memcpy(q, notify_q, n * sizeof q[0]);
	notify_nq = 0;
	pthread_mutex_unlock(&sv_lock);
	for (unsigned i = 0; i < n; i++) {
		/* If the thread cannot be stopped, let its call run rather
		 * than leave it waiting for an answer that never comes.  Once
		 * it is interrupted, the kernel withdraws the notification
		 * whether or not we live. */
		if (sv_trace_request_sigblock(q[i].nr_tid) < 0)
			notify_send(q[i].nr_im->im_listener, q[i].nr_id, 0);
	}
	/* Handled: the low-water ids are now the oldest still queued. */
	pthread_mutex_lock(&sv_lock);
	for (unsigned i = 0; i < n; i++) {
		uint64_t low = 0;
		for (unsigned j = 0; j < notify_nq; j++)
			if (notify_q[j].nr_im == q[i].nr_im &&
			    (!low || notify_q[j].nr_id < low))
				low = notify_q[j].nr_id;
		__atomic_store_n(&q[i].nr_im->im_deferred_low, low,
		                 __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&sv_lock);
	for (unsigned i = 0; i < n; i++)
		sv_image_put(q[i].nr_im);
}
