/* tests/faults/shim.c: an LD_PRELOAD library that makes one call on the mail
   store fail, for tests/integration/test_faults.py. Only calls on files under
   FAULT_DIR are counted (the store's mailboxes, indexes, its spool file and
   the directory itself); the replies on stdout and everything else pass.

     FAULT_DIR     the store directory (required: without it nothing counts)
     FAULT_CALLS   kinds that count, a comma list of write, writev, pwrite,
                   fsync, fdatasync, ftruncate, rename, open (open, openat and
                   their fortified and 64-bit forms), copy (copy_file_range),
                   link (linkat); unset or "all": all
     FAULT_AT      the Nth counted call (from 1) gets the fault; 0 or unset:
                   none does, the calls are only counted
     FAULT_MODE    a comma list, one entry for call N, N+1, ...: ENOSPC, EIO,
                   EINTR (the call is not made), SHORT (a write of half as much)
     FAULT_DELAY_MS  wait this long before a fault fires (another process may
                   act meanwhile)
     FAULT_REPORT  a file to which the exit appends one line:
                   "calls C fired F kinds K1,K2,..." (every counted call's kind)

   glibc's own functions call __write and friends internally, so only calls
   the program makes through the PLT are seen: which is what the server does.
   A build with _FORTIFY_SOURCE calls __openat_2 and __open_2 for an openat or
   open without a mode; those are caught here too. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/uio.h>
#include <unistd.h>

enum kind { K_WRITE, K_WRITEV, K_PWRITE, K_FSYNC, K_FDATASYNC, K_FTRUNCATE,
	    K_RENAME, K_OPEN, K_COPY, K_LINK, K_NKINDS };
static const char *const kind_names[K_NKINDS] = {
	"write", "writev", "pwrite", "fsync", "fdatasync", "ftruncate", "rename", "open",
	"copy", "link",
};

enum mode { M_NONE, M_ENOSPC, M_EIO, M_EINTR, M_SHORT };
#define MAX_MODES 8
#define MAX_LOG 4096

static struct {
	int ready;
	char dir[PATH_MAX];
	size_t dirlen;
	unsigned wanted;		/* bit per kind */
	unsigned long at, calls, fired;
	enum mode modes[MAX_MODES];
	int nmodes;
	const char *report;
	unsigned long delay_ms;
	unsigned char log[MAX_LOG];	/* kind of each counted call */
} f;

static void *real(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	if (!p) {
		static const char msg[] = "fault shim: a real function is missing\n";
		(void)!syscall(1, 2, msg, sizeof msg - 1);	/* SYS_write: not through ourselves */
		abort();
	}
	return p;
}

