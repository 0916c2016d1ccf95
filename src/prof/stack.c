/*
 * stack.c - backtraces on the lock paths, symbols at report time.
 *
 * Capture (any thread, inside a lock slow path): unw_backtrace() into a
 * buffer on the stack, then the frames from the program's call site on.
 * The call site is the return address the lock wrapper saw; the frames
 * before it are the runtime's own.  Without one, leading frames inside
 * the object holding this file are dropped.  libunwind's local unwinder
 * caches in mmap'ed memory: no malloc, no stdio.
 *
 * Symbols (report time only, allowed to allocate):
 *   function+offset  libunwind's get_proc_name accessor (it reads the
 *                    object's .symtab, so static functions are named),
 *                    else dladdr's nearest dynamic symbol; a pc past
 *                    that symbol's end is shown as object+offset
 *   file:line        `addr2line` from binutils (and its function name
 *                    when it gives a line, i.e. had debug information),
 *                    run once per object with a batch of addresses
 *                    (return address - 1, so the line is the call's),
 *                    with an empty environment so the preload is not
 *                    injected into it.  Set SCHEDCTL_ADDR2LINE to another
 *                    path, or to "" to skip.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "prof/prof_int.h"

static uintptr_t self_lo, self_hi;   /* our object's mapped range */

static int raw_backtrace(void **raw, int max);

static int find_self(struct dl_phdr_info *info, size_t size, void *arg)
{
	uintptr_t me = (uintptr_t)arg, lo = UINTPTR_MAX, hi = 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uintptr_t a = info->dlpi_addr + ph->p_vaddr;
		if (a < lo)
			lo = a;
		if (a + ph->p_memsz > hi)
			hi = a + ph->p_memsz;
	}
	if (me >= lo && me < hi) {
		self_lo = lo;
		self_hi = hi;
		return 1;
	}
	return 0;
}

void prof_stack_init(void)
{
	dl_iterate_phdr(find_self, (void *)(uintptr_t)&prof_stack_init);
	void *warm[4];
	(void)raw_backtrace(warm, 4);   /* libunwind's caches, made now */
}

uint64_t prof_stack_hash(const uintptr_t *pc, int n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (int i = 0; i < n; i++) {
		h ^= (uint64_t)pc[i];
		h *= 0x100000001b3ull;
		h ^= h >> 31;
	}
	return h;
}

#if defined(__SANITIZE_THREAD__)
/*
 * Under ThreadSanitizer (./dev tsan): unw_backtrace() keeps a per-thread
 * trace cache whose pthread key destructor re-arms itself until the last
 * destructor round and then locks a mutex, after TSan has torn down the
 * exiting thread's state: TSan crashes there.  Step the frames instead
 * (no per-thread cache; slower, which only a TSan build pays).
 */
static int raw_backtrace(void **raw, int max)
{
	unw_context_t uc;
	unw_cursor_t cur;
	if (unw_getcontext(&uc) != 0 || unw_init_local(&cur, &uc) != 0)
		return 0;
	int n = 0;
	while (n < max && unw_step(&cur) > 0) {
		unw_word_t ip = 0;
		if (unw_get_reg(&cur, UNW_REG_IP, &ip) != 0 || !ip)
			break;
		raw[n++] = (void *)(uintptr_t)ip;
	}
	return n;
}
#else
static int raw_backtrace(void **raw, int max)
{
	return unw_backtrace(raw, max);
}
#endif

int prof_backtrace(uintptr_t from, uintptr_t *pc, int max)
{
	void *raw[64];
	/* libunwind may lock a mutex of its own, through the preload's
	 * wrapper, which notes that call site as this thread's: keep ours. */
	const void *caller = prof_caller_tls;
	int n = raw_backtrace(raw, 64);
	prof_caller_tls = caller;
	int i = 0;
	if (from) {
		while (i < n && (uintptr_t)raw[i] != from)
			i++;
		if (i == n)
			i = 0;
		else
			goto copy;
	}
	while (i < n && (uintptr_t)raw[i] >= self_lo && (uintptr_t)raw[i] < self_hi)
		i++;
	if (i == n)
		i = n > 2 ? 2 : 0;   /* all ours (a test program): drop capture */
copy:;
	int k = 0;
	for (; i < n && k < max; i++)
		pc[k++] = (uintptr_t)raw[i];
	return k;
}

/* ---- symbolisation ---- */

struct objinfo {
	char path[4096];
	uintptr_t bias;
};

