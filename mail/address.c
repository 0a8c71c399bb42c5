/* address.c: the grammar of mail addresses and HELO ids (PROTOCOL.md section 3).
   A valid address can name a mailbox file safely: it holds only a-z 0-9 . _ + - @. */
#include "mail/address.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

static int is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Labels of a-z 0-9 - (1-63 octets, no leading or trailing -), dot-separated. */
static int domain_ok(const char *d, size_t len)
{
	size_t label = 0;

	if (len == 0 || len > DOMAIN_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = lower(d[i]);

		if (c == '.') {
			if (label == 0 || d[i - 1] == '-')
				return 0;
			label = 0;
		} else if (is_lower_alnum(c) || c == '-') {
			if ((label == 0 && c == '-') || ++label > 63)
				return 0;
		} else {
			return 0;
		}
	}
	return label > 0 && d[len - 1] != '-';
}

/* 1-64 octets of a-z 0-9 . _ + -, no leading, trailing or double dot. */
static int local_ok(const char *l, size_t len)
{
	if (len == 0 || len > LOCAL_MAX || l[0] == '.' || l[len - 1] == '.')
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = lower(l[i]);

		if (c == '.' && l[i + 1] == '.')
			return 0;
		if (!is_lower_alnum(c) && c != '.' && c != '_' && c != '+' && c != '-')
			return 0;
	}
	return 1;
}

int domain_valid(const char *text, size_t len)
{
	return domain_ok(text, len) ? 0 : -EINVAL;
}

int address_parse(const char *text, size_t len, char *out)
{
	const char *at = memchr(text, '@', len);
	size_t local_len;

	if (!at)
		return -EINVAL;
	local_len = (size_t)(at - text);
	if (!local_ok(text, local_len) || !domain_ok(at + 1, len - local_len - 1))
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		out[i] = lower(text[i]);
	out[len] = '\0';
	return 0;
}

int address_unbracket(const char **text, size_t *len)
{
	int open = *len > 0 && (*text)[0] == '<';
	int close = *len > 0 && (*text)[*len - 1] == '>';

	if (open != close || (open && *len < 2))
		return -EINVAL;
	if (open) {
		(*text)++;
		*len -= 2;
	}
	return 0;
}

int address_in_domain(const char *address, const char *domain)
{
	const char *at = strchr(address, '@');

	return at && strcasecmp(at + 1, domain) == 0;
}

/* [1.2.3.4] or [IPv6:...]. */
static int literal_ok(const char *text, size_t len)
{
	char buf[64];
	unsigned char addr[16];
	const char *inside = text + 1;
	size_t n = len - 2;
	int family = AF_INET;

	if (len < 3 || text[0] != '[' || text[len - 1] != ']')
		return 0;
	if (n > 5 && strncasecmp(inside, "IPv6:", 5) == 0) {
		family = AF_INET6;
		inside += 5;
		n -= 5;
	}
	if (n >= sizeof buf || memchr(inside, '\0', n))
		return 0;
	memcpy(buf, inside, n);
	buf[n] = '\0';
	return inet_pton(family, buf, addr) == 1;
}

int helo_id_valid(const char *text, size_t len)
{
	if (len > 0 && text[0] == '[')
		return literal_ok(text, len) ? 0 : -EINVAL;
	return domain_ok(text, len) ? 0 : -EINVAL;
}
