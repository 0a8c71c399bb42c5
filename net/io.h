/* io.h: buffered reading and writing on a descriptor, or through a transport
   (TLS) over it, every wait bounded by a deadline. */
#ifndef MYSMTP_IO_H
#define MYSMTP_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define IO_BUFSIZE 4096

/* A layer the bytes go through instead of the bare descriptor (TLS, in
   tlsio.c). Each call moves what it can without blocking: octets > 0, 0 at
   the end, or -errno; -EAGAIN with *events what to wait for on the
   descriptor before trying again. A read is always tried before any wait,
   so what the layer holds already is never left behind a poll(). */
struct io_transport {
	ssize_t (*read)(void *ctx, void *buf, size_t len, short *events);
	ssize_t (*write)(void *ctx, const void *buf, size_t len, short *events);
	void *ctx;
};

/* Output buffer; flushed when full, before every blocking read, and on demand. */
struct writer {
	int fd;
	int is_socket;		/* use send(MSG_DONTWAIT | MSG_NOSIGNAL) */
	unsigned timeout_ms;	/* longest wait for the peer to take data */
	int error;		/* first error (-errno); later writes are dropped */
	const struct io_transport *via;	/* NULL: the descriptor itself */
	size_t len;
	char buf[IO_BUFSIZE];
};

/* Input buffer. */
struct reader {
	int fd;
	struct writer *flush_first;	/* flushed before the reader blocks */
	const struct io_transport *via;	/* NULL: the descriptor itself */
	size_t start, end;
	char buf[IO_BUFSIZE];
};

#define IO_NO_DEADLINE UINT64_MAX

uint64_t io_now_ms(void);
/* Wait until fd is ready for events (POLLIN, POLLOUT) or deadline_ms has
   passed: 1 ready, -ETIMEDOUT, or -errno. A descriptor that is ready
   already counts even past the deadline. */
int io_wait(int fd, short events, uint64_t deadline_ms);
/* The deadline seconds from now, but never past cap_ms (io_now_ms scale). */
uint64_t io_deadline(unsigned seconds, uint64_t cap_ms);

void writer_init(struct writer *w, int fd, unsigned timeout_ms);
void writer_put(struct writer *w, const char *data, size_t len);
int writer_flush(struct writer *w);
/* Write all of data, retrying short writes and EINTR: 0 or -errno. */
int write_full(int fd, const void *data, size_t len);
/* Read exactly len octets at off: 0, -ENODATA when the file ends first, or -errno. */
int pread_full(int fd, void *buf, size_t len, uint64_t off);
/* Write all of buf at off: 0 or -errno. */
int pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

void reader_init(struct reader *r, int fd, struct writer *flush_first);
/* From now on read through via (NULL: the descriptor), dropping what the
   buffer holds unread: bytes sent before TLS never count after it. */
void reader_set_transport(struct reader *r, const struct io_transport *via);
/* From now on write through via (NULL: the descriptor). */
void writer_set_transport(struct writer *w, const struct io_transport *via);
/* One read or write through via, waiting on fd as it asks until
   deadline_ms: octets > 0, 0 at the end, or -errno. */
ssize_t io_read_via(const struct io_transport *via, int fd, void *buf, size_t len,
		    uint64_t deadline_ms);
ssize_t io_write_via(const struct io_transport *via, int fd, const void *buf, size_t len,
		     uint64_t deadline_ms);

/* Wait until the buffer holds unread bytes: 1 when it does, 0 at end of input,
   -ETIMEDOUT once deadline_ms (io_now_ms scale) has passed, or another -errno.
   The bytes read before are wiped before the buffer is filled again. */
int reader_fill(struct reader *r, uint64_t deadline_ms);
/* 1 when a read would not wait on the descriptor: the buffer holds unread
   octets, or the transport held some already (taken into the buffer now,
   without waiting; TLS keeps decrypted octets the descriptor no longer
   shows, and libtls has no call that says so), or it says the input ended
   or failed, or must write first (the next fill sees to it). 0 when only the descriptor can
   bring more. */
int reader_ready(struct reader *r);
/* Read one line into line[max]: its length without the line end (a CR right
   before the LF is dropped); -E2BIG when it held more than max octets with its
   line end (the rest is skipped up to the LF, never buffered); -ENODATA at end
   of input; -ETIMEDOUT or another -errno. *crlf says how the line ended:
   1 CRLF, 0 a bare LF. */
int reader_line_crlf(struct reader *r, char *line, size_t max, uint64_t deadline_ms, int *crlf);

/* The unread bytes in the buffer, and using them up. */
static inline const char *reader_data(const struct reader *r, size_t *len)
{
	*len = r->end - r->start;
	return r->buf + r->start;
}

static inline void reader_consume(struct reader *r, size_t n)
{
	r->start += n;
}

/* Wipe what was read from the buffer already (a password). What earlier
   fills held is wiped by the reader itself before each new one, so this
   and a wipe of the caller's copy leave nothing of a line that came in
   pieces, or of one skipped as too long. */
void reader_wipe_used(struct reader *r);
/* Wipe the whole buffer, unread bytes too (the end of a session: a
   listener's worker serves the next one on the same stack). */
void reader_wipe(struct reader *r);

#endif
