/*
 * A fault the pager cannot serve (src/pager/bus.c): SIGBUS for the
 * faulting thread, nothing lost, and the next access tries again, as the
 * kernel does for a file page it cannot read.  Failures are single
 * calls failed by injection (src/pager/inject.h).  Checked here:
 *   - a transient failure of a missing page (zero fill, 2A): one SIGBUS,
 *     then the same access, executed again when the handler returns, is
 *     served with the right data;
 *   - a failed write fault (1A, 1B, 2B, a shared object's write in
 *     place): one SIGBUS, the page keeps its data, the retried write
 *     lands;
 *   - a COW copy that cannot be mapped never maps the shared page
 *     writable while unwatched (a write there reached the source); a
 *     registration failing once is served, no SIGBUS;
 *   - a signal that cannot be sent poisons the page; a present page is
 *     not poisoned as missing (2A filled it, the promotion failed);
 *     SIGBUS still pending (test hook): test_sigbus_pending.c;
 *   - SIGBUS blocked, ignored or left at its default: the process dies
 *     of SIGBUS, as with a native mapping's SIGBUS (fork children);
 *   - a permanent failure: SIGBUS on every access, other pages served;
 *   - an access from the kernel (read(2) into the page, mlock): the call
 *     fails, and the page is poisoned (docs/pager.md, "Limits").
 * A handler that returns more than once for one access (the old
 * behaviour: a poisoned page raises SIGBUS forever) leaves by
 * siglongjmp, and the test fails on the count, never hangs.  The
 * handler and the helpers both programs use: sigbus_helper.h.
 */
#include <grp.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "sigbus_helper.h"

/* ---- 1. a transient failure of a missing page ------------------------ */

Test(sigbus, zero_fill_fails_once_then_the_retry_is_served, .timeout = 30)
{
	struct uvm_region *r = sb_anon();
	unsigned char *p = uvm_base(r);
	uint64_t s0, p0;
	sb_counts(&s0, &p0);
	inj_arm(INJ_COPY, 0, 1, ENOMEM);
	cr_assert_eq(sb_access(p + 20 * PG + 5, false, 0, 2), 0,
	             "SIGBUS %d times for one transient failure", sb_n);
	cr_assert_eq(sb_n, 1);
	cr_assert_eq(sb_addr, p + 20 * PG, "si_addr: the page");
	cr_assert_eq(sb_code, SI_QUEUE);
	cr_assert_eq(sb_val, 0, "a zero page");
	cr_assert_eq(inj_failed(INJ_COPY), 1);
	inj_reset();
	sb_expect_counts(s0, p0, 1, 0, "zero fill");
	p[20 * PG + 5] = 9;
	cr_assert_eq(p[20 * PG + 5], 9);
	cr_assert_eq(uvm_unmap(r, 0, NPG * PG), 0);
	ij_all_gone();
}

Test(sigbus, object_fetch_fails_once_then_the_retry_is_served, .timeout = 30)
{
	sb_install();
	int fd = ij_file(3, NPG);
	struct uvm_region *r = uvm_map_file(fd, 0, NPG * PG, RW,
	                                    UVM_MAP_PRIVATE);
	cr_assert_not_null(r);
	cr_assert_eq(uvm_advise(r, UVM_ADV_RANDOM), 0);
	unsigned char *p = uvm_base(r);
	inj_arm(INJ_FILE_READ, 0, 1, EIO);
	cr_assert_eq(sb_access(p + 12 * PG + 512, false, 0, 2), 0,
	             "SIGBUS %d times", sb_n);
	cr_assert_eq(sb_n, 1);
	cr_assert_eq(sb_val, ij_byte(3, 12, 512), "the file's data");
	inj_reset();
	cr_assert(ij_holds(p, 3, 0, NPG));
	cr_assert_eq(uvm_unmap(r, 0, NPG * PG), 0);
	close(fd);
	ij_all_gone();
}

struct sb_job {
	volatile unsigned char *sj_p;
	unsigned char sj_val;
};

static void *sb_reader(void *arg)
{
	struct sb_job *j = arg;
	j->sj_val = *j->sj_p;   /* the handler returns: never left early */
	return NULL;
}

