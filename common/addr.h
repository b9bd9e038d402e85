/*
 * addr.h - socket address parsing and printing: "1.2.3.4:80", "[::1]:80".
 */
#ifndef RINGMESH_ADDR_H
#define RINGMESH_ADDR_H

#include <stdbool.h>
#include <sys/socket.h>

#define ADDR_STRLEN 64 /* "[v6 address]:65535" fits */

/* Parses a numeric "IPv4:port" or "[IPv6]:port" (port 1-65535). 0 or -EINVAL. */
int addr_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len);
/* Writes "ip:port" or "[ip]:port" into buf (ADDR_STRLEN bytes); returns buf. */
char *addr_format(const struct sockaddr *sa, char *buf);
/* Same family, address and port. */
bool addr_equal(const struct sockaddr *a, const struct sockaddr *b);
/* Parses a decimal port 1-65535; 0 or -EINVAL. */
int addr_parse_port(const char *s, unsigned short *port);

#endif
