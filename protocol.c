/* protocol.c: one My_SMTP session. A handler first checks state and
   arguments and replies with the error, and only then acts; the table below
   says which commands exist and what each needs first. */
#define _GNU_SOURCE
#include "protocol.h"
#include "address.h"
#include "data.h"
#include "io.h"
#include "mboxrd.h"
#include "transaction.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum state { FRESH, GREETED, IN_MAIL, IN_RCPT };

struct session {
	const struct config *cfg;
	struct store *store;
	const struct session_env *env;
	struct reader in;
	struct writer out;
	struct spool spool;
	enum state state;
	enum session_end end;
	int done;
	unsigned errors;		/* consecutive 400/403 replies */
	unsigned junk;			/* commands in a row that neither delivered nor read mail */
	uint64_t session_end;		/* io_now_ms() past which the session ends */
	unsigned long messages;		/* for Message-IDs */
	char verb[16];			/* of the command being answered, for the log */
	char helo[256];
	struct transaction tx;
};

struct command {
	const char *verb;
	enum state needs;
	void (*run)(struct session *s, char *arg);
};

#define LOG(s, ...) (s)->env->log((s)->env->log_ctx, __VA_ARGS__)

static const char *code_word(int code)
{
	switch (code) {
	case 400: return "ERR";
	case 401: return "NOT FOUND";
	case 403: return "FORBIDDEN";
	case 500: return "SERVER ERROR";
	default: return NULL;
	}
}

static void send_line(struct session *s, const char *text, size_t len)
{
	writer_put(&s->out, text, len);
	writer_put(&s->out, "\r\n", 2);
}

/* End the session with a last line. */
static void close_with(struct session *s, const char *line, const char *why, enum session_end end)
{
	send_line(s, line, strlen(line));
	LOG(s, "%s; closing.", why);
	s->end = end;
	s->done = 1;
}

/* Reply with code: "200 text", or "4xx WORD text" for an error, which is
   logged with the peer. After max_errors 400/403 replies in a row the
   session is closed. */
static void reply(struct session *s, int code, const char *text)
{
	char line[COMMAND_LINE_MAX];
	const char *word = code_word(code);
	int n;

	if (word)
		n = snprintf(line, sizeof line, "%d %s%s%s", code, word, *text ? " " : "", text);
	else
		n = snprintf(line, sizeof line, "%d %s", code, text);
	if (n < 0 || (size_t)n >= sizeof line)
		n = snprintf(line, sizeof line, "%d %s", code, word ? word : "OK");
	send_line(s, line, (size_t)n);
	if (code == 400 || code == 401 || code == 403)
		LOG(s, "Refused %s from %s: %s", s->verb, s->env->peer, line);
	if (code != 400 && code != 403)
		s->errors = 0;
	else if (++s->errors >= s->cfg->max_errors)
		close_with(s, "403 FORBIDDEN too many errors", "Too many errors", END_ERRORS);
}

/* No complete line within the timeout, or the session's time is up: say
   so and end the session. */
static void time_out(struct session *s)
{
	int expired = session_expired(s->session_end);

	reply(s, 500, expired ? "session time limit reached" : "timeout");
	if (expired)
		LOG(s, "Session time limit reached; closing.");
	s->end = END_TIMEOUT;
	s->done = 1;
}

static void reset_transaction(struct session *s)
{
	transaction_clear(&s->tx);
	if (s->state > GREETED)
		s->state = GREETED;
}

/* "PREFIX address" or "PREFIX<address>", PREFIX matched without case. */
static int parse_prefixed_address(const char *arg, const char *prefix, char *out)
{
	size_t plen = strlen(prefix), len;

	if (strncasecmp(arg, prefix, plen) != 0)
		return -EINVAL;
	arg += plen;
	while (*arg == ' ')
		arg++;
	len = strlen(arg);
	if (address_unbracket(&arg, &len) < 0)
		return -EINVAL;
	return address_parse(arg, len, out);
}

