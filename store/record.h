/* record.h: one stored message as a mail reader gets it (POP3's RETR and
   TOP, PROTOCOL.md section 9 and the amendments of turn three): from the
   line after its "From " line to the end of its text, mboxrd quoting undone,
   without the store's bookkeeping lines (MBOXRD_PREPENDED, MBOXRD_LENGTH,
   MBOXRD_UID) where they are among our own header lines; and its size as
   RETR sends it, every LF as CRLF. */
#ifndef MYSMTP_RECORD_H
#define MYSMTP_RECORD_H

#include <stdint.h>

#include "mail/mboxrd.h"

struct record_span {
	uint64_t start, end;	/* the octets sent, in the mbox, before unquoting */
	uint64_t body;		/* where the body begins, after the empty line
				   that ends the header section (end: none) */
	uint64_t uid;		/* its MBOXRD_UID, when the record is ours; else 0 */
	uint64_t ours_end;	/* our own header lines are [start, ours_end):
				   all the header block of a My_SMTP record, the
				   prepended lines of an SMTP one, none (start)
				   of another program's message */
	uint64_t moved_length;	/* where a mail reader's rewrite moved our
				   Content-Length line to; 0: nowhere */
};

/* The span of the message [start, end) of the mbox fd: 0, -ESTALE when no
   "From " line is at start, or -errno. The text ends where a Content-Length
   of ours says; else at end, less the empty line that parts it from the
   next message. */
int record_span(int fd, uint64_t start, uint64_t end, struct record_span *r);

/* Pass [from, to) of fd to out(), mboxrd quoting undone (from the start of
   a line), stopping early once *more, when given, is 0: 0 or -errno. */
int record_unquote(int fd, uint64_t from, uint64_t to, mboxrd_out out, void *ctx,
		   const int64_t *more);

/* Pass the span, unquoted, to out(): all of it when body_lines is negative,
   else its header section and that many lines of its body (TOP). */
int record_feed(int fd, const struct record_span *r, int64_t body_lines,
		mboxrd_out out, void *ctx);

/* The octets RETR sends of it before dot-stuffing: LF sent as CRLF, and a
   CRLF added when its last line has no line end. */
int record_octets(int fd, const struct record_span *r, uint64_t *octets);

#endif
