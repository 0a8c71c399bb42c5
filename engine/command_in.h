/* command_in.h: how the session engine reads one command (session.c's own
   helper, which knows nothing of the session): a line by a deadline; the literals a dialect allows
   in it, "{n}" after its go-ahead and "{n+}" without, a big one streamed
   to the dialect; and, while no line has come (between commands, or in
   one that waits, IDLE), the descriptor the dialect watches. */
#ifndef MYSMTP_COMMAND_IN_H
#define MYSMTP_COMMAND_IN_H

#include "net/io.h"

#include <stddef.h>
#include <stdint.h>

/* Where a command comes from, and what the dialect says of its syntax: the
   session's reader and writer; whether a line may end in a literal, and
   the hooks (each given ctx) that ask for one ("{n}": go_ahead, NULL for
   none) and that watch a descriptor while no line has come (watch: the
   descriptor, -1 for none now; wake: it is readable; NULL: none). A
   literal that would take the command past its limit but is at most
   literal_max octets goes to literal_sink chunk by chunk (NULL: none), and
   the line keeps its "{n}" and CRLF without its octets. */
struct command_source {
	struct reader *in;
	struct writer *out;
	int literals;
	void (*go_ahead)(void *ctx);
	int (*watch)(void *ctx);
	void (*wake)(void *ctx);
	uint64_t literal_max;
	void (*literal_sink)(void *ctx, const char *octets, size_t len);
	void *ctx;
};

/* Wait until src->in may give a line without waiting on its descriptor
   first, or until the deadline: each time the descriptor src->watch gives
   (-1: no more) is readable first, call src->wake. The reader's own read
   finds the line, the end, a timeout or an error. */
void command_wait(const struct command_source *src, uint64_t deadline);

/* Read one command into line[max + 1] by deadline: its length, with *crlf
   set when its last line ended in CRLF; or as reader_line_crlf says, -E2BIG
   (a line too long, skipped) or another -errno; or -EMSGSIZE: a literal
   would take it past max (and is not one for the sink), and was not read;
   or -EOVERFLOW: the same for a literal the client sends unasked ("{n+}"),
   whose octets follow, so the session must end; or -EILSEQ: a NUL or CR
   outside its literals. After either refusal the line holds the command's
   first line, with the tag, and what came before the literal. */
int command_read(const struct command_source *src, char *line, size_t max, uint64_t deadline,
		 int *crlf);

#endif
