/* protocol.c: the My_SMTP dialect (PROTOCOL.md sections 1-2) on the session
   engine (session.h): its command table, its handlers and every reply. A
   handler first checks state and arguments and replies with the error, and
   only then acts; the table says which commands exist, the state each
   needs, and which take no argument. */
#define _GNU_SOURCE
#include "protocol.h"
#include "engine/mailsession.h"
#include "mail/address.h"
#include "mail/rfc5322.h"
#include "net/io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* What the dialect keeps of a session (mailsession.h): delivery and
   mail read back, and login. */
static struct delivery *dl(struct session *s)
{
	return &mail_session(s)->dl;
}

static struct login *login_of(struct session *s)
{
	return &mail_session(s)->login;
}

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
	session_send_line(s, line, (size_t)n);
	session_replied(s, line, code == 400 || code == 401 || code == 403,
			code == 400 || code == 403);
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

static int helo_domain_ok(struct session *s, const char *address)
{
	return s->cfg->any_domain || address_in_domain(address, dl(s)->helo);
}

/* May this session use address as sender, or read its mailbox? With
   accounts, only the address logged in as (section 7); without, the
   HELO-domain rule (section 2). 0, or the refusal sent. */
static int own_address(struct session *s, const char *address, const char *not_helo,
		       const char *not_own)
{
	if (!login_accounts_on(login_of(s))) {
		if (helo_domain_ok(s, address))
			return 0;
		reply(s, 403, not_helo);
	} else if (login_unavailable(login_of(s))) {
		reply(s, 500, "accounts unavailable");
	} else if (login_of(s)->user[0] && strcmp(address, login_of(s)->user) == 0) {
		return 0;
	} else {
		reply(s, 403, login_of(s)->user[0] ? not_own : "log in first (AUTH)");
	}
	return -EPERM;
}

/* "AUTH <address> <password>": the password is the rest of the line after
   one space, as sent; the engine wipes the line afterwards. */
static void cmd_auth(struct session *s, char *arg)
{
	char *password = strchr(arg, ' ');

	if (!login_accounts_on(login_of(s)))
		reply(s, 403, "no accounts on this server: every mailbox is open");
	else if (login_unavailable(login_of(s)))
		reply(s, 500, "accounts unavailable");
	else if (!password || password == arg || !password[1])
		reply(s, 400, "syntax: AUTH <user@domain> <password>");
	else if (login_of(s)->user[0])
		reply(s, 403, "already logged in");
	else if (s->state != GREETED)
		reply(s, 403, "a transaction is already open");
	else if (!login_allowed(login_of(s)))
		reply(s, 403, "TLS required");
	else {
		*password++ = '\0';
		switch (login_check(login_of(s), arg, password)) {
		case LOGIN_OK: reply(s, 200, "OK"); break;
		case LOGIN_FAILED: reply(s, 403, "wrong address or password"); break;
		case LOGIN_TOO_MANY: session_end_by(s, ENDING_AUTH); break;
		case LOGIN_ERROR: reply(s, 500, "out of memory"); break;
		}
	}
}

/* STARTTLS: "200 OK ready to start TLS", then the handshake and a fresh
   session; refused when anything was sent after it (it is never run). */
static void cmd_starttls(struct session *s, char *arg)
{
	static const struct said said[] = {
		[STARTTLS_OK] = { 200, "OK ready to start TLS" },
		[STARTTLS_UNAVAILABLE] = { 403, "TLS not available" },
		[STARTTLS_ACTIVE] = { 403, "TLS already started" },
	};

	(void)arg;
	if (starttls_command(&mail_session(s)->tls, said))
		mail_session_afresh(s);
}

static void cmd_helo(struct session *s, char *arg)
{
	if (helo_id_valid(arg, strlen(arg)) < 0 || strlen(arg) >= sizeof dl(s)->helo) {
		reply(s, 400, "HELO needs a host name or [address]");
		return;
	}
	mail_session_reset(s);
	memcpy(dl(s)->helo, arg, strlen(arg) + 1);
	s->state = GREETED;
	LOG(s, "HELO received from %s", dl(s)->helo);
	reply(s, 200, "OK");
}

