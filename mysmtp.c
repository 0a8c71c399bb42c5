/*
 * mysmtp.c: the My_SMTP client.  Without a subcommand it is a shell for the
 * protocol (prompts and line editing on a terminal, a command file from a
 * pipe); the subcommands send, list and get do one job each for scripts.
 * Every wait for the server has a deadline; exit codes are sysexits (usage()).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <histedit.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

#define DEFAULT_HOST	"127.0.0.1"
#define DEFAULT_PORT	"2525"
#define DEFAULT_SECS	30
#define DEFAULT_KEEPALIVE 60	/* seconds idle while a message is typed, then NOOP */
#define VERSION		"1.0"
#define DATA_PROMPT	"Enter your message (end with a single dot '.'):"
#define HISTORY_FILE	".mysmtp_history"
#define HISTORY_SIZE	500
#define REPLY_MAX	1000	/* octets in a status line, CRLF not counted */
#define PIECE_MAX	16384	/* longer lines are handled in pieces this long */
#define NO_DEADLINE	(-1)	/* for reads from stdin or a file */

/* What get_line found, besides -errno; LN_INTR: the user pressed ^C. */
enum { LN_END, LN_MORE, LN_EOF, LN_INTR };

static volatile sig_atomic_t interrupted;	/* ^C at the terminal */

/* The commands the shell must follow to stay in step with the server. */
enum verb { V_OTHER, V_DATA, V_LIST, V_GET, V_QUIT, V_RCPT, V_NEW };

/* A read buffer over a file descriptor. */
struct lbuf {
	int fd;
	size_t pos, len;
	char buf[PIECE_MAX];
};

/* The connection to the server. */
struct conn {
	int fd;
	int secs;			/* the -t timeout */
	const char *where;		/* "host:port", for messages */
	struct lbuf in;
	size_t outlen;
	char out[PIECE_MAX];
	size_t linelen;
	char line[REPLY_MAX + 1];	/* the last status line, without CRLF */
	char piece[PIECE_MAX];		/* a piece of a message line */
};

/* Where the shell reads its lines: libedit on a terminal, else lb. */
struct input {
	EditLine *el;
	History *hist;
	char history_path[PATH_MAX];	/* "" when history is not kept */
	char *prompt;			/* what libedit shows; never written */
	bool remember;			/* put the lines read into the history */
	bool show;			/* stdout is a terminal: mask control bytes */
	struct conn *keepalive;		/* while a message is typed: NOOP it when idle */
	int keepalive_secs;
	bool ready;			/* the server took a RCPT TO: DATA would be taken */
	const char *lost;		/* why the session ended while the user typed */
	struct lbuf lb;
	char piece[PIECE_MAX];
};

/* The command line, parsed. */
struct job {
	enum { J_SHELL, J_SEND, J_LIST, J_GET } kind;
	const char *host, *port, *helo, *from, *file, *addr, *id;
	char **rcpt;
	int nrcpt;
	int secs;
	int keepalive;
};

static const char usage_text[] =
"usage: mysmtp [-s host] [-p port] [-t secs] [-k secs] [host[:port] [port]]\n"
"       mysmtp [options] send -f from [-H helo] [-i file] rcpt...\n"
"       mysmtp [options] list [-H helo] address\n"
"       mysmtp [options] get [-H helo] address id\n"
"       mysmtp -h | --help | -V | --version\n";

static const char help_text[] =
"\n"
"Talks My_SMTP to the server at host:port (default 127.0.0.1:2525; a host\n"
"name, an IPv4 address, or an IPv6 address, bare or in brackets).\n"
"\n"
"Without a subcommand mysmtp is a shell: type HELO, MAIL FROM:, RCPT TO:,\n"
"DATA, LIST, GET_MAIL, NOOP, RSET, HELP, QUIT. On a terminal it prompts\n"
"\"> \" with line editing and history; after DATA it shows the server's\n"
"prompt without its code and reads the message up to a line holding only\n"
"\".\" (a line starting with \".\" is sent with one more). The greeting is\n"
"hidden unless it is an error; LIST and GET_MAIL replies are shown without\n"
"their closing \".\" and extra dots. End of input (^D) sends QUIT. On a\n"
"terminal a message is kept here until its \".\" and only then sent, so ^D\n"
"or ^C inside it drops it and returns to the prompt (the transaction stays\n"
"open), and while you type, a NOOP every -k seconds keeps the session from\n"
"timing out. ^C at the prompt clears the line. Tab completes commands.\n"
"Commands (not message text) are kept in ~/.mysmtp_history, or in\n"
"$MYSMTP_HISTORY (empty: none). Control bytes from the server show as ^X\n"
"on a terminal.\n"
"When standard input is not a terminal, the shell reads the same lines\n"
"from it without prompting and prints every reply but the DATA prompt, so a\n"
"command file can be piped through it. Blank lines are skipped, a CR before\n"
"LF is dropped, and after a refused DATA the lines up to \".\" are skipped.\n"
"\n"
"Subcommands print only their result; errors go to stderr:\n"
"  send  sends the text on stdin (or in -i file) from <from> to each rcpt,\n"
"        after HELO <helo> (default: the domain of from). Each line goes\n"
"        as it is, a CR before its LF included; a missing last LF is added;\n"
"        a line holding only \".\" is text here, not the end.\n"
"  list  prints the mailbox of address: N: Email from <sender> (DD-MM-YYYY)\n"
"  get   prints message id of the mailbox of address exactly as it was sent\n"
"        (without the From: and Date: lines), so get ... >file gives back\n"
"        the text byte for byte.\n"
"  list and get say HELO <helo> first (default: the domain of address),\n"
"  since the server shows only mailboxes in the HELO domain.\n"
"\n"
"Options:\n"
"Options may come before or after the subcommand:\n"
"  -s, --server host   server host (default 127.0.0.1); the shell also takes\n"
"            it as its first operand, as host or host:port ([v6]:port)\n"
"  -p, --port port     server port (default 2525); the shell also takes it as\n"
"            its second operand\n"
"  -t, --timeout secs  give up connecting, or waiting for a reply line (or\n"
"            for the next 16 KiB of a long one), after secs seconds (default 30)\n"
"  -k, --keepalive secs  while a message is typed on a terminal, send NOOP\n"
"            after secs seconds without a key (default 60)\n"
"  -h, --help          show this help\n"
"  -V, --version       show the version\n"
"\n"
"Exit status (sysexits.h); the shell's is that of its first failed reply,\n"
"or of what ended the session:\n"
"   0  every reply was 200\n"
"  64  usage error (EX_USAGE)\n"
"  65  a 400 reply, or input ended inside a message (EX_DATAERR)\n"
"  66  the -i file cannot be opened (EX_NOINPUT)\n"
"  67  a 401 reply: no such mailbox or message (EX_NOUSER)\n"
"  69  no connection: unknown host, refused, timed out (EX_UNAVAILABLE)\n"
"  73  a message typed on a terminal cannot be held in a temporary file\n"
"      (EX_CANTCREAT)\n"
"  74  connection closed mid-session, no reply in time, a malformed or\n"
"      overlong reply, a read or write error (EX_IOERR)\n"
"  75  a 500 reply (EX_TEMPFAIL)\n"
"  77  a 403 reply (EX_NOPERM)\n";

