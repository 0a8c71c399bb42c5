/* mboxrd.h: the mboxrd format: From-line quoting, the header block we write,
   and reading back the sender and date of a "From " line. */
#ifndef MYSMTP_MBOXRD_H
#define MYSMTP_MBOXRD_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef void (*mboxrd_out)(void *ctx, const char *data, size_t len);

/* A streaming filter that adds (delta +1) or removes (delta -1) one '>' on
   every line matching ^>*From  -- mboxrd quoting. Memory stays constant. */
struct from_quoter {
	int delta;
	int mid_line;		/* past the line's quoting prefix */
	uint64_t gt;		/* '>' seen at the start of this line */
	size_t matched;		/* octets of "From " matched after them */
	mboxrd_out out;
	void *ctx;
};

void from_quoter_init(struct from_quoter *q, int delta, mboxrd_out out, void *ctx);
void from_quoter_feed(struct from_quoter *q, const char *data, size_t len);
void from_quoter_finish(struct from_quoter *q);

/* What the header block of one stored copy says. */
struct envelope {
	const char *sender;	/* normalised address */
	const char *helo;	/* the client's HELO id */
	const char *peer;	/* the client's address, or "local" */
	const char *hostname;	/* this server's name */
	const char *message_id;	/* without the angle brackets */
	time_t when;
};

#define MBOXRD_HEADER_MAX 2048

/* Write the "From " line and header lines of one copy, ending with the blank
   line, into buf: its length, or -ENOSPC when it would not fit. */
int mboxrd_header(char *buf, size_t size, const struct envelope *e,
		  const char *recipient, uint64_t body_len);

#define FROM_SENDER_MAX 320
/* Read the sender and the day of delivery (DD-MM-YYYY) from a "From " line
   (len octets, without its LF). Unreadable parts become "?" and "00-00-0000". */
void mboxrd_parse_from_line(const char *line, size_t len,
			    char sender[FROM_SENDER_MAX + 1], char date[11]);

#endif
