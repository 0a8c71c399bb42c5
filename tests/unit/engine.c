/* tests/unit/engine.c: the session engine serving a toy dialect shaped like
   IMAP: tagged lines, literals ("{n}" answered with a continuation line
   before the octets are read, "{n+}" without one), a line limit of its own,
   an untagged line sent when a watched descriptor becomes readable
   while the session waits, between commands or inside one (IDLE), also
   when the octets of the next line are held by a transport rather than
   the descriptor (as TLS holds them), and a literal far past the line
   limit streamed to the dialect (APPEND). The session runs in a child over a socketpair;
   the test is its client. */
#define _GNU_SOURCE
#include "engine/session.h"
#include "unit.h"

#include <errno.h>
#include <stdint.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOY_LINE_MAX 8192	/* IMAP needs at least 8,000 octets */
#define TOY_LITERAL_MAX (2u << 20)	/* a message, for the dialect with a sink */
#define BIG_LITERAL (1u << 20)

static int toy_pipe[2];		/* written by the test: "something arrived" */

enum toy_state { TOY_ANY };

struct toy {
	int watching;
	uint64_t sunk;		/* octets the literal sink took */
	uint32_t sum;		/* and their checksum */
};

static void toy_reply(struct session *s, int code, const char *text)
{
	char line[TOY_LINE_MAX];
	const char *word = code == 200 ? "OK" : code == 400 ? "NO" : "BAD";
	int n = snprintf(line, sizeof line, "%s %s %s", *s->tag ? s->tag : "*", word, text);

	session_send_line(s, line, n < 0 || (size_t)n >= sizeof line ? 0 : (size_t)n);
	session_replied(s, line, code != 200, code != 200);
}

static void toy_greet(struct session *s)
{
	session_send_line(s, "* OK toy ready", 14);
}

static void toy_go_ahead(struct session *s)
{
	session_send_line(s, "+ go ahead", 10);
}

static void toy_refuse(struct session *s, enum refusal why, const struct command *c)
{
	(void)c;
	session_reply(s, 500, why == REFUSE_TOO_LONG ? "too long" : "refused");
}

static void toy_last_words(struct session *s, enum ending why)
{
	(void)why;
	session_send_line(s, "* BYE", 5);
}

/* ECHO: the command as it came, its CRLFs shown as "/". */
static void cmd_echo(struct session *s, char *arg)
{
	for (char *p = arg; (p = strstr(p, "\r\n")) != NULL; p += 2)
		memcpy(p, "//", 2);
	session_reply(s, 200, arg);
}

static void cmd_watch(struct session *s, char *arg)
{
	(void)arg;
	((struct toy *)s->dialect_state)->watching = 1;
	session_reply(s, 200, "watching");
}

static int toy_watch(struct session *s)
{
	return ((struct toy *)s->dialect_state)->watching ? toy_pipe[0] : -1;
}

static void toy_wake(struct session *s)
{
	char c;

	if (read(toy_pipe[0], &c, 1) == 1)
		session_send_line(s, "* 1 EXISTS", 10);
}

/* What IDLE does when the watched pipe is readable. */
static void toy_idle_ready(struct session *s, void *ctx)
{
	(void)ctx;
	toy_wake(s);
}

/* IDLE (RFC 2177): untagged lines as the pipe says, until the client's DONE. */
static void cmd_idle(struct session *s, char *arg)
{
	char line[16];
	int n;

	(void)arg;
	session_send_line(s, "+ idling", 8);
	n = session_wait_line(s, toy_pipe[0], toy_idle_ready, NULL, line, sizeof line - 1);
	if (n == 4 && strcasecmp(line, "DONE") == 0)
		session_reply(s, 200, "IDLE done");
	else if (!session_over(s))
		session_reply(s, 500, "expected DONE");
}

/* A transport that takes what the socket holds at once, as TLS takes
   whole records, and hands it out at most chunk octets a read. */
static struct holding {
	int fd;
	size_t chunk, start, end;
	char buf[64];
} held;

static ssize_t held_read(void *ctx, void *buf, size_t len, short *events)
{
	struct holding *h = ctx;
	ssize_t n;

	if (h->start == h->end) {
		n = recv(h->fd, h->buf, sizeof h->buf, MSG_DONTWAIT);
		if (n <= 0) {
			*events = POLLIN;
			return n == 0 ? 0 : errno == EAGAIN ? -EAGAIN : -errno;
		}
		h->start = 0;
		h->end = (size_t)n;
	}
	n = (ssize_t)(h->end - h->start < len ? h->end - h->start : len);
	n = n < (ssize_t)h->chunk ? n : (ssize_t)h->chunk;
	memcpy(buf, h->buf + h->start, (size_t)n);
	h->start += (size_t)n;
	return n;
}

