/* accounts_edit.c: mysmtpd --set-password and --remove-account
   (accounts_edit.h). The file is locked (flock, on the file the name still
   points to once the lock is held), rewritten into a temporary file in the
   same folder with the old one's mode and owner, fsynced, renamed over it,
   and the folder fsynced: a crash leaves the old file or the new one, and
   two edits at once both land, one after the other. */
#define _GNU_SOURCE
#include "accounts/accounts_edit.h"
#include "accounts/accounts.h"
#include "mail/address.h"
#include "net/io.h"
#include "accounts/secret.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCK_TRIES 100	/* the file replaced under us this often: give up */

int accounts_read_password(const char *address, char *out, size_t size, const char **why)
{
	char again[PASSWORD_MAX + 2], prompt[ADDRESS_MAX + 32];
	int n, m = 0;

	*why = NULL;
	if (isatty(STDIN_FILENO)) {
		snprintf(prompt, sizeof prompt, "New password for %s: ", address);
		n = secret_read_hidden(STDIN_FILENO, STDERR_FILENO, prompt, out, size);
		if (n > 0 && (m = secret_read_hidden(STDIN_FILENO, STDERR_FILENO, "Again: ", again,
						     sizeof again)) >= 0 &&
		    strcmp(out, again) != 0)
			*why = "the two passwords differ";
		explicit_bzero(again, sizeof again);
	} else {
		n = secret_read_line(STDIN_FILENO, out, size);
	}
	if (!*why && (n == -E2BIG || m == -E2BIG || n > PASSWORD_MAX))
		*why = "a password holds at most 200 octets";
	else if (!*why && n <= 0)
		*why = "no password given";
	else if (!*why && memchr(out, '\0', (size_t)n))
		*why = "a password cannot hold a NUL octet";
	if (*why)
		explicit_bzero(out, size);
	return *why ? -EINVAL : 0;
}

int accounts_hash(const char *password, char out[CRYPT_OUTPUT_SIZE])
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd = calloc(1, sizeof *cd);
	const char *h;
	int rc = -EINVAL;

	if (!accounts_crypt_rn || !cd) {	/* accounts_crypt_load says why */
		free(cd);
		return accounts_crypt_rn ? -ENOMEM : -ENOSYS;
	}
	if (accounts_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof salt) &&
	    (h = accounts_crypt_rn(password, salt, cd, (int)sizeof *cd)) && h[0] == '$') {
		snprintf(out, CRYPT_OUTPUT_SIZE, "%s", h);
		rc = 0;
	}
	explicit_bzero(cd, sizeof *cd);
	free(cd);
	return rc;
}

/* Open path and hold an exclusive lock on the file it names: the fd, or -errno. */
static int lock_current(const char *path)
{
	for (int i = 0; i < LOCK_TRIES; i++) {
		struct stat held, named;
		int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

		if (fd < 0)
			return -errno;
		if (flock(fd, LOCK_EX) == 0 && fstat(fd, &held) == 0 && stat(path, &named) == 0 &&
		    held.st_dev == named.st_dev && held.st_ino == named.st_ino)
			return fd;
		close(fd);
	}
	return -EAGAIN;
}

/* The file's text after the edit, into a malloc'd buffer: the line of
   address gets hash (its other fields kept), or is added; hash NULL takes
   every line of address out. *found says whether it had a line. */
static char *edited(const char *text, size_t len, const char *address, const char *hash,
		    size_t *out_len, int *found)
{
	char *out = malloc(len + strlen(address) + (hash ? strlen(hash) : 0) + 4), *o = out;
	const char *p = text, *end = text + len;

	*found = 0;
	while (out && p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		const char *next = lf ? lf + 1 : end, *field;
		size_t n = (size_t)((lf ? lf : end) - p), field_len;
		char who[ADDRESS_MAX + 1];
		int mine;

		if (n > 0 && p[n - 1] == '\r')
			n--;
		mine = accounts_parse_line(p, n, who, &field, &field_len) == 0 &&
		       strcmp(who, address) == 0;
		if (mine && hash && !*found) {
			const char *rest = field + field_len;	/* ":ignored...", the line end */

			o += sprintf(o, "%s:%s", address, hash);
			memcpy(o, rest, (size_t)(next - rest));
			o += next - rest;
		} else if (!mine || hash) {
			memcpy(o, p, (size_t)(next - p));
			o += next - p;
		}
		*found |= mine;
		p = next;
	}
	if (out && hash && !*found)
		o += sprintf(o, "%s%s:%s\n", o > out && o[-1] != '\n' ? "\n" : "", address, hash);
	*out_len = out ? (size_t)(o - out) : 0;
	return out;
}

/* Write text to a new file beside path, with st's mode and owner, fsynced,
   and rename it over path; then fsync the folder. 0 or -errno. */
static int replace_file(const char *path, const struct stat *st, const char *text, size_t len)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	int fd, dfd, rc = 0;

	if (snprintf(tmp, sizeof tmp, "%s.XXXXXX", path) >= (int)sizeof tmp)
		return -ENAMETOOLONG;
	snprintf(dir, sizeof dir, "%s", path);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0)
		return -errno;
	if (fchmod(fd, st->st_mode & 07777) < 0 || fchown(fd, st->st_uid, st->st_gid) < 0)
		rc = -errno;
	if (rc == 0)
		rc = write_full(fd, text, len);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0) {
		unlink(tmp);
		return rc;
	}
	if ((dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	rc = fsync(dfd) < 0 ? -errno : 0;
	close(dfd);
	return rc;
}

/* Read all of fd (st its status) into a malloc'd buffer: 0 or -errno. */
static int slurp(int fd, const struct stat *st, char **text)
{
	int rc;

	if ((uint64_t)st->st_size > ACCOUNTS_FILE_MAX)
		return -EFBIG;
	if (!(*text = malloc((size_t)st->st_size + 1)))
		return -ENOMEM;
	rc = pread_full(fd, *text, (size_t)st->st_size, 0);
	if (rc < 0) {
		free(*text);
		*text = NULL;
	}
	return rc == -ENODATA ? -EIO : rc;
}

int accounts_edit(const char *path, const char *address, const char *hash, int *found)
{
	char real[PATH_MAX], *text = NULL, *out = NULL;
	struct stat st;
	size_t out_len;
	int fd, rc;

	/* A missing file is made (mode 0600: the umask) for a first account. */
	if (hash && (fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) >= 0)
		close(fd);
	/* A link is followed: the file it names is the one replaced. */
	if (!realpath(path, real))
		return -errno;
	if ((fd = lock_current(real)) < 0)
		return fd;
	rc = fstat(fd, &st) < 0 ? -errno : slurp(fd, &st, &text);
	if (rc == 0 && !(out = edited(text, (size_t)st.st_size, address, hash, &out_len, found)))
		rc = -ENOMEM;
	if (rc == 0 && (*found || hash))
		rc = replace_file(real, &st, out, out_len);
	free(text);
	free(out);
	close(fd);	/* the lock goes with it */
	return rc;
}