static int helo_domain_ok(const struct session *s, const char *address)
{
	return s->cfg->any_domain || address_in_domain(address, s->helo);
}

static void cmd_helo(struct session *s, char *arg)
{
	if (helo_id_valid(arg, strlen(arg)) < 0 || strlen(arg) >= sizeof s->helo) {
		reply(s, 400, "HELO needs a host name or [address]");
		return;
	}
	reset_transaction(s);
	memcpy(s->helo, arg, strlen(arg) + 1);
	s->state = GREETED;
	LOG(s, "HELO received from %s", s->helo);
	reply(s, 200, "OK");
}

static void cmd_mail(struct session *s, char *arg)
{
	char address[ADDRESS_MAX + 1];

	if (s->state != GREETED)
		reply(s, 403, "a transaction is already open");
	else if (parse_prefixed_address(arg, "FROM:", address) < 0)
		reply(s, 400, "syntax: MAIL FROM: <user@domain>");
	else if (!helo_domain_ok(s, address))
		reply(s, 403, "sender not in the HELO domain");
	else {
		memcpy(s->tx.sender, address, sizeof address);
		s->state = IN_MAIL;
		s->junk = 0;
		LOG(s, "MAIL FROM: %s", s->tx.sender);
		reply(s, 200, "OK");
	}
}

static void cmd_rcpt(struct session *s, char *arg)
{
	char address[ADDRESS_MAX + 1];

	if (parse_prefixed_address(arg, "TO:", address) < 0)
		reply(s, 400, "syntax: RCPT TO: <user@domain>");
	else if (!domain_served(s->cfg, address))
		reply(s, 403, "domain not served here");
	else if (strlen(address) > STORE_ADDRESS_MAX)
		reply(s, 403, "address too long for a mailbox file");
	else if (transaction_has(&s->tx, address))
		reply(s, 200, "OK");
	else if (s->tx.nrcpt >= s->cfg->max_recipients)
		reply(s, 403, "too many recipients");
	else if (store_mailbox_full(s->store, address))
		reply(s, 403, "mailbox full");
	else if (transaction_add(&s->tx, address) < 0)
		reply(s, 500, "out of memory");
	else {
		s->state = IN_RCPT;
		s->junk = 0;
		LOG(s, "RCPT TO: %s", address);
		reply(s, 200, "OK");
	}
}

static void quoter_sink(void *quoter, const char *text, size_t len)
{
	from_quoter_feed(quoter, text, len);
}

/* Read the message up to its final dot into the spool: 0, or the end of the
   session (timeout or lost connection). */
static int receive_text(struct session *s, struct data_rx *d)
{
	struct from_quoter q;

	int rc;

	spool_reset(&s->spool);
	from_quoter_init(&q, +1, spool_sink, &s->spool);
	data_rx_init(d, s->cfg->max_message, quoter_sink, &q);
	rc = receive_data(&s->in, d, s->cfg->timeout, s->session_end);
	from_quoter_finish(&q);
	return rc;
}

static void store_message_now(struct session *s)
{
	char id[MESSAGE_ID_MAX + 1];
	struct envelope e = {
		.sender = s->tx.sender, .helo = s->helo, .peer = s->env->peer,
		.hostname = s->cfg->hostname, .message_id = id, .when = time(NULL),
	};
	int rc = make_message_id(id, sizeof id, e.when, ++s->messages, s->cfg->hostname);

	if (rc == 0 && (rc = store_has_room(s->store, s->spool.size, s->tx.nrcpt)) < 0) {
		LOG(s, "DATA received, refused: the store's file system is nearly full.");
		reply(s, 500, "not enough free space in the store");
		return;
	}
	if (rc == 0)
		rc = store_deliver(s->store, &e, &s->spool,
				   (const char *const *)s->tx.rcpt, s->tx.nrcpt);

	if (rc == -EDQUOT) {
		reply(s, 403, "mailbox full");
	} else if (rc < 0) {
		LOG(s, "DATA received, store failed: %s", strerror(-rc));
		reply(s, 500, "the store failed");
	} else {
		s->junk = 0;
		LOG(s, "DATA received, message stored.");
		reply(s, 200, "Message stored successfully");
	}
}

