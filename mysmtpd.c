/* mysmtpd.c: the My_SMTP server. By default it serves one session on standard
   input and output (inetd, xinetd, systemd Accept=yes, a piped file); with -l,
   or given listening sockets by systemd, it listens with a pool of workers.
   With -S it speaks standard SMTP (smtp.c) instead of My_SMTP (protocol.c).
   Here are the options, the peer address, where logs go, and the exit codes. */
#define _GNU_SOURCE
#include "accounts/accounts.h"
#include "accounts/accounts_edit.h"
#include "mail/address.h"
#include "net/listener.h"
#include "net/log.h"
#include "net/peer.h"
#include "net/pool.h"
#include "protocol.h"
#include "pop3.h"
#include "smtp.h"
#include "store/store.h"
#include "net/tlsio.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#define VERSION "1.0"
#define MAX_DOMAINS 64

struct server {
	struct config cfg;
	struct store store;
	const char *mailbox_dir;
	int mailbox_dir_given;	/* -d: else the default, made when missing */
	const char *listen;
	struct pool_limits limits;
	unsigned lock_timeout;
	uint64_t max_mailbox;
	unsigned min_free;
	const char *domains[MAX_DOMAINS];
	char hostname[256];
	int smtp;		/* -S: standard SMTP */
	int pop3;		/* --pop3 */
	int timeout_given;
	const char *set_password;	/* --set-password ADDRESS: edit, serve nothing */
	const char *remove_account;	/* --remove-account ADDRESS */
	char busy[320];		/* the line for a connection past -c */
};

static const char usage[] =
	"usage: mysmtpd [options]\n"
	"Serve one My_SMTP session on standard input and output (for inetd, xinetd,\n"
	"systemd socket activation or a piped command file), or listen with -l.\n"
	"\n"
	"  -d, --mailbox-dir DIR      where mailboxes are kept [mailbox]\n"
	"  -l, --listen [ADDR:]PORT   listen, with a pool of workers (PORT 2525 is usual)\n"
	"  -c, --max-sessions N       sessions at once when listening [64]\n"
	"  -p, --max-per-peer N       sessions at once from one address when listening\n"
	"                             [half of -c, rounded up: 32]\n"
	"      --ipv6-peer-prefix BITS  IPv6 peers count as one address by these first\n"
	"                             bits, for -p [64]\n"
	"  -U, --max-use N            sessions a listening worker serves before it is\n"
	"                             replaced; 1: a new process for each [100]\n"
	"  -s, --max-message-size N   largest message text, in octets [10485760]\n"
	"  -r, --max-recipients N     recipients per message [100]\n"
	"  -t, --timeout SECS         close after SECS without a complete line [300]\n"
	"  -T, --max-session-time SECS  close a session after SECS in all [3600]\n"
	"  -e, --max-errors N         close after N 400/403 replies in a row [20]\n"
	"  -j, --max-junk-commands N  close after N commands in a row that neither\n"
	"                             deliver nor read mail (NOOP, RSET, HELP...) [100]\n"
	"  -m, --max-mailbox-size N   refuse mail that would take a mailbox past N\n"
	"                             octets; 0: no limit [1073741824]\n"
	"  -F, --min-free PERCENT     refuse mail that would leave less of the store's\n"
	"                             file system free; 0: no reserve [1]\n"
	"  -w, --lock-timeout SECS    wait this long for a mailbox lock [30]\n"
	"  -A, --any-domain           let MAIL FROM, LIST and GET_MAIL name any domain,\n"
	"                             not only the HELO domain\n"
	"      --open-delete          let DELETE work without --accounts: any client\n"
	"                             may then delete any mailbox's mail\n"
	"  -D, --domain DOMAIN        accept RCPT TO only for DOMAIN (repeatable)\n"
	"  -n, --hostname NAME        name in the greeting and headers [host name]\n"
	"  -u, --accounts FILE        only account holders read mail, and mail goes only\n"
	"                             to accounts (Dovecot passwd-file: address:hash)\n"
	"  -P, --allow-plaintext-auth take passwords without TLS from non-local peers\n"
	"      --auth-failure-delay MS  answer a failed login after MS milliseconds [2000]\n"
	"  -C, --tls-cert FILE        PEM certificate (chain): offer STARTTLS\n"
	"  -K, --tls-key FILE         its PEM private key\n"
	"  -i, --tls-implicit         start TLS before the greeting (ports 465, 995)\n"
	"      --set-password ADDRESS add the account or change its password in the\n"
	"                             --accounts file (read from the terminal or stdin)\n"
	"      --remove-account ADDRESS  take the account out of the --accounts file\n"
	"  -S, --smtp                 speak standard SMTP (RFC 5321) instead of My_SMTP,\n"
	"                             for curl, swaks, smtplib, msmtp, Postfix\n"
	"  -M, --submission           standard SMTP for mail programs (RFC 6409, port\n"
	"                             587): MAIL only after AUTH; needs --accounts\n"
	"      --pop3                 speak POP3 (RFC 1939) instead: mail readers fetch\n"
	"                             and delete; needs --accounts; -t is then [600]\n"
	"  -B, --bare-lf MODE         SMTP mode: a line ending in a bare LF is taken as\n"
	"                             CRLF (normalize) or refused (reject) [normalize]\n"
	"  -h, --help                 show this help\n"
	"  -V, --version              show the version\n"
	"\n"
	"Logs go to standard error, or to syslog when standard error is the\n"
	"client's connection. See mysmtpd(8).\n";

