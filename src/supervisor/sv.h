/*
 * sv.h - internal interface of the schedctl supervisor (src/supervisor).
 *
 * Two sides, one subsystem:
 *
 *   in the supervised program (through the preload):
 *     filter.c   the seccomp filter and the notify-set syntax
 *     agent.c    per process image: connect, install the filter, hand the
 *                listener and slot region over, run the watchdog
 *   in `schedctl run`:
 *     launch.c   start the supervisor and let it seize the program
 *   in the supervisor process:
 *     loop.c     the event loop: one handler per event kind
 *     conn.c     control socket: accept, check and register images
 *     image.c    process images, their mapped regions, slot look-up
 *     task.c     the table of traced threads
 *     trace.c    ptrace events (clone/fork/vfork/exec/exit, stops)
 *     notify.c   one thread per listener: notifications, emulations
 *     backstop.c a process per listener that answers it once the
 *                supervisor is gone
 *     sample.c   /proc sampling of thread states
 *
 * Threads of the supervisor: the main thread (the ptrace tracer: only it
 * may issue ptrace requests) owns the task table, the image list and the
 * sampler; one notify thread per listener (in practice one per program:
 * the kernel allows one live listener per filter chain, agent.c) owns
 * nothing but its image's listener and a private slot cache.  An image
 * is shared between the main thread and notify threads by reference
 * count (im_refs).  sv_lock protects the request queue from notify
 * threads to the main thread (SIGBLOCK requests) and im_deferred_low;
 * image_lock (image.c) lets notify threads walk the image list, which
 * only the main thread changes.  Both are leaves, never held together.
 */
#ifndef SC_SUPERVISOR_SV_H
#define SC_SUPERVISOR_SV_H

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sc/sc.h"
#include "supervisor/proto.h"

/* ---- filter.c ---- */

#define SV_NOTIFY_MAX 64
struct sv_notify_set {
	int ns_n;
	int ns_nr[SV_NOTIFY_MAX];
};

/* => 0 and *set filled, or -1 with a one-line reason in err. */
SC_HIDDEN int sv_notify_parse(const char *spec, struct sv_notify_set *set,
                              char *err, size_t errlen);
/* Sets no_new_privs and installs the filter on the calling thread.
 * => the listener fd (close-on-exec), or -errno. */
SC_HIDDEN int sv_filter_install(const struct sv_notify_set *set);
/* => 0, or -errno if the kernel lacks SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP. */
SC_HIDDEN int sv_listener_sync_wakeup(int listener);

/* ---- agent.c (runs inside the supervised program) ---- */

/* Called once from the preload's constructor. */
SC_HIDDEN void sv_agent_start(int (*real_pthread_create)(pthread_t *,
                              const pthread_attr_t *, void *(*)(void *),
                              void *));
/* Give a new thread its slot (from the preload's pthread_create), and a
 * fork child its deferred watchdog (agent.c). */
SC_HIDDEN void sv_agent_thread_begin(void);

/* ---- gate.c: a new thread starts only once its creator is back from
 * pthread_create (why: gate.c). ---- */
struct sv_gate {
	uint32_t sg_word;   /* atomic; protocol at the top of gate.c */
};
SC_HIDDEN void sv_gate_init(struct sv_gate *g);
/* New thread: => returns once the creator has opened the gate. */
SC_HIDDEN void sv_gate_pass(struct sv_gate *g);
/* Creator, after the real pthread_create succeeded. */
SC_HIDDEN void sv_gate_open(struct sv_gate *g);

/* ---- launch.c (runs in `schedctl run`) ---- */

/* Start a supervisor for the calling process, which is about to exec the
 * program.  On return the supervisor traces the caller and listens on an
 * abstract socket whose name is stored in SCHEDCTL_SUPERVISOR.
 * => 0, or -1 with a one-line reason in err (the caller runs the program
 *    unsupervised). */
SC_HIDDEN int sv_launch(char *err, size_t errlen);
/* "0,2-3" -> set.  => 0, or -1 if malformed. */
SC_HIDDEN int sv_parse_cpus(const char *s, cpu_set_t *set);

/* ---- the supervisor process ---- */

struct sv_image {
	pid_t im_pid;                 /* process (tgid) */
	char *im_base;                /* region mapping or NULL (set once, under
	                                 image_lock) */
	int im_listener;              /* -1 if none */
	uint64_t im_deferred_low;     /* sv_lock: oldest notification id of
	                                 this listener deferred to the main
	                                 thread and not yet handled, 0 none */
	int im_conn;                  /* control socket, -1 when closed */
	bool im_has_thread;
	pthread_t im_thread;
	int im_refs;                  /* atomic (acq_rel) */
	bool im_gone;                 /* relaxed: image replaced or exited */
	uint64_t im_notified;         /* relaxed counter (statistics) */
	struct sv_image *im_next;     /* main thread's list (image_lock) */
};

