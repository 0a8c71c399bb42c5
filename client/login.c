/* client_login.c: mysmtp --user: where the password comes from (a
   --password-file, $MYSMTP_PASSWORD, or the terminal without echo), the
   rule that it is sent only to a local server until TLS, and the AUTH
   command, whose password is never shown and is wiped after use. */
#define _GNU_SOURCE
#include "client/client.h"
#include "accounts/secret.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <unistd.h>

int client_prompt_password(const char *user, char *out, size_t size)
{
	char prompt[REPLY_MAX];
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY), n;

	if (fd < 0)
		return -errno;
	snprintf(prompt, sizeof prompt, "Password for %s: ", user);
	n = secret_read_hidden(fd, fd, prompt, out, size);
	close(fd);
	return n;
}

int client_password(const struct job *j, char *out, size_t size)
{
	const char *env = getenv("MYSMTP_PASSWORD");
	int n, fd;

	if (j->password_file) {
		if ((fd = open(j->password_file, O_RDONLY | O_CLOEXEC)) < 0) {
			fprintf(stderr, "mysmtp: %s: %s\n", j->password_file, strerror(errno));
			return EX_NOINPUT;
		}
		n = secret_read_line(fd, out, size);
		close(fd);
	} else if (env) {
		n = snprintf(out, size, "%s", env);
		n = (size_t)n >= size ? -E2BIG : n;
	} else {
		n = client_prompt_password(j->user, out, size);
	}
	if (n == -E2BIG || n == 0) {
		fprintf(stderr, "mysmtp: %s\n", n == 0 ? "empty password" : "password too long");
		return EX_DATAERR;
	}
	if (n < 0) {
		fprintf(stderr, "mysmtp: cannot read the password: %s\n", strerror(-n));
		return EX_NOINPUT;
	}
	return EX_OK;
}

/* Is the server on this machine (a loopback address)? */
static bool server_is_local(const struct conn *c)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	if (getpeername(c->fd, (struct sockaddr *)&ss, &len) < 0)
		return false;
	if (ss.ss_family == AF_INET)
		return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss.ss_family == AF_INET6) {
		const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return ss.ss_family == AF_UNIX;
}

int client_login(struct conn *c, const struct job *j)
{
	char password[PASSWORD_MAX + 2];
	int st = client_password(j, password, sizeof password);

	if (st == EX_OK)
		st = client_auth(c, j->user, password, j->plaintext_ok);
	explicit_bzero(password, sizeof password);
	return st;
}

bool client_may_send_password(const struct conn *c, bool plaintext_ok)
{
	if (c->tls || plaintext_ok || server_is_local(c))
		return true;
	fprintf(stderr, "mysmtp: %s is not on this machine: a password is not sent there "
		"in the clear (use --starttls or --tls; --allow-plaintext-auth to send it anyway)\n",
		c->where);
	return false;
}

int client_send_auth(struct conn *c, const char *user, char *password, bool plaintext_ok)
{
	char cmd[REPLY_MAX];
	int n, r;

	if (!client_may_send_password(c, plaintext_ok)) {
		explicit_bzero(password, strlen(password));
		return -EPERM;
	}
	n = snprintf(cmd, sizeof cmd, "AUTH %s %s", user, password);
	explicit_bzero(password, strlen(password));
	if (n < 0 || (size_t)n >= sizeof cmd) {
		explicit_bzero(cmd, sizeof cmd);
		fputs("mysmtp: address and password too long for one command\n", stderr);
		return -E2BIG;
	}
	r = conn_line(c, cmd, (size_t)n);
	if (r == 0)
		r = conn_flush(c);
	explicit_bzero(cmd, sizeof cmd);
	explicit_bzero(c->out, sizeof c->out);
	return r;
}

int client_auth(struct conn *c, const char *user, char *password, bool plaintext_ok)
{
	char what[REPLY_MAX];
	int r = client_send_auth(c, user, password, plaintext_ok);

	if (r == -EPERM)
		return EX_NOPERM;
	if (r == -E2BIG)
		return EX_USAGE;
	if (r < 0)
		return conn_fail(c, r);
	snprintf(what, sizeof what, "AUTH %s", user);
	return conn_expect_200(c, what);
}
