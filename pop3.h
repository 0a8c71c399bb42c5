/* pop3.h: the POP3 dialect (RFC 1939 with CAPA, STLS and AUTH PLAIN), for
   mysmtpd --pop3, to run on the session engine: session_run(cfg, store,
   env, &pop3_dialect). It reads and deletes from the mailboxes the other
   dialects deliver to; it needs accounts. */
#ifndef MYSMTP_POP3_H
#define MYSMTP_POP3_H

#include "engine/session.h"

extern const struct dialect pop3_dialect;

#endif
