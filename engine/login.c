/* login.c: logging in on a session (login.h). */
#define _GNU_SOURCE
#include "engine/login.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void warn(void *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void warn(void *ctx, const char *fmt, ...)
{
	struct login *l = ctx;
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	LOG(l->s, "%s", line);
}

void login_start(struct login *l, struct session *s)
{
	const char *file = session_config(s)->accounts_file;
	char why[160];

	l->s = s;
	if (!login_accounts_on(l))
		return;
	if (accounts_load(&l->accounts, file, why, sizeof why, warn, l) < 0)
		LOG(s, "Accounts file %s unavailable: %s; refusing what needs it.", file, why);
}

void login_finish(struct login *l)
{
	accounts_free(&l->accounts);
	login_forget(l);
}

void login_forget(struct login *l)
{
	explicit_bzero(l->user, sizeof l->user);
}

static int peer_is_local(const char *peer)
{
	return strcmp(peer, "local") == 0 || strncmp(peer, "127.", 4) == 0 ||
	       strcmp(peer, "::1") == 0;
}

int login_allowed(const struct login *l)
{
	return session_is_tls(l->s) || session_config(l->s)->allow_plaintext_auth ||
	       peer_is_local(session_env(l->s)->peer);
}

int login_has_account(const struct login *l, const char *address)
{
	return accounts_has(&l->accounts, address);
}

int login_is_local(const struct login *l, const char *address)
{
	const struct config *cfg = session_config(l->s);

	if (cfg->ndomains > 0)
		return session_domain_served(cfg, address);
	return accounts_has_domain(&l->accounts, address);
}

/* The failure delay, whole whatever signals come. */
static void pause_ms(unsigned ms)
{
	struct timespec left = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&left, &left) < 0 && errno == EINTR)
		;
}

enum login_outcome login_check(struct login *l, const char *address, char *password)
{
	char normal[ADDRESS_MAX + 1] = "";
	/* An address that is not one is checked as one without an account. */
	int valid = address_parse(address, strlen(address), normal) == 0;
	int ok = accounts_verify(&l->accounts, valid ? normal : "", password, warn, l);
	const char *peer = session_env(l->s)->peer;

	explicit_bzero(password, strlen(password));
	if (ok < 0)
		return LOGIN_ERROR;
	if (ok) {
		memcpy(l->user, normal, sizeof normal);
		LOG(l->s, "Authenticated %s from %s", l->user, peer);
		return LOGIN_OK;
	}
	pause_ms(session_config(l->s)->auth_failure_delay_ms);
	LOG(l->s, "Authentication failed for %s from %s", valid ? normal : "(invalid)", peer);
	return ++l->failures >= LOGIN_FAILURES_MAX ? LOGIN_TOO_MANY : LOGIN_FAILED;
}

static int same_address(const char *a, const char *b)
{
	char x[ADDRESS_MAX + 1], y[ADDRESS_MAX + 1];

	return address_parse(a, strlen(a), x) == 0 && address_parse(b, strlen(b), y) == 0 &&
	       strcmp(x, y) == 0;
}

enum login_outcome login_check_plain(struct login *l, struct sasl_plain *p)
{
	if (p->authzid[0] && !same_address(p->authzid, p->authcid))
		p->authcid[0] = '\0';
	return login_check(l, p->authcid, p->password);
}

int login_read_response(struct login *l, const char *prompt, char *line)
{
	int crlf;

	session_send_line(l->s, prompt, strlen(prompt));
	return session_read_line(l->s, line, SASL_LINE_MAX, &crlf);
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

enum plain_read login_read_plain(struct login *l, const char *initial, const char *prompt,
				struct sasl_plain *p)
{
	char line[SASL_LINE_MAX + 1];
	int n, rc;

	if (*initial)
		return sasl_plain_decode(initial, strlen(initial), p) < 0 ? PLAIN_UNDECODABLE : PLAIN_OK;
	n = login_read_response(l, prompt, line);
	rc = n < 0 ? n : strcmp(line, "*") == 0 ? 1 : sasl_plain_decode(line, (size_t)n, p);
	explicit_bzero(line, sizeof line);	/* a cut-off line too */
	return response_outcome(n, rc);
}

/* One field of LOGIN, asked for with prompt and the base64 challenge, into
   out[max + 1]. */
static enum plain_read read_login_field(struct login *l, const char *prompt,
					const char *challenge, char *out, size_t max)
{
	char ask[64], line[SASL_LINE_MAX + 1];
	int n, rc;

	snprintf(ask, sizeof ask, "%s%s", prompt, challenge);
	n = login_read_response(l, ask, line);
	rc = n < 0 ? n : strcmp(line, "*") == 0 ? 1 : sasl_login_field(line, (size_t)n, out, max);
	explicit_bzero(line, sizeof line);	/* a cut-off line too */
	return response_outcome(n, rc);
}

enum plain_read login_read_login(struct login *l, const char *initial, const char *prompt,
				struct sasl_plain *p)
{
	enum plain_read rc = PLAIN_OK;

	p->authzid[0] = '\0';
	if (*initial && sasl_login_field(initial, strlen(initial), p->authcid, SASL_ID_MAX) < 0)
		rc = PLAIN_UNDECODABLE;
	else if (!*initial)
		rc = read_login_field(l, prompt, "VXNlcm5hbWU6", p->authcid, SASL_ID_MAX);
	if (rc == PLAIN_OK)
		rc = read_login_field(l, prompt, "UGFzc3dvcmQ6", p->password, SASL_PASSWORD_MAX);
	return rc;
}

int login_read_sasl(struct login *l, int login, const char *initial, const char *prompt,
		    const struct said said[], struct sasl_plain *p)
{
	enum plain_read rc = login ? login_read_login(l, initial, prompt, p) :
			     login_read_plain(l, initial, prompt, p);

	if (rc != PLAIN_OK && rc != PLAIN_ENDED)
		session_reply(l->s, said[rc].code, said[rc].text);
	return rc == PLAIN_OK ? 0 : -1;
}
