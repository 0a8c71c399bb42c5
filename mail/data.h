/* data.h: the DATA phase as a byte-level state machine (PROTOCOL.md sections 1-2):
   lines end at LF (a CR right before it is dropped), a line "." ends the
   message, a leading dot is removed. Output is the text with LF line ends.
   The strict variant (SMTP mode, RFC 5321 section 4.1.1.4) ends only at
   CRLF "." CRLF: a bare LF is data that it flags, or, with normalize, a line
   end that it flags, but never a part of the end of the message. */
#ifndef MYSMTP_DATA_H
#define MYSMTP_DATA_H

#include <stddef.h>
#include <stdint.h>

typedef void (*data_out)(void *ctx, const char *text, size_t len);

struct data_rx {
	int state;
	int done;		/* the final "." line was seen */
	int has_nul;		/* the text holds a NUL octet */
	int strict;		/* lines end only at CRLF */
	int normalize;		/* strict: a bare LF ends a line as CRLF does */
	int bare_lf;		/* strict: the text holds an LF without a CR before it */
	int after_crlf;		/* strict: the last line ended in CRLF (or none came yet) */
	int dot_after_crlf;	/* strict: the line's leading dot came right after CRLF */
	uint64_t size;		/* octets of text, one per line end */
	uint64_t lines;		/* complete lines read, the final one included */
	uint64_t max_size;	/* past it, text is counted but no longer passed on */
	size_t olen;
	data_out out;
	void *ctx;
	char obuf[1024];
};

void data_rx_init(struct data_rx *d, uint64_t max_size, data_out out, void *ctx);
/* The same, for strict framing. */
void data_rx_init_strict(struct data_rx *d, uint64_t max_size, data_out out, void *ctx);
/* Consume input up to the end of the message: the number of octets used. */
size_t data_rx_feed(struct data_rx *d, const char *in, size_t len);

struct reader;
/* Feed the client's input from in to d up to the end of the message: 0,
   -ETIMEDOUT (no complete line within timeout seconds, or end_ms, the
   session's end, came), or -ENODATA when the connection ended first. */
int data_receive(struct reader *in, struct data_rx *d, unsigned timeout, uint64_t end_ms);

#endif
