/* pool.h: the listening pool. A small master keeps pre-forked workers;
   each accepts on the shared listening sockets and serves sessions one
   after another, up to max_use, then exits and is replaced. The master
   restarts a worker that dies, answers the busy line when every worker
   allowed is busy, on SIGTERM stops accepting and lets the sessions
   running finish, and on SIGHUP replaces its workers, each once its
   session is over. */
#ifndef MYSMTP_POOL_H
#define MYSMTP_POOL_H

#include "net/listener.h"

struct pool_config {
	const int *fds;			/* listening, non-blocking */
	int nfds;
	int own_sockets;		/* bound here, not systemd's: shut down on SIGTERM */
	const struct listen_limits *lim;
	serve_fn serve;
	void *ctx;
	void (*notify)(void *ctx, const char *state);	/* sd_notify, or NULL */
	void *notify_ctx;
};

/* Run the pool until SIGTERM (or SIGINT) and its sessions end: the exit
   status. */
int pool_run(const struct pool_config *cfg);

#endif
