/*
 * nlpattern: time, natively, the system-call patterns that ipvsadm and
 * ipvsctl make, against generic-netlink requests this host's kernel answers.
 *
 * The host kernel has no IPVS, so IPVS requests cannot be timed here.  What
 * can be timed is everything around them: the sockets, the system calls and
 * a generic-netlink round trip of the same shape.  CTRL_CMD_GETFAMILY
 * (the family lookup both tools make anyway) stands in for every IPVS round
 * trip; the kernel's IPVS work itself is left out (both tools pay it).
 * The patterns are the ones `strace -f` shows inside User-Mode Linux
 * (benchmarks/native/uml_inputs.py counts them; docs/performance.md).
 *
 *   nlpattern line N          ipvsadm -R, one line: time(), socket,
 *                             setsockopt x2, getpid, bind, getsockname,
 *                             family lookup (sendmsg + peek/read of the
 *                             reply + peek/read of the ACK), the command
 *                             (sendmsg + peek/read of its answer), close
 *   nlpattern service N       ipvsadm -Ln, one service: the same socket and
 *                             lookup, then a dump answered by one chunk of
 *                             entries and a DONE (peek/read each), close
 *   nlpattern chunk N SIZE P  one more chunk of a big dump: a datagram of
 *                             SIZE bytes sent to our own socket, read the
 *                             way libnl reads (P=1: peek, then read) or the
 *                             way ipvsctl reads (P=0: one recv); the send
 *                             stands in for the kernel filling the chunk
 *   nlpattern rt N            ipvsctl's request on its one socket: send a
 *                             request, read the answer with one recv
 *   nlpattern batch N M SIZE  ipvsctl's window: M requests of SIZE bytes
 *                             (NLMSG_NOOP, no ACK) and a barrier (NOOP with
 *                             ACK) in one send, then read the barrier's ACK
 *   nlpattern cpu N           no system calls: C string parsing, message
 *                             building and line formatting, to measure this
 *                             host's instructions per second (count the
 *                             instructions with callgrind, time it here)
 *
 * Prints one line: mode, iterations, microseconds per iteration (wall,
 * CLOCK_MONOTONIC around the loop).
 * Written for this project; no code from ipvsadm or libnl.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RECV_LEN 16384 /* the receive buffer ipvsadm (libnl) peeks with */

static unsigned char rbuf[1 << 16];
static uint32_t seq_no = 1;

static void die(const char *what)
{
	fprintf(stderr, "nlpattern: %s: %s\n", what, strerror(errno));
	exit(2);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A CTRL_CMD_GETFAMILY request for "nlctrl" (always present). */
static size_t getfamily(unsigned char *buf, uint16_t flags, uint32_t pid)
{
	const char name[] = "nlctrl";
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	struct genlmsghdr *g = (struct genlmsghdr *)(buf + NLMSG_HDRLEN);
	struct nlattr *a = (struct nlattr *)(buf + NLMSG_HDRLEN + GENL_HDRLEN);
	size_t len = NLMSG_HDRLEN + GENL_HDRLEN + NLA_ALIGN(NLA_HDRLEN + sizeof(name));

	memset(buf, 0, len);
	h->nlmsg_len = len;
	h->nlmsg_type = GENL_ID_CTRL;
	h->nlmsg_flags = flags;
	h->nlmsg_seq = seq_no++;
	h->nlmsg_pid = pid;
	g->cmd = CTRL_CMD_GETFAMILY;
	g->version = 1;
	a->nla_type = CTRL_ATTR_FAMILY_NAME;
	a->nla_len = NLA_HDRLEN + sizeof(name);
	memcpy((char *)a + NLA_HDRLEN, name, sizeof(name));
	return len;
}

static void send_msg(int fd, const void *buf, size_t len)
{
	struct sockaddr_nl peer = {.nl_family = AF_NETLINK};
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_name = &peer, .msg_namelen = sizeof(peer), .msg_iov = &iov, .msg_iovlen = 1};

	if (sendmsg(fd, &mh, 0) != (ssize_t)len)
		die("sendmsg");
}

/* One received datagram, read as libnl does: peek its size, then read it. */
static ssize_t recv_peeked(int fd)
{
	struct sockaddr_nl peer;
	struct iovec iov = {.iov_base = rbuf, .iov_len = RECV_LEN};
	struct msghdr mh = {.msg_name = &peer, .msg_namelen = sizeof(peer), .msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n = recvmsg(fd, &mh, MSG_PEEK | MSG_TRUNC);

	if (n < 0)
		die("recvmsg (peek)");
	mh.msg_namelen = sizeof(peer);
	n = recvmsg(fd, &mh, 0);
	if (n < 0)
		die("recvmsg");
	return n;
}

static int open_socket(uint32_t *pid)
{
	static uint32_t counter;
	int size = 32768;
	struct sockaddr_nl local = {.nl_family = AF_NETLINK};
	socklen_t alen = sizeof(local);
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);

	if (fd < 0)
		die("socket");
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)) ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)))
		die("setsockopt");
	/* a port id of our own, as libnl picks one: pid plus a counter */
	local.nl_pid = ((uint32_t)getpid() & 0x3fffff) | ((++counter & 0x3ff) << 22);
	if (bind(fd, (struct sockaddr *)&local, sizeof(local)))
		die("bind");
	if (getsockname(fd, (struct sockaddr *)&local, &alen))
		die("getsockname");
	*pid = local.nl_pid;
	return fd;
}

