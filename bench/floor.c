/* bench/floor.c: the floor a per-connection handler cannot go below: it sends
   My_SMTP's replies to a sending session and appends the message (about
   1 KiB) to one file under an fcntl lock with fdatasync, and does nothing
   else: no parsing beyond the verb, no checks, no index. Run per connection
   by systemd-socket-activate --inetd, like mysmtpd.   floor DIR */
#define _GNU_SOURCE
#include <fcntl.h>
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

static void store(int dir, const char *text, size_t n)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd = openat(dir, "floor.txt", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0 || fcntl(fd, F_OFD_SETLKW, &fl) < 0 || write(fd, text, n) != (ssize_t)n ||
	    fdatasync(fd) < 0)
		_exit(1);
	close(fd);
}

int main(int argc, char **argv)
{
	static char text[16384];
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
			store(dir, text, tlen);
			tlen = 0;
			say("200 Message stored successfully\r\n");
			continue;
		}
		say("200 OK\r\n");
	}
	return 0;
}
