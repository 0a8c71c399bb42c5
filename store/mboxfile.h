/* mboxfile.h: mailbox files opened relative to the mailbox directory, never
   through a symbolic link and only when they are regular files with one
   link, and locked with fcntl (open file description) locks: writers
   exclusive, readers shared, each wait bounded; and replaced whole by a
   deletion. No file but this one and store.c takes a lock. */
#ifndef MYSMTP_MBOXFILE_H
#define MYSMTP_MBOXFILE_H

#include <stddef.h>

#include "store/mbindex.h"

/* The name of address's file with suffix (".txt", ".idx", ...): 0 or
   -ENAMETOOLONG. */
int mboxfile_name(char *buf, size_t size, const char *address, const char *suffix);

/* Lock the whole file (type F_RDLCK or F_WRLCK), waiting at most timeout
   seconds: 0, -ETIMEDOUT or -errno. */
int mboxfile_lock(int fd, short type, unsigned timeout);
void mboxfile_unlock(int fd);

/* 0 for a regular file with one link; -ESTALE with none (unlinked, or
   replaced by a deletion), -EMLINK with more, -EPERM when not regular. */
int mboxfile_check(int fd);

/* Open name in dirfd without following a link; with O_CREAT, make it (mode
   0600) when it is missing and say whether this call made it. */
int mboxfile_open(int dirfd, const char *name, int flags, int *created);

/* Open and lock address's mailbox, then its index; a file unlinked or
   replaced while we waited for its lock is opened again, so what is locked
   is what the name points to. how: MBOXFILE_WRITE for an exclusive lock
   (else shared), MBOXFILE_CREATE to make a missing mailbox. */
enum { MBOXFILE_WRITE = 1, MBOXFILE_CREATE = 2 };
int mboxfile_open_locked(int dirfd, unsigned timeout, const char *address, int how,
			 int *fd_out, struct mbindex *ix, int *created);

/* Hold address's mailbox for one session that must have it alone (POP3),
   by an exclusive lock on a file of its own, ADDRESS.pop: the mailbox file
   is replaced by every deletion, and its own locks are for deliveries and
   readers, who must not be kept out. The descriptor (closing it lets go),
   -EBUSY at once when another session holds it, or -errno. */
int mboxfile_hold(int dirfd, const char *address);

/* Put a new mailbox and its index, unnamed files already synced, in place
   of address's: the index first, the mailbox locked before it has a name,
   so no one reads it before it is done. 0 or -errno; the caller syncs the
   directory. */
int mboxfile_replace(int dirfd, const char *address, int mbox_fd, int idx_fd);

#endif
