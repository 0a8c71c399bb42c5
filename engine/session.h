/* session.h: the session engine that every dialect runs on (the My_SMTP
   dialect in protocol.c, standard SMTP in smtp.c, POP3 in pop3.c): it reads
   each command line with its deadline, looks its verb up in the dialect's
   table, checks the state the command needs and whether it takes an
   argument, counts errors and commands that do no mail work, and ends the
   session by its limits. A dialect may tag its lines, take literals in
   them (a big one streamed to it, APPEND), set its own line limit, and
   watch a descriptor while the session waits for a line, between commands
   or inside one (IMAP's IDLE). A dialect is its table and a struct dialect, with
   states and a state of its own; what it needs beyond the loop (login,
   STARTTLS, delivery) it calls as features, which use the session through
   session_io.h. The engine keeps no globals and touches only the
   descriptors it is given. */
#ifndef MYSMTP_SESSION_H
#define MYSMTP_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "engine/session_io.h"
#include "net/io.h"

#define COMMAND_LINE_MAX 512	/* octets, with the line end: a dialect's unless it says */
#define COMMAND_LINE_LIMIT 65536	/* the most a dialect may say: the line is on the stack */

struct store;
struct spool;

/* Octets a dialect may keep of its own for a session (its state_size). */
#define SESSION_STATE_MAX 2048
#define SESSION_STATE_SIZE(type) sizeof(char[sizeof(type) <= SESSION_STATE_MAX ? sizeof(type) : -1])

struct command {
	const char *verb;
	int needs;			/* the least of the dialect's states it runs in */
	int no_argument;		/* an argument is refused (REFUSE_ARGUMENT) */
	void (*run)(struct session *s, char *arg);
	int code;			/* for the engine's own handlers below: */
	const char *text;		/* the reply they give */
	/* The line holds a password: the argument is passed as sent (after
	   the verb and one blank, nothing trimmed). Every line is wiped from
	   memory once acted on, this one too. */
	int secret;
};

/* Why the engine refuses a command line: the dialect says each in its own
   words. REFUSE_TOO_LONG is also a literal that would take the command past
   the dialect's limit: it is refused before it is read. */
enum refusal { REFUSE_TOO_LONG, REFUSE_BAD_OCTET, REFUSE_BARE_LF, REFUSE_UNKNOWN,
	       REFUSE_STATE, REFUSE_ARGUMENT };

struct dialect {
	const struct command *commands;	/* ended by a NULL verb */
	int strict;			/* lines end in CRLF; a bare LF as -B says */
	void (*greet)(struct session *s);
	/* Reply with code and text, in the dialect's form and counts. */
	void (*reply)(struct session *s, int code, const char *text);
	/* Refuse the command line (c: its command, when known). */
	void (*refuse)(struct session *s, enum refusal why, const struct command *c);
	/* Send the session's last line. */
	void (*last_words)(struct session *s, enum ending why);
	/* Octets of its own state (SESSION_STATE_SIZE), kept for it by the
	   engine as s->dialect_state, all zero at the start; 0: none. */
	size_t state_size;
	/* Set up its state and features before the greeting (NULL: nothing
	   to do): 0, or -1 when the session must end without a word. */
	int (*open)(struct session *s);
	/* Drop the transaction (session_cmd_reset; NULL: nothing to drop). */
	void (*reset)(struct session *s);
	/* Let go of what others may wait for (NULL: nothing), before the last
	   reply is sent in full. */
	void (*finish)(struct session *s);
	/* Let go of the rest (NULL: nothing), once the last reply is sent. */
	void (*close)(struct session *s);
	/* Lines said with no session, CRLF included: to a connection past a
	   listener's cap ("{host}" stands for the host name), and when the
	   mailbox directory cannot be opened. */
	const char *busy_line;
	const char *unavailable_line;

	/* For a dialect like IMAP (all 0 or NULL for the others): */
	/* The longest command in octets, with its line ends and literals (0:
	   COMMAND_LINE_MAX; at most COMMAND_LINE_LIMIT, taken for more). */
	size_t line_max;
	/* Each line opens with a tag, then a blank, then the verb: s->tag is
	   it while the command runs ("" when a line has none). */
	int tagged;
	/* A line may end in a literal, "{n}" or "{n+}": n octets follow its
	   CRLF, then the rest of the command, which may end in another. The
	   command is passed as sent, CRLFs and all; for "{n}" go_ahead first
	   sends the continuation line that asks for the octets. */
	int literals;
	void (*go_ahead)(struct session *s);
	/* A descriptor to watch while waiting for the next line (-1: none now),
	   and what to do when it is readable: send untagged lines (IDLE). */
	int (*watch)(struct session *s);
	void (*wake)(struct session *s);
	/* A literal too big for the command line but of at most literal_max
	   octets (IMAP's APPEND) goes to literal_sink as it comes, chunk by
	   chunk, after the go-ahead (NULL: none; such a literal is refused
	   unread, as is one past literal_max). The line keeps its "{n}" and
	   CRLF but none of its octets: a literal is one of these when the
	   octets before that CRLF, plus 2, plus n, are more than line_max. */
	uint64_t literal_max;
	void (*literal_sink)(struct session *s, const char *octets, size_t len);
};

struct session {
	const struct config *cfg;
	struct store *store;		/* for the dialect: the engine does not look in */
	const struct session_env *env;
	const struct dialect *dialect;
	struct reader in;
	struct writer out;
	int state;			/* the dialect's, 0 at the start */
	enum session_end end;
	int done;
	int tls;			/* the connection runs over TLS */
	unsigned errors;		/* client errors in a row */
	unsigned junk;			/* commands in a row that neither delivered nor read mail */
	uint64_t session_end;		/* io_now_ms() past which the session ends */
	char verb[16];			/* of the command being answered, for the log */
	const struct command *command;	/* the one being run */
	const char *tag;		/* of the command being run, tagged dialects */
	void *dialect_state;		/* what the dialect keeps of its own (state_size) */
};

/* Serve one session of dialect d, from greeting to close. */
enum session_end session_run(const struct config *cfg, struct store *st,
			     const struct session_env *env, const struct dialect *d);

/* For a command that waits (IDLE): read the client's next line into
   line[max + 1] by the session's deadlines, and meanwhile call
   on_ready(s, ctx) each time fd is readable (it sends untagged lines). As
   session_read_line says: the line's length, -E2BIG, or another -errno
   once the session has ended. */
int session_wait_line(struct session *s, int fd, void (*on_ready)(struct session *s, void *ctx),
		      void *ctx, char *line, size_t max);
/* Send text as the body of a multi-line reply: CRLF line ends, a leading
   dot doubled, a CRLF after a last line without one; not the final ".".
   0 or -errno. */
int session_send_text(struct session *s, const struct spool *text);
/* After the reply line was sent: log it when it is a refusal, with the
   command and the peer; count it when it is a client error, and end the
   session after max_errors of them in a row; any other reply starts the
   count afresh. */
void session_replied(struct session *s, const char *line, int refusal, int client_error);
/* Reply with code and a formatted text, in the dialect's form. */
void session_replyf(struct session *s, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Handlers for a command table: the row's reply (NOOP, HELP, a command not
   implemented); the same after the dialect's reset (RSET); the same, then
   the end of the session (QUIT). */
void session_cmd_reply(struct session *s, char *arg);
void session_cmd_reset(struct session *s, char *arg);
void session_cmd_quit(struct session *s, char *arg);

#endif
