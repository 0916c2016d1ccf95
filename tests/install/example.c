/* An illumos-style consumer built against the installed package. */
#include <schedctl.h>
#include <stdio.h>

int main(void)
{
	schedctl_t *p = schedctl_init();
	if (!p)
		return 1;
	schedctl_start(p);
	schedctl_stop(p);
	sc_shared_t *me = schedctl_self();
	int st = schedctl_state(me);
	printf("state %d\n", st);
	return st == SC_ONPROC ? 0 : 2;
}
