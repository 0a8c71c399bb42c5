/* smtparg.c: the arguments of MAIL FROM and RCPT TO in SMTP mode. A path is
   "<...>" (RFC 5321) or, as many servers allow, bare up to the next space; a
   source route "@a,@b:" in front is accepted and dropped (section 4.1.2).
   The sender only goes into the "From " line and Return-Path, so it may be
   any dot-string address; a recipient names a mailbox file, so it must be
   an address of address.c. Quoted local parts are refused. */
#include "mail/smtparg.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* RFC 5322 atext: the octets of a dot-string besides the dots. */
static int is_atext(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* 1-64 octets of atext in runs joined by single dots. */
static int dot_string_ok(const char *s, size_t len)
{
	if (len == 0 || len > LOCAL_MAX || s[0] == '.' || s[len - 1] == '.')
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '.' ? s[i + 1] == '.' : !is_atext(s[i]))
			return 0;
	}
	return 1;
}

/* dot-string@domain, or @[address literal]. */
static int sender_ok(const char *s, size_t len)
{
	const char *at = memchr(s, '@', len);

	return at && dot_string_ok(s, (size_t)(at - s)) &&
	       helo_id_valid(at + 1, len - (size_t)(at - s) - 1) == 0;
}

/* "@a,@b:user@host" is "user@host". */
static void drop_source_route(const char **path, size_t *len)
{
	const char *colon = *len > 0 && (*path)[0] == '@' ? memchr(*path, ':', *len) : NULL;

	if (colon) {
		*len -= (size_t)(colon + 1 - *path);
		*path = colon + 1;
	}
}

/* After PREFIX (any case) and blanks: the path, without its brackets, and
   the rest, which is empty or starts with a space. */
static int split_path(const char *arg, const char *prefix, const char **path, size_t *len,
		      const char **rest)
{
	size_t plen = strlen(prefix);
	const char *close;

	if (strncasecmp(arg, prefix, plen) != 0)
		return SMTPARG_SYNTAX;
	arg += plen;
	arg += strspn(arg, " \t");
	if (*arg == '<') {
		if (!(close = strchr(arg, '>')))
			return SMTPARG_SYNTAX;
		*path = arg + 1;
		*len = (size_t)(close - arg - 1);
		*rest = close + 1;
	} else {
		*path = arg;
		*len = strcspn(arg, " \t");
		*rest = arg + *len;
		if (*len == 0)
			return SMTPARG_SYNTAX;
	}
	if (**rest != '\0' && **rest != ' ' && **rest != '\t')
		return SMTPARG_SYNTAX;
	drop_source_route(path, len);
	return 0;
}

/* Keep the name of an unknown parameter for the reply, printable, cut short. */
static int unknown_param(struct smtp_path *p, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < len && i < sizeof p->param - 1; i++)
		p->param[i] = name[i] > ' ' && name[i] < 127 ? name[i] : '?';
	p->param[i] = '\0';
	return SMTPARG_UNKNOWN_PARAM;
}

/* SIZE=n (RFC 1870): 1-20 digits; a value past 2^64 - 1 is taken as that. */
static int size_param(const char *v, size_t len, struct smtp_path *p)
{
	uint64_t n = 0;

	if (len == 0 || len > 20 || strspn(v, "0123456789") < len)
		return SMTPARG_SYNTAX;
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned)(v[i] - '0');

		n = n > (UINT64_MAX - d) / 10 ? UINT64_MAX : n * 10 + d;
	}
	p->has_size = 1;
	p->size = n;
	return 0;
}

static int mail_param(const char *kv, size_t len, struct smtp_path *p)
{
	const char *eq = memchr(kv, '=', len);
	size_t klen = eq ? (size_t)(eq - kv) : len;
	const char *v = eq ? eq + 1 : kv + len;
	size_t vlen = (size_t)(kv + len - v);

	if (klen == 4 && strncasecmp(kv, "SIZE", 4) == 0)
		return eq ? size_param(v, vlen, p) : SMTPARG_SYNTAX;
	if (klen == 4 && strncasecmp(kv, "BODY", 4) == 0)
		return (vlen == 4 && strncasecmp(v, "7BIT", 4) == 0) ||
		       (vlen == 8 && strncasecmp(v, "8BITMIME", 8) == 0) ? 0 : SMTPARG_SYNTAX;
	return unknown_param(p, kv, klen);
}

/* Each blank-separated KEY[=VALUE] of rest. */
static int mail_params(const char *rest, struct smtp_path *p)
{
	for (;;) {
		size_t n;
		int rc;

		rest += strspn(rest, " \t");
		if (*rest == '\0')
			return 0;
		n = strcspn(rest, " \t");
		if ((rc = mail_param(rest, n, p)) < 0)
			return rc;
		rest += n;
	}
}

static void path_init(struct smtp_path *p)
{
	p->address[0] = '\0';
	p->has_size = 0;
	p->size = 0;
	p->param[0] = '\0';
}

enum smtparg_verdict smtparg_mail(const char *arg, struct smtp_path *p)
{
	const char *path, *rest;
	size_t len;
	int rc;

	path_init(p);
	if ((rc = split_path(arg, "FROM:", &path, &len, &rest)) < 0)
		return rc;
	if (len > 0) {
		if (!sender_ok(path, len))
			return SMTPARG_BAD_PATH;
		memcpy(p->address, path, len);
		p->address[len] = '\0';
	}
	return mail_params(rest, p);
}

enum smtparg_verdict smtparg_rcpt(const char *arg, const char *hostname, struct smtp_path *p)
{
	char postmaster[ADDRESS_MAX + 1];
	const char *path, *rest;
	size_t len;
	int rc, n;

	path_init(p);
	if ((rc = split_path(arg, "TO:", &path, &len, &rest)) < 0)
		return rc;
	if (len == 10 && strncasecmp(path, "postmaster", 10) == 0) {
		n = snprintf(postmaster, sizeof postmaster, "postmaster@%s", hostname);
		if (n < 0 || (size_t)n >= sizeof postmaster)
			return SMTPARG_BAD_PATH;
		path = postmaster;
		len = (size_t)n;
	}
	if (address_parse(path, len, p->address) < 0)
		return SMTPARG_BAD_PATH;
	rest += strspn(rest, " \t");
	return *rest ? unknown_param(p, rest, strcspn(rest, " \t=")) : 0;
}
