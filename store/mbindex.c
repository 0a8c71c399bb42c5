/* mbindex.c: the index beside each mbox. Layout: a 64-octet header (magic,
   message count, mbox octets covered, mbox inode, the three UID counters,
   check), then 32 octets per message (its offset, UID, RETR size, and a
   check mixing them and its position). Only a deletion fsyncs it: every use
   checks it against the mbox, and each entry is checked when read, so a
   lost, torn or damaged index is rebuilt and loses no message. */
#define _GNU_SOURCE
#include "store/mbindex.h"
#include "net/io.h"
#include "mail/mboxrd.h"
#include "store/record.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "MYSMTPX3"	/* X3: RETR sizes without our bookkeeping lines */
#define MAGIC_BEFORE "MYSMTPX2"	/* its UID counters are taken, its entries rebuilt */
#define HEADER_SIZE 64
#define ENTRY_SIZE 32
#define READ_MAX 256		/* entries read at once */
#define HEAD_READ (MBOXRD_HEADER_MAX + 1024)	/* all of our own header lines, always */
#define BATCH 512

struct header {
	char magic[8];
	uint64_t count, covered, inode, next_uid, last_uid, next_foreign, check;
};

struct entry {
	uint64_t offset, uid, octets, check;
};

/* splitmix64's finaliser: any changed bit changes about half the output. */
static uint64_t mix(uint64_t x)
{
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t header_check(const struct header *hd)
{
	return mix(hd->count ^ mix(hd->covered ^ mix(hd->inode ^ mix(hd->next_uid ^
		   mix(hd->last_uid ^ mix(hd->next_foreign))))));
}

static uint64_t entry_check(uint64_t position, const struct mbentry *m)
{
	return mix(m->offset ^ mix(m->uid ^ mix(m->octets ^ mix(position + 0x9e3779b97f4a7c15ULL))));
}

int mbindex_find(int fd, uint64_t from, uint64_t size, const char *needle,
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
	h->from_len = lf ? (size_t)(lf - head) : len;
	if (h->from_len >= sizeof h->from_line)
		h->from_len = sizeof h->from_line - 1;
	memcpy(h->from_line, head, h->from_len);
	h->from_line[h->from_len] = '\0';
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
	rc = mbindex_find(fd, start, size, "\n\n", 2, &at);
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

/* Can a message start at off: a "From " line at the start of a line, the
   end of the file (even one another program left without a final LF), or
   the first octets of "From " that a cut-short append left at the end? */
static int boundary_at(int fd, uint64_t off, uint64_t size)
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

enum { TORN, WHOLE, SKIP };

/* Where the message at start ends: WHOLE and *end; TORN when the file ends
   inside one of our own records (a write cut short); SKIP and *end at the
   next message when start holds junk, or one of our records that another
   program's append cut off, which are kept but not listed; or -errno.
   Only a record recognizably ours (h.ours) has its Content-Length trusted
   and may be torn: "From" cut short, a header block without its end, or
   less text than its length, and only at the end of the file; so are NUL
   octets up to the end (a power loss). Another program's message ends at
   the next "From " line and is never cut. */
static int message_end(int fd, uint64_t start, uint64_t size, uint64_t *end)
{
	struct mbox_head h;
	uint64_t next, e = 0;
	int head = mbox_read_head(fd, start, size, &h);
	int found;

	if (head < 0)
		return head;
	if (head != HEAD_NONE && h.has_length) {
		e = h.body_start + h.length + 1;	/* past the end when cut in the header */
		if (head == HEAD_WHOLE && e <= size && boundary_at(fd, e, size)) {
			*end = e;
			return WHOLE;
		}
	}
	found = mbindex_find(fd, head == HEAD_WHOLE ? h.body_start - 1 : start, size,
			  "\nFrom ", 6, &next);
	if (found < 0)
		return found;
	*end = found ? next + 1 : size;
	if (head == HEAD_NONE)
		return !found && (from_prefix_at(fd, start, size) || zeros_to_end(fd, start, size)) ?
		       TORN : SKIP;
	if (!h.ours)
		return WHOLE;
	if (head == HEAD_WHOLE && h.has_length && e <= size && !(found && next + 1 < e)) {
		*end = e;	/* whole, and what follows is no message */
		return WHOLE;	/* (our text is From-quoted: no "From " line inside) */
	}
	if (head == HEAD_CUT || h.has_length)	/* ours, and short of its length */
		return found ? SKIP : TORN;
	return WHOLE;
}

static int read_header(struct mbindex *ix, struct header *hd)
{
	return pread_full(ix->fd, hd, sizeof *hd, 0);
}

/* Read entries first .. first + n - 1 (n <= READ_MAX), checking each:
   -ESTALE when one is damaged or out of order. */
static int read_entries(const struct mbindex *ix, uint64_t first, struct mbentry *out, size_t n)
{
	struct entry e[READ_MAX];
	int rc = pread_full(ix->fd, e, n * ENTRY_SIZE, HEADER_SIZE + first * ENTRY_SIZE);

	if (rc < 0)
		return rc == -ENODATA ? -ESTALE : rc;
	for (size_t i = 0; i < n; i++) {
		out[i] = (struct mbentry){ e[i].offset, e[i].uid, e[i].octets };
		if (e[i].check != entry_check(first + i, &out[i]) ||
		    e[i].offset >= ix->covered || (i > 0 && e[i].offset <= out[i - 1].offset))
			return -ESTALE;
	}
	return 0;
}

/* The UID counters of a whole header, even one of an index that no longer
   fits its mbox; a fresh start without one. */
static void take_counters(struct mbindex *ix, const struct header *hd, int whole)
{
	ix->next_uid = whole && hd->next_uid > 0 ? hd->next_uid : 1;
	ix->next_foreign = whole && hd->next_foreign > 0 ? hd->next_foreign : 1;
	ix->last_uid = whole ? hd->last_uid : 0;
}

int mbindex_check(struct mbindex *ix, int mbox_fd)
{
	struct stat mst, ist;
	struct header hd;
	struct mbentry last;
	int rc, whole;

	ix->usable = 0;
	ix->count = ix->covered = 0;
	take_counters(ix, &hd, 0);
	if (fstat(mbox_fd, &mst) < 0 || fstat(ix->fd, &ist) < 0)
		return -errno;
	ix->inode = (uint64_t)mst.st_ino;
	rc = read_header(ix, &hd);
	if (rc == -ENODATA && ist.st_size == 0) {
		ix->usable = 1;		/* a new index: it covers nothing yet */
		return mst.st_size == 0;
	}
	if (rc < 0)
		return rc == -ENODATA ? 0 : rc;
	whole = (memcmp(hd.magic, MAGIC, 8) == 0 || memcmp(hd.magic, MAGIC_BEFORE, 8) == 0) &&
		hd.check == header_check(&hd);
	take_counters(ix, &hd, whole);
	if (!whole || memcmp(hd.magic, MAGIC, 8) != 0 || hd.inode != ix->inode || hd.covered > (uint64_t)mst.st_size ||
	    hd.count > ((uint64_t)ist.st_size - HEADER_SIZE) / ENTRY_SIZE ||
	    (uint64_t)ist.st_size != HEADER_SIZE + hd.count * ENTRY_SIZE)
		return 0;
	ix->count = hd.count;
	ix->covered = hd.covered;
	if (hd.count > 0) {
		rc = read_entries(ix, hd.count - 1, &last, 1);
		if (rc == -ESTALE || (rc == 0 && !boundary_at(mbox_fd, last.offset, hd.covered)))
			rc = 1;
		if (rc != 0) {
			ix->count = ix->covered = 0;
			return rc < 0 ? rc : 0;
		}
	}
	if (!boundary_at(mbox_fd, hd.covered, (uint64_t)mst.st_size)) {
		ix->count = ix->covered = 0;
		return 0;
	}
	ix->usable = 1;
	return hd.covered == (uint64_t)mst.st_size;
}

static int write_header(struct mbindex *ix)
{
	struct header hd = { .count = ix->count, .covered = ix->covered, .inode = ix->inode,
			     .next_uid = ix->next_uid, .last_uid = ix->last_uid,
			     .next_foreign = ix->next_foreign };

	memcpy(hd.magic, MAGIC, 8);
	hd.check = header_check(&hd);
	return pwrite_full(ix->fd, &hd, sizeof hd, 0);
}

/* Append entries m[0 .. n - 1] (n <= READ_MAX). */
static int write_entries(struct mbindex *ix, const struct mbentry *m, size_t n)
{
	struct entry e[READ_MAX];
	int rc;

	for (size_t i = 0; i < n; i++)
		e[i] = (struct entry){ m[i].offset, m[i].uid, m[i].octets,
				       entry_check(ix->count + i, &m[i]) };
	rc = pwrite_full(ix->fd, e, n * ENTRY_SIZE, HEADER_SIZE + ix->count * ENTRY_SIZE);
	if (rc == 0)
		ix->count += n;
	return rc;
}

/* Cut a torn last message off the mbox, durably. */
static int cut_torn_tail(int mbox_fd, uint64_t at)
{
	if (ftruncate(mbox_fd, (off_t)at) < 0 || fdatasync(mbox_fd) < 0)
		return -errno;
	return 0;
}

/* The UID of a message found in the mbox: its record's, when that goes on
   from the ones before; else one of the index's own. */
static void give_uid(struct mbindex *ix, struct mbentry *m, uint64_t record_uid)
{
	if (record_uid > ix->last_uid && record_uid < MBINDEX_FOREIGN) {
		m->uid = ix->last_uid = record_uid;
		if (record_uid >= ix->next_uid)
			ix->next_uid = record_uid + 1;
	} else {
		m->uid = MBINDEX_FOREIGN | ix->next_foreign++;
	}
}

/* The entry of the message [start, end). */
static int make_entry(struct mbindex *ix, int mbox_fd, uint64_t start, uint64_t end,
		      struct mbentry *m)
{
	struct record_span r;
	int rc = record_span(mbox_fd, start, end, &r);

	if (rc == 0)
		rc = record_octets(mbox_fd, &r, &m->octets);
	if (rc < 0)
		return rc;
	m->offset = start;
	give_uid(ix, m, r.uid);
	return 0;
}

int mbindex_refresh(struct mbindex *ix, int mbox_fd, int rebuild)
{
	struct mbentry batch[READ_MAX];
	uint64_t pos, size, end;
	struct stat st;
	size_t n = 0;
	int rc = mbindex_check(ix, mbox_fd);

	if (rc < 0 || (rc == 1 && !rebuild))
		return rc < 0 ? rc : 0;
	if (rebuild || !ix->usable) {
		if (ftruncate(ix->fd, 0) < 0)
			return -errno;
		ix->count = ix->covered = ix->last_uid = 0;
	}
	if (fstat(mbox_fd, &st) < 0)
		return -errno;
	size = (uint64_t)st.st_size;
	for (pos = ix->covered; pos < size; pos = end) {
		rc = message_end(mbox_fd, pos, size, &end);
		if (rc < 0)
			return rc;
		if (rc == TORN) {
			if ((rc = cut_torn_tail(mbox_fd, pos)) < 0)
				return rc;
			break;
		}
		if (rc == SKIP)
			continue;
		if ((rc = make_entry(ix, mbox_fd, pos, end, &batch[n++])) < 0)
			return rc;
		if (n == READ_MAX) {
			if ((rc = write_entries(ix, batch, n)) < 0)
				return rc;
			n = 0;
		}
	}
	if (n > 0 && (rc = write_entries(ix, batch, n)) < 0)
		return rc;
	ix->covered = pos;
	ix->usable = 1;
	return write_header(ix);
}

int mbindex_entries(const struct mbindex *ix, uint64_t first, struct mbentry *e, size_t n)
{
	for (size_t done = 0; done < n;) {
		size_t k = n - done < READ_MAX ? n - done : READ_MAX;
		int rc = read_entries(ix, first + done, e + done, k);

		if (rc < 0)
			return rc;
		if (done > 0 && e[done].offset <= e[done - 1].offset)
			return -ESTALE;
		done += k;
	}
	return 0;
}

int mbindex_read(const struct mbindex *ix, uint64_t first, uint64_t *offsets, size_t n)
{
	struct mbentry e[READ_MAX];

	for (size_t done = 0; done < n;) {
		size_t k = n - done < READ_MAX ? n - done : READ_MAX;
		int rc = mbindex_entries(ix, first + done, e, k);

		if (rc < 0)
			return rc;
		if (done > 0 && e[0].offset <= offsets[done - 1])
			return -ESTALE;
		for (size_t i = 0; i < k; i++)
			offsets[done + i] = e[i].offset;
		done += k;
	}
	return 0;
}

int mbindex_locate(const struct mbindex *ix, uint64_t id, uint64_t *start, uint64_t *end)
{
	uint64_t pair[2];
	int rc;

	if (id < 1 || id > ix->count)
		return -ENOENT;
	if (id == ix->count) {
		rc = mbindex_read(ix, id - 1, pair, 1);
		pair[1] = ix->covered;
	} else {
		rc = mbindex_read(ix, id - 1, pair, 2);
	}
	*start = pair[0];
	*end = pair[1];
	return rc;
}

void mbindex_start(struct mbindex *nx, int fd, uint64_t inode, const struct mbindex *old)
{
	*nx = (struct mbindex){ .fd = fd, .inode = inode, .next_uid = old->next_uid,
				.last_uid = old->last_uid, .next_foreign = old->next_foreign,
				.usable = 1 };
}

int mbindex_add(struct mbindex *nx, const struct mbentry *e, size_t n)
{
	for (size_t done = 0; done < n;) {
		size_t k = n - done < READ_MAX ? n - done : READ_MAX;
		int rc = write_entries(nx, e + done, k);

		if (rc < 0)
			return rc;
		done += k;
	}
	return 0;
}

int mbindex_finish(struct mbindex *nx, uint64_t covered)
{
	nx->covered = covered;
	return write_header(nx);
}
