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

int command_literal_unasked(const char *line, size_t len)
{
	uint64_t n;
	int unasked;

	return literal_at_end(line, len, &n, &unasked) && unasked;
}

/* Read exactly n octets into out. 0 or -errno. */
static int read_octets(struct reader *r, char *out, size_t n, uint64_t deadline)
{
	while (n > 0) {
		int rc = reader_fill(r, deadline);
		size_t take;

		if (rc <= 0)
			return rc == 0 ? -ENODATA : rc;
		take = r->end - r->start < n ? r->end - r->start : n;
		memcpy(out, r->buf + r->start, take);
		r->start += take;
		out += take;
		n -= take;
	}
	return 0;
}

static int bad_octets(const char *text, size_t len)
{
	return memchr(text, '\0', len) || memchr(text, '\r', len);
}

/* After the first line (len octets) of a command: as long as it ends in a
   literal, read the CRLF-joined literal and the line after it. */
static int read_literals(const struct command_source *src, char *line, size_t len,
			 size_t max, uint64_t deadline, int *crlf)
{
	uint64_t n;
	int unasked, rc;

	while (literal_at_end(line, len, &n, &unasked)) {
		if (n > max || len + 2 + n > max)
			return -EMSGSIZE;
		if (!unasked && src->go_ahead)
			src->go_ahead(src->ctx);
		memcpy(line + len, "\r\n", 2);
		len += 2;
		if ((rc = read_octets(src->in, line + len, (size_t)n, deadline)) < 0)
			return rc;
		len += (size_t)n;
		rc = reader_line_crlf(src->in, line + len, max - len, deadline, crlf);
		if (rc < 0)
			return rc;
		if (bad_octets(line + len, (size_t)rc))
			return -EILSEQ;
		len += (size_t)rc;
	}
	return (int)len;
}

/* 1 when the reader holds a whole line already. */
static int line_waiting(const struct reader *r)
{
	size_t len;
	const char *data = reader_data(r, &len);

	return len > 0 && memchr(data, '\n', len) != NULL;
}

/* While no line has come: wait for one, or for the descriptor the dialect
   watches, and let the dialect speak each time that becomes readable. */
static void wait_watching(const struct command_source *src, uint64_t deadline)
{
	int fd;

	while (!line_waiting(src->in) && (fd = src->watch(src->ctx)) >= 0) {
		struct pollfd p[2] = { { .fd = src->in->fd, .events = POLLIN },
				       { .fd = fd, .events = POLLIN } };
		uint64_t now = io_now_ms();

		if (writer_flush(src->out) < 0 || now >= deadline)
			return;
		if (poll(p, 2, deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now)) <= 0 ||
		    p[0].revents)
			return;		/* a line, the end, a signal: the reader sees to it */
		if (p[1].revents)
			src->wake(src->ctx);
	}
}

int command_read(const struct command_source *src, char *line, size_t max, uint64_t deadline,
		 int *crlf)
{
	int n;

	if (src->watch)
		wait_watching(src, deadline);
	n = reader_line_crlf(src->in, line, max, deadline, crlf);
	if (n < 0 || !src->literals)
		return n;
	if (bad_octets(line, (size_t)n))
		return -EILSEQ;
	return read_literals(src, line, (size_t)n, max, deadline, crlf);
}
