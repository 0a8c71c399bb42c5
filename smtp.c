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
#include "engine/mailsession.h"
#include "mail/address.h"
#include "mail/rfc5322.h"
#include "mail/sasl.h"
#include "mail/smtparg.h"
#include "net/io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define HELO_MAX 255

/* What the dialect keeps of a session (mailsession.h): delivery and login. */
static struct delivery *dl(struct session *s)
{
	return &mail_session(s)->dl;
}

static struct login *login_of(struct session *s)
{
	return &mail_session(s)->login;
}

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
	mail_session_reset(s);
	memcpy(dl(s)->helo, arg, strlen(arg) + 1);
	s->state = GREETED;
	dl(s)->esmtp = esmtp;
	LOG(s, "%s received from %s", esmtp ? "EHLO" : "HELO", dl(s)->helo);
	if (!esmtp) {
		reply(s, 250, s->cfg->hostname);
		return;
	}
	n = snprintf(size, sizeof size, "SIZE %llu", (unsigned long long)s->cfg->max_message);
	send_line(s, 250, '-', s->cfg->hostname);
	send_line(s, 250, '-', "PIPELINING");
	send_line(s, 250, '-', n < 0 || (size_t)n >= sizeof size ? "SIZE" : size);
	send_line(s, 250, '-', "8BITMIME");
	if (starttls_offered(&mail_session(s)->tls))
		send_line(s, 250, '-', "STARTTLS");
	if (login_accounts_on(login_of(s)) && login_allowed(login_of(s)))
		send_line(s, 250, '-', session_is_tls(s) ? "AUTH PLAIN LOGIN" : "AUTH PLAIN");
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

/* A sender that names a local account must be the one logged in as. */
static int sender_allowed(struct session *s, const char *sender)
{
	return !login_accounts_on(login_of(s)) || !login_has_account(login_of(s), sender) ||
	       strcmp(sender, login_of(s)->user) == 0;
}