static void cmd_mail(struct session *s, char *arg)
{
	char address[ADDRESS_MAX + 1];

	if (s->state != GREETED)
		reply(s, 403, "a transaction is already open");
	else if (parse_prefixed_address(arg, "FROM:", address) < 0)
		reply(s, 400, "syntax: MAIL FROM: <user@domain>");
	else if (own_address(s, address, "sender not in the HELO domain",
			     "sender is not the address logged in as") < 0)
		return;
	else {
		memcpy(dl(s)->tx.sender, address, sizeof address);
		s->state = IN_MAIL;
		session_did_mail_work(s);
		LOG(s, "MAIL FROM: %s", dl(s)->tx.sender);
		reply(s, 200, "OK");
	}
}

static void cmd_rcpt(struct session *s, char *arg)
{
	static const struct said said[] = {
		[RCPT_ADDED] = { 200, "OK" },
		[RCPT_AGAIN] = { 200, "OK" },
		[RCPT_NO_ACCOUNTS] = { 500, "accounts unavailable" },
		[RCPT_RELAY] = { 403, "relaying denied" },
		[RCPT_DOMAIN] = { 403, "domain not served here" },
		[RCPT_TOO_LONG] = { 403, "address too long for a mailbox file" },
		[RCPT_NO_MAILBOX] = { 401, "no such mailbox" },
		[RCPT_TOO_MANY] = { 403, "too many recipients" },
		[RCPT_FULL] = { 403, "mailbox full" },
		[RCPT_NO_MEMORY] = { 500, "out of memory" },
	};
	char address[ADDRESS_MAX + 1];
	enum rcpt_verdict v;

	if (parse_prefixed_address(arg, "TO:", address) < 0) {
		reply(s, 400, "syntax: RCPT TO: <user@domain>");
		return;
	}
	v = delivery_add_rcpt(dl(s), s, login_of(s), address, 0);
	if (v == RCPT_ADDED)
		s->state = IN_RCPT;
	reply(s, said[v].code, said[v].text);
}

/* A text with a header section of its own is joined to ours, with no empty
   line between: From, Date and Message-ID are ours only where it has none. */
static void envelope(const struct msg_scan *scan, struct envelope *e)
{
	int headed = rfc5322_headed(scan);

	e->kind = headed ? RECORD_HEADED : RECORD_MYSMTP;
	e->body_start = headed ? scan->body_start : 0;
	e->add_from = !scan->has_from;
	e->add_date = !scan->has_date;
	e->add_message_id = !scan->has_message_id;
}

static void cmd_data(struct session *s, char *arg)
{
	static const struct delivery_kind kind = { .strict = 0, .envelope = envelope };
	static const struct said said[] = {
		[DELIVERED] = { 200, "Message stored successfully" },
		[HAS_NUL] = { 400, "message holds a NUL octet" },
		[SPOOL_FAILED] = { 500, "cannot hold the message" },
		[NO_ROOM] = { 500, "not enough free space in the store" },
		[MAILBOX_FULL] = { 403, "mailbox full" },
		[STORE_FAILED] = { 500, "the store failed" },
	};
	char id[MESSAGE_ID_MAX + 1];
	enum delivery_outcome how;

	(void)arg;
	reply(s, 200, "Enter your message (end with a single dot '.'):");
	how = delivery_take(dl(s), s, &kind, id);
	if (how == DELIVERY_ENDED)
		return;
	if (how == TOO_LARGE)
		session_replyf(s, 403, "message larger than %llu octets",
			       (unsigned long long)s->cfg->max_message);
	else
		reply(s, said[how].code, said[how].text);
	mail_session_reset(s);
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
	return own_address(s, address, "mailbox not in the HELO domain", "not your mailbox");
}

