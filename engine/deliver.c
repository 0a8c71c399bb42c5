/* deliver.c: delivery as a service for the mail dialects (deliver.h). */
#define _GNU_SOURCE
#include "engine/deliver.h"
#include "mail/data.h"
#include "mail/mboxrd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void delivery_open(struct delivery *dl, struct store *st)
{
	dl->store = st;
	store_spool_init(st, &dl->spool);
}

void delivery_reset(struct delivery *dl)
{
	for (size_t i = 0; i < dl->tx.nrcpt; i++)
		free(dl->tx.rcpt[i]);
	dl->tx.nrcpt = 0;
	dl->tx.sender[0] = '\0';
}

void delivery_close(struct delivery *dl)
{
	delivery_reset(dl);
	free(dl->tx.rcpt);
	dl->tx.rcpt = NULL;
	spool_free(&dl->spool);
}

static int tx_has(const struct transaction *t, const char *address)
{
	for (size_t i = 0; i < t->nrcpt; i++)
		if (strcmp(t->rcpt[i], address) == 0)
			return 1;
	return 0;
}

static int tx_add(struct transaction *t, const char *address)
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

/* The checks in the order the replies must come. */
static enum rcpt_verdict judge_rcpt(struct delivery *dl, const struct config *cfg,
				    const struct login *l, const char *address, int exempt)
{
	int accounts = login_accounts_on(l);

	if (accounts && !login_accounts_ready(l))
		return RCPT_NO_ACCOUNTS;
	if (accounts && !login_is_local(l, address) && !exempt)
		return RCPT_RELAY;
	if (!session_domain_served(cfg, address) && !exempt)
		return RCPT_DOMAIN;
	if (strlen(address) > STORE_ADDRESS_MAX)
		return RCPT_TOO_LONG;
	if (accounts && !login_has_account(l, address))
		return RCPT_NO_MAILBOX;
	if (tx_has(&dl->tx, address))
		return RCPT_AGAIN;
	if (dl->tx.nrcpt >= cfg->max_recipients)
		return RCPT_TOO_MANY;
	if (store_mailbox_full(dl->store, address))
		return RCPT_FULL;
	return tx_add(&dl->tx, address) < 0 ? RCPT_NO_MEMORY : RCPT_ADDED;
}

enum rcpt_verdict delivery_add_rcpt(struct delivery *dl, struct session *s, const struct login *l,
				    const char *address, int exempt)
{
	enum rcpt_verdict v = judge_rcpt(dl, session_config(s), l, address, exempt);

	if (v == RCPT_ADDED) {
		session_did_mail_work(s);
		LOG(s, "RCPT TO: %s", address);
	}
	return v;
}

static void quoter_sink(void *quoter, const char *text, size_t len)
{
	from_quoter_feed(quoter, text, len);
}

/* Read the text up to its end into the spool, From-quoted, looking at its
   header section on the way: 0, or -1 when the session is over. */
static int receive_text(struct delivery *dl, struct session *s, int strict,
			struct data_rx *d, struct msg_scan *scan)
{
	const struct config *cfg = session_config(s);
	struct from_quoter q;
	int rc;

	spool_reset(&dl->spool);
	msg_scan_init(scan, spool_sink, &dl->spool);
	from_quoter_init(&q, +1, msg_scan_sink, scan);
	if (strict) {
		data_rx_init_strict(d, cfg->max_message, quoter_sink, &q);
		d->normalize = !cfg->bare_lf_reject;
	} else {
		data_rx_init(d, cfg->max_message, quoter_sink, &q);
	}
	rc = data_receive(session_reader(s), d, cfg->timeout, session_end_ms(s));
	from_quoter_finish(&q);
	if (rc == -ETIMEDOUT)
		session_time_out(s);
	else if (rc < 0)
		session_lost(s, END_EOF);
	return rc < 0 ? -1 : 0;
}

/* What the text read comes to before it is delivered: DELIVERED when it
   may be. The size is counted as RFC 1870 does in strict framing. */
static enum delivery_outcome judge_text(struct delivery *dl, struct session *s, int strict,
					const struct data_rx *d)
{
	const struct config *cfg = session_config(s);
	uint64_t size = strict ? d->size + (d->lines - 1) : d->size;

	if (size > cfg->max_message || d->size > cfg->max_message) {
		if (strict)
			LOG(s, "DATA received, too large.");
		return TOO_LARGE;
	}
	if (strict && d->bare_lf && cfg->bare_lf_reject) {
		LOG(s, "DATA received, bare <LF>; refused.");
		return BARE_LF;
	}
	if (d->has_nul)
		return HAS_NUL;
	if (dl->spool.error) {
		LOG(s, "DATA received, spool failed: %s", strerror(-dl->spool.error));
		return SPOOL_FAILED;
	}
	return DELIVERED;
}

/* Deliver the spooled text with envelope e to every recipient, or to none. */
static enum delivery_outcome deliver(struct delivery *dl, struct session *s, struct envelope *e,
				     char id[MESSAGE_ID_MAX + 1])
{
	int err;

	e->message_id = id;
	e->when = time(NULL);
	err = mboxrd_message_id(id, MESSAGE_ID_MAX + 1, e->when, ++dl->messages,
				session_config(s)->hostname);
	if (err == 0 && store_has_room(dl->store, dl->spool.size, dl->tx.nrcpt) < 0) {
		LOG(s, "DATA received, refused: the store's file system is nearly full.");
		return NO_ROOM;
	}
	if (err == 0)
		err = store_deliver(dl->store, e, &dl->spool, (const char *const *)dl->tx.rcpt,
				    dl->tx.nrcpt);
	if (err == -EDQUOT)
		return MAILBOX_FULL;
	if (err < 0) {
		LOG(s, "DATA received, store failed: %s", strerror(-err));
		return STORE_FAILED;
	}
	session_did_mail_work(s);
	LOG(s, "DATA received, message stored.");
	return DELIVERED;
}

enum delivery_outcome delivery_take(struct delivery *dl, struct session *s,
				    const struct delivery_kind *k, char id[MESSAGE_ID_MAX + 1])
{
	struct data_rx d;
	struct msg_scan scan;
	struct envelope e = { 0 };
	enum delivery_outcome how;

	if (receive_text(dl, s, k->strict, &d, &scan) < 0)
		return DELIVERY_ENDED;
	how = judge_text(dl, s, k->strict, &d);
	if (how == DELIVERED) {
		e.sender = dl->tx.sender;
		e.helo = dl->helo;
		e.esmtp = dl->esmtp;
		e.peer = session_env(s)->peer;
		e.hostname = session_config(s)->hostname;
		k->envelope(&scan, &e);
		how = deliver(dl, s, &e, id);
	}
	spool_reset(&dl->spool);
	delivery_reset(dl);
	return how;
}
