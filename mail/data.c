/* data.c: the DATA phase as a byte-level state machine. It never mistakes
   "\0." or " ." for the end, keeps a lone CR as data, and holds at most one
   octet back between calls, so a message of any size takes constant memory.
   Strict framing (SMTP mode) also keeps a bare LF as data, flagged, and
   starts a line only after CRLF, so "\n.\n", "\r\n.\n" and "\n.\r\n" never
   end the message. Strict with normalize takes a bare LF as a line end,
   flagged, but ends the message only at a "." line that both follows and
   ends in CRLF, so those three never end it either. */
#include "mail/data.h"
#include "net/io.h"

#include <errno.h>

enum {
	AT_LINE_START,	/* nothing of this line seen yet */
	AFTER_DOT,	/* the line began with '.' */
	AFTER_DOT_CR,	/* the line began with ".\r" */
	IN_LINE,
	AFTER_CR,	/* a CR inside the line, not yet known to end it */
};

void data_rx_init(struct data_rx *d, uint64_t max_size, data_out out, void *ctx)
{
	d->state = AT_LINE_START;
	d->done = 0;
	d->has_nul = 0;
	d->strict = 0;
	d->normalize = 0;
	d->bare_lf = 0;
	d->after_crlf = 1;
	d->dot_after_crlf = 0;
	d->size = 0;
	d->lines = 0;
	d->max_size = max_size;
	d->olen = 0;
	d->out = out;
	d->ctx = ctx;
}

void data_rx_init_strict(struct data_rx *d, uint64_t max_size, data_out out, void *ctx)
{
	data_rx_init(d, max_size, out, ctx);
	d->strict = 1;
}

static void flush(struct data_rx *d)
{
	if (d->olen > 0)
		d->out(d->ctx, d->obuf, d->olen);
	d->olen = 0;
}

static void put(struct data_rx *d, char c)
{
	d->size++;
	if (c == '\0')
		d->has_nul = 1;
	if (d->size > d->max_size)
		return;
	if (d->olen == sizeof d->obuf)
		flush(d);
	d->obuf[d->olen++] = c;
}

/* The end of a line: LF, or (strict) CRLF, or (normalize) a bare LF. */
static void end_line(struct data_rx *d, int crlf)
{
	put(d, '\n');
	d->after_crlf = crlf;
	d->state = AT_LINE_START;
}

/* A bare LF: a line end, but for strict framing without normalize. */
static int lf_ends_line(struct data_rx *d)
{
	if (d->strict)
		d->bare_lf = 1;
	return !d->strict || d->normalize;
}

/* An octet inside a line, after any leading dot was dealt with. */
static void in_line(struct data_rx *d, char c)
{
	if (c == '\r') {
		d->state = AFTER_CR;
	} else if (c == '\n' && lf_ends_line(d)) {
		end_line(d, 0);
	} else {
		put(d, c);	/* a bare LF here is data, and the line goes on */
		d->state = IN_LINE;
	}
}

size_t data_rx_feed(struct data_rx *d, const char *in, size_t len)
{
	size_t i;

	for (i = 0; i < len && !d->done; i++) {
		char c = in[i];

		if (c == '\n')
			d->lines++;
		switch (d->state) {
		case AT_LINE_START:
			if (c == '.') {
				d->state = AFTER_DOT;
				d->dot_after_crlf = d->after_crlf;
			} else {
				in_line(d, c);
			}
			break;
		case AFTER_DOT:
			if (c == '\n' && !d->strict)
				d->done = 1;
			else if (c == '\r')
				d->state = AFTER_DOT_CR;
			else
				in_line(d, c);
			break;
		case AFTER_DOT_CR:
			if (c == '\n' && (!d->normalize || d->dot_after_crlf)) {
				d->done = 1;
			} else if (c == '\n') {
				end_line(d, 1);	/* "." after a bare LF: text, its dot unstuffed */
			} else {
				put(d, '\r');
				in_line(d, c);
			}
			break;
		case AFTER_CR:
			if (c == '\n') {
				end_line(d, 1);
			} else {
				put(d, '\r');
				if (c != '\r')
					in_line(d, c);
			}
			break;
		default:
			in_line(d, c);
		}
	}
	flush(d);
	return i;
}

int data_receive(struct reader *in, struct data_rx *d, unsigned timeout, uint64_t end_ms)
{
	uint64_t deadline = io_deadline(timeout, end_ms);

	while (!d->done) {
		int rc = reader_fill(in, deadline);
		uint64_t lines = d->lines;
		const char *p;
		size_t len;

		if (rc <= 0)
			return rc == -ETIMEDOUT ? -ETIMEDOUT : -ENODATA;
		p = reader_data(in, &len);
		reader_consume(in, data_rx_feed(d, p, len));
		if (d->lines != lines)
			deadline = io_deadline(timeout, end_ms);
	}
	return 0;
}
