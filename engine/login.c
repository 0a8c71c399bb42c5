/* login.c: logging in on a session (login.h). */
#define _GNU_SOURCE
#include "engine/login.h"
#include "accounts/accounts.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void warn(void *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void warn(void *ctx, const char *fmt, ...)
{
	struct session *s = ctx;
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	LOG(s, "%s", line);
}

void login_start(struct session *s)
{
	char why[160];

	if (!login_accounts_on(s))
		return;
	if (accounts_load(&s->accounts, s->cfg->accounts_file, why, sizeof why, warn, s) < 0)
		LOG(s, "Accounts file %s unavailable: %s; refusing what needs it.",
		    s->cfg->accounts_file, why);
}

void login_finish(struct session *s)
{
	accounts_free(&s->accounts);
	explicit_bzero(s->user, sizeof s->user);
}

static int peer_is_local(const char *peer)
{
	return strcmp(peer, "local") == 0 || strncmp(peer, "127.", 4) == 0 ||
	       strcmp(peer, "::1") == 0;
}

int login_allowed(const struct session *s)
{
	return s->tls || s->cfg->allow_plaintext_auth || peer_is_local(s->env->peer);
}

int login_has_account(const struct session *s, const char *address)
{
	return accounts_has(&s->accounts, address);
}

int login_is_local(const struct session *s, const char *address)
{
	if (s->cfg->ndomains > 0)
		return session_domain_served(s->cfg, address);
	return accounts_has_domain(&s->accounts, address);
}

/* The failure delay, whole whatever signals come. */
static void pause_ms(unsigned ms)
{
	struct timespec left = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&left, &left) < 0 && errno == EINTR)
		;
}

enum login_outcome login_check(struct session *s, const char *address, char *password)
{
	char normal[ADDRESS_MAX + 1] = "";
	/* An address that is not one is checked as one without an account. */
	int valid = address_parse(address, strlen(address), normal) == 0;
	int ok = accounts_verify(&s->accounts, valid ? normal : "", password, warn, s);

	explicit_bzero(password, strlen(password));
	if (ok < 0)
		return LOGIN_ERROR;
	if (ok) {
		memcpy(s->user, normal, sizeof normal);
		LOG(s, "Authenticated %s from %s", s->user, s->env->peer);
		return LOGIN_OK;
	}
	pause_ms(s->cfg->auth_failure_delay_ms);
	LOG(s, "Authentication failed for %s from %s", valid ? normal : "(invalid)",
	    s->env->peer);
	return ++s->auth_failures >= LOGIN_FAILURES_MAX ? LOGIN_TOO_MANY : LOGIN_FAILED;
}

static int same_address(const char *a, const char *b)
{
	char x[ADDRESS_MAX + 1], y[ADDRESS_MAX + 1];

	return address_parse(a, strlen(a), x) == 0 && address_parse(b, strlen(b), y) == 0 &&
	       strcmp(x, y) == 0;
}

enum login_outcome login_check_plain(struct session *s, struct sasl_plain *p)
{
	if (p->authzid[0] && !same_address(p->authzid, p->authcid))
		p->authcid[0] = '\0';
	return login_check(s, p->authcid, p->password);
}

int login_read_response(struct session *s, const char *prompt, char *line)
{
	int crlf, n;

	session_send_line(s, prompt, strlen(prompt));
	n = reader_line_crlf(&s->in, line, SASL_LINE_MAX,
			     io_deadline(s->cfg->timeout, s->session_end), &crlf);
	reader_wipe_used(&s->in);	/* what the reader held of it */
	if (n == -ETIMEDOUT)
		session_time_out(s);
	else if (n < 0 && n != -E2BIG)
		s->done = 1;	/* the connection is gone */
	return n;
}

/* What a response line of n octets (or -errno) that decoded to rc (0, 1
   for "*", or -EINVAL) comes to. */
static enum plain_read response_outcome(int n, int rc)
{
	if (n == -E2BIG)
		return PLAIN_TOO_LONG;
	if (n < 0)
		return PLAIN_ENDED;
	return rc == 1 ? PLAIN_ABORTED : rc < 0 ? PLAIN_UNDECODABLE : PLAIN_OK;
}

enum plain_read login_read_plain(struct session *s, const char *initial, const char *prompt,
				struct sasl_plain *p)
{
	char line[SASL_LINE_MAX + 1];
	int n, rc;

	if (*initial)
		return sasl_plain_decode(initial, strlen(initial), p) < 0 ? PLAIN_UNDECODABLE : PLAIN_OK;
	n = login_read_response(s, prompt, line);
	rc = n < 0 ? n : strcmp(line, "*") == 0 ? 1 : sasl_plain_decode(line, (size_t)n, p);
	explicit_bzero(line, sizeof line);	/* a cut-off line too */
	return response_outcome(n, rc);
}

/* One field of LOGIN, asked for with prompt and the base64 challenge, into
   out[max + 1]. */
static enum plain_read read_login_field(struct session *s, const char *prompt,
					const char *challenge, char *out, size_t max)
{
	char ask[64], line[SASL_LINE_MAX + 1];
	int n, rc;

	snprintf(ask, sizeof ask, "%s%s", prompt, challenge);
	n = login_read_response(s, ask, line);
	rc = n < 0 ? n : strcmp(line, "*") == 0 ? 1 : sasl_login_field(line, (size_t)n, out, max);
	explicit_bzero(line, sizeof line);	/* a cut-off line too */
	return response_outcome(n, rc);
}

enum plain_read login_read_login(struct session *s, const char *initial, const char *prompt,
				struct sasl_plain *p)
{
	enum plain_read rc = PLAIN_OK;

	p->authzid[0] = '\0';
	if (*initial && sasl_login_field(initial, strlen(initial), p->authcid, SASL_ID_MAX) < 0)
		rc = PLAIN_UNDECODABLE;
	else if (!*initial)
		rc = read_login_field(s, prompt, "VXNlcm5hbWU6", p->authcid, SASL_ID_MAX);
	if (rc == PLAIN_OK)
		rc = read_login_field(s, prompt, "UGFzc3dvcmQ6", p->password, SASL_PASSWORD_MAX);
	return rc;
}

int login_read_sasl(struct session *s, int login, const char *initial, const char *prompt,
		    const struct said said[], struct sasl_plain *p)
{
	enum plain_read rc = login ? login_read_login(s, initial, prompt, p) :
			     login_read_plain(s, initial, prompt, p);

	if (rc != PLAIN_OK && rc != PLAIN_ENDED)
		s->dialect->reply(s, said[rc].code, said[rc].text);
	return rc == PLAIN_OK ? 0 : -1;
}
