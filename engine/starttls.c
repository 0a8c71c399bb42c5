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

/* Run the handshake and carry the session over TLS: 0, or -1 (logged). */
static int go_tls(struct starttls *t)
{
	const struct config *cfg = session_config(t->s);
	char why[256];
	int in, out;

	session_fds(t->s, &in, &out);
	if (tlsio_start(t->server, in, out, NULL, io_deadline(cfg->timeout, session_end_ms(t->s)),
			why, sizeof why) < 0) {
		LOG(t->s, "TLS handshake failed: %s", why);
		return -1;
	}
	session_use_transport(t->s, tlsio_transport(t->server));
	LOG(t->s, "TLS started: %s", tlsio_describe(t->server, why, sizeof why));
	return 0;
}

/* When the user this runs as may not read the key or certificate (xinetd
   and tcpserver start mysmtpd as mysmtp; systemd's units hand it root's
   files with LoadCredential=), say so and what to do, after why. */
static void say_unreadable(struct session *s)
{
	const struct config *cfg = session_config(s);
	const char *file = cfg->tls_key;
	char user[32], group[32];
	struct passwd *pw;
	struct group *gr;

	if (access(file, R_OK) == 0)
		file = cfg->tls_cert;
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

int starttls_open(struct starttls *t, struct session *s)
{
	const struct config *cfg = session_config(s);
	char why[256];

	t->s = s;
	if (!cfg->tls_cert)
		return 0;
	t->server = tlsio_server(cfg->tls_cert, cfg->tls_key, why, sizeof why);
	if (!t->server) {
		LOG(s, "TLS unavailable: %s", why);
		say_unreadable(s);
		return cfg->tls_implicit ? -1 : 0;
	}
	return cfg->tls_implicit ? go_tls(t) : 0;
}

void starttls_close(struct starttls *t)
{
	tlsio_free(t->server);
	t->server = NULL;
}

enum starttls_refusal starttls_check(const struct starttls *t)
{
	if (session_is_tls(t->s))
		return STARTTLS_ACTIVE;
	if (!t->server)
		return STARTTLS_UNAVAILABLE;
	return session_unread(t->s) ? STARTTLS_PIPELINED : STARTTLS_OK;
}

int starttls_handshake(struct starttls *t)
{
	if (session_flush(t->s) < 0 || go_tls(t) < 0) {
		session_lost(t->s, END_IO);
		return -1;
	}
	return 0;
}

int starttls_command(struct starttls *t, const struct said said[])
{
	enum starttls_refusal why = starttls_check(t);

	if (why == STARTTLS_PIPELINED) {
		session_end_by(t->s, ENDING_PIPELINED_TLS);
		return 0;
	}
	session_reply(t->s, said[why].code, said[why].text);
	if (why != STARTTLS_OK)
		return 0;
	return starttls_handshake(t) == 0;
}

int starttls_offered(const struct starttls *t)
{
	return t->server && !session_is_tls(t->s);
}
