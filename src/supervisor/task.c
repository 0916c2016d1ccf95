/*
 * task.c - the threads the supervisor traces (main thread only).
 *
 * A chained hash table by tid.  Entries are created when ptrace first
 * reports a thread (its clone/fork event or its own first stop, which
 * may come first) and deleted when waitpid reports it dead.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervisor/sv.h"

#define TASK_BUCKETS 1024u

static struct sv_task *task_table[TASK_BUCKETS];

static unsigned task_hash(pid_t tid)
{
	return ((unsigned)tid * 2654435761u) % TASK_BUCKETS;
}

struct sv_task *sv_task_get(pid_t tid)
{
	for (struct sv_task *t = task_table[task_hash(tid)]; t; t = t->tk_next)
		if (t->tk_tid == tid)
			return t;
	return NULL;
}

struct sv_task *sv_task_add(pid_t tid, pid_t pid)
{
	struct sv_task *t = sv_task_get(tid);
	if (t) {
		t->tk_pid = pid;
		return t;
	}
	t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->tk_tid = tid;
	t->tk_pid = pid;
	t->tk_fd_stat = t->tk_fd_schedstat = t->tk_fd_status = -1;
	unsigned b = task_hash(tid);
	t->tk_next = task_table[b];
	task_table[b] = t;
	sv.st_ntasks++;
	return t;
}

void sv_task_del(struct sv_task *t)
{
	for (struct sv_task **pp = &task_table[task_hash(t->tk_tid)]; *pp;
	     pp = &(*pp)->tk_next)
		if (*pp == t) {
			*pp = t->tk_next;
			break;
		}
	sv_sample_forget(t);
	sv.st_ntasks--;
	free(t);
}

void sv_task_foreach(void (*fn)(struct sv_task *, void *), void *arg)
{
	for (unsigned b = 0; b < TASK_BUCKETS; b++)
		for (struct sv_task *t = task_table[b], *n; t; t = n) {
			n = t->tk_next;
			fn(t, arg);
		}
}

pid_t sv_tgid_of(pid_t tid)
{
	return (pid_t)sc_status_field(tid, "Tgid");
}
