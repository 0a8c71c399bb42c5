/* listener.c: listening mode. It binds "[address:]port" itself, or takes the
   sockets systemd passes ($LISTEN_FDS), and hands them to the pool of
   workers (pool.c), which serves them up to a cap in all and a cap per
   peer address, and on SIGTERM stops accepting and waits for its sessions.
   libsystemd is loaded here with dlopen, only in this long-lived mode, so
   the per-connection (inetd) path never pays for loading it. */
#define _GNU_SOURCE
#include "net/listener.h"
#include "net/log.h"
#include "net/peer.h"
#include "net/pool.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

struct systemd {
	void *lib;
	__typeof__(sd_listen_fds) *listen_fds;
	__typeof__(sd_notify) *notify;
	__typeof__(sd_is_socket) *is_socket;
};

int listener_has_systemd_sockets(void)
{
	const char *pid = getenv("LISTEN_PID");

	return getenv("LISTEN_FDS") && pid && strtol(pid, NULL, 10) == (long)getpid();
}

static int systemd_load(struct systemd *sd)
{
	memset(sd, 0, sizeof *sd);
	if (!getenv("LISTEN_FDS") && !getenv("NOTIFY_SOCKET"))
		return 0;
	sd->lib = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
	if (!sd->lib) {
		log_line("Cannot load libsystemd: %s", dlerror());
		return -1;
	}
	sd->listen_fds = (__typeof__(sd->listen_fds))dlsym(sd->lib, "sd_listen_fds");
	sd->notify = (__typeof__(sd->notify))dlsym(sd->lib, "sd_notify");
	sd->is_socket = (__typeof__(sd->is_socket))dlsym(sd->lib, "sd_is_socket");
	return sd->listen_fds && sd->notify && sd->is_socket ? 0 : -1;
}

/* Split "[address:]port", "[v6]:port" or "port". */
static int split_spec(const char *spec, char *host, size_t hsize, const char **port)
{
	const char *colon = strrchr(spec, ':');
	size_t len;

	if (!colon) {
		host[0] = '\0';
		*port = spec;
		return 0;
	}
	*port = colon + 1;
	len = (size_t)(colon - spec);
	if (len >= 2 && spec[0] == '[' && spec[len - 1] == ']') {
		spec++;
		len -= 2;
	}
	if (len >= hsize)
		return -1;
	memcpy(host, spec, len);
	host[len] = '\0';
	return 0;
}

int listen_spec_valid(const char *spec)
{
	char host[256], *end;
	const char *port;
	unsigned long n;

	if (split_spec(spec, host, sizeof host, &port) < 0 || *port < '0' || *port > '9')
		return 0;
	n = strtoul(port, &end, 10);
	return *end == '\0' && n >= 1 && n <= 65535;
}

static int bind_one(const struct addrinfo *ai)
{
	int one = 1;
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0) {
		int err = errno;

		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

static int bind_spec(const char *spec, int *fds)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *list, *ai;
	char host[256];
	const char *port;
	int n = 0, rc;

	if (split_spec(spec, host, sizeof host, &port) < 0 || !*port) {
		log_line("Bad listen address: %s", spec);
		return -1;
	}
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &list);
	if (rc != 0) {
		log_line("Bad listen address %s: %s", spec, gai_strerror(rc));
		return -1;
	}
	for (ai = list; ai && n < POOL_MAX_SOCKETS; ai = ai->ai_next) {
		int fd = bind_one(ai);

		if (fd < 0)
			log_line("Cannot listen on %s: %s", spec, strerror(errno));
		else
			fds[n++] = fd;
	}
	freeaddrinfo(list);
	return n > 0 ? n : -1;
}

static int systemd_sockets(const struct systemd *sd, int *fds)
{
	int n = sd->listen_fds(1);

	if (n < 0 || n > POOL_MAX_SOCKETS) {
		log_line("Bad sockets from systemd: %s", n < 0 ? strerror(-n) : "too many");
		return -1;
	}
	fds[0] = SD_LISTEN_FDS_START;
	if (n == 1 && sd->is_socket(fds[0], AF_UNSPEC, SOCK_STREAM, 0) > 0)
		return -2;	/* one connection (Accept=yes): serve it here */
	for (int i = 0; i < n; i++) {
		fds[i] = SD_LISTEN_FDS_START + i;
		if (sd->is_socket(fds[i], AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
			log_line("Descriptor %d from systemd is not a listening stream socket", fds[i]);
			return -1;
		}
	}
	return n;
}

static unsigned port_of(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

/* "all addresses" when one socket takes every address, else the first's. */
static void where(const int *fds, int nfds, char *out, size_t size)
{
	snprintf(out, size, "?");
	for (int i = nfds - 1; i >= 0; i--) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		char host[NI_MAXHOST];

		if (getsockname(fds[i], (struct sockaddr *)&ss, &len) < 0 ||
		    getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, NULL, 0,
				NI_NUMERICHOST) != 0)
			continue;
		if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0) {
			snprintf(out, size, "all addresses");
			return;
		}
		snprintf(out, size, "%s", host);
	}
}

static void notify(void *ctx, const char *state)
{
	const struct systemd *sd = ctx;

	sd->notify(0, state);
}

/* Hand the listening sockets (made non-blocking: several workers wait on
   them) to the pool of workers. */
static int serve_sockets(int *fds, int nfds, int own, const struct systemd *sd,
			 const struct pool_limits *lim, pool_serve_fn serve, void *ctx)
{
	struct pool_config cfg = { .fds = fds, .nfds = nfds, .own_sockets = own, .lim = lim,
				   .serve = serve, .ctx = ctx,
				   .notify = sd->notify ? notify : NULL, .notify_ctx = (void *)sd };
	char at[NI_MAXHOST];

	for (int i = 0; i < nfds; i++) {
		int fl = fcntl(fds[i], F_GETFL);

		if (fl < 0 || fcntl(fds[i], F_SETFL, fl | O_NONBLOCK) < 0) {
			log_line("Cannot listen: %s", strerror(errno));
			return EX_OSERR;
		}
	}
	where(fds, nfds, at, sizeof at);
	log_line("Listening on port %u (%s)...", port_of(fds[0]), at);
	return pool_run(&cfg);
}

int listener_run(const char *spec, const struct pool_limits *lim, pool_serve_fn serve, void *ctx)
{
	int fds[POOL_MAX_SOCKETS], nfds, own = 0;
	struct systemd sd;

	if (systemd_load(&sd) < 0)
		return EX_UNAVAILABLE;
	if (listener_has_systemd_sockets() && sd.listen_fds) {
		nfds = systemd_sockets(&sd, fds);
	} else if (spec) {
		nfds = bind_spec(spec, fds);
		own = 1;
	} else {
		nfds = -1;
	}
	if (nfds == -2) {
		char peer[NI_MAXHOST];

		peer_name(fds[0], peer, sizeof peer);
		return serve(ctx, fds[0], peer, NULL);
	}
	if (nfds <= 0)
		return EX_OSERR;
	return serve_sockets(fds, nfds, own, &sd, lim, serve, ctx);
}
