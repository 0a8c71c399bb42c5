/* pop3.c: the POP3 dialect (RFC 1939, with CAPA and response codes from
   RFC 2449, AUTH PLAIN from RFC 5034, STLS from RFC 2595; PROTOCOL.md
   section 9) on the session engine (session.h), for mysmtpd --pop3. Its
   states are AUTHORIZATION and TRANSACTION; QUIT in TRANSACTION is its
   UPDATE. Message numbers are fixed at login
   (maildrop.h); DELE only marks, QUIT deletes, a dropped connection
   deletes nothing. */
#define _GNU_SOURCE
#include "pop3.h"
#include "engine/login.h"
#include "engine/starttls.h"
#include "mail/sasl.h"
#include "store/maildrop.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


/* Where a session is: each command says which state it needs at least. */
enum pop3_state { AUTHORIZATION, TRANSACTION };

struct pop3 {
	struct login login;		/* login.user: the maildrop's address */
	struct starttls tls;
	char user[ADDRESS_MAX + 1];	/* USER's argument, for PASS */
	int have_user;
	struct maildrop *drop;		/* NULL before login */
};

static struct pop3 *state(struct session *s)
{
	return s->dialect_state;
}

static struct login *login_of(struct session *s)
{
	return &state(s)->login;
}

/* "+OK text" for code 200, else "-ERR text". A -ERR counts as a client
   error but [SYS/TEMP] and [IN-USE]: the server's trouble, or another
   session's. */
static void reply(struct session *s, int code, const char *text)
{
	char line[COMMAND_LINE_MAX];
	int ok = code == 200, n = snprintf(line, sizeof line, "%s%s%s", ok ? "+OK" : "-ERR",
					   *text ? " " : "", text);
	int ours = strncmp(text, "[SYS/", 5) == 0 || strncmp(text, "[IN-USE]", 8) == 0;

	if (n < 0 || (size_t)n >= sizeof line)
		n = snprintf(line, sizeof line, "%s", ok ? "+OK" : "-ERR");
	session_send_line(s, line, (size_t)n);
	session_replied(s, line, !ok, !ok && !ours);
}

static void send_text_line(struct session *s, const char *text)
{
	session_send_line(s, text, strlen(text));
}

static void cmd_capa(struct session *s, char *arg)
{
	int may_login = !login_of(s)->user[0] && login_allowed(login_of(s));

	(void)arg;
	reply(s, 200, "Capability list follows");
	if (may_login) {
		send_text_line(s, "USER");
		send_text_line(s, "SASL PLAIN");
	}
	if (starttls_offered(&state(s)->tls) && !login_of(s)->user[0])
		send_text_line(s, "STLS");
	send_text_line(s, "TOP");
	send_text_line(s, "UIDL");
	send_text_line(s, "RESP-CODES");
	send_text_line(s, "AUTH-RESP-CODE");
	send_text_line(s, "PIPELINING");
	send_text_line(s, "IMPLEMENTATION My_SMTP");
	send_text_line(s, ".");
}

/* 0 when a password may be taken now; else the refusal is sent. */
static int may_log_in(struct session *s)
{
	if (login_of(s)->user[0])
		reply(s, 400, "already logged in");
	else if (!login_allowed(login_of(s)))
		reply(s, 400, "[AUTH] TLS required: send STLS first");
	else if (!login_accounts_ready(login_of(s)))
		reply(s, 400, "[SYS/TEMP] accounts unavailable");
	else
		return 0;
	return -1;
}

/* The messages not marked deleted: how many, and their octets. */
/* Logged in as login_of(s)->user: take the maildrop, or log out again. */
static void open_drop(struct session *s)
{
	struct pop3 *p = state(s);
	uint64_t count, octets;
	int rc = maildrop_open(s->store, login_of(s)->user, &p->drop);

	if (rc < 0) {
		LOG(s, "Mailbox %s not opened: %s", login_of(s)->user, strerror(-rc));
		explicit_bzero(login_of(s)->user, sizeof login_of(s)->user);
		reply(s, 400, rc == -EBUSY ? "[IN-USE] mailbox in use by another POP3 session" :
			      "[SYS/TEMP] cannot open the mailbox");
		return;
	}
	s->state = TRANSACTION;
	session_did_mail_work(s);
	count = maildrop_kept(p->drop, &octets);
	session_replyf(s, 200, "logged in, %llu messages (%llu octets)", (unsigned long long)count,
	       (unsigned long long)octets);
}

