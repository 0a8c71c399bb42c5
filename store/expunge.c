/* expunge.c: deleting messages (PROTOCOL.md section 9), for DELETE and for
   POP3's QUIT. Under the mailbox's exclusive lock, the kept messages are
   copied into a new unnamed file in the store (O_TMPFILE), which is synced;
   so is a new index made for it. Each is linked in under a temporary name
   and renamed over the old one (the index first: mboxfile_replace), then
   the directory is synced before the reply. A crash at any instant leaves the old mailbox or
   the new one whole: before the mailbox's rename, the old one with all its
   messages (and an index that no longer fits it and is rebuilt, keeping its
   UID counters); after it, the new one. Every opener checks after locking
   that the file it locked still has its name (mboxfile.h), so a delivery
   that waited for the lock appends to the new file, and a reader that had
   the old one open reads on in it, whole. Mail of other programs is copied
   octet for octet: nothing is parsed but the index's offsets. */
#define _GNU_SOURCE
#include "store/store_internal.h"
#include "net/io.h"
#include "store/mboxfile.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BATCH 256

struct rewrite {
	int dirfd;
	const char *address;
	int fd;			/* the mailbox, locked */
	struct mbindex ix;	/* its index, up to date */
	int new_fd;		/* the new mailbox, unnamed until installed */
	struct mbindex nx;	/* the new index, in an unnamed file too */
	uint64_t written;	/* octets of the new mailbox */
	uint64_t run_start, run_end;	/* kept octets not yet copied */
};

/* Count the messages pick() chooses. */
static int count_picked(struct rewrite *w, store_pick pick, void *ctx, uint64_t *picked)
{
	struct mbentry e[BATCH];

	*picked = 0;
	for (uint64_t first = 0; first < w->ix.count; first += BATCH) {
		size_t n = w->ix.count - first < BATCH ? (size_t)(w->ix.count - first) : BATCH;
		int rc = mbindex_entries(&w->ix, first, e, n);

		if (rc < 0)
			return rc;
		for (size_t i = 0; i < n; i++)
			*picked += pick(ctx, first + i + 1, &e[i]) != 0;
	}
	return 0;
}

/* Copy [from, to) of the old mailbox to the end of the new one. */
static int copy_octets(struct rewrite *w, uint64_t from, uint64_t to)
{
	char buf[65536];

	while (from < to) {
		loff_t in = (loff_t)from, out = (loff_t)w->written;
		size_t want = to - from < (1U << 30) ? (size_t)(to - from) : 1U << 30;
		ssize_t n = copy_file_range(w->fd, &in, w->new_fd, &out, want, 0);
		int rc;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
			      errno == EOPNOTSUPP)) {	/* a file system without it */
			n = (ssize_t)(want < sizeof buf ? want : sizeof buf);
			if ((rc = pread_full(w->fd, buf, (size_t)n, from)) < 0 ||
			    (rc = pwrite_full(w->new_fd, buf, (size_t)n, w->written)) < 0)
				return rc;
		} else if (n <= 0) {
			return n < 0 ? -errno : -EIO;	/* 0: the file is shorter than its index */
		}
		from += (uint64_t)n;
		w->written += (uint64_t)n;
	}
	return 0;
}

/* Keep [from, to): joined to the run of kept octets, copied when it ends. */
static int keep(struct rewrite *w, uint64_t from, uint64_t to)
{
	int rc = 0;

	if (from != w->run_end) {
		rc = copy_octets(w, w->run_start, w->run_end);
		w->run_start = from;
	}
	w->run_end = to;
	return rc;
}

/* Copy what lies before the first message, and every message pick() does
   not choose, indexing each at its new offset. */
static int copy_kept(struct rewrite *w, store_pick pick, void *ctx)
{
	struct mbentry e[BATCH + 1], kept[BATCH];
	int rc = 0;

	w->run_start = w->run_end = 0;
	for (uint64_t first = 0; rc == 0 && first < w->ix.count; first += BATCH) {
		size_t n = w->ix.count - first < BATCH ? (size_t)(w->ix.count - first) : BATCH, k = 0;
		int more = first + n < w->ix.count;

		if ((rc = mbindex_entries(&w->ix, first, e, n + (size_t)more)) < 0)
			break;
		if (!more)
			e[n].offset = w->ix.covered;
		if (first == 0)
			rc = keep(w, 0, e[0].offset);
		for (size_t i = 0; rc == 0 && i < n; i++) {
			if (pick(ctx, first + i + 1, &e[i]))
				continue;
			rc = keep(w, e[i].offset, e[i + 1].offset);
			kept[k] = e[i];
			kept[k++].offset = w->written + (e[i].offset - w->run_start);
		}
		if (rc == 0)
			rc = mbindex_add(&w->nx, kept, k);
	}
	if (rc == 0)
		rc = copy_octets(w, w->run_start, w->run_end);
	return rc;
}

/* An unnamed file in the store, of the old mailbox's mode. */
static int unnamed_file(const struct rewrite *w, const struct stat *like)
{
	int fd = openat(w->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd < 0)
		return -errno;
	if (fchmod(fd, like->st_mode & 07777) < 0) {
		int err = errno;

		close(fd);
		return -err;
	}
	if (fchown(fd, like->st_uid, like->st_gid) < 0 && errno != EPERM) {
		close(fd);
		return -EIO;
	}
	return fd;
}

/* Write the new mailbox and index, durably, and put them in place. */
static int replace_mailbox(struct rewrite *w, store_pick pick, void *ctx)
{
	struct stat sb, nsb;
	int rc;

	if (fstat(w->fd, &sb) < 0)
		return -errno;
	if ((w->new_fd = unnamed_file(w, &sb)) < 0)
		return w->new_fd;
	if (fstat(w->new_fd, &nsb) < 0)
		return -errno;
	if ((rc = unnamed_file(w, &sb)) < 0)
		return rc;
	mbindex_start(&w->nx, rc, (uint64_t)nsb.st_ino, &w->ix);
	if ((rc = copy_kept(w, pick, ctx)) < 0 ||
	    (rc = mbindex_finish(&w->nx, w->written)) < 0)
		return rc;
	if (fdatasync(w->new_fd) < 0 || fdatasync(w->nx.fd) < 0)
		return -errno;
	if ((rc = mboxfile_replace(w->dirfd, w->address, w->new_fd, w->nx.fd)) < 0)
		return rc;
	return fsync(w->dirfd) < 0 ? -errno : 0;
}

static void close_all(struct rewrite *w)
{
	int fds[] = { w->nx.fd, w->new_fd, w->ix.fd, w->fd };

	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

int store_expunge(struct store *st, const char *address, store_pick pick, void *ctx,
		  uint64_t *removed)
{
	struct rewrite w = { .dirfd = st->dirfd, .address = address, .fd = -1, .new_fd = -1 };
	int created, rc;

	*removed = 0;
	w.ix.fd = w.nx.fd = -1;
	if (strlen(address) > STORE_ADDRESS_MAX)
		return -ENOENT;
	rc = mboxfile_open_locked(st->dirfd, st->lock_timeout, address, MBOXFILE_WRITE,
				  &w.fd, &w.ix, &created);
	if (rc == 0)
		rc = mbindex_refresh(&w.ix, w.fd, 0);
	if (rc == 0)
		rc = count_picked(&w, pick, ctx, removed);
	if (rc == 0 && *removed > 0)
		rc = replace_mailbox(&w, pick, ctx);
	if (rc < 0)
		*removed = 0;
	close_all(&w);
	return rc;
}
