/* mailsession.h: what a dialect that takes mail (My_SMTP, SMTP) keeps of a
   session, and the states it passes through: delivery, login and STARTTLS,
   set up, dropped and started afresh alike in both. */
#ifndef MYSMTP_MAILSESSION_H
#define MYSMTP_MAILSESSION_H

#include "engine/deliver.h"
#include "engine/login.h"
#include "engine/session.h"
#include "engine/starttls.h"

/* Where such a session is: each command says which state it needs at least. */
enum mail_state { FRESH, GREETED, IN_MAIL, IN_RCPT };

struct mail_session {
	struct delivery dl;
	struct login login;
	struct starttls tls;
};

static inline struct mail_session *mail_session(struct session *s)
{
	return s->dialect_state;
}

/* The struct dialect hooks: open (delivery, accounts, TLS), reset (drop the
   transaction: back to GREETED if past it), finish, close. */
int mail_session_open(struct session *s);
void mail_session_reset(struct session *s);
void mail_session_finish(struct session *s);
void mail_session_close(struct session *s);
/* After the handshake nothing of before counts: no HELO, no transaction,
   no login (RFC 3207 section 4.2). */
void mail_session_afresh(struct session *s);

#define MAIL_SESSION_HOOKS                                                              \
	.state_size = SESSION_STATE_SIZE(struct mail_session), .open = mail_session_open, \
	.reset = mail_session_reset, .finish = mail_session_finish,                     \
	.close = mail_session_close

#endif
