/* pool.c: the listening pool (pool.h): a master that forks and replaces
   workers, and the workers, which accept and serve sessions one after
   another. Who is doing what is in the shared scoreboard (scoreboard.h);
   a worker writes a byte on the wake pipe when the master should look at
   it again: the first worker became free, or the last one busy. */
#define _GNU_SOURCE
#include "net/pool.h"
#include "net/log.h"
#include "net/peer.h"
#include "net/scoreboard.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#define SPARES 2		/* workers kept idle, beside the busy ones */
#define ACCEPT_BACKOFF_MS 100	/* after accept fails for want of descriptors */
#define FORK_RETRY_MS 1000	/* after fork fails */
#define DEATH_BACKOFF_MS 100	/* after a worker dies of a signal or an error */
#define MAX_IDLE_MS 100000	/* a spare worker idle this long exits (Postfix's max_idle) */

struct pool {
	const struct pool_config *cfg;
	struct scoreboard *sb;
	int wake[2];		/* workers -> master */
	pid_t master;
	unsigned spares;	/* SPARES, or fewer when -c is smaller */
	uint64_t fork_after;	/* no fork before this (ms), after a failure */
	int said_fork_failed;
	int starved;		/* accept failed for want of descriptors: pause */
	int said_starved;	/* and that was logged, since the last accept */
	int ready;		/* READY=1 was sent */
};

/* What pool_session_over() is given: the worker's slot. */
struct over {
	struct pool *p;
	int slot;
	int last_use;		/* the worker's last session: it exits after it */
};

/* got_hup: in the master, replace the workers; in a worker, leave after
   its session, as with SIGTERM. */
static volatile sig_atomic_t got_term, got_child, got_hup;

static void on_signal(int sig)
{
	if (sig == SIGCHLD)
		got_child = 1;
	else if (sig == SIGHUP)
		got_hup = 1;
	else
		got_term = 1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void wake_master(struct pool *p)
{
	if (write(p->wake[1], "", 1) < 0)
		return;		/* a full pipe: the master wakes anyway */
}

/* SIGCHLD, SIGTERM, SIGINT and SIGHUP are blocked but while waiting
   (*during_wait). */
static void install_handlers(sigset_t *during_wait)
{
	static const int sigs[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP };
	struct sigaction sa = { .sa_handler = on_signal };
	sigset_t block;

	sigemptyset(&block);
	for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
		sigaddset(&block, sigs[i]);
	sigprocmask(SIG_BLOCK, &block, during_wait);
	for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
		sigdelset(during_wait, sigs[i]);
		sigaction(sigs[i], &sa, NULL);
	}
}

/* Tell a connection we will not serve it why, as far as it listens. */
static void refuse(int conn, const char *peer, const char *why, const char *busy)
{
	log_line("%s; refused %s", why, peer);
	if (send(conn, busy, strlen(busy), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_line("Cannot tell %s: %s", peer, strerror(errno));
}

/* accept() failed: for want of descriptors (or memory), log it once and
   pause rather than spin, leaving the connection in the backlog; 1 when
   the socket no longer listens (shut down on SIGTERM). */
static int accept_failed(struct pool *p)
{
	if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
		if (!p->said_starved)
			log_line("Cannot accept: %s; pausing", strerror(errno));
		p->starved = p->said_starved = 1;
	}
	return errno == EINVAL;
}

/* ------------------------------------------------------------------ */
/* A worker. */

void pool_session_over(void *over)
{
	struct over *o = over;

	if (scoreboard_set(o->p->sb, o->slot, o->last_use ? SLOT_EXITING : SLOT_ENDING) ||
	    o->last_use)
		wake_master(o->p);
}

/* Serve one connection, unless its peer has its share of sessions already. */
static void serve_one(struct pool *p, int slot, int conn, unsigned *uses)
{
	const struct pool_limits *lim = p->cfg->lim;
	struct over o = { .p = p, .slot = slot, .last_use = *uses + 1 >= lim->max_use };
	char peer[NI_MAXHOST], key[SCOREBOARD_PEER_MAX];
	int last;

	peer_name_and_key(conn, lim->ipv6_prefix, peer, sizeof peer, key, sizeof key);
	if (scoreboard_begin(p->sb, slot, key, lim->max_per_peer, &last) < 0) {
		refuse(conn, peer, "Too many connections from one address", lim->busy);
		return;
	}
	if (last)
		wake_master(p);
	++*uses;
	p->cfg->serve(p->cfg->ctx, conn, peer, &o);
	/* The session said it was over, or it should have: either way, free. */
	if (scoreboard_set(p->sb, slot, o.last_use ? SLOT_EXITING : SLOT_IDLE))
		wake_master(p);
}

/* Accept on the ready sockets and serve what comes: 1 when a socket no
   longer listens. */
static int accept_ready(struct pool *p, int slot, const struct epoll_event *ev, int n,
			unsigned *uses)
{
	for (int i = 0; i < n && *uses < p->cfg->lim->max_use; i++) {
		int conn = accept4(ev[i].data.fd, NULL, NULL, SOCK_CLOEXEC);

		if (conn < 0) {
			if (accept_failed(p))
				return 1;
			continue;
		}
		p->said_starved = 0;
		serve_one(p, slot, conn, uses);
		close(conn);
	}
	return 0;
}

/* The epoll set of the listening sockets: each connection wakes one
   waiting worker (EPOLLEXCLUSIVE), not all of them. */
static int watch_sockets(const struct pool *p)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);

	for (int i = 0; ep >= 0 && i < p->cfg->nfds; i++) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE,
					  .data.fd = p->cfg->fds[i] };

		if (epoll_ctl(ep, EPOLL_CTL_ADD, p->cfg->fds[i], &ev) < 0) {
			close(ep);
			ep = -1;
		}
	}
	return ep;
}

