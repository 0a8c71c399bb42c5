/* client_conn.c: the client's connection to the server: dialling with a
   deadline, buffered writes, status lines and multi-line replies read with
   deadlines, the exit status each reply means. */
#include "client/client.h"
#include "net/tlsio.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <unistd.h>

static uint64_t deadline(const struct conn *c)
{
	return io_now_ms() + (uint64_t)c->secs * 1000;
}

/*
 * Reads a line, or its next cap octets, into out without its LF (and
 * without a CR before the LF when strip_cr).  Returns LN_END at the end
 * of a line, LN_MORE when out is full, LN_EOF at end of input (*n octets
 * of an unended line before it), or -errno.
 */
int client_line(struct reader *r, char *out, size_t cap, size_t *n, bool strip_cr, uint64_t until)
{
	size_t have;

	*n = 0;
	while (*n < cap) {
		int got = reader_fill(r, until);
		if (got <= 0)
			return got < 0 ? got : LN_EOF;
		char ch = *reader_data(r, &have);
		reader_consume(r, 1);
		if (ch == '\n')
			return LN_END;
		if (ch == '\r' && strip_cr) {
			got = reader_fill(r, until);
			if (got < 0)
				return got;
			if (got > 0 && *reader_data(r, &have) == '\n') {
				reader_consume(r, 1);
				return LN_END;
			}
		}
		out[(*n)++] = ch;
	}
	return LN_MORE;
}

/* Writes p to f; when mask, a control byte shows as ^X. */
void show_text(FILE *f, const char *p, size_t n, bool mask)
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
int conn_fail(const struct conn *c, int err)
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
		show_text(stderr, c->line, c->linelen < 80 ? c->linelen : 80, true);
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
int input_fail(const char *name, int err)
{
	fprintf(stderr, "mysmtp: %s: %s\n", name, strerror(-err));
	return EX_IOERR;
}

/* Writes all of p to the server, waiting at most -t for each part. */
static int conn_write(struct conn *c, const char *p, size_t n)
{
	while (n > 0 && c->via) {
		ssize_t w = io_write_via(c->via, c->fd, p, n, deadline(c));

		if (w <= 0)
			return w == 0 || w == -EPIPE ? -ENOTCONN : (int)w;
		p += w;
		n -= (size_t)w;
	}
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
		int r = io_wait(c->fd, POLLOUT, deadline(c));
		if (r < 0)
			return r;
	}
	return 0;
}

int conn_flush(struct conn *c)
{
	int r = conn_write(c, c->out, c->outlen);

	c->outlen = 0;
	return r;
}

/* Queues p for the server, sending when the buffer is full. */
int conn_put(struct conn *c, const char *p, size_t n)
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
int conn_line(struct conn *c, const char *p, size_t n)
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
int conn_read_reply(struct conn *c)
{
	size_t n;
	int r = client_line(&c->in, c->line, sizeof c->line, &n, true, deadline(c));

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
int reply_status(int code)
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
int conn_read_body(struct conn *c, FILE *out, bool mask, const char *const *heads)
{
	bool start = true;
	size_t skip = 0;

	while (heads && heads[skip])
		skip++;
	for (size_t line = 0;; ) {
		size_t n;
		int r = client_line(&c->in, c->piece, sizeof c->piece, &n, true, deadline(c));
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
			show_text(out, p, n, mask);
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
int conn_put_text_piece(struct conn *c, const char *p, size_t n, bool first, bool end)
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
	int r = io_wait(fd, POLLOUT, io_now_ms() + (uint64_t)secs * 1000);
	if (r < 0)
		return r;
	int e = 0;
	socklen_t elen = sizeof e;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) < 0)
		return -errno;
	return -e;
}

/* Connects to the server, trying each of its addresses; the socket, or -1. */
int conn_dial(const char *host, const char *port, int secs, const char *where)
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

int conn_start_tls(struct conn *c, const char *name, const char *ca_file)
{
	char why[256];

	c->tls = tlsio_client(ca_file, why, sizeof why);
	if (!c->tls || tlsio_start(c->tls, c->fd, c->fd, name, deadline(c), why, sizeof why) < 0) {
		fprintf(stderr, "mysmtp: %s: TLS: %s\n", c->where, why);
		if (strstr(why, "not present in server certificate"))
			fputs("mysmtp: --tls-name gives the name to check when it is not"
			      " the host connected to\n", stderr);
		return EX_PROTOCOL;
	}
	c->via = tlsio_transport(c->tls);
	reader_set_transport(&c->in, c->via);
	return EX_OK;
}

void conn_end_tls(struct conn *c)
{
	tlsio_free(c->tls);
	c->tls = NULL;
	c->via = NULL;
}

/* Reads the greeting; says it on stderr unless it is a 200. */
int conn_greet(struct conn *c)
{
	int code = conn_read_reply(c);

	if (code < 0)
		return conn_fail(c, code);
	if (code == 200)
		return EX_OK;
	fprintf(stderr, "mysmtp: %s: ", c->where);
	show_text(stderr, c->line, c->linelen, true);
	putc('\n', stderr);
	return reply_status(code);
}

/* Reads the reply to what; on anything but 200 says so on stderr.  Returns the exit status. */
int conn_expect_200(struct conn *c, const char *what)
{
	int code = conn_read_reply(c);

	if (code < 0)
		return conn_fail(c, code);
	if (code == 200)
		return EX_OK;
	fprintf(stderr, "mysmtp: %s: ", what);
	show_text(stderr, c->line, c->linelen, true);
	putc('\n', stderr);
	return reply_status(code);
}

/* Sends one command and checks its reply is 200; returns the exit status. */
__attribute__((format(printf, 2, 3)))
int conn_command(struct conn *c, const char *fmt, ...)
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
	return conn_expect_200(c, cmd);
}

/* Ends a scripted session politely; its outcome no longer matters. */
void conn_say_quit(struct conn *c)
{
	if (conn_line(c, "QUIT", 4) == 0)
		(void)conn_read_reply(c);
}

/* Flushes stdout; EX_IOERR if anything written to it was lost. */
int flush_stdout(void)
{
	if (fflush(stdout) == 0 && !ferror(stdout))
		return EX_OK;
	fprintf(stderr, "mysmtp: stdout: %s\n", strerror(errno));
	return EX_IOERR;
}

