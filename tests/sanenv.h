/*
 * sanenv.h - the sanitizer environment for helpers that a test starts
 * with an environment of its own (tests/lock/test_preload.c,
 * tests/prof/test_procs.c).
 *
 * In an ASan build (./dev asan) the preload is ASan-built too: a program
 * it is preloaded into must have the ASan runtime loaded before anything
 * else, and should see the run's ASAN_OPTIONS and UBSAN_OPTIONS.  A
 * fresh environment has neither, so the preload refused to start there.
 * san_env() returns a copy of ENV with the sanitizer variables of this
 * process added and, when ENV sets LD_PRELOAD, the ASan runtime this
 * test itself was linked with added right after ENV's libraries, as
 * `./dev asan` arranges for `schedctl run` (pass 2): the preload still
 * comes first, so its wrappers answer (ASan's runtime defines
 * pthread_mutex_lock too), and the runtime still comes before libc, so
 * its malloc is the one used.  That order needs
 * verify_asan_link_order=0, which is added to ASAN_OPTIONS.  In a build
 * without sanitizers it is ENV unchanged.
 */
#ifndef TESTS_SANENV_H
#define TESTS_SANENV_H

#include <link.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAN_ENV_MAX 32

struct san_env {
	char *se_vars[SAN_ENV_MAX + 4];
	char se_preload[8192];
	char se_runtime[4096];
	char se_opts[3][1024];
};

static int san_env_find_runtime(struct dl_phdr_info *info, size_t size,
                                void *data)
{
	(void)size;
	const char *n = info->dlpi_name;
	if (n && strstr(n, "/libasan.so")) {
		snprintf(data, 4096, "%s", n);
		return 1;
	}
	return 0;
}

/* => se->se_vars: ENV plus the sanitizer variables (NULL-terminated);
 *    ENV's entries are used as they are, at most SAN_ENV_MAX of them. */
static inline char **san_env(struct san_env *se, const char *const env[])
{
	static const char *const names[] = { "ASAN_OPTIONS", "UBSAN_OPTIONS",
	                                     "LSAN_OPTIONS" };
	int n = 0;
	se->se_runtime[0] = '\0';
	dl_iterate_phdr(san_env_find_runtime, se->se_runtime);
	for (int i = 0; env[i] && n < SAN_ENV_MAX; i++) {
		if (se->se_runtime[0] && strncmp(env[i], "LD_PRELOAD=", 11) == 0) {
			snprintf(se->se_preload, sizeof se->se_preload,
			         "LD_PRELOAD=%s:%s", env[i] + 11, se->se_runtime);
			se->se_vars[n++] = se->se_preload;
		} else {
			se->se_vars[n++] = (char *)env[i];
		}
	}
	for (int i = 0; i < 3; i++) {
		const char *v = getenv(names[i]);
		bool asan = i == 0 && se->se_runtime[0];
		if (!v && !asan)
			continue;
		snprintf(se->se_opts[i], sizeof se->se_opts[i], "%s=%s%s%s",
		         names[i], v ? v : "", v && asan ? ":" : "",
		         asan ? "verify_asan_link_order=0" : "");
		se->se_vars[n++] = se->se_opts[i];
	}
	se->se_vars[n] = NULL;
	return se->se_vars;
}

#endif
