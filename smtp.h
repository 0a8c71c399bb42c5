/* smtp.h: one standard SMTP session (the receiving side of RFC 5321, with
   PIPELINING, SIZE, 8BITMIME and ENHANCEDSTATUSCODES), for mysmtpd -S: the
   command table, the state machine and every reply. It takes the same
   configuration, store and environment as the My_SMTP session (protocol.h)
   and stores into the same mailboxes. No sockets, no globals. */
#ifndef MYSMTP_SMTP_H
#define MYSMTP_SMTP_H

#include "protocol.h"

/* Serve one SMTP session, from the 220 greeting to close. */
enum session_end smtp_session_run(const struct config *cfg, struct store *st,
				  const struct session_env *env);

#endif
