/* mbindex.h: the index beside each mbox, so LIST and GET_MAIL cost the same
   however many messages come before the one asked for. The mbox stays the
   truth: a missing, foreign or stale index is rebuilt or extended from it. */
#ifndef MYSMTP_MBINDEX_H
#define MYSMTP_MBINDEX_H

#include <stddef.h>
#include <stdint.h>

struct mbindex {
	int fd;			/* the .idx file */
	uint64_t count;		/* messages indexed */
	uint64_t covered;	/* mbox octets they cover, from 0 */
	uint64_t inode;		/* of the mbox the index was made for */
	uint64_t next_uid;	/* the UID the next delivery writes */
	uint64_t last_uid;	/* the largest of our records' UIDs indexed */
	uint64_t next_foreign;	/* for a message without a UID of ours */
	int usable;		/* count and covered describe the file */
	int former;		/* it is of the former format, made for this mbox */
};

/* What the index holds of one message. Its UID is the one in its record
   (MBOXRD_UID) when that is larger than every UID before it; else (another
   program's message, or a copy of one of ours) one the index gives it,
   with MBINDEX_FOREIGN set, which lasts only as long as the index does. */
struct mbentry {
	uint64_t offset;	/* where its "From " line starts */
	uint64_t uid;
	uint64_t octets;	/* what POP3's RETR sends of it (record.h) */
};
#define MBINDEX_FOREIGN (1ULL << 63)

/* Under any lock: 1 when the index covers the whole mbox, 0 when it must be
   refreshed, -errno. */
int mbindex_check(struct mbindex *ix, int mbox_fd);
/* Under an exclusive lock: bring the index up to date (or, with rebuild, make
   it anew), cutting a torn last message off the mbox; a delivery calls it
   after its append. 0 or -errno. A rebuilt index keeps the UID counters of
   the one it replaces when its header is whole, so no UID is given twice;
   one of the former format also keeps each entry's UID where its offset
   still starts a message, so no UIDL changes. */
int mbindex_refresh(struct mbindex *ix, int mbox_fd, int rebuild);
/* Where message id (1-based) lies: 0 and [*start, *end), -ENOENT, or
   -ESTALE when the index is damaged there and must be rebuilt. */
int mbindex_locate(const struct mbindex *ix, uint64_t id, uint64_t *start, uint64_t *end);
/* Read the offsets of messages first .. first + n - 1 (0-based); -ESTALE
   as for mbindex_locate. */
int mbindex_read(const struct mbindex *ix, uint64_t first, uint64_t *offsets, size_t n);
/* The same, whole entries. */
int mbindex_entries(const struct mbindex *ix, uint64_t first, struct mbentry *e, size_t n);

/* A new index in the empty file fd, for a mailbox file of inode inode made
   from old's (a deletion): its UID counters go on from old's. Add entries
   with mbindex_add, then mbindex_finish it. */
void mbindex_start(struct mbindex *nx, int fd, uint64_t inode, const struct mbindex *old);
int mbindex_add(struct mbindex *nx, const struct mbentry *e, size_t n);
int mbindex_finish(struct mbindex *nx, uint64_t covered);

#endif