static const struct io_transport holding_transport = { .read = held_read, .ctx = &held };

/* HOLD n: read through the holding transport from now on, n octets a read. */
static void cmd_hold(struct session *s, char *arg)
{
	int out;

	session_fds(s, &held.fd, &out);
	held.chunk = (size_t)atoi(arg);
	reader_set_transport(session_reader(s), &holding_transport);
	session_reply(s, 200, "holding");
}

/* APPEND: what the sink took of the literal, and the line as it came. */
static void cmd_append(struct session *s, char *arg)
{
	struct toy *t = s->dialect_state;

	for (char *p = arg; (p = strstr(p, "\r\n")) != NULL; p += 2)
		memcpy(p, "//", 2);
	session_replyf(s, 200, "%llu %08x %s", (unsigned long long)t->sunk, t->sum, arg);
	t->sunk = 0;
	t->sum = 0;
}

/* The checksum both sides keep of a streamed literal. */
static uint32_t checksum(uint32_t sum, const char *octets, size_t len)
{
	for (size_t i = 0; i < len; i++)
		sum = (sum << 5 | sum >> 27) ^ (unsigned char)octets[i];
	return sum;
}

static void toy_literal_sink(struct session *s, const char *octets, size_t len)
{
	struct toy *t = s->dialect_state;

	t->sunk += len;
	t->sum = checksum(t->sum, octets, len);
}

static const struct command toy_commands[] = {
	{ .verb = "NOOP", .run = session_cmd_reply, .code = 200, .text = "noop" },
	{ .verb = "ECHO", .run = cmd_echo },
	{ .verb = "WATCH", .no_argument = 1, .run = cmd_watch },
	{ .verb = "IDLE", .no_argument = 1, .run = cmd_idle },
	{ .verb = "HOLD", .run = cmd_hold },
	{ .verb = "APPEND", .run = cmd_append },
	{ .verb = "LOGOUT", .run = session_cmd_quit, .code = 200, .text = "bye" },
	{ .verb = NULL },
};

static const struct dialect toy_dialect = {
	.commands = toy_commands, .greet = toy_greet, .reply = toy_reply,
	.refuse = toy_refuse, .last_words = toy_last_words,
	.state_size = SESSION_STATE_SIZE(struct toy),
	.line_max = TOY_LINE_MAX, .tagged = 1, .literals = 1, .go_ahead = toy_go_ahead,
	.watch = toy_watch, .wake = toy_wake,
};

/* The same, taking literals past the line limit into a sink. */
static const struct dialect sink_dialect = {
	.commands = toy_commands, .greet = toy_greet, .reply = toy_reply,
	.refuse = toy_refuse, .last_words = toy_last_words,
	.state_size = SESSION_STATE_SIZE(struct toy),
	.line_max = TOY_LINE_MAX, .tagged = 1, .literals = 1, .go_ahead = toy_go_ahead,
	.watch = toy_watch, .wake = toy_wake,
	.literal_max = TOY_LITERAL_MAX, .literal_sink = toy_literal_sink,
};

static const struct dialect *serving = &toy_dialect;

static void quiet(void *ctx, const char *fmt, ...)
{
	(void)ctx;
	(void)fmt;
}

static void serve(int fd)
{
	static const struct config cfg = { .timeout = 20, .max_errors = 10, .max_junk = 100,
					   .max_session = 60, .hostname = "toy" };
	struct session_env env = { .in_fd = fd, .out_fd = fd, .peer = "local", .log = quiet };

	_exit((int)session_run(&cfg, NULL, &env, serving));
}

/* The client's side: read one line (without CRLF) within 10 s. */
static int read_line(int fd, char *line, size_t max)
{
	size_t len = 0;

	while (len + 1 < max) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 10000) <= 0 || read(fd, line + len, 1) != 1)
			return -1;
		if (line[len] == '\n') {
			line[len - (len > 0 && line[len - 1] == '\r')] = '\0';
			return 0;
		}
		len++;
	}
	return -1;
}

static int said(int fd, const char *expected)
{
	char line[TOY_LINE_MAX];

	if (read_line(fd, line, sizeof line) < 0)
		return 0;
	if (strcmp(line, expected) != 0)
		printf("    expected \"%s\", got \"%s\"\n", expected, line);
	return strcmp(line, expected) == 0;
}

