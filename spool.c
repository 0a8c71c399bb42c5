/* spool.c: where a message waits between DATA and delivery: in memory while
   small, in an unnamed temporary file (O_TMPFILE) in the mailbox directory
   beyond that, so a 10 MiB message costs no more memory than a 1 KiB one. */
#define _GNU_SOURCE
#include "spool.h"
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void spool_init(struct spool *s, int dirfd)
{
	s->dirfd = dirfd;
	s->fd = -1;
	s->error = 0;
	s->size = 0;
	s->mem = NULL;
}

void spool_reset(struct spool *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	s->error = 0;
	s->size = 0;
}

void spool_free(struct spool *s)
{
	spool_reset(s);
	free(s->mem);
	s->mem = NULL;
}

/* Move the text from memory into a new temporary file. */
static int spill(struct spool *s)
{
	int fd = openat(s->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	int rc;

	if (fd < 0)
		return -errno;
	rc = write_full(fd, s->mem, (size_t)s->size);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	s->fd = fd;
	return 0;
}

void spool_write(struct spool *s, const char *data, size_t len)
{
	if (s->error)
		return;
	if (s->fd < 0 && s->size + len <= SPOOL_MEMORY) {
		if (!s->mem && !(s->mem = malloc(SPOOL_MEMORY))) {
			s->error = -ENOMEM;
			return;
		}
		memcpy(s->mem + s->size, data, len);
		s->size += len;
		return;
	}
	if (s->fd < 0 && (s->error = spill(s)) < 0)
		return;
	s->error = write_full(s->fd, data, len);
	if (s->error == 0)
		s->size += len;
}

void spool_sink(void *spool, const char *data, size_t len)
{
	spool_write(spool, data, len);
}

int spool_copy_to(const struct spool *s, int fd)
{
	char buf[16384];
	uint64_t off = 0;

	if (s->error)
		return s->error;
	if (s->fd < 0)
		return s->size ? write_full(fd, s->mem, (size_t)s->size) : 0;
	while (off < s->size) {
		ssize_t n = pread(s->fd, buf, sizeof buf, (off_t)off);
		int rc;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		if ((rc = write_full(fd, buf, (size_t)n)) < 0)
			return rc;
		off += (uint64_t)n;
	}
	return 0;
}