/* Prints the usage to stderr and returns EX_USAGE. */
static int usage(const char *why)
{
	if (why)
		fprintf(stderr, "mysmtp: %s\n", why);
	fputs(usage_text, stderr);
	fputs("Try 'mysmtp -h' for more.\n", stderr);
	return EX_USAGE;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t deadline(const struct conn *c)
{
	return now_ms() + (int64_t)c->secs * 1000;
}

/* Waits until fd is ready for events; -ETIMEDOUT past the deadline. */
static int wait_fd(int fd, short events, int64_t until)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int64_t left = until - now_ms();
		if (left < 0)
			left = 0;
		int r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r > 0)
			return 0;
		if (r == 0 && left == 0)
			return -ETIMEDOUT;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* Refills b when it is empty: 1 when it has bytes, 0 at end of input. */
static int lb_fill(struct lbuf *b, int64_t until)
{
	if (b->pos < b->len)
		return 1;
	b->pos = b->len = 0;
	for (;;) {
		if (until != NO_DEADLINE) {
			int r = wait_fd(b->fd, POLLIN, until);
			if (r < 0)
				return r;
		}
		ssize_t n = read(b->fd, b->buf, sizeof b->buf);
		if (n >= 0) {
			b->len = (size_t)n;
			return n > 0;
		}
		if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
	}
}

/*
 * Reads a line, or its next cap octets, into out without its LF (and
 * without a CR before the LF when strip_cr).  Returns LN_END at the end
 * of a line, LN_MORE when out is full, LN_EOF at end of input (*n octets
 * of an unended line before it), or -errno.
 */
static int get_line(struct lbuf *b, char *out, size_t cap, size_t *n,
		    bool strip_cr, int64_t until)
{
	*n = 0;
	while (*n < cap) {
		int r = lb_fill(b, until);
		if (r <= 0)
			return r < 0 ? r : LN_EOF;
		char ch = b->buf[b->pos++];
		if (ch == '\n')
			return LN_END;
		if (ch == '\r' && strip_cr) {
			r = lb_fill(b, until);
			if (r < 0)
				return r;
			if (r > 0 && b->buf[b->pos] == '\n') {
				b->pos++;
				return LN_END;
			}
		}
		out[(*n)++] = ch;
	}
	return LN_MORE;
}

/* Writes p to f; when mask, a control byte shows as ^X. */
static void put_text(FILE *f, const char *p, size_t n, bool mask)
{
	if (!mask) {
		fwrite(p, 1, n, f);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
			putc('^', f);
			ch ^= 0x40;
		}
		putc(ch, f);
	}
}

/* Says why the session with the server broke; returns EX_IOERR. */
static int conn_fail(const struct conn *c, int err)
{
	fprintf(stderr, "mysmtp: %s: ", c->where);
	switch (-err) {
	case ETIMEDOUT:
		fprintf(stderr, "no reply within %d s\n", c->secs);
		break;
	case ENOTCONN:
		fputs("connection closed by server\n", stderr);
		break;
	case EMSGSIZE:
		fprintf(stderr, "reply line longer than %d octets\n", REPLY_MAX);
		break;
	case EPROTO:
		fputs("malformed reply: ", stderr);
		put_text(stderr, c->line, c->linelen < 80 ? c->linelen : 80, true);
		putc('\n', stderr);
		if (c->linelen >= 4 && memcmp(c->line, "220", 3) == 0)
			fputs("mysmtp: that is a standard SMTP server (mysmtpd -S, port 2526?);"
			      " mysmtp speaks My_SMTP (port 2525)\n", stderr);
		break;
	default:
		fprintf(stderr, "%s\n", strerror(-err));
	}
	return EX_IOERR;
}

/* Says why reading name failed; returns EX_IOERR. */
static int input_fail(const char *name, int err)
{
	fprintf(stderr, "mysmtp: %s: %s\n", name, strerror(-err));
	return EX_IOERR;
}

/* Writes all of p to the server, waiting at most -t for each part. */
static int conn_write(struct conn *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EPIPE)
			return -ENOTCONN;
		if (w < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		int r = wait_fd(c->fd, POLLOUT, deadline(c));
		if (r < 0)
			return r;
	}
	return 0;
}

static int conn_flush(struct conn *c)
{
	int r = conn_write(c, c->out, c->outlen);

	c->outlen = 0;
	return r;
}

