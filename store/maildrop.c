/* maildrop.c: a mailbox as one POP3 session sees it (maildrop.h), made of
   the store's calls (store_internal.h): it takes no lock and reads no index
   file or record itself. */
#define _GNU_SOURCE
#include "store/maildrop.h"
#include "store/store_internal.h"
#include "net/io.h"
#include "store/siphash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

enum { DIGEST_NONE, DIGEST_TAKEN, DIGEST_UNREAD };

struct maildrop {
	int busy_fd;		/* ADDRESS.pop, locked while the session lasts */
	struct mailbox *mb;	/* NULL: no mailbox, no messages */
	int seen_fd;		/* the mailbox file as it was numbered (-1: none):
				   the same open file, so its octets of login only
				   while nothing rewrote it in place */
	uint64_t count;		/* messages, fixed for the session */
	struct mbentry *msg;	/* each one's offset, UID and size */
	uint64_t end;		/* where the last of them ends in seen_fd */
	unsigned char *deleted;	/* marked by DELE */
	uint64_t ndeleted;
	uint64_t key[2];	/* this session's, for digests */
	uint64_t *digest;	/* of another program's message, as DELE read it */
	unsigned char *digested;	/* DIGEST_* */
	struct mark *marked;	/* at QUIT: the marked ones, by UID */
	struct spool text;	/* a message on its way out */
};

/* Number and size the messages, once, and keep the file they are in. */
static int take_snapshot(struct maildrop *d)
{
	d->count = d->mb->count;
	d->end = d->mb->ix.covered;
	d->msg = calloc(d->count ? d->count : 1, sizeof *d->msg);
	d->deleted = calloc(d->count ? d->count : 1, 1);
	if (!d->msg || !d->deleted)
		return -ENOMEM;
	if ((d->seen_fd = fcntl(d->mb->fd, F_DUPFD_CLOEXEC, 0)) < 0)
		return -errno;
	return store_entries(d->mb, 0, d->msg, d->count);
}

int maildrop_open(struct store *st, const char *address, struct maildrop **dp)
{
	struct maildrop *d = calloc(1, sizeof *d);
	int rc;

	if (!(*dp = d))
		return -ENOMEM;
	d->busy_fd = d->seen_fd = -1;
	spool_init(&d->text, st->dirfd);
	if (strlen(address) > STORE_ADDRESS_MAX)
		return 0;		/* no file can have its name: no mail */
	if ((d->busy_fd = store_hold(st, address)) < 0)
		rc = d->busy_fd;
	else if ((rc = store_mailbox_open(st, address, &d->mb)) == -ENOENT)
		rc = 0;			/* no mail has come yet */
	else if (rc == 0)
		rc = take_snapshot(d);
	if (rc < 0) {
		maildrop_close(d);
		*dp = NULL;
	}
	return rc;
}

void maildrop_close(struct maildrop *d)
{
	if (!d)
		return;
	store_mailbox_close(d->mb);
	if (d->busy_fd >= 0)
		close(d->busy_fd);
	if (d->seen_fd >= 0)
		close(d->seen_fd);
	free(d->msg);
	free(d->deleted);
	free(d->marked);
	free(d->digest);
	free(d->digested);
	spool_free(&d->text);
	free(d);
}

/* Write message i's (0-based) UIDL and a NUL into out. A listing of many
   is mostly this, so it is made without printf. */
static void format_uidl(const struct maildrop *d, uint64_t i, char *out)
{
	uint64_t uid = d->msg[i].uid, v = uid & ~MBINDEX_FOREIGN;
	char digits[20];
	size_t k = 0;

	if (uid & MBINDEX_FOREIGN)
		*out++ = 'x';
	do
		digits[k++] = (char)('0' + v % 10);
	while ((v /= 10) > 0);
	while (k > 0)
		*out++ = digits[--k];
	*out = '\0';
}

int maildrop_message(const struct maildrop *d, uint64_t n, struct drop_message *m)
{
	if (n < 1 || n > d->count)
		return -ENOENT;
	m->octets = d->msg[n - 1].octets;
	m->deleted = d->deleted[n - 1];
	format_uidl(d, n - 1, m->uidl);
	return 0;
}

uint64_t maildrop_kept(const struct maildrop *d, uint64_t *octets)
{
	*octets = 0;
	for (uint64_t i = 0; i < d->count; i++)
		if (!d->deleted[i])
			*octets += d->msg[i].octets;
	return d->count - d->ndeleted;
}

int maildrop_send(struct maildrop *d, uint64_t n, int64_t body_lines,
		  int (*send)(void *ctx, const struct spool *text), void *ctx)
{
	int rc = n >= 1 && n <= d->count ?
		 store_record_copy(d->mb, n - 1, &d->msg[n - 1], body_lines, &d->text) : -ENOENT;

	if (rc == 0)
		rc = send(ctx, &d->text);
	spool_reset(&d->text);
	return rc;
}

/* The digest of [at, at + len) of fd: 0, or -errno (-ENODATA: the file
   ends before). */
static int digest_of(const struct maildrop *d, int fd, uint64_t at, uint64_t len, uint64_t *sum)
{
	struct siphash h;
	char buf[4096];

	siphash_start(&h, d->key);
	while (len > 0) {
		size_t n = len < sizeof buf ? (size_t)len : sizeof buf;
		int rc = pread_full(fd, buf, n, at);

		if (rc < 0)
			return rc;
		siphash_add(&h, buf, n);
		at += n;
		len -= n;
	}
	*sum = siphash_end(&h);
	return 0;
}