struct sv_task {
	pid_t tk_tid;
	pid_t tk_pid;                 /* thread group */
	uint32_t tk_slot_hint;        /* cached slot index, 0 unknown */
	int tk_fd_stat;               /* /proc task files, -1 until opened */
	int tk_fd_schedstat;
	int tk_fd_status;
	bool tk_group_stopped;
	uint8_t tk_prestop_state;     /* slot's sc_state when the stop began */
	bool tk_sigblock;             /* SETSIGMASK at the next ptrace stop */
	bool tk_interrupted;          /* PTRACE_INTERRUPT sent */
	struct sv_task *tk_next;      /* hash chain */
};

struct sv_state {
	int st_epfd;
	int st_listen;                /* control socket */
	int st_sigfd;                 /* SIGCHLD */
	int st_timerfd;               /* sampler */
	int st_eventfd;               /* notify thread -> main requests */
	pid_t st_root;                /* the program */
	uint32_t st_ntasks;
	struct sv_image *st_images;
	uint64_t st_interval_ns;      /* sampler period, adapted */
};

extern struct sv_state sv;

/* backstop.c: main thread.  Starts the process that answers listener's
 * notifications after the supervisor's death (region: the listener
 * image's mapping or NULL).  => 0, or -errno. */
SC_HIDDEN int sv_backstop_start(int listener, const void *region);

/* loop.c */
SC_HIDDEN void sv_main(int listen_fd, pid_t root) __attribute__((noreturn));
SC_HIDDEN void sv_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* conn.c */
SC_HIDDEN void sv_conn_accept(void);
SC_HIDDEN void sv_conn_readable(struct sv_image *im);

/* image.c */
SC_HIDDEN struct sv_image *sv_image_new(pid_t pid, int conn);
SC_HIDDEN struct sv_image *sv_image_of(pid_t pid);   /* live, or NULL */
SC_HIDDEN void sv_image_gone(struct sv_image *im);   /* main thread */
SC_HIDDEN void sv_image_put(struct sv_image *im);
SC_HIDDEN int sv_image_map(struct sv_image *im, int memfd);
/* The live slot of tid in im, NULL if none.  *hint caches the index.
 * Bounds-checked: the region is written by the program. */
/* Any thread: tid's slot in whichever live image but skip has it, with a
 * reference on that image in *imp (sv_image_put it); NULL if none. */
SC_HIDDEN struct sc_slot *sv_slot_find_any(pid_t tid, uint32_t *hint,
                                           const struct sv_image *skip,
                                           struct sv_image **imp);
SC_HIDDEN struct sc_slot *sv_slot_find(const struct sv_image *im, pid_t tid,
                                       uint32_t *hint);
/* A supervisor's state reading into s (W in abi.h); => the stamp it
 * stored, 0 if s is not a SUPERVISOR slot. */
SC_HIDDEN uint64_t sv_slot_store(struct sc_slot *s, int state, int cpu);
SC_HIDDEN void sv_sigbus_guard(void);

/* task.c */
SC_HIDDEN struct sv_task *sv_task_get(pid_t tid);
SC_HIDDEN struct sv_task *sv_task_add(pid_t tid, pid_t pid);
SC_HIDDEN void sv_task_del(struct sv_task *t);
SC_HIDDEN void sv_task_foreach(void (*fn)(struct sv_task *, void *), void *arg);
SC_HIDDEN pid_t sv_tgid_of(pid_t tid);   /* from /proc, -1 if gone */

/* trace.c */
SC_HIDDEN int sv_trace_seize(pid_t pid);
SC_HIDDEN void sv_trace_reap(void);      /* SIGCHLD: drain waitpid */
SC_HIDDEN int sv_trace_request_sigblock(pid_t tid);

/* notify.c */
SC_HIDDEN int sv_notify_start(struct sv_image *im);
SC_HIDDEN void sv_notify_requests(void); /* eventfd: main-thread part */

/* sample.c */
SC_HIDDEN void sv_sample_tick(void);
SC_HIDDEN void sv_sample_forget(struct sv_task *t);
/* This sweep read s SC_ONPROC on cpu and stored that with stamp (see
 * sample.c "One CPU runs one thread"). */
SC_HIDDEN void sv_sample_claim_cpu(struct sc_slot *s, int cpu, uint64_t stamp);

#endif /* SC_SUPERVISOR_SV_H */
