/* tlsio.c: TLS with libtls, loaded with dlopen (tlsio.h). libtls was chosen
   over OpenSSL's own API because it is made for this: a dozen calls, safe
   defaults (certificate and name checked by a client, no legacy protocol),
   TLS_WANT_POLLIN/POLLOUT for non-blocking descriptors, and no error queue
   or BIO plumbing; OpenSMTPD uses it for the same work. */
#define _GNU_SOURCE
#include "net/tlsio.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <tls.h>

/* The calls this file makes, as libtls.so.26 exports them. */
static struct {
	void *handle;
	__typeof__(&tls_init) init;
	__typeof__(&tls_config_new) config_new;
	__typeof__(&tls_config_free) config_free;
	__typeof__(&tls_config_error) config_error;
	__typeof__(&tls_config_set_protocols) config_set_protocols;
	__typeof__(&tls_config_set_ciphers) config_set_ciphers;
	__typeof__(&tls_config_set_keypair_file) config_set_keypair_file;
	__typeof__(&tls_config_set_ca_file) config_set_ca_file;
	__typeof__(&tls_server) server;
	__typeof__(&tls_client) client;
	__typeof__(&tls_configure) configure;
	__typeof__(&tls_accept_fds) accept_fds;
	__typeof__(&tls_connect_fds) connect_fds;
	__typeof__(&tls_handshake) handshake;
	__typeof__(&tls_read) read;
	__typeof__(&tls_write) write;
	__typeof__(&tls_close) close;
	__typeof__(&tls_free) free;
	__typeof__(&tls_error) error;
	__typeof__(&tls_conn_version) conn_version;
	__typeof__(&tls_conn_cipher) conn_cipher;
} lib;

struct tlsio {
	struct tls_config *config;
	struct tls *ctx;		/* the server's or client's context */
	struct tls *conn;		/* the connection (a server's accepted one, or ctx) */
	struct io_transport via;
};

#define BIND(name) (lib.name = (__typeof__(lib.name))dlsym(lib.handle, "tls_" #name))

/* OpenSSL's memory, wiped when it is given back: a record is decrypted
   in place in its read buffer, and what a later, shorter record leaves of
   it (the tail of a password line) would otherwise outlive the connection
   in the heap of a listener's worker. */
static void wiped_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	if (p)
		explicit_bzero(p, malloc_usable_size(p));
	free(p);
}

static void *plain_malloc(size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return malloc(n);
}

static void *wiped_realloc(void *p, size_t n, const char *file, int line)
{
	size_t had = p ? malloc_usable_size(p) : 0;
	void *q = n ? malloc(n) : NULL;

	if (n && !q)
		return NULL;
	if (q && had)
		memcpy(q, p, had < n ? had : n);
	wiped_free(p, file, line);
	return q;
}

/* Before the library allocates anything (else OpenSSL keeps its own,
   and TLS works all the same). */
static void wipe_what_openssl_frees(void)
{
	int (*set)(void *(*)(size_t, const char *, int),
		   void *(*)(void *, size_t, const char *, int),
		   void (*)(void *, const char *, int));

	*(void **)&set = dlsym(lib.handle, "CRYPTO_set_mem_functions");
	if (set)
		set(plain_malloc, wiped_realloc, wiped_free);
}

int tlsio_load(char *why, size_t size)
{
	if (lib.handle)
		return 0;
	if (!(lib.handle = dlopen("libtls.so.26", RTLD_NOW | RTLD_LOCAL))) {
		snprintf(why, size, "cannot load libtls (Debian package libtls26): %s", dlerror());
		return -ENOSYS;
	}
	if (!BIND(init) || !BIND(config_new) || !BIND(config_free) || !BIND(config_error) ||
	    !BIND(config_set_protocols) || !BIND(config_set_ciphers) ||
	    !BIND(config_set_keypair_file) ||
	    !BIND(config_set_ca_file) || !BIND(server) || !BIND(client) || !BIND(configure) ||
	    !BIND(accept_fds) || !BIND(connect_fds) || !BIND(handshake) || !BIND(read) ||
	    !BIND(write) || !BIND(close) || !BIND(free) || !BIND(error) || !BIND(conn_version) ||
	    !BIND(conn_cipher) || (wipe_what_openssl_frees(), lib.init() < 0)) {
		snprintf(why, size, "libtls lacks a call this program needs");
		dlclose(lib.handle);
		lib.handle = NULL;
		return -ENOSYS;
	}
	return 0;
}

/* What libtls said last, or what went wrong. */
static const char *said(struct tlsio *t)
{
	const char *e = t->conn ? lib.error(t->conn) : t->ctx ? lib.error(t->ctx) : NULL;

	if (!e && t->config)
		e = lib.config_error(t->config);
	return e ? e : "unknown TLS error";
}

/* The TLS 1.2 suites, server's and client's: Mozilla's "intermediate"
   list, AEAD only (no CBC, so nothing for LUCKY13 and its kin). TLS 1.3
   has only AEAD suites, and this list does not touch them. A server never
   picks the DHE ones: libtls gives it no DH parameters unless told to. */
#define TLS12_CIPHERS \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"

/* A new tlsio with its configuration: TLS 1.2 and 1.3 only, AEAD only. */
static struct tlsio *tlsio_new(char *why, size_t size)
{
	struct tlsio *t;

