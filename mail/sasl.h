/* sasl.h: the PLAIN mechanism (RFC 4616) as AUTH PLAIN carries it in SMTP
   (RFC 4954) and POP3 (RFC 5034): strict base64, then "authzid NUL authcid
   NUL password"; and the fields of the LOGIN mechanism (a user name, then a
   password, each base64 on a line of its own), which Outlook and swaks use. */
#ifndef MYSMTP_SASL_H
#define MYSMTP_SASL_H

#include <stddef.h>

#define SASL_ID_MAX 320		/* octets of authzid or authcid */
#define SASL_PASSWORD_MAX 512

struct sasl_plain {
	char authzid[SASL_ID_MAX + 1];	/* "" when the client sent none */
	char authcid[SASL_ID_MAX + 1];
	char password[SASL_PASSWORD_MAX + 1];
};

/* Decode base64 text (len octets, no line end) into out[max]: the number
   of octets, or -EINVAL for anything but canonical padded base64. */
int base64_decode(const char *text, size_t len, unsigned char *out, size_t max);

/* Decode a PLAIN response: 0, or -EINVAL (bad base64, not three fields,
   a field too long or holding NUL). Wipe *p with explicit_bzero after use. */
int sasl_plain_decode(const char *text, size_t len, struct sasl_plain *p);

/* Decode one LOGIN field (base64 text, len octets) into out[max + 1], NUL
   terminated: 0, or -EINVAL (bad base64, empty, longer than max, or holding
   NUL). What it decoded on the way is wiped. */
int sasl_login_field(const char *text, size_t len, char *out, size_t max);

#endif
