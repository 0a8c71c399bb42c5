/* secret.c: reading a password (secret.h). */
#define _GNU_SOURCE
#include "accounts/secret.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

/* The terminal's settings while a password is typed without echo. */
static struct termios saved_tty;
static volatile sig_atomic_t changed_fd = -1;

static void put_back_and_die(int sig)
{
	if (changed_fd >= 0)
		tcsetattr(changed_fd, TCSAFLUSH, &saved_tty);
	signal(sig, SIG_DFL);
	raise(sig);
}

int secret_read_line(int fd, char *out, size_t size)
{
	size_t n = 0;
	char c;

	for (;;) {
		ssize_t r = read(fd, &c, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0 || c == '\n')
			break;
		if (n + 1 >= size) {
			explicit_bzero(out, size);
			return -E2BIG;
		}
		out[n++] = c;
	}
	if (n > 0 && out[n - 1] == '\r')
		n--;
	out[n] = '\0';
	return (int)n;
}

int secret_read_hidden(int tty_fd, int prompt_fd, const char *prompt, char *out, size_t size)
{
	static const int deadly[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	struct sigaction restore = { .sa_handler = put_back_and_die }, old[4];
	struct termios quiet;
	int n;

	if (tcgetattr(tty_fd, &saved_tty) < 0)
		return -errno;
	quiet = saved_tty;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	for (int i = 0; i < 4; i++)
		sigaction(deadly[i], &restore, &old[i]);
	changed_fd = tty_fd;
	/* Echo off before the prompt: a password typed the moment the prompt
	   shows is neither echoed nor thrown away. */
	tcsetattr(tty_fd, TCSAFLUSH, &quiet);
	n = write(prompt_fd, prompt, strlen(prompt)) < 0 ? -errno : secret_read_line(tty_fd, out, size);
	tcsetattr(tty_fd, TCSANOW, &saved_tty);
	changed_fd = -1;
	for (int i = 0; i < 4; i++)
		sigaction(deadly[i], &old[i], NULL);
	if (write(prompt_fd, "\n", 1) < 0 && n >= 0)
		n = -errno;
	return n;
}