static void cmd_data(struct session *s, char *arg)
{
	struct data_rx d;
	char why[64];
	int rc;

	if (*arg) {
		reply(s, 400, "syntax: DATA takes no argument");
		return;
	}
	reply(s, 200, "Enter your message (end with a single dot '.'):");
	rc = receive_text(s, &d);
	if (rc == -ETIMEDOUT)
		time_out(s);
	if (rc < 0) {
		s->done = 1;
		return;
	}
	if (d.size > s->cfg->max_message) {
		snprintf(why, sizeof why, "message larger than %llu octets",
			 (unsigned long long)s->cfg->max_message);
		reply(s, 403, why);
	} else if (d.has_nul) {
		reply(s, 400, "message holds a NUL octet");
	} else if (s->spool.error) {
		LOG(s, "DATA received, spool failed: %s", strerror(-s->spool.error));
		reply(s, 500, "cannot hold the message");
	} else {
		store_message_now(s);
	}
	spool_reset(&s->spool);
	reset_transaction(s);
}

/* Parse the mailbox argument of LIST and GET_MAIL and check it may be read:
   0, or the error already sent. */
static int readable_mailbox(struct session *s, const char *arg, size_t len, char *address)
{
	if (len == 0) {
		reply(s, 400, "syntax: LIST <user@domain>");
		return -EINVAL;
	}
	if (address_unbracket(&arg, &len) < 0 || address_parse(arg, len, address) < 0) {
		reply(s, 400, "bad address");
		return -EINVAL;
	}
	if (!helo_domain_ok(s, address)) {
		reply(s, 403, "mailbox not in the HELO domain");
		return -EPERM;
	}
	return 0;
}

/* Open the mailbox, or send 401/500 and return an error. */
static int open_mailbox(struct session *s, const char *address, struct mailbox *mb)
{
	int rc = store_mailbox_open(s->store, address, mb);

	if (rc == -ENOENT)
		reply(s, 401, "no such mailbox");
	else if (rc < 0) {
		LOG(s, "Mailbox %s unreadable: %s", address, strerror(-rc));
		reply(s, 500, "cannot read the mailbox");
	}
	return rc;
}

/* A reply cut off half-way cannot be mended: end the session. */
static void abort_reply(struct session *s, int rc)
{
	LOG(s, "Reply broken off: %s", strerror(-rc));
	s->end = END_IO;
	s->done = 1;
}

static int list_line(void *ctx, uint64_t id, const char *sender, const char *date)
{
	struct session *s = ctx;
	char line[FROM_SENDER_MAX + 64];
	int n = snprintf(line, sizeof line, "%llu: Email from %s (%s)",
			 (unsigned long long)id, sender, date);

	if (n < 0 || (size_t)n >= sizeof line)
		return -EOVERFLOW;
	send_line(s, line, (size_t)n);
	return s->out.error;
}

static void cmd_list(struct session *s, char *arg)
{
	char address[ADDRESS_MAX + 1];
	struct mailbox mb;
	int rc;

	if (readable_mailbox(s, arg, strlen(arg), address) < 0)
		return;
	LOG(s, "LIST %s", address);
	if (open_mailbox(s, address, &mb) < 0)
		return;
	reply(s, 200, "OK");
	rc = store_list(&mb, list_line, s);
	store_mailbox_close(&mb);
	if (rc < 0) {
		abort_reply(s, rc);
		return;
	}
	send_line(s, ".", 1);
	s->junk = 0;
	LOG(s, "Emails retrieved; list sent.");
}

