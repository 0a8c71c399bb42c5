/* listener.c: listening mode. It binds "[address:]port" itself, or takes the
   sockets systemd passes ($LISTEN_FDS), forks one child per connection up
   to a cap in all and a cap per peer address, and on SIGTERM stops
   accepting and waits for its sessions.
   libsystemd is loaded here with dlopen, only in this long-lived mode, so
   the per-connection (inetd) path never pays for loading it. */
#define _GNU_SOURCE
#include "listener.h"
#include "log.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#define MAX_LISTEN 16
#define ACCEPT_BACKOFF_MS 100	/* after accept fails for want of descriptors */

/* A session running: its child process and peer address; ending once the
   child said (on the "over" pipe) that the session is over. */
struct child {
	pid_t pid;
	int ending;
	char peer[NI_MAXHOST];
};

/* The listening sockets, the sessions running and what serves them. */
struct listener {
	int fds[MAX_LISTEN], nfds;
	const struct listen_limits *lim;
	serve_fn serve;
	void *ctx;
	struct child *child;	/* 2 * lim->max_sessions slots: sessions that are
				   over may wait a moment to be reaped */
	unsigned active;
	int over[2];		/* children write their pid here as their session ends */
	int starved;		/* accept failed for want of descriptors: pause */
	int said_starved;	/* and that was logged, since the last accept */
};

struct systemd {
	void *lib;
	__typeof__(sd_listen_fds) *listen_fds;
	__typeof__(sd_notify) *notify;
	__typeof__(sd_is_socket) *is_socket;
};

static volatile sig_atomic_t got_term, got_child;

static void on_signal(int sig)
{
	if (sig == SIGCHLD)
		got_child = 1;
	else
		got_term = 1;
}

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

static void systemd_notify(const struct systemd *sd, const char *state)
{
	if (sd->notify)
		sd->notify(0, state);
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
	for (ai = list; ai && n < MAX_LISTEN; ai = ai->ai_next) {
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

	if (n < 0 || n > MAX_LISTEN) {
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

void listener_peer(int fd, char *out, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char host[NI_MAXHOST];

	snprintf(out, size, "local");
	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0 ||
	    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) ||
	    getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, NULL, 0, NI_NUMERICHOST) != 0)
		return;
	listener_peer_unmapped(host, out, size);
}

void listener_peer_unmapped(const char *host, char *out, size_t size)
{
	int mapped = strncmp(host, "::ffff:", 7) == 0 && strchr(host, '.');

	snprintf(out, size, "%s", mapped ? host + 7 : host);
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

static void install_handlers(sigset_t *during_poll)
{
	struct sigaction sa = { .sa_handler = on_signal };
	sigset_t block;

	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, during_poll);
	sigdelset(during_poll, SIGCHLD);
	sigdelset(during_poll, SIGTERM);
	sigdelset(during_poll, SIGINT);
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

/* Collect finished children (with block, all of them). */
static void reap(struct listener *l, int block)
{
	pid_t pid;

	while (l->active > 0 && (pid = waitpid(-1, NULL, block ? 0 : WNOHANG)) > 0) {
		for (unsigned i = 0; i < l->active; i++) {
			if (l->child[i].pid == pid) {
				l->child[i] = l->child[--l->active];
				break;
			}
		}
	}
}

/* Note the sessions whose children said they are over. */
static void read_over(struct listener *l)
{
	pid_t pids[64];
	ssize_t n;

	while ((n = read(l->over[0], pids, sizeof pids)) > 0)
		for (size_t k = 0; k < (size_t)n / sizeof *pids; k++)
			for (unsigned i = 0; i < l->active; i++)
				if (l->child[i].pid == pids[k])
					l->child[i].ending = 1;
}

/* Sessions that still count against the caps: in all, or from peer. */
static unsigned sessions_from(const struct listener *l, const char *peer)
{
	unsigned n = 0;

	for (unsigned i = 0; i < l->active; i++)
		n += !l->child[i].ending && (!peer || strcmp(l->child[i].peer, peer) == 0);
	return n;
}

void listener_session_over(int over_fd)
{
	pid_t pid = getpid();

	if (over_fd >= 0 && write(over_fd, &pid, sizeof pid) < 0)
		return;		/* a full pipe: the listener counts it until it exits */
}

/* In the child: default signals, no listening sockets, then the session. */
static void run_child(struct listener *l, int conn, const char *peer)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	char prefix[32];
	sigset_t none;

	sigaction(SIGCHLD, &dfl, NULL);
	sigaction(SIGTERM, &dfl, NULL);
	sigaction(SIGINT, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int i = 0; i < l->nfds; i++)
		close(l->fds[i]);
	close(l->over[0]);
	snprintf(prefix, sizeof prefix, "[%ld] ", (long)getpid());
	log_set_prefix(prefix);
	_exit(l->serve(l->ctx, conn, peer, l->over[1]));
}

