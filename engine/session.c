/* session.c: the session engine (session.h): the command loop with its
   deadlines, the table look-up and the checks every dialect shares, the
   counts that end a session, the state each dialect keeps of its own, and
   the session's I/O for the features (session_io.h). */
#define _GNU_SOURCE
#include "engine/session.h"
#include "engine/command_in.h"
#include "mail/address.h"
#include "store/store.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

const struct config *session_config(const struct session *s)
{
	return s->cfg;
}

const struct session_env *session_env(const struct session *s)
{
	return s->env;
}

void session_send_line(struct session *s, const char *line, size_t len)
{
	writer_put(&s->out, line, len);
	writer_put(&s->out, "\r\n", 2);
}

void session_reply(struct session *s, int code, const char *text)
{
	s->dialect->reply(s, code, text);
}

/* session_read_line by deadline. */
static int read_line_by(struct session *s, char *line, size_t max, uint64_t deadline, int *crlf)
{
	int n = reader_line_crlf(&s->in, line, max, deadline, crlf);

	reader_wipe_used(&s->in);	/* what the reader held of it */
	if (n == -ETIMEDOUT)
		session_time_out(s);
	else if (n < 0 && n != -E2BIG)
		s->done = 1;	/* the connection is gone */
	return n;
}

int session_read_line(struct session *s, char *line, size_t max, int *crlf)
{
	return read_line_by(s, line, max, io_deadline(s->cfg->timeout, s->session_end), crlf);
}

/* What session_wait_line watches, as command_wait's hooks see it. */
struct waiting {
	struct session *s;
	int fd;
	void (*on_ready)(struct session *s, void *ctx);
	void *ctx;
};

/* command_wait's hooks for session_wait_line: its descriptor, and its call. */
static int waiting_fd(void *ctx)
{
	return ((struct waiting *)ctx)->fd;
}

static void waiting_ready(void *ctx)
{
	struct waiting *w = ctx;

	w->on_ready(w->s, w->ctx);
}

int session_wait_line(struct session *s, int fd, void (*on_ready)(struct session *s, void *ctx),
		      void *ctx, char *line, size_t max)
{
	struct waiting w = { .s = s, .fd = fd, .on_ready = on_ready, .ctx = ctx };
	const struct command_source src = { .in = &s->in, .out = &s->out, .watch = waiting_fd,
					    .wake = waiting_ready, .ctx = &w };
	uint64_t deadline = io_deadline(s->cfg->timeout, s->session_end);
	int crlf;

	command_wait(&src, deadline);
	return read_line_by(s, line, max, deadline, &crlf);
}

struct reader *session_reader(struct session *s)
{
	return &s->in;
}

uint64_t session_end_ms(const struct session *s)
{
	return s->session_end;
}

size_t session_unread(const struct session *s)
{
	size_t unread;

	reader_data(&s->in, &unread);
	return unread;
}

void session_fds(const struct session *s, int *in, int *out)
{
	*in = s->env->in_fd;
	*out = s->env->out_fd;
}

int session_is_tls(const struct session *s)
{
	return s->tls;
}

int session_flush(struct session *s)
{
	return writer_flush(&s->out);
}

void session_use_transport(struct session *s, const struct io_transport *via)
{
	reader_set_transport(&s->in, via);
	writer_set_transport(&s->out, via);
	s->tls = 1;
}

void session_lost(struct session *s, enum session_end end)
{
	s->end = end;
	s->done = 1;
}

int session_over(const struct session *s)
{
	return s->done;
}

void session_did_mail_work(struct session *s)
{
	s->junk = 0;
}

/* Text to the wire: CRLF line ends, a leading dot doubled. */
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

int session_send_text(struct session *s, const struct spool *text)
{
	struct text_out t = { .s = s, .line_start = 1 };
	int rc = spool_feed(text, text_sink, &t);

	if (rc == 0 && !t.line_start)
		writer_put(&s->out, "\r\n", 2);
	return rc;
}

