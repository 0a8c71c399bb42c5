/* mailsession.c: the state of a mail dialect's session (mailsession.h). */
#define _GNU_SOURCE
#include "engine/mailsession.h"

#include <string.h>

int mail_session_open(struct session *s)
{
	struct mail_session *m = mail_session(s);

	delivery_open(&m->dl, s->store);
	login_start(&m->login, s);
	return starttls_open(&m->tls, s);
}

void mail_session_reset(struct session *s)
{
	delivery_reset(&mail_session(s)->dl);
	if (s->state > GREETED)
		s->state = GREETED;
}

void mail_session_finish(struct session *s)
{
	delivery_close(&mail_session(s)->dl);
}

void mail_session_close(struct session *s)
{
	struct mail_session *m = mail_session(s);

	starttls_close(&m->tls);
	login_finish(&m->login);
}

void mail_session_afresh(struct session *s)
{
	struct mail_session *m = mail_session(s);

	mail_session_reset(s);
	s->state = FRESH;
	m->dl.helo[0] = '\0';
	m->dl.esmtp = 0;
	login_forget(&m->login);
}
