/* smtp.c: the standard SMTP dialect (RFC 5321, for mysmtpd -S) on the
   session engine (session.h). Only CRLF "." CRLF ends DATA. A bare LF ends
   a command or message line as CRLF would, as Postfix's
   smtpd_forbid_bare_newline = normalize does; with bare_lf_reject a command
   line ending in a bare LF, and a message holding one, get "550 5.5.2 HOST
   Error: bare <LF> received" (= reject), and the session stays in step.
   Either way "\n.\n", "\r\n.\n" and "\n.\r\n" never end a message. A handler
   first checks state and arguments and replies with the error, and only
   then acts; the table says which commands exist and what each needs. */
#define _GNU_SOURCE
#include "smtp.h"
#include "mail/address.h"
#include "mail/data.h"
#include "net/io.h"
#include "engine/login.h"
#include "mail/mboxrd.h"
#include "mail/rfc5322.h"
#include "mail/sasl.h"
#include "mail/smtparg.h"
#include "engine/starttls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define HELO_MAX 255

/* One reply line: "CODE text", or "CODE-text" when more lines follow. */
static void send_line(struct session *s, int code, char sep, const char *text)
{
	char line[COMMAND_LINE_MAX];
	int n = snprintf(line, sizeof line, "%d%c%s", code, sep, text);

	if (n < 0 || (size_t)n >= sizeof line)
		n = snprintf(line, sizeof line, "%d%c", code, sep);
	writer_put(&s->out, line, (size_t)n);
	writer_put(&s->out, "\r\n", 2);
}

/* 421 with the host name (RFC 5321 section 3.8): the session's last line. */
static void send_421(struct session *s, const char *status, const char *why)
{
	char text[COMMAND_LINE_MAX];
	int n = snprintf(text, sizeof text, "%s %s %s", status, s->cfg->hostname, why);

	send_line(s, 421, ' ', n < 0 || (size_t)n >= sizeof text ? status : text);
}

/* Reply "CODE text". Every 4xx and 5xx is a refusal and counts as a client
   error, but 451 and 452: the server's own trouble, or a recipient past -r,
   which a pipelining client cannot know of before it sends (Postfix's
   smtpd_recipient_overshoot_limit). */
static void reply(struct session *s, int code, const char *text)
{
	char line[COMMAND_LINE_MAX];
	int n = snprintf(line, sizeof line, "%d %s", code, text);

	if (n < 0 || (size_t)n >= sizeof line)
		n = snprintf(line, sizeof line, "%d ", code);
	session_send_line(s, line, (size_t)n);
	session_replied(s, line, code >= 400, code >= 400 && code != 451 && code != 452);
}



/* The EHLO/HELO argument: one word of printable ASCII (a domain or address
   literal is usual; clients send what they have, so no more is asked). */