/* Where message i (0-based) ended in the mailbox as numbered. */
static uint64_t end_of(const struct maildrop *d, uint64_t i)
{
	return i + 1 < d->count ? d->msg[i + 1].offset : d->end;
}

/* The digests of other programs' marked messages, and this session's key
   for them, made at the first DELE of such a message, not at every login:
   0, or -errno. */
static int digests_ready(struct maildrop *d)
{
	if (d->digest)
		return 0;
	d->digested = calloc(d->count, 1);
	if (!d->digested || getrandom(d->key, sizeof d->key, 0) != (ssize_t)sizeof d->key ||
	    !(d->digest = calloc(d->count, sizeof *d->digest))) {
		free(d->digested);
		d->digested = NULL;
		return -ENOMEM;
	}
	return 0;
}

void maildrop_mark(struct maildrop *d, uint64_t n)
{
	const struct mbentry *e = &d->msg[n - 1];

	d->deleted[n - 1] = 1;
	d->ndeleted++;
	if (!(e->uid & MBINDEX_FOREIGN) || digests_ready(d) < 0 ||
	    d->digested[n - 1] != DIGEST_NONE)
		return;		/* after RSET: the first reading stands; without
				   digests QUIT keeps it and says so */
	d->digested[n - 1] = digest_of(d, d->seen_fd, e->offset, end_of(d, n - 1) - e->offset,
				       &d->digest[n - 1]) == 0 ? DIGEST_TAKEN : DIGEST_UNREAD;
}

void maildrop_unmark(struct maildrop *d)
{
	if (d->count)		/* no mailbox: no marks either */
		memset(d->deleted, 0, d->count);
	d->ndeleted = 0;	/* the digests taken stand */
}

/* A marked message, as DELE saw it, and what QUIT found of it. */
struct mark {
	struct mbentry seen;
	uint64_t length;	/* its octets, From line and all */
	uint64_t digest;	/* of them, another program's */
	int digested;		/* DIGEST_* */
	int decided;		/* whether it is in the mailbox as it now is */
	int found;
	uint64_t found_at;	/* its offset there */
};

/* What QUIT's deletion looks at. */
struct update {
	struct maildrop *d;
	struct store *st;
	const char *address;
	int now_fd;		/* the mailbox as it now is, opened when first needed */
};

static int by_uid(const void *a, const void *b)
{
	uint64_t x = ((const struct mark *)a)->seen.uid, y = ((const struct mark *)b)->seen.uid;

	return x < y ? -1 : x > y;
}

/* 1 when the message at offset of the mailbox as it now is holds the
   octets m held when DELE read them, From line and all, and nothing more:
   their digest is the same, and the file ends after them or the next
   "From " line starts there. */
static int same_message(struct update *u, const struct mark *m, uint64_t offset)
{
	uint64_t sum;
	char next[5];
	int rc;

	if (m->digested != DIGEST_TAKEN)
		return 0;
	if (u->now_fd < 0 &&	/* by name: under the deletion's lock, the file it locked */
	    (u->now_fd = store_mailbox_file(u->st, u->address)) < 0)
		return 0;
	if (digest_of(u->d, u->now_fd, offset, m->length, &sum) < 0 || sum != m->digest)
		return 0;
	rc = pread_full(u->now_fd, next, sizeof next, offset + m->length);
	return rc == -ENODATA || (rc == 0 && memcmp(next, "From ", 5) == 0);
}

/* A message to delete: marked in this session, and still the same one. A
   UID of its record names it wherever it now lies; one the index gave it
   names it only with the octets it had. Asked twice of each message, under
   one lock: the first answer, yes or no, is kept. */
static int is_marked(void *ctx, uint64_t id, const struct mbentry *e)
{
	struct update *u = ctx;
	struct mark key = { .seen = *e }, *m;

	(void)id;
	m = bsearch(&key, u->d->marked, u->d->ndeleted, sizeof *m, by_uid);
	if (!m)
		return 0;
	if (!m->decided) {
		m->decided = 1;
		m->found = !(m->seen.uid & MBINDEX_FOREIGN) || same_message(u, m, e->offset);
		m->found_at = e->offset;
	}
	return m->found && m->found_at == e->offset;
}

/* 1 when a marked message of another program was not found. */
static int foreign_left(const struct maildrop *d)
{
	for (uint64_t k = 0; k < d->ndeleted; k++)
		if ((d->marked[k].seen.uid & MBINDEX_FOREIGN) && !d->marked[k].found)
			return 1;
	return 0;
}

int maildrop_update(struct store *st, const char *address, struct maildrop *d,
		    uint64_t *removed)
{
	struct update u = { .d = d, .st = st, .address = address, .now_fd = -1 };
	uint64_t k = 0;
	int rc;

	*removed = 0;
	if (d->ndeleted == 0)
		return 0;
	if (!(d->marked = calloc(d->ndeleted, sizeof *d->marked)))
		return -ENOMEM;
	for (uint64_t i = 0; i < d->count; i++)
		if (d->deleted[i])
			d->marked[k++] = (struct mark){ .seen = d->msg[i],
				.length = end_of(d, i) - d->msg[i].offset,
				.digest = d->digest ? d->digest[i] : 0,
				.digested = d->digest ? d->digested[i] : DIGEST_NONE };
	qsort(d->marked, k, sizeof *d->marked, by_uid);
	rc = store_expunge(st, address, is_marked, &u, removed);
	if (u.now_fd >= 0)
		close(u.now_fd);
	if (rc == -ENOENT)
		rc = 0;		/* no mailbox, no message: none is left either */
	return rc == 0 && foreign_left(d) ? MAILDROP_KEPT : rc;
}
