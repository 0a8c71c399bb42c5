/* client_shell.c: the client's interactive shell: libedit on a terminal
   (completion, history, ^C and ^D, a message kept until its "." with a
   keep-alive while it is typed), or a command file read from a pipe. */
#include "client/client.h"

#include <errno.h>
#include <fcntl.h>
#include <histedit.h>
#include <langinfo.h>
#include <limits.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>
#include <wchar.h>

#define DATA_PROMPT	"Enter your message (end with a single dot '.'):"
#define HISTORY_FILE	".mysmtp_history"
#define HISTORY_SIZE	500

static volatile sig_atomic_t interrupted;	/* ^C at the terminal */

/* The commands the shell must follow to stay in step with the server. */
enum verb { V_OTHER, V_DATA, V_LIST, V_GET, V_QUIT, V_RCPT, V_NEW, V_HELO, V_AUTH };

/* Where the shell reads its lines: libedit on a terminal, else lb. */
struct input {
	EditLine *el;
	History *hist;
	char history_path[PATH_MAX];	/* "" when history is not kept */
	char *prompt;			/* what libedit shows; never written */
	bool remember;			/* put the lines read into the history */
	bool show;			/* stdout is a terminal: mask control bytes */
	struct conn *keepalive;		/* while a message is typed: NOOP it when idle */
	int keepalive_secs;
	bool ready;			/* the server took a RCPT TO: DATA would be taken */
	const char *lost;		/* why the session ended while the user typed */
	const struct job *job;		/* --user: log in after the first HELO taken */
	bool logged_in;
	struct reader lb;
	char piece[PIECE_MAX];
};

/* The prompt libedit shows: the one the shell set last. */
static char *prompt_of(EditLine *el)
{
	void *data = NULL;

	el_get(el, EL_CLIENTDATA, &data);
	return ((struct input *)data)->prompt;
}

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* Keeps the session alive while the user types a message: NOOP, 200. */
static int send_keepalive(struct input *in)
{
	struct conn *c = in->keepalive;
	int r = conn_line(c, "NOOP", 4);

	if (r == 0 && (r = conn_read_reply(c)) == 200)
		return 0;
	in->lost = r < 0 ? "the connection broke" : "the server ended the session";
	return -1;
}

/* libedit's reader: one character from the terminal, waiting for it at
   most keepalive_secs while a message is typed, then sending a NOOP.
   1 with *wc, 0 at end of input, -1 on ^C or an error. */
static int read_char(EditLine *el, wchar_t *wc)
{
	struct input *in = NULL;
	mbstate_t mb;

	el_get(el, EL_CLIENTDATA, &in);
	memset(&mb, 0, sizeof mb);
	while (!interrupted) {
		struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
		int r = poll(&p, 1, in->keepalive ? in->keepalive_secs * 1000 : -1);
		ssize_t n;
		char ch;

		if (r == 0 && send_keepalive(in) < 0)
			return -1;
		if (r <= 0)
			continue;	/* a NOOP kept the session, or a signal came */
		n = read(STDIN_FILENO, &ch, 1);
		if (n == 0)
			return 0;
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return -1;
		if (n < 0)
			continue;
		size_t k = mbrtowc(wc, &ch, 1, &mb);
		if (k == (size_t)-2)
			continue;	/* more octets of one character to come */
		if (k == (size_t)-1)
			*wc = (unsigned char)ch;
		return 1;
	}
	return -1;
}

/* Whether the first n octets of a and b match, ASCII letters in either
   case: strncasecmp follows the locale, which on a terminal is the user's. */
static bool ascii_caseeq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];

		if (x >= 'a' && x <= 'z')
			x -= 'a' - 'A';
		if (y >= 'a' && y <= 'z')
			y -= 'a' - 'A';
		if (x != y)
			return false;
		if (x == '\0')
			return true;
	}
	return true;
}

