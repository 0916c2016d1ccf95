/* Thread storms: slots recycle, readers racing with exits stay safe. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>

#include <schedctl.h>
#include "sc/sc.h"
#include "util.h"

static atomic_int storm_done;
static atomic_long reads, bad_reads;

/* Each thread of a wave takes its slot, then waits for the others to
 * take theirs: a slot freed by an early exit could otherwise go to a
 * later thread of the same wave, and the joined thread's slot would not
 * read SC_FREE (seen under ASan: 2 runs in ~20). */
static pthread_barrier_t wave_barrier;

static void *short_lived(void *p)
{
	(void)p;
	sc_shared_t *sc = schedctl_self();
	pthread_barrier_wait(&wave_barrier);
	return sc;
}

/* Reads every slot handed out so far, over and over, while threads come
 * and go: each read must give a valid state, whatever the race. */
static void *racing_reader(void *p)
{
	(void)p;
	while (!atomic_load(&storm_done)) {
		for (uint32_t i = 1; ; i++) {
			struct sc_slot *s = sc_slot_at(i);
			if (!s)
				break;
			int st = sc_slot_state(s, NULL);
			atomic_fetch_add_explicit(&reads, 1, memory_order_relaxed);
			if (st != SC_FREE && st != SC_SLEEP && st != SC_RUN &&
			    st != SC_ONPROC)
				atomic_fetch_add(&bad_reads, 1);
		}
	}
	return NULL;
}

Test(storm, two_thousand_short_lived_threads, .timeout = 120)
{
	enum { TOTAL = 2000, WAVE = 16 };
	cr_assert_not_null(schedctl_self());
	pthread_t reader;
	pthread_create(&reader, NULL, racing_reader, NULL);
	cr_assert_eq(pthread_barrier_init(&wave_barrier, NULL, WAVE), 0);
	for (int done = 0; done < TOTAL; done += WAVE) {
		pthread_t t[WAVE];
		for (int i = 0; i < WAVE; i++)
			cr_assert_eq(pthread_create(&t[i], NULL, short_lived, NULL), 0);
		for (int i = 0; i < WAVE; i++) {
			void *sc;
			pthread_join(t[i], &sc);
			cr_assert_not_null(sc);
			cr_assert_eq(schedctl_state(sc), SC_FREE);
		}
	}
	atomic_store(&storm_done, 1);
	pthread_join(reader, NULL);
	pthread_barrier_destroy(&wave_barrier);
	cr_log_info("%ld racing reads", atomic_load(&reads));
	cr_assert_eq(atomic_load(&bad_reads), 0);
	cr_assert_gt(atomic_load(&reads), 0);
	/* Never more than WAVE + 2 threads held slots at once: one page. */
	cr_assert_eq(sc_region_hdr()->rh_npages, 1);
	for (uint32_t i = 2; sc_slot_at(i); i++)
		cr_assert_eq(sc_slot_state(sc_slot_at(i), NULL), SC_FREE, "slot %u", i);
}
