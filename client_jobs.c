/* client_jobs.c: the client's subcommands for scripts: send a message from a
   file or standard input, list a mailbox, get a message byte for byte. */
#include "client.h"

#include <errno.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>
/* Sends the text read from src, then the closing "." (send). */
static int send_text(struct conn *c, struct reader *src, const char *name)
{
	bool first = true;

	for (;;) {
		int r = 0;
		if (src->start == src->end)	/* about to wait for input */
			r = conn_flush(c);
		if (r < 0)
			return conn_fail(c, r);
		size_t n;
		int got = client_line(src, c->piece, sizeof c->piece, &n, false, NO_DEADLINE);
		if (got < 0)
			return input_fail(name, got);
		if (got == LN_EOF && n == 0 && first)
			break;
		r = conn_put_text_piece(c, c->piece, n, first, got != LN_MORE);
		if (r < 0)
			return conn_fail(c, r);
		if (got == LN_EOF)
			break;
		first = got == LN_END;
	}
	int r = conn_line(c, ".", 1);
	return r < 0 ? conn_fail(c, r) : EX_OK;
}

/* send: HELO, MAIL FROM, RCPT TO each, DATA, the text, QUIT. */
int run_send(struct conn *c, const struct job *j, int text_fd)
{
	static struct reader src;		/* static: too big for a small stack */
	int st = conn_command(c, "HELO %s", j->helo);

	reader_init(&src, text_fd, NULL);
	if (st == EX_OK && j->user)
		st = client_login(c, j);
	if (st == EX_OK)
		st = conn_command(c, "MAIL FROM: %s", j->from);
	for (int i = 0; st == EX_OK && i < j->nrcpt; i++)
		st = conn_command(c, "RCPT TO: %s", j->rcpt[i]);
	if (st == EX_OK)
		st = conn_command(c, "DATA");
	if (st == EX_OK)
		st = send_text(c, &src, j->file ? j->file : "stdin");
	if (st == EX_OK)
		st = conn_expect_200(c, "end of DATA");
	if (st != EX_IOERR)
		conn_say_quit(c);
	return st;
}

/* list, get and delete: HELO, LIST, GET_MAIL or DELETE, the body to
   stdout, QUIT. */
int run_mailbox(struct conn *c, const struct job *j)
{
	static const char *const heads[] = { "From: ", "Date: ", NULL };
	int st = conn_command(c, "HELO %s", j->helo);

	if (st == EX_OK && j->user)
		st = client_login(c, j);
	if (st == EX_OK && j->kind == J_DELETE) {
		st = conn_command(c, "DELETE %s %s", j->addr, j->id);
		if (st != EX_IOERR)
			conn_say_quit(c);
		return st;
	}
	if (st == EX_OK && j->kind == J_GET)
		st = conn_command(c, "GET_MAIL %s %s", j->addr, j->id);
	else if (st == EX_OK)
		st = conn_command(c, "LIST %s", j->addr);
	if (st == EX_OK) {
		int r = conn_read_body(c, stdout, isatty(STDOUT_FILENO),
				  j->kind == J_GET ? heads : NULL);
		st = r < 0 ? conn_fail(c, r) : flush_stdout();
	}
	if (st != EX_IOERR)
		conn_say_quit(c);
	return st;
}