/* Tab at the start of a line: complete the command being typed. */
static unsigned char complete(EditLine *el, int ch)
{
	static const char *const words[] = { "HELO ", "MAIL FROM: ", "RCPT TO: ", "DATA",
		"LIST ", "GET_MAIL ", "DELETE ", "NOOP", "RSET", "HELP", "QUIT" };
	const LineInfo *li = el_line(el);
	size_t len = (size_t)(li->cursor - li->buffer), hits = 0, last = 0;

	(void)ch;
	if (memchr(li->buffer, ' ', len))
		return CC_ERROR;		/* past the verb: nothing to complete */
	for (size_t i = 0; i < sizeof words / sizeof *words; i++)
		if (ascii_caseeq(li->buffer, words[i], len))
			hits++, last = i;
	if (hits == 1) {
		el_deletestr(el, (int)len);
		el_insertstr(el, words[last]);
		return CC_REFRESH;
	}
	if (hits > 1) {
		putc('\n', stdout);
		for (size_t i = 0; i < sizeof words / sizeof *words; i++)
			if (ascii_caseeq(li->buffer, words[i], len))
				printf("%s  ", words[i]);
		putc('\n', stdout);
		return CC_REDISPLAY;
	}
	return CC_ERROR;
}

/* Where the history is kept: $MYSMTP_HISTORY ("" for nowhere), else
   ~/.mysmtp_history. */
static void history_path(struct input *in)
{
	const char *env = getenv("MYSMTP_HISTORY"), *home = getenv("HOME");
	int n = 0;

	in->history_path[0] = '\0';
	if (env)
		n = snprintf(in->history_path, sizeof in->history_path, "%s", env);
	else if (home && *home)
		n = snprintf(in->history_path, sizeof in->history_path, "%s/%s", home, HISTORY_FILE);
	if (n < 0 || (size_t)n >= sizeof in->history_path)
		in->history_path[0] = '\0';
}

/* The terminal's characters, for libedit (its mbrtowc, wcrtomb and
   wcwidth): LC_CTYPE from the environment, and UTF-8 where that is the
   plain C locale, which knows nothing past ASCII and would garble it. Only
   LC_CTYPE: numbers, dates and messages stay those of "C", and the shell's
   own tests of octets are ASCII ones (ascii_caseeq). */
static void terminal_locale(void)
{
	if (!setlocale(LC_CTYPE, "") || strcmp(nl_langinfo(CODESET), "ANSI_X3.4-1968") == 0)
		setlocale(LC_CTYPE, "C.UTF-8");		/* none: C stays */
}

/* Sets up line editing, completion and history on the terminal. */
static int edit_open(struct input *in)
{
	HistEvent ev;

	terminal_locale();
	in->el = el_init("mysmtp", stdin, stdout, stderr);
	in->hist = history_init();
	if (in->el == NULL || in->hist == NULL)
		return -ENOMEM;
	history(in->hist, &ev, H_SETSIZE, HISTORY_SIZE);
	history(in->hist, &ev, H_SETUNIQUE, 1);
	history_path(in);
	if (in->history_path[0])
		history(in->hist, &ev, H_LOAD, in->history_path);	/* none yet is fine */
	el_set(in->el, EL_EDITOR, "emacs");
	el_set(in->el, EL_SIGNAL, 1);
	el_set(in->el, EL_HIST, history, in->hist);
	el_set(in->el, EL_CLIENTDATA, (void *)in);
	el_set(in->el, EL_PROMPT, prompt_of);
	el_set(in->el, EL_GETCFN, read_char);
	/* el_wset: el_set would keep a wide copy of the two names, never freed */
	el_wset(in->el, EL_ADDFN, L"mysmtp-complete", L"complete a command", complete);
	el_set(in->el, EL_BIND, "^I", "mysmtp-complete", NULL);
	el_source(in->el, NULL);
	return 0;
}