	if (tlsio_load(why, size) < 0)
		return NULL;
	if (!(t = calloc(1, sizeof *t)) || !(t->config = lib.config_new())) {
		free(t);
		snprintf(why, size, "out of memory");
		return NULL;
	}
	if (lib.config_set_protocols(t->config, TLS_PROTOCOL_TLSv1_2 | TLS_PROTOCOL_TLSv1_3) < 0 ||
	    lib.config_set_ciphers(t->config, TLS12_CIPHERS) < 0) {
		snprintf(why, size, "%s", said(t));
		tlsio_free(t);
		return NULL;
	}
	return t;
}

/* Make the context and configure it: t, or NULL (t freed) with why said. */
static struct tlsio *configured(struct tlsio *t, struct tls *ctx, char *why, size_t size)
{
	t->ctx = ctx;
	if (!ctx || lib.configure(ctx, t->config) < 0) {
		snprintf(why, size, "%s", ctx ? said(t) : "out of memory");
		tlsio_free(t);
		return NULL;
	}
	return t;
}

struct tlsio *tlsio_server(const char *cert, const char *key, char *why, size_t size)
{
	struct tlsio *t = tlsio_new(why, size);

	if (!t)
		return NULL;
	if (lib.config_set_keypair_file(t->config, cert, key) < 0) {
		snprintf(why, size, "%s", said(t));
		tlsio_free(t);
		return NULL;
	}
	return configured(t, lib.server(), why, size);
}

struct tlsio *tlsio_client(const char *ca_file, char *why, size_t size)
{
	struct tlsio *t = tlsio_new(why, size);

	if (!t)
		return NULL;
	if (ca_file && lib.config_set_ca_file(t->config, ca_file) < 0) {
		snprintf(why, size, "%s: %s", ca_file, said(t));
		tlsio_free(t);
		return NULL;
	}
	return configured(t, lib.client(), why, size);
}

/* libtls's TLS_WANT_POLLIN/POLLOUT as io.c's -EAGAIN and events. */
static ssize_t wanted(ssize_t n, short *events)
{
	if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT) {
		*events = n == TLS_WANT_POLLIN ? POLLIN : POLLOUT;
		return -EAGAIN;
	}
	return n < 0 ? -EPROTO : n;
}

static ssize_t via_read(void *ctx, void *buf, size_t len, short *events)
{
	struct tlsio *t = ctx;

	return wanted(lib.read(t->conn, buf, len), events);
}

static ssize_t via_write(void *ctx, const void *buf, size_t len, short *events)
{
	struct tlsio *t = ctx;
	ssize_t n = wanted(lib.write(t->conn, buf, len), events);

	return n == 0 ? -EPIPE : n;
}

/* Non-blocking, and on TCP without Nagle's delay: a handshake's small
   flights would otherwise wait for the peer's delayed ACK (40 ms each). */
static int nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL), one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);	/* not TCP: no matter */
	return flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ? -errno : 0;
}

int tlsio_start(struct tlsio *t, int in_fd, int out_fd, const char *servername,
		uint64_t deadline_ms, char *why, size_t size)
{
	int rc = nonblocking(in_fd) < 0 || nonblocking(out_fd) < 0 ? -errno : 0;

	if (rc == 0 && !servername && lib.accept_fds(t->ctx, &t->conn, in_fd, out_fd) < 0)
		rc = -EPROTO;
	if (rc == 0 && servername) {
		t->conn = t->ctx;
		if (lib.connect_fds(t->ctx, in_fd, out_fd, servername) < 0)
			rc = -EPROTO;
	}
	while (rc == 0) {
		int n = lib.handshake(t->conn);

		if (n == 0)
			break;
		if (n != TLS_WANT_POLLIN && n != TLS_WANT_POLLOUT)
			rc = -EPROTO;
		else
			rc = io_wait(n == TLS_WANT_POLLIN ? in_fd : out_fd,
				     n == TLS_WANT_POLLIN ? POLLIN : POLLOUT, deadline_ms);
		rc = rc > 0 ? 0 : rc;
	}
	if (rc < 0) {
		snprintf(why, size, "%s", rc == -ETIMEDOUT ? "the handshake timed out" :
			 rc == -EPROTO ? said(t) : strerror(-rc));
		return rc;
	}
	t->via = (struct io_transport){ .read = via_read, .write = via_write, .ctx = t };
	return 0;
}

const struct io_transport *tlsio_transport(struct tlsio *t)
{
	return &t->via;
}

const char *tlsio_describe(struct tlsio *t, char *out, size_t size)
{
	const char *v = t->conn ? lib.conn_version(t->conn) : NULL;
	const char *c = t->conn ? lib.conn_cipher(t->conn) : NULL;

	snprintf(out, size, "%s %s", v ? v : "TLS", c ? c : "");
	return out;
}

void tlsio_free(struct tlsio *t)
{
	if (!t)
		return;
	if (t->conn && t->via.read)
		lib.close(t->conn);	/* non-blocking: close_notify sent if it fits */
	if (t->conn && t->conn != t->ctx)
		lib.free(t->conn);
	if (t->ctx)
		lib.free(t->ctx);
	if (t->config)
		lib.config_free(t->config);
	free(t);
}
