/* io.c: buffered reading and writing on a descriptor, or through a transport
   (TLS) over it, every wait bounded by a deadline. Reads use poll() with the
   caller's deadline; writes wait at most timeout_ms for the peer. */
#include "net/io.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint64_t io_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t io_deadline(unsigned seconds, uint64_t cap_ms)
{
	uint64_t t = io_now_ms() + seconds * 1000ULL;

	return t < cap_ms ? t : cap_ms;
}

/* What the peer sent in time is never lost to the time the server took. */
int io_wait(int fd, short events, uint64_t deadline_ms)
{
	for (;;) {
		uint64_t now = io_now_ms();
		struct pollfd p = { .fd = fd, .events = events };
		int left = now >= deadline_ms ? 0 :
			   deadline_ms - now > 60000 ? 60000 : (int)(deadline_ms - now);
		int n = poll(&p, 1, left);

		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n == 0 && left == 0)
			return -ETIMEDOUT;
	}
}

void writer_init(struct writer *w, int fd, unsigned timeout_ms)
{
	struct stat st;

	w->fd = fd;
	w->is_socket = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
	w->timeout_ms = timeout_ms;
	w->error = 0;
	w->via = NULL;
	w->len = 0;
}

void writer_set_transport(struct writer *w, const struct io_transport *via)
{
	w->via = via;
}

/* One read (or write) through via, waiting on fd as it asks. */
static ssize_t move_via(const struct io_transport *via, int fd, void *buf, size_t len,
			uint64_t deadline_ms, int writing)
{
	for (;;) {
		short events = writing ? POLLOUT : POLLIN;
		ssize_t n = writing ? via->write(via->ctx, buf, len, &events) :
				      via->read(via->ctx, buf, len, &events);
		int rc;

		if (n != -EAGAIN)
			return n;
		if ((rc = io_wait(fd, events, deadline_ms)) < 0)
			return rc;
	}
}

ssize_t io_write_via(const struct io_transport *via, int fd, const void *buf, size_t len,
		     uint64_t deadline_ms)
{
	return move_via(via, fd, (void *)buf, len, deadline_ms, 1);
}

ssize_t io_read_via(const struct io_transport *via, int fd, void *buf, size_t len,
		    uint64_t deadline_ms)
{
	return move_via(via, fd, buf, len, deadline_ms, 0);
}

/* Write all of data to the peer, waiting at most timeout_ms in all. */
static int writer_send(struct writer *w, const char *data, size_t len)
{
	uint64_t deadline = io_now_ms() + w->timeout_ms;

	while (len > 0 && w->via) {
		ssize_t n = io_write_via(w->via, w->fd, data, len, deadline);

		if (n <= 0)
			return n == 0 ? -EIO : (int)n;
		data += n;
		len -= (size_t)n;
	}
	while (len > 0) {
		ssize_t n;
		int rc;

		if (w->is_socket)
			n = send(w->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		else
			n = write(w->fd, data, len);
		if (n > 0) {
			data += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
			return n == 0 ? -EIO : -errno;
		rc = io_wait(w->fd, POLLOUT, deadline);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int writer_flush(struct writer *w)
{
	if (w->error == 0 && w->len > 0)
		w->error = writer_send(w, w->buf, w->len);
	w->len = 0;
	return w->error;
}

void writer_put(struct writer *w, const char *data, size_t len)
{
	while (len > 0 && w->error == 0) {
		size_t room = sizeof w->buf - w->len;
		size_t n = len < room ? len : room;

		memcpy(w->buf + w->len, data, n);
		w->len += n;
		data += n;
		len -= n;
		if (w->len == sizeof w->buf)
			writer_flush(w);
	}
}

/* Write all of data to a file, retrying short writes and EINTR: 0 or -errno. */
int write_full(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

void reader_init(struct reader *r, int fd, struct writer *flush_first)
{
	r->fd = fd;
	r->flush_first = flush_first;
	r->via = NULL;
	r->start = r->end = 0;
}

/* Forget what the buffer holds, wiping it: the bytes handed out are gone
   before the buffer takes more, so a line that came in pieces (a password)
   leaves none of them behind, whatever became of the line. */
static void reader_drop(struct reader *r)
{
	explicit_bzero(r->buf, r->end);
	r->start = r->end = 0;
}

void reader_set_transport(struct reader *r, const struct io_transport *via)
{
	r->via = via;
	reader_drop(r);
}

int reader_fill(struct reader *r, uint64_t deadline_ms)
{
	if (r->start < r->end)
		return 1;
	reader_drop(r);
	if (r->flush_first)
		writer_flush(r->flush_first);
	if (r->via) {
		ssize_t n = io_read_via(r->via, r->fd, r->buf, sizeof r->buf, deadline_ms);

		if (n > 0)
			r->end = (size_t)n;
		return n > 0 ? 1 : (int)n;
	}
	for (;;) {
		ssize_t n;
		int rc = io_wait(r->fd, POLLIN, deadline_ms);

		if (rc < 0)
			return rc;
		n = read(r->fd, r->buf, sizeof r->buf);
		if (n > 0) {
			r->end = (size_t)n;
			return 1;
		}
		if (n == 0)
			return 0;
		if (errno != EINTR && errno != EAGAIN)
			return -errno;
	}
}

int reader_ready(struct reader *r)
{
	short events = POLLIN;
	ssize_t n;

	if (r->start < r->end)
		return 1;
	if (!r->via)
		return 0;
	reader_drop(r);
	n = r->via->read(r->via->ctx, r->buf, sizeof r->buf, &events);
	if (n > 0)
		r->end = (size_t)n;
	return n != -EAGAIN || events != POLLIN;	/* a write first: the fill sees to it */
}

void reader_wipe_used(struct reader *r)
{
	explicit_bzero(r->buf, r->start);
}

void reader_wipe(struct reader *r)
{
	explicit_bzero(r->buf, sizeof r->buf);
	r->start = r->end = 0;
}

/* Skip input up to and including the next LF. */
static int reader_skip_line(struct reader *r, uint64_t deadline_ms)
{
	for (;;) {
		int rc = reader_fill(r, deadline_ms);
		char *lf;

		if (rc <= 0)
			return rc == 0 ? -ENODATA : rc;
		lf = memchr(r->buf + r->start, '\n', r->end - r->start);
		if (lf) {
			r->start = (size_t)(lf - r->buf) + 1;
			return 1;
		}
		r->start = r->end;
	}
}

int reader_line_crlf(struct reader *r, char *line, size_t max, uint64_t deadline_ms, int *crlf)
{
	size_t len = 0;

	*crlf = 0;
	for (;;) {
		int rc = reader_fill(r, deadline_ms);
		size_t avail, take;
		char *lf;

		if (rc <= 0)
			return rc == 0 ? -ENODATA : rc;
		avail = r->end - r->start;
		lf = memchr(r->buf + r->start, '\n', avail);
		take = lf ? (size_t)(lf - (r->buf + r->start)) : avail;
		if (len + take + (lf ? 1 : 0) > max) {
			if (lf) {
				r->start += take + 1;
				return -E2BIG;
			}
			r->start = r->end;
			rc = reader_skip_line(r, deadline_ms);
			return rc < 0 ? rc : -E2BIG;
		}
		memcpy(line + len, r->buf + r->start, take);
		len += take;
		r->start += take;
		if (lf) {
			r->start++;
			*crlf = len > 0 && line[len - 1] == '\r';
			if (*crlf)
				len--;
			line[len] = '\0';
			return (int)len;
		}
	}
}
