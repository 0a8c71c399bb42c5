/* mboxrd.h: the mboxrd format: From-line quoting, the header block we write,
   and reading back the sender and date of a "From " line. */
#ifndef MYSMTP_MBOXRD_H
#define MYSMTP_MBOXRD_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "mail/address.h"

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

/* The kinds of stored record. RECORD_MYSMTP: our header block, a blank
   line, then the text of a My_SMTP DATA. RECORD_SMTP (SMTP mode): an RFC 5322
   message as sent, its own header section included, with our header lines in
   front of it; the first of them, MBOXRD_PREPENDED, says where it begins.
   RECORD_HEADED: a My_SMTP text that opens with a header section of its own
   (rfc5322_headed), stored as RECORD_SMTP is, so that a mail reader sees one
   header block and GET_MAIL still finds the text as sent. */
enum record_kind { RECORD_MYSMTP, RECORD_SMTP, RECORD_HEADED };

/* What the header block of one stored copy says. */
struct envelope {
	const char *sender;	/* normalised address; "" is SMTP's null reverse-path */
	const char *helo;	/* the client's HELO (or EHLO) id */
	const char *peer;	/* the client's address, or "local" */
	const char *hostname;	/* this server's name */
	const char *message_id;	/* without the angle brackets */
	time_t when;
	enum record_kind kind;
	/* RECORD_SMTP and RECORD_HEADED only: */
	int esmtp;		/* the client greeted with EHLO */
	int add_from;		/* the message has no From field: add one */
	int add_date;		/* the message has no Date field: add one */
	int add_message_id;	/* the message has no Message-ID field: add one */
	uint64_t body_start;	/* octets of the stored text up to and with the empty
				   line that ends its header section; 0 when it has
				   none, and then our header block ends with one */
};

#define MBOXRD_HEADER_MAX 4096
/* The first header line of a RECORD_SMTP record: "X-MySMTP-Prepended: N",
   N the octets of the header lines that follow it up to the message as sent.
   The next lines are "Content-Length: L" and MBOXRD_UID. */
#define MBOXRD_PREPENDED "X-MySMTP-Prepended: "
/* Every record's UID in its mailbox (POP3's UIDL), among our header lines:
   "X-MySMTP-UID: U", U from 1, each larger than the one before. */
#define MBOXRD_UID "X-MySMTP-UID: "
/* The third line of ours that is bookkeeping, not a message's: a mail
   reader is shown none of the three (record.h). */
#define MBOXRD_LENGTH "Content-Length: "
/* A null reverse-path is stored as this sender in the "From " line. */
#define MBOXRD_NULL_SENDER "MAILER-DAEMON"

/* Write the "From " line and header lines of one copy of text_len stored
   octets with UID uid, ending where the text begins (for RECORD_MYSMTP with
   the blank line), into buf: its length, or -ENOSPC when it would not fit. */
int mboxrd_header(char *buf, size_t size, const struct envelope *e,
		  const char *recipient, uint64_t text_len, uint64_t uid);

/* A Message-ID: three numbers of up to 20 digits, two dots, '@', the host name. */
#define MESSAGE_ID_MAX (3 * 20 + 3 + DOMAIN_MAX)
/* A Message-ID (without brackets) for the n-th message of this process:
   0, or -ENAMETOOLONG. */
int mboxrd_message_id(char *buf, size_t size, time_t when, unsigned long n, const char *host);

#define FROM_SENDER_MAX 320
/* Read the sender and the day of delivery (DD-MM-YYYY) from a "From " line
   (len octets, without its LF). Unreadable parts become "?" and "00-00-0000". */
void mboxrd_parse_from_line(const char *line, size_t len,
			    char sender[FROM_SENDER_MAX + 1], char date[11]);

#endif