/* socket .. family lookup .. one more exchange of `answers` datagrams .. close */
static void one_unit(int ack_on_second)
{
	unsigned char req[64];
	uint32_t pid;
	size_t len;
	int fd;

	(void)time(NULL);
	fd = open_socket(&pid);
	len = getfamily(req, NLM_F_REQUEST | NLM_F_ACK, pid);
	send_msg(fd, req, len);
	recv_peeked(fd); /* the family */
	recv_peeked(fd); /* its ACK */
	len = getfamily(req, NLM_F_REQUEST | (ack_on_second ? NLM_F_ACK : 0), pid);
	send_msg(fd, req, len);
	recv_peeked(fd); /* the answer (-R: the kernel's ACK; -Ln: a chunk of entries) */
	if (ack_on_second)
		recv_peeked(fd); /* -Ln: the dump's DONE */
	close(fd);
}

static void chunk_once(int fd, uint32_t pid, const unsigned char *buf, size_t size, int peek)
{
	struct sockaddr_nl self = {.nl_family = AF_NETLINK, .nl_pid = pid};
	ssize_t n;

	if (sendto(fd, buf, size, 0, (struct sockaddr *)&self, sizeof(self)) != (ssize_t)size)
		die("sendto (self)");
	n = peek ? recv_peeked(fd) : recv(fd, rbuf, sizeof(rbuf), MSG_TRUNC);
	if (n != (ssize_t)size)
		die("short chunk");
}

static void rt_once(int fd, uint32_t pid)
{
	unsigned char req[64];
	size_t len = getfamily(req, NLM_F_REQUEST, pid);

	if (send(fd, req, len, 0) != (ssize_t)len)
		die("send");
	if (recv(fd, rbuf, sizeof(rbuf), MSG_TRUNC) <= 0)
		die("recv");
}

static void batch_once(int fd, unsigned char *buf, size_t msgs, size_t size)
{
	size_t off = 0, i;
	ssize_t n;

	for (i = 0; i <= msgs; i++, off += size) {
		struct nlmsghdr *h = (struct nlmsghdr *)(buf + off);
		h->nlmsg_len = i < msgs ? size : NLMSG_HDRLEN;
		h->nlmsg_type = NLMSG_NOOP;
		h->nlmsg_flags = NLM_F_REQUEST | (i < msgs ? 0 : NLM_F_ACK);
		h->nlmsg_seq = seq_no++;
		h->nlmsg_pid = 0;
	}
	off = msgs * size + NLMSG_HDRLEN;
	if (send(fd, buf, off, 0) != (ssize_t)off)
		die("send");
	n = recv(fd, rbuf, sizeof(rbuf), 0); /* the barrier's ACK (no failures) */
	if (n < 0)
		die("recv");
}

/* ---- cpu: user-space work of the kind a command-line tool does per line */

static const char *lines[] = {
	"-A -t 10.16.0.1:80 -s rr",
	"-a -t 10.16.0.1:80 -r 10.32.0.1:8000 -m -w 1",
	"-a -t 10.16.0.2:443 -r 10.32.0.11:443 -g -w 3",
	"-A -t 10.16.0.4:80 -s wlc -p 300",
};

struct attr {
	struct attr *next;
	uint16_t type, len;
	unsigned char data[];
};

