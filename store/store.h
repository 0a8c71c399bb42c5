/* store.h: the mail store: address -> mailbox file, locking, the all-or-nothing
   append of one message to several mailboxes, and reading messages back.
   What a dialect and the engine need of the store is here (and, for POP3,
   in maildrop.h); the rest is store_internal.h's. No caller outside the
   store takes a lock, reads the index or a store's field. */
#ifndef MYSMTP_STORE_H
#define MYSMTP_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "mail/mboxrd.h"
#include "store/spool.h"

/* The store's own (store_open sets it up; the program sets the two limits):
   no caller outside store/ reads it. */
struct store {
	int dirfd;		/* the mailbox directory */
	unsigned lock_timeout;	/* seconds to wait for a mailbox lock */
	uint64_t max_mailbox;	/* octets a mailbox may grow to; 0: no limit */
	unsigned min_free;	/* percent of the file system kept free */
};

/* A mailbox open for reading (store_internal.h). */
struct mailbox;

/* One stored message, as GET_MAIL shows it. */
struct stored_message {
	char sender[FROM_SENDER_MAX + 1];
	char date[11];		/* DD-MM-YYYY */
	uint64_t text_start, text_end;	/* the store's: where its text lies */
};

/* The longest address whose mailbox file name ("ADDRESS.txt", "ADDRESS.idx")
   a file system takes: 255 octets less the suffix. Longer valid addresses
   (up to ADDRESS_MAX) can have no mailbox here. */
#define STORE_ADDRESS_MAX 251

int store_open(struct store *st, const char *dir, unsigned lock_timeout);
void store_close(struct store *st);

/* 1 when the mailbox of address has reached max_mailbox already. */
int store_mailbox_full(struct store *st, const char *address);
/* 0 when n copies of a text of size octets leave min_free percent of the
   file system free, else -ENOSPC. */
int store_has_room(struct store *st, uint64_t size, size_t n);

/* Append one copy of the spooled text (already mboxrd-quoted) to the mailbox
   of each recipient, durably, or to none: 0, -EDQUOT when a copy would take
   a mailbox past max_mailbox, or -errno. The copies are appended under the
   mailboxes' locks and made durable after they are let go, so deliveries to
   one mailbox share the file's writes to disk (and a journal's commits). */
int store_deliver(struct store *st, const struct envelope *e,
		  const struct spool *text, const char *const *recipients, size_t n);

/* Set up spool s to make its file, should it need one, in the store's
   directory (spool.h): the one call that knows where that is. */
void store_spool_init(struct store *st, struct spool *s);

/* Open the mailbox of address: 0 with *mb, -ENOENT when there is none, or
   -errno. */
int store_mailbox_open(struct store *st, const char *address, struct mailbox **mb);
void store_mailbox_close(struct mailbox *mb);
/* Call each() for every message, in order. */
int store_list(struct mailbox *mb,
	       int (*each)(void *ctx, uint64_t id, const char *sender, const char *date),
	       void *ctx);
/* Find message id and copy its text, unquoted, into *text, all under the
   shared lock, so that another program rewriting the mailbox under its
   lock (mutt saving it) can never splice what is sent: 0, -ENOENT, or
   -errno. The lock is held for a disk read, not for the client; the copy
   is mb's, kept until the next copy or store_mailbox_close. */
int store_message_copy(struct mailbox *mb, uint64_t id, struct stored_message *m,
		       const struct spool **text);
/* Delete message id (from 1) of address's mailbox, durably before this
   returns, the later ones moving up one: 0, -ENOENT when there is no such
   message (or mailbox), or -errno with the mailbox as it was. */
int store_delete(struct store *st, const char *address, uint64_t id);

#endif
