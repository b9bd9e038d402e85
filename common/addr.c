/*
 * addr.c - see addr.h. Numeric only: name resolution never happens on a worker.
 */
#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int addr_parse_port(const char *s, unsigned short *port)
{
    char *end;
    long v;
    if (!s || !*s || *s == '+' || *s == '-')
        return -EINVAL;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < 1 || v > 65535)
        return -EINVAL;
    *port = (unsigned short)v;
    return 0;
}

int addr_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[64];
    const char *colon, *h = s;
    size_t hl;
    unsigned short port;

    memset(ss, 0, sizeof(*ss));
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return -EINVAL;
        h = s + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -EINVAL;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= sizeof(host) || addr_parse_port(colon + 1, &port) < 0)
        return -EINVAL;
    memcpy(host, h, hl);
    host[hl] = 0;
    if (s[0] != '[') {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
            return -EINVAL;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        *len = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
            return -EINVAL;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        *len = sizeof(*sin6);
    }
    return 0;
}

char *addr_format(const struct sockaddr *sa, char *buf)
{
    char ip[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        snprintf(buf, ADDR_STRLEN, "%s:%u", ip, ntohs(sin->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, ADDR_STRLEN, "[%s]:%u", ip, ntohs(sin6->sin6_port));
    } else {
        snprintf(buf, ADDR_STRLEN, "(family %d)", sa->sa_family);
    }
    return buf;
}

bool addr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}
