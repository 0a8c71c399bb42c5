/* tlsio.h: TLS for a session and for the client (PROTOCOL.md section 8),
   with libtls (LibreSSL's API; Debian's libretls, over OpenSSL). The
   library is loaded with dlopen the first time TLS is asked for, so a
   server or client that never uses TLS never maps it. A started
   connection is an io_transport for io.c's reader and writer. */
#ifndef MYSMTP_TLSIO_H
#define MYSMTP_TLSIO_H

#include <stddef.h>
#include <stdint.h>

#include "net/io.h"

struct tlsio;

/* Load libtls now (else the first call below does): 0, or -ENOSYS with
   why[size] said. A listener does it once, before it forks. */
int tlsio_load(char *why, size_t size);

/* A server's TLS from a PEM certificate (chain) and key, both read now:
   NULL, with why[size] said. TLS 1.2 and 1.3 only; on TLS 1.2, AEAD suites
   only (client and server alike). */
struct tlsio *tlsio_server(const char *cert, const char *key, char *why, size_t size);
/* A client's TLS that verifies the server's certificate and name against
   the system's CAs, or against ca_file when it is given. */
struct tlsio *tlsio_client(const char *ca_file, char *why, size_t size);

/* Run the handshake on in_fd/out_fd (a server accepts; a client connects,
   checking servername), within deadline_ms (io_now_ms scale): 0, or -errno
   with why said. The descriptors are made non-blocking. */
int tlsio_start(struct tlsio *t, int in_fd, int out_fd, const char *servername,
		uint64_t deadline_ms, char *why, size_t size);

/* Once started: what io.c reads and writes through, and the protocol and
   cipher agreed ("TLSv1.3 TLS_AES_256_GCM_SHA384"). */
const struct io_transport *tlsio_transport(struct tlsio *t);
const char *tlsio_describe(struct tlsio *t, char *out, size_t size);

/* Send close_notify (without waiting for the peer's) and free t. */
void tlsio_free(struct tlsio *t);

#endif
