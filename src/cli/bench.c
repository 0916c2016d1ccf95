/*
 * bench.c - `schedctl bench`: lock throughput of glibc's mutexes and
 * the owner/spin/park policies (the engine is bench/lock/lkbench.c).
 */
#include "cli/cli.h"
#include "../../bench/lock/lkbench.h"

int cli_bench_main(int argc, char **argv)
{
	return lkb_main(argc, argv);
}
