/* spool.c: where a message waits between DATA and delivery: in memory while
   small, in an unnamed temporary file (O_TMPFILE) in the mailbox directory
   beyond that, so a 10 MiB message costs no more memory than a 1 KiB one.
   Writes to the file go through the same 64 KiB, so a message of empty
   lines costs a write per 64 KiB, not per line. */
#define _GNU_SOURCE
#include "store/spool.h"
#include "net/io.h"

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
	s->held = 0;
}

void spool_reset(struct spool *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	s->error = 0;
	s->size = 0;
	s->held = 0;
}

void spool_free(struct spool *s)
{
	spool_reset(s);
	free(s->mem);
	s->mem = NULL;
}

/* Move what mem holds into the file, making the file first if need be:
   one write for up to SPOOL_MEMORY octets, however short the lines. */
static int flush_held(struct spool *s)
{
	int rc;

	if (s->fd < 0) {
		s->fd = openat(s->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (s->fd < 0)
			return -errno;
	}
	rc = write_full(s->fd, s->mem, s->held);
	s->held = 0;
	return rc;
}

void spool_write(struct spool *s, const char *data, size_t len)
{
	if (s->error)
		return;
	if (!s->mem && !(s->mem = malloc(SPOOL_MEMORY))) {
		s->error = -ENOMEM;
		return;
	}
	if (s->held + len > SPOOL_MEMORY) {
		if ((s->error = flush_held(s)) < 0)
			return;
		if (len > SPOOL_MEMORY) {	/* too big to hold: straight to the file */
			if ((s->error = write_full(s->fd, data, len)) == 0)
				s->size += len;
			return;
		}
	}
	memcpy(s->mem + s->held, data, len);
	s->held += len;
	s->size += len;
}

void spool_sink(void *spool, const char *data, size_t len)
{
	spool_write(spool, data, len);
}

int spool_feed(const struct spool *s, void (*out)(void *ctx, const char *data, size_t len),
	       void *ctx)
{
	char buf[16384];
	uint64_t off = 0, in_file = s->size - s->held;

	if (s->error)
		return s->error;
	while (off < in_file) {
		size_t want = in_file - off < sizeof buf ? (size_t)(in_file - off) : sizeof buf;
		ssize_t n = pread(s->fd, buf, want, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		out(ctx, buf, (size_t)n);
		off += (uint64_t)n;
	}
	if (s->held)
		out(ctx, s->mem, s->held);
	return 0;
}

struct fd_sink {
	int fd;
	int error;
};

static void write_sink(void *ctx, const char *data, size_t len)
{
	struct fd_sink *w = ctx;

	if (w->error == 0)
		w->error = write_full(w->fd, data, len);
}

int spool_copy_to(const struct spool *s, int fd)
{
	struct fd_sink w = { .fd = fd };
	int rc = spool_feed(s, write_sink, &w);

	return rc < 0 ? rc : w.error;
}
