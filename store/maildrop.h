/* maildrop.h: a mailbox as one POP3 session sees it (RFC 1939, PROTOCOL.md
   section 9): held against a second POP3 session, its messages numbered
   and sized once at login, read one by one under the mailbox's lock, and
   the ones marked deleted removed at QUIT. Deliveries go on meanwhile. */
#ifndef MYSMTP_MAILDROP_H
#define MYSMTP_MAILDROP_H

#include <stdint.h>

#include "store/store.h"

/* The maildrop of one session (maildrop.c). */
struct maildrop;

/* What POP3 shows of a message numbered at login. */
struct drop_message {
	uint64_t octets;	/* what RETR sends of it (record.h) */
	int deleted;		/* marked by DELE */
	char uidl[24];		/* its unique id (UIDL): the UID of our record;
				   another program's message "x" and the UID the
				   index gave it, which lasts as long as the index */
};

/* Take address's maildrop: 0, -EBUSY when another POP3 session has it, or
   -errno. */
int maildrop_open(struct store *st, const char *address, struct maildrop **d);
void maildrop_close(struct maildrop *d);

/* Message n (from 1): 0, or -ENOENT when there is no message n. */
int maildrop_message(const struct maildrop *d, uint64_t n, struct drop_message *m);

/* The messages not marked by DELE, and their octets in *octets (STAT). */
uint64_t maildrop_kept(const struct maildrop *d, uint64_t *octets);

/* Copy message n (from 1, in range) as RETR sends it (record.h), or, with
   body_lines >= 0, as TOP does, then pass the copy to send() and let it
   go: what send() returned; -ENOENT, before send() is called, when
   another program took the message away, or -errno when it could not be
   read. The mailbox's lock is held for the copy, not while it is sent. */
int maildrop_send(struct maildrop *d, uint64_t n, int64_t body_lines,
		  int (*send)(void *ctx, const struct spool *text), void *ctx);

/* Mark message n (from 1, in range) to be deleted at QUIT. Another
   program's message is read then, From line and all, and a digest of its
   octets kept (keyed SipHash, siphash.h): a program that rewrites the
   mailbox in place (mutt) leaves no copy of the octets of login to compare
   with later. */
void maildrop_mark(struct maildrop *d, uint64_t n);
/* Unmark every message (RSET). */
void maildrop_unmark(struct maildrop *d);

/* Delete the marked messages, durably: 0 with *removed, or -errno. One of
   ours is found by the UID in its record; another program's by the UID
   the index gave it and the digest of its octets, which must match.
   MAILDROP_KEPT when another program's marked message could not be told in
   the mailbox as it now is (rewritten, its index made anew): the others
   were deleted (*removed), that one is kept. */
#define MAILDROP_KEPT 1
int maildrop_update(struct store *st, const char *address, struct maildrop *d,
		    uint64_t *removed);

#endif
