/* log.h: the server's log: one line per event, to standard error, or to
   syslog when standard error is the client's connection. */
#ifndef MYSMTP_LOG_H
#define MYSMTP_LOG_H

#define LOG_LINE_MAX 200	/* octets of text before it is cut short */

/* Send lines to syslog (facility mail) instead of standard error. */
void log_to_syslog(void);
/* Put prefix (such as "[1234] ") before every line from now on. */
void log_set_prefix(const char *prefix);
/* Log one line; bytes that are not printable ASCII are shown as \xHH. */
void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same, in the shape of a session_log callback. */
void log_session(void *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