/* Queues p for the server, sending when the buffer is full. */
static int conn_put(struct conn *c, const char *p, size_t n)
{
	if (c->outlen + n > sizeof c->out) {
		int r = conn_flush(c);
		if (r < 0 || n > sizeof c->out)
			return r < 0 ? r : conn_write(c, p, n);
	}
	memcpy(c->out + c->outlen, p, n);
	c->outlen += n;
	return 0;
}

/* Sends a whole line: p, CRLF. */
static int conn_line(struct conn *c, const char *p, size_t n)
{
	int r = conn_put(c, p, n);

	if (r == 0)
		r = conn_put(c, "\r\n", 2);
	return r == 0 ? conn_flush(c) : r;
}

/* The code of a reply line: 200, 400, 401, 403 or 500, else -EPROTO. */
static int reply_code(const char *s, size_t n)
{
	static const int codes[] = { 200, 400, 401, 403, 500 };

	if (n < 3 || (n > 3 && s[3] != ' '))
		return -EPROTO;
	int code = 0;
	for (int i = 0; i < 3; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EPROTO;
		code = code * 10 + (s[i] - '0');
	}
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
		if (codes[i] == code)
			return code;
	return -EPROTO;
}

/*
 * Reads one status line into c->line; returns its code, or -ENOTCONN when
 * the server closed, -EMSGSIZE when it is overlong, -EPROTO when it is not
 * a My_SMTP reply, -ETIMEDOUT.
 */
static int read_reply(struct conn *c)
{
	size_t n;
	int r = get_line(&c->in, c->line, sizeof c->line, &n, true, deadline(c));

	c->linelen = n;
	if (r < 0)
		return r == -ECONNRESET ? -ENOTCONN : r;
	if (r == LN_EOF)
		return -ENOTCONN;
	if (r == LN_MORE)
		return -EMSGSIZE;
	return reply_code(c->line, n);
}

/* The exit status for a reply code. */
static int code_status(int code)
{
	switch (code) {
	case 200: return EX_OK;
	case 400: return EX_DATAERR;
	case 401: return EX_NOUSER;
	case 403: return EX_NOPERM;
	default:  return EX_TEMPFAIL;
	}
}

static bool has_prefix(const char *p, size_t n, const char *prefix)
{
	size_t k = strlen(prefix);

	return n >= k && memcmp(p, prefix, k) == 0;
}

/*
 * Copies the body of a multi-line reply to out up to its closing ".",
 * undoing dot-stuffing.  The first lines must start with the prefixes in
 * heads (a NULL-ended list, or NULL) and are not copied.
 */
static int read_body(struct conn *c, FILE *out, bool mask, const char *const *heads)
{
	bool start = true;
	size_t skip = 0;

	while (heads && heads[skip])
		skip++;
	for (size_t line = 0;; ) {
		size_t n;
		int r = get_line(&c->in, c->piece, sizeof c->piece, &n, true, deadline(c));
		if (r < 0 || r == LN_EOF)
			return r < 0 && r != -ECONNRESET ? r : -ENOTCONN;
		const char *p = c->piece;
		if (start && r == LN_END && n == 1 && p[0] == '.')
			return 0;
		if (start && n > 0 && p[0] == '.') {
			p++;
			n--;
		}
		if (line >= skip) {
			put_text(out, p, n, mask);
			if (r == LN_END)
				putc('\n', out);
		} else if (start && !has_prefix(p, n, heads[line])) {
			c->linelen = n < REPLY_MAX ? n : REPLY_MAX;
			memcpy(c->line, p, c->linelen);
			return -EPROTO;
		}
		start = r == LN_END;
		line += start;
	}
}

/* Sends a piece of a message line, dot-stuffed if it starts the line. */
static int put_text_piece(struct conn *c, const char *p, size_t n, bool first, bool end)
{
	int r = 0;

	if (first && n > 0 && p[0] == '.')
		r = conn_put(c, ".", 1);
	if (r == 0)
		r = conn_put(c, p, n);
	if (r == 0 && end)
		r = conn_put(c, "\r\n", 2);
	return r;
}

/* Connects fd to sa within the timeout. */
static int connect_within(int fd, const struct sockaddr *sa, socklen_t len, int secs)
{
	if (connect(fd, sa, len) == 0)
		return 0;
	if (errno != EINPROGRESS && errno != EINTR)
		return -errno;
	int r = wait_fd(fd, POLLOUT, now_ms() + (int64_t)secs * 1000);
	if (r < 0)
		return r;
	int e = 0;
	socklen_t elen = sizeof e;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) < 0)
		return -errno;
	return -e;
}

/* Connects to the server, trying each of its addresses; the socket, or -1. */
static int dial(const char *host, const char *port, int secs, const char *where)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICSERV,
	};
	struct addrinfo *res;
	int g = getaddrinfo(host, port, &hints, &res);

	if (g != 0) {
		fprintf(stderr, "mysmtp: %s: %s\n", where,
			g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
		return -1;
	}
	int fd = -1, err = -EHOSTUNREACH;
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			err = -errno;
			continue;
		}
		err = connect_within(fd, ai->ai_addr, ai->ai_addrlen, secs);
		if (err < 0) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0 && err == -ETIMEDOUT)
		fprintf(stderr, "mysmtp: %s: connection timed out after %d s\n", where, secs);
	else if (fd < 0)
		fprintf(stderr, "mysmtp: %s: %s\n", where, strerror(-err));
	return fd;
}

/* Reads the greeting; says it on stderr unless it is a 200. */
static int greet(struct conn *c)
{
	int code = read_reply(c);

	if (code < 0)
		return conn_fail(c, code);
	if (code == 200)
		return EX_OK;
	fprintf(stderr, "mysmtp: %s: ", c->where);
	put_text(stderr, c->line, c->linelen, true);
	putc('\n', stderr);
	return code_status(code);
}