static unsigned long cpu_once(unsigned long i, char *out, size_t outlen)
{
	static const struct option opts[] = {
		{"add-service", 0, 0, 'A'}, {"add-server", 0, 0, 'a'}, {"tcp-service", 1, 0, 't'},
		{"real-server", 1, 0, 'r'}, {"scheduler", 1, 0, 's'}, {"weight", 1, 0, 'w'},
		{"masquerading", 0, 0, 'm'}, {"gatewaying", 0, 0, 'g'}, {"persistent", 1, 0, 'p'},
		{0, 0, 0, 0}};
	char line[128], *argv[32], *save = NULL, *tok, *colon;
	int argc = 0, c;
	unsigned long sum = 0;
	struct in_addr addr;
	struct attr *head = NULL, *a;
	unsigned char *msg;
	size_t off = 0;

	snprintf(line, sizeof(line), "%s", lines[i & 3]);
	argv[argc++] = "x";
	for (tok = strtok_r(line, " \t\n", &save); tok && argc < 31; tok = strtok_r(NULL, " \t\n", &save))
		argv[argc++] = strdup(tok);
	argv[argc] = NULL;
	optind = 0;
	while ((c = getopt_long(argc, argv, "Aat:r:s:w:mgp:", opts, NULL)) != -1) {
		size_t dlen = 4;
		if (optarg) {
			colon = strchr(optarg, ':');
			if (colon && inet_pton(AF_INET, strndupa(optarg, colon - optarg), &addr) == 1)
				sum += addr.s_addr + strtoul(colon + 1, NULL, 10);
			else
				sum += strtoul(optarg, NULL, 10) + strlen(optarg);
			dlen = strlen(optarg) + 1;
		}
		a = malloc(sizeof(*a) + dlen);
		a->type = c;
		a->len = dlen;
		memset(a->data, c, dlen);
		a->next = head;
		head = a;
	}
	msg = malloc(512);
	for (a = head; a; a = head) {
		if (off + 4 + a->len <= 512) {
			memcpy(msg + off, &a->type, 2);
			memcpy(msg + off + 2, &a->len, 2);
			memcpy(msg + off + 4, a->data, a->len);
			off += (4 + a->len + 3) & ~3u;
		}
		head = a->next;
		free(a);
	}
	sum += msg[off / 2];
	free(msg);
	for (c = 1; c < argc; c++)
		free(argv[c]);
	addr.s_addr = htonl(0x0a200000u + (uint32_t)i);
	inet_ntop(AF_INET, &addr, line, sizeof(line));
	sum += snprintf(out, outlen, "  -> %s:%-5u %-7s %-6lu %-10lu %-10lu\n", line,
			(unsigned)(8000 + (i & 7)), (i & 1) ? "Masq" : "Route", i % 5, i & 3, 0UL);
	return sum;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	long n = argc > 2 ? atol(argv[2]) : 0, i;
	double t0, t;

	if (n <= 0) {
		fprintf(stderr, "usage: nlpattern line|service|chunk|rt|batch|cpu N [args]\n");
		return 2;
	}
	if (!strcmp(mode, "line") || !strcmp(mode, "service")) {
		int dump = !strcmp(mode, "service");
		one_unit(dump); /* warm up */
		t0 = now();
		for (i = 0; i < n; i++)
			one_unit(dump);
		t = now() - t0;
		printf("mode=%s iterations=%ld us_per_iteration=%.3f\n", mode, n, t / n * 1e6);
	} else if (!strcmp(mode, "chunk")) {
		size_t size = argc > 3 ? NLMSG_ALIGN(strtoul(argv[3], NULL, 10)) : RECV_LEN;
		int peek = argc > 4 ? atoi(argv[4]) : 1;
		unsigned char *buf = calloc(1, size + NLMSG_HDRLEN);
		struct nlmsghdr *h = (struct nlmsghdr *)buf;
		int big = 4 << 20;
		uint32_t pid;
		int fd = open_socket(&pid);

		if (!buf || size < NLMSG_HDRLEN || size > (peek ? RECV_LEN : sizeof(rbuf)))
			die("chunk size");
		setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
		h->nlmsg_len = size;
		h->nlmsg_type = NLMSG_MIN_TYPE;
		chunk_once(fd, pid, buf, size, peek); /* warm up */
		t0 = now();
		for (i = 0; i < n; i++)
			chunk_once(fd, pid, buf, size, peek);
		t = now() - t0;
		close(fd);
		printf("mode=chunk iterations=%ld us_per_iteration=%.3f size=%zu peek=%d\n", n, t / n * 1e6, size, peek);
	} else if (!strcmp(mode, "rt")) {
		uint32_t pid;
		int fd = open_socket(&pid);

		rt_once(fd, pid); /* warm up */
		t0 = now();
		for (i = 0; i < n; i++)
			rt_once(fd, pid);
		t = now() - t0;
		close(fd);
		printf("mode=rt iterations=%ld us_per_iteration=%.3f\n", n, t / n * 1e6);
	} else if (!strcmp(mode, "batch")) {
		size_t msgs = argc > 3 ? strtoul(argv[3], NULL, 10) : 1024;
		size_t size = argc > 4 ? NLMSG_ALIGN(strtoul(argv[4], NULL, 10)) : 128;
		int big = 8 << 20;
		unsigned char *buf;
		int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
		struct sockaddr_nl local = {.nl_family = AF_NETLINK};

		if (size < NLMSG_HDRLEN)
			size = NLMSG_HDRLEN;
		if (fd < 0 || bind(fd, (struct sockaddr *)&local, sizeof(local)))
			die("socket");
		/* as ipvsctl's transport: large buffers (forced when root) */
		if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)))
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)))
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
		buf = calloc(msgs + 1, size);
		if (!buf)
			die("calloc");
		batch_once(fd, buf, msgs, size);
		t0 = now();
		for (i = 0; i < n; i++)
			batch_once(fd, buf, msgs, size);
		t = now() - t0;
		printf("mode=batch iterations=%ld us_per_iteration=%.3f messages=%zu size=%zu\n",
		       n, t / n * 1e6, msgs, size);
	} else if (!strcmp(mode, "cpu")) {
		char out[160];
		unsigned long sum = 0;
		t0 = now();
		for (i = 0; i < n; i++)
			sum += cpu_once(i, out, sizeof(out));
		t = now() - t0;
		printf("mode=cpu iterations=%ld us_per_iteration=%.4f checksum=%lu\n", n, t / n * 1e6, sum);
	} else {
		fprintf(stderr, "nlpattern: unknown mode %s\n", mode);
		return 2;
	}
	return 0;
}
