/* mboxfile.c: mailbox files opened safely, locked and replaced
   (mboxfile.h): every lock the store takes on a file is taken here or in
   store.c. */
#define _GNU_SOURCE
#include "store/mboxfile.h"
#include "mail/address.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define OPEN_TRIES 8

int mboxfile_name(char *buf, size_t size, const char *address, const char *suffix)
{
	int n = snprintf(buf, size, "%s%s", address, suffix);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static volatile sig_atomic_t lock_timed_out;

static void on_lock_alarm(int sig)
{
	(void)sig;
	lock_timed_out = 1;
}

/* Take an fcntl (open file description) lock on the whole file, waiting at
   most timeout seconds: 0, -ETIMEDOUT or -errno. */
int mboxfile_lock(int fd, short type, unsigned timeout)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET };
	struct sigaction sa = { .sa_handler = on_lock_alarm }, old_sa;
	struct itimerval timer = { .it_value = { .tv_sec = timeout },
				   .it_interval = { .tv_usec = 100000 } };
	struct itimerval off = { { 0, 0 }, { 0, 0 } }, old_timer;
	int rc, err;

	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	if (errno != EAGAIN && errno != EACCES)
		return -errno;
	if (timeout == 0)
		return -ETIMEDOUT;
	lock_timed_out = 0;
	sigaction(SIGALRM, &sa, &old_sa);
	setitimer(ITIMER_REAL, &timer, &old_timer);
	do
		rc = fcntl(fd, F_OFD_SETLKW, &fl);
	while (rc < 0 && errno == EINTR && !lock_timed_out);
	err = errno;
	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old_sa, NULL);
	if (rc == 0)
		return 0;
	return err == EINTR ? -ETIMEDOUT : -err;
}

void mboxfile_unlock(int fd)
{
	struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET };

	fcntl(fd, F_OFD_SETLK, &fl);
}

/* Refuse anything but a regular file with exactly one link. */
int mboxfile_check(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EPERM;
	return st.st_nlink == 1 ? 0 : st.st_nlink == 0 ? -ESTALE : -EMLINK;
}

/* Open name in dirfd without following a link; with O_CREAT, make it when
   it is missing and say whether this call made it. */
int mboxfile_open(int dirfd, const char *name, int flags, int *created)
{
	int base = O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;

	*created = 0;
	for (int tries = 0; tries < OPEN_TRIES; tries++) {
		int fd = openat(dirfd, name, base | (flags & ~O_CREAT));

		if (fd >= 0)
			return fd;
		if (errno != ENOENT || !(flags & O_CREAT))
			return -errno;
		fd = openat(dirfd, name, base | flags | O_EXCL, 0600);
		if (fd >= 0) {
			*created = 1;
			return fd;
		}
		if (errno != EEXIST)
			return -errno;
	}
	return -ESTALE;
}

int mboxfile_open_locked(int dirfd, unsigned timeout, const char *address, int how,
			 int *fd_out, struct mbindex *ix, int *created)
{
	char name[ADDRESS_MAX + 8], idx[ADDRESS_MAX + 8];
	int flags = how & MBOXFILE_CREATE ? O_RDWR | O_CREAT : O_RDWR;	/* a reader may mend the index */
	int rc;

	if ((rc = mboxfile_name(name, sizeof name, address, ".txt")) < 0 ||
	    (rc = mboxfile_name(idx, sizeof idx, address, ".idx")) < 0)
		return rc;
	for (int tries = 0; tries < OPEN_TRIES; tries++) {
		int fd = mboxfile_open(dirfd, name, flags, created), idx_created;

		if (fd < 0)
			return fd;
		rc = mboxfile_check(fd);
		if (rc == 0)
			rc = mboxfile_lock(fd, how & MBOXFILE_WRITE ? F_WRLCK : F_RDLCK, timeout);
		if (rc == 0)
			rc = mboxfile_check(fd);
		if (rc == 0) {
			ix->fd = mboxfile_open(dirfd, idx, O_RDWR | O_CREAT, &idx_created);
			rc = ix->fd < 0 ? ix->fd : mboxfile_check(ix->fd);
			if (rc == 0) {
				*fd_out = fd;
				return 0;
			}
			if (ix->fd >= 0)
				close(ix->fd);
			ix->fd = -1;
			if (*created)	/* ours and still locked: take it back */
				unlinkat(dirfd, name, 0);
		}
		close(fd);
		if (rc != -ESTALE)
			return rc;
	}
	return -ESTALE;
}

int mboxfile_hold(int dirfd, const char *address)
{
	char name[ADDRESS_MAX + 8];
	int created, fd, rc = mboxfile_name(name, sizeof name, address, ".pop");

	if (rc < 0)
		return rc;
	fd = mboxfile_open(dirfd, name, O_RDWR | O_CREAT, &created);
	if (fd < 0)
		return fd;
	if ((rc = mboxfile_check(fd)) == 0 && (rc = mboxfile_lock(fd, F_WRLCK, 0)) == -ETIMEDOUT)
		rc = -EBUSY;		/* at once: another session holds it */
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

/* Give the unnamed file fd the name ADDRESS + suffix, replacing the file
   that has it, by way of ADDRESS.tmp (left over only by a crash). */
static int install(int dirfd, const char *address, int fd, const char *suffix)
{
	char tmp[ADDRESS_MAX + 8], name[ADDRESS_MAX + 8], proc[64];
	int rc;

	if ((rc = mboxfile_name(tmp, sizeof tmp, address, ".tmp")) < 0 ||
	    (rc = mboxfile_name(name, sizeof name, address, suffix)) < 0)
		return rc;
	if (unlinkat(dirfd, tmp, 0) < 0 && errno != ENOENT)
		return -errno;
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	if (linkat(fd, "", dirfd, tmp, AT_EMPTY_PATH) < 0 &&
	    linkat(AT_FDCWD, proc, dirfd, tmp, AT_SYMLINK_FOLLOW) < 0)
		return -errno;
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		rc = -errno;
		unlinkat(dirfd, tmp, 0);
		return rc;
	}
	return 0;
}

int mboxfile_replace(int dirfd, const char *address, int mbox_fd, int idx_fd)
{
	int rc;

	/* Locked before it has a name: no one reads it before it is done. */
	if ((rc = mboxfile_lock(mbox_fd, F_WRLCK, 0)) < 0 ||
	    (rc = install(dirfd, address, idx_fd, ".idx")) < 0)
		return rc;
	return install(dirfd, address, mbox_fd, ".txt");
}
