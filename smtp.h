/* smtp.h: the standard SMTP dialect (the receiving side of RFC 5321, with
   PIPELINING, SIZE, 8BITMIME and ENHANCEDSTATUSCODES), for mysmtpd -S, to
   run on the session engine: session_run(cfg, store, env, &smtp_dialect).
   It stores into the same mailboxes as the My_SMTP dialect. */
#ifndef MYSMTP_SMTP_H
#define MYSMTP_SMTP_H

#include "engine/session.h"

extern const struct dialect smtp_dialect;

#endif
