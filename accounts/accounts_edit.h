/* accounts_edit.h: changing the accounts file (mysmtpd --set-password,
   --remove-account; PROTOCOL.md section 7): reading a new password, hashing
   it with yescrypt, and rewriting the file atomically under a lock. */
#ifndef MYSMTP_ACCOUNTS_EDIT_H
#define MYSMTP_ACCOUNTS_EDIT_H

#include <crypt.h>
#include <stddef.h>

/* A new password for address into out[size]: read twice without echo from
   a terminal, or one line from standard input. 0, or -EINVAL with *why. */
int accounts_read_password(const char *address, char *out, size_t size, const char **why);

/* password hashed with yescrypt and a fresh salt, once accounts_crypt_load
   has loaded libcrypt: 0, or -errno. */
int accounts_hash(const char *password, char out[CRYPT_OUTPUT_SIZE]);

/* Set address's hash in the file at path (made when missing), or take its
   lines out when hash is NULL. *found: it had a line. 0 or -errno. */
int accounts_edit(const char *path, const char *address, const char *hash, int *found);

#endif
