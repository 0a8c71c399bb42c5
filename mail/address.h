/* address.h: the grammar of mail addresses and HELO ids (PROTOCOL.md section 3). */
#ifndef MYSMTP_ADDRESS_H
#define MYSMTP_ADDRESS_H

#include <stddef.h>

#define ADDRESS_MAX 318		/* 64 local + '@' + 253 domain */
#define LOCAL_MAX 64
#define DOMAIN_MAX 253

/* Normalise text (len octets, may hold NUL) to a lower-case address in
   out[ADDRESS_MAX + 1]: 0 when it is a valid local@domain, else -EINVAL. */
int address_parse(const char *text, size_t len, char *out);

/* Strip optional angle brackets from an address argument: the inside, or
   -EINVAL when they do not pair. *len is updated. */
int address_unbracket(const char **text, size_t *len);

/* 1 when the domain of a normalised address equals domain, ignoring case. */
int address_in_domain(const char *address, const char *domain);

/* 0 when text is a host name or a bracketed address literal, else -EINVAL. */
int helo_id_valid(const char *text, size_t len);

/* 0 when text is a valid domain name (any case), else -EINVAL. */
int domain_valid(const char *text, size_t len);

#endif
