/* bench/loadgen.c: a load generator for My_SMTP. C connections at once run N
   complete sessions in all (or until a time limit), only to the address given
   (the bench uses 127.0.0.1), and it prints one line of key=value figures:
   sessions per second, p50/p99 latency, and how many failed.
     loadgen [-c conns] [-n sessions] [-T secs] [-m send|get|list] [-r requests]
             [-a address] [-M] [-i max-id | -x id] [-k kib] host port
   send: greeting, HELO, MAIL FROM, RCPT TO, DATA with a k KiB message, QUIT;
         every reply must be 200, the last of DATA "200 Message stored successfully".
         With -M each connection sends to a mailbox of its own (bench1@test.com,
         bench2@test.com, ...), as the disk-limit writers each have a file.
   get:  HELO, then r times GET_MAIL of a random id in 1..max-id (or of id), QUIT.
   list: HELO, then r times LIST, QUIT. Latency is per session (send) or per
   request (get, list); list also reports lines per second. */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define REPLY_MAX 2048

struct options {
	int conns;
	long sessions, requests, max_id, fixed_id;
	double seconds;
	const char *mode, *address, *host, *port;
	int kib;
	int own_mailbox;	/* -M */
};

struct conn {
	int fd;
	size_t pos, len;
	char buf[65536];
};

static struct options opt = { 8, 1000, 1, 10, 0, 60.0, "send", "bench@test.com", NULL, NULL, 1, 0 };
static struct addrinfo *target;
static atomic_long next_session, done_ok, done_failed, lines_read;
static double *latency;		/* one per session or request */
static atomic_long nlatency;
static long latency_cap;
static double started, deadline;
static char *message;		/* the DATA text, dot-terminated */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dial(struct conn *c)
{
	struct timeval tv = { 10, 0 };

	c->fd = socket(target->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	c->pos = c->len = 0;
	if (c->fd < 0)
		return -1;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(c->fd, target->ai_addr, target->ai_addrlen) < 0) {
		close(c->fd);
		return -1;
	}
	return 0;
}

static int send_all(struct conn *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);

		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* One reply line into line[REPLY_MAX] without CRLF: its length, or -1. */
