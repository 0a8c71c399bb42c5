/* accounts.h: the accounts file (PROTOCOL.md section 7), in the format of
   Dovecot's passwd-file: "address:hash[:ignored...]" a line, '#' comments
   and blank lines. It is read whole at each session start; a password is
   checked with libxcrypt, and an address without an account, or one whose
   hash can never match, costs the same time as a wrong password. */
#ifndef MYSMTP_ACCOUNTS_H
#define MYSMTP_ACCOUNTS_H

#include <stddef.h>

#include "mail/address.h"

#define ACCOUNTS_FILE_MAX (16u << 20)	/* octets; a larger file is refused */
#define PASSWORD_MAX 200		/* octets a password may hold */

struct accounts {
	char *text;		/* the file, NUL-terminated; NULL: not loaded */
	size_t len;
	char dummy[128];	/* a setting to hash against when there is no usable hash */
};

/* libxcrypt, loaded with dlopen on first use, so that a session without
   accounts never maps libcrypt: 0, or -ENOSYS with why[size] said. */
int accounts_crypt_load(char *why, size_t size);
/* libxcrypt's crypt_rn and crypt_gensalt_rn (NULL before a load). */
extern char *(*accounts_crypt_rn)(const char *phrase, const char *setting, void *data, int size);
extern char *(*accounts_gensalt_rn)(const char *prefix, unsigned long count, const char *rbytes,
				    int nrbytes, char *output, int output_size);

/* Say why, in a sentence (for the log). */
typedef void (*accounts_warn)(void *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Read path into a: 0, or -errno with why[size] saying what is wrong
   (missing, unreadable, not a regular file, writable by others than its
   owner, too large; libcrypt missing). Lines that are not "address:..." are skipped, each
   told to warn. */
int accounts_load(struct accounts *a, const char *path, char *why, size_t size,
		  accounts_warn warn, void *ctx);
void accounts_free(struct accounts *a);

/* Split one line (len octets, no line end) "address:password[:...]": the
   normalised address into address[ADDRESS_MAX + 1], and the password field
   (*field, *field_len octets); -EINVAL for a line that is not an account. */
int accounts_parse_line(const char *line, size_t len, char *address,
			const char **field, size_t *field_len);

/* 1 when address (normalised) has an account, usable or not. */
int accounts_has(const struct accounts *a, const char *address);
/* 1 when an account is in the domain of address (normalised). */
int accounts_has_domain(const struct accounts *a, const char *address);

/* 1 when password is address's password, 0 when not (a wrong password, no
   such account, or a hash that never matches: warn says which of the last),
   -ENOMEM. The time taken is one hash in every case. */
int accounts_verify(const struct accounts *a, const char *address, const char *password,
		    accounts_warn warn, void *ctx);

/* The hash of a line's password field, without a Dovecot scheme prefix:
   NULL when it can never match (empty, {PLAIN}, DES, MD5-crypt, unknown),
   with *why saying so. */
const char *accounts_usable_hash(const char *field, size_t len, const char **why);

/* Constant-time comparison of two strings of len octets: 1 when equal. */
int accounts_same(const char *a, const char *b, size_t len);

#endif
