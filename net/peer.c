/* peer.c: who is at the other end of a connected socket (peer.h): the
   address the logs name, and the key the per-peer cap counts by. */
#define _GNU_SOURCE
#include "net/peer.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* The peer's address of a connected socket into *ss: 0, or -1 (not a socket). */
static int peer_of(int fd, struct sockaddr_storage *ss, socklen_t *len)
{
	*len = sizeof *ss;
	return getpeername(fd, (struct sockaddr *)ss, len);
}

/* A peer's numeric address, or "local" for what is not IPv4 or IPv6. */
static void name_of(const struct sockaddr_storage *ss, socklen_t len, char *out, size_t size)
{
	char host[NI_MAXHOST];

	snprintf(out, size, "local");
	if ((ss->ss_family != AF_INET && ss->ss_family != AF_INET6) ||
	    getnameinfo((const struct sockaddr *)ss, len, host, sizeof host, NULL, 0,
			NI_NUMERICHOST) != 0)
		return;
	peer_unmapped(host, out, size);
}

void peer_name(int fd, char *out, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (peer_of(fd, &ss, &len) < 0)
		snprintf(out, size, "local");
	else
		name_of(&ss, len, out, size);
}

void peer_unmapped(const char *host, char *out, size_t size)
{
	int mapped = strncmp(host, "::ffff:", 7) == 0 && strchr(host, '.');

	snprintf(out, size, "%s", mapped ? host + 7 : host);
}

/* An IPv6 address's first bits bits, the rest zero, as "addr/bits"; an
   IPv4-mapped one as its IPv4 address. */
static void key_ipv6(const struct sockaddr_in6 *sin6, unsigned bits, char *out, size_t size)
{
	struct in6_addr a = sin6->sin6_addr;
	char host[INET6_ADDRSTRLEN];

	if (IN6_IS_ADDR_V4MAPPED(&a)) {
		inet_ntop(AF_INET, &a.s6_addr[12], host, sizeof host);
		snprintf(out, size, "%s", host);
		return;
	}
	for (unsigned i = 0; i < 16; i++) {
		unsigned keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * i : 0;

		a.s6_addr[i] &= (uint8_t)(0xff00u >> keep);
	}
	inet_ntop(AF_INET6, &a, host, sizeof host);
	if (sin6->sin6_scope_id)
		snprintf(out, size, "%s/%u%%%u", host, bits, (unsigned)sin6->sin6_scope_id);
	else
		snprintf(out, size, "%s/%u", host, bits);
}

/* What the per-peer cap counts a peer by (peer.h). */
static void key_of(const struct sockaddr_storage *ss, unsigned ipv6_prefix, char *out, size_t size)
{
	char host[INET_ADDRSTRLEN];

	snprintf(out, size, "local");
	if (ss->ss_family == AF_INET6)
		key_ipv6((const struct sockaddr_in6 *)ss, ipv6_prefix, out, size);
	else if (ss->ss_family == AF_INET &&
		 inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, host, sizeof host))
		snprintf(out, size, "%s", host);
}

void peer_name_and_key(int fd, unsigned ipv6_prefix, char *name, size_t name_size,
		       char *key, size_t key_size)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (peer_of(fd, &ss, &len) < 0) {
		snprintf(name, name_size, "local");
		snprintf(key, key_size, "local");
		return;
	}
	name_of(&ss, len, name, name_size);
	key_of(&ss, ipv6_prefix, key, key_size);
}
