/*
 * origdst.c - see origdst.h. Both options are 80 and read the conntrack tuple's
 * original destination; some libc headers lack the IPv6 name, so it is defined here.
 */
#include "origdst.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "addr.h"

/* <linux/netfilter_ipv4.h> clashes with <netinet/in.h>; the value is ABI. */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

int origdst_get(int fd, struct sockaddr_storage *dst, socklen_t *len)
{
    struct sockaddr_storage local;
    socklen_t llen = sizeof(local);
    int r;

    if (getsockname(fd, (struct sockaddr *)&local, &llen) < 0)
        return -errno;
    memset(dst, 0, sizeof(*dst));
    if (local.ss_family == AF_INET) {
        *len = sizeof(struct sockaddr_in);
        r = getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, dst, len);
    } else if (local.ss_family == AF_INET6) {
        *len = sizeof(struct sockaddr_in6);
        r = getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, dst, len);
    } else {
        return -EAFNOSUPPORT;
    }
    if (r < 0)
        return errno == ENOENT || errno == ENOPROTOOPT ? -ENOENT : -errno;
    if (addr_equal((struct sockaddr *)dst, (struct sockaddr *)&local))
        return -ENOENT;
    return 0;
}
