/* sasl.c: base64 decoding and the fields of SASL PLAIN and LOGIN responses
   (sasl.h). */
#define _GNU_SOURCE
#include "mail/sasl.h"

#include <errno.h>
#include <string.h>

static int sextet(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int base64_decode(const char *text, size_t len, unsigned char *out, size_t max)
{
	size_t n = 0;

	if (len % 4 != 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i += 4) {
		int pad = (text[i + 3] == '=') + (text[i + 2] == '=' && text[i + 3] == '=');
		int v[4];

		if (pad && i + 4 != len)
			return -EINVAL;
		for (int k = 0; k < 4 - pad; k++)
			if ((v[k] = sextet(text[i + k])) < 0)
				return -EINVAL;
		for (int k = 4 - pad; k < 4; k++)
			v[k] = 0;
		/* Canonical: the bits a padded group leaves unused are zero. */
		if ((pad == 1 && (v[2] & 3)) || (pad == 2 && (v[1] & 15)))
			return -EINVAL;
		if (n + 3 - (size_t)pad > max)
			return -EINVAL;
		out[n++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		if (pad < 2)
			out[n++] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
		if (pad < 1)
			out[n++] = (unsigned char)((v[2] & 3) << 6 | v[3]);
	}
	return (int)n;
}

/* Copy field [from, to) into out[max + 1]: 0, or -EINVAL when too long. */
static int take_field(const unsigned char *from, const unsigned char *to, char *out, size_t max)
{
	size_t len = (size_t)(to - from);

	if (len > max)
		return -EINVAL;
	memcpy(out, from, len);
	out[len] = '\0';
	return 0;
}

int sasl_plain_decode(const char *text, size_t len, struct sasl_plain *p)
{
	unsigned char raw[SASL_ID_MAX * 2 + SASL_PASSWORD_MAX + 2];
	const unsigned char *nul1, *nul2, *end;
	int n = base64_decode(text, len, raw, sizeof raw), rc = -EINVAL;

	if (n < 0)
		return -EINVAL;
	end = raw + n;
	nul1 = memchr(raw, '\0', (size_t)n);
	nul2 = nul1 ? memchr(nul1 + 1, '\0', (size_t)(end - nul1 - 1)) : NULL;
	if (nul2 && !memchr(nul2 + 1, '\0', (size_t)(end - nul2 - 1)) && nul1 + 1 < nul2 &&
	    nul2 + 1 < end && take_field(raw, nul1, p->authzid, SASL_ID_MAX) == 0 &&
	    take_field(nul1 + 1, nul2, p->authcid, SASL_ID_MAX) == 0 &&
	    take_field(nul2 + 1, end, p->password, SASL_PASSWORD_MAX) == 0)
		rc = 0;
	explicit_bzero(raw, sizeof raw);
	return rc;
}

int sasl_login_field(const char *text, size_t len, char *out, size_t max)
{
	unsigned char raw[SASL_PASSWORD_MAX + 1];
	int n = base64_decode(text, len, raw, sizeof raw), rc = -EINVAL;

	if (n > 0 && memchr(raw, '\0', (size_t)n) == NULL)
		rc = take_field(raw, raw + n, out, max);
	explicit_bzero(raw, sizeof raw);
	return rc;
}