/* Ends line editing; the history is saved, readable by its owner only. */
static void edit_close(struct input *in)
{
	HistEvent ev;

	if (in->hist && in->history_path[0]) {
		mode_t old = umask(077);

		if (history(in->hist, &ev, H_SAVE, in->history_path) < 0)
			fprintf(stderr, "mysmtp: cannot save the history in %s\n", in->history_path);
		umask(old);
	}
	if (in->el)
		el_end(in->el);
	if (in->hist)
		history_end(in->hist);
}

/* Which command a line starts with, as far as the shell cares. */
static enum verb verb_of(const char *p, size_t n)
{
	static const struct { const char *name; enum verb verb; } verbs[] = {
		{ "DATA", V_DATA }, { "LIST", V_LIST },
		{ "GET_MAIL", V_GET }, { "QUIT", V_QUIT }, { "RCPT", V_RCPT },
		{ "HELO", V_HELO }, { "MAIL", V_NEW }, { "RSET", V_NEW }, { "AUTH", V_AUTH },
	};
	size_t i = 0, k;

	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	for (k = i; k < n && p[k] != ' ' && p[k] != '\t'; k++)
		;
	for (size_t v = 0; v < sizeof verbs / sizeof verbs[0]; v++)
		if (strlen(verbs[v].name) == k - i && ascii_caseeq(p + i, verbs[v].name, k - i))
			return verbs[v].verb;
	return V_OTHER;
}

/*
 * Reads the next piece of an input line into *p: LN_END, LN_MORE, LN_EOF
 * (with *n == 0 at the very end) or -errno.  A line ending CRLF ends LF.
 */
static int input_piece(struct input *in, const char **p, size_t *n)
{
	if (in->el == NULL) {
		*p = in->piece;
		return client_line(&in->lb, in->piece, sizeof in->piece, n, true, NO_DEADLINE);
	}
	int count = 0;
	const char *s = el_gets(in->el, &count);
	if (s == NULL || count <= 0) {
		*n = 0;
		if (in->lost)
			return -ENOTCONN;
		if (interrupted) {
			interrupted = 0;
			return LN_INTR;
		}
		return LN_EOF;
	}
	size_t len = (size_t)count;
	if (in->remember && len > 1 && verb_of(s, len) != V_AUTH) {	/* never a password */
		HistEvent ev;
		history(in->hist, &ev, H_ENTER, s);
	}
	if (len > 0 && s[len - 1] == '\n')
		len--;
	if (len > 0 && s[len - 1] == '\r')
		len--;
	*p = s;
	*n = len;
	return LN_END;
}

/* Sends a command line, the rest of it too when it came in pieces. */
static int send_command(struct conn *c, struct input *in, const char *p, size_t n, int got)
{
	for (;;) {
		int r = conn_put(c, p, n);
		if (r < 0)
			return conn_fail(c, r);
		if (got != LN_MORE)
			break;
		got = input_piece(in, &p, &n);
		if (got < 0)
			return input_fail("stdin", got);
	}
	int r = conn_line(c, "", 0);
	return r < 0 ? conn_fail(c, r) : EX_OK;
}

/* Sends the message typed after DATA up to a lone ".", dot-stuffed. */
static int shell_message(struct conn *c, struct input *in)
{
	bool first = true;

	in->prompt = "";
	in->remember = false;
	for (;;) {
		int r = 0;
		if (in->el || in->lb.start == in->lb.end)	/* about to wait for input */
			r = conn_flush(c);
		if (r < 0)
			return conn_fail(c, r);
		const char *p;
		size_t n;
		int got = input_piece(in, &p, &n);
		if (got < 0)
			return input_fail("stdin", got);
		if (got == LN_EOF && n == 0) {
			if (in->el)		/* after libedit's "^D" */
				putc('\n', stdout);
			fflush(stdout);
			fputs("mysmtp: end of input inside a message; message not sent\n", stderr);
			return EX_DATAERR;
		}
		if (first && got == LN_END && n == 1 && p[0] == '.') {
			r = conn_line(c, ".", 1);
			return r < 0 ? conn_fail(c, r) : EX_OK;
		}
		r = conn_put_text_piece(c, p, n, first, got != LN_MORE);
		if (r < 0)
			return conn_fail(c, r);
		first = got != LN_MORE;
	}
}

