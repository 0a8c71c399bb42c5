/* client.h: what the parts of mysmtp, the client, share: the connection to
   the server and its replies (client_conn.c), the scripted jobs send, list,
   get and delete (client_jobs.c), the interactive shell (client_shell.c), and the
   command line (mysmtp.c). Every wait for the server has a deadline; exit
   codes are sysexits. */
#ifndef MYSMTP_CLIENT_H
#define MYSMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "net/io.h"

#define DEFAULT_HOST	"127.0.0.1"
#define DEFAULT_PORT	"2525"
#define DEFAULT_SECS	30
#define DEFAULT_KEEPALIVE 60	/* seconds idle while a message is typed, then NOOP */
#define VERSION		"1.0"
#define REPLY_MAX	1000	/* octets in a status line, CRLF not counted */
#define PIECE_MAX	16384	/* longer lines are handled in pieces this long */
#define NO_DEADLINE	IO_NO_DEADLINE	/* for reads from stdin or a file */
#define PASSWORD_MAX	200	/* octets, as the server takes them */

/* What client_line found, besides -errno; LN_INTR: the user pressed ^C. */
enum { LN_END, LN_MORE, LN_EOF, LN_INTR };

/* The connection to the server. */
struct conn {
	int fd;
	int secs;			/* the -t timeout */
	struct tlsio *tls;		/* once TLS is started (--tls, --starttls) */
	const struct io_transport *via;	/* its transport; NULL: plain */
	const char *where;		/* "host:port", for messages */
	struct reader in;
	size_t outlen;
	char out[PIECE_MAX];
	size_t linelen;
	char line[REPLY_MAX + 1];	/* the last status line, without CRLF */
	char piece[PIECE_MAX];		/* a piece of a message line */
};

/* The command line, parsed. */
struct job {
	enum { J_SHELL, J_SEND, J_LIST, J_GET, J_DELETE } kind;
	const char *host, *port, *helo, *from, *file, *addr, *id;
	const char *subject;		/* send -S: a Subject line before the text */
	const char *user;		/* --user: log in as this address after HELO */
	const char *password_file;
	bool plaintext_ok;		/* --allow-plaintext-auth */
	bool tls, starttls;		/* --tls: TLS from the start; --starttls: after STARTTLS */
	const char *ca_file;		/* --ca-file: verify against these CAs only */
	const char *tls_name;		/* --tls-name: the certificate's name, if not host */
	char **rcpt;
	int nrcpt;
	int secs;
	int keepalive;
};

/* client_conn.c */
/* Reads a line, or its next cap octets, from r into out (LN_END, LN_MORE,
   LN_EOF or -errno); until is a deadline on the io_now_ms scale, or
   NO_DEADLINE. */
int client_line(struct reader *r, char *out, size_t cap, size_t *n, bool strip_cr, uint64_t until);
/* Writes p to f; when mask, a control byte shows as ^X. */
void show_text(FILE *f, const char *p, size_t n, bool mask);
/* Say why the session broke, or why reading name failed: EX_IOERR. */
int conn_fail(const struct conn *c, int err);
int input_fail(const char *name, int err);
int conn_flush(struct conn *c);
int conn_put(struct conn *c, const char *p, size_t n);
/* p and CRLF. */
int conn_line(struct conn *c, const char *p, size_t n);
/* The next status line into c->line: its code, or -errno. */
int conn_read_reply(struct conn *c);
/* The exit status for a reply code. */
int reply_status(int code);
/* The lines of a multi-line reply to out, unstuffed, up to its "."; with
   heads, its first lines must start with those. */
int conn_read_body(struct conn *c, FILE *out, bool mask, const char *const *heads);
/* One piece of a message line, dot-stuffed when first, CRLF when end. */
int conn_put_text_piece(struct conn *c, const char *p, size_t n, bool first, bool end);
/* Connect to host:port within secs: the descriptor, or -1 (said on stderr). */
int conn_dial(const char *host, const char *port, int secs, const char *where);
int conn_greet(struct conn *c);
/* TLS on the connection, verifying the certificate for name (the host, or
   --tls-name) against the system's CAs or ca_file: the exit status (said
   on stderr). */
int conn_start_tls(struct conn *c, const char *name, const char *ca_file);
/* Free the connection's TLS (close_notify sent when it can be). */
void conn_end_tls(struct conn *c);
int conn_expect_200(struct conn *c, const char *what);
int conn_command(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void conn_say_quit(struct conn *c);
int flush_stdout(void);

/* client_jobs.c: the subcommands. */
int run_send(struct conn *c, const struct job *j, int text_fd);
int run_mailbox(struct conn *c, const struct job *j);

/* client_login.c: logging in. */
/* The password for j->user into out[size]: EX_OK, or the exit status. */
int client_password(const struct job *j, char *out, size_t size);
/* Ask for a password on the terminal, without echo: its length, or -errno. */
int client_prompt_password(const char *user, char *out, size_t size);
/* Whether a password may go to this server: TLS (to come), a server on
   this machine, or plaintext_ok; says why not on stderr. */
bool client_may_send_password(const struct conn *c, bool plaintext_ok);
/* Send "AUTH user password" (password wiped here): 0, -EPERM when the
   client refused to (said on stderr), -E2BIG (said), or -errno. */
int client_send_auth(struct conn *c, const char *user, char *password, bool plaintext_ok);
/* AUTH user password (password wiped here), refused by the client itself
   to a server not on this machine unless plaintext_ok: the exit status. */
int client_auth(struct conn *c, const char *user, char *password, bool plaintext_ok);
/* client_password, then client_auth. */
int client_login(struct conn *c, const struct job *j);

/* client_shell.c: the shell on standard input. */
int shell_main(struct conn *c, const struct job *j);

#endif
