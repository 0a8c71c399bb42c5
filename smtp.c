/* smtp.c: one standard SMTP session (RFC 5321). Only CRLF "." CRLF ends
   DATA. A bare LF ends a command or message line as CRLF would, as Postfix's
   smtpd_forbid_bare_newline = normalize does; with bare_lf_reject a command
   line ending in a bare LF, and a message holding one, get "550 5.5.2 HOST
   Error: bare <LF> received" (= reject), and the session stays in step. Either
   way "\n.\n", "\r\n.\n" and "\n.\r\n" never end a message. A handler first checks state and
   arguments and replies with the error, and only then acts; the table below
   says which commands exist and what each needs first. */
#define _GNU_SOURCE
#include "smtp.h"
#include "address.h"
#include "data.h"
#include "io.h"
#include "mboxrd.h"
#include "rfc5322.h"
#include "smtparg.h"
#include "transaction.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define HELO_MAX 255

enum state { FRESH, GREETED, IN_MAIL };

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
	int esmtp;			/* the client said EHLO */
	unsigned errors;		/* refusals in a row */
	unsigned junk;			/* commands in a row that neither delivered nor read mail */
	uint64_t session_end;		/* io_now_ms() past which the session ends */
	unsigned long messages;		/* for ids */
	char verb[16];			/* of the command being answered, for the log */
	char helo[HELO_MAX + 1];
	struct transaction tx;		/* the sender "" is the null reverse-path */
};

struct command {
	const char *verb;
	enum state needs;
	const char *refusal;		/* the reply when the state is short of needs */
	void (*run)(struct session *s, char *arg);
};

#define LOG(s, ...) (s)->env->log((s)->env->log_ctx, __VA_ARGS__)

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

/* 421 with the host name, then close (RFC 5321 section 3.8). */
static void close_421(struct session *s, const char *status, const char *why,
		      enum session_end end)
{
	char text[COMMAND_LINE_MAX];
	int n = snprintf(text, sizeof text, "%s %s %s", status, s->cfg->hostname, why);

	send_line(s, 421, ' ', n < 0 || (size_t)n >= sizeof text ? status : text);
	s->end = end;
	s->done = 1;
}

/* Reply "CODE text". A refusal (4xx or 5xx) counts, any other reply starts
   the count afresh; after max_errors refusals in a row the session is
   closed with 421. 451 and 452 do not count: the server's own trouble, or
   a recipient past -r, which a pipelining client cannot know of before it
   sends (Postfix's smtpd_recipient_overshoot_limit). */
static void reply(struct session *s, int code, const char *text)
{
	send_line(s, code, ' ', text);
	if (code >= 400)
		LOG(s, "Refused %s from %s: %d %s", s->verb, s->env->peer, code, text);
	if (code < 400) {
		s->errors = 0;
	} else if (code != 451 && code != 452 && ++s->errors >= s->cfg->max_errors) {
		LOG(s, "Too many errors; closing.");
		close_421(s, "4.7.0", "Error: too many errors", END_ERRORS);
	}
}

