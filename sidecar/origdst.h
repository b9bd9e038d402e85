/*
 * origdst.h - where a captured connection was going before iptables REDIRECT changed
 * it: SO_ORIGINAL_DST (IPv4) and IP6T_SO_ORIGINAL_DST (IPv6) from conntrack.
 */
#ifndef RINGMESH_ORIGDST_H
#define RINGMESH_ORIGDST_H

#include <sys/socket.h>

/* Fills dst with the original destination of accepted socket fd. -ENOENT when the
 * connection was not redirected (no NAT entry, or the original destination is the
 * socket's own local address: a direct connection to the listener); other -errno. */
int origdst_get(int fd, struct sockaddr_storage *dst, socklen_t *len);

#endif
