/*
 * proto.h - the one definition of what a supervised process and the
 * schedctl supervisor share, besides the slot region (src/sc/abi.h):
 *
 *   1. the environment `schedctl run` hands to the program (SC_ENV_*);
 *   2. the control socket: an abstract AF_UNIX SOCK_SEQPACKET socket whose
 *      name is in SCHEDCTL_SUPERVISOR; every process image connects once
 *      and sends one struct sv_hello with its listener and region memfd
 *      attached (SCM_RIGHTS).  The supervisor never writes to the socket:
 *      its end closing (orderly or because it died) is the only message
 *      back, and tells the process's watchdog to take over;
 *   3. the syscall cookie: a system call whose sixth argument is
 *      SC_SYSCALL_COOKIE passes the seccomp filter without a user
 *      notification.  The runtime's own blocking (sc_futex_wait, the
 *      watchdog) uses it.  A cookie rather than an instruction-pointer
 *      range because filters stack across exec: the filter installed by
 *      an earlier image stays in force and would not know the new
 *      image's addresses.  The sixth argument is ignored by every call
 *      the runtime makes this way (FUTEX_WAIT, recvmsg, ioctl), so the
 *      cookie changes nothing else.
 *
 * Trust: the socket is reachable by anyone who knows the name, so the
 * supervisor accepts a peer only if SO_PEERCRED shows our uid and the
 * peer process is one it traces.  Everything a process sends or writes
 * in shared memory is untrusted input to the supervisor.
 */
#ifndef SC_SUPERVISOR_PROTO_H
#define SC_SUPERVISOR_PROTO_H

#include <stddef.h>
#include <stdint.h>

/* Environment set by `schedctl run` (options map to these, see run.c). */
#define SC_ENV_SUPERVISOR   "SCHEDCTL_SUPERVISOR"  /* abstract socket name */
#define SC_ENV_NOTIFY       "SCHEDCTL_NOTIFY"      /* notified syscalls */

/* Sixth system call argument that exempts a call from notification. */
#define SC_SYSCALL_COOKIE   0x5c5cd0c0ffee5c5cull

#define SV_HELLO_MAGIC      0x53564831u   /* "SVH1" */
#define SV_SOCK_NAME_MAX    64            /* without the leading NUL */

/* sh_flags */
#define SV_HELLO_LISTENER   0x1u   /* fd[0] is a seccomp listener */
#define SV_HELLO_REGION     0x2u   /* fd[1] (or fd[0]) is the region memfd */
#define SV_HELLO_FORKED     0x4u   /* sent by a fork child (not exec) */

/* The one message: a process image introduces itself. */
struct sv_hello {
	uint32_t sh_magic;      /* SV_HELLO_MAGIC */
	uint32_t sh_flags;      /* SV_HELLO_* : which fds are attached */
	int32_t  sh_pid;        /* getpid() of the sender (checked) */
	uint32_t sh_nfds;       /* fds attached, listener first */
	uint64_t sh_first_id;   /* a notification id already answered by
	                           the watchdog (see notify.c), 0 if none */
};
_Static_assert(sizeof(struct sv_hello) == 24, "sv_hello is 24 bytes");
_Static_assert(offsetof(struct sv_hello, sh_first_id) == 16, "sh_first_id");

/* seccomp uapi newer than Debian 12's headers (Linux 6.6). */
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS  _IOW('!', 4, uint64_t)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP  (1UL << 0)
#endif

#endif /* SC_SUPERVISOR_PROTO_H */