/* In the worker: signals as the master had them but SIGCHLD, death with
   the master, its own log prefix. */
static void become_worker(struct pool *p)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t chld;
	char prefix[32];

	sigaction(SIGCHLD, &dfl, NULL);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_UNBLOCK, &chld, NULL);
	got_term = 0;
	p->starved = p->said_starved = 0;
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != p->master)
		got_term = 1;
	close(p->wake[0]);
	snprintf(prefix, sizeof prefix, "[%ld] ", (long)getpid());
	log_set_prefix(prefix);
}

/* One wait of a worker, and what it brings: 1 when the worker should
   leave (idle long with a spare to take its place, a socket that no
   longer listens, or a failed wait). */
static int worker_round(struct pool *p, int slot, int ep, const sigset_t *during_wait,
			unsigned *uses)
{
	struct epoll_event ev[POOL_MAX_SOCKETS];
	struct timespec pause = { 0, ACCEPT_BACKOFF_MS * 1000000L };
	int n;

	if (p->starved) {	/* wait without looking at the sockets */
		ppoll(NULL, 0, &pause, during_wait);
		p->starved = 0;
		return 0;
	}
	n = epoll_pwait(ep, ev, POOL_MAX_SOCKETS, MAX_IDLE_MS, during_wait);
	if (n < 0 && errno != EINTR) {
		log_line("Cannot wait for connections: %s", strerror(errno));
		return 1;
	}
	return (n == 0 && scoreboard_leave_if_spare(p->sb, slot)) ||
	       (n > 0 && accept_ready(p, slot, ev, n, uses));
}

/* A worker: serve sessions until max_use of them, SIGTERM, or a long idle
   time with another worker to take its place; then exit. */
static void worker_run(struct pool *p, int slot, const sigset_t *during_wait)
{
	unsigned uses = 0;
	int ep;

	become_worker(p);
	ep = watch_sockets(p);
	if (ep < 0) {
		log_line("Cannot watch the listening sockets: %s", strerror(errno));
		exit(EX_OSERR);
	}
	scoreboard_set(p->sb, slot, SLOT_IDLE);
	wake_master(p);
	while (!got_term && !got_hup && uses < p->cfg->lim->max_use)
		if (worker_round(p, slot, ep, during_wait, &uses))
			break;
	if (scoreboard_set(p->sb, slot, SLOT_EMPTY))
		wake_master(p);
	close(ep);
	exit(0);
}

/* ------------------------------------------------------------------ */
/* The master. */

/* Fork one worker: 0, or -1 when there is no slot or fork failed. */
static int start_worker(struct pool *p, const sigset_t *during_wait)
{
	int slot = scoreboard_add(p->sb);
	pid_t pid;

	if (slot < 0)
		return -1;
	pid = fork();
	if (pid == 0)
		worker_run(p, slot, during_wait);
	if (pid < 0) {
		int err = errno;

		scoreboard_set(p->sb, slot, SLOT_EMPTY);
		if (!p->said_fork_failed)
			log_line("Cannot start a worker: %s", strerror(err));
		p->said_fork_failed = 1;
		p->fork_after = now_ms() + FORK_RETRY_MS;
		return -1;
	}
	p->said_fork_failed = 0;
	scoreboard_set_pid(p->sb, slot, pid);
	return 0;
}

/* Keep spare workers: fork while fewer are available than that and the
   cap allows. */
static void top_up(struct pool *p, const sigset_t *during_wait)
{
	struct scoreboard_counts c;

	for (;;) {
		scoreboard_count(p->sb, &c);
		if (got_term || c.available >= p->spares || c.workers >= p->cfg->lim->max_sessions ||
		    now_ms() < p->fork_after || start_worker(p, during_wait) < 0)
			break;
	}
	if (!p->ready && c.idle >= p->spares && p->cfg->notify) {
		p->cfg->notify(p->cfg->notify_ctx, "READY=1");
		p->ready = 1;
	}
}

static void log_death(struct pool *p, pid_t pid, int status, enum slot_state was)
{
	int abnormal = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
	char how[64];

	if (!abnormal)
		return;
	if (WIFSIGNALED(status))
		snprintf(how, sizeof how, "was killed by signal %d", WTERMSIG(status));
	else
		snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(status));
	log_line("Worker %ld %s%s", (long)pid, how,
		 was == SLOT_BUSY ? "; its session is lost" : "");
	p->fork_after = now_ms() + DEATH_BACKOFF_MS;
}

