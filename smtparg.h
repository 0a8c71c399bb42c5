/* smtparg.h: the arguments of MAIL FROM and RCPT TO in SMTP mode (RFC 5321
   sections 4.1.1.2, 4.1.1.3 and 4.1.2; SIZE from RFC 1870, BODY from RFC
   6152): a path, in angle brackets or bare, then ESMTP parameters. */
#ifndef MYSMTP_SMTPARG_H
#define MYSMTP_SMTPARG_H

#include <stdint.h>

#include "address.h"

#define SMTPARG_PARAM_MAX 32

struct smtp_path {
	char address[ADDRESS_MAX + 1];	/* "" for the null reverse-path <> */
	int has_size;			/* SIZE= was given */
	uint64_t size;			/* its value (UINT64_MAX when past it) */
	char param[SMTPARG_PARAM_MAX];	/* an unknown parameter, cut short */
};

/* MAIL: "FROM:<path> [SIZE=n] [BODY=7BIT|8BITMIME]". The sender is a
   dot-string local part @ a domain or address literal, kept as written, or
   <>. 0; -EINVAL bad syntax; -EDOM a sender outside that grammar; -ENOTSUP
   an unknown parameter, named in p->param. */
int smtparg_mail(const char *arg, struct smtp_path *p);

/* RCPT: "TO:<path>", no parameters. The recipient names a mailbox, so it
   must be in the grammar of address.c (normalised to lower case);
   <postmaster> is postmaster@hostname. Errors as smtparg_mail. */
int smtparg_rcpt(const char *arg, const char *hostname, struct smtp_path *p);

#endif
