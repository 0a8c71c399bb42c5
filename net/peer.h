/* peer.h: a connected socket's peer: its numeric address for the logs, and
   the key the per-peer cap counts it by (IPv6 peers grouped by a prefix). */
#ifndef MYSMTP_PEER_H
#define MYSMTP_PEER_H

#include <stddef.h>

/* The numeric address of a connected socket's peer, or "local". */
void peer_name(int fd, char *out, size_t size);
/* host as a peer address: an IPv4-mapped IPv6 address ("::ffff:1.2.3.4") as IPv4. */
void peer_unmapped(const char *host, char *out, size_t size);
/* peer_name's address into name, and into key what the per-peer cap
   counts the peer by: its IPv4 address (an IPv4-mapped one's too), the
   first ipv6_prefix bits of an IPv6 one ("2001:db8:1:2::/64"), or "local";
   from one look at the socket. */
void peer_name_and_key(int fd, unsigned ipv6_prefix, char *name, size_t name_size,
		       char *key, size_t key_size);

#endif