static void send_text(int fd, const char *text)
{
	CHECK(send(fd, text, strlen(text), MSG_NOSIGNAL) == (ssize_t)strlen(text));
}

/* A literal past the limit: refused at once, its octets never asked for. */
static void check_literal_limit(int fd)
{
	send_text(fd, "A4 ECHO {9000}\r\n");
	CHECK(said(fd, "A4 BAD too long"));
	send_text(fd, "A5 NOOP\r\n");
	CHECK(said(fd, "A5 OK noop"));
}

static void talk(int fd)
{
	CHECK(said(fd, "* OK toy ready"));
	send_text(fd, "A1 NOOP\r\n");
	CHECK(said(fd, "A1 OK noop"));
	send_text(fd, "A2 ECHO {5}\r\n");
	CHECK(said(fd, "+ go ahead"));
	send_text(fd, "hello tail\r\n");
	CHECK(said(fd, "A2 OK {5}//hello tail"));
	send_text(fd, "A3 ECHO {5+}\r\nworld {2+}\r\nhi\r\n");
	CHECK(said(fd, "A3 OK {5+}//world {2+}//hi"));
	check_literal_limit(fd);
	send_text(fd, "A6 WATCH\r\n");
	CHECK(said(fd, "A6 OK watching"));
	CHECK(write(toy_pipe[1], "x", 1) == 1);
	CHECK(said(fd, "* 1 EXISTS"));
	send_text(fd, "A7 LOGOUT\r\n");
	CHECK(said(fd, "A7 OK bye"));
}

/* A "{n+}" literal past the limit: refused, and the session ends, since
   its octets, sent unasked, would be taken for commands. */
static void talk_unasked_too_long(int fd)
{
	CHECK(said(fd, "* OK toy ready"));
	char line[64];

	send_text(fd, "B1 ECHO {9000+}\r\nB2 NOOP\r\n");
	CHECK(said(fd, "B1 BAD too long"));
	CHECK(read_line(fd, line, sizeof line) < 0);	/* closed, B2 never run */
}

/* The same after a first literal that holds a NUL: the refusal must still
   see the "+" (a NUL read as the line's end once hid it, and the octets
   after it were run as commands). */
static void talk_unasked_after_a_nul(int fd)
{
	static const char text[] = "C1 ECHO {3+}\r\nx\0y tail {9000+}\r\nC2 NOOP\r\n";
	char line[64];

	CHECK(said(fd, "* OK toy ready"));
	CHECK(send(fd, text, sizeof text - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof text - 1));
	CHECK(said(fd, "C1 BAD too long"));
	CHECK(read_line(fd, line, sizeof line) < 0);	/* closed, C2 never run */
}

