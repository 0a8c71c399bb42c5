/* mbindex.h: the index beside each mbox, so LIST and GET_MAIL cost the same
   however many messages come before the one asked for. The mbox stays the
   truth: a missing, foreign or stale index is rebuilt or extended from it. */
#ifndef MYSMTP_MBINDEX_H
#define MYSMTP_MBINDEX_H

#include <stddef.h>
#include <stdint.h>

struct mbindex {
	int fd;			/* the .idx file */
	uint64_t count;		/* messages indexed */
	uint64_t covered;	/* mbox octets they cover, from 0 */
	uint64_t inode;		/* of the mbox the index was made for */
	int usable;		/* count and covered describe the file */
};

/* The start of one stored message, as far as its first octets tell. */
struct mbox_head {
	char from_line[1024];	/* its "From " line, cut short, without LF */
	size_t from_len;
	uint64_t body_start;	/* offset of the text after the blank line */
	int has_length;		/* a Content-Length header was read */
	uint64_t length;	/* its value */
	int prepended;		/* an SMTP-mode record (MBOXRD_PREPENDED, mboxrd.h) */
	uint64_t text_start;	/* then: where the message as sent begins */
	int ours;		/* a record this server wrote, by the shape of its
				   first header lines: only its length is trusted,
				   and only it may be found torn */
};

enum { HEAD_WHOLE = 1, HEAD_CUT, HEAD_NONE };
/* Read the message at start (file size size): HEAD_WHOLE when its header
   block is complete, HEAD_CUT when the file ends inside it (then body_start
   is size), HEAD_NONE when start holds no "From " line; or -errno. The
   Content-Length of an SMTP-mode record is read from its fixed place,
   however long its header section; h->ours says whether it is ours. */
int mbox_read_head(int fd, uint64_t start, uint64_t size, struct mbox_head *h);

/* Find needle in fd between from and size: 1 and *at, 0 when absent, -errno. */
int mbindex_find(int fd, uint64_t from, uint64_t size, const char *needle,
	      size_t nlen, uint64_t *at);

/* Under any lock: 1 when the index covers the whole mbox, 0 when it must be
   refreshed, -errno. */
int mbindex_check(struct mbindex *ix, int mbox_fd);
/* Under an exclusive lock: bring the index up to date (or, with rebuild, make
   it anew), cutting a torn last message off the mbox. 0 or -errno. */
int mbindex_refresh(struct mbindex *ix, int mbox_fd, int rebuild);
/* Where message id (1-based) lies: 0 and [*start, *end), -ENOENT, or
   -ESTALE when the index is damaged there and must be rebuilt. */
int mbindex_locate(const struct mbindex *ix, uint64_t id, uint64_t *start, uint64_t *end);
/* Read the offsets of messages first .. first + n - 1 (0-based); -ESTALE
   as for mbindex_locate. */
int mbindex_read(const struct mbindex *ix, uint64_t first, uint64_t *offsets, size_t n);
/* Under an exclusive lock: record one more message [offset, new_covered). */
int mbindex_append(struct mbindex *ix, uint64_t offset, uint64_t new_covered);

#endif
