/* login.h: logging in on a session (PROTOCOL.md section 7), for every
   dialect: the accounts file as read at the session's start, the rule that
   a password crosses only TLS or a local connection, the check with its
   failure delay and count, and the log line fail2ban reads. A dialect
   keeps a struct login in its own state and calls these. */
#ifndef MYSMTP_LOGIN_H
#define MYSMTP_LOGIN_H

#include "accounts/accounts.h"
#include "engine/session_io.h"
#include "mail/address.h"
#include "mail/sasl.h"

#define LOGIN_FAILURES_MAX 3	/* failures that end a session */

struct login {
	struct session *s;		/* the session it serves */
	struct accounts accounts;	/* as read at the session's start */
	char user[ADDRESS_MAX + 1];	/* the address logged in as; "" before */
	unsigned failures;
};

enum login_outcome {
	LOGIN_OK,		/* l->user is the address */
	LOGIN_FAILED,		/* wrong address or password, after the delay */
	LOGIN_TOO_MANY,		/* the same, and the session must end (ENDING_AUTH) */
	LOGIN_ERROR,		/* out of memory: nothing was checked */
};

/* Read the accounts file named by the configuration, if any, and log what
   is wrong with it: at the start of each session. */
void login_start(struct login *l, struct session *s);
void login_finish(struct login *l);
/* Forget who logged in (a session started afresh over TLS). */
void login_forget(struct login *l);

/* 1 when accounts are on (the configuration names a file). */
static inline int login_accounts_on(const struct login *l)
{
	return session_config(l->s)->accounts_file != NULL;
}

/* 1 when the accounts file was read: else every command that needs it is
   answered "accounts unavailable". */
static inline int login_accounts_ready(const struct login *l)
{
	return l->accounts.text != NULL;
}

/* 1 when accounts are on but the file could not be read. */
static inline int login_unavailable(const struct login *l)
{
	return login_accounts_on(l) && !login_accounts_ready(l);
}

/* 1 when a password may be sent on this connection: TLS, a local peer (a
   pipe, 127.0.0.0/8, ::1), or --allow-plaintext-auth. */
int login_allowed(const struct login *l);

/* 1 when address has an account. */
int login_has_account(const struct login *l, const char *address);
/* 1 when address is in a local domain: one --domain names, or without
   --domain one an account is in (with accounts on). */
int login_is_local(const struct login *l, const char *address);

/* Check the password of address (the client's text, not yet normalised):
   the password is wiped here, whatever the outcome. */
enum login_outcome login_check(struct login *l, const char *address, char *password);

/* The same for a PLAIN response: an authzid, when given, must be the same
   address as the authcid, else the login fails after the same hash and
   delay as any other. */
enum login_outcome login_check_plain(struct login *l, struct sasl_plain *p);

/* The PLAIN response: the initial one of the AUTH line, or else a line
   asked for with prompt (SMTP "334 ", POP3 "+ "), which "*" answers to give
   up. The line is wiped whatever happens; the dialect says each outcome in
   its own words, but PLAIN_ENDED: the session ended (a timeout answered,
   or the connection gone). */
#define SASL_LINE_MAX 2048	/* octets of a response line */
enum plain_read { PLAIN_OK, PLAIN_TOO_LONG, PLAIN_ABORTED, PLAIN_UNDECODABLE, PLAIN_ENDED };
enum plain_read login_read_plain(struct login *l, const char *initial, const char *prompt,
				struct sasl_plain *p);

/* The same for LOGIN: the user name (the initial response of the AUTH line,
   or else asked for with prompt and "VXNlcm5hbWU6", "Username:"), then the
   password (prompt and "UGFzc3dvcmQ6", "Password:"), each line read as
   PLAIN's is and wiped. *p gets no authzid. */
enum plain_read login_read_login(struct login *l, const char *initial, const char *prompt,
				struct sasl_plain *p);

/* The PLAIN response (login 0) or LOGIN's two (login 1), read as above,
   with a refusal replied in the dialect's words: said[PLAIN_TOO_LONG],
   said[PLAIN_ABORTED], said[PLAIN_UNDECODABLE]. 0, or -1 when refused or
   the session ended. */
int login_read_sasl(struct login *l, int login, const char *initial, const char *prompt,
		    const struct said said[], struct sasl_plain *p);

/* Send prompt and read one response line into line[SASL_LINE_MAX + 1]: its
   length, -E2BIG (the rest of it skipped), or another -errno once the
   session has ended (a timeout answered, or the connection gone). The
   caller wipes line, whatever came back: it may hold a password. */
int login_read_response(struct login *l, const char *prompt, char *line);

#endif
