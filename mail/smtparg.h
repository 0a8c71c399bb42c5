/* smtparg.h: the arguments of MAIL FROM and RCPT TO in SMTP mode (RFC 5321
   sections 4.1.1.2, 4.1.1.3 and 4.1.2; SIZE from RFC 1870, BODY from RFC
   6152): a path, in angle brackets or bare, then ESMTP parameters. */
#ifndef MYSMTP_SMTPARG_H
#define MYSMTP_SMTPARG_H

#include <stdint.h>

#include "mail/address.h"

#define SMTPARG_PARAM_MAX 32

struct smtp_path {
	char address[ADDRESS_MAX + 1];	/* "" for the null reverse-path <> */
	int has_size;			/* SIZE= was given */
	uint64_t size;			/* its value (UINT64_MAX when past it) */
	char param[SMTPARG_PARAM_MAX];	/* an unknown parameter, cut short */
};

/* What an argument is, as smtparg reads it (SMTPARG_OK is 0, the others
   below it): smtp.c maps each to its reply. */
enum smtparg_verdict {
	SMTPARG_OK = 0,
	SMTPARG_SYNTAX = -1,		/* not a path and parameters */
	SMTPARG_BAD_PATH = -2,		/* a path outside the grammar */
	SMTPARG_UNKNOWN_PARAM = -3,	/* a parameter we do not take, named in p->param */
};

/* MAIL: "FROM:<path> [SIZE=n] [BODY=7BIT|8BITMIME]". The sender is a
   dot-string local part @ a domain or address literal, kept as written, or
   <>. A verdict. */
enum smtparg_verdict smtparg_mail(const char *arg, struct smtp_path *p);

/* RCPT: "TO:<path>", no parameters. The recipient names a mailbox, so it
   must be in the grammar of address.c (normalised to lower case);
   <postmaster> is postmaster@hostname. A verdict, as smtparg_mail. */
enum smtparg_verdict smtparg_rcpt(const char *arg, const char *hostname, struct smtp_path *p);

#endif