/* Message text to the wire: CRLF line ends, a leading dot doubled. */
struct text_out {
	struct session *s;
	int line_start;
};

static void text_sink(void *ctx, const char *text, size_t len)
{
	struct text_out *t = ctx;
	const char *end = text + len;

	while (text < end) {
		const char *lf = memchr(text, '\n', (size_t)(end - text));
		size_t n = lf ? (size_t)(lf - text) : (size_t)(end - text);

		if (t->line_start && *text == '.')
			writer_put(&t->s->out, ".", 1);
		writer_put(&t->s->out, text, n);
		t->line_start = lf != NULL;
		if (lf)
			writer_put(&t->s->out, "\r\n", 2);
		text += n + (lf ? 1 : 0);
	}
}

/* "<address> <id>", the id a decimal number from 1. */
static int parse_get_args(char *arg, size_t *addr_len, uint64_t *id)
{
	char *sp = strchr(arg, ' '), *p;

	if (!sp)
		return -EINVAL;
	*addr_len = (size_t)(sp - arg);
	for (p = sp; *p == ' '; p++)
		;
	if (*p == '\0' || strspn(p, "0123456789") != strlen(p) || strlen(p) > 18)
		return -EINVAL;
	*id = strtoull(p, NULL, 10);
	return *id >= 1 ? 0 : -EINVAL;
}

static void send_message(struct session *s, struct mailbox *mb, uint64_t id)
{
	struct stored_message m;
	struct text_out t = { .s = s, .line_start = 1 };
	char line[FROM_SENDER_MAX + 16];
	int rc = store_message_copy(mb, id, &m, &s->spool);

	if (rc == -ENOENT) {
		reply(s, 401, "no such message");
		return;
	}
	if (rc < 0) {
		LOG(s, "Message %llu unreadable: %s", (unsigned long long)id, strerror(-rc));
		reply(s, 500, "cannot read the message");
		return;
	}
	reply(s, 200, "OK");
	send_line(s, line, (size_t)snprintf(line, sizeof line, "From: %s", m.sender));
	send_line(s, line, (size_t)snprintf(line, sizeof line, "Date: %s", m.date));
	rc = spool_feed(&s->spool, text_sink, &t);
	spool_reset(&s->spool);
	if (rc < 0) {
		abort_reply(s, rc);
		return;
	}
	if (!t.line_start)
		writer_put(&s->out, "\r\n", 2);
	send_line(s, ".", 1);
	s->junk = 0;
	LOG(s, "Email with id %llu sent.", (unsigned long long)id);
}

static void cmd_get_mail(struct session *s, char *arg)
{
	char address[ADDRESS_MAX + 1];
	struct mailbox mb;
	size_t addr_len;
	uint64_t id;

	if (parse_get_args(arg, &addr_len, &id) < 0) {
		reply(s, 400, "syntax: GET_MAIL <user@domain> <id from 1>");
		return;
	}
	if (readable_mailbox(s, arg, addr_len, address) < 0)
		return;
	LOG(s, "GET_MAIL %s %llu", address, (unsigned long long)id);
	if (open_mailbox(s, address, &mb) < 0)
		return;
	send_message(s, &mb, id);
	store_mailbox_close(&mb);
}

static void cmd_noop(struct session *s, char *arg)
{
	(void)arg;
	reply(s, 200, "OK");
}

static void cmd_rset(struct session *s, char *arg)
{
	if (*arg) {
		reply(s, 400, "syntax: RSET takes no argument");
		return;
	}
	reset_transaction(s);
	reply(s, 200, "OK");
}

static void cmd_help(struct session *s, char *arg)
{
	(void)arg;
	reply(s, 200, "Commands: HELO MAIL RCPT DATA LIST GET_MAIL NOOP RSET HELP QUIT");
}

