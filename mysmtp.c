/*
 * mysmtp.c: the My_SMTP client's command line.  Without a subcommand it is a
 * shell for the protocol (client_shell.c: prompts and line editing on a
 * terminal, a command file from a pipe); the subcommands send, list, get and delete
 * (client_jobs.c) do one job each for scripts, over client_conn.c.
 * Every wait for the server has a deadline; exit codes are sysexits (usage()).
 */
#include "client/client.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

static const char usage_text[] =
"usage: mysmtp [-s host] [-p port] [-t secs] [-k secs] [-u address] [host[:port] [port]]\n"
"       mysmtp [options] send -f from [-H helo] [-i file] [-S subject] rcpt...  (-f defaults to -u's)\n"
"       mysmtp [options] list [-H helo] address\n"
"       mysmtp [options] get [-H helo] address id\n"
"       mysmtp [options] delete [-H helo] address id\n"
"       mysmtp -h | --help | -V | --version\n";

static const char help_text[] =
"\n"
"Talks My_SMTP to the server at host:port (default 127.0.0.1:2525). Without\n"
"a subcommand it is a shell (prompts, editing, Tab and history on a\n"
"terminal; a command file from a pipe); send, list, get and delete do one\n"
"job each for scripts and print only their result; send's -S puts a\n"
"Subject line (RFC 2047 where not ASCII) and an empty line before the text.\n"
"mysmtp(1) tells all of it.\n"
"\n"
"Options (before or after the subcommand):\n"
"  -s, --server host   server host (default 127.0.0.1); the shell also takes\n"
"            it as its first operand, as host or host:port ([v6]:port)\n"
"  -p, --port port     server port (default 2525); the shell also takes it as\n"
"            its second operand\n"
"  -t, --timeout secs  give up connecting, or waiting for a reply line (or\n"
"            for the next 16 KiB of a long one), after secs seconds (default 30)\n"
"  -k, --keepalive secs  while a message is typed on a terminal, send NOOP\n"
"            after secs seconds without a key (default 60)\n"
"  -u, --user address  log in (AUTH) as address after HELO; send's -f is then\n"
"            address unless given. The password is asked for on the\n"
"            terminal without echo, or taken from $MYSMTP_PASSWORD or\n"
"      --password-file file  (its first line)\n"
"      --allow-plaintext-auth  send the password to a server that is not on\n"
"            this machine, without TLS (the client refuses by default)\n"
"      --starttls          start TLS with STARTTLS after the greeting\n"
"      --tls               TLS from the start (a server run with --tls-implicit)\n"
"      --ca-file file      verify the server's certificate against these CAs\n"
"            (PEM) instead of the system's\n"
"      --tls-name name     the name the certificate must carry (and SNI), when\n"
"            it is not the host given: -s 192.0.2.10 --tls-name mail.example.org\n"
"  -h, --help          show this help\n"
"  -V, --version       show the version\n"
"\n"
"Exit status (sysexits.h); the shell's is that of its first failed reply,\n"
"or of what ended the session:\n"
"   0  every reply was 200\n"
"  64  usage error (EX_USAGE)\n"
"  65  a 400 reply, or input ended inside a message (EX_DATAERR)\n"
"  66  the -i file cannot be opened (EX_NOINPUT)\n"
"  67  a 401 reply: no such mailbox or message (EX_NOUSER)\n"
"  69  no connection: unknown host, refused, timed out (EX_UNAVAILABLE)\n"
"  73  a message typed on a terminal cannot be held in a temporary file\n"
"      (EX_CANTCREAT)\n"
"  74  connection closed mid-session, no reply in time, a malformed or\n"
"      overlong reply, a read or write error (EX_IOERR)\n"
"  75  a 500 reply (EX_TEMPFAIL)\n"
"  76  TLS failed: no handshake, or the certificate is not trusted for the\n"
"      host (EX_PROTOCOL)\n"
"  77  a 403 reply: a refused login, a mailbox not one's own (EX_NOPERM)\n";

/* Prints the usage to stderr and returns EX_USAGE. */
static int usage(const char *why)
{
	if (why)
		fprintf(stderr, "mysmtp: %s\n", why);
	fputs(usage_text, stderr);
	fputs("Try 'mysmtp -h' for more.\n", stderr);
	return EX_USAGE;
}
/* Whether s is free of control characters (which could split a command). */
static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* Parses a decimal number in [lo, hi]; -1 if s is not one. */
static long number(const char *s, long lo, long hi)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	long v = strtol(s, &end, 10);
	return errno || *end || v < lo || v > hi ? -1 : v;
}

