/* store_internal.h: the store's own view of a mailbox open for reading and
   the calls its modules (store.c, expunge.c, maildrop.c) make of each
   other. Only files in store/ (and the tests) include it: a dialect or the
   engine sees store.h and maildrop.h. */
#ifndef MYSMTP_STORE_INTERNAL_H
#define MYSMTP_STORE_INTERNAL_H

#include "store/mbindex.h"
#include "store/store.h"

/* A mailbox open for reading. Its lock is held only while the index is
   checked and while a message is copied out (store_message_copy): a mail
   reader may rewrite the file between. */
struct mailbox {
	int fd;
	struct mbindex ix;
	uint64_t count;
	unsigned lock_timeout;
	int rebuilt;		/* the index was found damaged and made anew */
	struct spool text;	/* a message copied out (store_message_copy) */
};

/* Find message id: 0, -ENOENT when there is no such id, or -errno. */
int store_message(struct mailbox *mb, uint64_t id, struct stored_message *m);
/* Pass the message's text, unquoted, to out() in pieces. */
int store_message_text(struct mailbox *mb, const struct stored_message *m,
		       mboxrd_out out, void *ctx);

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
