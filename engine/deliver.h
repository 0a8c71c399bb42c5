/* deliver.h: delivery as a service for the dialects that take mail (My_SMTP,
   SMTP): the transaction (sender, recipients) and the checks a recipient
   passes, the receive pipeline of a message's text (the client's lines ->
   From-quoting -> header scan -> spool), and the delivery of the spooled
   text to every recipient's mailbox, all or nothing. Each step ends in an
   outcome that the dialect says in its own words. */
#ifndef MYSMTP_DELIVER_H
#define MYSMTP_DELIVER_H

#include "engine/login.h"
#include "engine/session_io.h"
#include "mail/rfc5322.h"
#include "store/store.h"

/* What one mail transaction keeps: the sender and the recipients. */
struct transaction {
	char sender[ADDRESS_MAX + 1];	/* "" before MAIL, or SMTP's null reverse-path */
	char **rcpt;			/* distinct recipients, in the order given */
	size_t nrcpt;
};

/* What a mail dialect keeps for delivery, in its own state. */
struct delivery {
	struct store *store;
	struct spool spool;		/* a text between DATA and delivery */
	struct transaction tx;
	unsigned long messages;		/* delivered this session, for Message-IDs */
	char helo[256];			/* the client's HELO (or EHLO) id, for the envelope */
	int esmtp;			/* it said EHLO */
};

void delivery_open(struct delivery *dl, struct store *st);
void delivery_close(struct delivery *dl);
/* Drop the transaction. */
void delivery_reset(struct delivery *dl);

/* Whether a recipient was taken: RCPT_ADDED (logged, the junk count set
   back) or RCPT_AGAIN (named before) take it; the rest refuse it. */
enum rcpt_verdict { RCPT_ADDED, RCPT_AGAIN, RCPT_NO_ACCOUNTS, RCPT_RELAY, RCPT_DOMAIN,
		    RCPT_TOO_LONG, RCPT_NO_MAILBOX, RCPT_TOO_MANY, RCPT_FULL, RCPT_NO_MEMORY };
/* Check address (normalised) as a recipient and add it: with accounts (l)
   it must be local and have one, else its domain must be served; "exempt"
   lets it pass both (SMTP's postmaster@HOSTNAME). */
enum rcpt_verdict delivery_add_rcpt(struct delivery *dl, struct session *s, const struct login *l,
				    const char *address, int exempt);

/* How a dialect takes a text. */
struct delivery_kind {
	/* SMTP's framing: only CRLF "." CRLF ends it, a bare LF as -B says,
	   the size counted as RFC 1870 does (CRLF as two octets). */
	int strict;
	/* Fill in what the envelope says of the dialect (its kind, which
	   header fields to add) from what the scan saw. */
	void (*envelope)(const struct msg_scan *scan, struct envelope *e);
};

/* How taking a text went. */
enum delivery_outcome { DELIVERED, DELIVERY_ENDED, TOO_LARGE, BARE_LF, HAS_NUL, SPOOL_FAILED,
			NO_ROOM, MAILBOX_FULL, STORE_FAILED };
/* After the dialect's go-ahead: read the text up to its end, judge it, and
   deliver it to the transaction's recipients (its Message-ID made into id),
   logging how it went; then drop the transaction. DELIVERY_ENDED: the
   session is over (a timeout, answered, or the connection lost). */
enum delivery_outcome delivery_take(struct delivery *dl, struct session *s,
				    const struct delivery_kind *k, char id[MESSAGE_ID_MAX + 1]);

#endif
