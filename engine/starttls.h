/* starttls.h: TLS on a session (PROTOCOL.md section 8), for every dialect:
   the certificate and key read at the session's start, STARTTLS (refused
   when anything was sent after it, so plaintext pipelined behind it is
   never run; CVE-2011-0411), the session started afresh after the
   handshake, and implicit TLS before the greeting. */
#ifndef MYSMTP_STARTTLS_H
#define MYSMTP_STARTTLS_H

#include "engine/session.h"

/* At the session's start, when TLS is configured: read the certificate and
   key (logged when they cannot be). With implicit TLS, also run the
   handshake: 0, or -1 when the session must end without a word. */
int starttls_open(struct session *s);
void starttls_close(struct session *s);

/* Why STARTTLS cannot be taken now, for the dialect's reply. */
enum starttls_refusal { STARTTLS_OK, STARTTLS_UNAVAILABLE, STARTTLS_ACTIVE, STARTTLS_PIPELINED };
enum starttls_refusal starttls_check(const struct session *s);

/* After the dialect's "ready" reply: flush it, run the handshake, and
   start the session afresh over TLS; a failed handshake ends it. */
void starttls_handshake(struct session *s);

/* STARTTLS as a command, in the dialect's words: said[STARTTLS_OK] is its
   "ready" reply, said[STARTTLS_UNAVAILABLE] and said[STARTTLS_ACTIVE] its
   refusals; with anything sent after it the session ends. 1 when TLS
   began (the session afresh), else 0. */
int starttls_command(struct session *s, const struct said said[]);

/* 1 when STARTTLS may be offered (configured, read, not yet started). */
static inline int starttls_offered(const struct session *s)
{
	return s->tls_server && !s->tls;
}

#endif
