/*
 * trace.c - following the program with ptrace (main thread only: it is
 * the tracer).
 *
 * PTRACE_SEIZE with clone/fork/vfork/exec/exit events: every thread and
 * process the program creates is attached by the kernel before it runs
 * user code.  One handler per kind of stop:
 *
 *   new thread/process   trace_child()    add it, continue the parent
 *   exec                 trace_exec()     forget the old image's threads
 *   exit event           trace_exit()     SC_FREE for a slot the thread
 *                                         did not give back itself
 *   group-stop           trace_stop()     SC_STOPPED, PTRACE_LISTEN
 *   other event stop     trace_stop()     initial stop, our interrupt, or
 *                                         the end of a group-stop: apply
 *                                         a pending sigblock, continue
 *   signal delivery      trace_signal()   pass the signal on unchanged
 *                                         (a call whose notification it
 *                                         withdrew is repaired first:
 *                                         withdraw.c)
 *   death                trace_dead()     drop the thread
 *
 * The supervisor never changes what the program sees: signals are
 * re-injected as they came, stops keep their job-control meaning (LISTEN
 * keeps a stopped thread stopped).  If the supervisor dies, the kernel
 * detaches every tracee and the program runs on.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include "supervisor/withdraw.h"
#include "supervisor/sv.h"

#define TRACE_OPTIONS (PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | \
                       PTRACE_O_TRACEVFORK | PTRACE_O_TRACEEXEC | \
                       PTRACE_O_TRACEEXIT)

int sv_trace_seize(pid_t pid)
{
	if (ptrace(PTRACE_SEIZE, pid, 0, TRACE_OPTIONS) < 0)
		return -1;
	sv_task_add(pid, pid);
	return 0;
}

static struct sv_task *trace_task(pid_t tid)
{
	struct sv_task *t = sv_task_get(tid);
	if (!t) {
		pid_t pid = sv_tgid_of(tid);
		t = sv_task_add(tid, pid > 0 ? pid : tid);
	}
	return t;
}

static struct sc_slot *trace_slot(struct sv_task *t)
{
	struct sv_image *im = sv_image_of(t->tk_pid);
	return im ? sv_slot_find(im, t->tk_tid, &t->tk_slot_hint) : NULL;
}

static void trace_cont(pid_t tid, int sig)
{
	(void)ptrace(PTRACE_CONT, tid, 0, sig);
}

static void trace_child(struct sv_task *t, int event)
{
	unsigned long msg = 0;
	if (ptrace(PTRACE_GETEVENTMSG, t->tk_tid, 0, &msg) == 0 && msg > 0) {
		pid_t child = (pid_t)msg;
		pid_t pid = sv_tgid_of(child);
		if (pid <= 0)
			pid = event == PTRACE_EVENT_CLONE ? t->tk_pid : child;
		sv_task_add(child, pid);
	}
	trace_cont(t->tk_tid, 0);
}

struct exec_ctx { pid_t ec_pid; };

static void trace_drop_others(struct sv_task *t, void *arg)
{
	const struct exec_ctx *ec = arg;
	if (t->tk_pid == ec->ec_pid && t->tk_tid != ec->ec_pid)
		sv_task_del(t);
}

/* The image changed: the other threads are gone, the execing thread now
 * has the leader's tid, and a new image will connect. */
static void trace_exec(struct sv_task *t)
{
	struct exec_ctx ec = { t->tk_pid };
	pid_t tid = t->tk_tid;
	sv_task_foreach(trace_drop_others, &ec);
	t = sv_task_get(tid);
	if (t) {
		sv_sample_forget(t);
		t->tk_slot_hint = 0;
		t->tk_group_stopped = false;
	}
	trace_cont(tid, 0);
}

static void trace_exit(struct sv_task *t)
{
	struct sc_slot *s = trace_slot(t);
	if (s)
		__atomic_store_n(&s->ss_pub.sc_state, SC_FREE, __ATOMIC_RELEASE);
	trace_cont(t->tk_tid, 0);
}