/* Four threads read the same missing page while its first fill fails:
 * the thread whose fault failed gets the one SIGBUS, every thread reads
 * the zero page, nothing is poisoned. */
Test(sigbus, threads_on_one_page_one_transient_failure, .timeout = 30)
{
	struct uvm_region *r = sb_anon();
	unsigned char *p = uvm_base(r);
	uint64_t s0, p0;
	sb_counts(&s0, &p0);
	sb_n = 0;
	sb_bail = 1000;
	inj_arm(INJ_COPY, 0, 1, ENOMEM);
	struct sb_job j[4];
	pthread_t t[4];
	for (int k = 0; k < 4; k++) {
		j[k] = (struct sb_job){ .sj_p = p + 13 * PG + 8, .sj_val = 1 };
		cr_assert_eq(pthread_create(&t[k], NULL, sb_reader, &j[k]), 0);
	}
	for (int k = 0; k < 4; k++) {
		pthread_join(t[k], NULL);
		cr_assert_eq(j[k].sj_val, 0, "thread %d", k);
	}
	cr_assert_eq(inj_failed(INJ_COPY), 1);
	inj_reset();
	cr_assert_eq(sb_n, 1, "%d SIGBUS for one failure", sb_n);
	sb_expect_counts(s0, p0, 1, 0, "four threads");
	cr_assert_eq(uvm_unmap(r, 0, NPG * PG), 0);
	ij_all_gone();
}

/* ---- 2. a failed write fault loses nothing --------------------------- */

/* 1A: exclusive pages, write-protected (a copy came and went). */
static unsigned char *w_own(void)
{
	wr = uvm_map_anon(NPG * PG, RW);
	cr_assert_not_null(wr);
	ij_fill(uvm_base(wr), 1, 0, NPG);
	struct uvm_region *d = uvm_copy(wr);
	cr_assert_not_null(d);
	cr_assert_eq(uvm_unmap(d, 0, NPG * PG), 0);
	return uvm_base(wr);
}

/* A file region (flags: private or shared), page 5 cached. */
static unsigned char *w_file(int flags)
{
	wfd = ij_file(1, NPG);
	wr = uvm_map_file(wfd, 0, NPG * PG, RW, flags);
	cr_assert_not_null(wr);
	cr_assert_eq(uvm_advise(wr, UVM_ADV_RANDOM), 0);
	cr_assert(ij_holds(uvm_base(wr), 1, 5, 1));
	return uvm_base(wr);
}

/* 2B: a private file region; its writes are promoted. */
static unsigned char *w_promote(void)
{
	return w_file(UVM_MAP_PRIVATE);
}

/* A shared file region: written in place. */
static unsigned char *w_shared(void)
{
	return w_file(UVM_MAP_SHARED);
}

struct w_case {
	const char *wc_name;
	unsigned char *(*wc_setup)(void);
	enum inj_point wc_point;
	int wc_err;
};

static const struct w_case w_cases[] = {
	{ "1A, unprotect fails", w_own, INJ_WP, ENOMEM },
	{ "1B, pool full", w_cow, INJ_POOL_WRITE, ENOSPC },
	{ "1B, pool unreadable", w_cow, INJ_POOL_READ, EIO },
	{ "1B, copy cannot be mapped", w_cow, INJ_MMAP, ENOMEM },
	{ "2B, pool full", w_promote, INJ_POOL_WRITE, ENOSPC },
	{ "2B, copy cannot be mapped", w_promote, INJ_MMAP, ENOMEM },
	{ "shared, unprotect fails", w_shared, INJ_WP, ENOMEM },
};