/* The domain of an address: what follows its last '@', or NULL. */
static const char *domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at && at[1] ? at + 1 : NULL;
}

enum { OPT_PASSWORD_FILE = 256, OPT_PLAINTEXT, OPT_TLS, OPT_STARTTLS, OPT_CA_FILE, OPT_TLS_NAME };

static const struct option long_options[] = {
	{ "server", required_argument, NULL, 's' },
	{ "port", required_argument, NULL, 'p' },
	{ "timeout", required_argument, NULL, 't' },
	{ "keepalive", required_argument, NULL, 'k' },
	{ "user", required_argument, NULL, 'u' },
	{ "password-file", required_argument, NULL, OPT_PASSWORD_FILE },
	{ "allow-plaintext-auth", no_argument, NULL, OPT_PLAINTEXT },
	{ "tls", no_argument, NULL, OPT_TLS },
	{ "starttls", no_argument, NULL, OPT_STARTTLS },
	{ "ca-file", required_argument, NULL, OPT_CA_FILE },
	{ "tls-name", required_argument, NULL, OPT_TLS_NAME },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* An option that may come before or after a subcommand: EX_OK, or the
   exit status for a bad one; -1 when ch is not one of them. */
static int common_option(struct job *j, int ch)
{
	switch (ch) {
	case 'h':
		fputs(usage_text, stdout);
		fputs(help_text, stdout);
		exit(flush_stdout());
	case 'V':
		puts("mysmtp " VERSION);
		exit(flush_stdout());
	case 's': j->host = optarg; return EX_OK;
	case 'u': j->user = optarg; return EX_OK;
	case OPT_PASSWORD_FILE: j->password_file = optarg; return EX_OK;
	case OPT_PLAINTEXT: j->plaintext_ok = true; return EX_OK;
	case OPT_TLS: j->tls = true; return EX_OK;
	case OPT_STARTTLS: j->starttls = true; return EX_OK;
	case OPT_CA_FILE: j->ca_file = optarg; return EX_OK;
	case OPT_TLS_NAME: j->tls_name = optarg; return EX_OK;
	case 'p': j->port = optarg; return EX_OK;
	case 't':
		j->secs = (int)number(optarg, 1, 86400);
		return j->secs < 0 ? usage("-t wants whole seconds from 1 to 86400") : EX_OK;
	case 'k':
		j->keepalive = (int)number(optarg, 1, 86400);
		return j->keepalive < 0 ? usage("-k wants whole seconds from 1 to 86400") : EX_OK;
	default:
		return -1;
	}
}

/* Parses the subcommand in argv[0] and its arguments. */
static int parse_job(struct job *j, int argc, char **argv)
{
	const char *opts = "H:s:p:t:k:u:hV";

	if (strcmp(argv[0], "send") == 0) {
		j->kind = J_SEND;
		opts = "f:H:i:S:s:p:t:k:u:hV";
	} else
		j->kind = strcmp(argv[0], "list") == 0 ? J_LIST :
			  strcmp(argv[0], "delete") == 0 ? J_DELETE : J_GET;
	optind = 0;		/* glibc: start afresh on the new vector */
	for (int ch; (ch = getopt_long(argc, argv, opts, long_options, NULL)) != -1; ) {
		int st = common_option(j, ch);

		if (st > 0)
			return st;
		if (st == EX_OK)
			continue;
		switch (ch) {
		case 'f': j->from = optarg; break;
		case 'H': j->helo = optarg; break;
		case 'i': j->file = optarg; break;
		case 'S': j->subject = optarg; break;
		default: return usage(NULL);
		}
	}
	argc -= optind;
	argv += optind;
	if (j->kind == J_SEND) {
		if (j->from == NULL)
			j->from = j->user;
		if (j->from == NULL || argc < 1)
			return usage("send needs -f from and at least one rcpt");
		j->rcpt = argv;
		j->nrcpt = argc;
	} else {
		int with_id = j->kind == J_GET || j->kind == J_DELETE;

		if (argc != (with_id ? 2 : 1))
			return usage(j->kind == J_GET ? "get needs an address and an id" :
				     j->kind == J_DELETE ? "delete needs an address and an id" :
				     "list needs one address");
		j->addr = argv[0];
		j->id = with_id ? argv[1] : NULL;
	}
	const char *who = j->kind == J_SEND ? j->from : j->addr;
	if (j->helo == NULL && (j->helo = domain_of(who)) == NULL)
		return usage("no domain in the address to say HELO with; give -H");
	return EX_OK;
}

/* The shell's first operand: "host", "host:port", "[v6]" or "[v6]:port"
   (a bare IPv6 address has more than one colon and no port). */
static void split_host_port(struct job *j, char *arg)
{
	char *colon = strrchr(arg, ':');

	j->host = arg;
	if (!colon || (arg[0] != '[' && strchr(arg, ':') != colon) ||
	    (arg[0] == '[' && colon[-1] != ']'))
		return;
	*colon = '\0';
	j->port = colon + 1;
}

/* Parses the whole command line into j; EX_OK, or the exit status. */
static int parse_args(struct job *j, int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!printable(argv[i]))
			return usage("control characters in an argument");
	for (int ch; (ch = getopt_long(argc, argv, "+hVs:p:t:k:u:", long_options, NULL)) != -1; ) {
		int st = common_option(j, ch);

		if (st != EX_OK)
			return st > 0 ? st : usage(NULL);
	}
	argc -= optind;
	argv += optind;
	if (argc > 0 && (strcmp(argv[0], "send") == 0 || strcmp(argv[0], "list") == 0 ||
			 strcmp(argv[0], "get") == 0 || strcmp(argv[0], "delete") == 0)) {
		int st = parse_job(j, argc, argv);
		if (st != EX_OK)
			return st;
	} else if (argc > 2)
		return usage("too many operands");
	else {
		if (argc > 0)
			split_host_port(j, argv[0]);
		if (argc > 1)
			j->port = argv[1];
	}
	if (number(j->port, 1, 65535) < 0)
		return usage("the port must be a number from 1 to 65535");
	return EX_OK;
}

