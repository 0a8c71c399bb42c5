/* session.h: the session engine that every dialect runs on (the My_SMTP
   dialect in protocol.c, standard SMTP in smtp.c): it reads each command
   line with its deadline, looks its verb up in the dialect's table, checks
   the state the command needs and whether it takes an argument, counts
   errors and commands that do no mail work, ends the session by its limits,
   and keeps the transaction. A dialect is its table and a struct dialect;
   the engine keeps no globals and touches only the descriptors it is given. */
#ifndef MYSMTP_SESSION_H
#define MYSMTP_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "accounts/accounts.h"
#include "mail/address.h"
#include "net/io.h"

#define COMMAND_LINE_MAX 512	/* octets, with the line end */

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

/* Where a session is: each command says which state it needs at least. */
enum session_state { FRESH, GREETED, IN_MAIL, IN_RCPT };

struct session;
struct tlsio;
struct store;
struct spool;

/* A reply in a dialect's words, for tables indexed by an outcome. */
struct said {
	int code;
	const char *text;
};

/* Octets a dialect may keep of its own for a session (its state_size). */
#define SESSION_STATE_MAX 2048
#define SESSION_STATE_SIZE(type) sizeof(char[sizeof(type) <= SESSION_STATE_MAX ? sizeof(type) : -1])

struct command {
	const char *verb;
	enum session_state needs;
	int no_argument;		/* an argument is refused (REFUSE_ARGUMENT) */
	void (*run)(struct session *s, char *arg);
	int code;			/* for the engine's own handlers below: */
	const char *text;		/* the reply they give */
	/* The line holds a password: the argument is passed as sent (after
	   the verb and one blank, nothing trimmed). Every line is wiped from
	   memory once acted on, this one too. */
	int secret;
};

/* Why the engine refuses a command line, and why it ends a session: the
   dialect says each in its own words. */
enum refusal { REFUSE_TOO_LONG, REFUSE_BAD_OCTET, REFUSE_BARE_LF, REFUSE_UNKNOWN,
	       REFUSE_STATE, REFUSE_ARGUMENT };
enum ending { ENDING_TIMEOUT, ENDING_LIFETIME, ENDING_ERRORS, ENDING_JUNK, ENDING_AUTH,
	      ENDING_PIPELINED_TLS };

struct dialect {
	const struct command *commands;	/* ended by a NULL verb */
	int strict;			/* lines end in CRLF; a bare LF as -B says */
	void (*greet)(struct session *s);
	/* Reply with code and text, in the dialect's form and counts. */
	void (*reply)(struct session *s, int code, const char *text);
	/* Refuse the command line (c: its command, when known). */
	void (*refuse)(struct session *s, enum refusal why, const struct command *c);
	/* Send the session's last line. */
	void (*last_words)(struct session *s, enum ending why);
	/* Octets of its own state (SESSION_STATE_SIZE), kept for it by the
	   engine as s->dialect_state, all zero at the start; 0: none. */
	size_t state_size;
	/* Set up its state before the greeting (NULL: nothing to do). */
	void (*open)(struct session *s);
	/* Drop the transaction (RSET, a new HELO, STARTTLS; NULL: none). */
	void (*reset)(struct session *s);
	/* Let go of what the dialect holds (NULL: nothing), at the end. */
	void (*finish)(struct session *s);
};

struct session {
	const struct config *cfg;
	struct store *store;
	const struct session_env *env;
	const struct dialect *dialect;
	struct reader in;
	struct writer out;
	enum session_state state;
	enum session_end end;
	int done;
	int esmtp;			/* SMTP: the client said EHLO */
	unsigned errors;		/* client errors in a row */
	unsigned junk;			/* commands in a row that neither delivered nor read mail */
	uint64_t session_end;		/* io_now_ms() past which the session ends */
	char verb[16];			/* of the command being answered, for the log */
	const struct command *command;	/* the one being run */
	char helo[256];
	struct accounts accounts;	/* as read at the session's start (login.h) */
	char user[ADDRESS_MAX + 1];	/* the address logged in as; "" before */
	unsigned auth_failures;
	int tls;			/* the connection is TLS */
	struct tlsio *tls_server;	/* this session's TLS, made at its start (starttls.h) */
	void *dialect_state;		/* what the dialect keeps of its own (state_size) */
};

#define LOG(s, ...) (s)->env->log((s)->env->log_ctx, __VA_ARGS__)

/* Serve one session of dialect d, from greeting to close. */
enum session_end session_run(const struct config *cfg, struct store *st,
			     const struct session_env *env, const struct dialect *d);

/* Send one line, CRLF added. */
void session_send_line(struct session *s, const char *line, size_t len);
/* Send text as the body of a multi-line reply: CRLF line ends, a leading
   dot doubled, a CRLF after a last line without one; not the final ".".
   0 or -errno. */
int session_send_text(struct session *s, const struct spool *text);
/* After the reply line was sent: log it when it is a refusal, with the
   command and the peer; count it when it is a client error, and end the
   session after max_errors of them in a row; any other reply starts the
   count afresh. */
void session_replied(struct session *s, const char *line, int refusal, int client_error);
/* Reply with code and a formatted text, in the dialect's form. */
void session_replyf(struct session *s, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* End the session with the dialect's last line for why. */
void session_end_by(struct session *s, enum ending why);
/* No complete line in time: end the session, by its timeout or its lifetime. */
void session_time_out(struct session *s);
/* Handlers for a command table: the row's reply (NOOP, HELP, a command not
   implemented); the same after dropping the transaction (RSET); the same,
   then the end of the session (QUIT). */
void session_cmd_reply(struct session *s, char *arg);
void session_cmd_reset(struct session *s, char *arg);
void session_cmd_quit(struct session *s, char *arg);
/* A command that delivered or read mail: the junk count starts afresh. */
static inline void session_did_mail_work(struct session *s)
{
	s->junk = 0;
}

/* Drop the transaction (the dialect's reset): back to GREETED if past it. */
void session_reset_transaction(struct session *s);

/* 1 when the configuration lets RCPT TO name address (-D). */
int session_domain_served(const struct config *cfg, const char *address);

#endif
