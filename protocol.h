/* protocol.h: the My_SMTP dialect (PROTOCOL.md sections 1-2), to run on
   the session engine: session_run(cfg, store, env, &mysmtp_dialect). */
#ifndef MYSMTP_PROTOCOL_H
#define MYSMTP_PROTOCOL_H

#include "engine/session.h"

extern const struct dialect mysmtp_dialect;

#endif