enum { OPT_SET_PASSWORD = 256, OPT_REMOVE_ACCOUNT, OPT_POP3, OPT_OPEN_DELETE,
       OPT_IPV6_PEER_PREFIX, OPT_AUTH_FAILURE_DELAY };

static const struct option long_options[] = {
	{ "mailbox-dir", required_argument, NULL, 'd' },
	{ "listen", required_argument, NULL, 'l' },
	{ "max-sessions", required_argument, NULL, 'c' },
	{ "max-per-peer", required_argument, NULL, 'p' },
	{ "ipv6-peer-prefix", required_argument, NULL, OPT_IPV6_PEER_PREFIX },
	{ "max-use", required_argument, NULL, 'U' },
	{ "max-session-time", required_argument, NULL, 'T' },
	{ "max-junk-commands", required_argument, NULL, 'j' },
	{ "max-mailbox-size", required_argument, NULL, 'm' },
	{ "min-free", required_argument, NULL, 'F' },
	{ "bare-lf", required_argument, NULL, 'B' },
	{ "max-message-size", required_argument, NULL, 's' },
	{ "max-recipients", required_argument, NULL, 'r' },
	{ "timeout", required_argument, NULL, 't' },
	{ "max-errors", required_argument, NULL, 'e' },
	{ "lock-timeout", required_argument, NULL, 'w' },
	{ "any-domain", no_argument, NULL, 'A' },
	{ "open-delete", no_argument, NULL, OPT_OPEN_DELETE },
	{ "domain", required_argument, NULL, 'D' },
	{ "hostname", required_argument, NULL, 'n' },
	{ "smtp", no_argument, NULL, 'S' },
	{ "submission", no_argument, NULL, 'M' },
	{ "pop3", no_argument, NULL, OPT_POP3 },
	{ "accounts", required_argument, NULL, 'u' },
	{ "allow-plaintext-auth", no_argument, NULL, 'P' },
	{ "auth-failure-delay", required_argument, NULL, OPT_AUTH_FAILURE_DELAY },
	{ "tls-cert", required_argument, NULL, 'C' },
	{ "tls-key", required_argument, NULL, 'K' },
	{ "tls-implicit", no_argument, NULL, 'i' },
	{ "set-password", required_argument, NULL, OPT_SET_PASSWORD },
	{ "remove-account", required_argument, NULL, OPT_REMOVE_ACCOUNT },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static void die_usage(const char *what, const char *arg)
{
	fprintf(stderr, "mysmtpd: %s: %s\n(mysmtpd -h shows the options)\n", what, arg);
	exit(EX_USAGE);
}

/* A whole decimal number in [min, max], or exit with a usage error. */
static unsigned long long number(const char *opt, const char *arg,
				 unsigned long long min, unsigned long long max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] == '-' || v < min || v > max) {
		char what[80];

		snprintf(what, sizeof what, "%s wants a number from %llu to %llu", opt, min, max);
		die_usage(what, arg);
	}
	return v;
}

/* This machine's name, if it is a valid domain name; else "localhost". */
static void default_hostname(char *out, size_t size)
{
	if (gethostname(out, size) < 0 || domain_valid(out, strnlen(out, size)) < 0)
		snprintf(out, size, "localhost");
	out[size - 1] = '\0';
}

static void check_options(struct server *sv);

