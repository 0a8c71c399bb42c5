/* starttls.c: TLS on a session (starttls.h). */
#define _GNU_SOURCE
#include "engine/starttls.h"
#include "net/tlsio.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Run the handshake and switch the session's reader and writer to TLS:
   0, or -1 (logged). */
static int go_tls(struct session *s)
{
	char why[256];

	if (tlsio_start(s->tls_server, s->env->in_fd, s->env->out_fd, NULL,
			io_deadline(s->cfg->timeout, s->session_end), why, sizeof why) < 0) {
		LOG(s, "TLS handshake failed: %s", why);
		return -1;
	}
	reader_set_transport(&s->in, tlsio_transport(s->tls_server));
	writer_set_transport(&s->out, tlsio_transport(s->tls_server));
	s->tls = 1;
	LOG(s, "TLS started: %s", tlsio_describe(s->tls_server, why, sizeof why));
	return 0;
}

/* When the user this runs as may not read the key or certificate (xinetd
   and tcpserver start mysmtpd as mysmtp; systemd's units hand it root's
   files with LoadCredential=), say so and what to do, after why. */
static void say_unreadable(struct session *s)
{
	const char *file = s->cfg->tls_key;
	char user[32], group[32];
	struct passwd *pw;
	struct group *gr;

	if (access(file, R_OK) == 0)
		file = s->cfg->tls_cert;
	if (access(file, R_OK) == 0 || errno != EACCES)
		return;
	pw = getpwuid(geteuid());
	gr = getgrgid(getegid());
	snprintf(user, sizeof user, "%u", (unsigned)geteuid());		/* cut short: no matter */
	snprintf(group, sizeof group, "%u", (unsigned)getegid());
	LOG(s, "TLS: %s is not readable by user %s: give it group %s and mode 0640"
	    " (xinetd, -l), or pass it with LoadCredential= (systemd)",
	    file, pw ? pw->pw_name : user, gr ? gr->gr_name : group);
}

int starttls_open(struct session *s)
{
	char why[256];

	if (!s->cfg->tls_cert)
		return 0;
	s->tls_server = tlsio_server(s->cfg->tls_cert, s->cfg->tls_key, why, sizeof why);
	if (!s->tls_server) {
		LOG(s, "TLS unavailable: %s", why);
		say_unreadable(s);
		return s->cfg->tls_implicit ? -1 : 0;
	}
	return s->cfg->tls_implicit ? go_tls(s) : 0;
}

void starttls_close(struct session *s)
{
	tlsio_free(s->tls_server);
	s->tls_server = NULL;
}

enum starttls_refusal starttls_check(const struct session *s)
{
	size_t unread;

	if (s->tls)
		return STARTTLS_ACTIVE;
	if (!s->tls_server)
		return STARTTLS_UNAVAILABLE;
	reader_data(&s->in, &unread);
	return unread ? STARTTLS_PIPELINED : STARTTLS_OK;
}

/* After the handshake nothing of before counts: no HELO, no transaction,
   no login (RFC 3207 section 4.2). */
static void start_afresh(struct session *s)
{
	session_reset_transaction(s);
	s->state = FRESH;
	s->helo[0] = '\0';
	s->esmtp = 0;
	explicit_bzero(s->user, sizeof s->user);
}

void starttls_handshake(struct session *s)
{
	if (writer_flush(&s->out) < 0 || go_tls(s) < 0) {
		s->end = END_IO;
		s->done = 1;
		return;
	}
	start_afresh(s);
}

int starttls_command(struct session *s, const struct said said[])
{
	enum starttls_refusal why = starttls_check(s);

	if (why == STARTTLS_PIPELINED) {
		session_end_by(s, ENDING_PIPELINED_TLS);
		return 0;
	}
	s->dialect->reply(s, said[why].code, said[why].text);
	if (why != STARTTLS_OK)
		return 0;
	starttls_handshake(s);
	return !s->done;
}