static int read_line(struct conn *c, char *line)
{
	size_t n = 0;

	for (;;) {
		char *lf;
		size_t take;

		if (c->pos == c->len) {
			ssize_t k = recv(c->fd, c->buf, sizeof c->buf, 0);

			if (k <= 0)
				return -1;
			c->pos = 0;
			c->len = (size_t)k;
		}
		lf = memchr(c->buf + c->pos, '\n', c->len - c->pos);
		take = (lf ? (size_t)(lf - (c->buf + c->pos)) + 1 : c->len - c->pos);
		if (n + take < REPLY_MAX) {
			memcpy(line + n, c->buf + c->pos, take);
			n += take;
		}
		c->pos += take;
		if (lf)
			break;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	line[n] = '\0';
	return (int)n;
}

/* Send a command (NULL: none) and expect a reply starting with want. */
static int step(struct conn *c, const char *cmd, const char *want)
{
	char line[REPLY_MAX];

	if (cmd && send_all(c, cmd, strlen(cmd)) < 0)
		return -1;
	if (read_line(c, line) < 0)
		return -1;
	return strncmp(line, want, strlen(want)) == 0 ? 0 : -1;
}

/* Read a multi-line reply body up to its "." line; the number of lines. */
static long read_body(struct conn *c)
{
	char line[REPLY_MAX];
	long n = 0;

	for (;;) {
		if (read_line(c, line) < 0)
			return -1;
		if (strcmp(line, ".") == 0)
			return n;
		n++;
	}
}

static void record(double seconds)
{
	long i = atomic_fetch_add(&nlatency, 1);

	if (i < latency_cap)
		latency[i] = seconds;
}

static int session_send(struct conn *c, unsigned k)
{
	char rcpt[400];

	if (opt.own_mailbox)
		snprintf(rcpt, sizeof rcpt, "RCPT TO: bench%u@test.com\r\n", k);
	else
		snprintf(rcpt, sizeof rcpt, "RCPT TO: %s\r\n", opt.address);
	return step(c, NULL, "200 ") || step(c, "HELO test.com\r\n", "200 ") ||
	       step(c, "MAIL FROM: bench@test.com\r\n", "200 ") || step(c, rcpt, "200 ") ||
	       step(c, "DATA\r\n", "200 ") ||
	       step(c, message, "200 Message stored successfully") ||
	       step(c, "QUIT\r\n", "200 Goodbye") ? -1 : 0;
}

static int session_read(struct conn *c, unsigned *seed)
{
	const char *domain = strchr(opt.address, '@');
	char cmd[512];
	int list = strcmp(opt.mode, "list") == 0;

	snprintf(cmd, sizeof cmd, "HELO %s\r\n", domain ? domain + 1 : "test.com");
	if (step(c, NULL, "200 ") || step(c, cmd, "200 "))
		return -1;
	for (long r = 0; r < opt.requests; r++) {
		double t0 = now();
		long lines;

		if (list)
			snprintf(cmd, sizeof cmd, "LIST %s\r\n", opt.address);
		else
			snprintf(cmd, sizeof cmd, "GET_MAIL %s %ld\r\n", opt.address,
				 opt.fixed_id ? opt.fixed_id : 1 + (long)(rand_r(seed) % opt.max_id));
		if (step(c, cmd, "200 ") || (lines = read_body(c)) < 0)
			return -1;
		atomic_fetch_add(&lines_read, lines);
		record(now() - t0);
	}
	return step(c, "QUIT\r\n", "200 Goodbye");
}

static void *worker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u;
	struct conn *c = malloc(sizeof *c);
	int sending = strcmp(opt.mode, "send") == 0;

	while (c && atomic_fetch_add(&next_session, 1) < opt.sessions && now() < deadline) {
		double t0 = now();
		int rc = dial(c);

		if (rc == 0) {
			rc = sending ? session_send(c, (unsigned)(uintptr_t)arg) : session_read(c, &seed);
			close(c->fd);
		}
		if (rc == 0 && sending)
			record(now() - t0);
		atomic_fetch_add(rc == 0 ? &done_ok : &done_failed, 1);
	}
	free(c);
	return NULL;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double percentile(long n, double p)
{
	long i = (long)(p * (double)(n - 1) + 0.5);

	return n > 0 ? latency[i] * 1000 : 0;
}

static void build_message(void)
{
	size_t line = 64, lines = (size_t)opt.kib * 1024 / line, n = 0;

	message = malloc(lines * line + 4);
	for (size_t i = 0; i < lines; i++) {
		memset(message + n, 'a' + (char)(i % 26), line - 2);
		memcpy(message + n + line - 2, "\r\n", 2);
		n += line;
	}
	memcpy(message + n, ".\r\n", 4);
}

static void usage(void)
{
	fputs("usage: loadgen [-c conns] [-n sessions] [-T secs] [-m send|get|list] [-r requests]\n"
	      "               [-a address] [-M] [-i max-id | -x id] [-k kib] host port\n", stderr);
	exit(64);
}

static void parse(int argc, char **argv)
{
	int ch;

	while ((ch = getopt(argc, argv, "c:n:T:m:r:a:Mi:x:k:")) != -1) {
		switch (ch) {
		case 'c': opt.conns = atoi(optarg); break;
		case 'n': opt.sessions = atol(optarg); break;
		case 'T': opt.seconds = atof(optarg); break;
		case 'm': opt.mode = optarg; break;
		case 'r': opt.requests = atol(optarg); break;
		case 'a': opt.address = optarg; break;
		case 'M': opt.own_mailbox = 1; break;
		case 'i': opt.max_id = atol(optarg); break;
		case 'x': opt.fixed_id = atol(optarg); break;
		case 'k': opt.kib = atoi(optarg); break;
		default: usage();
		}
	}
	if (argc - optind != 2 || opt.conns < 1 || opt.conns > 1024 || opt.sessions < 1 ||
	    opt.requests < 1 || opt.max_id < 1 || opt.fixed_id < 0 || opt.kib < 1 || opt.seconds <= 0 ||
	    (strcmp(opt.mode, "send") && strcmp(opt.mode, "get") && strcmp(opt.mode, "list")))
		usage();
	opt.host = argv[optind];
	opt.port = argv[optind + 1];
}

int main(int argc, char **argv)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST };
	pthread_t *threads;
	long n;
	double elapsed;

	parse(argc, argv);
	if (getaddrinfo(opt.host, opt.port, &hints, &target) != 0) {
		fprintf(stderr, "loadgen: %s:%s is not a numeric address and port\n", opt.host, opt.port);
		return 64;
	}
	build_message();
	latency_cap = opt.sessions * (strcmp(opt.mode, "send") ? opt.requests : 1);
	latency = calloc((size_t)latency_cap, sizeof *latency);
	threads = calloc((size_t)opt.conns, sizeof *threads);
	if (!latency || !threads)
		return 71;
	started = now();
	deadline = started + opt.seconds;
	for (int i = 0; i < opt.conns; i++)
		pthread_create(&threads[i], NULL, worker, (void *)(uintptr_t)(i + 1));
	for (int i = 0; i < opt.conns; i++)
		pthread_join(threads[i], NULL);
	elapsed = now() - started;
	n = atomic_load(&nlatency) < latency_cap ? atomic_load(&nlatency) : latency_cap;
	qsort(latency, (size_t)n, sizeof *latency, by_value);
	printf("mode=%s conns=%d ok=%ld failed=%ld seconds=%.3f rate=%.1f requests=%ld "
	       "req_rate=%.1f p50_ms=%.3f p99_ms=%.3f lines=%ld lines_rate=%.0f\n",
	       opt.mode, opt.conns, atomic_load(&done_ok), atomic_load(&done_failed), elapsed,
	       (double)atomic_load(&done_ok) / elapsed, n, (double)n / elapsed,
	       percentile(n, 0.50), percentile(n, 0.99), atomic_load(&lines_read),
	       (double)atomic_load(&lines_read) / elapsed);
	freeaddrinfo(target);
	return atomic_load(&done_failed) ? 1 : 0;
}