static void parse_options(struct server *sv, int argc, char **argv)
{
	int c;

	while ((c = getopt_long(argc, argv, "d:l:c:p:U:s:r:t:T:e:j:m:F:w:AD:n:SMB:u:PC:K:ihV", long_options, NULL)) != -1) {
		switch (c) {
		case 'd': sv->mailbox_dir = optarg; sv->mailbox_dir_given = 1; break;
		case 'l':
			if (!listen_spec_valid(optarg))
				die_usage("-l wants [address:]port, the port from 1 to 65535", optarg);
			sv->listen = optarg;
			break;
		case 'c': sv->limits.max_sessions = (unsigned)number("-c", optarg, 1, 100000); break;
		case 'p': sv->limits.max_per_peer = (unsigned)number("-p", optarg, 1, 100000); break;
		case OPT_IPV6_PEER_PREFIX:
			sv->limits.ipv6_prefix = (unsigned)number("--ipv6-peer-prefix", optarg, 1, 128);
			break;
		case 'U': sv->limits.max_use = (unsigned)number("-U", optarg, 1, 1000000); break;
		case 'T': sv->cfg.max_session = (unsigned)number("-T", optarg, 1, 604800); break;
		case 'j': sv->cfg.max_junk = (unsigned)number("-j", optarg, 1, 1000000); break;
		case 'm': sv->max_mailbox = number("-m", optarg, 0, 1ULL << 50); break;
		case 'F': sv->min_free = (unsigned)number("-F", optarg, 0, 99); break;
		case 'B':
			if (strcmp(optarg, "normalize") != 0 && strcmp(optarg, "reject") != 0)
				die_usage("-B wants normalize or reject", optarg);
			sv->cfg.bare_lf_reject = optarg[0] == 'r';
			break;
		case 's': sv->cfg.max_message = number("-s", optarg, 1, 1ULL << 40); break;
		case 'r': sv->cfg.max_recipients = (unsigned)number("-r", optarg, 1, 100000); break;
		case 't':
			sv->cfg.timeout = (unsigned)number("-t", optarg, 1, 86400);
			sv->timeout_given = 1;
			break;
		case 'e': sv->cfg.max_errors = (unsigned)number("-e", optarg, 1, 100000); break;
		case 'w': sv->lock_timeout = (unsigned)number("-w", optarg, 0, 3600); break;
		case 'A': sv->cfg.any_domain = 1; break;
		case 'D':
			if (domain_valid(optarg, strlen(optarg)) < 0)
				die_usage("-D wants a domain name", optarg);
			if (sv->cfg.ndomains == MAX_DOMAINS)
				die_usage("too many -D domains", optarg);
			sv->domains[sv->cfg.ndomains++] = optarg;
			break;
		case 'n':
			if (domain_valid(optarg, strlen(optarg)) < 0)
				die_usage("-n wants a host name", optarg);
			snprintf(sv->hostname, sizeof sv->hostname, "%s", optarg);
			break;
		case 'S': sv->smtp = 1; break;
		case 'M': sv->smtp = 1; sv->cfg.submission = 1; break;
		case 'u': sv->cfg.accounts_file = optarg; break;
		case 'P': sv->cfg.allow_plaintext_auth = 1; break;
		case OPT_AUTH_FAILURE_DELAY:
			sv->cfg.auth_failure_delay_ms =
				(unsigned)number("--auth-failure-delay", optarg, 0, 60000);
			break;
		case 'C': sv->cfg.tls_cert = optarg; break;
		case 'K': sv->cfg.tls_key = optarg; break;
		case 'i': sv->cfg.tls_implicit = 1; break;
		case OPT_POP3: sv->pop3 = 1; break;
		case OPT_OPEN_DELETE: sv->cfg.open_delete = 1; break;
		case OPT_SET_PASSWORD: sv->set_password = optarg; break;
		case OPT_REMOVE_ACCOUNT: sv->remove_account = optarg; break;
		case 'h': fputs(usage, stdout); exit(0);
		case 'V': puts("mysmtpd " VERSION); exit(0);
		default: fputs(usage, stderr); exit(EX_USAGE);
		}
	}
	if (optind < argc)
		die_usage("unexpected argument", argv[optind]);
	check_options(sv);
}

/* The options that go (or do not go) together; the defaults that hang on others. */
static void check_options(struct server *sv)
{
	if (!sv->limits.max_per_peer)	/* as Postfix allows 50 of its 100 */
		sv->limits.max_per_peer = (sv->limits.max_sessions + 1) / 2;
	if (!sv->cfg.tls_cert != !sv->cfg.tls_key)
		die_usage("--tls-cert and --tls-key go together",
			  sv->cfg.tls_cert ? sv->cfg.tls_cert : sv->cfg.tls_key);
	if (sv->cfg.tls_implicit && !sv->cfg.tls_cert)
		die_usage("--tls-implicit needs --tls-cert and --tls-key", "-i");
	if (sv->pop3 && sv->cfg.submission)
		die_usage("--pop3 and --submission are two dialects: choose one", "--pop3");
	if (sv->cfg.submission && !sv->cfg.accounts_file && !sv->set_password && !sv->remove_account)
		die_usage("--submission needs --accounts: only account holders send", "--submission");
	if (sv->pop3 && sv->smtp)
		die_usage("--pop3 and --smtp are two dialects: choose one", "--pop3");
	if (sv->pop3 && !sv->cfg.accounts_file && !sv->set_password && !sv->remove_account)
		die_usage("--pop3 needs --accounts: POP3 serves only account holders", "--pop3");
	if (sv->pop3 && !sv->timeout_given)
		sv->cfg.timeout = 600;	/* RFC 1939 section 3: at least 10 minutes */
}

