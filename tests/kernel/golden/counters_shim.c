/* LD_PRELOAD shim for the golden recorder (tests/kernel/record_golden.py).
 *
 * Why: ipvsadm formats counters of 10^8 and more as K, M, G and T, and no
 * test can push 10^14 bytes through a veth in User-Mode Linux.  So, for the
 * "big counters" scenario only, this shim rewrites the counters in the
 * kernel's answers *as they are received*, by every process of the run: the
 * real ipvsadm (libnl's recvmsg) and the recorder's own Python socket (recv),
 * so both read the same, kernel-shaped bytes.  What ipvsadm prints for them is
 * then its real output for a kernel that holds those counters; the recorder
 * keeps the rewritten bytes for the unit tier's replay.
 *
 * Active only while IPVSCTL_GOLDEN_COUNTERS holds the IPVS generic-netlink
 * family id; it touches only NEW_SERVICE / NEW_DEST messages of that family,
 * and in them only the values of the STATS (u32) and STATS64 (u64)
 * containers.  A real server's counters stay below 2^32: ipvsadm 1.31 prints
 * a real server's counters from the 32-bit STATS (modulo 2^32; ipvsctl
 * prints the 64-bit ones, docs/compat.md), so above that its output says
 * nothing about the formatting.  Each value is a function of the entry's identity (service:
 * af, protocol, address, port, fwmark; real server: address, port) and of
 * the counter, so every read of the same entry gets the same numbers
 * whichever request asked for it.  Rewriting is idempotent (libnl peeks
 * before it reads).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Spread over every branch of ipvsadm's print_largenum, and both sides of
 * each boundary (10^8, 10^9, 10^11, 10^14) and of 2^32. */
static const uint64_t MAGNITUDES[] = {
    0ULL, 7ULL, 99999999ULL, 100000000ULL, 123456789ULL, 999999999ULL,
    1000000000ULL, 4294967295ULL, 4294967296ULL, 99999999999ULL,
    100000000000ULL, 12345678901234ULL, 99999999999999ULL,
    100000000000000ULL, 98765432109876543ULL, 18446744073709551615ULL,
};
#define N_MAGNITUDES (sizeof(MAGNITUDES) / sizeof(MAGNITUDES[0]))
#define N_MAGNITUDES_32 8   /* the first 8 are below 2^32 */

struct nla { uint16_t len, type; };

static uint32_t fnv(uint32_t h, const unsigned char *p, size_t n)
{
    while (n--) { h ^= *p++; h *= 16777619u; }
    return h;
}

static void set_stats(unsigned char *p, size_t n, uint32_t ident, unsigned spread)
{
    size_t off = 0;
    while (off + 4 <= n) {
        struct nla a; memcpy(&a, p + off, 4);
        if (a.len < 4 || off + a.len > n) return;
        unsigned type = a.type & 0x3fff;
        if (type >= 1 && type <= 10) {   /* CONNS .. OUTBPS; 11 is PAD */
            uint64_t v = MAGNITUDES[(ident + type * 7u) % spread];
            if (a.len - 4 == 8) memcpy(p + off + 4, &v, 8);
            else if (a.len - 4 == 4) { uint32_t w = (uint32_t)v; memcpy(p + off + 4, &w, 4); }
        }
        off += (a.len + 3u) & ~3u;
    }
}

/* One SERVICE or DEST container: hash its identity, then set its counters. */
static void patch_entry(unsigned char *p, size_t n, int is_dest)
{
    uint32_t h = 2166136261u;
    size_t off;
    for (int pass = 0; pass < 2; pass++) {
        off = 0;
        while (off + 4 <= n) {
            struct nla a; memcpy(&a, p + off, 4);
            if (a.len < 4 || off + a.len > n) return;
            unsigned type = a.type & 0x3fff;
            if (pass == 0) {
                int ident = is_dest ? (type == 1 || type == 2)            /* ADDR, PORT */
                                    : (type >= 1 && type <= 5);           /* AF..FWMARK */
                if (ident) { h = fnv(h, (unsigned char *)&a.type, 2); h = fnv(h, p + off + 4, a.len - 4); }
            } else if (type == 10 || type == 12) {                       /* STATS, STATS64 */
                set_stats(p + off + 4, a.len - 4, h, is_dest ? N_MAGNITUDES_32 : N_MAGNITUDES);
            }
            off += (a.len + 3u) & ~3u;
        }
    }
}

static void patch(void *buf, ssize_t got, size_t room)
{
    const char *fam = getenv("IPVSCTL_GOLDEN_COUNTERS");
    if (!fam || !*fam || got <= 0) return;
    unsigned family = (unsigned)atoi(fam);
    size_t n = (size_t)got < room ? (size_t)got : room, off = 0;
    unsigned char *b = buf;
    while (off + 20 <= n) {
        uint32_t len; uint16_t type;
        memcpy(&len, b + off, 4); memcpy(&type, b + off + 4, 2);
        if (len < 16 || off + len > n) return;
        unsigned char cmd = b[off + 16];
        if (type == family && (cmd == 1 || cmd == 5)) {                  /* NEW_SERVICE, NEW_DEST */
            size_t a_off = off + 20;
            while (a_off + 4 <= off + len) {
                struct nla a; memcpy(&a, b + a_off, 4);
                if (a.len < 4 || a_off + a.len > off + len) break;
                unsigned t = a.type & 0x3fff;
                if ((cmd == 1 && t == 1) || (cmd == 5 && t == 2))
                    patch_entry(b + a_off + 4, a.len - 4, cmd == 5);
                a_off += (a.len + 3u) & ~3u;
            }
        }
        off += (len + 3u) & ~3u;
    }
}

ssize_t recv(int fd, void *buf, size_t len, int flags)
{
    static ssize_t (*real)(int, void *, size_t, int);
    if (!real) real = dlsym(RTLD_NEXT, "recv");
    ssize_t r = real(fd, buf, len, flags);
    patch(buf, r, len);
    return r;
}

ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *src, socklen_t *alen)
{
    static ssize_t (*real)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
    if (!real) real = dlsym(RTLD_NEXT, "recvfrom");
    ssize_t r = real(fd, buf, len, flags, src, alen);
    patch(buf, r, len);
    return r;
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    static ssize_t (*real)(int, struct msghdr *, int);
    if (!real) real = dlsym(RTLD_NEXT, "recvmsg");
    ssize_t r = real(fd, msg, flags);
    if (msg && msg->msg_iovlen >= 1)
        patch(msg->msg_iov[0].iov_base, r, msg->msg_iov[0].iov_len);
    return r;
}
