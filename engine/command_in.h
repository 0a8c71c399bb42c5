/* command_in.h: how the session engine reads one command (session.c's own
   helper, which knows nothing of the session): a line by a deadline; the literals a dialect allows
   in it, "{n}" after its go-ahead and "{n+}" without; and, while no line
   has come, the descriptor the dialect watches. */
#ifndef MYSMTP_COMMAND_IN_H
#define MYSMTP_COMMAND_IN_H

#include "net/io.h"

#include <stddef.h>
#include <stdint.h>

/* Where a command comes from, and what the dialect says of its syntax: the
   session's reader and writer; whether a line may end in a literal, and
   the hooks (each given ctx) that ask for one ("{n}": go_ahead, NULL for
   none) and that watch a descriptor while no line has come (watch: the
   descriptor, -1 for none now; wake: it is readable; NULL: none). */
struct command_source {
	struct reader *in;
	struct writer *out;
	int literals;
	void (*go_ahead)(void *ctx);
	int (*watch)(void *ctx);
	void (*wake)(void *ctx);
	void *ctx;
};

/* Read one command into line[max + 1] by deadline: its length, with *crlf
   set when its last line ended in CRLF; or as reader_line_crlf says, -E2BIG
   (a line too long, skipped) or another -errno; or -EMSGSIZE: a literal
   would take it past max, and was not read (line holds the command up to
   it); or -EILSEQ: a NUL or CR outside its literals. */
int command_read(const struct command_source *src, char *line, size_t max, uint64_t deadline,
		 int *crlf);

/* 1 when the literal that ends line[len] is one the client sends without
   waiting ("{n+}"). */
int command_literal_unasked(const char *line, size_t len);

#endif