static bool frame_object(uintptr_t pc, struct objinfo *oi, Dl_info *di)
{
	struct link_map *lm = NULL;
	if (!dladdr1((void *)pc, di, (void **)&lm, RTLD_DL_LINKMAP) || !lm)
		return false;
	oi->bias = lm->l_addr;
	/* The main program's link_map has no name, and dladdr gives argv[0]
	 * for it, which a program may have changed. */
	if (lm->l_name && lm->l_name[0]) {
		snprintf(oi->path, sizeof oi->path, "%s", lm->l_name);
	} else {
		ssize_t r = readlink("/proc/self/exe", oi->path, sizeof oi->path - 1);
		if (r <= 0)
			return false;
		oi->path[r] = 0;
	}
	return true;
}

static const char *addr2line_path(void)
{
	const char *p = getenv("SCHEDCTL_ADDR2LINE");
	if (p)
		return *p ? p : NULL;
	return access("/usr/bin/addr2line", X_OK) == 0 ? "/usr/bin/addr2line" : NULL;
}

/* addr2line reads debug info and knows where functions end; libunwind
 * and dladdr give the nearest symbol before pc, which in a stripped
 * object can be the wrong function.  Their offset is kept only when the
 * two agree on the name. */
static void name_from_addr2line(struct prof_frame *f, const char *fn)
{
	if (f->f_func && !strcmp(f->f_func, fn))
		return;
	free(f->f_func);
	f->f_func = strdup(fn);
	f->f_off = PROF_OFF_UNKNOWN;
}

/* Run addr2line on n addresses of one object; fills function, file,
 * line. */