/* The handler returns: one SIGBUS, then the write lands. */
Test(sigbus, failed_write_fault_is_retried_and_lands, .timeout = 60)
{
	sb_install();
	for (size_t k = 0; k < sizeof w_cases / sizeof w_cases[0]; k++) {
		const struct w_case *c = &w_cases[k];
		unsigned char *p = c->wc_setup();
		uint64_t s0, p0;
		sb_counts(&s0, &p0);
		inj_arm(c->wc_point, 0, 1, c->wc_err);
		cr_assert_eq(sb_access(p + 5 * PG + 100, true, 0xa5, 2), 0,
		             "%s: SIGBUS %d times", c->wc_name, sb_n);
		cr_assert_eq(inj_failed(c->wc_point), 1, "%s", c->wc_name);
		inj_reset();
		cr_assert_eq(sb_n, 1, "%s", c->wc_name);
		cr_assert_eq(sb_addr, p + 5 * PG, "%s", c->wc_name);
		sb_expect_counts(s0, p0, 1, 0, c->wc_name);
		w_check(p, 0xa5, c->wc_name);
		if (c->wc_setup == w_shared) {
			unsigned char b = 0;
			cr_assert_eq(uvm_flush(wr), 0);
			cr_assert_eq(pread(wfd, &b, 1, 5 * PG + 100), 1);
			cr_assert_eq(b, 0xa5, "%s: flushed", c->wc_name);
			cr_assert(ij_file_holds(wfd, 1, 5, 1));
		}
		w_teardown();
	}
}

/* The handler jumps out: the page still reads its old data (it was not
 * poisoned, its anon not dropped), and a later write lands. */
Test(sigbus, failed_write_fault_leaves_the_page_as_it_was, .timeout = 60)
{
	sb_install();
	for (size_t k = 0; k < sizeof w_cases / sizeof w_cases[0]; k++) {
		const struct w_case *c = &w_cases[k];
		unsigned char *p = c->wc_setup();
		unsigned char old = p[5 * PG + 100];
		inj_arm(c->wc_point, 0, 1, c->wc_err);
		cr_assert_eq(sb_access(p + 5 * PG + 100, true, 0xa5, 1), -1,
		             "%s: no SIGBUS", c->wc_name);
		inj_reset();
		cr_assert_eq(sb_access(p + 5 * PG + 100, false, 0, 1), 0,
		             "%s: the page still reads", c->wc_name);
		w_check(p, -1, c->wc_name);
		cr_assert_eq(sb_val, old, "%s: old byte",
		             c->wc_name);
		p[5 * PG + 100] = 0x5a;
		w_check(p, 0x5a, c->wc_name);
		w_teardown();
	}
}

/* A COW copy that cannot be mapped, with another thread writing the page
 * meanwhile (the hook runs where the kernel mapping is not watched: after
 * an mmap, before UFFDIO_REGISTER).  The shared page must never be mapped
 * writable there: the write would land in the source (region.c,
 * invariant 5).  A write made to the new copy there is kept. */
static unsigned char *volatile ww_page;   /* the page the writer writes */

static void ww_write_in_window(uintptr_t va, size_t len)
{
	unsigned char *p = ww_page;
	if (p && (uintptr_t)p >= va && (uintptr_t)p < va + len)
		p[1024] = 0x77;   /* plain store: the mapping is unwatched */
}

static void ww_case(enum inj_point pt, int count, int want_sigbus)
{
	unsigned char *p = w_cow();
	inj_arm(pt, 0, count, ENOMEM);
	ww_page = p + 5 * PG;
	__atomic_store_n(&uvm_pager.up_test_window, ww_write_in_window,
	                 __ATOMIC_RELEASE);
	int a = sb_access(p + 5 * PG + 100, true, 0xa5, 2);
	__atomic_store_n(&uvm_pager.up_test_window, NULL, __ATOMIC_RELEASE);
	ww_page = NULL;
	inj_reset();
	cr_assert_eq(a, 0, "point %d: SIGBUS %d times", pt, sb_n);
	cr_assert_eq(sb_n, want_sigbus, "point %d", pt);
	const unsigned char *src = uvm_base(ws);
	cr_assert(src[5 * PG + 1024] == ij_byte(1, 5, 1024) &&
	          ij_holds(src, 1, 0, NPG),
	          "point %d: the source was written through the copy", pt);
	cr_assert_eq(p[5 * PG + 100], 0xa5, "point %d: the write", pt);
	cr_assert_eq(p[5 * PG + 1024], 0x77, "point %d: the window's write", pt);
	w_teardown();
}