#define REAL(ret, name, ...) \
	static ret (*real_##name)(__VA_ARGS__); \
	if (!real_##name) real_##name = (ret (*)(__VA_ARGS__))real(#name)

static enum mode parse_mode(const char *s, size_t n)
{
	if (n == 6 && strncmp(s, "ENOSPC", n) == 0) return M_ENOSPC;
	if (n == 3 && strncmp(s, "EIO", n) == 0) return M_EIO;
	if (n == 5 && strncmp(s, "EINTR", n) == 0) return M_EINTR;
	if (n == 5 && strncmp(s, "SHORT", n) == 0) return M_SHORT;
	return M_NONE;
}

static void parse_modes(const char *s)
{
	while (s && *s && f.nmodes < MAX_MODES) {
		size_t n = strcspn(s, ",");

		f.modes[f.nmodes++] = parse_mode(s, n);
		s += n + (s[n] == ',');
	}
}

static void parse_kinds(const char *s)
{
	if (!s || !*s || strcmp(s, "all") == 0) {
		f.wanted = (1u << K_NKINDS) - 1;
		return;
	}
	while (*s) {
		size_t n = strcspn(s, ",");

		for (int k = 0; k < K_NKINDS; k++)
			if (strlen(kind_names[k]) == n && strncmp(s, kind_names[k], n) == 0)
				f.wanted |= 1u << k;
		s += n + (s[n] == ',');
	}
}

__attribute__((constructor)) static void shim_init(void)
{
	const char *dir = getenv("FAULT_DIR"), *at = getenv("FAULT_AT");

	if (!dir || !realpath(dir, f.dir))
		return;
	f.dirlen = strlen(f.dir);
	f.at = at ? strtoul(at, NULL, 10) : 0;
	parse_kinds(getenv("FAULT_CALLS"));
	parse_modes(getenv("FAULT_MODE"));
	f.report = getenv("FAULT_REPORT");
	f.delay_ms = getenv("FAULT_DELAY_MS") ? strtoul(getenv("FAULT_DELAY_MS"), NULL, 10) : 0;
	f.ready = 1;
}

__attribute__((destructor)) static void shim_report(void)
{
	REAL(int, open, const char *, int, ...);
	REAL(ssize_t, write, int, const void *, size_t);
	char line[64 + MAX_LOG * 10];
	size_t len;
	int fd;

	if (!f.ready || !f.report)
		return;
	len = (size_t)snprintf(line, sizeof line, "calls %lu fired %lu kinds ", f.calls, f.fired);
	for (unsigned long i = 0; i < f.calls && i < MAX_LOG; i++)
		len += (size_t)snprintf(line + len, sizeof line - len, "%s%s",
					i ? "," : "", kind_names[f.log[i]]);
	line[len++] = '\n';
	fd = real_open(f.report, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0) {
		(void)!real_write(fd, line, len);
		close(fd);
	}
}

/* Is path (absolute, or relative to dirfd) the store directory or under it? */
static int in_store(int dirfd, const char *path)
{
	char base[PATH_MAX], link[64];
	ssize_t n;

	if (!path)
		return 0;
	if (path[0] == '/') {
		snprintf(base, sizeof base, "%s", path);
	} else {
		if (dirfd == AT_FDCWD) {
			if (!getcwd(base, sizeof base))
				return 0;
			n = (ssize_t)strlen(base);
		} else {
			snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
			n = readlink(link, base, sizeof base - 1);
			if (n < 0)
				return 0;
		}
		snprintf(base + n, sizeof base - (size_t)n, "/%s", path);
	}
	return strncmp(base, f.dir, f.dirlen) == 0 &&
	       (base[f.dirlen] == '\0' || base[f.dirlen] == '/');
}

static int fd_in_store(int fd)
{
	char link[64], target[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof target - 1);
	if (n < 0)
		return 0;
	target[n] = '\0';
	return in_store(AT_FDCWD, target);
}

/* Count a call of kind on the store; the fault it gets, or M_NONE. */
static enum mode fault_for(enum kind k, int counted)
{
	unsigned long n;

	if (!f.ready || !counted || !(f.wanted & (1u << k)))
		return M_NONE;
	n = ++f.calls;
	if (n <= MAX_LOG)
		f.log[n - 1] = (unsigned char)k;
	if (f.at == 0 || n < f.at || n >= f.at + (unsigned long)f.nmodes)
		return M_NONE;
	f.fired++;
	if (f.delay_ms) {
		struct timespec ts = { (time_t)(f.delay_ms / 1000), (long)(f.delay_ms % 1000) * 1000000L };

		nanosleep(&ts, NULL);
	}
	return f.modes[n - f.at];
}

/* The error of a fault that is not a short write: -1 with errno, or 0 when
   the call should go ahead. */
static int fail_with(enum mode m)
{
	switch (m) {
	case M_ENOSPC: errno = ENOSPC; return -1;
	case M_EIO: errno = EIO; return -1;
	case M_EINTR: errno = EINTR; return -1;
	default: return 0;
	}
}

static size_t shorter(size_t len)
{
	return len > 1 ? len / 2 : len;
}

ssize_t write(int fd, const void *buf, size_t len)
{
	REAL(ssize_t, write, int, const void *, size_t);
	enum mode m = fault_for(K_WRITE, f.ready && fd_in_store(fd));

	if (fail_with(m))
		return -1;
	return real_write(fd, buf, m == M_SHORT ? shorter(len) : len);
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
	REAL(ssize_t, pwrite, int, const void *, size_t, off_t);
	enum mode m = fault_for(K_PWRITE, f.ready && fd_in_store(fd));

	if (fail_with(m))
		return -1;
	return real_pwrite(fd, buf, m == M_SHORT ? shorter(len) : len, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off)
{
	return pwrite(fd, buf, len, off);
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
	REAL(ssize_t, writev, int, const struct iovec *, int);
	enum mode m = fault_for(K_WRITEV, f.ready && fd_in_store(fd));
	struct iovec cut[64];
	size_t total = 0, want;
	int k = 0;

	if (fail_with(m))
		return -1;
	if (m != M_SHORT || n > 64)
		return real_writev(fd, iov, n);
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	for (want = shorter(total); k < n && want > 0; k++) {
		cut[k] = iov[k];
		if (cut[k].iov_len > want)
			cut[k].iov_len = want;
		want -= cut[k].iov_len;
	}
	return real_writev(fd, cut, k);
}

int fsync(int fd)
{
	REAL(int, fsync, int);

	if (fail_with(fault_for(K_FSYNC, f.ready && fd_in_store(fd))))
		return -1;
	return real_fsync(fd);
}

int fdatasync(int fd)
{
	REAL(int, fdatasync, int);

	if (fail_with(fault_for(K_FDATASYNC, f.ready && fd_in_store(fd))))
		return -1;
	return real_fdatasync(fd);
}

int ftruncate(int fd, off_t len)
{
	REAL(int, ftruncate, int, off_t);

	if (fail_with(fault_for(K_FTRUNCATE, f.ready && fd_in_store(fd))))
		return -1;
	return real_ftruncate(fd, len);
}

int ftruncate64(int fd, off_t len)
{
	return ftruncate(fd, len);
}

int renameat2(int olddir, const char *old, int newdir, const char *new, unsigned flags)
{
	REAL(int, renameat2, int, const char *, int, const char *, unsigned);
	int counted = f.ready && (in_store(olddir, old) || in_store(newdir, new));

	if (fail_with(fault_for(K_RENAME, counted)))
		return -1;
	return real_renameat2(olddir, old, newdir, new, flags);
}

int renameat(int olddir, const char *old, int newdir, const char *new)
{
	return renameat2(olddir, old, newdir, new, 0);
}

ssize_t copy_file_range(int in, loff_t *in_off, int out, loff_t *out_off, size_t len,
			unsigned flags)
{
	REAL(ssize_t, copy_file_range, int, loff_t *, int, loff_t *, size_t, unsigned);
	enum mode m = fault_for(K_COPY, f.ready && fd_in_store(out));

	if (fail_with(m))
		return -1;
	return real_copy_file_range(in, in_off, out, out_off, m == M_SHORT ? shorter(len) : len,
				    flags);
}

int linkat(int olddir, const char *old, int newdir, const char *new, int flags)
{
	REAL(int, linkat, int, const char *, int, const char *, int);

	if (fail_with(fault_for(K_LINK, f.ready && in_store(newdir, new))))
		return -1;
	return real_linkat(olddir, old, newdir, new, flags);
}

int rename(const char *old, const char *new)
{
	return renameat2(AT_FDCWD, old, AT_FDCWD, new, 0);
}

/* Every open goes through here: openat with the real openat. */
static int open_common(int dirfd, const char *path, int flags, mode_t mode)
{
	REAL(int, openat, int, const char *, int, ...);

	if (fail_with(fault_for(K_OPEN, f.ready && in_store(dirfd, path))))
		return -1;
	return real_openat(dirfd, path, flags, mode);
}

static mode_t mode_arg(int flags, va_list ap)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

/* openat, open, openat64 and open64: take the mode argument, then open_common. */
#define VARIADIC_OPEN(name, dirfd, params)				\
	int name params							\
	{								\
		va_list ap;						\
		mode_t mode;						\
									\
		va_start(ap, flags);					\
		mode = mode_arg(flags, ap);				\
		va_end(ap);						\
		return open_common(dirfd, path, flags, mode);		\
	}

VARIADIC_OPEN(openat, dirfd, (int dirfd, const char *path, int flags, ...))
VARIADIC_OPEN(openat64, dirfd, (int dirfd, const char *path, int flags, ...))
VARIADIC_OPEN(open, AT_FDCWD, (const char *path, int flags, ...))
VARIADIC_OPEN(open64, AT_FDCWD, (const char *path, int flags, ...))

/* The _FORTIFY_SOURCE forms, called for an open without a mode argument. */
int __openat_2(int dirfd, const char *path, int flags)
{
	return open_common(dirfd, path, flags, 0);
}

int __openat64_2(int dirfd, const char *path, int flags)
{
	return open_common(dirfd, path, flags, 0);
}

int __open_2(const char *path, int flags)
{
	return open_common(AT_FDCWD, path, flags, 0);
}

int __open64_2(const char *path, int flags)
{
	return open_common(AT_FDCWD, path, flags, 0);
}