static void run_addr2line(const char *tool, const char *obj,
                          struct prof_frame **fr, const uintptr_t *addr,
                          size_t n)
{
	char **argv = calloc(n + 4, sizeof *argv);
	char (*abuf)[24] = calloc(n, sizeof *abuf);
	int pfd[2] = { -1, -1 };
	if (!argv || !abuf || pipe2(pfd, O_CLOEXEC) != 0)
		goto out;
	argv[0] = (char *)"addr2line";
	argv[1] = (char *)"-fCe";
	argv[2] = (char *)obj;
	for (size_t i = 0; i < n; i++) {
		snprintf(abuf[i], sizeof abuf[i], "0x%lx", (unsigned long)addr[i]);
		argv[3 + i] = abuf[i];
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	char *envp[] = { (char *)"LC_ALL=C", NULL };
	pid_t pid;
	int r = posix_spawn(&pid, tool, &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	pfd[1] = -1;
	if (r != 0)
		goto out;
	FILE *f = fdopen(pfd[0], "r");
	if (!f) {
		waitpid(pid, NULL, 0);
		goto out;
	}
	pfd[0] = -1;
	char fn[1024], line[4352];
	for (size_t i = 0; i < n && fgets(fn, sizeof fn, f) &&
	                   fgets(line, sizeof line, f); i++) {
		fn[strcspn(fn, "\n")] = 0;
		line[strcspn(line, "\n")] = 0;
		/* Without a line, addr2line had no debug information and its
		 * name is the nearest symbol before pc (start_thread in a
		 * stripped libc read "pthread_condattr_setpshared"): ours,
		 * checked against the symbol's size, is better. */
		char *colon = strrchr(line, ':');
		if (!colon || line[0] == '?')
			continue;
		*colon = 0;
		int ln = atoi(colon + 1);
		if (ln <= 0)
			continue;
		if (fn[0] && strcmp(fn, "??") != 0)
			name_from_addr2line(fr[i], fn);
		fr[i]->f_file = strdup(line);
		fr[i]->f_line = ln;
	}
	fclose(f);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
out:
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	free(argv);
	free(abuf);
}

/* In an object with only dynamic symbols (libc, say), the nearest
 * symbol before pc may be an exported function that ends well before
 * pc: the frame is in a local function the object does not name
 * (start_thread in libc).  libunwind does not check the symbol's size;
 * the dynamic symbol table has it.  => true if name+off is that symbol
 * and off lies past its end, so the name would be wrong. */
static bool past_symbol_end(uintptr_t pc, const char *name, uint64_t off)
{
	Dl_info d;
	const ElfW(Sym) *sym = NULL;
	uintptr_t start = pc - (uintptr_t)off;
	if (off == PROF_OFF_UNKNOWN ||
	    !dladdr1((void *)start, &d, (void **)&sym, RTLD_DL_SYMENT) || !sym ||
	    !d.dli_sname || (uintptr_t)d.dli_saddr != start ||
	    strcmp(d.dli_sname, name) != 0)
		return false;     /* not a dynamic symbol: libunwind's own */
	return sym->st_size != 0 && off >= sym->st_size;
}

static void name_frame(struct prof_frame *f, const Dl_info *di)
{
	char buf[512];
	unw_word_t off = 0;
	unw_accessors_t *acc = unw_get_accessors(unw_local_addr_space);
	if (acc && acc->get_proc_name &&
	    acc->get_proc_name(unw_local_addr_space, (unw_word_t)f->f_pc, buf,
	                       sizeof buf, &off, NULL) == 0 && buf[0]) {
		f->f_func = strdup(buf);
		f->f_off = off;
	} else if (di->dli_sname) {
		f->f_func = strdup(di->dli_sname);
		f->f_off = f->f_pc - (uintptr_t)di->dli_saddr;
	}
	/* Then "object+offset", as perf and gdb show an unnamed address. */
	if (f->f_func && di->dli_fname && past_symbol_end(f->f_pc, f->f_func, f->f_off)) {
		const char *base = strrchr(di->dli_fname, '/');
		free(f->f_func);
		f->f_func = strdup(base ? base + 1 : di->dli_fname);
		f->f_off = f->f_pc - (uintptr_t)di->dli_fbase;
	}
}

/* Symbolise n frames with distinct pcs. */
static void symbolise_distinct(struct prof_frame *f, size_t n)
{
	struct objinfo *oi = calloc(n ? n : 1, sizeof *oi);
	bool *have = calloc(n ? n : 1, sizeof *have);
	bool *done = calloc(n ? n : 1, sizeof *done);
	struct prof_frame **batch = calloc(n ? n : 1, sizeof *batch);
	uintptr_t *addr = calloc(n ? n : 1, sizeof *addr);
	const char *tool = addr2line_path();
	if (!oi || !have || !done || !batch || !addr)
		goto out;
	for (size_t i = 0; i < n; i++) {
		Dl_info di;
		memset(&di, 0, sizeof di);
		have[i] = frame_object(f[i].f_pc, &oi[i], &di);
		if (have[i])
			f[i].f_obj = strdup(oi[i].path);
		name_frame(&f[i], &di);
	}
	if (!tool)
		goto out;
	/* One addr2line per object, up to 256 addresses at a time. */
	for (size_t i = 0; i < n; i++) {
		if (!have[i] || done[i])
			continue;
		size_t k = 0;
		for (size_t j = i; j < n && k < 256; j++) {
			if (!have[j] || done[j] || strcmp(oi[j].path, oi[i].path))
				continue;
			done[j] = true;
			batch[k] = &f[j];
			addr[k++] = f[j].f_pc - 1 - oi[j].bias;
		}
		run_addr2line(tool, oi[i].path, batch, addr, k);
	}
out:
	free(oi);
	free(have);
	free(done);
	free(batch);
	free(addr);
}

static int pc_order(const void *a, const void *b)
{
	const struct prof_frame *x = *(struct prof_frame *const *)a;
	const struct prof_frame *y = *(struct prof_frame *const *)b;
	return x->f_pc < y->f_pc ? -1 : x->f_pc > y->f_pc;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* A report names the same pc many times (every stack through a hot
 * function), and libunwind's get_proc_name reads /proc/self/maps and
 * maps the object's ELF image again for each call: symbolising every
 * frame took 15 s at a memcached exit.  So each distinct pc is
 * symbolised once and its names copied to the frames sharing it. */
void prof_symbolise(struct prof_frame *f, size_t n)
{
	struct prof_frame **by_pc = calloc(n ? n : 1, sizeof *by_pc);
	struct prof_frame *u = calloc(n ? n : 1, sizeof *u);
	size_t nu = 0;
	if (!by_pc || !u) {
		symbolise_distinct(f, n);       /* slow, but still right */
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		by_pc[i] = &f[i];
	qsort(by_pc, n, sizeof *by_pc, pc_order);
	for (size_t i = 0; i < n; i++)
		if (i == 0 || by_pc[i]->f_pc != by_pc[i - 1]->f_pc)
			u[nu++].f_pc = by_pc[i]->f_pc;
	symbolise_distinct(u, nu);
	for (size_t i = 0, k = 0; i < n; i++) {
		if (i > 0 && by_pc[i]->f_pc != by_pc[i - 1]->f_pc)
			k++;
		struct prof_frame *d = by_pc[i];
		d->f_func = dup_or_null(u[k].f_func);
		d->f_off = u[k].f_off;
		d->f_file = dup_or_null(u[k].f_file);
		d->f_line = u[k].f_line;
		d->f_obj = dup_or_null(u[k].f_obj);
	}
	for (size_t k = 0; k < nu; k++) {
		free(u[k].f_func);
		free(u[k].f_file);
		free(u[k].f_obj);
	}
out:
	free(by_pc);
	free(u);
}