/* Serve one toy session to talk, and what it ended with. */
static int toy_session(void (*talk_fn)(int fd))
{
	int sv[2], status = -1;
	pid_t pid;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		serve(sv[1]);
	}
	close(sv[1]);
	talk_fn(sv[0]);
	close(sv[0]);
	CHECK(waitpid(pid, &status, 0) == pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void test_engine_tagged_dialect(void)
{
	CHECK(pipe(toy_pipe) == 0);
	CHECK(toy_session(talk) == END_QUIT);
	CHECK(toy_session(talk_unasked_too_long) == END_ERRORS);
	CHECK(toy_session(talk_unasked_after_a_nul) == END_ERRORS);
	close(toy_pipe[0]);
	close(toy_pipe[1]);
}

/* IDLE: an untagged line each time the pipe says so, then DONE; a line
   other than DONE ends the idling with a BAD. */
static void talk_idle(int fd)
{
	CHECK(said(fd, "* OK toy ready"));
	send_text(fd, "A1 IDLE\r\n");
	CHECK(said(fd, "+ idling"));
	CHECK(write(toy_pipe[1], "x", 1) == 1);
	CHECK(said(fd, "* 1 EXISTS"));
	CHECK(write(toy_pipe[1], "x", 1) == 1);
	CHECK(said(fd, "* 1 EXISTS"));
	send_text(fd, "DONE\r\n");
	CHECK(said(fd, "A1 OK IDLE done"));
	send_text(fd, "A2 IDLE\r\n");
	CHECK(said(fd, "+ idling"));
	send_text(fd, "A3 NOOP\r\n");
	CHECK(said(fd, "A2 BAD expected DONE"));
	send_text(fd, "A4 NOOP\r\n");
	CHECK(said(fd, "A4 OK noop"));
	send_text(fd, "A5 LOGOUT\r\n");
	CHECK(said(fd, "A5 OK bye"));
}

void test_engine_idle(void)
{
	CHECK(pipe(toy_pipe) == 0);
	CHECK(toy_session(talk_idle) == END_QUIT);
	close(toy_pipe[0]);
	close(toy_pipe[1]);
}

/* Two commands in one write, of which the transport hands out chunk
   octets a read: the second must be answered though the descriptor shows
   nothing more while the engine watches the pipe. */
static void check_held(int fd, const char *chunk)
{
	char hold[32];

	snprintf(hold, sizeof hold, "H1 HOLD %s\r\n", chunk);
	send_text(fd, hold);
	CHECK(said(fd, "H1 OK holding"));
	send_text(fd, "A8 NOOP\r\nA9 NOOP\r\n");
	CHECK(said(fd, "A8 OK noop"));
	CHECK(said(fd, "A9 OK noop"));
}

static void talk_held(int fd)
{
	CHECK(said(fd, "* OK toy ready"));
	send_text(fd, "A1 WATCH\r\n");
	CHECK(said(fd, "A1 OK watching"));
	check_held(fd, "12");	/* a part of A9 in the reader, the rest in the transport */
	check_held(fd, "9");	/* all of A9 in the transport */
	send_text(fd, "A7 LOGOUT\r\n");
	CHECK(said(fd, "A7 OK bye"));
}

void test_engine_held_input(void)
{
	CHECK(pipe(toy_pipe) == 0);
	CHECK(toy_session(talk_held) == END_QUIT);
	close(toy_pipe[0]);
	close(toy_pipe[1]);
}

/* Write the big literal's octets (a pattern with every octet value in it),
   and their checksum. */
static uint32_t send_big_literal(int fd)
{
	static char chunk[65536];
	uint32_t sum = 0;

	for (size_t done = 0; done < BIG_LITERAL; done += sizeof chunk) {
		for (size_t i = 0; i < sizeof chunk; i++)
			chunk[i] = (char)((done + i) * 7 + (done + i) / 251);
		sum = checksum(sum, chunk, sizeof chunk);
		for (size_t off = 0; off < sizeof chunk;) {
			ssize_t n = send(fd, chunk + off, sizeof chunk - off, MSG_NOSIGNAL);

			CHECK(n > 0);
			if (n <= 0)
				return 0;
			off += (size_t)n;
		}
	}
	return sum;
}

static void talk_big_literal(int fd)
{
	char expected[128];
	uint32_t sum;

	CHECK(said(fd, "* OK toy ready"));
	send_text(fd, "A1 APPEND INBOX {1048576}\r\n");
	CHECK(said(fd, "+ go ahead"));
	sum = send_big_literal(fd);
	send_text(fd, " tail\r\n");
	snprintf(expected, sizeof expected, "A1 OK %u %08x INBOX {1048576}// tail",
		 BIG_LITERAL, sum);
	CHECK(said(fd, expected));
	send_text(fd, "A2 NOOP\r\n");
	CHECK(said(fd, "A2 OK noop"));
	send_text(fd, "A3 APPEND INBOX {3000000}\r\n");	/* past literal_max */
	CHECK(said(fd, "A3 BAD too long"));
	send_text(fd, "A4 ECHO {5}\r\n");	/* a small one stays in the line */
	CHECK(said(fd, "+ go ahead"));
	send_text(fd, "hello\r\n");
	CHECK(said(fd, "A4 OK {5}//hello"));
	send_text(fd, "A5 LOGOUT\r\n");
	CHECK(said(fd, "A5 OK bye"));
}

/* A "{n+}" literal past literal_max ends the session, unread. */
static void talk_big_unasked(int fd)
{
	char line[64];

	CHECK(said(fd, "* OK toy ready"));
	send_text(fd, "B1 APPEND INBOX {3000000+}\r\nB2 NOOP\r\n");
	CHECK(said(fd, "B1 BAD too long"));
	CHECK(read_line(fd, line, sizeof line) < 0);
}

void test_engine_literal_sink(void)
{
	serving = &sink_dialect;
	CHECK(toy_session(talk_big_literal) == END_QUIT);
	CHECK(toy_session(talk_big_unasked) == END_ERRORS);
	serving = &toy_dialect;
}
