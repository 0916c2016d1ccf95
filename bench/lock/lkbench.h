/*
 * lkbench.h - the lock throughput benchmark behind `schedctl bench` and
 * bench/lock/lock_bench: glibc's default and adaptive mutexes against
 * the owner, spin and park policies, side by side in one process.
 */
#ifndef LKBENCH_H
#define LKBENCH_H

/* argv[0] is the command name; returns an exit status (0, 1 failure,
 * 2 usage error). */
int lkb_main(int argc, char **argv);

#endif
