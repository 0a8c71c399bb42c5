/* tests/fuzz/fuzz_store.h: what the fuzz harnesses share: REQUIRE, a store in
   a fresh temporary directory, a client's input in a memfd, the server's
   output read back, and planting a mailbox file. Each harness defines
   FUZZ_NAME ("fuzz_session", ...) before it includes this. */
#ifndef MYSMTP_FUZZ_STORE_H
#define MYSMTP_FUZZ_STORE_H

#include "mail/address.h"
#include "store/store_internal.h"

#include <crypt.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define REQUIRE(cond, ...) do { if (!(cond)) { \
	fprintf(stderr, FUZZ_NAME ": invariant broken: " __VA_ARGS__); \
	fputc('\n', stderr); abort(); } } while (0)

static char parent[4096], store_dir[4200];
static int parent_fd = -1;
static struct store st;

static char accounts_dir[4096], accounts_file[4200];

/* An accounts file in a folder of its own: david@test.com and
   john@test.com, with the password "secret1" of the transcripts (which are
   the seeds), hashed with SHA-256-crypt at its lowest cost so that a login
   costs the fuzzer little. */
static void fuzz_accounts_init(void)
{
	const char *tmp = getenv("TMPDIR");
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	static struct crypt_data cd;
	const char *hash;
	FILE *f;

	snprintf(accounts_dir, sizeof accounts_dir, "%s/" FUZZ_NAME "-accounts-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	REQUIRE(mkdtemp(accounts_dir), "accounts folder: %s", strerror(errno));
	snprintf(accounts_file, sizeof accounts_file, "%s/accounts", accounts_dir);
	REQUIRE(crypt_gensalt_rn("$5$", 1000, NULL, 0, salt, sizeof salt), "crypt_gensalt_rn");
	hash = crypt_rn("secret1", salt, &cd, sizeof cd);
	REQUIRE(hash && hash[0] == '$', "crypt_rn");
	f = fopen(accounts_file, "w");
	REQUIRE(f, "accounts file: %s", strerror(errno));
	fprintf(f, "# fuzzing accounts\ndavid@test.com:{SHA256-CRYPT}%s\njohn@test.com:%s::\n",
		hash, hash);
	REQUIRE(fclose(f) == 0, "accounts file");
}

/* Make parent (in $TMPDIR), the store in it, and open the store; exit on failure. */
static void fuzz_store_init(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(parent, sizeof parent, "%s/" FUZZ_NAME "-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(parent) || (parent_fd = open(parent, O_RDONLY | O_DIRECTORY)) < 0) {
		perror(FUZZ_NAME ": temporary directory");
		exit(1);
	}
	snprintf(store_dir, sizeof store_dir, "%s/mailbox", parent);
	if (mkdir(store_dir, 0700) < 0 || store_open(&st, store_dir, 0) < 0) {
		perror(FUZZ_NAME ": store");
		exit(1);
	}
	fuzz_accounts_init();
}

/* A memfd holding data, at its start: the client's input. */
static inline int memfd_with(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz-in", MFD_CLOEXEC);

	REQUIRE(fd >= 0, "memfd_create: %s", strerror(errno));
	REQUIRE(size == 0 || write(fd, data, size) == (ssize_t)size, "memfd write");
	lseek(fd, 0, SEEK_SET);
	return fd;
}

/* Everything the session wrote to fd, NUL-terminated; *len its length. */
static inline char *slurp(int fd, size_t *len)
{
	off_t end = lseek(fd, 0, SEEK_END);
	char *buf = malloc((size_t)end + 1);

	REQUIRE(end >= 0 && buf, "output memfd");
	REQUIRE(pread(fd, buf, (size_t)end, 0) == end, "output read");
	buf[end] = '\0';
	*len = (size_t)end;
	return buf;
}

/* A session's log, formatted and dropped. */
static void quiet_log(void *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), unused));

static void quiet_log(void *ctx, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	(void)ctx;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
}

/* Does the input hold word (lower case), in any case? */
static inline int fuzz_holds(const uint8_t *data, size_t size, const char *word)
{
	size_t n = strlen(word);

	for (size_t i = 0; i + n <= size; i++)
		if (strncasecmp((const char *)data + i, word, n) == 0)
			return 1;
	return 0;
}

/* A file of the store, made with data. */
static inline void plant(const char *name, const char *data, size_t len)
{
	int fd = openat(st.dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	REQUIRE(fd >= 0 && write(fd, data, len) == (ssize_t)len, "planting %s", name);
	close(fd);
}

/* Check that nothing was made beside the store and that the store holds
   only mailbox files (ADDRESS.txt, ADDRESS.idx, and ADDRESS.pop of a POP3
   session, with a valid address, regular, one link); call each(address,
   ctx) for every mailbox. */
static inline void fuzz_store_walk(void (*each)(const char *address, void *ctx), void *ctx)
{
	DIR *d = fdopendir(dup(parent_fd));
	struct dirent *e;

	REQUIRE(d, "opendir parent");
	while ((e = readdir(d)))
		REQUIRE(!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
			!strcmp(e->d_name, "mailbox"), "made outside the store: %s", e->d_name);
	closedir(d);
	d = fdopendir(dup(st.dirfd));
	REQUIRE(d, "opendir store");
	rewinddir(d);
	while ((e = readdir(d))) {
		char address[ADDRESS_MAX + 1];
		size_t n = strlen(e->d_name);
		struct stat sb;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		REQUIRE(n > 4 && (!strcmp(e->d_name + n - 4, ".txt") || !strcmp(e->d_name + n - 4, ".idx") ||
				  !strcmp(e->d_name + n - 4, ".pop")),
			"stray file in the store: %s", e->d_name);
		REQUIRE(address_parse(e->d_name, n - 4, address) == 0 &&
			strncmp(address, e->d_name, n - 4) == 0, "file name not a valid address: %s", e->d_name);
		REQUIRE(fstatat(st.dirfd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
			S_ISREG(sb.st_mode) && sb.st_nlink == 1, "not a regular file: %s", e->d_name);
		if (!strcmp(e->d_name + n - 4, ".txt"))
			each(address, ctx);
	}
	closedir(d);
}

/* Remove every file of the store, for the next input. */
static inline void fuzz_store_empty(void)
{
	DIR *d = fdopendir(dup(st.dirfd));
	struct dirent *e;

	REQUIRE(d, "opendir store");
	rewinddir(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(st.dirfd, e->d_name, 0);
	closedir(d);
}

#endif
