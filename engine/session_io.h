/* session_io.h: what a session feature (login, STARTTLS, delivery) may use
   of the session it serves: the configuration, the peer and the log, a
   line out and a reply in the dialect's words, a line in with the
   session's deadlines, the transport, and the session's end. session.c
   implements it; a feature never sees the command loop or the dialect's
   table, and sees another feature only through that one's header
   (delivery asks login who is logged in). */
#ifndef MYSMTP_SESSION_IO_H
#define MYSMTP_SESSION_IO_H

#include <stddef.h>
#include <stdint.h>

#include "net/io.h"

struct config {
	uint64_t max_message;		/* octets of text */
	unsigned max_recipients;
	unsigned timeout;		/* seconds without a complete line */
	unsigned max_errors;		/* consecutive client errors */
	unsigned max_junk;		/* commands in a row that neither deliver nor read mail */
	unsigned max_session;		/* seconds a session may last in all */
	int bare_lf_reject;		/* SMTP mode: refuse a bare LF, not take it as CRLF */
	int any_domain;			/* no HELO-domain rule */
	int open_delete;		/* DELETE also without accounts */
	const char *const *domains;	/* served RCPT TO domains; none: any */
	size_t ndomains;
	const char *hostname;
	const char *accounts_file;	/* --accounts; NULL: the open demo of sections 1-6 */
	int allow_plaintext_auth;	/* passwords also over plaintext from non-local peers */
	unsigned auth_failure_delay_ms;	/* before the reply to a failed login */
	const char *tls_cert, *tls_key;	/* PEM files: STARTTLS offered; NULL: no TLS */
	int tls_implicit;		/* TLS before the greeting (ports 465, 995) */
	int submission;			/* SMTP: MAIL only after AUTH (RFC 6409, port 587) */
};

typedef void (*session_log)(void *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

struct session_env {
	int in_fd, out_fd;
	const char *peer;		/* address, or "local" */
	session_log log;
	void *log_ctx;
	/* Called once the session's last reply is written but for its last
	   octet (NULL: nothing to tell). */
	void (*ending)(void *ctx);
	void *ending_ctx;
};

enum session_end { END_QUIT, END_EOF, END_TIMEOUT, END_ERRORS, END_IO };

/* Why the engine ends a session: the dialect says each in its own words. */
enum ending { ENDING_TIMEOUT, ENDING_LIFETIME, ENDING_ERRORS, ENDING_JUNK, ENDING_AUTH,
	      ENDING_PIPELINED_TLS };

/* A reply in a dialect's words, for tables indexed by an outcome. */
struct said {
	int code;
	const char *text;
};

struct session;

const struct config *session_config(const struct session *s);
const struct session_env *session_env(const struct session *s);
#define LOG(s, ...) (session_env(s)->log(session_env(s)->log_ctx, __VA_ARGS__))

/* Send one line, CRLF added. */
void session_send_line(struct session *s, const char *line, size_t len);
/* Reply with code and text, in the dialect's form and counts. */
void session_reply(struct session *s, int code, const char *text);
/* Read one line of at most max octets into line[max + 1] by the session's
   deadlines, and wipe what the reader held of it: its length, -E2BIG (the
   rest of it skipped), or another -errno once the session has ended (a
   timeout, answered, or the connection gone). *crlf: it ended in CRLF. */
int session_read_line(struct session *s, char *line, size_t max, int *crlf);
/* The reader, for a feature that reads the client's text itself (DATA),
   and the io_now_ms() past which the session ends. */
struct reader *session_reader(struct session *s);
uint64_t session_end_ms(const struct session *s);
/* Octets the client sent that are not read yet. */
size_t session_unread(const struct session *s);

/* The connection's descriptors; 1 when it runs over TLS. */
void session_fds(const struct session *s, int *in, int *out);
int session_is_tls(const struct session *s);
/* Send what is written, then carry the session over via from now on (TLS):
   0 or -errno. */
int session_flush(struct session *s);
void session_use_transport(struct session *s, const struct io_transport *via);

/* End the session with the dialect's last line for why. */
void session_end_by(struct session *s, enum ending why);
/* No complete line in time: end the session, by its timeout or its lifetime. */
void session_time_out(struct session *s);
/* The connection failed, or the client is gone: end without a word. */
void session_lost(struct session *s, enum session_end end);
/* 1 once the session is over. */
int session_over(const struct session *s);

/* A command that delivered or read mail: the junk count starts afresh. */
void session_did_mail_work(struct session *s);

/* 1 when the configuration lets RCPT TO name address (-D). */
int session_domain_served(const struct config *cfg, const char *address);

#endif