/* Reply with CODE and a formatted text. */
static void replyf(struct session *s, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void replyf(struct session *s, int code, const char *fmt, ...)
{
	char text[COMMAND_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	reply(s, code, n < 0 || (size_t)n >= sizeof text ? "Error" : text);
}

static void time_out(struct session *s)
{
	int expired = session_expired(s->session_end);

	LOG(s, expired ? "Session time limit reached; closing." : "Timeout; closing.");
	close_421(s, "4.4.2", expired ? "Error: session time limit exceeded" :
		  "Error: timeout exceeded", END_TIMEOUT);
}

static void reset_transaction(struct session *s)
{
	transaction_clear(&s->tx);
	if (s->state > GREETED)
		s->state = GREETED;
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
	reset_transaction(s);
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

static void cmd_mail(struct session *s, char *arg)
{
	struct smtp_path p;
	int rc;

	if (s->state != GREETED) {
		reply(s, 503, "5.5.1 Error: nested MAIL command");
		return;
	}
	rc = smtparg_mail(arg, &p);
	if (rc == -ENOTSUP)
		replyf(s, 555, "5.5.4 Unsupported option: %s", p.param);
	else if (rc == -EDOM)
		reply(s, 553, "5.1.7 Error: bad sender address syntax");
	else if (rc < 0)
		reply(s, 501, "5.5.4 Syntax: MAIL FROM:<address>");
	else if (p.has_size && p.size > s->cfg->max_message)
		reply(s, 552, "5.3.4 Message size exceeds fixed limit");
	else {
		memcpy(s->tx.sender, p.address, sizeof p.address);
		s->state = IN_MAIL;
		s->junk = 0;
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
	int rc = smtparg_rcpt(arg, s->cfg->hostname, &p);

	if (rc == -ENOTSUP)
		replyf(s, 555, "5.5.4 Unsupported option: %s", p.param);
	else if (rc == -EDOM)
		reply(s, 553, "5.1.3 Error: bad recipient address syntax");
	else if (rc < 0)
		reply(s, 501, "5.5.4 Syntax: RCPT TO:<address>");
	else if (!domain_served(s->cfg, p.address) && !is_postmaster(s, p.address))
		reply(s, 550, "5.1.2 Error: domain not served here");
	else if (strlen(p.address) > STORE_ADDRESS_MAX)
		reply(s, 553, "5.1.3 Error: address too long for a mailbox file");
	else if (transaction_has(&s->tx, p.address))
		reply(s, 250, "2.1.5 Ok");
	else if (s->tx.nrcpt >= s->cfg->max_recipients)
		reply(s, 452, "4.5.3 Error: too many recipients");
	else if (store_mailbox_full(s->store, p.address))
		reply(s, 552, "5.2.2 Error: mailbox full");
	else if (transaction_add(&s->tx, p.address) < 0)
		reply(s, 451, "4.3.0 Error: out of memory");
	else {
		s->junk = 0;
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
	rc = receive_data(&s->in, d, s->cfg->timeout, s->session_end);
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
		.hostname = s->cfg->hostname, .message_id = id, .when = time(NULL),
		.kind = RECORD_SMTP, .esmtp = s->esmtp, .body_start = scan->body_start,
		.add_date = !has_header || !scan->has_date,
		.add_message_id = !has_header || !scan->has_message_id,
	};
	int rc = make_message_id(id, sizeof id, e.when, ++s->messages, s->cfg->hostname);
	int n;

	if (rc == 0 && (rc = store_has_room(s->store, s->spool.size, s->tx.nrcpt)) < 0) {
		LOG(s, "DATA received, refused: the store's file system is nearly full.");
		reply(s, 452, "4.3.1 Error: insufficient system storage");
		return;
	}
	if (rc == 0)
		rc = store_deliver(s->store, &e, &s->spool,
				   (const char *const *)s->tx.rcpt, s->tx.nrcpt);

	if (rc == -EDQUOT) {
		reply(s, 552, "5.2.2 Error: mailbox full");
		return;
	}
	if (rc < 0) {
		LOG(s, "DATA received, store failed: %s", strerror(-rc));
		reply(s, 451, "4.3.0 Error: the store failed");
		return;
	}
	s->junk = 0;
	LOG(s, "DATA received, message stored.");
	n = snprintf(text, sizeof text, "2.0.0 Ok: queued as %s", id);
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
		replyf(s, 550, "5.5.2 %s Error: bare <LF> received", s->cfg->hostname);
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
	int rc;

	if (s->tx.nrcpt == 0) {
		reply(s, 554, "5.5.1 Error: no valid recipients");
		return;
	}
	if (*arg) {
		reply(s, 501, "5.5.4 Syntax: DATA");
		return;
	}
	reply(s, 354, "End data with <CR><LF>.<CR><LF>");
	rc = receive_text(s, &d, &scan);
	if (rc == -ETIMEDOUT)
		time_out(s);
	if (rc < 0) {
		s->done = 1;
		return;
	}
	judge_message(s, &d, &scan);
	spool_reset(&s->spool);
	reset_transaction(s);
}

static void cmd_rset(struct session *s, char *arg)
{
	if (*arg) {
		reply(s, 501, "5.5.4 Syntax: RSET");
		return;
	}
	reset_transaction(s);
	reply(s, 250, "2.0.0 Ok");
}

static void cmd_noop(struct session *s, char *arg)
{
	(void)arg;
	reply(s, 250, "2.0.0 Ok");
}

static void cmd_vrfy(struct session *s, char *arg)
{
	if (!*arg)
		reply(s, 501, "5.5.4 Syntax: VRFY address");
	else
		reply(s, 252, "2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static void cmd_help(struct session *s, char *arg)
{
	(void)arg;
	reply(s, 214, "2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT");
}

static void cmd_quit(struct session *s, char *arg)
{
	if (*arg) {
		reply(s, 501, "5.5.4 Syntax: QUIT");
		return;
	}
	reply(s, 221, "2.0.0 Bye");
	s->end = END_QUIT;
	s->done = 1;
}

/* Commands of RFC 5321 and its extensions that this server does not offer. */
static void cmd_not_implemented(struct session *s, char *arg)
{
	(void)arg;
	reply(s, 502, "5.5.1 Error: command not implemented");
}

static const char need_helo[] = "5.5.1 Error: send HELO/EHLO first";
static const char need_mail[] = "5.5.1 Error: need MAIL command";

static const struct command commands[] = {
	{ "EHLO",     FRESH,   NULL,      cmd_ehlo },
	{ "HELO",     FRESH,   NULL,      cmd_helo },
	{ "MAIL",     GREETED, need_helo, cmd_mail },
	{ "RCPT",     IN_MAIL, need_mail, cmd_rcpt },
	{ "DATA",     IN_MAIL, need_mail, cmd_data },
	{ "RSET",     FRESH,   NULL,      cmd_rset },
	{ "NOOP",     FRESH,   NULL,      cmd_noop },
	{ "VRFY",     FRESH,   NULL,      cmd_vrfy },
	{ "HELP",     FRESH,   NULL,      cmd_help },
	{ "QUIT",     FRESH,   NULL,      cmd_quit },
	{ "EXPN",     FRESH,   NULL,      cmd_not_implemented },
	{ "TURN",     FRESH,   NULL,      cmd_not_implemented },
	{ "ETRN",     FRESH,   NULL,      cmd_not_implemented },
	{ "ATRN",     FRESH,   NULL,      cmd_not_implemented },
	{ "BDAT",     FRESH,   NULL,      cmd_not_implemented },
	{ "STARTTLS", FRESH,   NULL,      cmd_not_implemented },
	{ "AUTH",     FRESH,   NULL,      cmd_not_implemented },
	{ "SEND",     FRESH,   NULL,      cmd_not_implemented },
	{ "SOML",     FRESH,   NULL,      cmd_not_implemented },
	{ "SAML",     FRESH,   NULL,      cmd_not_implemented },
	{ NULL,       FRESH,   NULL,      NULL },
};

static void run_command(struct session *s, char *line, size_t len)
{
	const struct command *c;
	size_t verb_len;
	char *arg;

	verb_len = strcspn(line, " \t");
	snprintf(s->verb, sizeof s->verb, "%.*s", (int)verb_len, line);
	if (memchr(line, '\0', len) || memchr(line, '\r', len)) {
		reply(s, 500, "5.5.2 Error: bad syntax");
		return;
	}
	arg = trim_blanks(line + verb_len);
	for (c = commands; c->verb; c++)
		if (strlen(c->verb) == verb_len && strncasecmp(line, c->verb, verb_len) == 0)
			break;
	if (!c->verb)
		reply(s, 500, "5.5.2 Error: command not recognized");
	else if (s->state < c->needs)
		reply(s, 503, c->refusal);
	else
		c->run(s, arg);
}

static void read_command(struct session *s)
{
	char line[COMMAND_LINE_MAX + 1];
	int crlf;
	int n = reader_line_crlf(&s->in, line, COMMAND_LINE_MAX,
				 line_deadline(s->cfg->timeout, s->session_end), &crlf);

	if (n == -ETIMEDOUT) {
		time_out(s);
		return;
	}
	if (n < 0 && n != -E2BIG) {
		s->end = END_EOF;
		s->done = 1;
		return;
	}
	s->junk++;	/* a command that delivers mail sets it back to 0 */
	if (n == -E2BIG) {
		snprintf(s->verb, sizeof s->verb, "command");
		reply(s, 500, "5.5.2 Error: line too long");
	} else if (!crlf && s->cfg->bare_lf_reject) {
		snprintf(s->verb, sizeof s->verb, "command");
		replyf(s, 550, "5.5.2 %s Error: bare <LF> received", s->cfg->hostname);
	} else {
		run_command(s, line, (size_t)n);
	}
	if (!s->done && s->junk >= s->cfg->max_junk) {
		LOG(s, "Too many commands without mail; closing.");
		close_421(s, "4.7.0", "Error: too many commands without mail", END_ERRORS);
	}
}

enum session_end smtp_session_run(const struct config *cfg, struct store *st,
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
	n = snprintf(greeting, sizeof greeting, "%s ESMTP My_SMTP", cfg->hostname);
	send_line(&s, 220, ' ', n < 0 || (size_t)n >= sizeof greeting ? "ESMTP My_SMTP" : greeting);
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