static void logged_in(struct session *s, enum login_outcome how)
{
	switch (how) {
	case LOGIN_OK: open_drop(s); break;
	case LOGIN_FAILED: reply(s, 400, "[AUTH] authentication failed"); break;
	case LOGIN_TOO_MANY: session_end_by(s, ENDING_AUTH); break;
	case LOGIN_ERROR: reply(s, 400, "[SYS/TEMP] cannot check the password now"); break;
	}
}

static void cmd_user(struct session *s, char *arg)
{
	struct pop3 *p = state(s);

	if (may_log_in(s) < 0)
		return;
	if (!*arg || strlen(arg) > ADDRESS_MAX) {
		reply(s, 400, "syntax: USER <user@domain>");
		return;
	}
	memcpy(p->user, arg, strlen(arg) + 1);
	p->have_user = 1;
	reply(s, 200, "send PASS");
}

static void cmd_pass(struct session *s, char *arg)
{
	struct pop3 *p = state(s);

	if (may_log_in(s) < 0) {
		explicit_bzero(arg, strlen(arg));
		return;
	}
	if (!p->have_user) {
		explicit_bzero(arg, strlen(arg));
		reply(s, 400, "send USER first");
		return;
	}
	p->have_user = 0;
	logged_in(s, login_check(login_of(s), p->user, arg));
}

/* How a PLAIN response that is not one is refused. */
static const struct said sasl_said[] = {
	[PLAIN_TOO_LONG] = { 400, "authentication line too long" },
	[PLAIN_ABORTED] = { 400, "authentication aborted" },
	[PLAIN_UNDECODABLE] = { 400, "cannot decode the response" },
};

/* AUTH: without a mechanism, the list of them; AUTH PLAIN [initial]. */
static void cmd_auth(struct session *s, char *arg)
{
	struct sasl_plain p;
	size_t mech = strcspn(arg, " ");
	const char *initial = arg + mech + (arg[mech] == ' ');

	if (!*arg && !login_of(s)->user[0]) {
		reply(s, 200, "mechanisms follow");
		send_text_line(s, "PLAIN");
		send_text_line(s, ".");
		return;
	}
	if (may_log_in(s) < 0)
		return;
	if (mech != 5 || strncasecmp(arg, "PLAIN", 5) != 0)
		reply(s, 400, "unsupported authentication mechanism");
	else if (login_read_sasl(login_of(s), 0, initial, "+ ", sasl_said, &p) == 0)
		logged_in(s, login_check_plain(login_of(s), &p));
	explicit_bzero(&p, sizeof p);
}

static void cmd_stls(struct session *s, char *arg)
{
	static const struct said said[] = {
		[STARTTLS_OK] = { 200, "Begin TLS negotiation" },
		[STARTTLS_UNAVAILABLE] = { 400, "TLS not available" },
		[STARTTLS_ACTIVE] = { 400, "TLS already active" },
	};

	(void)arg;
	if (login_of(s)->user[0])
		reply(s, 400, "STLS only before login");
	else if (starttls_command(&state(s)->tls, said))
		state(s)->have_user = 0;	/* afresh: nothing of before counts */
}

/* A message number of the session, not marked deleted: 0 with *n and *m,
   or the -ERR sent. */
static int message_number(struct session *s, const char *arg, uint64_t *n,
			  struct drop_message *m)
{
	size_t len = strspn(arg, "0123456789");

	if (len == 0 || len > 18 || (arg[len] && arg[len] != ' ')) {
		reply(s, 400, "syntax: a message number");
		return -1;
	}
	*n = strtoull(arg, NULL, 10);
	if (maildrop_message(state(s)->drop, *n, m) < 0) {
		reply(s, 400, "no such message");
		return -1;
	}
	if (m->deleted) {
		session_replyf(s, 400, "message %llu already deleted", (unsigned long long)*n);
		return -1;
	}
	return 0;
}

static void cmd_stat(struct session *s, char *arg)
{
	uint64_t octets, count = maildrop_kept(state(s)->drop, &octets);

	(void)arg;
	session_did_mail_work(s);
	session_replyf(s, 200, "%llu %llu", (unsigned long long)count, (unsigned long long)octets);
}

/* Write v in decimal at out: its length (at most 20). */
static size_t put_number(char *out, uint64_t v)
{
	char digits[20];
	size_t n = 0;

	do
		digits[n++] = (char)('0' + v % 10);
	while ((v /= 10) > 0);
	for (size_t i = 0; i < n; i++)
		out[i] = digits[n - 1 - i];
	return n;
}

/* "n size" or "n uidl" for message n, into out[48]: its length. A long
   listing is mostly this, so it is made without printf. */
