"""A fake IPVS kernel behind a fake netlink socket, for the unit tier.

It answers the way ip_vs_ctl.c and af_netlink.c do where that matters for
reading the table:

* dumps are positional: each part holds the entries from an index on
  (``cb->args[0]``) until the next one does not fit in ``part_bytes``; the
  first part is made when the request is sent (netlink_dump_start), every
  later one when the previous is received (netlink_recvmsg), and the end
  (NLMSG_DONE) comes in a part of its own, after a part with entries;
* the service list is in hash order, a service's real servers newest first
  (list_add at the head);
* a real-server dump of a service that does not exist is empty, not an error.

``between_parts(n)`` (n = 2, 3, ...) runs just before part n of any dump is
made: a test changes the table there, as another process would.
``LegacyFake`` answers the atomic socket-option snapshots from the same
table.  ``FaultyIPVS`` adds faults to what the socket delivers.
"""

from __future__ import annotations

import errno
import struct
from collections import deque

from test_codec import FAMILY, kernel_dest_entry, kernel_service_entry

from ipvsctl.model import AF_INET, Destination, Service, ServiceKey
from ipvsctl.netlink import codec, consistency
from ipvsctl.netlink import constants as C
from ipvsctl.netlink import legacy
from ipvsctl.netlink import transport as T
from ipvsctl.netlink.backend import NetlinkBackend

PORTID = 4242
#: NLMSG_GOODSIZE on Linux 6.1 x86-64: the room of a dump part when the
#: kernel cannot get a bigger one (the other size it uses is BIG_PART).
GOODSIZE = 3776
BIG_PART = 32448


def nlmsg(mtype: int, flags: int, seq: int, body: bytes) -> bytes:
    return codec.NLMSGHDR.pack(16 + len(body), mtype, flags, seq, PORTID) + body


def ack(req_hdr: bytes, err: int) -> bytes:
    _len, _type, _flags, seq, _pid = codec.NLMSGHDR.unpack_from(req_hdr)
    return nlmsg(C.NLMSG_ERROR, C.NLM_F_CAPPED if err == 0 else 0, seq, struct.pack("=i", -err) + req_hdr[:16])


class Table:
    """The IPVS table: services in (hash) order, each with its real servers newest first."""

    def __init__(self):
        self.services: list[Service] = []
        self.dests: dict[ServiceKey, list[Destination]] = {}

    def add_service(self, svc: Service, at: int | None = None) -> None:
        self.services.insert(len(self.services) if at is None else at, svc)
        self.dests[svc.key] = []

    def del_service(self, key: ServiceKey) -> None:
        self.services = [s for s in self.services if s.key != key]
        del self.dests[key]

    def add_dest(self, key: ServiceKey, d: Destination) -> None:
        self.dests[key].insert(0, d)  # list_add_rcu: at the head

    def del_dest(self, key: ServiceKey, addr: str, port: int) -> None:
        self.dests[key] = [d for d in self.dests[key] if (d.addr, d.port) != (addr, port)]

    def find(self, key: ServiceKey) -> Service | None:
        return next((s for s in self.services if s.key == key), None)


