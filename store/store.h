/* store.h: the mail store: address -> mailbox file, locking, the all-or-nothing
   append of one message to several mailboxes, and reading messages back.
   What a dialect needs of the store is here (and in maildrop.h); no caller
   outside the store takes a lock or reads the index itself. */
#ifndef MYSMTP_STORE_H
#define MYSMTP_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "store/mbindex.h"
#include "mail/mboxrd.h"
#include "store/spool.h"

struct store {
	int dirfd;		/* the mailbox directory */
	unsigned lock_timeout;	/* seconds to wait for a mailbox lock */
	uint64_t max_mailbox;	/* octets a mailbox may grow to; 0: no limit */
	unsigned min_free;	/* percent of the file system kept free */
};

/* A mailbox open for reading. Its lock is held only while the index is
   checked and while a message is copied out (store_message_copy): a mail
   reader may rewrite the file between. */
struct mailbox {
	int fd;
	struct mbindex ix;
	uint64_t count;
	unsigned lock_timeout;
	int rebuilt;		/* the index was found damaged and made anew */
};

/* One stored message, as GET_MAIL shows it. */
struct stored_message {
	char sender[FROM_SENDER_MAX + 1];
	char date[11];		/* DD-MM-YYYY */
	uint64_t text_start, text_end;
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

/* Open the mailbox of address: 0, -ENOENT when there is none, or -errno. */
int store_mailbox_open(struct store *st, const char *address, struct mailbox *mb);
void store_mailbox_close(struct mailbox *mb);
/* Call each() for every message, in order. */
int store_list(struct mailbox *mb,
	       int (*each)(void *ctx, uint64_t id, const char *sender, const char *date),
	       void *ctx);
/* Find message id: 0, -ENOENT when there is no such id, or -errno. */
int store_message(struct mailbox *mb, uint64_t id, struct stored_message *m);
/* Find message id and copy its text, unquoted, into out, all under the
   shared lock, so that another program rewriting the mailbox under its
   lock (mutt saving it) can never splice what is sent: 0, -ENOENT, or
   -errno. The lock is held for a disk read, not for the client. */
int store_message_copy(struct mailbox *mb, uint64_t id, struct stored_message *m,
		       struct spool *out);
/* Deleting messages (expunge.c). pick() is asked of each message, with its
   number (from 1) and index entry, twice over: 1 to delete it. The kept
   messages are left octet for octet as they were, in a new file put in
   place of the old durably before this returns: 0 with *removed the number
   deleted, -ENOENT when there is no mailbox, or -errno with the mailbox as
   it was. */
typedef int (*store_pick)(void *ctx, uint64_t id, const struct mbentry *e);
int store_expunge(struct store *st, const char *address, store_pick pick, void *ctx,
		  uint64_t *removed);

/* Bring mb's index up to date under an exclusive lock, then let the lock
   go: 0 or -errno. */
int store_refresh(struct mailbox *mb);

/* Pass the message's text, unquoted, to out() in pieces. */
int store_message_text(struct mailbox *mb, const struct stored_message *m,
		       mboxrd_out out, void *ctx);

/* For a session that numbers the messages once and reads them one by one
   (POP3's maildrop.c): */
/* Hold address's mailbox against a second such session, on a file of its
   own (the mailbox's own locks are for deliveries and readers): a
   descriptor, let go by closing it; -EBUSY at once when another session
   holds it, or -errno. */
int store_hold(struct store *st, const char *address);
/* Open address's mailbox file to read, with no lock (under the lock of a
   store call under way, store_expunge's pick): a descriptor or -errno. */
int store_mailbox_file(struct store *st, const char *address);
/* Read the index entries of messages first .. first + n - 1 (0-based). */
int store_entries(const struct mailbox *mb, uint64_t first, struct mbentry *e, size_t n);
/* Copy into out the message that was number n (0-based) with entry want
   when it was read, as a mail reader gets it (record.h), or, with
   body_lines >= 0, its header section and that many lines of its body
   (TOP): under the shared lock, found by the UID of its record wherever it
   now lies, or, another program's, only in its own place. 0, -ENOENT when
   it is gone, or -errno. */
int store_record_copy(struct mailbox *mb, uint64_t n, const struct mbentry *want,
		      int64_t body_lines, struct spool *out);

#endif
