/* lock_bench - the `schedctl bench` lock benchmark as its own program. */
#include "lkbench.h"

int main(int argc, char **argv)
{
	return lkb_main(argc, argv);
}