/* Reads the reply to what; on anything but 200 says so on stderr.  Returns the exit status. */
static int expect_200(struct conn *c, const char *what)
{
	int code = read_reply(c);

	if (code < 0)
		return conn_fail(c, code);
	if (code == 200)
		return EX_OK;
	fprintf(stderr, "mysmtp: %s: ", what);
	put_text(stderr, c->line, c->linelen, true);
	putc('\n', stderr);
	return code_status(code);
}

/* Sends one command and checks its reply is 200; returns the exit status. */
__attribute__((format(printf, 2, 3)))
static int command(struct conn *c, const char *fmt, ...)
{
	char cmd[REPLY_MAX];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof cmd) {
		fprintf(stderr, "mysmtp: command longer than %d octets\n", REPLY_MAX - 1);
		return EX_USAGE;
	}
	int r = conn_line(c, cmd, (size_t)n);
	if (r < 0)
		return conn_fail(c, r);
	return expect_200(c, cmd);
}

/* Ends a scripted session politely; its outcome no longer matters. */
static void say_quit(struct conn *c)
{
	if (conn_line(c, "QUIT", 4) == 0)
		(void)read_reply(c);
}

/* Flushes stdout; EX_IOERR if anything written to it was lost. */
static int flush_stdout(void)
{
	if (fflush(stdout) == 0 && !ferror(stdout))
		return EX_OK;
	fprintf(stderr, "mysmtp: stdout: %s\n", strerror(errno));
	return EX_IOERR;
}

/* Sends the text read from src, then the closing "." (send). */
static int send_text(struct conn *c, struct lbuf *src, const char *name)
{
	bool first = true;

	for (;;) {
		int r = 0;
		if (src->pos == src->len)	/* about to wait for input */
			r = conn_flush(c);
		if (r < 0)
			return conn_fail(c, r);
		size_t n;
		int got = get_line(src, c->piece, sizeof c->piece, &n, false, NO_DEADLINE);
		if (got < 0)
			return input_fail(name, got);
		if (got == LN_EOF && n == 0 && first)
			break;
		r = put_text_piece(c, c->piece, n, first, got != LN_MORE);
		if (r < 0)
			return conn_fail(c, r);
		if (got == LN_EOF)
			break;
		first = got == LN_END;
	}
	int r = conn_line(c, ".", 1);
	return r < 0 ? conn_fail(c, r) : EX_OK;
}

/* send: HELO, MAIL FROM, RCPT TO each, DATA, the text, QUIT. */
static int run_send(struct conn *c, const struct job *j, int text_fd)
{
	static struct lbuf src;		/* static: too big for a small stack */
	int st = command(c, "HELO %s", j->helo);

	src.fd = text_fd;
	if (st == EX_OK)
		st = command(c, "MAIL FROM: %s", j->from);
	for (int i = 0; st == EX_OK && i < j->nrcpt; i++)
		st = command(c, "RCPT TO: %s", j->rcpt[i]);
	if (st == EX_OK)
		st = command(c, "DATA");
	if (st == EX_OK)
		st = send_text(c, &src, j->file ? j->file : "stdin");
	if (st == EX_OK)
		st = expect_200(c, "end of DATA");
	if (st != EX_IOERR)
		say_quit(c);
	return st;
}

/* list and get: HELO, LIST or GET_MAIL, the body to stdout, QUIT. */
static int run_mailbox(struct conn *c, const struct job *j)
{
	static const char *const heads[] = { "From: ", "Date: ", NULL };
	int st = command(c, "HELO %s", j->helo);

	if (st == EX_OK && j->kind == J_GET)
		st = command(c, "GET_MAIL %s %s", j->addr, j->id);
	else if (st == EX_OK)
		st = command(c, "LIST %s", j->addr);
	if (st == EX_OK) {
		int r = read_body(c, stdout, isatty(STDOUT_FILENO),
				  j->kind == J_GET ? heads : NULL);
		st = r < 0 ? conn_fail(c, r) : flush_stdout();
	}
	if (st != EX_IOERR)
		say_quit(c);
	return st;
}

/* The prompt libedit shows: the one the shell set last. */
static char *prompt_of(EditLine *el)
{
	void *data = NULL;

	el_get(el, EL_CLIENTDATA, &data);
	return ((struct input *)data)->prompt;
}

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* Keeps the session alive while the user types a message: NOOP, 200. */
static int send_keepalive(struct input *in)
{
	struct conn *c = in->keepalive;
	int r = conn_line(c, "NOOP", 4);

	if (r == 0 && (r = read_reply(c)) == 200)
		return 0;
	in->lost = r < 0 ? "the connection broke" : "the server ended the session";
	return -1;
}

/* libedit's reader: one character from the terminal, waiting for it at
   most keepalive_secs while a message is typed, then sending a NOOP.
   1 with *wc, 0 at end of input, -1 on ^C or an error. */
static int read_char(EditLine *el, wchar_t *wc)
{
	struct input *in = NULL;
	mbstate_t mb;

	el_get(el, EL_CLIENTDATA, &in);
	memset(&mb, 0, sizeof mb);
	while (!interrupted) {
		struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
		int r = poll(&p, 1, in->keepalive ? in->keepalive_secs * 1000 : -1);
		ssize_t n;
		char ch;

		if (r == 0 && send_keepalive(in) < 0)
			return -1;
		if (r <= 0)
			continue;	/* a NOOP kept the session, or a signal came */
		n = read(STDIN_FILENO, &ch, 1);
		if (n == 0)
			return 0;
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return -1;
		if (n < 0)
			continue;
		size_t k = mbrtowc(wc, &ch, 1, &mb);
		if (k == (size_t)-2)
			continue;	/* more octets of one character to come */
		if (k == (size_t)-1)
			*wc = (unsigned char)ch;
		return 1;
	}
	return -1;
}

