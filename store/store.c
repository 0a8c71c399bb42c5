/* store.c: the mail store: delivery and reading (deletion is in expunge.c),
   and a mailbox held for a POP3 session (maildrop.c). Mailbox files are
   opened and locked as mboxfile.h says; no other file takes a lock. A delivery locks
   every mailbox (in address order), appends, fsyncs, and on any failure
   truncates each back to where it was. */
#define _GNU_SOURCE
#include "store/store_internal.h"
#include "mail/address.h"
#include "net/io.h"
#include "store/mboxfile.h"
#include "store/mboxscan.h"
#include "store/record.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define OPEN_TRIES 8

/* A mailbox held for delivery. */
struct box {
	const char *address;
	int fd;
	struct mbindex ix;
	int created;		/* this delivery made the file */
	int touched;		/* bytes were written to it */
	uint64_t old_size;
	uint64_t end;		/* the size once the copy was appended */
	uint64_t uid;		/* of the copy appended */
};

int store_open(struct store *st, const char *dir, unsigned lock_timeout)
{
	st->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	st->lock_timeout = lock_timeout;
	return st->dirfd < 0 ? -errno : 0;
}

int store_mailbox_full(struct store *st, const char *address)
{
	char name[ADDRESS_MAX + 8];
	struct stat sb;

	return st->max_mailbox > 0 && mboxfile_name(name, sizeof name, address, ".txt") == 0 &&
	       fstatat(st->dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
	       (uint64_t)sb.st_size >= st->max_mailbox;
}

/* The octets of one stored copy of a text of size octets, at most. */
static uint64_t copy_size(uint64_t size)
{
	return MBOXRD_HEADER_MAX + size + 1;
}

int store_has_room(struct store *st, uint64_t size, size_t n)
{
	struct statvfs vfs;
	uint64_t total, avail, need = copy_size(size) * n;

	if (st->min_free == 0 || fstatvfs(st->dirfd, &vfs) < 0)
		return 0;	/* a file system that cannot say is left to say ENOSPC */
	total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
	avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	return avail >= need && (avail - need) * 100 >= total * st->min_free ? 0 : -ENOSPC;
}

void store_close(struct store *st)
{
	if (st->dirfd >= 0)
		close(st->dirfd);
	st->dirfd = -1;
}

/* Does the mailbox end in an LF (or hold nothing)? 1, 0, or -errno. */
static int ends_in_lf(const struct box *b)
{
	char last;
	int rc;

	if (b->old_size == 0)
		return 1;
	rc = pread_full(b->fd, &last, 1, b->old_size - 1);
	return rc < 0 ? rc : last == '\n';
}

/* Write one copy at the end of b's mailbox. A file that another program
   left without a final LF gets one first, in the same append, so that our
   "From " line starts a line and no mail reader merges the two. */
static int append_copy(struct box *b, const struct envelope *e, const struct spool *text)
{
	char header[MBOXRD_HEADER_MAX];
	int len = mboxrd_header(header, sizeof header, e, b->address, text->size, b->ix.next_uid);
	int lf = ends_in_lf(b), rc;

	b->uid = b->ix.next_uid;
	if (len < 0 || lf < 0)
		return len < 0 ? len : lf;
	if (lseek(b->fd, (off_t)b->old_size, SEEK_SET) < 0)
		return -errno;
	b->touched = 1;
	if ((!lf && (rc = write_full(b->fd, "\n", 1)) < 0) ||
	    (rc = write_full(b->fd, header, (size_t)len)) < 0 ||
	    (rc = spool_copy_to(text, b->fd)) < 0 ||
	    (rc = write_full(b->fd, "\n", 1)) < 0)
		return rc;
	b->end = b->old_size + !lf + (uint64_t)len + text->size + 1;
	return 0;
}

/* Put a mailbox back as it was before this delivery. */
static void take_back(struct store *st, struct box *b)
{
	char name[ADDRESS_MAX + 8];

	if (b->touched && ftruncate(b->fd, (off_t)b->old_size) == 0)
		fdatasync(b->fd);
	if (b->created) {
		if (mboxfile_name(name, sizeof name, b->address, ".txt") == 0)
			unlinkat(st->dirfd, name, 0);
		if (mboxfile_name(name, sizeof name, b->address, ".idx") == 0)
			unlinkat(st->dirfd, name, 0);
	}
}

static int by_address(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Keep one of each address in a sorted list: a mailbox locked twice by one
   process would wait for itself. */
static size_t drop_repeats(const char **sorted, size_t n)
{
	size_t kept = 0;

	for (size_t i = 0; i < n; i++)
		if (kept == 0 || strcmp(sorted[kept - 1], sorted[i]) != 0)
			sorted[kept++] = sorted[i];
	return kept;
}

/* Lock every mailbox, in address order so that deliveries never deadlock. */
static int open_boxes(struct store *st, struct box *boxes, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct box *b = &boxes[i];
		struct stat sb;
		int rc = mboxfile_open_locked(st->dirfd, st->lock_timeout, b->address,
					      MBOXFILE_WRITE | MBOXFILE_CREATE, &b->fd, &b->ix, &b->created);

		if (rc < 0)
			return rc;
		if ((rc = mbindex_refresh(&b->ix, b->fd, 0)) < 0)
			return rc;
		if (fstat(b->fd, &sb) < 0)
			return -errno;
		b->old_size = (uint64_t)sb.st_size;
	}
	return 0;
}

/* Would any copy take its mailbox past max_mailbox? */
static int over_limit(const struct store *st, const struct box *boxes, size_t n,
		      const struct envelope *e, const struct spool *text)
{
	char header[MBOXRD_HEADER_MAX];

	for (size_t i = 0; st->max_mailbox > 0 && i < n; i++) {
		int len = mboxrd_header(header, sizeof header, e, boxes[i].address, text->size,
					boxes[i].ix.next_uid);

		if (len < 0 || boxes[i].old_size + (uint64_t)len + text->size + 1 > st->max_mailbox)
			return 1;
	}
	return 0;
}

static int append_boxes(struct box *boxes, size_t n, const struct envelope *e,
			const struct spool *text)
{
	int rc;

	for (size_t i = 0; i < n; i++)
		if ((rc = append_copy(&boxes[i], e, text)) < 0)
			return rc;
	return 0;
}

/* Make the appended copies durable, with the locks let go: deliveries to
   one mailbox then share the file's writes (and a journal's commits). */
static int sync_boxes(struct store *st, const struct box *boxes, size_t n)
{
	int any_created = 0;

	for (size_t i = 0; i < n; i++) {
		if (fdatasync(boxes[i].fd) < 0)
			return -errno;
		any_created |= boxes[i].created;
	}
	if (any_created && fsync(st->dirfd) < 0)
		return -errno;
	return 0;
}

static int is_the_copy(void *ctx, uint64_t id, const struct mbentry *e)
{
	const struct box *b = ctx;

	(void)id;
	return e->uid == b->uid;	/* one of ours: no MBINDEX_FOREIGN */
}

/* A mailbox this delivery made and left empty goes, as if never made. */
static void remove_if_empty(struct store *st, const struct box *b)
{
	char name[ADDRESS_MAX + 8];
	struct mbindex ix;
	struct stat sb;
	int fd, created;

	if (mboxfile_open_locked(st->dirfd, st->lock_timeout, b->address, MBOXFILE_WRITE, &fd,
				 &ix, &created) < 0)
		return;
	if (fstat(fd, &sb) == 0 && sb.st_size == 0) {
		if (mboxfile_name(name, sizeof name, b->address, ".idx") == 0)
			unlinkat(st->dirfd, name, 0);
		if (mboxfile_name(name, sizeof name, b->address, ".txt") == 0)
			unlinkat(st->dirfd, name, 0);
	}
	if (ix.fd >= 0)
		close(ix.fd);
	close(fd);
}

/* Take b's copy out again, after its lock was let go: cut it off if it is
   still the last thing in the file, as the failure of an append does; else
   (another delivery appended after it, or the file was replaced) delete it
   by its UID. */
static void withdraw_one(struct store *st, struct box *b)
{
	struct stat sb;
	uint64_t removed;
	int last;

	if (mboxfile_lock(b->fd, F_WRLCK, st->lock_timeout) < 0)
		return;
	last = fstat(b->fd, &sb) == 0 && sb.st_nlink > 0 && (uint64_t)sb.st_size == b->end;
	if (last)
		take_back(st, b);
	mboxfile_unlock(b->fd);
	if (!last && store_expunge(st, b->address, is_the_copy, b, &removed) == 0 && b->created)
		remove_if_empty(st, b);
}

/* The copies were appended and their locks let go, but one could not be
   made durable: take each out again, so that the sender, told of the
   failure, can send it again without a second copy. */
static void withdraw(struct store *st, struct box *boxes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		withdraw_one(st, &boxes[i]);
}

/* Index the appended copies (rc 0), or take every mailbox back as it was,
   then let the locks go. */
static void let_go(struct store *st, struct box *boxes, size_t n, int rc)
{
	for (size_t i = 0; i < n; i++) {
		struct box *b = &boxes[i];

		if (rc < 0 && b->fd >= 0)
			take_back(st, b);
		else if (rc == 0)
			mbindex_refresh(&b->ix, b->fd, 0);	/* the new record, and its UID */
		if (b->ix.fd >= 0)
			close(b->ix.fd);
		if (b->fd >= 0)
			mboxfile_unlock(b->fd);
	}
}

int store_deliver(struct store *st, const struct envelope *e,
		  const struct spool *text, const char *const *recipients, size_t n)
{
	const char **sorted = malloc(n * sizeof *sorted);
	struct box *boxes = calloc(n, sizeof *boxes);
	int rc = -ENOMEM;

	if (!sorted || !boxes)
		goto out;
	memcpy(sorted, recipients, n * sizeof *sorted);
	qsort(sorted, n, sizeof *sorted, by_address);
	n = drop_repeats(sorted, n);
	for (size_t i = 0; i < n; i++) {
		boxes[i].address = sorted[i];
		boxes[i].fd = boxes[i].ix.fd = -1;
	}
	rc = open_boxes(st, boxes, n);
	if (rc == 0 && over_limit(st, boxes, n, e, text))
		rc = -EDQUOT;
	if (rc == 0)
		rc = append_boxes(boxes, n, e, text);
	let_go(st, boxes, n, rc);
	/* The locks are let go before the sync: a reader syncs before it reads
	   (refresh_index), and a failed sync takes the copies back. */
	if (rc == 0 && (rc = sync_boxes(st, boxes, n)) < 0)
		withdraw(st, boxes, n);
	for (size_t i = 0; i < n; i++)
		if (boxes[i].fd >= 0)
			close(boxes[i].fd);
out:
	free(sorted);
	free(boxes);
	return rc;
}

/* A delivery makes its copy durable only after it has let its lock go (and
   has already indexed it), so whatever a reader is about to see is synced
   first: a reader never serves a message that a crash could still take
   back, nor one whose UID could then be given again. With nothing to
   write, that is a cache flush: about 0.1 ms. */
static int sync_view(const struct mailbox *mb)
{
	return fdatasync(mb->fd) < 0 ? -errno : 0;
}

/* Bring the index up to date (or make it anew) under an exclusive lock,
   sync what it now covers, then let go of the lock. */
static int refresh_index(struct mailbox *mb, int rebuild)
{
	int rc;

	mboxfile_unlock(mb->fd);
	rc = mboxfile_lock(mb->fd, F_WRLCK, mb->lock_timeout);
	if (rc == 0)
		rc = mbindex_refresh(&mb->ix, mb->fd, rebuild);
	if (rc == 0)
		rc = sync_view(mb);
	mboxfile_unlock(mb->fd);
	return rc;
}

int store_refresh(struct mailbox *mb)
{
	return refresh_index(mb, 0);
}

/* The index was found damaged while reading: make it anew, once. */
static int rebuild_index(struct mailbox *mb)
{
	int rc;

	if (mb->rebuilt)
		return -EIO;
	mb->rebuilt = 1;
	rc = refresh_index(mb, 1);
	if (rc == 0 && mb->ix.count < mb->count)
		rc = -EIO;	/* messages once listed are gone: the mbox was cut */
	return rc;
}

static int is_empty(int fd)
{
	struct stat sb;

	return fstat(fd, &sb) == 0 && sb.st_size == 0;
}

static void close_reading(struct mailbox *mb)
{
	spool_free(&mb->text);
	if (mb->ix.fd >= 0)
		close(mb->ix.fd);
	if (mb->fd >= 0)
		close(mb->fd);
	mb->fd = mb->ix.fd = -1;
}

/* A mailbox file that holds nothing is no mailbox: no mail ever came. */
static int open_reading(struct store *st, const char *address, struct mailbox *mb)
{
	int created, rc;

	mb->fd = mb->ix.fd = -1;
	mb->lock_timeout = st->lock_timeout;
	mb->rebuilt = 0;
	spool_init(&mb->text, st->dirfd);
	if (strlen(address) > STORE_ADDRESS_MAX)
		return -ENOENT;		/* no file can have its name */
	rc = mboxfile_open_locked(st->dirfd, st->lock_timeout, address, 0, &mb->fd, &mb->ix, &created);
	if (rc < 0)
		return rc;
	if (is_empty(mb->fd)) {		/* what a delivery killed right after creating it leaves */
		mboxfile_unlock(mb->fd);
		close_reading(mb);
		return -ENOENT;
	}
	rc = mbindex_check(&mb->ix, mb->fd);
	if (rc == 0)
		rc = refresh_index(mb, 0);
	else if (rc == 1)	/* current, perhaps with a copy not yet synced */
		rc = sync_view(mb);
	mboxfile_unlock(mb->fd);
	if (rc < 0) {
		close_reading(mb);
		return rc;
	}
	mb->count = mb->ix.count;
	return 0;
}

int store_mailbox_open(struct store *st, const char *address, struct mailbox **mb)
{
	int rc;

	if (!(*mb = malloc(sizeof **mb)))
		return -ENOMEM;
	if ((rc = open_reading(st, address, *mb)) < 0) {
		free(*mb);
		*mb = NULL;
	}
	return rc;
}

void store_mailbox_close(struct mailbox *mb)
{
	if (!mb)
		return;
	close_reading(mb);
	free(mb);
}

/* Read the sender and date of the message at offset. A "From " line longer
   than the buffer (another MDA's, with a long SRS or VERP sender) is read
   cut short, as mbox_read_head reads it. */
static int read_from_line(struct mailbox *mb, uint64_t offset, struct stored_message *m)
{
	char line[1024];
	ssize_t got = pread(mb->fd, line, sizeof line, (off_t)offset);
	char *lf = got > 5 ? memchr(line, '\n', (size_t)got) : NULL;

	if (got < 0)
		return -errno;
	if (got < 5 || memcmp(line, "From ", 5) != 0)
		return -ESTALE;
	mboxrd_parse_from_line(line, lf ? (size_t)(lf - line) : (size_t)got, m->sender, m->date);
	return 0;
}

int store_list(struct mailbox *mb,
	       int (*each)(void *ctx, uint64_t id, const char *sender, const char *date),
	       void *ctx)
{
	uint64_t offsets[256];
	struct stored_message m;

	for (uint64_t first = 0; first < mb->count;) {
		size_t n = mb->count - first < 256 ? (size_t)(mb->count - first) : 256;
		size_t i = 0;
		int rc = mbindex_read(&mb->ix, first, offsets, n);

		while (rc == 0 && i < n && (rc = read_from_line(mb, offsets[i], &m)) == 0)
			rc = each(ctx, first + ++i, m.sender, m.date);
		first += i;
		if (rc == -ESTALE)
			rc = rebuild_index(mb);	/* and read on from the same message */
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Where message id and its text lie: 0, -ENOENT, -ESTALE when the index
   is damaged there, or -errno. */
static int locate_message(struct mailbox *mb, uint64_t id, struct stored_message *m)
{
	struct mbox_head h;
	uint64_t start, end;
	char last;
	int rc = mbindex_locate(&mb->ix, id, &start, &end);

	if (rc == 0 && (rc = mbox_read_head(mb->fd, start, end, &h)) > 0 &&
	    rc != HEAD_WHOLE && !(rc == HEAD_CUT && !h.ours))	/* another's, headers only */
		rc = -ESTALE;
	if (rc < 0)
		return rc;
	mboxrd_parse_from_line(h.from_line, h.from_len, m->sender, m->date);
	m->text_start = h.body_start;
	if (h.prepended && h.text_start <= h.body_start)
		m->text_start = h.text_start;	/* SMTP mode: the message as sent */
	if (h.has_length && h.body_start + h.length + 1 == end)
		m->text_end = h.body_start + h.length;
	else if (end > h.body_start && pread(mb->fd, &last, 1, (off_t)end - 1) == 1 && last == '\n')
		m->text_end = end - 1;	/* the blank line that parts messages */
	else
		m->text_end = end > h.body_start ? end : h.body_start;
	return 0;
}

int store_message(struct mailbox *mb, uint64_t id, struct stored_message *m)
{
	int rc = locate_message(mb, id, m);

	if (rc == -ESTALE && (rc = rebuild_index(mb)) == 0)
		return store_message(mb, id, m);
	return rc;
}

int store_message_copy(struct mailbox *mb, uint64_t id, struct stored_message *m,
		       const struct spool **text)
{
	struct spool *out = &mb->text;

	*text = out;
	for (int tries = 0; tries < OPEN_TRIES; tries++) {
		int rc = mboxfile_lock(mb->fd, F_RDLCK, mb->lock_timeout), fresh;

		if (rc < 0)
			return rc;
		rc = mboxfile_check(mb->fd);	/* -ESTALE: a deletion replaced the file, */
		if (rc < 0 && rc != -ESTALE) {	/* and the one opened here stays whole */
			mboxfile_unlock(mb->fd);
			return rc;
		}
		fresh = mbindex_check(&mb->ix, mb->fd);
		rc = fresh < 0 ? fresh : fresh == 0 ? -EAGAIN : locate_message(mb, id, m);
		if (rc == 0) {
			spool_reset(out);
			rc = store_message_text(mb, m, spool_sink, out);
			rc = rc < 0 ? rc : out->error;
		}
		mboxfile_unlock(mb->fd);
		if (rc != -ESTALE && rc != -EAGAIN)
			return rc;
		if (rc == -ESTALE && mb->rebuilt)
			return -EIO;
		mb->rebuilt |= rc == -ESTALE;
		if ((rc = refresh_index(mb, rc == -ESTALE)) < 0)	/* behind, or damaged */
			return rc;
	}
	return -EIO;
}

int store_message_text(struct mailbox *mb, const struct stored_message *m,
		       mboxrd_out out, void *ctx)
{
	return record_unquote(mb->fd, m->text_start, m->text_end, out, ctx, NULL);
}

void store_spool_init(struct store *st, struct spool *s)
{
	spool_init(s, st->dirfd);
}

static int is_id(void *ctx, uint64_t id, const struct mbentry *e)
{
	(void)e;
	return id == *(const uint64_t *)ctx;
}

int store_delete(struct store *st, const char *address, uint64_t id)
{
	uint64_t removed;
	int rc = store_expunge(st, address, is_id, &id, &removed);

	return rc == 0 && removed == 0 ? -ENOENT : rc;
}

int store_hold(struct store *st, const char *address)
{
	return mboxfile_hold(st->dirfd, address);
}

int store_mailbox_file(struct store *st, const char *address)
{
	char name[ADDRESS_MAX + 8];
	int created, rc = mboxfile_name(name, sizeof name, address, ".txt");

	return rc < 0 ? rc : mboxfile_open(st->dirfd, name, O_RDONLY, &created);
}

int store_entries(const struct mailbox *mb, uint64_t first, struct mbentry *e, size_t n)
{
	return mbindex_entries(&mb->ix, first, e, n);
}

/* Where the message that was number n (0-based) with entry want lies in
   the mailbox as it is now: its entry may have moved if another program
   rewrote the file. 0 with [*start, *end), -ENOENT when it is gone, or
   -errno. */
static int find_entry(struct mailbox *mb, uint64_t n, const struct mbentry *want,
		      uint64_t *start, uint64_t *end)
{
	uint64_t count = mb->ix.count;
	struct mbentry e[2];

	for (uint64_t k = 0; k <= count; k++) {
		uint64_t i = k == 0 ? n : k - 1;	/* its own place first */
		int more = i + 1 < count, rc;

		if (i >= count || (k > 0 && i == n))
			continue;
		if ((rc = mbindex_entries(&mb->ix, i, e, 1 + (size_t)more)) < 0)
			return rc;
		if (e[0].uid == want->uid && (i == n || !(want->uid & MBINDEX_FOREIGN))) {
			*start = e[0].offset;
			*end = more ? e[1].offset : mb->ix.covered;
			return 0;
		}
	}
	return -ENOENT;
}

/* store_record_copy's copy, under the shared lock: -EAGAIN or -ESTALE when
   the index must be brought up to date first. */
static int record_copy_locked(struct mailbox *mb, uint64_t n, const struct mbentry *want,
			      int64_t body_lines, struct spool *out)
{
	struct record_span r;
	uint64_t start, end;
	int rc = mbindex_check(&mb->ix, mb->fd);

	if (rc >= 0 && !mb->ix.usable)
		return -EAGAIN;
	if (rc >= 0)
		rc = find_entry(mb, n, want, &start, &end);
	if (rc == 0)
		rc = record_span(mb->fd, start, end, &r);
	if (rc == 0) {
		spool_reset(out);
		rc = record_feed(mb->fd, &r, body_lines, spool_sink, out);
	}
	return rc < 0 ? rc : out->error;
}

int store_record_copy(struct mailbox *mb, uint64_t n, const struct mbentry *want,
		      int64_t body_lines, struct spool *out)
{
	int rc;

	for (int tries = 0; tries < 2; tries++) {
		rc = mboxfile_lock(mb->fd, F_RDLCK, mb->lock_timeout);
		if (rc < 0)
			return rc;
		rc = record_copy_locked(mb, n, want, body_lines, out);
		mboxfile_unlock(mb->fd);
		if (rc != -EAGAIN && rc != -ESTALE)
			return rc;
		if ((rc = store_refresh(mb)) < 0)	/* rewritten by another program */
			return rc;
	}
	return -ENOENT;
}
