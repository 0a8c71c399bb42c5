/* starttls.h: TLS on a session (PROTOCOL.md section 8), for every dialect:
   the certificate and key read at the session's start, STARTTLS (refused
   when anything was sent after it, so plaintext pipelined behind it is
   never run; CVE-2011-0411), and implicit TLS before the greeting. After
   the handshake the dialect starts its session afresh. A dialect keeps a
   struct starttls in its own state and calls these. */
#ifndef MYSMTP_STARTTLS_H
#define MYSMTP_STARTTLS_H

#include "engine/session_io.h"

struct tlsio;

struct starttls {
	struct session *s;		/* the session it serves */
	struct tlsio *server;		/* made at the session's start; NULL: no TLS */
};

/* At the session's start, when TLS is configured: read the certificate and
   key (logged when they cannot be). With implicit TLS, also run the
   handshake: 0, or -1 when the session must end without a word. */
int starttls_open(struct starttls *t, struct session *s);
/* Once the session's last reply is sent. */
void starttls_close(struct starttls *t);

/* Why STARTTLS cannot be taken now, for the dialect's reply. */
enum starttls_refusal { STARTTLS_OK, STARTTLS_UNAVAILABLE, STARTTLS_ACTIVE, STARTTLS_PIPELINED };
enum starttls_refusal starttls_check(const struct starttls *t);

/* After the dialect's "ready" reply: flush it and run the handshake; a
   failed one ends the session. 0, or -1. */
int starttls_handshake(struct starttls *t);

/* STARTTLS as a command, in the dialect's words: said[STARTTLS_OK] is its
   "ready" reply, said[STARTTLS_UNAVAILABLE] and said[STARTTLS_ACTIVE] its
   refusals; with anything sent after it the session ends. 1 when TLS
   began, and the dialect must start its session afresh (no HELO, no
   transaction, no login: RFC 3207 section 4.2), else 0. */
int starttls_command(struct starttls *t, const struct said said[]);

/* 1 when STARTTLS may be offered (configured, read, not yet started). */
int starttls_offered(const struct starttls *t);

#endif
