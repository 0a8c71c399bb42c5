/* rfc5322.h: the little of RFC 5322 that SMTP mode needs to know about a
   message as it streams into the spool: whether it opens with a header
   section that an empty line ends, where that line ends, and whether the
   section has a Date and a Message-ID field. The text passes through
   unchanged; memory stays constant. */
#ifndef MYSMTP_RFC5322_H
#define MYSMTP_RFC5322_H

#include <stddef.h>
#include <stdint.h>

typedef void (*msg_scan_out)(void *ctx, const char *data, size_t len);

struct msg_scan {
	int state;
	int in_header;		/* so far a valid header section */
	unsigned long fields;	/* header fields seen */
	int has_date, has_message_id;
	uint64_t pos;		/* octets seen */
	uint64_t body_start;	/* octets up to and with the empty line that
				   ends the header section; 0 until one does */
	size_t name_len;	/* of the field name on this line so far */
	char name[16];		/* its first octets, in lower case */
	msg_scan_out out;
	void *ctx;
};

void msg_scan_init(struct msg_scan *m, msg_scan_out out, void *ctx);
/* Look at data (LF line ends) and pass it on to out. */
void msg_scan_feed(struct msg_scan *m, const char *data, size_t len);
/* The same in the shape of an output callback (ctx is the msg_scan). */
void msg_scan_sink(void *scan, const char *data, size_t len);

#endif
