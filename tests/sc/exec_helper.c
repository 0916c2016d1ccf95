/* Run after exec: the new image must start without any structure. */
#include <schedctl.h>
#include <unistd.h>

int main(void)
{
	if (schedctl_lookup() != NULL)
		return 1;
	sc_shared_t *me = schedctl_self();
	if (!me || schedctl_tid(me) != gettid() || schedctl_state(me) != SC_ONPROC)
		return 2;
	return 0;
}