static const struct dialect *dialect_of(const struct server *sv)
{
	return sv->pop3 ? &pop3_dialect : sv->smtp ? &smtp_dialect : &mysmtp_dialect;
}

/* A peer address from the environment, if it looks like one. */
static int peer_from_env(char *out, size_t size)
{
	static const char *const names[] = { "REMOTE_ADDR", "TCPREMOTEIP", "REMOTE_HOST" };

	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		const char *v = getenv(names[i]);

		if (v && *v && strlen(v) < size && strlen(v) < 64 &&
		    strspn(v, "0123456789abcdefABCDEF.:") == strlen(v)) {
			peer_unmapped(v, out, size);
			return 1;
		}
	}
	return 0;
}

/* Is standard error the same socket as standard input (as under xinetd)? */
static int stderr_is_connection(void)
{
	struct stat in, err;

	if (fstat(STDERR_FILENO, &err) < 0)
		return 1;
	return fstat(STDIN_FILENO, &in) == 0 && S_ISSOCK(in.st_mode) &&
	       in.st_dev == err.st_dev && in.st_ino == err.st_ino;
}

/* One session on in/out, logged from connect to disconnect: the exit
   status. over: for the listener, to say the session is over (NULL: none). */
static int serve(struct server *sv, int in, int out, const char *peer, void *over)
{
	struct session_env env = { .in_fd = in, .out_fd = out, .peer = peer, .log = log_session,
				   .ending = over ? pool_session_over : NULL,
				   .ending_ctx = over };
	enum session_end end;
	int one = 1;

	/* Replies are written whole already: a last short segment must not
	   wait for the client's delayed ACK (40 ms). Not TCP: no matter. */
	setsockopt(out, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	log_line("Client connected: %s", peer);
	end = session_run(&sv->cfg, &sv->store, &env, dialect_of(sv));
	log_line(end == END_TIMEOUT ? "Client timed out; disconnected." : "Client disconnected.");
	return end == END_IO ? EX_IOERR : 0;
}

static int serve_socket(void *ctx, int fd, const char *peer, void *over)
{
	return serve(ctx, fd, fd, peer, over);
}

/* Open the mailbox directory; the default one (no -d) is made, mode 0700,
   when it is missing, so a piped session runs from any directory. */
static int open_store(struct server *sv)
{
	int rc = store_open(&sv->store, sv->mailbox_dir, sv->lock_timeout);

	if (rc == -ENOENT && !sv->mailbox_dir_given && mkdir(sv->mailbox_dir, 0700) == 0) {
		log_line("Created mailbox directory %s", sv->mailbox_dir);
		rc = store_open(&sv->store, sv->mailbox_dir, sv->lock_timeout);
	}
	if (rc < 0)
		log_line("Cannot open mailbox directory %s: %s", sv->mailbox_dir, strerror(-rc));
	sv->store.max_mailbox = sv->max_mailbox;
	sv->store.min_free = sv->min_free;
	return rc;
}

static int run_inetd(struct server *sv)
{
	const char *say = dialect_of(sv)->unavailable_line;
	char peer[NI_MAXHOST];

	if (stderr_is_connection())
		log_to_syslog();
	if (open_store(sv) < 0) {
		if (write(STDOUT_FILENO, say, strlen(say)) < 0)
			return EX_IOERR;
		return EX_TEMPFAIL;
	}
	if (!peer_from_env(peer, sizeof peer))
		peer_name(STDIN_FILENO, peer, sizeof peer);
	return serve(sv, STDIN_FILENO, STDOUT_FILENO, peer, NULL);
}

/* What a connection past -c is told: the dialect's busy line with the
   host name in it; without it (and the blank before) should it not fit. */
static void set_busy_line(struct server *sv)
{
	const char *line = dialect_of(sv)->busy_line, *host = strstr(line, "{host}");
	int at = host ? (int)(host - line) : (int)strlen(line);
	int n = snprintf(sv->busy, sizeof sv->busy, "%.*s%s%s", at, line,
			 host ? sv->hostname : "", host ? host + strlen("{host}") : "");

	if (n < 0 || (size_t)n >= sizeof sv->busy)
		snprintf(sv->busy, sizeof sv->busy, "%.*s\r\n", at > 0 ? at - 1 : 0, line);
}

/* -l, or systemd's listening sockets: serve them with the pool. */
static int run_listening(struct server *sv)
{
	char why[256];

	if (open_store(sv) < 0)
		return EX_TEMPFAIL;
	if (sv->cfg.tls_cert && tlsio_load(why, sizeof why) < 0)
		log_line("TLS unavailable: %s", why);	/* each session says so too */
	set_busy_line(sv);
	sv->limits.busy = sv->busy;
	return listener_run(sv->listen, &sv->limits, serve_socket, sv);
}

/* --set-password: the new password read and hashed into hash: 0, or the
   exit status, said why. */
static int new_hash(const char *address, char hash[CRYPT_OUTPUT_SIZE])
{
	char password[PASSWORD_MAX + 2], lib_why[256];
	const char *why;
	int rc;

	if (accounts_crypt_load(lib_why, sizeof lib_why) < 0) {
		fprintf(stderr, "mysmtpd: %s; nothing changed.\n", lib_why);
		return EX_UNAVAILABLE;
	}
	if (accounts_read_password(address, password, sizeof password, &why) < 0) {
		fprintf(stderr, "mysmtpd: %s; nothing changed.\n", why);
		return EX_DATAERR;
	}
	rc = accounts_hash(password, hash);
	explicit_bzero(password, sizeof password);
	if (rc < 0) {
		fprintf(stderr, "mysmtpd: cannot hash the password: %s\n", strerror(-rc));
		return EX_SOFTWARE;
	}
	return 0;
}

/* --set-password or --remove-account: the exit status. */
static int edit_accounts(const struct server *sv)
{
	const char *given = sv->set_password ? sv->set_password : sv->remove_account;
	char address[ADDRESS_MAX + 1], hash[CRYPT_OUTPUT_SIZE];
	int found, rc;

	if (!sv->cfg.accounts_file)
		die_usage("name the accounts file with --accounts FILE", given);
	if (sv->set_password && sv->remove_account)
		die_usage("--set-password and --remove-account do not go together", given);
	if (address_parse(given, strlen(given), address) < 0 || strlen(address) > STORE_ADDRESS_MAX)
		die_usage("not an address that can have a mailbox", given);
	if (sv->set_password && (rc = new_hash(address, hash)) != 0)
		return rc;
	rc = accounts_edit(sv->cfg.accounts_file, address, sv->set_password ? hash : NULL, &found);
	if (rc < 0) {
		fprintf(stderr, "mysmtpd: %s: %s; nothing changed.\n", sv->cfg.accounts_file,
			strerror(-rc));
		return rc == -ENOENT || rc == -EACCES ? EX_NOINPUT : EX_IOERR;
	}
	if (sv->remove_account && !found) {
		fprintf(stderr, "mysmtpd: %s has no account %s\n", sv->cfg.accounts_file, address);
		return EX_NOUSER;
	}
	printf("mysmtpd: %s %s in %s\n", address, sv->remove_account ? "removed" :
	       found ? "has a new password" : "added", sv->cfg.accounts_file);
	return 0;
}

int main(int argc, char **argv)
{
	static struct server sv = {
		.cfg = { .max_message = 10 * 1024 * 1024, .max_recipients = 100,
			 .timeout = 300, .max_errors = 20, .max_junk = 100, .max_session = 3600,
			 .auth_failure_delay_ms = 2000 },
		.mailbox_dir = "mailbox", .lock_timeout = 30,
		.limits = { .max_sessions = 64, .max_use = 100, .ipv6_prefix = 64 },
		.max_mailbox = 1ULL << 30, .min_free = 1,
	};
	struct stat in;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);
	umask(077);
	parse_options(&sv, argc, argv);
	if (sv.set_password || sv.remove_account)
		return edit_accounts(&sv);
	sv.cfg.domains = sv.domains;
	if (!sv.hostname[0])
		default_hostname(sv.hostname, sizeof sv.hostname);
	sv.cfg.hostname = sv.hostname;
	if (sv.listen || (listener_has_systemd_sockets() &&
			  !(fstat(STDIN_FILENO, &in) == 0 && S_ISSOCK(in.st_mode))))
		return run_listening(&sv);
	return run_inetd(&sv);
}