static size_t scan_line(uint64_t n, const struct drop_message *m, int uidl, char *out)
{
	size_t len = put_number(out, n), ulen = strlen(m->uidl);

	out[len++] = ' ';
	if (!uidl)
		return len + put_number(out + len, m->octets);
	memcpy(out + len, m->uidl, ulen);
	return len + ulen;
}

/* LIST or UIDL: one line with an argument, else all of them. */
static void listing(struct session *s, char *arg, int uidl)
{
	const struct maildrop *d = state(s)->drop;
	struct drop_message m;
	char line[48];
	uint64_t n, octets;

	session_did_mail_work(s);
	if (*arg) {
		if (message_number(s, arg, &n, &m) == 0) {
			line[scan_line(n, &m, uidl, line)] = '\0';
			reply(s, 200, line);
		}
		return;
	}
	session_replyf(s, 200, "%llu messages", (unsigned long long)maildrop_kept(d, &octets));
	for (n = 1; s->out.error == 0 && maildrop_message(d, n, &m) == 0; n++)
		if (!m.deleted)
			session_send_line(s, line, scan_line(n, &m, uidl, line));
	send_text_line(s, ".");
}

static void cmd_list(struct session *s, char *arg)
{
	listing(s, arg, 0);
}

static void cmd_uidl(struct session *s, char *arg)
{
	listing(s, arg, 1);
}

/* RETR (body_lines < 0) or TOP of message n, its copy made. */
struct retr {
	struct session *s;
	uint64_t n;
	int64_t body_lines;
	int replied;
};

static int send_copy(void *ctx, const struct spool *text)
{
	struct retr *r = ctx;
	struct drop_message m;

	session_did_mail_work(r->s);
	if (r->body_lines >= 0)
		reply(r->s, 200, "top of message follows");
	else if (maildrop_message(state(r->s)->drop, r->n, &m) == 0)
		session_replyf(r->s, 200, "%llu octets", (unsigned long long)m.octets);
	r->replied = 1;
	return session_send_text(r->s, text);
}

static void send_message(struct session *s, uint64_t n, int64_t body_lines)
{
	struct retr r = { .s = s, .n = n, .body_lines = body_lines };
	int rc = maildrop_send(state(s)->drop, n, body_lines, send_copy, &r);

	if (rc < 0 && !r.replied) {
		LOG(s, "Message %llu unreadable: %s", (unsigned long long)n, strerror(-rc));
		reply(s, 400, rc == -ENOENT ? "message removed by another program" :
			      "[SYS/TEMP] cannot read the message");
		return;
	}
	if (rc < 0) {
		LOG(s, "Reply broken off: %s", strerror(-rc));
		s->end = END_IO;
		s->done = 1;
		return;
	}
	send_text_line(s, ".");
}

static void cmd_retr(struct session *s, char *arg)
{
	struct drop_message m;
	uint64_t n;

	if (message_number(s, arg, &n, &m) == 0)
		send_message(s, n, -1);
}

static void cmd_top(struct session *s, char *arg)
{
	char *lines = strchr(arg, ' ');
	struct drop_message m;
	uint64_t n;

	if (!lines || strspn(lines + 1, "0123456789") != strlen(lines + 1) || !lines[1] ||
	    strlen(lines + 1) > 18) {
		reply(s, 400, "syntax: TOP <message> <lines>");
		return;
	}
	if (message_number(s, arg, &n, &m) == 0)
		send_message(s, n, (int64_t)strtoull(lines + 1, NULL, 10));
}

static void cmd_dele(struct session *s, char *arg)
{
	struct drop_message m;
	uint64_t n;

	if (message_number(s, arg, &n, &m) < 0)
		return;
	maildrop_mark(state(s)->drop, n);
	session_did_mail_work(s);
	session_replyf(s, 200, "message %llu deleted", (unsigned long long)n);
}

static void cmd_rset(struct session *s, char *arg)
{
	(void)arg;
	maildrop_unmark(state(s)->drop);
	reply(s, 200, "");
}