static int helo_word_ok(const char *arg)
{
	size_t len = strlen(arg);

	if (len == 0 || len > HELO_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (arg[i] <= ' ' || arg[i] >= 127)
			return 0;
	return 1;
}

static void greet(struct session *s, char *arg, int esmtp)
{
	char size[64];
	int n;

	if (!helo_word_ok(arg)) {
		reply(s, 501, esmtp ? "5.5.4 Syntax: EHLO hostname" : "5.5.4 Syntax: HELO hostname");
		return;
	}
	session_reset_transaction(s);
	memcpy(s->helo, arg, strlen(arg) + 1);
	s->state = GREETED;
	s->esmtp = esmtp;
	LOG(s, "%s received from %s", esmtp ? "EHLO" : "HELO", s->helo);
	if (!esmtp) {
		reply(s, 250, s->cfg->hostname);
		return;
	}
	n = snprintf(size, sizeof size, "SIZE %llu", (unsigned long long)s->cfg->max_message);
	send_line(s, 250, '-', s->cfg->hostname);
	send_line(s, 250, '-', "PIPELINING");
	send_line(s, 250, '-', n < 0 || (size_t)n >= sizeof size ? "SIZE" : size);
	send_line(s, 250, '-', "8BITMIME");
	if (starttls_offered(s))
		send_line(s, 250, '-', "STARTTLS");
	if (login_accounts_on(s) && login_allowed(s))
		send_line(s, 250, '-', s->tls ? "AUTH PLAIN LOGIN" : "AUTH PLAIN");
	reply(s, 250, "ENHANCEDSTATUSCODES");
}

static void cmd_ehlo(struct session *s, char *arg)
{
	greet(s, arg, 1);
}

static void cmd_helo(struct session *s, char *arg)
{
	greet(s, arg, 0);
}

/* The reply to a MAIL FROM or RCPT TO argument smtparg refused. */
static void refuse_path(struct session *s, enum smtparg_verdict v, const struct smtp_path *p,
			const char *command, const char *bad_path_status, const char *whose)
{
	if (v == SMTPARG_UNKNOWN_PARAM)
		session_replyf(s, 555, "5.5.4 Unsupported option: %s", p->param);
	else if (v == SMTPARG_BAD_PATH)
		session_replyf(s, 553, "%s Error: bad %s address syntax", bad_path_status, whose);
	else
		session_replyf(s, 501, "5.5.4 Syntax: %s:<address>", command);
}

/* 0 when accounts are off or were read; else 451 is sent. */
static int accounts_ready(struct session *s)
{
	if (!login_accounts_on(s) || login_accounts_ready(s))
		return 0;
	reply(s, 451, "4.3.5 Error: accounts unavailable");
	return -EIO;
}

/* A sender that names a local account must be the one logged in as. */
static int sender_allowed(const struct session *s, const char *sender)
{
	return !login_accounts_on(s) || !login_has_account(s, sender) ||
	       strcmp(sender, s->user) == 0;
}

static void cmd_mail(struct session *s, char *arg)
{
	struct smtp_path p;
	enum smtparg_verdict rc;

	if (s->state != GREETED) {
		reply(s, 503, "5.5.1 Error: nested MAIL command");
		return;
	}
	if (s->cfg->submission && !s->user[0]) {	/* RFC 6409 section 4.3 */
		reply(s, 530, "5.7.0 Authentication required");
		return;
	}
	rc = smtparg_mail(arg, &p);
	if (rc != SMTPARG_OK)
		refuse_path(s, rc, &p, "MAIL FROM", "5.1.7", "sender");
	else if (p.has_size && p.size > s->cfg->max_message)
		reply(s, 552, "5.3.4 Message size exceeds fixed limit");
	else if (accounts_ready(s) < 0)
		return;
	else if (!sender_allowed(s, p.address))
		reply(s, 550, "5.7.1 Error: sender is a local account; log in as it first");
	else {
		memcpy(s->tx.sender, p.address, sizeof p.address);
		s->state = IN_MAIL;
		session_did_mail_work(s);
		LOG(s, "MAIL FROM: <%s>", s->tx.sender);
		reply(s, 250, "2.1.0 Ok");
	}
}

/* Is address postmaster@HOSTNAME, which RFC 5321 section 4.5.1 says must be taken? */
static int is_postmaster(const struct session *s, const char *address)
{
	return strncmp(address, "postmaster@", 11) == 0 &&
	       strcasecmp(address + 11, s->cfg->hostname) == 0;
}

static void cmd_rcpt(struct session *s, char *arg)
{
	struct smtp_path p;
	enum smtparg_verdict rc = smtparg_rcpt(arg, s->cfg->hostname, &p);

	if (rc != SMTPARG_OK)
		refuse_path(s, rc, &p, "RCPT TO", "5.1.3", "recipient");
	else if (accounts_ready(s) < 0)
		return;
	else if (login_accounts_on(s) && !login_is_local(s, p.address) && !is_postmaster(s, p.address))
		reply(s, 550, "5.7.1 relaying denied");
	else if (!session_domain_served(s->cfg, p.address) && !is_postmaster(s, p.address))
		reply(s, 550, "5.1.2 Error: domain not served here");
	else if (strlen(p.address) > STORE_ADDRESS_MAX)
		reply(s, 553, "5.1.3 Error: address too long for a mailbox file");
	else if (login_accounts_on(s) && !login_has_account(s, p.address))
		reply(s, 550, "5.1.1 Error: no such mailbox");
	else if (session_tx_has(&s->tx, p.address))
		reply(s, 250, "2.1.5 Ok");
	else if (s->tx.nrcpt >= s->cfg->max_recipients)
		reply(s, 452, "4.5.3 Error: too many recipients");
	else if (store_mailbox_full(s->store, p.address))
		reply(s, 552, "5.2.2 Error: mailbox full");
	else if (session_tx_add(&s->tx, p.address) < 0)
		reply(s, 451, "4.3.0 Error: out of memory");
	else {
		session_did_mail_work(s);
		LOG(s, "RCPT TO: %s", p.address);
		reply(s, 250, "2.1.5 Ok");
	}
}

static void quoter_sink(void *quoter, const char *text, size_t len)
{
	from_quoter_feed(quoter, text, len);
}

/* Read the message up to CRLF "." CRLF into the spool, From-quoted, looking
   at its header section on the way: 0, or the end of the session. */
static int receive_text(struct session *s, struct data_rx *d, struct msg_scan *scan)
{
	struct from_quoter q;
	int rc;

	spool_reset(&s->spool);
	msg_scan_init(scan, spool_sink, &s->spool);
	from_quoter_init(&q, +1, msg_scan_sink, scan);
	data_rx_init_strict(d, s->cfg->max_message, quoter_sink, &q);
	d->normalize = !s->cfg->bare_lf_reject;
	rc = session_receive(s, d);
	from_quoter_finish(&q);
	return rc;
}

/* Deliver the spooled message to every recipient, and say how it went. */
static void store_message_now(struct session *s, const struct msg_scan *scan)
{
	char id[MESSAGE_ID_MAX + 1], text[MESSAGE_ID_MAX + 32];
	int has_header = scan->body_start > 0;
	struct envelope e = {
		.sender = s->tx.sender, .helo = s->helo, .peer = s->env->peer,
		.hostname = s->cfg->hostname,
		.kind = RECORD_SMTP, .esmtp = s->esmtp, .body_start = scan->body_start,
		.add_date = !has_header || !scan->has_date,
		.add_message_id = !has_header || !scan->has_message_id,
	};
	static const struct { int code; const char *text; } said[] = {
		[NO_ROOM] = { 452, "4.3.1 Error: insufficient system storage" },
		[MAILBOX_FULL] = { 552, "5.2.2 Error: mailbox full" },
		[STORE_FAILED] = { 451, "4.3.0 Error: the store failed" },
	};
	int err, n;
	enum delivery_outcome how = session_deliver(s, &e, id, &err);

	if (how != DELIVERED) {
		reply(s, said[how].code, said[how].text);
		return;
	}
	n = snprintf(text, sizeof text, "2.0.0 Ok: stored as %s", id);
	reply(s, 250, n < 0 || (size_t)n >= sizeof text ? "2.0.0 Ok" : text);
}

/* After the final dot: refuse the message, or store it. The size is counted
   as RFC 1870 does: CRLF as two octets, dot-stuffing undone. */
static void judge_message(struct session *s, const struct data_rx *d,
			  const struct msg_scan *scan)
{
	uint64_t size = d->size + (d->lines - 1);

	if (size > s->cfg->max_message || d->size > s->cfg->max_message) {
		LOG(s, "DATA received, too large.");
		reply(s, 552, "5.3.4 Message size exceeds fixed limit");
	} else if (d->bare_lf && s->cfg->bare_lf_reject) {
		LOG(s, "DATA received, bare <LF>; refused.");
		session_replyf(s, 550, "5.5.2 %s Error: bare <LF> received", s->cfg->hostname);
	} else if (d->has_nul) {
		reply(s, 554, "5.6.0 Error: message holds a NUL octet");
	} else if (s->spool.error) {
		LOG(s, "DATA received, spool failed: %s", strerror(-s->spool.error));
		reply(s, 451, "4.3.0 Error: cannot hold the message");
	} else {
		store_message_now(s, scan);
	}
}

static void cmd_data(struct session *s, char *arg)
{
	struct data_rx d;
	struct msg_scan scan;

	if (s->tx.nrcpt == 0) {
		reply(s, 554, "5.5.1 Error: no valid recipients");
		return;
	}
	if (*arg) {
		reply(s, 501, "5.5.4 Syntax: DATA");
		return;
	}
	reply(s, 354, "End data with <CR><LF>.<CR><LF>");
	if (receive_text(s, &d, &scan) < 0)
		return;
	judge_message(s, &d, &scan);
	spool_reset(&s->spool);
	session_reset_transaction(s);
}

enum mechanism { MECH_NONE, MECH_PLAIN, MECH_LOGIN };

static enum mechanism mechanism_of(const char *name, size_t len)
{
	if (len == 5 && strncasecmp(name, "PLAIN", 5) == 0)
		return MECH_PLAIN;
	if (len == 5 && strncasecmp(name, "LOGIN", 5) == 0)
		return MECH_LOGIN;
	return MECH_NONE;
}

/* The PLAIN response, on the AUTH line or after "334 ", or LOGIN's user
   name and password: 0, or -1 with the reply sent. */
static int sasl_response(struct session *s, enum mechanism m, const char *initial,
			 struct sasl_plain *p)
{
	static const struct { int code; const char *text; } said[] = {
		[PLAIN_TOO_LONG] = { 500, "5.5.6 Error: authentication exchange line is too long" },
		[PLAIN_ABORTED] = { 501, "5.7.0 Error: authentication aborted" },
		[PLAIN_UNDECODABLE] = { 501, "5.5.2 Error: cannot decode response" },
	};
	enum plain_read rc = m == MECH_LOGIN ? login_read_login(s, initial, "334 ", p) :
			     login_read_plain(s, initial, "334 ", p);

	if (rc != PLAIN_OK && rc != PLAIN_ENDED)
		reply(s, said[rc].code, said[rc].text);
	return rc == PLAIN_OK ? 0 : -1;
}

static void plain_login(struct session *s, struct sasl_plain *p)
{
	switch (login_check_plain(s, p)) {
	case LOGIN_OK: reply(s, 235, "2.7.0 Authentication successful"); break;
	case LOGIN_FAILED: reply(s, 535, "5.7.8 Error: authentication failed"); break;
	case LOGIN_TOO_MANY: session_end_by(s, ENDING_AUTH); break;
	case LOGIN_ERROR: reply(s, 454, "4.7.0 Temporary authentication failure"); break;
	}
}

/* AUTH PLAIN [initial-response] (RFC 4954, RFC 4616), and AUTH LOGIN over
   TLS only. */
static void cmd_auth(struct session *s, char *arg)
{
	struct sasl_plain p;
	size_t mech = strcspn(arg, " ");
	const char *initial = arg + mech + (arg[mech] == ' ');
	enum mechanism m = mechanism_of(arg, mech);

	if (!login_accounts_on(s))
		reply(s, 502, "5.5.1 Error: command not implemented");
	else if (s->user[0])
		reply(s, 503, "5.5.1 Error: already authenticated");
	else if (s->state != GREETED)
		reply(s, 503, "5.5.1 Error: MAIL transaction in progress");
	else if (!login_allowed(s))
		reply(s, 538, "5.7.11 Encryption required for requested authentication mechanism");
	else if (m == MECH_NONE)
		reply(s, 504, "5.5.4 Unsupported authentication mechanism");
	else if (m == MECH_LOGIN && !s->tls)
		reply(s, 538, "5.7.11 Encryption required for requested authentication mechanism");
	else if (!login_accounts_ready(s))
		reply(s, 454, "4.7.0 Temporary authentication failure");
	else if (sasl_response(s, m, initial, &p) == 0)
		plain_login(s, &p);
	explicit_bzero(&p, sizeof p);
}

/* STARTTLS (RFC 3207): "220 2.0.0", then the handshake and a fresh session. */
static void cmd_starttls(struct session *s, char *arg)
{
	(void)arg;
	switch (starttls_check(s)) {
	case STARTTLS_UNAVAILABLE: reply(s, 502, "5.5.1 Error: command not implemented"); break;
	case STARTTLS_ACTIVE: reply(s, 554, "5.5.1 Error: TLS already active"); break;
	case STARTTLS_PIPELINED: session_end_by(s, ENDING_PIPELINED_TLS); break;
	case STARTTLS_OK:
		reply(s, 220, "2.0.0 Ready to start TLS");
		starttls_handshake(s);
		break;
	}
}

static void cmd_vrfy(struct session *s, char *arg)
{
	if (!*arg)
		reply(s, 501, "5.5.4 Syntax: VRFY address");
	else
		reply(s, 252, "2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static const struct command commands[] = {
	{ "EHLO",     FRESH,   0, cmd_ehlo, 0, NULL, 0 },
	{ "HELO",     FRESH,   0, cmd_helo, 0, NULL, 0 },
	{ "MAIL",     GREETED, 0, cmd_mail, 0, NULL, 0 },
	{ "RCPT",     IN_MAIL, 0, cmd_rcpt, 0, NULL, 0 },
	{ "DATA",     IN_MAIL, 0, cmd_data, 0, NULL, 0 },	/* 554 without recipients comes first */
	{ "RSET",     FRESH,   1, session_cmd_reset, 250, "2.0.0 Ok", 0 },
	{ "NOOP",     FRESH,   0, session_cmd_reply, 250, "2.0.0 Ok", 0 },
	{ "VRFY",     FRESH,   0, cmd_vrfy, 0, NULL, 0 },
	{ "HELP",     FRESH,   0, session_cmd_reply, 214,
	  "2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT", 0 },
	{ "QUIT",     FRESH,   1, session_cmd_quit, 221, "2.0.0 Bye", 0 },
	{ "AUTH",     GREETED, 0, cmd_auth, 0, NULL, 1 },
	{ "EXPN",     FRESH,   0, session_cmd_reply, 502, "5.5.1 Error: command not implemented", 0 },
	{ "TURN",     FRESH,   0, session_cmd_reply, 502, "5.5.1 Error: command not implemented", 0 },
	{ "ETRN",     FRESH,   0, session_cmd_reply, 502, "5.5.1 Error: command not implemented", 0 },
	{ "ATRN",     FRESH,   0, session_cmd_reply, 502, "5.5.1 Error: command not implemented", 0 },
	{ "BDAT",     FRESH,   0, session_cmd_reply, 502, "5.5.1 Error: command not implemented", 0 },
	{ "STARTTLS", GREETED, 1, cmd_starttls, 0, NULL, 0 },
	{ "SEND",     FRESH,   0, session_cmd_reply, 502, "5.5.1 Error: command not implemented", 0 },
	{ "SOML",     FRESH,   0, session_cmd_reply, 502, "5.5.1 Error: command not implemented", 0 },
	{ "SAML",     FRESH,   0, session_cmd_reply, 502, "5.5.1 Error: command not implemented", 0 },
	{ NULL,       FRESH,   0, NULL, 0, NULL, 0 },
};

static void refuse(struct session *s, enum refusal why, const struct command *c)
{
	switch (why) {
	case REFUSE_TOO_LONG:
		reply(s, 500, "5.5.2 Error: line too long");
		break;
	case REFUSE_BAD_OCTET:
		reply(s, 500, "5.5.2 Error: bad syntax");
		break;
	case REFUSE_BARE_LF:
		session_replyf(s, 550, "5.5.2 %s Error: bare <LF> received", s->cfg->hostname);
		break;
	case REFUSE_UNKNOWN:
		reply(s, 500, "5.5.2 Error: command not recognized");
		break;
	case REFUSE_STATE:
		reply(s, 503, c->needs == GREETED ? "5.5.1 Error: send HELO/EHLO first" :
			      "5.5.1 Error: need MAIL command");
		break;
	case REFUSE_ARGUMENT:
		session_replyf(s, 501, "5.5.4 Syntax: %s", c->verb);
	}
}

static void last_words(struct session *s, enum ending why)
{
	switch (why) {
	case ENDING_TIMEOUT:
		LOG(s, "Timeout; closing.");
		send_421(s, "4.4.2", "Error: timeout exceeded");
		break;
	case ENDING_LIFETIME:
		send_421(s, "4.4.2", "Error: session time limit exceeded");
		break;
	case ENDING_ERRORS:
		send_421(s, "4.7.0", "Error: too many errors");
		break;
	case ENDING_JUNK:
		send_421(s, "4.7.0", "Error: too many commands without mail");
		break;
	case ENDING_AUTH:
		send_421(s, "4.7.0", "Error: too many failed authentications");
		break;
	case ENDING_PIPELINED_TLS:
		send_421(s, "4.7.0", "Error: no commands may follow STARTTLS before the handshake");
	}
}

static void smtp_greet(struct session *s)
{
	char greeting[320];
	int n = snprintf(greeting, sizeof greeting, "%s ESMTP My_SMTP", s->cfg->hostname);

	send_line(s, 220, ' ', n < 0 || (size_t)n >= sizeof greeting ? "ESMTP My_SMTP" : greeting);
}

const struct dialect smtp_dialect = {
	.commands = commands, .strict = 1, .greet = smtp_greet, .reply = reply, .refuse = refuse,
	.last_words = last_words,
	.busy_line = "421 4.7.0 {host} Error: too many connections\r\n",
	.unavailable_line = "421 4.3.0 Error: mailbox directory unavailable\r\n",
};