void session_replyf(struct session *s, int code, const char *fmt, ...)
{
	char text[COMMAND_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	s->dialect->reply(s, code, n < 0 || (size_t)n >= sizeof text ? "Error" : text);
}

void session_end_by(struct session *s, enum ending why)
{
	static const char *const said[] = {
		[ENDING_LIFETIME] = "Session time limit reached; closing.",
		[ENDING_ERRORS] = "Too many errors; closing.",
		[ENDING_JUNK] = "Too many commands without mail; closing.",
		[ENDING_AUTH] = "Too many failed logins; closing.",
		[ENDING_PIPELINED_TLS] = "Commands pipelined after STARTTLS; closing.",
	};

	if (said[why])
		LOG(s, "%s", said[why]);
	s->dialect->last_words(s, why);
	s->end = why == ENDING_TIMEOUT || why == ENDING_LIFETIME ? END_TIMEOUT : END_ERRORS;
	s->done = 1;
}

void session_time_out(struct session *s)
{
	session_end_by(s, io_now_ms() >= s->session_end ? ENDING_LIFETIME : ENDING_TIMEOUT);
}

void session_replied(struct session *s, const char *line, int refusal, int client_error)
{
	if (refusal)
		LOG(s, "Refused %s from %s: %s", s->verb, s->env->peer, line);
	if (!client_error)
		s->errors = 0;
	else if (++s->errors >= s->cfg->max_errors && !s->done)
		session_end_by(s, ENDING_ERRORS);
}

void session_cmd_reply(struct session *s, char *arg)
{
	(void)arg;
	s->dialect->reply(s, s->command->code, s->command->text);
}

void session_cmd_reset(struct session *s, char *arg)
{
	if (s->dialect->reset)
		s->dialect->reset(s);
	session_cmd_reply(s, arg);
}

void session_cmd_quit(struct session *s, char *arg)
{
	session_cmd_reply(s, arg);
	s->end = END_QUIT;
	s->done = 1;
}

int session_domain_served(const struct config *cfg, const char *address)
{
	if (cfg->ndomains == 0)
		return 1;
	for (size_t i = 0; i < cfg->ndomains; i++)
		if (address_in_domain(address, cfg->domains[i]))
			return 1;
	return 0;
}

/* Skip leading blanks of a command argument; cut trailing ones. */
static char *trim_blanks(char *arg)
{
	size_t len;

	while (*arg == ' ' || *arg == '\t')
		arg++;
	len = strlen(arg);
	while (len > 0 && (arg[len - 1] == ' ' || arg[len - 1] == '\t'))
		arg[--len] = '\0';
	return arg;
}

/* The command of the table named by the verb of line (the end row if none). */
static const struct command *look_up(const struct dialect *d, const char *line, size_t verb_len)
{
	const struct command *c;

	for (c = d->commands; c->verb; c++)
		if (strlen(c->verb) == verb_len && strncasecmp(line, c->verb, verb_len) == 0)
			break;
	return c;
}

/* A tagged dialect's line: s->tag is its first word, and what follows the
   blank after it is the command. */
static char *split_tag(struct session *s, char *line)
{
	size_t len = strcspn(line, " ");

	s->tag = line;
	if (line[len] == '\0')
		return line + len;
	line[len] = '\0';
	return line + len + 1;
}

/* Run the command of line. */
static void run_command(struct session *s, char *line, size_t len)
{
	const struct dialect *d = s->dialect;
	char *start = d->tagged ? split_tag(s, line) : line;
	size_t verb_len = strcspn(start, " \t");
	const struct command *c = look_up(d, start, verb_len);
	char *arg;

	len -= (size_t)(start - line);
	line = start;
	snprintf(s->verb, sizeof s->verb, "%.*s", (int)verb_len, line);
	if (!d->literals && (memchr(line, '\0', len) || memchr(line, '\r', len))) {
		d->refuse(s, REFUSE_BAD_OCTET, NULL);
		return;
	}
	if (c->secret)
		arg = line + verb_len + (line[verb_len] != '\0');
	else
		arg = trim_blanks(line + verb_len);
	if (!c->verb)
		d->refuse(s, REFUSE_UNKNOWN, NULL);
	else if (s->state < c->needs)
		d->refuse(s, REFUSE_STATE, c);
	else if (c->no_argument && *arg)
		d->refuse(s, REFUSE_ARGUMENT, c);
	else {
		s->command = c;
		c->run(s, arg);
	}
}

/* A literal past the dialect's limit, refused unread; one the client sends
   unasked ("{n+}") would be taken for commands: the session ends. */
static void refuse_literal(struct session *s, char *line, int unasked)
{
	if (s->dialect->tagged)
		split_tag(s, line);
	snprintf(s->verb, sizeof s->verb, "command");
	s->dialect->refuse(s, REFUSE_TOO_LONG, NULL);
	if (unasked && !s->done)
		session_lost(s, END_ERRORS);
}

/* Act on what reading a command gave (n, as command_read says). */
static void take_command(struct session *s, char *line, int n, int crlf)
{
	if (n == -ETIMEDOUT) {
		session_time_out(s);
		return;
	}
	if (n < 0 && n != -E2BIG && n != -EMSGSIZE && n != -EOVERFLOW &&
	    n != -EILSEQ) {
		s->end = END_EOF;
		s->done = 1;
		return;
	}
	s->junk++;	/* a command that delivers or reads mail sets it back to 0 */
	s->tag = "";
	if (n == -EMSGSIZE || n == -EOVERFLOW) {
		refuse_literal(s, line, n == -EOVERFLOW);
	} else if (n == -EILSEQ) {
		snprintf(s->verb, sizeof s->verb, "command");
		s->dialect->refuse(s, REFUSE_BAD_OCTET, NULL);
	} else if (n == -E2BIG || (s->dialect->strict && !crlf && s->cfg->bare_lf_reject)) {
		snprintf(s->verb, sizeof s->verb, "command");
		s->dialect->refuse(s, n == -E2BIG ? REFUSE_TOO_LONG : REFUSE_BARE_LF, NULL);
	} else {
		run_command(s, line, (size_t)n);
	}
}

/* The dialect's hooks for command_read, given the session. */
static void dialect_go_ahead(void *ctx)
{
	struct session *s = ctx;

	s->dialect->go_ahead(s);
}

static int dialect_watch(void *ctx)
{
	struct session *s = ctx;

	return s->dialect->watch(s);
}

static void dialect_wake(void *ctx)
{
	struct session *s = ctx;

	s->dialect->wake(s);
}

static void dialect_literal_sink(void *ctx, const char *octets, size_t len)
{
	struct session *s = ctx;

	s->dialect->literal_sink(s, octets, len);
}

/* Where the session's next command comes from, with the dialect's hooks. */
static struct command_source command_source_of(struct session *s)
{
	const struct dialect *d = s->dialect;

	return (struct command_source){
		.in = &s->in, .out = &s->out, .literals = d->literals, .ctx = s,
		.go_ahead = d->go_ahead ? dialect_go_ahead : NULL,
		.watch = d->watch ? dialect_watch : NULL,
		.wake = d->wake ? dialect_wake : NULL,
		.literal_max = d->literal_max,
		.literal_sink = d->literal_sink ? dialect_literal_sink : NULL,
	};
}

/* Every line is wiped once acted on, and what the reader held of it: a
   line refused, cut off or too long may have held a password as well as
   a command that takes one. */
static void read_command(struct session *s)
{
	size_t asked = s->dialect->line_max ? s->dialect->line_max : COMMAND_LINE_MAX;
	size_t max = asked < COMMAND_LINE_LIMIT ? asked : COMMAND_LINE_LIMIT;
	const struct command_source src = command_source_of(s);
	char line[max + 1];
	int crlf;
	int n = command_read(&src, line, max, io_deadline(s->cfg->timeout, s->session_end), &crlf);

	take_command(s, line, n, crlf);
	explicit_bzero(line, sizeof line);
	reader_wipe_used(&s->in);
	if (!s->done && s->junk >= s->cfg->max_junk)
		session_end_by(s, ENDING_JUNK);
}

/* Send what is left of the last reply, then say the session is over (the
   listener counts it against its caps until then). A client that never
   reads keeps its place for as long as the timeout lets it, without
   progress; one that reads the reply and connects again at once must find
   its place free: the last octet waits until the socket takes it without
   blocking, and goes only after the word. 0 or -errno. */
static int flush_last_reply(struct session *s)
{
	const struct session_env *env = s->env;
	char last = s->out.len > 0 ? s->out.buf[s->out.len - 1] : '\0';
	int held = env->ending && s->out.error == 0 && s->out.len > 0;
	int rc;

	s->out.len -= (size_t)held;
	rc = writer_flush(&s->out);
	if (held && rc == 0 &&
	    (rc = io_wait(s->out.fd, POLLOUT, io_now_ms() + s->out.timeout_ms)) < 0)
		s->out.error = rc;
	if (env->ending)
		env->ending(env->ending_ctx);
	if (held && s->out.error == 0)
		writer_put(&s->out, &last, 1);
	return writer_flush(&s->out);
}

enum session_end session_run(const struct config *cfg, struct store *st,
			     const struct session_env *env, const struct dialect *d)
{
	struct session s = { .cfg = cfg, .store = st, .env = env, .dialect = d, .end = END_EOF,
			     .tag = "" };
	union {
		max_align_t align;
		unsigned char octets[SESSION_STATE_MAX];
	} own;

	s.session_end = io_now_ms() + cfg->max_session * 1000ULL;
	writer_init(&s.out, env->out_fd, cfg->timeout * 1000U);
	reader_init(&s.in, env->in_fd, &s.out);
	if (d->state_size) {
		memset(&own, 0, d->state_size);
		s.dialect_state = &own;
	}
	if (d->open && d->open(&s) < 0) {
		s.end = END_IO;		/* implicit TLS without a handshake: not a word */
		s.done = 1;
	} else {
		d->greet(&s);
	}
	while (!s.done && s.out.error == 0)
		read_command(&s);
	if (d->finish)
		d->finish(&s);
	if (flush_last_reply(&s) < 0 && s.end == END_QUIT)
		s.end = END_IO;
	if (d->close)
		d->close(&s);
	if (d->state_size)
		explicit_bzero(&own, d->state_size);
	reader_wipe(&s.in);	/* a worker serves its next session on this stack */
	return s.end;
}