Test(sigbus, failed_cow_mapping_never_maps_the_shared_page_writable,
     .timeout = 30)
{
	sb_install();
	/* mmap fails: the old mapping stays, one SIGBUS, the retry lands */
	ww_case(INJ_MMAP, 1, 1);
	/* UFFDIO_REGISTER fails once: the new page is mapped again (not
	 * the old one: the window's write would reach the source), the
	 * fault is served, no SIGBUS */
	ww_case(INJ_REGISTER, 1, 0);
	/* UFFDIO_REGISTER keeps failing: the page is poisoned (the last
	 * resort, losing the copy's data), the source is untouched */
	unsigned char *p = w_cow();
	uint64_t s0, p0;
	sb_counts(&s0, &p0);
	inj_arm(INJ_REGISTER, 0, -1, ENOMEM);
	cr_assert_eq(sb_access(p + 5 * PG + 100, true, 0xa5, 1), -1);
	inj_reset();
	cr_assert_neq(sb_code, SI_QUEUE, "the poisoned page's SIGBUS");
	sb_expect_counts(s0, p0, 0, 1, "register fails");
	cr_assert(ij_holds(uvm_base(ws), 1, 0, NPG), "the source");
	cr_assert_eq(sb_access(p + 5 * PG, false, 0, 1), -1, "poisoned");
	cr_assert(ij_holds(p, 1, 6, NPG - 6), "the other pages");
	w_teardown();
}

/* A first write to an object page of a private region: 2A fills it,
 * then its promotion (2B) fails, and the signal cannot be sent.  The
 * page is present now: the poison must not take it for missing
 * (UFFDIO_POISON would find a page, EEXIST, and only wake it: the fault
 * came again and failed a second time before it was poisoned). */
Test(sigbus, failed_promote_after_fill_poisons_a_present_page, .timeout = 30)
{
	sb_install();
	unsigned char *p = w_promote();
	uint64_t s0, p0;
	sb_counts(&s0, &p0);
	inj_arm(INJ_POOL_WRITE, 0, -1, ENOSPC);
	inj_arm(INJ_SIGNAL, 0, -1, EAGAIN);
	inj_arm(INJ_POISON, 1000, 1, EIO);   /* counts the calls only */
	int a = sb_access(p + 9 * PG + 100, true, 0xa5, 1);
	unsigned failed = inj_failed(INJ_POOL_WRITE);
	unsigned poison_ioctls = inj_hits(INJ_POISON);
	inj_reset();
	cr_assert_eq(a, -1);
	cr_assert_neq(sb_code, SI_QUEUE, "the poisoned page's SIGBUS");
	cr_assert_eq(failed, 1, "%u promotions failed", failed);
	cr_assert_eq(poison_ioctls, 0, "UFFDIO_POISON on a present page");
	sb_expect_counts(s0, p0, 0, 1, "promote fails");
	cr_assert(ij_holds(p, 1, 5, 1), "the other pages");
	w_teardown();
}

/* A thread whose write fault fails exits before the pager answers (a
 * late message: here it is cancelled, asynchronously, while the pager
 * works on its fault).  Nobody waits for that fault any more: the page
 * must keep its data for the other threads, not be poisoned. */
static _Atomic pid_t gx_tid;
static pthread_t gx_thread;

/* On the pager thread, serving the thread's fault: cancel it, and wait
 * until it is gone. */
static void gx_cancel_writer(enum inj_point pt)
{
	pid_t tid = gx_tid;
	if (pt != INJ_POOL_WRITE || !tid)
		return;
	gx_tid = 0;
	char path[64];
	snprintf(path, sizeof path, "/proc/self/task/%d", (int)tid);
	pthread_cancel(gx_thread);
	while (access(path, F_OK) == 0)
		sched_yield();
}

static void *gx_writer(void *arg)
{
	pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, NULL);
	gx_thread = pthread_self();   /* published by the store to gx_tid */
	gx_tid = (pid_t)syscall(SYS_gettid);
	*(volatile unsigned char *)arg = 0xa5;
	return NULL;   /* not reached: cancelled inside the fault */
}

Test(sigbus, failed_write_of_a_thread_that_exits_keeps_the_page,
     .timeout = 30)
{
	uint64_t s0, p0;
	unsigned char *p = w_cow_pool_write_fails(&s0, &p0);
	inj_set_cb(gx_cancel_writer);
	void *ret = NULL;
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, gx_writer, p + 5 * PG + 100), 0);
	pthread_join(t, &ret);
	cr_assert_eq(ret, PTHREAD_CANCELED);
	cr_assert_eq(inj_failed(INJ_POOL_WRITE), 1);
	inj_reset();
	sb_expect_counts(s0, p0, 0, 0, "a thread gone");
	cr_assert_eq(sb_access(p + 5 * PG, false, 0, 1), 0, "poisoned");
	w_check(p, -1, "a thread gone");
	p[5 * PG + 100] = 0x5a;
	w_check(p, 0x5a, "a thread gone");
	w_teardown();
}