class FakeIPVS:
    """The socket ``Transport`` talks to (send / recv_into / getsockopt / close)."""

    def __init__(self, table: Table, part_bytes: int = GOODSIZE, between_parts=None):
        self.table = table
        self.part_bytes = part_bytes
        self.between_parts = between_parts or (lambda n: None)
        self.queue: deque[bytes] = deque()
        self.dump = None  # (seq, entries_at(index) -> list[bytes] | None, index, parts made)
        self.sent: list[bytes] = []
        self.closed = False

    # socket API used by Transport
    def getsockopt(self, level, opt):
        return 1 << 20

    def send(self, buf) -> int:
        buf = bytes(buf)
        self.sent.append(buf)
        for mtype, mflags, seq, payload in codec.iter_messages(buf):
            hdr = codec.NLMSGHDR.pack(16 + len(payload), mtype, mflags, seq, 0)
            if mtype < C.NLMSG_MIN_TYPE:
                if mflags & C.NLM_F_ACK:
                    self.queue.append(ack(hdr, 0))
                continue
            cmd = payload[0]
            if mflags & C.NLM_F_DUMP == C.NLM_F_DUMP:
                self.start_dump(cmd, seq, payload)
                continue
            err, replies = self.doit(cmd, payload)
            for r in replies:
                self.queue.append(nlmsg(FAMILY, 0, seq, r))
            if err or mflags & C.NLM_F_ACK:
                self.queue.append(ack(hdr, err))
        return len(buf)

    def doit(self, cmd: int, payload) -> tuple[int, list[bytes]]:
        if cmd == C.IPVS_CMD_GET_SERVICE:
            svc = self.table.find(request_key(payload))
            if svc is None:
                return errno.ESRCH, []
            return 0, [kernel_service_entry(svc)]
        if cmd == C.IPVS_CMD_NEW_SERVICE:
            _cmd, top = codec._payload_attrs(payload)
            svc = codec.decode_service_attrs(payload, *codec._nested(payload, top, C.IPVS_CMD_ATTR_SERVICE, "s"))
            if self.table.find(svc.key) is not None:
                return errno.EEXIST, []
            self.table.add_service(svc)
            return 0, []
        if cmd == C.IPVS_CMD_NEW_DEST:
            key = request_key(payload)
            if self.table.find(key) is None:
                return errno.ESRCH, []
            d = codec.decode_dest_generic(payload, key.af)
            if any((x.addr, x.port) == (d.addr, d.port) for x in self.table.dests[key]):
                return errno.EEXIST, []
            self.table.add_dest(key, d)
            return 0, []
        if cmd == C.IPVS_CMD_FLUSH:
            for svc in list(self.table.services):
                self.table.del_service(svc.key)
            return 0, []
        if cmd == C.IPVS_CMD_GET_INFO:
            return 0, [bytes([C.IPVS_CMD_SET_INFO, 1, 0, 0]) + codec.nla_u32(C.IPVS_INFO_ATTR_VERSION, 0x010201)
                       + codec.nla_u32(C.IPVS_INFO_ATTR_CONN_TAB_SIZE, 4096)]
        return errno.EOPNOTSUPP, []

    def start_dump(self, cmd: int, seq: int, payload) -> None:
        if cmd == C.IPVS_CMD_GET_SERVICE:
            def entries():
                return [kernel_service_entry(s) for s in self.table.services]
        elif cmd == C.IPVS_CMD_GET_DEST:
            key = request_key(payload)

            def entries():
                if self.table.find(key) is None:
                    return []
                return [kernel_dest_entry(d) for d in self.table.dests[key]]
        else:
            raise AssertionError(f"no dump of command {cmd}")
        self.dump = [seq, entries, 0, 0]
        self.next_part()

    def next_part(self) -> None:
        seq, entries, index, made = self.dump
        if made:
            self.between_parts(made + 1)
        body, count = b"", 0
        for e in entries()[index:]:
            m = nlmsg(FAMILY, C.NLM_F_MULTI, seq, e)
            if len(body) + len(m) > self.part_bytes:
                break
            body += m
            count += 1
        if body:
            self.dump = [seq, entries, index + count, made + 1]
            self.queue.append(body)
        else:
            self.dump = None
            self.queue.append(nlmsg(C.NLMSG_DONE, C.NLM_F_MULTI, seq, struct.pack("=i", 0)))

    def recv_into(self, buf, nbytes=0, flags=0) -> int:
        if not self.queue:
            raise AssertionError("recv on an empty socket would block forever")
        return self.deliver(self.queue.popleft(), buf, flags)

    def deliver(self, data: bytes, buf, flags: int) -> int:
        n = min(len(data), len(buf))
        buf[:n] = data[:n]
        if self.dump is not None and not self.queue:
            self.next_part()  # netlink_recvmsg: the next part once this one is taken
        return len(data) if flags & 0x20 else n  # MSG_TRUNC

    def close(self):
        self.closed = True


class Faults:
    """Faults to inject, shared by every socket of one test (the transport
    replaces a socket whose replies were lost).  Each is (when, what):
    ``when`` is a predicate on the datagram about to be received (and the
    number of datagrams received so far), ``what`` one of the FaultyIPVS
    actions; ``times`` how often it may fire (None: every time)."""

    def __init__(self, *faults):
        self.pending = [list(f) + [1] if len(f) == 2 else list(f) for f in faults]
        self.received = 0
        self.fired: list[str] = []

    def take(self, data: bytes):
        for f in self.pending:
            when, what, times = f
            if times != 0 and when(data, self.received):
                if times is not None:
                    f[2] = times - 1
                self.fired.append(what)
                return what
        return None


def is_dump_part(data: bytes, n: int = 0) -> bool:
    """A datagram of dump entries (not the end)."""
    return codec.NLMSGHDR.unpack_from(data)[1] >= C.NLMSG_MIN_TYPE and (
        codec.NLMSGHDR.unpack_from(data)[2] & C.NLM_F_MULTI)


def is_done(data: bytes, n: int = 0) -> bool:
    return codec.NLMSGHDR.unpack_from(data)[1] == C.NLMSG_DONE


def is_ack(data: bytes, n: int = 0) -> bool:
    return codec.NLMSGHDR.unpack_from(data)[1] == C.NLMSG_ERROR


def nth_part(k: int):
    """The k-th dump part received (1-based), counted over the whole test."""
    seen = [0]

    def when(data, n):
        if is_dump_part(data):
            seen[0] += 1
            return seen[0] == k
        return False
    return when