static void cmd_mail(struct session *s, char *arg)
{
	struct smtp_path p;
	enum smtparg_verdict rc;

	if (s->state != GREETED) {
		reply(s, 503, "5.5.1 Error: nested MAIL command");
		return;
	}
	if (s->cfg->submission && !login_of(s)->user[0]) {	/* RFC 6409 section 4.3 */
		reply(s, 530, "5.7.0 Authentication required");
		return;
	}
	rc = smtparg_mail(arg, &p);
	if (rc != SMTPARG_OK)
		refuse_path(s, rc, &p, "MAIL FROM", "5.1.7", "sender");
	else if (p.has_size && p.size > s->cfg->max_message)
		reply(s, 552, "5.3.4 Message size exceeds fixed limit");
	else if (login_unavailable(login_of(s)))
		reply(s, 451, "4.3.5 Error: accounts unavailable");
	else if (!sender_allowed(s, p.address))
		reply(s, 550, "5.7.1 Error: sender is a local account; log in as it first");
	else {
		memcpy(dl(s)->tx.sender, p.address, sizeof p.address);
		s->state = IN_MAIL;
		session_did_mail_work(s);
		LOG(s, "MAIL FROM: <%s>", dl(s)->tx.sender);
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
	static const struct said said[] = {
		[RCPT_ADDED] = { 250, "2.1.5 Ok" },
		[RCPT_AGAIN] = { 250, "2.1.5 Ok" },
		[RCPT_NO_ACCOUNTS] = { 451, "4.3.5 Error: accounts unavailable" },
		[RCPT_RELAY] = { 550, "5.7.1 relaying denied" },
		[RCPT_DOMAIN] = { 550, "5.1.2 Error: domain not served here" },
		[RCPT_TOO_LONG] = { 553, "5.1.3 Error: address too long for a mailbox file" },
		[RCPT_NO_MAILBOX] = { 550, "5.1.1 Error: no such mailbox" },
		[RCPT_TOO_MANY] = { 452, "4.5.3 Error: too many recipients" },
		[RCPT_FULL] = { 552, "5.2.2 Error: mailbox full" },
		[RCPT_NO_MEMORY] = { 451, "4.3.0 Error: out of memory" },
	};
	struct smtp_path p;
	enum smtparg_verdict rc = smtparg_rcpt(arg, s->cfg->hostname, &p);
	enum rcpt_verdict v;

	if (rc != SMTPARG_OK) {
		refuse_path(s, rc, &p, "RCPT TO", "5.1.3", "recipient");
		return;
	}
	v = delivery_add_rcpt(dl(s), s, login_of(s), p.address, is_postmaster(s, p.address));
	reply(s, said[v].code, said[v].text);
}

/* SMTP's record: our header lines where the text has a header section
   without them. */
static void envelope(const struct msg_scan *scan, struct envelope *e)
{
	int has_header = scan->body_start > 0;

	e->kind = RECORD_SMTP;
	e->body_start = scan->body_start;
	e->add_date = !has_header || !scan->has_date;
	e->add_message_id = !has_header || !scan->has_message_id;
}

/* After the final dot: the message refused, or stored and its id said. */
static void say_taken(struct session *s, enum delivery_outcome how, const char *id)
{
	static const struct said said[] = {
		[TOO_LARGE] = { 552, "5.3.4 Message size exceeds fixed limit" },
		[HAS_NUL] = { 554, "5.6.0 Error: message holds a NUL octet" },
		[SPOOL_FAILED] = { 451, "4.3.0 Error: cannot hold the message" },
		[NO_ROOM] = { 452, "4.3.1 Error: insufficient system storage" },
		[MAILBOX_FULL] = { 552, "5.2.2 Error: mailbox full" },
		[STORE_FAILED] = { 451, "4.3.0 Error: the store failed" },
	};
	char text[MESSAGE_ID_MAX + 32];
	int n;

	if (how == DELIVERED) {
		n = snprintf(text, sizeof text, "2.0.0 Ok: stored as %s", id);
		reply(s, 250, n < 0 || (size_t)n >= sizeof text ? "2.0.0 Ok" : text);
	} else if (how == BARE_LF) {
		session_replyf(s, 550, "5.5.2 %s Error: bare <LF> received", s->cfg->hostname);
	} else {
		reply(s, said[how].code, said[how].text);
	}
}

static void cmd_data(struct session *s, char *arg)
{
	static const struct delivery_kind kind = { .strict = 1, .envelope = envelope };
	char id[MESSAGE_ID_MAX + 1];
	enum delivery_outcome how;

	if (dl(s)->tx.nrcpt == 0) {
		reply(s, 554, "5.5.1 Error: no valid recipients");
		return;
	}
	if (*arg) {
		reply(s, 501, "5.5.4 Syntax: DATA");
		return;
	}
	reply(s, 354, "End data with <CR><LF>.<CR><LF>");
	how = delivery_take(dl(s), s, &kind, id);
	if (how == DELIVERY_ENDED)
		return;
	say_taken(s, how, id);
	mail_session_reset(s);
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

/* How a response that is not one is refused. */
static const struct said sasl_said[] = {
	[PLAIN_TOO_LONG] = { 500, "5.5.6 Error: authentication exchange line is too long" },
	[PLAIN_ABORTED] = { 501, "5.7.0 Error: authentication aborted" },
	[PLAIN_UNDECODABLE] = { 501, "5.5.2 Error: cannot decode response" },
};

static void plain_login(struct session *s, struct sasl_plain *p)
{
	switch (login_check_plain(login_of(s), p)) {
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

	if (!login_accounts_on(login_of(s)))
		reply(s, 502, "5.5.1 Error: command not implemented");
	else if (login_of(s)->user[0])
		reply(s, 503, "5.5.1 Error: already authenticated");
	else if (s->state != GREETED)
		reply(s, 503, "5.5.1 Error: MAIL transaction in progress");
	else if (!login_allowed(login_of(s)))
		reply(s, 538, "5.7.11 Encryption required for requested authentication mechanism");
	else if (m == MECH_NONE)
		reply(s, 504, "5.5.4 Unsupported authentication mechanism");
	else if (m == MECH_LOGIN && !session_is_tls(s))
		reply(s, 538, "5.7.11 Encryption required for requested authentication mechanism");
	else if (!login_accounts_ready(login_of(s)))
		reply(s, 454, "4.7.0 Temporary authentication failure");
	else if (login_read_sasl(login_of(s), m == MECH_LOGIN, initial, "334 ", sasl_said, &p) == 0)
		plain_login(s, &p);
	explicit_bzero(&p, sizeof p);
}

/* STARTTLS (RFC 3207): "220 2.0.0", then the handshake and a fresh session. */
static void cmd_starttls(struct session *s, char *arg)
{
	static const struct said said[] = {
		[STARTTLS_OK] = { 220, "2.0.0 Ready to start TLS" },
		[STARTTLS_UNAVAILABLE] = { 502, "5.5.1 Error: command not implemented" },
		[STARTTLS_ACTIVE] = { 554, "5.5.1 Error: TLS already active" },
	};

	(void)arg;
	if (starttls_command(&mail_session(s)->tls, said))
		mail_session_afresh(s);
}

static void cmd_vrfy(struct session *s, char *arg)
{
	if (!*arg)
		reply(s, 501, "5.5.4 Syntax: VRFY address");
	else
		reply(s, 252, "2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
}

/* A command SMTP names that this server does not do. */
#define NOT_IMPLEMENTED(v) \
	{ .verb = (v), .run = session_cmd_reply, .code = 502, \
	  .text = "5.5.1 Error: command not implemented" }

static const struct command commands[] = {
	{ .verb = "EHLO", .run = cmd_ehlo },
	{ .verb = "HELO", .run = cmd_helo },
	{ .verb = "MAIL", .needs = GREETED, .run = cmd_mail },
	{ .verb = "RCPT", .needs = IN_MAIL, .run = cmd_rcpt },
	/* DATA: 554 without recipients comes before 503. */
	{ .verb = "DATA", .needs = IN_MAIL, .run = cmd_data },
	{ .verb = "RSET", .no_argument = 1, .run = session_cmd_reset,
	  .code = 250, .text = "2.0.0 Ok" },
	{ .verb = "NOOP", .run = session_cmd_reply, .code = 250, .text = "2.0.0 Ok" },
	{ .verb = "VRFY", .run = cmd_vrfy },
	{ .verb = "HELP", .run = session_cmd_reply,
	  .code = 214, .text = "2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT" },
	{ .verb = "QUIT", .no_argument = 1, .run = session_cmd_quit,
	  .code = 221, .text = "2.0.0 Bye" },
	{ .verb = "AUTH", .needs = GREETED, .run = cmd_auth, .secret = 1 },
	NOT_IMPLEMENTED("EXPN"),
	NOT_IMPLEMENTED("TURN"),
	NOT_IMPLEMENTED("ETRN"),
	NOT_IMPLEMENTED("ATRN"),
	NOT_IMPLEMENTED("BDAT"),
	{ .verb = "STARTTLS", .needs = GREETED, .no_argument = 1, .run = cmd_starttls },
	NOT_IMPLEMENTED("SEND"),
	NOT_IMPLEMENTED("SOML"),
	NOT_IMPLEMENTED("SAML"),
	{ .verb = NULL },
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
	.last_words = last_words, MAIL_SESSION_HOOKS,
	.busy_line = "421 4.7.0 {host} Error: too many connections\r\n",
	.unavailable_line = "421 4.3.0 Error: mailbox directory unavailable\r\n",
};