static void sb_signal_fails(bool on)
{
	if (on)
		inj_arm(INJ_SIGNAL, 0, 1, EAGAIN);
	else
		cr_assert_eq(inj_failed(INJ_SIGNAL), 1);
}

/* The signal cannot be sent (injected): the page is poisoned. */
Test(sigbus, signal_that_cannot_be_sent_poisons_the_page, .timeout = 30)
{
	cr_assert_eq(sb_read_poisoned(1, sb_signal_fails), 1);
}

/* ---- 3. SIGBUS blocked, ignored or at its default -------------------- */

enum { SB_DEFAULT, SB_BLOCKED, SB_IGNORED };

/* In a fork child: set SIGBUS up as how says, then read a page that
 * raises SIGBUS: a managed page whose zero fill fails (write: a COW
 * write that fails), or (native) a page of a shared mapping past the
 * end of its empty memfd.  => the child's end (pu_wait). */
static int sb_child(int how, bool managed, bool write)
{
	pid_t pid = fork();
	if (pid == 0) {
		struct rlimit none = { 0, 0 };
		setrlimit(RLIMIT_CORE, &none);
		volatile unsigned char *p;
		if (managed) {
			struct uvm_region *r = uvm_map_anon(NPG * PG, RW);
			if (!r)
				_exit(20);
			p = (unsigned char *)uvm_base(r) + 3 * PG;
			if (write) {
				*p = 1;
				if (!uvm_copy(r))
					_exit(21);
			}
			inj_arm(write ? INJ_POOL_WRITE : INJ_COPY, 0, -1,
			        ENOMEM);
		} else {
			int fd = memfd_create("sigbus-native", 0);
			p = mmap(NULL, PG, RW, MAP_SHARED, fd, 0);
			if (fd < 0 || p == MAP_FAILED)
				_exit(22);
		}
		if (how == SB_BLOCKED) {
			sigset_t s;
			sigemptyset(&s);
			sigaddset(&s, SIGBUS);
			pthread_sigmask(SIG_BLOCK, &s, NULL);
		}
		signal(SIGBUS, how == SB_IGNORED ? SIG_IGN : SIG_DFL);
		if (write)
			*p = 2;
		else
			(void)*p;
		_exit(0);
	}
	return pu_wait(pid);
}

Test(sigbus, blocked_ignored_or_default_sigbus_kills_like_natively,
     .timeout = 30)
{
	static const char *how[] = { "default", "blocked", "ignored" };
	for (int h = SB_DEFAULT; h <= SB_IGNORED; h++) {
		int native = sb_child(h, false, false);
		cr_assert_eq(native, 1000 + SIGBUS, "native, %s: %d", how[h],
		             native);
		for (int w = 0; w < 2; w++) {
			int st = sb_child(h, true, w);
			cr_assert_eq(st, native, "managed %s, %s: %d, native %d",
			             w ? "write" : "read", how[h], st, native);
		}
	}
}

/* In a fork child: no core file, SIGALRM after 10 s (a fault left
 * waiting ends the child so), a new region.  => its base. */
static unsigned char *sb_child_region(void)
{
	struct rlimit none = { 0, 0 };
	setrlimit(RLIMIT_CORE, &none);
	alarm(10);
	struct uvm_region *r = uvm_map_anon(NPG * PG, RW);
	if (!r)
		_exit(20);
	return uvm_base(r);
}

/* In a fork child: read page 3 of p while its zero fill keeps failing. */
static void sb_child_read(unsigned char *p)
{
	inj_arm(INJ_COPY, 0, -1, ENOMEM);
	(void)*(volatile unsigned char *)(p + 3 * PG);
	_exit(0);
}