/* Opens the connection: "host:port" into where, dial, greeting. */
static int open_conn(struct conn *c, const struct job *j, char *where, size_t size)
{
	char host[256];
	size_t hlen = strlen(j->host);
	int n;

	if (hlen > 2 && j->host[0] == '[' && j->host[hlen - 1] == ']')
		n = snprintf(host, sizeof host, "%.*s", (int)(hlen - 2), j->host + 1);
	else
		n = snprintf(host, sizeof host, "%s", j->host);
	if (n < 0 || (size_t)n >= sizeof host)
		return usage("host name too long");
	n = snprintf(where, size, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, j->port);
	if (n < 0 || (size_t)n >= size)
		return usage("host name too long");
	c->where = where;
	c->secs = j->secs;
	c->fd = conn_dial(host, j->port, j->secs, where);
	reader_init(&c->in, c->fd, NULL);
	if (c->fd < 0)
		return EX_UNAVAILABLE;
	const char *name = j->tls_name ? j->tls_name : host;	/* the certificate's */
	int st = j->tls ? conn_start_tls(c, name, j->ca_file) : EX_OK;
	if (st == EX_OK)
		st = conn_greet(c);
	if (st == EX_OK && j->starttls && (st = conn_command(c, "STARTTLS")) == EX_OK)
		st = conn_start_tls(c, name, j->ca_file);
	return st;
}

int main(int argc, char **argv)
{
	static struct conn c;		/* static: too big for a small stack */
	struct job j = { .host = DEFAULT_HOST, .port = DEFAULT_PORT, .secs = DEFAULT_SECS,
			 .keepalive = DEFAULT_KEEPALIVE };
	char where[300];
	int text_fd = STDIN_FILENO;

	c.fd = -1;
	signal(SIGPIPE, SIG_IGN);	/* TLS writes to a closed connection fail, not kill */

	int st = parse_args(&j, argc, argv);
	if (st != EX_OK)
		return st;
	if (j.file && (text_fd = open(j.file, O_RDONLY | O_CLOEXEC)) < 0) {
		fprintf(stderr, "mysmtp: %s: %s\n", j.file, strerror(errno));
		return EX_NOINPUT;
	}
	st = open_conn(&c, &j, where, sizeof where);
	if (st == EX_OK && j.kind == J_SHELL)
		st = shell_main(&c, &j);
	else if (st == EX_OK && j.kind == J_SEND)
		st = run_send(&c, &j, text_fd);
	else if (st == EX_OK)
		st = run_mailbox(&c, &j);
	conn_end_tls(&c);
	if (c.fd >= 0)
		close(c.fd);
	if (text_fd != STDIN_FILENO)
		close(text_fd);
	return st;
}

