/* command_in.h: how the session engine reads one command (session.c's own
   helper): a line by the session's deadlines; the literals a dialect allows
   in it, "{n}" after its go-ahead and "{n+}" without; and, while no line
   has come, the descriptor the dialect watches. */
#ifndef MYSMTP_COMMAND_IN_H
#define MYSMTP_COMMAND_IN_H

#include "engine/session.h"

/* Read one command into line[max + 1] by deadline: its length, with *crlf
   set when its last line ended in CRLF; or as reader_line_crlf says, -E2BIG
   (a line too long, skipped) or another -errno; or -EMSGSIZE: a literal
   would take it past max, and was not read (line holds the command up to
   it); or -EILSEQ: a NUL or CR outside its literals. */
int command_read(struct session *s, char *line, size_t max, uint64_t deadline, int *crlf);

/* 1 when the literal that ends line[len] is one the client sends without
   waiting ("{n+}"). */
int command_literal_unasked(const char *line, size_t len);

#endif
