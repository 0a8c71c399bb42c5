/* listener.h: listening mode: bind (or take systemd's sockets) and serve
   them with the pool of workers (pool.h), up to its caps; stop cleanly on
   SIGTERM. */
#ifndef MYSMTP_LISTENER_H
#define MYSMTP_LISTENER_H

#include "net/pool.h"

/* 1 when systemd passed us sockets ($LISTEN_FDS for this process). */
int listener_has_systemd_sockets(void);

/* 1 when spec is "[address:]port" with a port from 1 to 65535. */
int listen_spec_valid(const char *spec);

/* Listen on spec ("[address:]port"; NULL for systemd's sockets only) and
   serve until SIGTERM: the exit status. A connection past a cap is sent
   the busy line and closed. */
int listener_run(const char *spec, const struct pool_limits *lim, pool_serve_fn serve, void *ctx);

#endif