/* Collect the workers that exited (with block, wait for every one). */
static void reap(struct pool *p, int block)
{
	enum slot_state was;
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, block ? 0 : WNOHANG)) > 0) {
		if (scoreboard_remove(p->sb, pid, &was) < 0)
			was = SLOT_EXITING;	/* it gave its slot up on its way out */
		log_death(p, pid, status, was);
	}
}

/* Every worker allowed is busy (or none could be started): take what waits
   on the ready sockets and answer it with the busy line. */
static void refuse_waiting(struct pool *p, const struct pollfd *pfd)
{
	struct scoreboard_counts c;

	for (int i = 0; i < p->cfg->nfds; i++) {
		char peer[NI_MAXHOST];
		int conn;

		if (!(pfd[i].revents & POLLIN))
			continue;
		scoreboard_count(p->sb, &c);
		if (c.available > 0)
			return;
		conn = accept4(pfd[i].fd, NULL, NULL, SOCK_CLOEXEC);
		if (conn < 0) {
			accept_failed(p);
			continue;
		}
		p->said_starved = 0;
		peer_name(conn, peer, sizeof peer);
		refuse(conn, peer, c.workers >= p->cfg->lim->max_sessions ? "Too many connections"
			: "No worker to serve it", p->cfg->lim->busy);
		close(conn);
	}
}

/* SIGHUP: the workers leave, each once its session is over, and new ones
   take their places (top_up) as they go. Nothing else is read again here:
   each session reads the accounts and certificates afresh. */
static void reload(struct pool *p)
{
	got_hup = 0;
	scoreboard_kill(p->sb, SIGHUP);
	log_line("Reloading: new workers replace the old, each once its session is over.");
}

/* How long the master may wait (in *ts; NULL: until woken): while
   accepting pauses for want of descriptors, or a fork waits to be tried
   again with too few workers available. */
static struct timespec *master_timeout(const struct pool *p, const struct scoreboard_counts *c,
				       struct timespec *ts)
{
	uint64_t now = now_ms(), ms;

	if (!p->starved && !(p->fork_after > now && c->available < p->spares))
		return NULL;
	ms = p->starved ? ACCEPT_BACKOFF_MS : p->fork_after - now;
	*ts = (struct timespec){ (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	return ts;
}

/* Wait for a worker's word, a signal, or (when none is available) a
   connection to refuse. */
static void master_round(struct pool *p, const sigset_t *during_wait)
{
	struct pollfd pfd[POOL_MAX_SOCKETS + 1];
	struct scoreboard_counts c;
	struct timespec ts;
	nfds_t n = 0;
	char drain[64];

	scoreboard_count(p->sb, &c);
	if (c.available == 0 && !p->starved)
		for (int i = 0; i < p->cfg->nfds; i++)
			pfd[n++] = (struct pollfd){ .fd = p->cfg->fds[i], .events = POLLIN };
	pfd[n] = (struct pollfd){ .fd = p->wake[0], .events = POLLIN };
	if (ppoll(pfd, n + 1, master_timeout(p, &c, &ts), during_wait) == 0)
		p->starved = 0;
	while (read(p->wake[0], drain, sizeof drain) > 0)
		;
	if (got_child) {
		got_child = 0;
		reap(p, 0);
	}
	if (got_hup)
		reload(p);
	top_up(p, during_wait);
	if (n > 0 && !got_term)
		refuse_waiting(p, pfd);
}

/* SIGTERM: stop taking connections (our own sockets stop listening at
   once, for every worker), tell the workers, wait for their sessions. */
static void drain(struct pool *p)
{
	struct scoreboard_counts c;

	for (int i = 0; i < p->cfg->nfds; i++) {
		if (p->cfg->own_sockets)
			shutdown(p->cfg->fds[i], SHUT_RD);
		close(p->cfg->fds[i]);
	}
	scoreboard_kill(p->sb, SIGTERM);
	if (p->cfg->notify)
		p->cfg->notify(p->cfg->notify_ctx, "STOPPING=1");
	scoreboard_count(p->sb, &c);
	log_line("Stopping: waiting for %u session(s) to finish.", c.busy);
	reap(p, 1);
	log_line("Stopped.");
}

int pool_run(const struct pool_config *cfg)
{
	struct pool p = { .cfg = cfg, .master = getpid(), .wake = { -1, -1 } };
	unsigned max = cfg->lim->max_sessions;
	sigset_t during_wait;

	p.spares = max < SPARES ? max : SPARES;
	/* Room for the workers allowed and as many exiting ones. */
	p.sb = scoreboard_new(2 * max);
	if (!p.sb || pipe2(p.wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		log_line("Cannot start the workers: %s", strerror(errno));
		if (p.sb)
			scoreboard_free(p.sb);
		return EX_OSERR;
	}
	install_handlers(&during_wait);
	fflush(NULL);		/* nothing buffered is written twice */
	top_up(&p, &during_wait);
	while (!got_term)
		master_round(&p, &during_wait);
	drain(&p);
	close(p.wake[0]);
	close(p.wake[1]);
	scoreboard_free(p.sb);
	return 0;
}