static void show_reply(const struct conn *c, const struct input *in)
{
	show_text(stdout, c->line, c->linelen, in->show);
	putc('\n', stdout);
}

/* On a terminal, after DATA: the message is typed into a temporary file,
   with a NOOP whenever the user is idle for keepalive_secs, and sent only
   after its ".". EX_OK with *text open at its start, or EX_DATAERR when
   the user dropped it (^D or ^C), or the status of what broke. */
static int compose_message(struct conn *c, struct input *in, FILE **text)
{
	*text = tmpfile();
	if (*text == NULL) {
		fprintf(stderr, "mysmtp: cannot hold the message: %s\n", strerror(errno));
		return EX_CANTCREAT;
	}
	in->prompt = "";
	in->remember = false;
	in->keepalive = c;
	for (bool first = true;;) {
		const char *p;
		size_t n;
		int got = input_piece(in, &p, &n);

		if (got == -ENOTCONN) {
			in->keepalive = NULL;
			fprintf(stderr, "\nmysmtp: %s while the message was typed: ", in->lost);
			show_text(stderr, c->line, c->linelen, true);
			fputs("\nmysmtp: message not sent\n", stderr);
			return EX_IOERR;
		}
		if (got < 0)
			return input_fail("stdin", got);
		if (got == LN_INTR || (got == LN_EOF && n == 0)) {
			in->keepalive = NULL;
			fputs("\nmysmtp: message dropped; the transaction is still open\n", stdout);
			return EX_DATAERR;
		}
		if (first && n == 1 && p[0] == '.')
			break;
		if (fwrite(p, 1, n, *text) != n || (got != LN_MORE && putc('\n', *text) == EOF))
			return input_fail("the message's temporary file", -errno);
		first = got != LN_MORE;
	}
	in->keepalive = NULL;
	if (fflush(*text) != 0 || fseek(*text, 0, SEEK_SET) != 0)
		return input_fail("the message's temporary file", -errno);
	return EX_OK;
}

/* Sends the composed text after DATA, dot-stuffed, then the final ".". */
static int send_composed(struct conn *c, FILE *text)
{
	char buf[PIECE_MAX];
	bool first = true;

	while (fgets(buf, sizeof buf, text)) {
		size_t n = strlen(buf);
		bool end = n > 0 && buf[n - 1] == '\n';
		int r = conn_put_text_piece(c, buf, end ? n - 1 : n, first, end);

		if (r < 0)
			return conn_fail(c, r);
		first = end;
	}
	int r = conn_line(c, ".", 1);
	return r < 0 ? conn_fail(c, r) : EX_OK;
}

/* DATA typed on a terminal once a recipient was taken: the message first,
   then DATA, its text and the final reply. */
static int shell_data(struct conn *c, struct input *in, const char *p, size_t n, bool *stop)
{
	char line[64];		/* the DATA line: libedit reuses its buffer for the message */
	FILE *text;
	int st, code;

	memcpy(line, p, n);
	puts(DATA_PROMPT);
	st = compose_message(c, in, &text);
	*stop = st == EX_IOERR || st == EX_CANTCREAT;
	if (st == EX_OK && (st = send_command(c, in, line, n, LN_END)) == EX_OK) {
		code = conn_read_reply(c);
		if (code == 200)
			st = send_composed(c, text);
		else if (code < 0)
			st = conn_fail(c, code);
		if (st == EX_OK && code == 200 && (code = conn_read_reply(c)) < 0)
			st = conn_fail(c, code);
		if (st == EX_OK) {
			show_reply(c, in);
			st = reply_status(code);
		}
		in->ready = false;
		*stop = st == EX_IOERR;
	}
	if (text)
		fclose(text);
	return st == EX_DATAERR ? EX_OK : st;	/* a message the user dropped is no failure */
}