/* The end of a child that must die of SIGBUS, not be left waiting. */
static void sb_expect_sigbus_death(pid_t pid)
{
	int st = pu_wait(pid);
	if (st == 77)
		cr_skip_test("setgroups: EPERM (needs CAP_SETGID)");
	cr_assert_eq(st, 1000 + SIGBUS, "child: %d (%d: left waiting)", st,
	             1000 + SIGALRM);
}

/* On the pager thread, between its look at the thread's SIGBUS and the
 * send: another thread sets SIGBUS to SIG_IGN.  The signal is dropped
 * and wakes nobody; the faulting thread must not wait for ever. */
static void sb_ignore_before_send(enum inj_point pt)
{
	if (pt == INJ_SIGNAL)
		signal(SIGBUS, SIG_IGN);
}

Test(sigbus, sigbus_ignored_just_before_the_send_kills_not_hangs,
     .timeout = 30)
{
	pid_t pid = fork();
	if (pid == 0) {
		unsigned char *p = sb_child_region();
		sb_install();
		inj_set_cb(sb_ignore_before_send);
		sb_child_read(p);
	}
	sb_expect_sigbus_death(pid);
}

/* Where "SigIgn:" starts in this thread's /proc status, as the pager
 * sees it while the thread waits: "S (sleeping)", one byte longer than
 * this read's "R (running)".  -1 if unknown. */
static long sb_sigign_at(void)
{
	char path[64], buf[16384];
	snprintf(path, sizeof path, "/proc/self/task/%ld/status",
	         (long)syscall(SYS_gettid));
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	const char *p = strstr(buf, "SigIgn:");
	return p ? (long)(p - buf) + 1 : -1;
}

/* The pager reads the thread's status into 4 KiB; a long Groups line
 * (before the signal masks) pushes SigIgn to the end of it.  Groups are
 * added (CAP_SETGID) until the read ends 2 bytes into "SigIgn": SIGBUS
 * ignored must still be seen (here: as unknown, so the page is
 * poisoned), not read as "not ignored" (the signal, dropped, woke
 * nobody: the thread waited for ever). */
Test(sigbus, sigbus_ignored_past_a_long_groups_line_kills_not_hangs,
     .timeout = 30)
{
	pid_t pid = fork();
	if (pid == 0) {
		unsigned char *p = sb_child_region();
		signal(SIGBUS, SIG_IGN);
		/* a group adds its digits and a space (none for the first) */
		long d = 4095 - 2 - sb_sigign_at();
		if (d < 8)
			_exit(21);
		static gid_t g[1024];
		size_t k = 0;
		long d1 = (d - 1) % 8 + 1;   /* the first group: d1 digits */
		g[k++] = 1;
		for (long j = 1; j < d1; j++)
			g[0] *= 10;
		for (long left = d - d1; left > 0 && k < 1024; left -= 8) {
			g[k] = 2000000 + (gid_t)k;   /* 7 digits */
			k++;
		}
		if (setgroups(k, g))
			_exit(errno == EPERM ? 77 : 22);
		long at = sb_sigign_at();
		if (at < 4095 - 2 - 8 || at > 4095 - 2 + 8)
			_exit(23);   /* the read does not end in SigIgn */
		sb_child_read(p);
	}
	sb_expect_sigbus_death(pid);
}

/* ---- 4. a permanent failure ------------------------------------------ */

/* A store over a buffer whose get fails (EIO) for pages [bad_lo, bad_hi). */
struct pstore {
	unsigned char data[NPG * PG];
	volatile size_t bad_lo, bad_hi;
};

static int ps_get(void *cookie, uint64_t off, void *buf, size_t len)
{
	struct pstore *s = cookie;
	for (uint64_t o = off; o < off + len; o += PG)
		if (o / PG >= s->bad_lo && o / PG < s->bad_hi)
			return -EIO;
	memcpy(buf, s->data + off, len);
	return 0;
}

static const struct uvm_pagerops ps_ops = { .pgo_get = ps_get };
static struct pstore ps;

static void ps_heal_at_3(int n)
{
	if (n == 3)
		ps.bad_hi = 0;   /* the store works from the 4th try on */
}

