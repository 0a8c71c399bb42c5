/* mboxscan.h: reading an mbox where no index says anything yet: where a
   message starts and ends, and what its first header lines tell (ours or
   another program's, its length, its UID). The index (mbindex.h) is made
   from it and records (record.h) are read with it; it knows neither. */
#ifndef MYSMTP_MBOXSCAN_H
#define MYSMTP_MBOXSCAN_H

#include <stddef.h>
#include <stdint.h>

/* The start of one stored message, as far as its first octets tell. */
struct mbox_head {
	char from_line[1024];	/* its "From " line, cut short, without LF */
	size_t from_len;
	uint64_t body_start;	/* offset of the text after the blank line */
	int has_length;		/* a Content-Length header was read */
	uint64_t length;	/* its value */
	int prepended;		/* an SMTP-mode record (MBOXRD_PREPENDED, mboxrd.h) */
	uint64_t text_start;	/* then: where the message as sent begins */
	uint64_t moved_length;	/* then: where a mail reader's rewrite moved our
				   Content-Length line to (read_prepended); 0: not */
	int ours;		/* a record this server wrote, by the shape of its
				   first header lines: only its length is trusted,
				   and only it may be found torn */
	uint64_t uid;		/* ours: its MBOXRD_UID line; 0 when it has none */
};

enum { HEAD_WHOLE = 1, HEAD_CUT, HEAD_NONE };
/* Read the message at start (file size size): HEAD_WHOLE when its header
   block is complete, HEAD_CUT when the file ends inside it (then body_start
   is size), HEAD_NONE when start holds no "From " line; or -errno. The
   Content-Length of an SMTP-mode record is read from its fixed place,
   however long its header section; h->ours says whether it is ours. */
int mbox_read_head(int fd, uint64_t start, uint64_t size, struct mbox_head *h);

/* Find needle in fd between from and size: 1 and *at, 0 when absent, -errno. */
int mbox_find(int fd, uint64_t from, uint64_t size, const char *needle,
	      size_t nlen, uint64_t *at);

/* Can a message start at off of a file of size octets: a "From " line at
   the start of a line, the end of the file, or the first octets of "From "
   that a cut-short append left at the end? 1 or 0. */
int mbox_boundary_at(int fd, uint64_t off, uint64_t size);

enum { MBOX_TORN, MBOX_WHOLE, MBOX_SKIP };
/* Where the message at start ends: MBOX_WHOLE and *end; MBOX_TORN when the
   file ends inside one of our own records (a write cut short); MBOX_SKIP
   and *end at the next message when start holds junk, or one of our
   records that another program's append cut off, which are kept but not
   listed; or -errno. */
int mbox_message_end(int fd, uint64_t start, uint64_t size, uint64_t *end);

#endif