/* QUIT: in TRANSACTION, delete the marked messages first (UPDATE). */
static void cmd_quit(struct session *s, char *arg)
{
	struct pop3 *p = state(s);
	uint64_t removed = 0;
	int rc = p->drop ? maildrop_update(s->store, login_of(s)->user, p->drop, &removed) : 0;

	(void)arg;
	s->end = END_QUIT;
	s->done = 1;
	if (rc == MAILDROP_KEPT) {	/* RFC 1939: never +OK with a marked message kept */
		LOG(s, "%llu messages deleted from %s; a marked one no longer found.",
		    (unsigned long long)removed, login_of(s)->user);
		session_replyf(s, 400, "[SYS/TEMP] some deleted messages not removed (%llu were)",
			       (unsigned long long)removed);
		return;
	}
	if (rc < 0) {
		LOG(s, "Deleting from %s failed: %s", login_of(s)->user, strerror(-rc));
		reply(s, 400, "[SYS/TEMP] deleted messages not removed");
		return;
	}
	if (p->drop)
		LOG(s, "%llu messages deleted from %s.", (unsigned long long)removed, login_of(s)->user);
	session_replyf(s, 200, "bye, %llu messages deleted", (unsigned long long)removed);
}

static const struct command commands[] = {
	{ .verb = "CAPA", .no_argument = 1, .run = cmd_capa },
	{ .verb = "USER", .run = cmd_user },
	{ .verb = "PASS", .run = cmd_pass, .secret = 1 },
	{ .verb = "AUTH", .run = cmd_auth, .secret = 1 },
	{ .verb = "STLS", .no_argument = 1, .run = cmd_stls },
	{ .verb = "STAT", .needs = TRANSACTION, .no_argument = 1, .run = cmd_stat },
	{ .verb = "LIST", .needs = TRANSACTION, .run = cmd_list },
	{ .verb = "UIDL", .needs = TRANSACTION, .run = cmd_uidl },
	{ .verb = "RETR", .needs = TRANSACTION, .run = cmd_retr },
	{ .verb = "TOP", .needs = TRANSACTION, .run = cmd_top },
	{ .verb = "DELE", .needs = TRANSACTION, .run = cmd_dele },
	{ .verb = "RSET", .needs = TRANSACTION, .no_argument = 1, .run = cmd_rset },
	{ .verb = "NOOP", .needs = TRANSACTION, .no_argument = 1, .run = session_cmd_reply,
	  .code = 200, .text = "" },
	{ .verb = "QUIT", .no_argument = 1, .run = cmd_quit },
	{ .verb = "APOP", .run = session_cmd_reply,
	  .code = 400, .text = "APOP not supported: use USER/PASS or AUTH PLAIN" },
	{ .verb = NULL },
};

static void refuse(struct session *s, enum refusal why, const struct command *c)
{
	switch (why) {
	case REFUSE_TOO_LONG: reply(s, 400, "line too long"); break;
	case REFUSE_BAD_OCTET: reply(s, 400, "bad syntax"); break;
	case REFUSE_BARE_LF: reply(s, 400, "bare LF"); break;
	case REFUSE_UNKNOWN: reply(s, 400, "unknown command"); break;
	case REFUSE_STATE: reply(s, 400, "log in first"); break;
	case REFUSE_ARGUMENT: session_replyf(s, 400, "%s takes no argument", c->verb); break;
	}
}

static void last_words(struct session *s, enum ending why)
{
	static const char *const said[] = {
		[ENDING_TIMEOUT] = "-ERR Disconnected for inactivity.",
		[ENDING_LIFETIME] = "-ERR Session time limit reached.",
		[ENDING_ERRORS] = "-ERR Too many errors.",
		[ENDING_JUNK] = "-ERR Too many commands without mail.",
		[ENDING_AUTH] = "-ERR [AUTH] Too many failed logins.",
		[ENDING_PIPELINED_TLS] = "-ERR Commands pipelined after STLS.",
	};

	if (why == ENDING_TIMEOUT)
		LOG(s, "Timeout; closing.");
	send_text_line(s, said[why]);
}

static void greet(struct session *s)
{
	session_replyf(s, 200, "%s My_SMTP POP3 ready", s->cfg->hostname);
}

static int open_state(struct session *s)
{
	struct pop3 *p = state(s);

	login_start(&p->login, s);
	return starttls_open(&p->tls, s);
}

/* The maildrop is let go before the last reply is sent in full. */
static void finish(struct session *s)
{
	struct pop3 *p = state(s);

	maildrop_close(p->drop);
	p->drop = NULL;
}

static void close_state(struct session *s)
{
	struct pop3 *p = state(s);

	starttls_close(&p->tls);
	login_finish(&p->login);
}

const struct dialect pop3_dialect = {
	.commands = commands, .strict = 0, .greet = greet, .reply = reply, .refuse = refuse,
	.last_words = last_words, .state_size = SESSION_STATE_SIZE(struct pop3),
	.open = open_state, .finish = finish, .close = close_state,
	.busy_line = "-ERR [SYS/TEMP] too many connections\r\n",
	.unavailable_line = "-ERR [SYS/TEMP] mailbox directory unavailable\r\n",
};
