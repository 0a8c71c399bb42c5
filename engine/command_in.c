/* command_in.c: reading one command for the session engine (command_in.h). */
#define _GNU_SOURCE
#include "engine/command_in.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

/* The literal that ends line[len], "{n}" or "{n+}": 1 with *n and *unasked
   set, else 0. */
static int literal_at_end(const char *line, size_t len, uint64_t *n, int *unasked)
{
	size_t end = len, start;

	if (len < 3 || line[len - 1] != '}')
		return 0;
	end = len - 1;
	*unasked = line[end - 1] == '+';
	end -= (size_t)*unasked;
	for (start = end; start > 0 && line[start - 1] >= '0' && line[start - 1] <= '9'; start--)
		;
	if (start == end || start == 0 || line[start - 1] != '{' || end - start > 18)
		return 0;
	*n = strtoull(line + start, NULL, 10);
	return 1;
}

/* Pass the next n octets of r to put(ctx, ...), chunk by chunk, as they
   come. 0 or -errno. */
static int move_octets(struct reader *r, uint64_t n, uint64_t deadline,
		       void (*put)(void *ctx, const char *octets, size_t len), void *ctx)
{
	while (n > 0) {
		int rc = reader_fill(r, deadline);
		size_t take;

		if (rc <= 0)
			return rc == 0 ? -ENODATA : rc;
		take = r->end - r->start < n ? r->end - r->start : (size_t)n;
		put(ctx, r->buf + r->start, take);
		r->start += take;
		n -= take;
	}
	return 0;
}

/* move_octets's put for a literal kept in the line: copy to *(char **)ctx. */
static void copy_octets(void *ctx, const char *octets, size_t len)
{
	char **out = ctx;

	memcpy(*out, octets, len);
	*out += len;
}

static int bad_octets(const char *text, size_t len)
{
	return memchr(text, '\0', len) || memchr(text, '\r', len);
}

/* Read the literal of n octets that ends line[len], after its go-ahead when
   it asks for one: into the line, or to the sink when it would not fit (the
   line then keeps only its CRLF). The line's new length, or -errno. */
static int take_literal(const struct command_source *src, char *line, size_t len, size_t max,
			uint64_t n, int unasked, uint64_t deadline)
{
	int fits = n <= max && len + 2 + n <= max;
	char *at = line + len + 2;
	int rc;

	if (!fits && (!src->literal_sink || n > src->literal_max || len + 2 > max))
		return unasked ? -EOVERFLOW : -EMSGSIZE;
	if (!unasked && src->go_ahead)
		src->go_ahead(src->ctx);
	memcpy(line + len, "\r\n", 2);
	if (fits)
		rc = move_octets(src->in, n, deadline, copy_octets, &at);
	else
		rc = move_octets(src->in, n, deadline, src->literal_sink, src->ctx);
	return rc < 0 ? rc : (int)(at - line);
}

/* After the first line (len octets) of a command: as long as it ends in a
   literal, read the CRLF-joined literal and the line after it. */
static int read_literals(const struct command_source *src, char *line, size_t len,
			 size_t max, uint64_t deadline, int *crlf)
{
	uint64_t n;
	int unasked, rc;

	while (literal_at_end(line, len, &n, &unasked)) {
		if ((rc = take_literal(src, line, len, max, n, unasked, deadline)) < 0)
			return rc;
		len = (size_t)rc;
		rc = reader_line_crlf(src->in, line + len, max - len, deadline, crlf);
		if (rc < 0)
			return rc;
		if (bad_octets(line + len, (size_t)rc))
			return -EILSEQ;
		len += (size_t)rc;
	}
	return (int)len;
}

/* The reader and the transport under it hold octets already: they, not
   the descriptor, answer first (over TLS, octets already decrypted never
   show on the descriptor). Else wait for the descriptor, or for the one the
   dialect watches, and let the dialect speak each time that is readable. */
void command_wait(const struct command_source *src, uint64_t deadline)
{
	int fd;

	while (!reader_ready(src->in) && (fd = src->watch(src->ctx)) >= 0) {
		struct pollfd p[2] = { { .fd = src->in->fd, .events = POLLIN },
				       { .fd = fd, .events = POLLIN } };
		uint64_t now = io_now_ms();

		if (writer_flush(src->out) < 0 || now >= deadline)
			return;
		if (poll(p, 2, deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now)) <= 0)
			return;		/* the deadline, a signal: the reader sees to it */
		if (p[0].revents && !src->in->via)
			return;		/* a line or the end */
		if (p[0].revents)
			continue;	/* maybe only part of a TLS record: ask the reader again */
		if (!(p[1].revents & POLLIN))
			return;		/* the watched descriptor hung up: stop watching it */
		src->wake(src->ctx);
	}
}

int command_read(const struct command_source *src, char *line, size_t max, uint64_t deadline,
		 int *crlf)
{
	int n;

	if (src->watch)
		command_wait(src, deadline);
	n = reader_line_crlf(src->in, line, max, deadline, crlf);
	if (n < 0 || !src->literals)
		return n;
	if (bad_octets(line, (size_t)n))
		return -EILSEQ;
	return read_literals(src, line, (size_t)n, max, deadline, crlf);
}
