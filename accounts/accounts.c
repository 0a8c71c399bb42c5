/* accounts.c: reading the accounts file and checking a password against it
   (accounts.h). The file is kept as read; each look-up walks its lines. */
#define _GNU_SOURCE
#include "accounts/accounts.h"

#include <crypt.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Hashed against when the file has no usable hash to borrow: yescrypt at
   libxcrypt's default cost, as --set-password makes them. */
static const char default_dummy[] =
	"$y$j9T$.VSlGYeuZ8gIwqKdPNsLt.$67N9Dl6EalyTrTeu6haG.G2xKyCdc9/j/cWB1ZfubWA";

__typeof__(accounts_crypt_rn) accounts_crypt_rn;
__typeof__(accounts_gensalt_rn) accounts_gensalt_rn;

int accounts_crypt_load(char *why, size_t size)
{
	void *lib;

	if (accounts_crypt_rn)
		return 0;
	if (!(lib = dlopen("libcrypt.so.1", RTLD_NOW | RTLD_LOCAL))) {
		snprintf(why, size, "cannot load libcrypt (Debian package libcrypt1): %s", dlerror());
		return -ENOSYS;
	}
	accounts_gensalt_rn = (__typeof__(accounts_gensalt_rn))dlsym(lib, "crypt_gensalt_rn");
	accounts_crypt_rn = (__typeof__(accounts_crypt_rn))dlsym(lib, "crypt_rn");
	if (!accounts_crypt_rn || !accounts_gensalt_rn) {
		snprintf(why, size, "libcrypt lacks crypt_rn or crypt_gensalt_rn");
		accounts_crypt_rn = NULL;
		dlclose(lib);
		return -ENOSYS;
	}
	return 0;
}

/* One line of the file: [*pos, end of line), *pos moved past it. */
static int next_line(const struct accounts *a, size_t *pos, const char **line, size_t *len)
{
	const char *start = a->text + *pos, *lf;

	if (*pos >= a->len)
		return 0;
	lf = memchr(start, '\n', a->len - *pos);
	*len = lf ? (size_t)(lf - start) : a->len - *pos;
	*pos += *len + (lf ? 1 : 0);
	if (*len > 0 && start[*len - 1] == '\r')
		(*len)--;
	*line = start;
	return 1;
}

static int is_comment_or_blank(const char *line, size_t len)
{
	size_t i = 0;

	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	return i == len || line[i] == '#';
}

int accounts_parse_line(const char *line, size_t len, char *address,
			const char **field, size_t *field_len)
{
	const char *colon = memchr(line, ':', len), *end;

	if (!colon || address_parse(line, (size_t)(colon - line), address) < 0)
		return -EINVAL;
	*field = colon + 1;
	end = memchr(*field, ':', len - (size_t)(*field - line));
	*field_len = end ? (size_t)(end - *field) : len - (size_t)(*field - line);
	return 0;
}

/* The password field of address's line: 0, or -ENOENT. */
static int find(const struct accounts *a, const char *address, const char **field, size_t *len)
{
	char found[ADDRESS_MAX + 1];
	const char *line;
	size_t pos = 0, n;

	while (a->text && next_line(a, &pos, &line, &n))
		if (!is_comment_or_blank(line, n) && accounts_parse_line(line, n, found, field, len) == 0 &&
		    strcmp(found, address) == 0)
			return 0;
	return -ENOENT;
}

const char *accounts_usable_hash(const char *field, size_t len, const char **why)
{
	static const char *const schemes[] = { "{CRYPT}", "{BLF-CRYPT}", "{SHA512-CRYPT}",
					       "{SHA256-CRYPT}" };
	static const char *const kinds[] = { "$y$", "$2b$", "$2y$", "$6$", "$5$" };

	for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++)
		if (len >= strlen(schemes[i]) && strncasecmp(field, schemes[i], strlen(schemes[i])) == 0) {
			field += strlen(schemes[i]);
			len -= strlen(schemes[i]);
			break;
		}
	*why = NULL;
	if (len == 0)
		*why = "the password field is empty";
	else if (field[0] == '{')
		*why = "its scheme is not a crypt(3) one ({PLAIN} and others never match)";
	else if (len >= CRYPT_OUTPUT_SIZE || memchr(field, ' ', len) || memchr(field, '\t', len))
		*why = "its hash is malformed";
	if (*why)
		return NULL;
	for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
		if (len > strlen(kinds[i]) && strncmp(field, kinds[i], strlen(kinds[i])) == 0)
			return field;
	*why = strncmp(field, "$1$", 3) == 0 ? "MD5-crypt is a legacy scheme" :
		"its hash is not yescrypt, bcrypt or SHA-crypt (DES and other legacy schemes never match)";
	return NULL;
}

/* Warn of each line that is not an account, and borrow the first usable
   hash as the dummy: unknown addresses then cost what real ones do. */
