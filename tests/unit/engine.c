/* tests/unit/engine.c: the session engine serving a toy dialect shaped like
   IMAP: tagged lines, literals ("{n}" answered with a continuation line
   before the octets are read, "{n+}" without one), a line limit of its own,
   and an untagged line sent when a watched descriptor becomes readable
   while the session waits. The session runs in a child over a socketpair;
   the test is its client. */
#define _GNU_SOURCE
#include "engine/session.h"
#include "unit.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOY_LINE_MAX 8192	/* IMAP needs at least 8,000 octets */

static int toy_pipe[2];		/* written by the test: "something arrived" */

enum toy_state { TOY_ANY };

struct toy {
	int watching;
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

static const struct command toy_commands[] = {
	{ .verb = "NOOP", .run = session_cmd_reply, .code = 200, .text = "noop" },
	{ .verb = "ECHO", .run = cmd_echo },
	{ .verb = "WATCH", .no_argument = 1, .run = cmd_watch },
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

	_exit((int)session_run(&cfg, NULL, &env, &toy_dialect));
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
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
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
	close(toy_pipe[0]);
	close(toy_pipe[1]);
}
