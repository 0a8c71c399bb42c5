/* protocol.h: one My_SMTP session: the command table, the state machine and
   every reply (PROTOCOL.md sections 1-2). It reads and writes the descriptors
   it is given and logs through a callback: no sockets, no globals. */
#ifndef MYSMTP_PROTOCOL_H
#define MYSMTP_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define COMMAND_LINE_MAX 512	/* octets, with the line end */

struct config {
	uint64_t max_message;		/* octets of text */
	unsigned max_recipients;
	unsigned timeout;		/* seconds without a complete line */
	unsigned max_errors;		/* consecutive 400/403 replies */
	unsigned max_junk;		/* commands in a row that neither deliver nor read mail */
	unsigned max_session;		/* seconds a session may last in all */
	int bare_lf_reject;		/* SMTP mode: refuse a bare LF, not take it as CRLF */
	int any_domain;			/* no HELO-domain rule */
	const char *const *domains;	/* served RCPT TO domains; none: any */
	size_t ndomains;
	const char *hostname;
};

typedef void (*session_log)(void *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

struct session_env {
	int in_fd, out_fd;
	const char *peer;		/* address, or "local" */
	session_log log;
	void *log_ctx;
	/* Called once the session has decided to end, before its last reply
	   is sent (NULL: nothing to tell). */
	void (*ending)(void *ctx);
	void *ending_ctx;
};

enum session_end { END_QUIT, END_EOF, END_TIMEOUT, END_ERRORS, END_IO };

/* Serve one session, from greeting to close. */
enum session_end session_run(const struct config *cfg, struct store *st,
			     const struct session_env *env);

#endif
