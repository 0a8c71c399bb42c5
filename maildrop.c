/* maildrop.c: a mailbox as one POP3 session sees it (maildrop.h). The lock
   that keeps a second POP3 session out is on a file of its own,
   ADDRESS.pop: the mailbox file is replaced by every deletion, and its own
   locks are for deliveries and readers, who must not be kept out. */
#define _GNU_SOURCE
#include "maildrop.h"
#include "address.h"
#include "mboxfile.h"
#include "record.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int take_busy_lock(struct store *st, const char *address)
{
	char name[ADDRESS_MAX + 8];
	int created, fd, rc = mboxfile_name(name, sizeof name, address, ".pop");

	if (rc < 0)
		return rc;
	fd = mboxfile_open(st->dirfd, name, O_RDWR | O_CREAT, &created);
	if (fd < 0)
		return fd;
	if ((rc = mboxfile_check(fd)) == 0 && (rc = mboxfile_lock(fd, F_WRLCK, 0)) == -ETIMEDOUT)
		rc = -EBUSY;		/* at once: another session holds it */
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

/* Number and size the messages, once. */
static int take_snapshot(struct maildrop *d)
{
	d->count = d->mb.count;
	d->msg = calloc(d->count ? d->count : 1, sizeof *d->msg);
	d->deleted = calloc(d->count ? d->count : 1, 1);
	if (!d->msg || !d->deleted)
		return -ENOMEM;
	return mbindex_entries(&d->mb.ix, 0, d->msg, d->count);
}

int maildrop_open(struct store *st, const char *address, struct maildrop *d)
{
	int rc;

	*d = (struct maildrop){ .busy_fd = -1 };
	d->mb.fd = d->mb.ix.fd = -1;
	if (strlen(address) > STORE_ADDRESS_MAX)
		return 0;		/* no file can have its name: no mail */
	if ((d->busy_fd = take_busy_lock(st, address)) < 0)
		return d->busy_fd;
	rc = store_mailbox_open(st, address, &d->mb);
	if (rc == -ENOENT)
		rc = 0;			/* no mail has come yet */
	else if (rc == 0)
		rc = take_snapshot(d);
	if (rc < 0)
		maildrop_close(d);
	return rc;
}

void maildrop_close(struct maildrop *d)
{
	store_mailbox_close(&d->mb);
	if (d->busy_fd >= 0)
		close(d->busy_fd);
	d->busy_fd = -1;
	free(d->msg);
	free(d->deleted);
	free(d->marked);
	d->msg = d->marked = NULL;
	d->deleted = NULL;
	d->count = 0;
}

/* Where message n (0-based) lies in the mailbox as it is now: its entry
   may have moved if another program rewrote the file. 0 with [*start,
   *end), -ENOENT when it is gone, or -errno. */
static int find_message(struct maildrop *d, uint64_t n, uint64_t *start, uint64_t *end)
{
	const struct mbentry *want = &d->msg[n];
	uint64_t count = d->mb.ix.count;
	struct mbentry e[2];

	for (uint64_t k = 0; k <= count; k++) {
		uint64_t i = k == 0 ? n : k - 1;	/* its own place first */
		int more = i + 1 < count, rc;

		if (i >= count || (k > 0 && i == n))
			continue;
		if ((rc = mbindex_entries(&d->mb.ix, i, e, 1 + (size_t)more)) < 0)
			return rc;
		if (e[0].uid == want->uid && (i == n || !(want->uid & MBINDEX_FOREIGN))) {
			*start = e[0].offset;
			*end = more ? e[1].offset : d->mb.ix.covered;
			return 0;
		}
	}
	return -ENOENT;
}

static int copy_locked(struct maildrop *d, uint64_t n, int64_t body_lines, struct spool *out)
{
	struct record_span r;
	uint64_t start, end;
	int rc = mbindex_check(&d->mb.ix, d->mb.fd);

	if (rc >= 0 && !d->mb.ix.usable)
		return -EAGAIN;
	if (rc >= 0)
		rc = find_message(d, n, &start, &end);
	if (rc == 0)
		rc = record_span(d->mb.fd, start, end, &r);
	if (rc == 0) {
		spool_reset(out);
		rc = record_feed(d->mb.fd, &r, body_lines, spool_sink, out);
	}
	return rc < 0 ? rc : out->error;
}

int maildrop_copy(struct maildrop *d, uint64_t n, int64_t body_lines, struct spool *out)
{
	int rc;

	if (n < 1 || n > d->count)
		return -ENOENT;
	for (int tries = 0; tries < 2; tries++) {
		rc = mboxfile_lock(d->mb.fd, F_RDLCK, d->mb.lock_timeout);
		if (rc < 0)
			return rc;
		rc = copy_locked(d, n - 1, body_lines, out);
		mboxfile_unlock(d->mb.fd);
		if (rc != -EAGAIN && rc != -ESTALE)
			return rc;
		if ((rc = store_refresh(&d->mb)) < 0)	/* rewritten by another program */
			return rc;
	}
	return -ENOENT;
}

static int by_uid(const void *a, const void *b)
{
	uint64_t x = ((const struct mbentry *)a)->uid, y = ((const struct mbentry *)b)->uid;

	return x < y ? -1 : x > y;
}

/* A message to delete: marked in this session, and still the same one. A
   UID of its record names it wherever it now lies; one the index gave it
   only where it was. */
static int is_marked(void *ctx, uint64_t id, const struct mbentry *e)
{
	const struct maildrop *d = ctx;
	const struct mbentry *m = bsearch(e, d->marked, d->ndeleted, sizeof *e, by_uid);

	(void)id;
	return m && (!(m->uid & MBINDEX_FOREIGN) || m->offset == e->offset);
}

int maildrop_update(struct store *st, const char *address, struct maildrop *d,
		    uint64_t *removed)
{
	uint64_t k = 0;

	*removed = 0;
	if (d->ndeleted == 0)
		return 0;
	if (!(d->marked = malloc(d->ndeleted * sizeof *d->marked)))
		return -ENOMEM;
	for (uint64_t i = 0; i < d->count; i++)
		if (d->deleted[i])
			d->marked[k++] = d->msg[i];
	qsort(d->marked, k, sizeof *d->marked, by_uid);
	return store_expunge(st, address, is_marked, d, removed);
}
