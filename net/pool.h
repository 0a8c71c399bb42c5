/* pool.h: the listening pool. A small master keeps pre-forked workers;
   each accepts on the shared listening sockets and serves sessions one
   after another, up to max_use, then exits and is replaced. The master
   restarts a worker that dies, answers the busy line when every worker
   allowed is busy, on SIGTERM stops accepting and lets the sessions
   running finish, and on SIGHUP replaces its workers, each once its
   session is over. */
#ifndef MYSMTP_POOL_H
#define MYSMTP_POOL_H

#define POOL_MAX_SOCKETS 16	/* listening sockets, bound or from systemd */

/* Serve one connection, in a worker: the session's exit status. over is
   for pool_session_over(). The worker serves more sessions after it:
   nothing of this one may stay behind. */
typedef int (*pool_serve_fn)(void *ctx, int fd, const char *peer, void *over);

/* In a worker, once its session's last reply is written but for its last
   octet, which the socket takes next without blocking: the session no
   longer counts against the caps, so a client that connects again at once
   is not refused for it, and one that never reads still counts. */
void pool_session_over(void *over);

struct pool_limits {
	unsigned max_sessions;		/* at once, in all */
	unsigned max_per_peer;		/* at once, from one peer address */
	unsigned ipv6_prefix;		/* IPv6 peers count as one by these first bits */
	unsigned max_use;		/* sessions a worker serves before it is replaced */
	const char *busy;		/* the line (with its CRLF) for one past a cap */
};

struct pool_config {
	const int *fds;			/* listening, non-blocking */
	int nfds;
	int own_sockets;		/* bound here, not systemd's: shut down on SIGTERM */
	const struct pool_limits *lim;
	pool_serve_fn serve;
	void *ctx;
	void (*notify)(void *ctx, const char *state);	/* sd_notify, or NULL */
	void *notify_ctx;
};

/* Run the pool until SIGTERM (or SIGINT) and its sessions end: the exit
   status. */
int pool_run(const struct pool_config *cfg);

#endif