/* Tab at the start of a line: complete the command being typed. */
static unsigned char complete(EditLine *el, int ch)
{
	static const char *const words[] = { "HELO ", "MAIL FROM: ", "RCPT TO: ", "DATA",
		"LIST ", "GET_MAIL ", "NOOP", "RSET", "HELP", "QUIT" };
	const LineInfo *li = el_line(el);
	size_t len = (size_t)(li->cursor - li->buffer), hits = 0, last = 0;

	(void)ch;
	if (memchr(li->buffer, ' ', len))
		return CC_ERROR;		/* past the verb: nothing to complete */
	for (size_t i = 0; i < sizeof words / sizeof *words; i++)
		if (strncasecmp(li->buffer, words[i], len) == 0)
			hits++, last = i;
	if (hits == 1) {
		el_deletestr(el, (int)len);
		el_insertstr(el, words[last]);
		return CC_REFRESH;
	}
	if (hits > 1) {
		putc('\n', stdout);
		for (size_t i = 0; i < sizeof words / sizeof *words; i++)
			if (strncasecmp(li->buffer, words[i], len) == 0)
				printf("%s  ", words[i]);
		putc('\n', stdout);
		return CC_REDISPLAY;
	}
	return CC_ERROR;
}

/* Where the history is kept: $MYSMTP_HISTORY ("" for nowhere), else
   ~/.mysmtp_history. */
static void history_path(struct input *in)
{
	const char *env = getenv("MYSMTP_HISTORY"), *home = getenv("HOME");
	int n = 0;

	in->history_path[0] = '\0';
	if (env)
		n = snprintf(in->history_path, sizeof in->history_path, "%s", env);
	else if (home && *home)
		n = snprintf(in->history_path, sizeof in->history_path, "%s/%s", home, HISTORY_FILE);
	if (n < 0 || (size_t)n >= sizeof in->history_path)
		in->history_path[0] = '\0';
}

/* Sets up line editing, completion and history on the terminal. */
static int edit_open(struct input *in)
{
	HistEvent ev;

	in->el = el_init("mysmtp", stdin, stdout, stderr);
	in->hist = history_init();
	if (in->el == NULL || in->hist == NULL)
		return -ENOMEM;
	history(in->hist, &ev, H_SETSIZE, HISTORY_SIZE);
	history(in->hist, &ev, H_SETUNIQUE, 1);
	history_path(in);
	if (in->history_path[0])
		history(in->hist, &ev, H_LOAD, in->history_path);	/* none yet is fine */
	el_set(in->el, EL_EDITOR, "emacs");
	el_set(in->el, EL_SIGNAL, 1);
	el_set(in->el, EL_HIST, history, in->hist);
	el_set(in->el, EL_CLIENTDATA, (void *)in);
	el_set(in->el, EL_PROMPT, prompt_of);
	el_set(in->el, EL_GETCFN, read_char);
	/* el_wset: el_set would keep a wide copy of the two names, never freed */
	el_wset(in->el, EL_ADDFN, L"mysmtp-complete", L"complete a command", complete);
	el_set(in->el, EL_BIND, "^I", "mysmtp-complete", NULL);
	el_source(in->el, NULL);
	return 0;
}

/* Ends line editing; the history is saved, readable by its owner only. */
static void edit_close(struct input *in)
{
	HistEvent ev;

	if (in->hist && in->history_path[0]) {
		mode_t old = umask(077);

		if (history(in->hist, &ev, H_SAVE, in->history_path) < 0)
			fprintf(stderr, "mysmtp: cannot save the history in %s\n", in->history_path);
		umask(old);
	}
	if (in->el)
		el_end(in->el);
	if (in->hist)
		history_end(in->hist);
}

/*
 * Reads the next piece of an input line into *p: LN_END, LN_MORE, LN_EOF
 * (with *n == 0 at the very end) or -errno.  A line ending CRLF ends LF.
 */
static int input_piece(struct input *in, const char **p, size_t *n)
{
	if (in->el == NULL) {
		*p = in->piece;
		return get_line(&in->lb, in->piece, sizeof in->piece, n, true, NO_DEADLINE);
	}
	int count = 0;
	const char *s = el_gets(in->el, &count);
	if (s == NULL || count <= 0) {
		*n = 0;
		if (in->lost)
			return -ENOTCONN;
		if (interrupted) {
			interrupted = 0;
			return LN_INTR;
		}
		return LN_EOF;
	}
	size_t len = (size_t)count;
	if (in->remember && len > 1) {
		HistEvent ev;
		history(in->hist, &ev, H_ENTER, s);
	}
	if (len > 0 && s[len - 1] == '\n')
		len--;
	if (len > 0 && s[len - 1] == '\r')
		len--;
	*p = s;
	*n = len;
	return LN_END;
}

/* Which command a line starts with, as far as the shell cares. */
static enum verb verb_of(const char *p, size_t n)
{
	static const struct { const char *name; enum verb verb; } verbs[] = {
		{ "DATA", V_DATA }, { "LIST", V_LIST },
		{ "GET_MAIL", V_GET }, { "QUIT", V_QUIT }, { "RCPT", V_RCPT },
		{ "HELO", V_NEW }, { "MAIL", V_NEW }, { "RSET", V_NEW },
	};
	size_t i = 0, k;

	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	for (k = i; k < n && p[k] != ' ' && p[k] != '\t'; k++)
		;
	for (size_t v = 0; v < sizeof verbs / sizeof verbs[0]; v++)
		if (strlen(verbs[v].name) == k - i && strncasecmp(p + i, verbs[v].name, k - i) == 0)
			return verbs[v].verb;
	return V_OTHER;
}

