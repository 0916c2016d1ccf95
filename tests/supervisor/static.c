/* A statically linked program: `schedctl run` must run it unsupervised. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
	char buf[4096];
	FILE *f = fopen("/proc/self/status", "r");
	size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = 0;
	char *t = strstr(buf, "TracerPid:");
	printf("tracer=%d\n", t ? atoi(t + 10) : -1);
	return 42;
}
