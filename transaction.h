/* transaction.h: what both dialects (protocol.c, smtp.c) keep of one mail
   transaction, the sender and the recipients, and how they read its text
   from the client into the spool. */
#ifndef MYSMTP_TRANSACTION_H
#define MYSMTP_TRANSACTION_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "address.h"
#include "data.h"
#include "io.h"
#include "protocol.h"

struct transaction {
	char sender[ADDRESS_MAX + 1];	/* "" before MAIL, or SMTP's null reverse-path */
	char **rcpt;			/* distinct recipients, in the order given */
	size_t nrcpt;
};

/* Forget sender and recipients. */
void transaction_clear(struct transaction *t);
/* The same, and give back the memory. */
void transaction_free(struct transaction *t);
/* 1 when address is a recipient already. */
int transaction_has(const struct transaction *t, const char *address);
/* Add a recipient: 0 or -ENOMEM. */
int transaction_add(struct transaction *t, const char *address);

/* 1 when the configuration lets RCPT TO name address (-D). */
int domain_served(const struct config *cfg, const char *address);
/* Skip leading blanks of a command argument; cut trailing ones. */
char *trim_blanks(char *arg);
/* A Message-ID: three numbers of up to 20 digits, two dots, '@', the host name. */
#define MESSAGE_ID_MAX (3 * 20 + 3 + DOMAIN_MAX)
/* A Message-ID (without brackets) for the n-th message of this process. */
int make_message_id(char *buf, size_t size, time_t when, unsigned long n, const char *host);

/* The deadline for the next complete line: timeout seconds from now, but
   never past the end of the session (both on the io_now_ms scale). */
uint64_t line_deadline(unsigned timeout, uint64_t session_end);

/* Feed the client's input to d up to the end of the message: 0, -ETIMEDOUT
   (no complete line within timeout seconds, or the session's end came), or
   -ENODATA when the connection ended first. */
int receive_data(struct reader *in, struct data_rx *d, unsigned timeout, uint64_t session_end);

/* How the client's time ran out: 1 when it was the session's own end. */
int session_expired(uint64_t session_end);

#endif
