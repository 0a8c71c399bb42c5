/* client_jobs.c: the client's subcommands for scripts: send a message from a
   file or standard input, list a mailbox, get a message byte for byte. */
#include "client/client.h"

#include <errno.h>
#include <stdio.h>
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

/* A Subject field of text (send -S) and the empty line that ends the
   header block: as it is when it is printable ASCII, else as RFC 2047
   encoded words (UTF-8, base64), one a line of at most 76 octets, folded,
   never cutting a UTF-8 sequence. */
static int send_subject(struct conn *c, const char *text)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char line[128];
	size_t len = strlen(text), at = 0;
	bool ascii = true;
	int r = 0;

	for (size_t i = 0; i < len; i++)
		ascii &= text[i] >= ' ' && text[i] < 127;
	if (ascii) {
		if ((r = conn_put(c, "Subject: ", 9)) == 0)
			r = conn_line(c, text, len);
		return r < 0 ? r : conn_line(c, "", 0);
	}
	while (r >= 0 && at < len) {
		size_t n = len - at < 39 ? len - at : 39, k;	/* 52 of base64: 73 a line */

		while (n > 1 && at + n < len && ((unsigned char)text[at + n] & 0xc0) == 0x80)
			n--;
		k = (size_t)snprintf(line, sizeof line, "%s=?UTF-8?B?", at == 0 ? "Subject: " : " ");
		for (size_t i = 0; i < n; i += 3) {
			unsigned v = (unsigned char)text[at + i] << 16;

			v |= i + 1 < n ? (unsigned char)text[at + i + 1] << 8 : 0;
			v |= i + 2 < n ? (unsigned char)text[at + i + 2] : 0;
			line[k++] = b64[v >> 18];
			line[k++] = b64[(v >> 12) & 63];
			line[k++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
			line[k++] = i + 2 < n ? b64[v & 63] : '=';
		}
		memcpy(line + k, "?=", 2);
		r = conn_line(c, line, k + 2);
		at += n;
	}
	return r < 0 ? r : conn_line(c, "", 0);
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
	if (st == EX_OK && j->subject) {
		int r = send_subject(c, j->subject);

		st = r < 0 ? conn_fail(c, r) : EX_OK;
	}
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

