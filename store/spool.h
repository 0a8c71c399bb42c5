/* spool.h: where a message waits between DATA and delivery: in memory while
   small, in an unnamed temporary file in the mailbox directory beyond that. */
#ifndef MYSMTP_SPOOL_H
#define MYSMTP_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#define SPOOL_MEMORY (64 * 1024)

struct spool {
	int dirfd;		/* where the temporary file is made */
	int fd;			/* the temporary file, or -1 while in memory */
	int error;		/* first error (-errno) */
	uint64_t size;		/* octets spooled in all */
	char *mem;		/* SPOOL_MEMORY octets, allocated on first use: the
				   whole text while small, then the file's write buffer */
	size_t held;		/* octets in mem not (yet) in the file */
};

void spool_init(struct spool *s, int dirfd);
void spool_reset(struct spool *s);
void spool_free(struct spool *s);
/* Append; an error is kept in s->error and later appends are dropped. */
void spool_write(struct spool *s, const char *data, size_t len);
/* Write the whole spooled text to fd at its current offset: 0 or -errno. */
int spool_copy_to(const struct spool *s, int fd);
/* Pass the whole spooled text to out() in pieces: 0 or -errno. */
int spool_feed(const struct spool *s, void (*out)(void *ctx, const char *data, size_t len),
	       void *ctx);
/* Append a spool_write-shaped callback for from_quoter and data_rx. */
void spool_sink(void *spool, const char *data, size_t len);

#endif
