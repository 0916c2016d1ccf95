/* tracer.h - the supervisor's pid for the storm programs: under
 * `schedctl run` it is our tracer (TracerPid in /proc/self/status). */
#ifndef STORM_TRACER_H
#define STORM_TRACER_H
#include <stdio.h>

/* => the tracer's pid, 0 if none. */
static inline long tracer_pid(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long pid = 0;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "TracerPid: %ld", &pid) == 1)
			break;
	if (f)
		fclose(f);
	return pid;
}
#endif