class FaultyIPVS(FakeIPVS):
    """FakeIPVS whose deliveries go wrong as ``faults`` say.

    Actions: "enobufs" (the datagram is dropped and recv fails with
    ENOBUFS, as after an overrun), "eintr" and "eagain" (recv fails, the
    datagram stays), "trunc" (the datagram is longer than the buffer),
    "drop" (silently lost), "repeat" (delivered twice), "swap" (after the
    next one), "enomem" (a dump part replaced by an error report of the
    dump), "short_error" (an error report with a 4-byte payload), "bad_len"
    (a first message that claims more bytes than the datagram holds).
    An empty socket with a timeout set times out at once.
    """

    def __init__(self, table: Table, faults: Faults, part_bytes: int = GOODSIZE, between_parts=None):
        super().__init__(table, part_bytes, between_parts)
        self.faults = faults
        self.timeout = None

    def settimeout(self, t) -> None:
        self.timeout = t

    def recv_into(self, buf, nbytes=0, flags=0) -> int:
        if not self.queue:
            if self.timeout is not None:
                raise TimeoutError("timed out")
            raise AssertionError("recv on an empty socket would block forever")
        data = self.queue[0]
        what = self.faults.take(data)
        if what in ("eintr", "eagain"):
            raise InterruptedError(4, "EINTR") if what == "eintr" else BlockingIOError(11, "EAGAIN")
        self.queue.popleft()
        self.faults.received += 1
        seq = codec.NLMSGHDR.unpack_from(data)[3]
        if what == "enobufs":
            self.refill()
            raise OSError(errno.ENOBUFS, "No buffer space available")
        if what == "drop":
            self.refill()
            return self.recv_into(buf, nbytes, flags)
        if what == "repeat":
            self.queue.appendleft(data)
        if what == "swap":
            self.refill()
            if self.queue:
                data, self.queue[0] = self.queue[0], data
        if what == "trunc":
            n = self.deliver(data + bytes(len(buf)), buf, flags)
            return n
        if what == "enomem":
            self.dump = None
            data = nlmsg(C.NLMSG_ERROR, 0, seq, struct.pack("=i", -errno.ENOMEM) + data[:16])
        if what == "short_error":
            data = nlmsg(C.NLMSG_ERROR, 0, seq, struct.pack("=i", -errno.EINVAL))
        if what == "bad_len":
            data = struct.pack("=I", len(data) + 64) + data[4:]
        return self.deliver(data, buf, flags)

    def refill(self) -> None:
        if self.dump is not None and not self.queue:
            self.next_part()


def request_key(payload) -> ServiceKey:
    _cmd, top = codec._payload_attrs(payload)
    s, e = codec._nested(payload, top, C.IPVS_CMD_ATTR_SERVICE, "service")
    return codec.decode_service_attrs(payload, s, e).key


class LegacyFake:
    """Atomic snapshots of ``table``, as the socket options give them."""

    def __init__(self, table: Table):
        self.table = table
        self.calls = 0

    def service_count(self) -> int:
        return sum(s.key.af == AF_INET for s in self.table.services)

    def service_keys(self):
        self.calls += 1
        return [consistency.legacy_service_key(s.key) for s in self.table.services if s.key.af == AF_INET]

    def dest_planes(self, protocol, addr, port, fwmark, expect=0):
        self.calls += 1
        svc = next((s for s in self.table.services if s.key.af == AF_INET
                    and consistency.legacy_service_key(s.key) == (protocol, addr, port, fwmark)), None)
        if svc is None:
            raise legacy.ServiceGone("gone")
        keys = [consistency.ipv4_dest_key(d) for d in self.table.dests[svc.key] if d.af == AF_INET]
        joined = b"".join(keys)
        return tuple(joined[i::6] for i in range(6))

    def close(self):
        pass


def backend_over(table: Table, *, part_bytes: int = GOODSIZE, between_parts=None, snapshots: bool = True,
                 faults: Faults | None = None, timeout: float | None = None):
    """(NetlinkBackend, socket, LegacyFake or None) over ``table``; with
    ``faults``, FaultyIPVS sockets (a fresh one each time the transport
    replaces its socket: ``backend.sockets`` lists them)."""
    sockets: list = []

    def new_socket():
        if faults is None:
            sockets.append(FakeIPVS(table, part_bytes, between_parts))
        else:
            sockets.append(FaultyIPVS(table, faults, part_bytes, between_parts))
        return sockets[-1]

    sock = new_socket()
    backend = NetlinkBackend(transport=T.Transport(sock=sock, family=FAMILY, sock_factory=new_socket,
                                                   timeout=timeout))
    backend.sockets = sockets
    fake = LegacyFake(table) if snapshots else None
    backend._legacy = fake
    return backend, sock, fake