Test(sigbus, permanent_failure_sigbus_on_every_access, .timeout = 30)
{
	sb_install();
	ij_fill(ps.data, 4, 0, NPG);
	ps.bad_lo = 6;
	ps.bad_hi = 7;
	struct uvm_region *r = uvm_map_object(&ps_ops, &ps, NPG * PG,
	                                      PROT_READ, UVM_MAP_PRIVATE);
	cr_assert_not_null(r);
	cr_assert_eq(uvm_advise(r, UVM_ADV_RANDOM), 0);
	unsigned char *p = uvm_base(r);
	uint64_t s0, p0;
	sb_counts(&s0, &p0);
	for (int k = 0; k < 3; k++) {
		cr_assert_eq(sb_access(p + 6 * PG, false, 0, 1), -1,
		             "access %d: SIGBUS", k);
		cr_assert_eq(sb_addr, p + 6 * PG);
		cr_assert(ij_holds(p, 4, 8 + (size_t)k, 1),
		          "other pages are served");
	}
	sb_expect_counts(s0, p0, 3, 0, "three accesses");
	/* a handler that returns: the access is tried again after each
	 * SIGBUS, and completes once the store works */
	sb_on = ps_heal_at_3;
	cr_assert_eq(sb_access(p + 6 * PG + 512, false, 0, 10), 0);
	sb_on = NULL;
	cr_assert_eq(sb_n, 3, "one SIGBUS per try");
	cr_assert_eq(sb_val, ij_byte(4, 6, 512));
	sb_expect_counts(s0, p0, 6, 0, "and three tries");
	cr_assert_eq(uvm_unmap(r, 0, NPG * PG), 0);
	ij_all_gone();
}

/* ---- 5. accesses from the kernel ------------------------------------ */

/* On the pager thread: each fill takes a while, so that a thread
 * retrying its fault in the kernel queues messages meanwhile. */
static void sb_slow_fill(enum inj_point pt)
{
	if (pt == INJ_COPY)
		usleep(2000);
}

/* read(2) into a page whose zero fill fails: the kernel's access cannot
 * be interrupted by the signal (it retries while one is pending), so the
 * page is poisoned and read fails with EFAULT, as natively; the SIGBUS
 * sent first is taken when read returns.  Messages the retrying read
 * queued before the poison are not failures of their own (one poison,
 * one signal), however slow the pager. */
Test(sigbus, read_into_a_failing_page_fails_with_efault, .timeout = 30)
{
	struct uvm_region *r = sb_anon();
	unsigned char *p = uvm_base(r);
	int pfd[2];
	cr_assert_eq(pipe(pfd), 0);
	cr_assert_eq(write(pfd[1], "hello", 5), 5);
	uint64_t s0, p0;
	sb_counts(&s0, &p0);
	inj_arm(INJ_COPY, 0, -1, ENOMEM);
	inj_set_cb(sb_slow_fill);
	sb_n = 0;
	sb_bail = 100;
	errno = 0;
	ssize_t n = read(pfd[0], p + 9 * PG, 5);
	int e = errno;
	inj_reset();
	cr_assert_eq(n, -1);
	cr_assert_eq(e, EFAULT);
	cr_assert_eq(sb_n, 1, "the SIGBUS sent first");
	sb_expect_counts(s0, p0, 1, 1, "read(2)");
	cr_assert_eq(sb_access(p + 9 * PG, false, 0, 1), -1,
	             "the page is poisoned (docs/pager.md, Limits)");
	cr_assert_eq(sb_access(p + 10 * PG, false, 0, 1), 0, "not its neighbour");
	/* mlock's populate waits for the pager uninterruptibly: poisoned
	 * at once, no signal; mlock fails */
	sb_counts(&s0, &p0);
	inj_arm(INJ_COPY, 0, -1, ENOMEM);
	sb_n = 0;
	errno = 0;
	/* the system call: ASan's mlock interceptor does nothing */
	int m = (int)syscall(SYS_mlock, p + 11 * PG, PG);
	e = errno;
	inj_reset();
	cr_assert_eq(m, -1);
	cr_assert_eq(e, ENOMEM, "mlock: %s", strerror(e));
	cr_assert_eq(sb_n, 0, "no SIGBUS for mlock");
	sb_expect_counts(s0, p0, 0, 1, "mlock");
	close(pfd[0]);
	close(pfd[1]);
	cr_assert_eq(uvm_unmap(r, 0, NPG * PG), 0);
	ij_all_gone();
}
