/* mboxscan.c: reading an mbox message by message, with no index: its
   heads, its ends and the boundaries between (mboxscan.h). */
#define _GNU_SOURCE
#include "store/mboxscan.h"
#include "mail/mboxrd.h"
#include "net/io.h"

#include <string.h>

#define HEAD_READ (MBOXRD_HEADER_MAX + 1024)	/* all of our own header lines, always */

int mbox_find(int fd, uint64_t from, uint64_t size, const char *needle,
	      size_t nlen, uint64_t *at)
{
	char buf[65536];

	while (from + nlen <= size) {
		size_t want = size - from < sizeof buf ? (size_t)(size - from) : sizeof buf;
		int rc = pread_full(fd, buf, want, from);
		char *hit;

		if (rc < 0)
			return rc;
		hit = memmem(buf, want, needle, nlen);
		if (hit) {
			*at = from + (uint64_t)(hit - buf);
			return 1;
		}
		if (want < sizeof buf)
			break;
		from += want - (nlen - 1);
	}
	return 0;
}

/* Content-Length in the header block head[0..len), if any. */
static int find_length(const char *head, size_t len, uint64_t *value)
{
	static const char name[] = "\nContent-Length: ";
	const char *p = memmem(head, len, name, sizeof name - 1);
	const char *end = head + len;
	int digits = 0;

	if (!p)
		return 0;
	*value = 0;
	for (p += sizeof name - 1; p < end && *p >= '0' && *p <= '9' && digits < 18; p++, digits++)
		*value = *value * 10 + (uint64_t)(*p - '0');
	return digits > 0 && p < end && *p == '\n';
}

/* The header line "NAME<digits>" at *off in head[0..len): 1, with its value
   and *off moved past its LF; else 0. */
static int field_number(const char *head, size_t len, size_t *off, const char *name,
			uint64_t *value)
{
	size_t nlen = strlen(name), i;
	int digits = 0;

	if (len - *off < nlen || memcmp(head + *off, name, nlen) != 0)
		return 0;
	*value = 0;
	for (i = *off + nlen; i < len && head[i] >= '0' && head[i] <= '9' && digits < 18; i++, digits++)
		*value = *value * 10 + (uint64_t)(head[i] - '0');
	if (digits == 0 || i >= len || head[i] != '\n')
		return 0;
	*off = i + 1;
	return 1;
}

/* The first two header lines of an SMTP-mode record, at off: MBOXRD_PREPENDED
   N, then Content-Length. 1 when both are there, with h->length and
   h->text_start (start + the end of the first line + N) set; else 0.
   A mail reader that rewrites the mailbox (mutt) moves Content-Length to
   the end of the header block, after the message's own header lines: then
   the message as sent begins that line's length sooner, and N is taken
   less that line. */
static int read_prepended(const char *head, size_t len, size_t off, uint64_t start,
			  struct mbox_head *h)
{
	static const char cl[] = "\nContent-Length: ";
	const char *blank, *moved;
	uint64_t n;
	size_t after, at;

	if (!field_number(head, len, &off, MBOXRD_PREPENDED, &n))
		return 0;
	after = off;
	if (field_number(head, len, &off, "Content-Length: ", &h->length)) {
		h->text_start = start + after + n;
		return 1;
	}
	blank = memmem(head + after - 1, len - (after - 1), "\n\n", 2);
	moved = blank ? memmem(head + after - 1, (size_t)(blank - (head + after - 1)) + 1,
			       cl, sizeof cl - 1) : NULL;
	if (!moved)
		return 0;
	at = (size_t)(moved - head) + 1;
	off = at;
	if (!field_number(head, len, &off, "Content-Length: ", &h->length) ||
	    off - at > n || after + n - (off - at) > at || head[after + n - (off - at) - 1] != '\n')
		return 0;
	h->text_start = start + after + n - (off - at);
	h->moved_length = start + at;
	return 1;
}

/* Does p (up to end) start with word, or is all of it the start of word? */
static int prefix_of(const char *p, const char *end, const char *word)
{
	size_t n = strlen(word), have = (size_t)(end - p);

	return memcmp(p, word, have < n ? have : n) == 0;
}

/* Is the header block head[0..len) (from the "From " line on) in the shape
   this server writes? An SMTP-mode record opens with MBOXRD_PREPENDED (read
   by read_prepended); a My_SMTP one with Return-Path, then our Received
   line. A block cut short (whole 0) counts when what there is of its
   second line is ours so far. */
static int our_shape(const char *head, size_t len, int whole, int prepended)
{
	static const char by[] = " (My_SMTP) with MYSMTP id ";
	const char *end = head + len, *line2 = memchr(head, '\n', len), *line3;

	if (prepended || !line2 || ++line2 == end)
		return 1;		/* or cut short in its "From " line */
	if (!whole)
		return prefix_of(line2, end, MBOXRD_PREPENDED) || prefix_of(line2, end, "Return-Path: <");
	line3 = memchr(line2, '\n', (size_t)(end - line2));
	return prefix_of(line2, end, "Return-Path: <") && line3 && ++line3 < end &&
	       prefix_of(line3, end, "Received: from ") &&
	       memmem(line3, (size_t)(end - line3), by, sizeof by - 1) != NULL;
}

/* The UID of an MBOXRD_UID line in head[0..len): 0 when there is none. */
static uint64_t find_uid(const char *head, size_t len)
{
	static const char name[] = "\n" MBOXRD_UID;
	const char *p = memmem(head, len, name, sizeof name - 1), *end = head + len;
	uint64_t uid = 0;
	int digits = 0;

	if (!p)
		return 0;
	for (p += sizeof name - 1; p < end && *p >= '0' && *p <= '9' && digits < 18; p++, digits++)
		uid = uid * 10 + (uint64_t)(*p - '0');
	return digits > 0 && p < end && *p == '\n' ? uid : 0;
}

