/* secret.h: reading a password, for mysmtpd --set-password and mysmtp
   --user: one line from a descriptor, or typed on a terminal without echo
   (the terminal put back even when a signal ends the program). */
#ifndef MYSMTP_SECRET_H
#define MYSMTP_SECRET_H

#include <stddef.h>

/* One line of fd into out[size], without its line end (LF, or CRLF): its
   length (0 for an empty line or none), -E2BIG when longer, or -errno. */
int secret_read_line(int fd, char *out, size_t size);

/* Write prompt to prompt_fd, then read a line from the terminal tty_fd
   with echo off: as secret_read_line. */
int secret_read_hidden(int tty_fd, int prompt_fd, const char *prompt, char *out, size_t size);

#endif