/* How opening address's mailbox went (rc): 0, or 401/500 sent and rc. */
static int mailbox_opened(struct session *s, const char *address, int rc)
{
	if (rc == -ENOENT)
		reply(s, 401, login_accounts_on(login_of(s)) ? "no such message" : "no such mailbox");
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
	session_send_line(s, line, (size_t)n);
	return s->out.error;
}

static void cmd_list(struct session *s, char *arg)
{
	char address[ADDRESS_MAX + 1];
	struct mailbox *mb;
	int rc;

	if (readable_mailbox(s, arg, strlen(arg), address) < 0)
		return;
	LOG(s, "LIST %s", address);
	rc = store_mailbox_open(dl(s)->store, address, &mb);
	if (rc == -ENOENT && login_accounts_on(login_of(s))) {
		/* One's own mailbox, before any mail has come: empty. */
		reply(s, 200, "OK");
	} else if (mailbox_opened(s, address, rc) < 0) {
		return;
	} else {
		reply(s, 200, "OK");
		rc = store_list(mb, list_line, s);
		store_mailbox_close(mb);
		if (rc < 0) {
			abort_reply(s, rc);
			return;
		}
	}
	session_send_line(s, ".", 1);
	session_did_mail_work(s);
	LOG(s, "Emails retrieved; list sent.");
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
	const struct spool *text;
	char line[FROM_SENDER_MAX + 16];
	int rc = store_message_copy(mb, id, &m, &text);

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
	session_send_line(s, line, (size_t)snprintf(line, sizeof line, "From: %s", m.sender));
	session_send_line(s, line, (size_t)snprintf(line, sizeof line, "Date: %s", m.date));
	rc = session_send_text(s, text);
	if (rc < 0) {
		abort_reply(s, rc);
		return;
	}
	session_send_line(s, ".", 1);
	session_did_mail_work(s);
	LOG(s, "Email with id %llu sent.", (unsigned long long)id);
}

static void cmd_get_mail(struct session *s, char *arg)
{
	char address[ADDRESS_MAX + 1];
	struct mailbox *mb;
	size_t addr_len;
	uint64_t id;

	if (parse_get_args(arg, &addr_len, &id) < 0) {
		reply(s, 400, "syntax: GET_MAIL <user@domain> <id from 1>");
		return;
	}
	if (readable_mailbox(s, arg, addr_len, address) < 0)
		return;
	LOG(s, "GET_MAIL %s %llu", address, (unsigned long long)id);
	if (mailbox_opened(s, address, store_mailbox_open(dl(s)->store, address, &mb)) < 0)
		return;
	send_message(s, mb, id);
	store_mailbox_close(mb);
}

/* DELETE <address> <id> (PROTOCOL.md section 9): durable before the reply;
   the later messages move up one. Without accounts, only with --open-delete:
   else any client could delete any mailbox's mail. */
static void cmd_delete(struct session *s, char *arg)
{
	char address[ADDRESS_MAX + 1];
	size_t addr_len;
	uint64_t id;
	int rc;

	if (!login_accounts_on(login_of(s)) && !s->cfg->open_delete) {
		reply(s, 403, "deleting needs accounts");
		return;
	}
	if (parse_get_args(arg, &addr_len, &id) < 0) {
		reply(s, 400, "syntax: DELETE <user@domain> <id from 1>");
		return;
	}
	if (readable_mailbox(s, arg, addr_len, address) < 0)
		return;
	LOG(s, "DELETE %s %llu", address, (unsigned long long)id);
	rc = store_delete(dl(s)->store, address, id);
	if (rc == -ENOENT) {
		reply(s, 401, "no such message");
		return;
	}
	if (rc < 0) {
		LOG(s, "Message %llu not deleted: %s", (unsigned long long)id, strerror(-rc));
		reply(s, 500, "cannot delete the message");
		return;
	}
	session_did_mail_work(s);
	LOG(s, "Email with id %llu deleted.", (unsigned long long)id);
	reply(s, 200, "OK");
}

