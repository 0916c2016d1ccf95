/*
 * prof.c - the profiler's part of the preload: start it from the
 * environment (SCHEDCTL_PROFILE*, SCHEDCTL_TRACE; see src/prof/agent.c)
 * and write the reports when the process exits.  Logic in src/prof.
 */
#include "prof/prof.h"

__attribute__((constructor)) static void preload_prof_init(void)
{
	(void)prof_init_from_env();
}

__attribute__((destructor)) static void preload_prof_fini(void)
{
	if (prof_on())
		(void)prof_dump(true);
}