/* Tell a connection we will not serve it why, as far as it listens. */
static void refuse(int conn, const char *peer, const char *why, const char *busy)
{
	log_line("%s; refused %s", why, peer);
	if (send(conn, busy, strlen(busy), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_line("Cannot tell %s: %s", peer, strerror(errno));
}

/* Serve conn in a new child, or refuse it: past a cap, or when fork fails.
   A session whose child said it is over no longer counts: its client may
   connect again before the child has exited. */
static void start_session(struct listener *l, int conn)
{
	char peer[NI_MAXHOST];
	pid_t pid;

	listener_peer(conn, peer, sizeof peer);
	reap(l, 0);		/* SIGCHLD may wait behind this accept */
	read_over(l);
	if (l->active >= 2 * l->lim->max_sessions || sessions_from(l, NULL) >= l->lim->max_sessions) {
		refuse(conn, peer, "Too many connections", l->lim->busy);
		return;
	}
	if (sessions_from(l, peer) >= l->lim->max_per_peer) {
		refuse(conn, peer, "Too many connections from one address", l->lim->busy);
		return;
	}
	pid = fork();
	if (pid == 0)
		run_child(l, conn, peer);
	if (pid < 0) {
		log_line("Cannot fork for %s: %s", peer, strerror(errno));
		refuse(conn, peer, "Cannot start a session", l->lim->busy);
		return;
	}
	l->child[l->active] = (struct child){ .pid = pid };
	memcpy(l->child[l->active].peer, peer, sizeof peer);
	l->active++;
}

/* Accept on every ready socket. A failure for want of descriptors (or
   memory) is logged once and answered with a short pause, so that the
   loop does not spin; the connection waits in the backlog meanwhile. */
static void accept_ready(struct listener *l, const struct pollfd *p)
{
	for (int i = 0; i < l->nfds; i++) {
		int conn;

		if (!(p[i].revents & POLLIN))
			continue;
		conn = accept4(l->fds[i], NULL, NULL, SOCK_CLOEXEC);
		if (conn < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				if (!l->said_starved)
					log_line("Cannot accept: %s; pausing", strerror(errno));
				l->starved = l->said_starved = 1;
			}
			continue;
		}
		l->said_starved = 0;
		start_session(l, conn);
		close(conn);
	}
}

/* "all addresses" when one socket takes every address, else the first's. */
static void where(const struct listener *l, char *out, size_t size)
{
	snprintf(out, size, "?");
	for (int i = l->nfds - 1; i >= 0; i--) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		char host[NI_MAXHOST];

		if (getsockname(l->fds[i], (struct sockaddr *)&ss, &len) < 0 ||
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

/* Wait for connections (or, starved, a moment) and serve them. */
static void serve_round(struct listener *l, const sigset_t *during_poll)
{
	struct timespec pause = { 0, ACCEPT_BACKOFF_MS * 1000000L };
	struct pollfd p[MAX_LISTEN];

	for (int i = 0; i < l->nfds; i++)
		p[i] = (struct pollfd){ .fd = l->fds[i], .events = POLLIN };
	if (l->starved) {		/* wait without looking at the sockets */
		ppoll(NULL, 0, &pause, during_poll);
		l->starved = 0;
	} else if (ppoll(p, (nfds_t)l->nfds, NULL, during_poll) > 0) {
		accept_ready(l, p);
	}
	if (got_child) {
		got_child = 0;
		reap(l, 0);
	}
}

static int serve_forever(struct listener *l, const struct systemd *sd)
{
	char at[NI_MAXHOST];
	sigset_t during_poll;

	l->child = calloc(2 * (size_t)l->lim->max_sessions, sizeof *l->child);
	if (!l->child || pipe2(l->over, O_CLOEXEC | O_NONBLOCK) < 0) {
		log_line("Cannot listen: %s", strerror(l->child ? errno : ENOMEM));
		free(l->child);
		return EX_OSERR;
	}
	install_handlers(&during_poll);
	where(l, at, sizeof at);
	log_line("Listening on port %u (%s)...", port_of(l->fds[0]), at);
	systemd_notify(sd, "READY=1");
	while (!got_term)
		serve_round(l, &during_poll);
	for (int i = 0; i < l->nfds; i++)
		close(l->fds[i]);
	reap(l, 0);
	systemd_notify(sd, "STOPPING=1");
	log_line("Stopping: waiting for %u session(s) to finish.", l->active);
	reap(l, 1);
	log_line("Stopped.");
	close(l->over[0]);
	close(l->over[1]);
	free(l->child);
	return 0;
}

int listener_run(const char *spec, const struct listen_limits *lim, serve_fn serve, void *ctx)
{
	struct listener l = { .lim = lim, .serve = serve, .ctx = ctx, .over = { -1, -1 } };
	struct systemd sd;

	if (systemd_load(&sd) < 0)
		return EX_UNAVAILABLE;
	if (listener_has_systemd_sockets() && sd.listen_fds)
		l.nfds = systemd_sockets(&sd, l.fds);
	else if (spec)
		l.nfds = bind_spec(spec, l.fds);
	else
		l.nfds = -1;
	if (l.nfds == -2) {
		char peer[NI_MAXHOST];

		listener_peer(l.fds[0], peer, sizeof peer);
		return serve(ctx, l.fds[0], peer, -1);
	}
	if (l.nfds <= 0)
		return EX_OSERR;
	return serve_forever(&l, &sd);
}