static const struct command commands[] = {
	{ .verb = "HELO", .run = cmd_helo },
	{ .verb = "MAIL", .needs = GREETED, .run = cmd_mail },
	{ .verb = "RCPT", .needs = IN_MAIL, .run = cmd_rcpt },
	{ .verb = "DATA", .needs = IN_RCPT, .no_argument = 1, .run = cmd_data },
	{ .verb = "LIST", .needs = GREETED, .run = cmd_list },
	{ .verb = "GET_MAIL", .needs = GREETED, .run = cmd_get_mail },
	{ .verb = "DELETE", .needs = GREETED, .run = cmd_delete },
	{ .verb = "AUTH", .needs = GREETED, .run = cmd_auth, .secret = 1 },
	{ .verb = "STARTTLS", .no_argument = 1, .run = cmd_starttls },
	{ .verb = "NOOP", .run = session_cmd_reply, .code = 200, .text = "OK" },
	{ .verb = "RSET", .no_argument = 1, .run = session_cmd_reset, .code = 200, .text = "OK" },
	{ .verb = "HELP", .run = session_cmd_reply,
	  .code = 200, .text = "Commands: HELO MAIL RCPT DATA LIST GET_MAIL NOOP RSET HELP QUIT" },
	{ .verb = "QUIT", .no_argument = 1, .run = session_cmd_quit, .code = 200, .text = "Goodbye" },
	{ .verb = NULL },
};

/* The step a command sent too early is missing: the one after the state. */
static const char *const next_step[] = {
	[FRESH] = "send HELO first",
	[GREETED] = "send MAIL FROM first",
	[IN_MAIL] = "send RCPT TO first",
};

static void refuse(struct session *s, enum refusal why, const struct command *c)
{
	char text[64];

	switch (why) {
	case REFUSE_TOO_LONG:
		reply(s, 400, "line too long");
		break;
	case REFUSE_BAD_OCTET:
	case REFUSE_BARE_LF:
		reply(s, 400, "syntax: NUL or CR in a command");
		break;
	case REFUSE_UNKNOWN:
		reply(s, 400, "unknown command");
		break;
	case REFUSE_STATE:
		reply(s, 403, next_step[s->state]);
		break;
	case REFUSE_ARGUMENT:
		snprintf(text, sizeof text, "syntax: %s takes no argument", c->verb);
		reply(s, 400, text);
	}
}

static void last_words(struct session *s, enum ending why)
{
	static const char *const line[] = {
		[ENDING_ERRORS] = "403 FORBIDDEN too many errors",
		[ENDING_JUNK] = "403 FORBIDDEN too many commands without mail",
		[ENDING_AUTH] = "403 FORBIDDEN too many failures",
		[ENDING_PIPELINED_TLS] = "400 ERR no commands may follow STARTTLS before the handshake",
	};

	if (why == ENDING_TIMEOUT || why == ENDING_LIFETIME)
		reply(s, 500, why == ENDING_TIMEOUT ? "timeout" : "session time limit reached");
	else
		session_send_line(s, line[why], strlen(line[why]));
}

static void greet(struct session *s)
{
	char greeting[320];
	int n = snprintf(greeting, sizeof greeting, "%s My_SMTP ready", s->cfg->hostname);

	if (!login_accounts_on(login_of(s)))
		LOG(s, "No accounts file: any client may read any mailbox.");
	reply(s, 200, n < 0 || (size_t)n >= sizeof greeting ? "My_SMTP ready" : greeting);
}

const struct dialect mysmtp_dialect = {
	.commands = commands, .greet = greet, .reply = reply, .refuse = refuse,
	.last_words = last_words, MAIL_SESSION_HOOKS,
	.busy_line = "500 SERVER ERROR too many connections\r\n",
	.unavailable_line = "500 SERVER ERROR mailbox directory unavailable\r\n",
};
