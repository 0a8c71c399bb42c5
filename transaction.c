/* transaction.c: what both dialects keep of one mail transaction, the sender
   and the recipients, and how they read its text into the spool. */
#define _GNU_SOURCE
#include "transaction.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void transaction_clear(struct transaction *t)
{
	for (size_t i = 0; i < t->nrcpt; i++)
		free(t->rcpt[i]);
	t->nrcpt = 0;
	t->sender[0] = '\0';
}

void transaction_free(struct transaction *t)
{
	transaction_clear(t);
	free(t->rcpt);
	t->rcpt = NULL;
}

int transaction_has(const struct transaction *t, const char *address)
{
	for (size_t i = 0; i < t->nrcpt; i++)
		if (strcmp(t->rcpt[i], address) == 0)
			return 1;
	return 0;
}

int transaction_add(struct transaction *t, const char *address)
{
	char **grown, *copy;

	if (t->nrcpt % 16 == 0) {
		grown = realloc(t->rcpt, (t->nrcpt + 16) * sizeof *grown);
		if (!grown)
			return -ENOMEM;
		t->rcpt = grown;
	}
	if (!(copy = strdup(address)))
		return -ENOMEM;
	t->rcpt[t->nrcpt++] = copy;
	return 0;
}

int domain_served(const struct config *cfg, const char *address)
{
	if (cfg->ndomains == 0)
		return 1;
	for (size_t i = 0; i < cfg->ndomains; i++)
		if (address_in_domain(address, cfg->domains[i]))
			return 1;
	return 0;
}

char *trim_blanks(char *arg)
{
	size_t len;

	while (*arg == ' ' || *arg == '\t')
		arg++;
	len = strlen(arg);
	while (len > 0 && (arg[len - 1] == ' ' || arg[len - 1] == '\t'))
		arg[--len] = '\0';
	return arg;
}

int make_message_id(char *buf, size_t size, time_t when, unsigned long n, const char *host)
{
	int len = snprintf(buf, size, "%lld.%ld.%lu@%s", (long long)when, (long)getpid(), n, host);

	return len < 0 || (size_t)len >= size ? -ENAMETOOLONG : 0;
}

uint64_t line_deadline(unsigned timeout, uint64_t session_end)
{
	uint64_t t = io_now_ms() + timeout * 1000ULL;

	return t < session_end ? t : session_end;
}

int session_expired(uint64_t session_end)
{
	return io_now_ms() >= session_end;
}

int receive_data(struct reader *in, struct data_rx *d, unsigned timeout, uint64_t session_end)
{
	uint64_t deadline = line_deadline(timeout, session_end);

	while (!d->done) {
		int rc = reader_fill(in, deadline);
		uint64_t lines = d->lines;
		const char *p;
		size_t len;

		if (rc <= 0)
			return rc == -ETIMEDOUT ? -ETIMEDOUT : -ENODATA;
		p = reader_data(in, &len);
		reader_consume(in, data_rx_feed(d, p, len));
		if (d->lines != lines)
			deadline = line_deadline(timeout, session_end);
	}
	return 0;
}