/* After a refused DATA, skips the message that follows in a command file. */
static int skip_message(struct input *in)
{
	bool first = true;

	for (;;) {
		const char *p;
		size_t n;
		int got = input_piece(in, &p, &n);
		if (got < 0)
			return input_fail("stdin", got);
		if (got == LN_EOF || (first && got == LN_END && n == 1 && p[0] == '.'))
			return EX_OK;
		first = got != LN_MORE;
	}
}

/*
 * Before a command: the server speaks unasked only when it ends the
 * session (idle timeout, too many errors); show what it said, then stop.
 */
static int check_unasked(struct conn *c, const struct input *in)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };

	if (c->in.start == c->in.end && poll(&p, 1, 0) <= 0)
		return 0;
	int r = conn_read_reply(c);
	if (r < 0)
		return r;
	show_reply(c, in);
	r = conn_read_reply(c);
	return r < 0 ? r : -EPROTO;
}

/* Send AUTH user password (wiped) and show the reply: the exit status. */
static int auth_and_show(struct conn *c, struct input *in, const char *user, char *password,
			 bool *stop)
{
	int r = client_send_auth(c, user, password, in->job->plaintext_ok), code;

	*stop = false;
	if (r == -EPERM || r == -E2BIG)
		return r == -EPERM ? EX_NOPERM : EX_USAGE;
	code = r < 0 ? r : conn_read_reply(c);
	if (code < 0) {
		*stop = true;
		return conn_fail(c, code);
	}
	show_reply(c, in);
	in->logged_in |= code == 200;
	return reply_status(code);
}

/* AUTH typed: "AUTH user password", or "AUTH user" and the password asked
   for without echo on a terminal. The line is wiped after use. */
static int shell_auth(struct conn *c, struct input *in, const char *p, size_t n, bool *stop)
{
	char line[REPLY_MAX], password[PASSWORD_MAX + 2] = "";
	char *user, *pass;
	int st;

	if (n >= sizeof line) {
		*stop = false;
		fputs("mysmtp: AUTH line too long\n", stderr);
		return EX_USAGE;
	}
	memcpy(line, p, n);
	line[n] = '\0';
	user = line + strcspn(line, " \t");
	user += strspn(user, " \t");
	pass = user + strcspn(user, " ");
	if (*pass)
		*pass++ = '\0';
	if (!*pass && in->el && *user && client_prompt_password(user, password, sizeof password) > 0)
		pass = password;
	st = auth_and_show(c, in, user, pass, stop);
	explicit_bzero(line, sizeof line);
	explicit_bzero(password, sizeof password);
	return st;
}

/* --user: log in right after the first HELO the server took. */
static int shell_login(struct conn *c, struct input *in, bool *stop)
{
	char password[PASSWORD_MAX + 2];
	int st = client_password(in->job, password, sizeof password);

	*stop = false;
	if (st == EX_OK)
		st = auth_and_show(c, in, in->job->user, password, stop);
	explicit_bzero(password, sizeof password);
	return st;
}

/*
 * One command and its reply (after DATA, also the message and its reply).
 * Returns the exit status for the reply; sets *stop when the session is
 * over: QUIT accepted, the connection broken, input ended in a message.
 */