/* Sends a command line, the rest of it too when it came in pieces. */
static int send_command(struct conn *c, struct input *in, const char *p, size_t n, int got)
{
	for (;;) {
		int r = conn_put(c, p, n);
		if (r < 0)
			return conn_fail(c, r);
		if (got != LN_MORE)
			break;
		got = input_piece(in, &p, &n);
		if (got < 0)
			return input_fail("stdin", got);
	}
	int r = conn_line(c, "", 0);
	return r < 0 ? conn_fail(c, r) : EX_OK;
}

/* Sends the message typed after DATA up to a lone ".", dot-stuffed. */
static int shell_message(struct conn *c, struct input *in)
{
	bool first = true;

	in->prompt = "";
	in->remember = false;
	for (;;) {
		int r = 0;
		if (in->el || in->lb.pos == in->lb.len)	/* about to wait for input */
			r = conn_flush(c);
		if (r < 0)
			return conn_fail(c, r);
		const char *p;
		size_t n;
		int got = input_piece(in, &p, &n);
		if (got < 0)
			return input_fail("stdin", got);
		if (got == LN_EOF && n == 0) {
			if (in->el)		/* after libedit's "^D" */
				putc('\n', stdout);
			fflush(stdout);
			fputs("mysmtp: end of input inside a message; message not sent\n", stderr);
			return EX_DATAERR;
		}
		if (first && got == LN_END && n == 1 && p[0] == '.') {
			r = conn_line(c, ".", 1);
			return r < 0 ? conn_fail(c, r) : EX_OK;
		}
		r = put_text_piece(c, p, n, first, got != LN_MORE);
		if (r < 0)
			return conn_fail(c, r);
		first = got != LN_MORE;
	}
}

static void show_reply(const struct conn *c, const struct input *in)
{
	put_text(stdout, c->line, c->linelen, in->show);
	putc('\n', stdout);
}

/* On a terminal, after DATA: the message is typed into a temporary file,
   with a NOOP whenever the user is idle for keepalive_secs, and sent only
   after its ".". EX_OK with *text open at its start, or EX_DATAERR when
   the user dropped it (^D or ^C), or the status of what broke. */
static int compose_message(struct conn *c, struct input *in, FILE **text)
{
	*text = tmpfile();
	if (*text == NULL) {
		fprintf(stderr, "mysmtp: cannot hold the message: %s\n", strerror(errno));
		return EX_CANTCREAT;
	}
	in->prompt = "";
	in->remember = false;
	in->keepalive = c;
	for (bool first = true;;) {
		const char *p;
		size_t n;
		int got = input_piece(in, &p, &n);

		if (got == -ENOTCONN) {
			in->keepalive = NULL;
			fprintf(stderr, "\nmysmtp: %s while the message was typed: ", in->lost);
			put_text(stderr, c->line, c->linelen, true);
			fputs("\nmysmtp: message not sent\n", stderr);
			return EX_IOERR;
		}
		if (got < 0)
			return input_fail("stdin", got);
		if (got == LN_INTR || (got == LN_EOF && n == 0)) {
			in->keepalive = NULL;
			fputs("\nmysmtp: message dropped; the transaction is still open\n", stdout);
			return EX_DATAERR;
		}
		if (first && n == 1 && p[0] == '.')
			break;
		if (fwrite(p, 1, n, *text) != n || (got != LN_MORE && putc('\n', *text) == EOF))
			return input_fail("the message's temporary file", -errno);
		first = got != LN_MORE;
	}
	in->keepalive = NULL;
	if (fflush(*text) != 0 || fseek(*text, 0, SEEK_SET) != 0)
		return input_fail("the message's temporary file", -errno);
	return EX_OK;
}

/* Sends the composed text after DATA, dot-stuffed, then the final ".". */
static int send_composed(struct conn *c, FILE *text)
{
	char buf[PIECE_MAX];
	bool first = true;

	while (fgets(buf, sizeof buf, text)) {
		size_t n = strlen(buf);
		bool end = n > 0 && buf[n - 1] == '\n';
		int r = put_text_piece(c, buf, end ? n - 1 : n, first, end);

		if (r < 0)
			return conn_fail(c, r);
		first = end;
	}
	int r = conn_line(c, ".", 1);
	return r < 0 ? conn_fail(c, r) : EX_OK;
}

/* DATA typed on a terminal once a recipient was taken: the message first,
   then DATA, its text and the final reply. */
static int shell_data(struct conn *c, struct input *in, const char *p, size_t n, bool *stop)
{
	char line[64];		/* the DATA line: libedit reuses its buffer for the message */
	FILE *text;
	int st, code;

	memcpy(line, p, n);
	puts(DATA_PROMPT);
	st = compose_message(c, in, &text);
	*stop = st == EX_IOERR || st == EX_CANTCREAT;
	if (st == EX_OK && (st = send_command(c, in, line, n, LN_END)) == EX_OK) {
		code = read_reply(c);
		if (code == 200)
			st = send_composed(c, text);
		else if (code < 0)
			st = conn_fail(c, code);
		if (st == EX_OK && code == 200 && (code = read_reply(c)) < 0)
			st = conn_fail(c, code);
		if (st == EX_OK) {
			show_reply(c, in);
			st = code_status(code);
		}
		in->ready = false;
		*stop = st == EX_IOERR;
	}
	if (text)
		fclose(text);
	return st == EX_DATAERR ? EX_OK : st;	/* a message the user dropped is no failure */
}

/* After a refused DATA, skips the message that follows in a command file. */
static int skip_message(struct input *in)
{
	bool first = true;

	for (;;) {
		const char *p;
		size_t n;
		int got = input_piece(in, &p, &n);
		if (got < 0)
			return input_fail("stdin", got);
		if (got == LN_EOF || (first && got == LN_END && n == 1 && p[0] == '.'))
			return EX_OK;
		first = got != LN_MORE;
	}
}

