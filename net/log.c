/* log.c: the server's log: one line per event, to standard error, or to
   syslog when standard error is the client's connection. Lines are cut
   short and escaped, so client text can neither flood nor forge them. */
#include "net/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

static int use_syslog;
static char prefix[32];

void log_to_syslog(void)
{
	openlog("mysmtpd", LOG_PID | LOG_NDELAY, LOG_MAIL);
	use_syslog = 1;
}

void log_set_prefix(const char *p)
{
	snprintf(prefix, sizeof prefix, "%s", p);
}

/* Copy text to out, escaped, within size octets. */
static size_t escape(char *out, size_t size, const char *text)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	for (; *text && n + 5 < size; text++) {
		unsigned char c = (unsigned char)*text;

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			out[n++] = (char)c;
		} else {
			out[n++] = '\\';
			out[n++] = 'x';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		}
	}
	out[n] = '\0';
	return n;
}

static void log_va(const char *fmt, va_list ap)
{
	char text[LOG_LINE_MAX + 1], line[sizeof prefix + 4 * LOG_LINE_MAX + 8];
	int n = vsnprintf(text, sizeof text, fmt, ap);
	size_t len;

	if (n < 0)
		return;
	if ((size_t)n >= sizeof text)
		memcpy(text + sizeof text - 4, "...", 4);
	len = (size_t)snprintf(line, sizeof line, "%s", prefix);
	len += escape(line + len, sizeof line - len - 1, text);
	if (use_syslog) {
		syslog(LOG_INFO, "%s", line);
		return;
	}
	line[len++] = '\n';
	if (write(STDERR_FILENO, line, len) < 0)
		return;
}

void log_line(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_va(fmt, ap);
	va_end(ap);
}

void log_session(void *ctx, const char *fmt, ...)
{
	va_list ap;

	(void)ctx;
	va_start(ap, fmt);
	log_va(fmt, ap);
	va_end(ap);
}