static void cmd_quit(struct session *s, char *arg)
{
	if (*arg) {
		reply(s, 400, "syntax: QUIT takes no argument");
		return;
	}
	reply(s, 200, "Goodbye");
	s->end = END_QUIT;
	s->done = 1;
}

static const struct command commands[] = {
	{ "HELO",     FRESH,   cmd_helo },
	{ "MAIL",     GREETED, cmd_mail },
	{ "RCPT",     IN_MAIL, cmd_rcpt },
	{ "DATA",     IN_RCPT, cmd_data },
	{ "LIST",     GREETED, cmd_list },
	{ "GET_MAIL", GREETED, cmd_get_mail },
	{ "NOOP",     FRESH,   cmd_noop },
	{ "RSET",     FRESH,   cmd_rset },
	{ "HELP",     FRESH,   cmd_help },
	{ "QUIT",     FRESH,   cmd_quit },
	{ NULL,       FRESH,   NULL },
};

static const char *const missing_step[] = {
	[GREETED] = "send HELO first",
	[IN_MAIL] = "send MAIL FROM first",
	[IN_RCPT] = "send RCPT TO first",
};

static void run_command(struct session *s, char *line, size_t len)
{
	const struct command *c;
	size_t verb_len;
	char *arg;

	if (memchr(line, '\0', len) || memchr(line, '\r', len)) {
		snprintf(s->verb, sizeof s->verb, "command");
		reply(s, 400, "syntax: NUL or CR in a command");
		return;
	}
	verb_len = strcspn(line, " \t");
	arg = trim_blanks(line + verb_len);
	for (c = commands; c->verb; c++)
		if (strlen(c->verb) == verb_len && strncasecmp(line, c->verb, verb_len) == 0)
			break;
	snprintf(s->verb, sizeof s->verb, "%.*s", (int)verb_len, line);
	if (!c->verb)
		reply(s, 400, "unknown command");
	else if (s->state < c->needs)
		reply(s, 403, missing_step[s->state + 1]);
	else
		c->run(s, arg);
}

static void read_command(struct session *s)
{
	char line[COMMAND_LINE_MAX + 1];
	int n = reader_line(&s->in, line, COMMAND_LINE_MAX,
			    line_deadline(s->cfg->timeout, s->session_end));

	if (n == -ETIMEDOUT) {
		time_out(s);
		return;
	}
	if (n < 0 && n != -E2BIG) {
		s->end = END_EOF;
		s->done = 1;
		return;
	}
	s->junk++;	/* a command that delivers or reads mail sets it back to 0 */
	if (n == -E2BIG) {
		snprintf(s->verb, sizeof s->verb, "command");
		reply(s, 400, "line too long");
	} else {
		run_command(s, line, (size_t)n);
	}
	if (!s->done && s->junk >= s->cfg->max_junk)
		close_with(s, "403 FORBIDDEN too many commands without mail",
			   "Too many commands without mail", END_ERRORS);
}

enum session_end session_run(const struct config *cfg, struct store *st,
			     const struct session_env *env)
{
	struct session s = { .cfg = cfg, .store = st, .env = env, .state = FRESH,
			     .end = END_EOF };
	char greeting[320];
	int n;

	s.session_end = io_now_ms() + cfg->max_session * 1000ULL;
	writer_init(&s.out, env->out_fd, cfg->timeout * 1000U);
	reader_init(&s.in, env->in_fd, &s.out);
	spool_init(&s.spool, st->dirfd);
	n = snprintf(greeting, sizeof greeting, "%s My_SMTP ready", cfg->hostname);
	reply(&s, 200, n < 0 || (size_t)n >= sizeof greeting ? "My_SMTP ready" : greeting);
	while (!s.done && s.out.error == 0)
		read_command(&s);
	if (env->ending)
		env->ending(env->ending_ctx);
	if (writer_flush(&s.out) < 0 && s.end == END_QUIT)
		s.end = END_IO;
	transaction_free(&s.tx);
	spool_free(&s.spool);
	return s.end;
}