static bool trace_is_stop_signal(int sig)
{
	return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN ||
	       sig == SIGTTOU;
}

static void trace_apply_sigblock(struct sv_task *t)
{
	t->tk_sigblock = false;
	sigset_t all;
	sigfillset(&all);
	sigdelset(&all, SIGKILL);
	sigdelset(&all, SIGSTOP);
	if (ptrace(PTRACE_SETSIGMASK, t->tk_tid, sizeof(uint64_t), &all) < 0)
		return;
	struct sc_slot *s = trace_slot(t);
	if (s)
		__atomic_store_n(&s->ss_pub.sc_sigblock, 0, __ATOMIC_RELEASE);
}

static void trace_stop(struct sv_task *t, int sig)
{
	struct sc_slot *s = trace_slot(t);
	if (trace_is_stop_signal(sig)) {
		if (!t->tk_group_stopped)
			t->tk_prestop_state = s ? (uint8_t)__atomic_load_n(
				&s->ss_pub.sc_state, __ATOMIC_RELAXED) : SC_ONPROC;
		t->tk_group_stopped = true;
		if (s)
			sv_slot_store(s, SC_STOPPED, -1);
		(void)ptrace(PTRACE_LISTEN, t->tk_tid, 0, 0);
		return;
	}
	t->tk_interrupted = false;
	if (t->tk_sigblock)
		trace_apply_sigblock(t);
	if (t->tk_group_stopped) {
		/* A thread stopped in a sleep (a call, or the runtime's lock
		 * park) goes back to it: the kernel restarts the call, and
		 * nobody tells us (the sampler would, 1-2 ms later).  Else it
		 * runs on.  (A PERF slot takes SC_ONPROC either way: its
		 * ring says the rest.) */
		t->tk_group_stopped = false;
		if (s)
			sv_slot_store(s, t->tk_prestop_state == SC_SLEEP ?
			              SC_SLEEP : SC_ONPROC, -1);
	}
	trace_cont(t->tk_tid, 0);
}

static void trace_signal(struct sv_task *t, int sig)
{
	sv_withdrawn(t->tk_tid, sig);
	trace_cont(t->tk_tid, sig);
}

static void trace_dead(pid_t tid)
{
	struct sv_task *t = sv_task_get(tid);
	if (t)
		sv_task_del(t);
}

static void trace_stopped(pid_t tid, int status)
{
	struct sv_task *t = trace_task(tid);
	if (!t) {
		trace_cont(tid, 0);
		return;
	}
	int sig = WSTOPSIG(status), event = status >> 16;
	switch (event) {
	case PTRACE_EVENT_CLONE:
	case PTRACE_EVENT_FORK:
	case PTRACE_EVENT_VFORK:
		trace_child(t, event);
		break;
	case PTRACE_EVENT_EXEC:
		trace_exec(t);
		break;
	case PTRACE_EVENT_EXIT:
		trace_exit(t);
		break;
	case PTRACE_EVENT_STOP:
		trace_stop(t, sig);
		break;
	case 0:
		trace_signal(t, sig);
		break;
	default:
		trace_cont(tid, 0);
		break;
	}
}

void sv_trace_reap(void)
{
	for (;;) {
		int status;
		pid_t tid = waitpid(-1, &status, __WALL | WNOHANG);
		if (tid == 0)
			return;
		if (tid < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ECHILD)
				exit(0);        /* no tracee left: the program is done */
			return;
		}
		if (WIFEXITED(status) || WIFSIGNALED(status))
			trace_dead(tid);
		else if (WIFSTOPPED(status))
			trace_stopped(tid, status);
	}
}

/* Ask for a stop of tid so that trace_stop() can change its mask. */
int sv_trace_request_sigblock(pid_t tid)
{
	struct sv_task *t = sv_task_get(tid);
	if (!t)
		return -1;
	t->tk_sigblock = true;
	if (!t->tk_interrupted && ptrace(PTRACE_INTERRUPT, tid, 0, 0) == 0)
		t->tk_interrupted = true;
	return 0;
}
