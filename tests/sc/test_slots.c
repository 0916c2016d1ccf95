/* The slot allocator: pages, chaining, reuse, many threads, bad input. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <schedctl.h>
#include "sc/sc.h"
#include "util.h"

struct holder {
	pthread_t h_thr;
	sc_shared_t *h_sc;
	pid_t h_tid;
	atomic_int h_ready;
	int h_go_fd;     /* read end of a pipe: EOF means go */
};

static void *holder_main(void *p)
{
	struct holder *h = p;
	h->h_sc = schedctl_self();
	h->h_tid = gettid();
	atomic_store(&h->h_ready, 1);
	char c;
	while (read(h->h_go_fd, &c, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

/* Holders block in read() until the gate's write end is closed. */
struct gate { int g_fd[2]; };

static void start_holders(struct holder *h, int n, struct gate *go)
{
	if (go->g_fd[0] == 0 && go->g_fd[1] == 0)
		cr_assert_eq(pipe(go->g_fd), 0);
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, 64 * 1024);
	for (int i = 0; i < n; i++) {
		h[i].h_go_fd = go->g_fd[0];
		cr_assert_eq(pthread_create(&h[i].h_thr, &a, holder_main, &h[i]), 0);
	}
	for (int i = 0; i < n; i++)
		cr_assert(tu_wait_flag(&h[i].h_ready));
	pthread_attr_destroy(&a);
}

static void join_holders(struct holder *h, int n, struct gate *go)
{
	close(go->g_fd[1]);
	for (int i = 0; i < n; i++)
		pthread_join(h[i].h_thr, NULL);
}

Test(slots, header_describes_region)
{
	cr_assert_not_null(schedctl_self());
	struct sc_region_hdr *h = sc_region_hdr();
	cr_assert_not_null(h);
	cr_assert_eq(h->rh_magic, SC_REGION_MAGIC);
	cr_assert_eq(h->rh_version, SC_REGION_VERSION);
	cr_assert_eq(h->rh_slot_size, SC_SLOT_SIZE);
	cr_assert_eq(h->rh_pid, getpid());
	cr_assert_eq(h->rh_npages, 1);
	/* The first thread gets slot 1: slot 0 is the header. */
	cr_assert_eq(sc_slot_index(sc_thread_slot()), 1);
}

Test(slots, full_page_then_chaining)
{
	struct gate go = { { 0, 0 } };
	static struct holder h[SC_SLOTS_PER_PAGE];
	cr_assert_not_null(schedctl_self());          /* slot 1 */
	/* 62 more fill page 0 (63 slots besides the header). */
	start_holders(h, SC_SLOTS_PER_PAGE - 2, &go);
	cr_assert_eq(sc_region_hdr()->rh_npages, 1, "page 0 should hold 63 threads");
	/* One more needs a second page. */
	start_holders(h + SC_SLOTS_PER_PAGE - 2, 1, &go);
	cr_assert_eq(sc_region_hdr()->rh_npages, 2);
	struct sc_slot *last = sc_slot_from_pub(h[SC_SLOTS_PER_PAGE - 2].h_sc);
	cr_assert_not_null(last);
	cr_assert_eq(sc_slot_index(last), SC_SLOTS_PER_PAGE);
	/* All distinct. */
	for (unsigned i = 0; i < SC_SLOTS_PER_PAGE - 1; i++)
		for (unsigned j = i + 1; j < SC_SLOTS_PER_PAGE - 1; j++)
			cr_assert_neq(h[i].h_sc, h[j].h_sc);
	join_holders(h, SC_SLOTS_PER_PAGE - 1, &go);
}

static void *take_and_leave(void *p)
{
	*(sc_shared_t **)p = schedctl_self();
	return NULL;
}

Test(slots, exit_frees_and_slot_is_reused)
{
	cr_assert_not_null(schedctl_self());
	sc_shared_t *first, *second;
	pthread_t t;
	pthread_create(&t, NULL, take_and_leave, &first);
	pthread_join(t, NULL);
	cr_assert_not_null(first);
	/* The pointer kept from before stays readable and says FREE. */
	cr_assert_eq(schedctl_state(first), SC_FREE);
	cr_assert_eq(schedctl_tid(first), 0);
	cr_assert_eq(schedctl_cpu(first), -1);
	pthread_create(&t, NULL, take_and_leave, &second);
	pthread_join(t, NULL);
	cr_assert_eq(second, first, "the lowest free slot is reused");
	uint32_t g = sc_slot_from_pub(second)->ss_gen;
	cr_assert_geq(g, 2, "generation counts owners");
}

Test(slots, thousand_threads, .timeout = 60)
{
	enum { N = 1000 };
	static struct holder h[N];
	struct gate go = { { 0, 0 } };
	cr_assert_not_null(schedctl_self());
	start_holders(h, N, &go);
	uint32_t npages = sc_region_hdr()->rh_npages;
	cr_assert_eq(npages, (N + 1 + SC_SLOTS_PER_PAGE) / SC_SLOTS_PER_PAGE,
	             "%u pages for %d threads", npages, N + 1);
	/* Every thread has its own slot, findable by tid, with a state. */
	uint8_t *seen = calloc(SC_REGION_SLOTS, 1);
	for (int i = 0; i < N; i++) {
		struct sc_slot *s = sc_slot_from_pub(h[i].h_sc);
		cr_assert_not_null(s);
		uint32_t idx = sc_slot_index(s);
		cr_assert_eq(seen[idx], 0, "slot %u handed out twice", idx);
		seen[idx] = 1;
		cr_assert_eq(schedctl_of(h[i].h_tid), h[i].h_sc);
		cr_assert_eq(schedctl_tid(h[i].h_sc), h[i].h_tid);
		int st = schedctl_state(h[i].h_sc);
		cr_assert(st == SC_SLEEP || st == SC_RUN || st == SC_ONPROC,
		          "thread %d state %d", i, st);
	}
	free(seen);
	join_holders(h, N, &go);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(schedctl_state(h[i].h_sc), SC_FREE);
		cr_assert_null(schedctl_of(h[i].h_tid));
	}
	/* Pages are never returned; the freed slots are reused first. */
	pthread_t t;
	sc_shared_t *again;
	pthread_create(&t, NULL, take_and_leave, &again);
	pthread_join(t, NULL);
	cr_assert_eq(sc_slot_index(sc_slot_from_pub(again)), 2);
	cr_assert_eq(sc_region_hdr()->rh_npages, npages);
}

Test(slots, bad_pointers_are_einval)
{
	sc_shared_t *me = schedctl_self();
	cr_assert_not_null(me);
	char local[64];
	const sc_shared_t *bad[] = {
		NULL,
		(const sc_shared_t *)local,
		(const sc_shared_t *)((char *)me + 1),
		(const sc_shared_t *)((char *)me - SC_SLOT_SIZE),   /* the header */
		(const sc_shared_t *)((char *)me + 100 * SC_PAGE_SIZE), /* past the pages */
		(const sc_shared_t *)(uintptr_t)-64,
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		errno = 0;
		cr_assert_eq(schedctl_state(bad[i]), -1, "case %zu", i);
		cr_assert_eq(errno, EINVAL, "case %zu", i);
		errno = 0;
		cr_assert_eq(schedctl_cpu(bad[i]), -1);
		cr_assert_eq(errno, EINVAL);
		cr_assert_eq(schedctl_tid(bad[i]), -1);
		cr_assert_eq(schedctl_source(bad[i]), -1);
	}
	errno = 0;
	cr_assert_null(schedctl_of(0));
	cr_assert_eq(errno, ESRCH);
	cr_assert_null(schedctl_of(-5));
	cr_assert_null(schedctl_of(getpid() + 1000000));
	cr_assert_eq(schedctl_of(gettid()), me);
	cr_assert_null(sc_slot_at(0));
	cr_assert_null(sc_slot_at(SC_REGION_SLOTS + 7));
}

Test(slots, before_any_slot_lookups_fail_cleanly)
{
	/* A fresh process (each Criterion test runs in its own). */
	cr_assert_null(schedctl_lookup());
	cr_assert_null(sc_region_hdr());
	errno = 0;
	cr_assert_null(schedctl_of(gettid()));
	cr_assert_eq(errno, ESRCH);
	int x;
	cr_assert_eq(schedctl_state((sc_shared_t *)&x), -1);
	cr_assert_eq(errno, EINVAL);
}
