/* bench/floor.c: the floor a per-connection handler cannot go below: it sends
   My_SMTP's replies to a sending session and appends the message (about
   1 KiB) to the recipient's file (RCPT.txt; floor.txt if the address has
   other characters than letters, digits, '@', '.' and '-') under an fcntl
   lock with fdatasync, and does nothing else: no parsing beyond the verb,
   no checks, no index. Run per connection by systemd-socket-activate
   --inetd, like mysmtpd.   floor DIR */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char in[65536];
static size_t pos, len;

static int line(char **start, size_t *n)
{
	for (;;) {
		char *lf = pos < len ? memchr(in + pos, '\n', len - pos) : NULL;
		ssize_t k;

		if (lf) {
			*start = in + pos;
			*n = (size_t)(lf - *start);
			pos += *n + 1;
			return 0;
		}
		if (pos > 0) {
			memmove(in, in + pos, len - pos);
			len -= pos;
			pos = 0;
		}
		k = read(0, in + len, sizeof in - len);
		if (k <= 0)
			return -1;
		len += (size_t)k;
	}
}

static void say(const char *s)
{
	if (write(1, s, strlen(s)) < 0)
		_exit(1);
}

/* The file name for "RCPT TO: address". */
static void recipient(char *name, size_t size, const char *l, size_t n)
{
	static const char fit[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@.-";
	const char *a = l + 8, *end = l + n;
	size_t k = 0;

	while (a < end && *a == ' ')
		a++;
	if (end > a && end[-1] == '\r')
		end--;
	for (; a < end && k + 5 < size && *a && strchr(fit, *a); a++)
		name[k++] = *a;
	if (a < end || k == 0) {
		snprintf(name, size, "floor.txt");
		return;
	}
	memcpy(name + k, ".txt", 5);
}

static void store(int dir, const char *name, const char *text, size_t n)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd = openat(dir, name, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0 || fcntl(fd, F_OFD_SETLKW, &fl) < 0 || write(fd, text, n) != (ssize_t)n ||
	    fdatasync(fd) < 0)
		_exit(1);
	close(fd);
}

int main(int argc, char **argv)
{
	static char text[16384];
	char name[300] = "floor.txt";
	int dir = argc > 1 ? open(argv[1], O_RDONLY | O_DIRECTORY) : -1;
	char *l;
	size_t n, tlen = 0;

	if (dir < 0)
		return 64;
	say("200 floor My_SMTP ready\r\n");
	while (line(&l, &n) == 0) {
		if (n >= 4 && strncasecmp(l, "QUIT", 4) == 0) {
			say("200 Goodbye\r\n");
			return 0;
		}
		if (n >= 4 && strncasecmp(l, "DATA", 4) == 0) {
			say("200 Enter your message (end with a single dot '.'):\r\n");
			while (line(&l, &n) == 0 && !(n >= 1 && l[0] == '.' && (n == 1 || l[1] == '\r'))) {
				if (tlen + n + 1 <= sizeof text) {
					memcpy(text + tlen, l, n);
					text[tlen + n] = '\n';
					tlen += n + 1;
				}
			}
			store(dir, name, text, tlen);
			tlen = 0;
			say("200 Message stored successfully\r\n");
			continue;
		}
		if (n >= 8 && strncasecmp(l, "RCPT TO:", 8) == 0)
			recipient(name, sizeof name, l, n);
		say("200 OK\r\n");
	}
	return 0;
}