/*
 * Before a command: the server speaks unasked only when it ends the
 * session (idle timeout, too many errors); show what it said, then stop.
 */
static int check_unasked(struct conn *c, const struct input *in)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };

	if (c->in.pos == c->in.len && poll(&p, 1, 0) <= 0)
		return 0;
	int r = read_reply(c);
	if (r < 0)
		return r;
	show_reply(c, in);
	r = read_reply(c);
	return r < 0 ? r : -EPROTO;
}

/*
 * One command and its reply (after DATA, also the message and its reply).
 * Returns the exit status for the reply; sets *stop when the session is
 * over: QUIT accepted, the connection broken, input ended in a message.
 */
static int shell_command(struct conn *c, struct input *in, const char *p, size_t n,
			 int got, bool *stop)
{
	enum verb verb = verb_of(p, n);

	if (verb == V_DATA && in->el && in->ready && got == LN_END && n < 64)
		return shell_data(c, in, p, n, stop);
	int st = send_command(c, in, p, n, got);

	*stop = true;
	if (st != EX_OK)
		return st;
	int code = read_reply(c);
	if (code < 0)
		return conn_fail(c, code);
	if (code == 200 && (verb == V_RCPT || verb == V_NEW))
		in->ready = verb == V_RCPT;
	if (verb == V_DATA && code == 200) {
		if (in->el && c->linelen > 4) {
			put_text(stdout, c->line + 4, c->linelen - 4, in->show);
			putc('\n', stdout);
		}
		st = shell_message(c, in);
		if (st != EX_OK)
			return st;
		code = read_reply(c);
		if (code < 0)
			return conn_fail(c, code);
		verb = V_OTHER;
	}
	show_reply(c, in);
	if (code == 200 && (verb == V_LIST || verb == V_GET)) {
		int r = read_body(c, stdout, in->show, NULL);
		if (r < 0)
			return conn_fail(c, r);
	}
	if (code != 200 && verb == V_DATA && in->el == NULL && skip_message(in) != EX_OK)
		return EX_IOERR;
	*stop = verb == V_QUIT && code == 200;
	return code_status(code);
}

/* At the end of input: QUIT for the user (its reply shown on a terminal). */
static int shell_end(struct conn *c, const struct input *in, int status)
{
	if (in->el)			/* after libedit's "^D" */
		putc('\n', stdout);
	int r = conn_line(c, "QUIT", 4);
	int code = r < 0 ? r : read_reply(c);
	if (code < 0)
		return conn_fail(c, code);
	if (in->el)
		show_reply(c, in);
	return status != EX_OK ? status : code_status(code);
}

/*
 * The shell: each line read is a command.  Returns the exit status of
 * the first failed reply, or of what broke the session.
 */
static int run_shell(struct conn *c, struct input *in)
{
	int status = EX_OK;

	for (;;) {
		int r = check_unasked(c, in);
		if (r < 0)
			return conn_fail(c, r);
		if (fflush(stdout) != 0)
			return flush_stdout();
		in->prompt = "> ";
		in->remember = true;
		const char *p;
		size_t n;
		int got = input_piece(in, &p, &n);
		if (got < 0)
			return input_fail("stdin", got);
		if (got == LN_INTR) {		/* ^C at the prompt: a fresh line */
			putc('\n', stdout);
			continue;
		}
		if (got == LN_EOF && n == 0)
			return shell_end(c, in, status);
		if (got != LN_MORE && n == 0)
			continue;
		bool stop;
		int st = shell_command(c, in, p, n, got, &stop);
		if (stop && st != EX_OK)
			return st;
		if (status == EX_OK)
			status = st;
		if (stop)
			return status;
	}
}

/* Whether s is free of control characters (which could split a command). */
static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* Parses a decimal number in [lo, hi]; -1 if s is not one. */
static long number(const char *s, long lo, long hi)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	long v = strtol(s, &end, 10);
	return errno || *end || v < lo || v > hi ? -1 : v;
}

/* The domain of an address: what follows its last '@', or NULL. */
static const char *domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at && at[1] ? at + 1 : NULL;
}