/* Our UID line, looked for only among the header lines we wrote: all of
   the block of a My_SMTP record, the prepended lines of an SMTP one. */
static uint64_t our_uid(const char *head, size_t len, uint64_t start, const struct mbox_head *h)
{
	if (!h->ours)
		return 0;
	if (h->prepended && h->text_start - start < len)
		len = (size_t)(h->text_start - start);
	return find_uid(head, len);
}

/* Keep the "From " line head[0..len), cut short to fit. */
static void take_from_line(struct mbox_head *h, const char *head, size_t len)
{
	h->from_len = len < sizeof h->from_line ? len : sizeof h->from_line - 1;
	memcpy(h->from_line, head, h->from_len);
	h->from_line[h->from_len] = '\0';
}

int mbox_read_head(int fd, uint64_t start, uint64_t size, struct mbox_head *h)
{
	char head[HEAD_READ];
	size_t len = size - start < sizeof head ? (size_t)(size - start) : sizeof head;
	const char *lf, *blank;
	uint64_t at;
	int rc;

	if (len < 5)
		return HEAD_NONE;
	if ((rc = pread_full(fd, head, len, start)) < 0)
		return rc;
	if (memcmp(head, "From ", 5) != 0)
		return HEAD_NONE;
	lf = memchr(head, '\n', len);
	take_from_line(h, head, lf ? (size_t)(lf - head) : len);
	h->has_length = 0;
	h->moved_length = 0;
	h->prepended = lf && read_prepended(head, len, (size_t)(lf - head) + 1, start, h);
	blank = memmem(head, len, "\n\n", 2);
	h->ours = our_shape(head, blank ? (size_t)(blank - head) + 1 : len, blank != NULL,
			    h->prepended);
	h->uid = our_uid(head, blank ? (size_t)(blank - head) + 1 : len, start, h);
	if (blank) {
		h->body_start = start + (uint64_t)(blank - head) + 2;
		h->has_length = h->ours && (h->prepended ||
				find_length(head, (size_t)(blank - head) + 1, &h->length));
		return HEAD_WHOLE;
	}
	h->has_length = h->prepended;
	rc = mbox_find(fd, start, size, "\n\n", 2, &at);
	if (rc < 0)
		return rc;
	h->body_start = rc ? at + 2 : size;
	return rc ? HEAD_WHOLE : HEAD_CUT;
}

/* Are the octets from start to the end of the file the first few of "From "? */
static int from_prefix_at(int fd, uint64_t start, uint64_t size)
{
	char few[5];

	return size - start < 5 && pread_full(fd, few, (size_t)(size - start), start) == 0 &&
	       memcmp(few, "From ", (size_t)(size - start)) == 0;
}

/* Can a message start at off (mboxscan.h)? The end of the file counts
   even when another program left it without a final LF. */
int mbox_boundary_at(int fd, uint64_t off, uint64_t size)
{
	char six[6];

	if (off >= size)
		return off == size;	/* the end of the file, whatever ends it */
	if (off > 0 && (pread_full(fd, six, 1, off - 1) < 0 || six[0] != '\n'))
		return 0;
	if (off + 5 > size)
		return from_prefix_at(fd, off, size);
	return pread_full(fd, six, 5, off) == 0 && memcmp(six, "From ", 5) == 0;
}

/* Does the file hold only NUL octets from start to its end (size)? What a
   power loss can leave where an append had grown the file but its data
   never reached the disk. */
static int zeros_to_end(int fd, uint64_t start, uint64_t size)
{
	char buf[4096];

	while (start < size) {
		size_t want = size - start < sizeof buf ? (size_t)(size - start) : sizeof buf;

		if (pread_full(fd, buf, want, start) < 0)
			return 0;
		for (size_t i = 0; i < want; i++)
			if (buf[i])
				return 0;
		start += want;
	}
	return 1;
}

/* Where the message at start ends (mboxscan.h). Only a record recognizably
   ours (h.ours) has its Content-Length trusted and may be torn: "From" cut
   short, a header block without its end, or less text than its length, and
   only at the end of the file; so are NUL octets up to the end (a power
   loss). Another program's message ends at the next "From " line and is
   never cut. */
int mbox_message_end(int fd, uint64_t start, uint64_t size, uint64_t *end)
{
	struct mbox_head h;
	uint64_t next, e = 0;
	int head = mbox_read_head(fd, start, size, &h);
	int found;

	if (head < 0)
		return head;
	if (head != HEAD_NONE && h.has_length) {
		e = h.body_start + h.length + 1;	/* past the end when cut in the header */
		if (head == HEAD_WHOLE && e <= size && mbox_boundary_at(fd, e, size)) {
			*end = e;
			return MBOX_WHOLE;
		}
	}
	found = mbox_find(fd, head == HEAD_WHOLE ? h.body_start - 1 : start, size,
			  "\nFrom ", 6, &next);
	if (found < 0)
		return found;
	*end = found ? next + 1 : size;
	if (head == HEAD_NONE)
		return !found && (from_prefix_at(fd, start, size) || zeros_to_end(fd, start, size)) ?
		       MBOX_TORN : MBOX_SKIP;
	if (!h.ours)
		return MBOX_WHOLE;
	if (head == HEAD_WHOLE && h.has_length && e <= size && !(found && next + 1 < e)) {
		*end = e;	/* whole, and what follows is no message */
		return MBOX_WHOLE;	/* (our text is From-quoted: no "From " line inside) */
	}
	if (head == HEAD_CUT || h.has_length)	/* ours, and short of its length */
		return found ? MBOX_SKIP : MBOX_TORN;
	return MBOX_WHOLE;
}