static int shell_command(struct conn *c, struct input *in, const char *p, size_t n,
			 int got, bool *stop)
{
	enum verb verb = verb_of(p, n);

	if (verb == V_DATA && in->el && in->ready && got == LN_END && n < 64)
		return shell_data(c, in, p, n, stop);
	if (verb == V_AUTH && got == LN_END)
		return shell_auth(c, in, p, n, stop);
	int st = send_command(c, in, p, n, got);

	*stop = true;
	if (st != EX_OK)
		return st;
	int code = conn_read_reply(c);
	if (code < 0)
		return conn_fail(c, code);
	if (code == 200 && (verb == V_RCPT || verb == V_NEW || verb == V_HELO))
		in->ready = verb == V_RCPT;
	if (verb == V_DATA && code == 200) {
		if (in->el && c->linelen > 4) {
			show_text(stdout, c->line + 4, c->linelen - 4, in->show);
			putc('\n', stdout);
		}
		st = shell_message(c, in);
		if (st != EX_OK)
			return st;
		code = conn_read_reply(c);
		if (code < 0)
			return conn_fail(c, code);
		verb = V_OTHER;
	}
	show_reply(c, in);
	if (code == 200 && (verb == V_LIST || verb == V_GET)) {
		int r = conn_read_body(c, stdout, in->show, NULL);
		if (r < 0)
			return conn_fail(c, r);
	}
	if (code != 200 && verb == V_DATA && in->el == NULL && skip_message(in) != EX_OK)
		return EX_IOERR;
	*stop = verb == V_QUIT && code == 200;
	if (verb == V_HELO && code == 200 && in->job->user && !in->logged_in)
		return shell_login(c, in, stop);
	return reply_status(code);
}

/* At the end of input: QUIT for the user (its reply shown on a terminal). */
static int shell_end(struct conn *c, const struct input *in, int status)
{
	if (in->el)			/* after libedit's "^D" */
		putc('\n', stdout);
	int r = conn_line(c, "QUIT", 4);
	int code = r < 0 ? r : conn_read_reply(c);
	if (code < 0)
		return conn_fail(c, code);
	if (in->el)
		show_reply(c, in);
	return status != EX_OK ? status : reply_status(code);
}

/*
 * The shell: each line read is a command.  Returns the exit status of
 * the first failed reply, or of what broke the session.
 */
static int run_shell(struct conn *c, struct input *in)
{
	int status = EX_OK;

	for (;;) {
		int r = check_unasked(c, in);
		if (r < 0)
			return conn_fail(c, r);
		if (fflush(stdout) != 0)
			return flush_stdout();
		in->prompt = "> ";
		in->remember = true;
		const char *p;
		size_t n;
		int got = input_piece(in, &p, &n);
		if (got < 0)
			return input_fail("stdin", got);
		if (got == LN_INTR) {		/* ^C at the prompt: a fresh line */
			putc('\n', stdout);
			continue;
		}
		if (got == LN_EOF && n == 0)
			return shell_end(c, in, status);
		if (got != LN_MORE && n == 0)
			continue;
		bool stop;
		int st = shell_command(c, in, p, n, got, &stop);
		if (stop && st != EX_OK)
			return st;
		if (status == EX_OK)
			status = st;
		if (stop)
			return status;
	}
}

/* Runs the shell on stdin: libedit on a terminal, else plain reads. */
int shell_main(struct conn *c, const struct job *j)
{
	static struct input in;		/* static: too big for a small stack */
	int st;

	in.show = isatty(STDOUT_FILENO);
	reader_init(&in.lb, STDIN_FILENO, NULL);
	in.keepalive_secs = j->keepalive;
	in.job = j;
	if (isatty(STDIN_FILENO)) {
		struct sigaction sa = { .sa_handler = on_interrupt };	/* no SA_RESTART */

		sigaction(SIGINT, &sa, NULL);
	}
	if (isatty(STDIN_FILENO) && edit_open(&in) < 0) {
		edit_close(&in);
		fputs("mysmtp: cannot set up line editing\n", stderr);
		return EX_OSERR;
	}
	st = run_shell(c, &in);
	if (fflush(stdout) != 0 && st == EX_OK)
		st = flush_stdout();
	edit_close(&in);
	return st;
}