static const struct option long_options[] = {
	{ "server", required_argument, NULL, 's' },
	{ "port", required_argument, NULL, 'p' },
	{ "timeout", required_argument, NULL, 't' },
	{ "keepalive", required_argument, NULL, 'k' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* An option that may come before or after a subcommand: EX_OK, or the
   exit status for a bad one; -1 when ch is not one of them. */
static int common_option(struct job *j, int ch)
{
	switch (ch) {
	case 'h':
		fputs(usage_text, stdout);
		fputs(help_text, stdout);
		exit(flush_stdout());
	case 'V':
		puts("mysmtp " VERSION);
		exit(flush_stdout());
	case 's': j->host = optarg; return EX_OK;
	case 'p': j->port = optarg; return EX_OK;
	case 't':
		j->secs = (int)number(optarg, 1, 86400);
		return j->secs < 0 ? usage("-t wants whole seconds from 1 to 86400") : EX_OK;
	case 'k':
		j->keepalive = (int)number(optarg, 1, 86400);
		return j->keepalive < 0 ? usage("-k wants whole seconds from 1 to 86400") : EX_OK;
	default:
		return -1;
	}
}

/* Parses the subcommand in argv[0] and its arguments. */
static int parse_job(struct job *j, int argc, char **argv)
{
	const char *opts = "H:s:p:t:k:hV";

	if (strcmp(argv[0], "send") == 0) {
		j->kind = J_SEND;
		opts = "f:H:i:s:p:t:k:hV";
	} else
		j->kind = strcmp(argv[0], "list") == 0 ? J_LIST : J_GET;
	optind = 0;		/* glibc: start afresh on the new vector */
	for (int ch; (ch = getopt_long(argc, argv, opts, long_options, NULL)) != -1; ) {
		int st = common_option(j, ch);

		if (st > 0)
			return st;
		if (st == EX_OK)
			continue;
		switch (ch) {
		case 'f': j->from = optarg; break;
		case 'H': j->helo = optarg; break;
		case 'i': j->file = optarg; break;
		default: return usage(NULL);
		}
	}
	argc -= optind;
	argv += optind;
	if (j->kind == J_SEND) {
		if (j->from == NULL || argc < 1)
			return usage("send needs -f from and at least one rcpt");
		j->rcpt = argv;
		j->nrcpt = argc;
	} else {
		if (argc != (j->kind == J_GET ? 2 : 1))
			return usage(j->kind == J_GET ? "get needs an address and an id"
						       : "list needs one address");
		j->addr = argv[0];
		j->id = j->kind == J_GET ? argv[1] : NULL;
	}
	const char *who = j->kind == J_SEND ? j->from : j->addr;
	if (j->helo == NULL && (j->helo = domain_of(who)) == NULL)
		return usage("no domain in the address to say HELO with; give -H");
	return EX_OK;
}

/* The shell's first operand: "host", "host:port", "[v6]" or "[v6]:port"
   (a bare IPv6 address has more than one colon and no port). */
static void split_host_port(struct job *j, char *arg)
{
	char *colon = strrchr(arg, ':');

	j->host = arg;
	if (!colon || (arg[0] != '[' && strchr(arg, ':') != colon) ||
	    (arg[0] == '[' && colon[-1] != ']'))
		return;
	*colon = '\0';
	j->port = colon + 1;
}

/* Parses the whole command line into j; EX_OK, or the exit status. */
static int parse_args(struct job *j, int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!printable(argv[i]))
			return usage("control characters in an argument");
	for (int ch; (ch = getopt_long(argc, argv, "+hVs:p:t:k:", long_options, NULL)) != -1; ) {
		int st = common_option(j, ch);

		if (st != EX_OK)
			return st > 0 ? st : usage(NULL);
	}
	argc -= optind;
	argv += optind;
	if (argc > 0 && (strcmp(argv[0], "send") == 0 || strcmp(argv[0], "list") == 0 ||
			 strcmp(argv[0], "get") == 0)) {
		int st = parse_job(j, argc, argv);
		if (st != EX_OK)
			return st;
	} else if (argc > 2)
		return usage("too many operands");
	else {
		if (argc > 0)
			split_host_port(j, argv[0]);
		if (argc > 1)
			j->port = argv[1];
	}
	if (number(j->port, 1, 65535) < 0)
		return usage("the port must be a number from 1 to 65535");
	return EX_OK;
}

/* Opens the connection: "host:port" into where, dial, greeting. */
static int open_conn(struct conn *c, const struct job *j, char *where, size_t size)
{
	char host[256];
	size_t hlen = strlen(j->host);
	int n;

	if (hlen > 2 && j->host[0] == '[' && j->host[hlen - 1] == ']')
		n = snprintf(host, sizeof host, "%.*s", (int)(hlen - 2), j->host + 1);
	else
		n = snprintf(host, sizeof host, "%s", j->host);
	if (n < 0 || (size_t)n >= sizeof host)
		return usage("host name too long");
	n = snprintf(where, size, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, j->port);
	if (n < 0 || (size_t)n >= size)
		return usage("host name too long");
	c->where = where;
	c->secs = j->secs;
	c->fd = c->in.fd = dial(host, j->port, j->secs, where);
	if (c->fd < 0)
		return EX_UNAVAILABLE;
	return greet(c);
}

/* Runs the shell on stdin: libedit on a terminal, else plain reads. */
static int shell_main(struct conn *c, int keepalive_secs)
{
	static struct input in;		/* static: too big for a small stack */
	int st;

	in.show = isatty(STDOUT_FILENO);
	in.lb.fd = STDIN_FILENO;
	in.keepalive_secs = keepalive_secs;
	if (isatty(STDIN_FILENO)) {
		struct sigaction sa = { .sa_handler = on_interrupt };	/* no SA_RESTART */

		sigaction(SIGINT, &sa, NULL);
	}
	if (isatty(STDIN_FILENO) && edit_open(&in) < 0) {
		edit_close(&in);
		fputs("mysmtp: cannot set up line editing\n", stderr);
		return EX_OSERR;
	}
	st = run_shell(c, &in);
	if (fflush(stdout) != 0 && st == EX_OK)
		st = flush_stdout();
	edit_close(&in);
	return st;
}

int main(int argc, char **argv)
{
	static struct conn c;		/* static: too big for a small stack */
	struct job j = { .host = DEFAULT_HOST, .port = DEFAULT_PORT, .secs = DEFAULT_SECS,
			 .keepalive = DEFAULT_KEEPALIVE };
	char where[300];
	int text_fd = STDIN_FILENO;

	c.fd = -1;

	int st = parse_args(&j, argc, argv);
	if (st != EX_OK)
		return st;
	if (j.file && (text_fd = open(j.file, O_RDONLY | O_CLOEXEC)) < 0) {
		fprintf(stderr, "mysmtp: %s: %s\n", j.file, strerror(errno));
		return EX_NOINPUT;
	}
	st = open_conn(&c, &j, where, sizeof where);
	if (st == EX_OK && j.kind == J_SHELL)
		st = shell_main(&c, j.keepalive);
	else if (st == EX_OK && j.kind == J_SEND)
		st = run_send(&c, &j, text_fd);
	else if (st == EX_OK)
		st = run_mailbox(&c, &j);
	if (c.fd >= 0)
		close(c.fd);
	if (text_fd != STDIN_FILENO)
		close(text_fd);
	return st;
}
