/* listener.h: listening mode: bind (or take systemd's sockets) and serve
   them with a pool of workers (pool.h), up to caps; stop cleanly on SIGTERM. */
#ifndef MYSMTP_LISTENER_H
#define MYSMTP_LISTENER_H

#include <stddef.h>

/* Serve one connection, in a worker: the session's exit status. over is
   for listener_session_over(). The worker serves more sessions after it:
   nothing of this one may stay behind. */
typedef int (*serve_fn)(void *ctx, int fd, const char *peer, void *over);

/* In a worker, once its session's last reply is written but for its last
   octet, which the socket takes next without blocking: the session no
   longer counts against the caps, so a client that connects again at once
   is not refused for it, and one that never reads still counts. */
void listener_session_over(void *over);

/* 1 when systemd passed us sockets ($LISTEN_FDS for this process). */
int listener_has_systemd_sockets(void);

/* 1 when spec is "[address:]port" with a port from 1 to 65535. */
int listen_spec_valid(const char *spec);

#define LISTENER_MAX_SOCKETS 16	/* listening sockets, bound or from systemd */

struct listen_limits {
	unsigned max_sessions;		/* at once, in all */
	unsigned max_per_peer;		/* at once, from one peer address */
	unsigned ipv6_prefix;		/* IPv6 peers count as one by these first bits */
	unsigned max_use;		/* sessions a worker serves before it is replaced */
	const char *busy;		/* the line (with its CRLF) for one past a cap */
};

/* Listen on spec ("[address:]port"; NULL for systemd's sockets only) and
   serve until SIGTERM: the exit status. A connection past a cap is sent
   the busy line and closed. */
int listener_run(const char *spec, const struct listen_limits *lim, serve_fn serve, void *ctx);

/* The numeric address of a connected socket's peer, or "local". */
void listener_peer(int fd, char *out, size_t size);
/* host as a peer address: an IPv4-mapped IPv6 address ("::ffff:1.2.3.4") as IPv4. */
void listener_peer_unmapped(const char *host, char *out, size_t size);
/* What the per-peer cap counts a connected socket's peer by: its IPv4
   address (an IPv4-mapped one's too), the first ipv6_prefix bits of an
   IPv6 one ("2001:db8:1:2::/64"), or "local". */
void listener_peer_key(int fd, unsigned ipv6_prefix, char *out, size_t size);

#endif
