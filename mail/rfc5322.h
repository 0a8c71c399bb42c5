/* rfc5322.h: the little of RFC 5322 that a delivery needs to know about a
   message as it streams into the spool (SMTP mode, and a My_SMTP text that
   opens with its own header block): whether it opens with a header section
   that an empty line ends, where that line ends, and whether the section
   has a Date, a Message-ID and a From field, and one of the fields that
   make a My_SMTP text's header block its own. The text passes through
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
	int has_date, has_message_id, has_from;
	int has_key;		/* a From, To, Subject, Date, Message-ID or
				   MIME-Version field: what makes a header
				   section of a My_SMTP text (rfc5322_headed) */
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
/* Once the text is all fed: does it open with a header section of its own
   (PROTOCOL.md, amendments of turn three): lines of header fields and their
   continuations up to an empty line, one of them a field that only a
   message's header has (From, To, Subject, Date, Message-ID,
   MIME-Version)? So "PS: call me", then an empty line, stays text. */
int rfc5322_headed(const struct msg_scan *m);

#endif
