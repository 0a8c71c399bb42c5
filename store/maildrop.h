/* maildrop.h: a mailbox as one POP3 session sees it (RFC 1939, PROTOCOL.md
   section 9): held against a second POP3 session, its messages numbered
   and sized once at login, read one by one under the mailbox's lock, and
   the ones marked deleted removed at QUIT. Deliveries go on meanwhile. */
#ifndef MYSMTP_MAILDROP_H
#define MYSMTP_MAILDROP_H

#include <stdint.h>

#include "store/spool.h"
#include "store/store.h"

struct maildrop {
	int busy_fd;		/* ADDRESS.pop, locked while the session lasts */
	struct mailbox mb;	/* mb.fd -1: no mailbox, no messages */
	int seen_fd;		/* the mailbox file as it was numbered (-1: none):
				   the same open file, so its octets of login only
				   while nothing rewrote it in place */
	uint64_t count;		/* messages, fixed for the session */
	struct mbentry *msg;	/* each one's offset, UID and size */
	uint64_t end;		/* where the last of them ends in seen_fd */
	unsigned char *deleted;	/* marked by DELE */
	uint64_t ndeleted, deleted_octets;
	uint64_t key[2];	/* this session's, for digests */
	uint64_t *digest;	/* of another program's message, as DELE read it */
	unsigned char *digested;	/* DIGEST_* */
	struct mark *marked;	/* at QUIT: the marked ones, by UID */
};

/* Take address's maildrop: 0, -EBUSY when another POP3 session has it, or
   -errno. */
int maildrop_open(struct store *st, const char *address, struct maildrop *d);
void maildrop_close(struct maildrop *d);

/* Copy message n (from 1) into out, as RETR sends it (record.h), or, with
   body_lines >= 0, as TOP does: 0, -ENOENT when another program took it
   away, or -errno. */
int maildrop_copy(struct maildrop *d, uint64_t n, int64_t body_lines, struct spool *out);

/* Mark message n (from 1, in range) to be deleted at QUIT. Another
   program's message is read then, From line and all, and a digest of its
   octets kept (keyed SipHash, siphash.h): a program that rewrites the
   mailbox in place (mutt) leaves no copy of the octets of login to compare
   with later. */
void maildrop_mark(struct maildrop *d, uint64_t n);

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
