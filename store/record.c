/* record.c: one stored message as a mail reader gets it (record.h). */
#define _GNU_SOURCE
#include "store/record.h"
#include "net/io.h"
#include "store/mboxscan.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

int record_span(int fd, uint64_t start, uint64_t end, struct record_span *r)
{
	struct mbox_head h;
	uint64_t lf;
	char two[2];
	int rc = mbox_read_head(fd, start, end, &h);

	if (rc < 0 || rc == HEAD_NONE)
		return rc < 0 ? rc : -ESTALE;
	rc = mbox_find(fd, start, end, "\n", 1, &lf);	/* a long "From " line is read cut */
	if (rc < 0)
		return rc;
	r->start = rc ? lf + 1 : end;
	r->uid = h.uid;
	if (h.has_length && h.body_start + h.length + 1 <= end && h.body_start >= r->start) {
		r->end = h.body_start + h.length;
	} else {
		r->end = end;
		if (end - r->start >= 2 && (rc = pread_full(fd, two, 2, end - 2)) == 0 &&
		    memcmp(two, "\n\n", 2) == 0)
			r->end = end - 1;
		if (rc < 0)
			return rc;
	}
	r->body = h.body_start < r->end ? h.body_start : r->end;
	r->ours_end = !h.ours ? r->start : !h.prepended ? r->body :
		      h.text_start < r->start ? r->start : h.text_start < r->body ? h.text_start : r->body;
	r->moved_length = h.prepended && h.moved_length < r->body ? h.moved_length : 0;
	return 0;
}

/* Drops the store's bookkeeping lines from a record's header block as it
   streams by (in the mbox's own octets: a header block has no From
   quoting): a line starting with one of their names, where our own header
   lines are, or where our Content-Length was moved to. */
struct bookkeeping {
	mboxrd_out out;
	void *ctx;
	uint64_t pos;		/* the offset in the mbox of the next octet */
	uint64_t ours_end, moved;
	int state;		/* LINE_START, DECIDING, PASSING, DROPPING */
	size_t held;		/* octets of the line's start held while DECIDING */
	char head[24];
};

enum { LINE_START, DECIDING, PASSING, DROPPING };

static const char *const hidden[] = { MBOXRD_PREPENDED, MBOXRD_LENGTH, MBOXRD_UID };

/* 1: head[0..held) is a whole hidden name; 0: the start of one; -1: neither. */
static int hidden_name(const struct bookkeeping *b)
{
	int partial = -1;

	for (size_t i = 0; i < sizeof hidden / sizeof *hidden; i++) {
		size_t n = strlen(hidden[i]);

		if (b->held <= n && memcmp(b->head, hidden[i], b->held) == 0) {
			if (b->held == n)
				return 1;
			partial = 0;
		}
	}
	return partial;
}

/* One octet of a line whose start may be a hidden name. */
static void deciding_octet(struct bookkeeping *b, char c)
{
	int verdict;

	b->pos++;
	b->head[b->held++] = c;
	verdict = c == '\n' ? -1 : hidden_name(b);
	if (verdict == 0)
		return;
	if (verdict < 0)
		b->out(b->ctx, b->head, b->held);
	b->state = c == '\n' ? LINE_START : verdict > 0 ? DROPPING : PASSING;
	b->held = 0;
}

static void bookkeeping_feed(void *ctx, const char *data, size_t len)
{
	struct bookkeeping *b = ctx;

	while (len > 0) {
		const char *lf;
		size_t n = 1;

		if (b->state == LINE_START)
			b->state = b->pos < b->ours_end || (b->moved && b->pos == b->moved) ?
				   DECIDING : PASSING;
		if (b->state == DECIDING) {
			deciding_octet(b, *data);
		} else {
			lf = memchr(data, '\n', len);
			n = lf ? (size_t)(lf - data) + 1 : len;
			if (b->state == PASSING)
				b->out(b->ctx, data, n);
			b->pos += n;
			if (lf)
				b->state = LINE_START;
		}
		data += n;
		len -= n;
	}
}

/* What DECIDING still holds when the header block ends without an LF. */
static void bookkeeping_finish(struct bookkeeping *b)
{
	if (b->state == DECIDING && b->held > 0)
		b->out(b->ctx, b->head, b->held);
	b->held = 0;
}

/* Passes on what comes to it up to the end of the line that makes its
   count, then nothing. */
struct line_limit {
	mboxrd_out out;
	void *ctx;
	int64_t lines;		/* lines still to pass; negative: all */
};

static void limited(void *ctx, const char *data, size_t len)
{
	struct line_limit *l = ctx;
	const char *lf;

	while (len > 0 && l->lines != 0) {
		size_t n = len;

		if (l->lines > 0 && (lf = memchr(data, '\n', len)) != NULL) {
			n = (size_t)(lf - data) + 1;
			l->lines--;
		}
		l->out(l->ctx, data, n);
		data += n;
		len -= n;
	}
}

int record_unquote(int fd, uint64_t from, uint64_t to, mboxrd_out out, void *ctx,
		   const int64_t *more)
{
	struct from_quoter q;
	char buf[16384];

	from_quoter_init(&q, -1, out, ctx);
	while (from < to && !(more && *more == 0)) {
		size_t want = to - from < sizeof buf ? (size_t)(to - from) : sizeof buf;
		ssize_t n = pread(fd, buf, want, (off_t)from);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		from_quoter_feed(&q, buf, (size_t)n);
		from += (uint64_t)n;
	}
	from_quoter_finish(&q);
	return 0;
}

int record_feed(int fd, const struct record_span *r, int64_t body_lines,
		mboxrd_out out, void *ctx)
{
	struct line_limit all = { out, ctx, -1 }, body = { out, ctx, body_lines };
	struct bookkeeping b = { .out = limited, .ctx = &all, .pos = r->start,
				 .ours_end = r->ours_end, .moved = r->moved_length,
				 .state = LINE_START };
	int rc = record_unquote(fd, r->start, r->body, bookkeeping_feed, &b, NULL);

	bookkeeping_finish(&b);

	/* The body starts a line: its quoting is undone afresh. */
	return rc < 0 ? rc : record_unquote(fd, r->body, r->end, limited, &body, &body.lines);
}

struct counter {
	uint64_t octets, lfs;
	char last;
};

static void count(void *ctx, const char *data, size_t len)
{
	struct counter *c = ctx;

	if (len == 0)
		return;
	c->octets += len;
	for (const char *p = data; (p = memchr(p, '\n', len - (size_t)(p - data))) != NULL; p++)
		c->lfs++;
	c->last = data[len - 1];
}

int record_octets(int fd, const struct record_span *r, uint64_t *octets)
{
	struct counter c = { 0, 0, '\n' };
	int rc = record_feed(fd, r, -1, count, &c);

	*octets = c.octets + c.lfs + (c.last != '\n' ? 2 : 0);
	return rc;
}