static void survey(struct accounts *a, accounts_warn warn, void *ctx)
{
	char address[ADDRESS_MAX + 1];
	const char *line, *field, *hash, *why;
	size_t pos = 0, n, len, lineno = 0;
	int borrowed = 0;

	snprintf(a->dummy, sizeof a->dummy, "%s", default_dummy);
	while (next_line(a, &pos, &line, &n)) {
		lineno++;
		if (is_comment_or_blank(line, n))
			continue;
		if (accounts_parse_line(line, n, address, &field, &len) < 0) {
			warn(ctx, "Accounts file line %zu is not \"address:hash\"; ignored.", lineno);
			continue;
		}
		hash = accounts_usable_hash(field, len, &why);
		if (hash && !borrowed && (size_t)(field + len - hash) < sizeof a->dummy) {
			snprintf(a->dummy, sizeof a->dummy, "%.*s", (int)(field + len - hash), hash);
			borrowed = 1;
		}
	}
}

/* What is wrong with a file of status st to keep accounts in: NULL when nothing. */
static const char *unfit(const struct stat *st)
{
	if (!S_ISREG(st->st_mode))
		return "it is not a regular file";
	if (st->st_mode & 022)
		return "it is writable by others than its owner";
	if ((uint64_t)st->st_size > ACCOUNTS_FILE_MAX)
		return "it is larger than 16 MiB";
	return NULL;
}

static int load_fd(struct accounts *a, int fd, char *why, size_t size)
{
	struct stat st;
	const char *bad;
	ssize_t n;

	if (fstat(fd, &st) < 0)
		bad = strerror(errno);
	else if (!(bad = unfit(&st)) && !(a->text = malloc((size_t)st.st_size + 1)))
		bad = "out of memory";
	else if (!bad && (n = pread(fd, a->text, (size_t)st.st_size, 0)) != st.st_size)
		bad = n < 0 ? strerror(errno) : "it changed while being read";
	if (bad) {
		snprintf(why, size, "%s", bad);
		return -EINVAL;
	}
	a->len = (size_t)st.st_size;
	a->text[a->len] = '\0';
	return 0;
}

int accounts_load(struct accounts *a, const char *path, char *why, size_t size,
		  accounts_warn warn, void *ctx)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK), rc;

	a->text = NULL;
	a->len = 0;
	if (fd >= 0 && (rc = accounts_crypt_load(why, size)) < 0) {
		close(fd);
		return rc;
	}
	if (fd < 0) {
		rc = -errno;
		snprintf(why, size, "%s", errno == ENOENT ? "it is missing" :
			 errno == EACCES ? "it is not readable by this user" : strerror(errno));
		return rc;
	}
	rc = load_fd(a, fd, why, size);
	close(fd);
	if (rc < 0) {
		accounts_free(a);
		return rc;
	}
	survey(a, warn, ctx);
	return 0;
}

void accounts_free(struct accounts *a)
{
	if (a->text) {
		explicit_bzero(a->text, a->len);
		free(a->text);
	}
	a->text = NULL;
	a->len = 0;
}

int accounts_has(const struct accounts *a, const char *address)
{
	const char *field;
	size_t len;

	return find(a, address, &field, &len) == 0;
}

int accounts_has_domain(const struct accounts *a, const char *address)
{
	char found[ADDRESS_MAX + 1];
	const char *line, *field, *at = strchr(address, '@');
	size_t pos = 0, n, len;

	while (at && a->text && next_line(a, &pos, &line, &n))
		if (!is_comment_or_blank(line, n) &&
		    accounts_parse_line(line, n, found, &field, &len) == 0 &&
		    address_in_domain(found, at + 1))
			return 1;
	return 0;
}

int accounts_same(const char *a, const char *b, size_t len)
{
	unsigned char diff = 0;

	for (size_t i = 0; i < len; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

int accounts_verify(const struct accounts *a, const char *address, const char *password,
		    accounts_warn warn, void *ctx)
{
	char setting[CRYPT_OUTPUT_SIZE];
	const char *field, *hash = NULL, *why = NULL, *out;
	struct crypt_data *cd;
	size_t len;
	int ok;

	if (find(a, address, &field, &len) == 0 && !(hash = accounts_usable_hash(field, len, &why)))
		warn(ctx, "Account %s cannot log in: %s.", address, why);
	if (hash)
		snprintf(setting, sizeof setting, "%.*s", (int)(field + len - hash), hash);
	else
		snprintf(setting, sizeof setting, "%s", a->dummy);
	if (!(cd = calloc(1, sizeof *cd)))
		return -ENOMEM;
	out = accounts_crypt_rn(password, setting, cd, (int)sizeof *cd);
	ok = hash && out && strlen(out) == strlen(setting) &&
	     accounts_same(out, setting, strlen(setting));
	explicit_bzero(cd, sizeof *cd);
	free(cd);
	explicit_bzero(setting, sizeof setting);
	return ok;
}
