"""A fake IPVS, for the unit tier, at the two depths its tests need.

* ``MemoryIPVS``: an IPVS table in memory, as a Backend, for the layers
  above the kernel (desired state).  It answers change requests with the
  errno values the real kernel gives (each proven by the kernel tier:
  tests/kernel/test_netlink_backend.py and tests/kernel/test_apply*.py):
  EEXIST for an add of what exists, ESRCH for a service that does not,
  ENOENT for a missing real server or an unknown scheduler.  Edits replace
  the whole entry, as ip_vs_edit_service/_dest do.
* ``KernelSocket`` over a ``Table``: the kernel behind a netlink socket,
  for ipvsctl's own NetlinkBackend and Transport (``backend_over``).  It
  answers the way ip_vs_ctl.c and af_netlink.c do where that matters for
  reading the table: dumps are positional (each part holds the entries from
  an index on, ``cb->args[0]``, until the next one does not fit in
  ``part_bytes``; the first part is made when the request is sent, every
  later one when the previous is received, and the end, NLMSG_DONE, comes
  in a part of its own); the service list is in hash order, a service's
  real servers newest first (list_add at the head); a real-server dump of a
  service that does not exist is empty, not an error.  ``between_parts(n)``
  (n = 2, 3, ...) runs just before part n of any dump is made: a test
  changes the table there, as another process would.  ``LegacyFake``
  answers the atomic socket-option snapshots from the same table;
  ``FaultySocket`` adds faults to what the socket delivers.
* ``ScriptedKernel``: a socket whose kernel answers each request with a
  handler the test gives, for the transport's own tests.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections import deque

from ipvsctl import backend as b
from ipvsctl import model as m
from ipvsctl import vocab
from ipvsctl.model import AF_INET, Destination, Service, ServiceKey
from ipvsctl.netlink import consistency, decode, legacy, wire
from ipvsctl.netlink import constants as C
from ipvsctl.netlink import transport as T
from ipvsctl.netlink.dumps import DumpReader
from ipvsctl.netlink.backend import NetlinkBackend
from support.kernel_entries import FAMILY, kernel_dest_entry, kernel_service_entry

#: The schedulers every kernel has.
SCHEDULERS = {s for s in vocab.SCHEDULERS if s not in vocab.SCHEDULERS_SINCE}


# --------------------------------------------------------------------------
# A Backend
# --------------------------------------------------------------------------


class MemoryIPVS:
    """An IPVS table in memory, as a Backend: changes answered with the
    kernel's errnos (see the module), reads with the table."""

    def __init__(self, table=(), schedulers=SCHEDULERS):
        self.services: dict = {}
        self.dests: dict = {}
        self.schedulers = set(schedulers)
        self.sent: list[b.Request] = []  # every change request, in order
        self.batches: list[int] = []  # size of each apply_many call
        self.before_batch = None  # callable(self, requests), e.g. to send a signal
        self.conns: dict = {}  # (key, ident) -> (active, inactive, persist)
        for svc, dests in table:
            self.services[svc.key] = svc
            self.dests[svc.key] = {(d.af, d.addr, d.port): d for d in dests}

    # --- reads ---------------------------------------------------------
    def info(self):
        return m.Info(0x010201, 4096)

    def close(self):
        pass

    def table(self, counters=True):
        return [(svc, [self._with_conns(k, d) for d in self.dests[k].values()])
                for k, svc in self.services.items()]

    def service(self, key):
        if key not in self.services:
            raise b.KernelError(errno.ESRCH, b.OP_GET_SERVICE)
        return self.services[key]

    def destinations(self, key):
        if key not in self.services:
            raise b.KernelError(errno.ESRCH, b.OP_GET_DESTS)
        return [self._with_conns(key, d) for d in self.dests[key].values()]

    def _with_conns(self, key, d):
        a, i, p = self.conns.get((key, (d.af, d.addr, d.port)), (0, 0, 0))
        return d.replace(active_conns=a, inact_conns=i, persist_conns=p)

    # --- changes -------------------------------------------------------
    def apply(self, req):
        err = self._one(req)
        self.sent.append(req)
        if err:
            raise b.KernelError(err, req.op)

    def apply_many(self, requests):
        reqs = list(requests)
        if self.before_batch is not None:
            self.before_batch(self, reqs)
        self.batches.append(len(reqs))
        errors = {}
        for i, req in enumerate(reqs):
            self.sent.append(req)
            err = self._one(req)
            if err:
                errors[i] = b.KernelError(err, req.op)
        return errors

    def _one(self, req) -> int:
        op = req.op
        if op == b.OP_FLUSH:
            self.services.clear()
            self.dests.clear()
            return 0
        if op in (b.OP_ADD_SERVICE, b.OP_EDIT_SERVICE):
            svc = req.service
            exists = svc.key in self.services
            if op == b.OP_ADD_SERVICE and exists:
                return errno.EEXIST
            if op == b.OP_EDIT_SERVICE and not exists:
                return errno.ESRCH
            if svc.scheduler not in self.schedulers:
                return errno.ENOENT
            self.services[svc.key] = m.Service(svc.key, svc.scheduler, svc.flags, svc.timeout,
                                               svc.netmask, svc.pe_name)
            self.dests.setdefault(svc.key, {})
            return 0
        key = req.service.key if isinstance(req.service, m.Service) else req.service
        if op == b.OP_DEL_SERVICE:
            if key not in self.services:
                return errno.ESRCH
            del self.services[key]
            del self.dests[key]
            return 0
        if key not in self.services:
            return errno.ESRCH
        d = req.dest
        ident = (d.af, d.addr, d.port)
        per = self.dests[key]
        if op == b.OP_ADD_DEST:
            if ident in per:
                return errno.EEXIST
            per[ident] = _plain(d)
            return 0
        if ident not in per:
            return errno.ENOENT
        if op == b.OP_EDIT_DEST:
            per[ident] = _plain(d)
        else:
            del per[ident]
        return 0


def _plain(d: m.Destination) -> m.Destination:
    return m.Destination(d.af, d.addr, d.port, d.fwd, d.weight, d.u_threshold, d.l_threshold,
                         d.tun_type, d.tun_port, d.tun_flags)


# --------------------------------------------------------------------------
# A kernel behind a netlink socket
# --------------------------------------------------------------------------


PORTID = 4242
#: NLMSG_GOODSIZE on Linux 6.1 x86-64: the room of a dump part when the
#: kernel cannot get a bigger one (the other size it uses is BIG_PART).
GOODSIZE = 3776
BIG_PART = 32448


def nlmsg(mtype: int, flags: int, seq: int, body: bytes) -> bytes:
    return wire.NLMSGHDR.pack(16 + len(body), mtype, flags, seq, PORTID) + body


def ack(req_hdr: bytes, err: int) -> bytes:
    _len, _type, _flags, seq, _pid = wire.NLMSGHDR.unpack_from(req_hdr)
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


class KernelSocket:
    """A fake IPVS kernel behind the socket ``Transport`` talks to (send /
    recv_into / getsockopt / close), over a ``Table``."""

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
        for mtype, mflags, seq, payload in wire.iter_messages(buf):
            hdr = wire.NLMSGHDR.pack(16 + len(payload), mtype, mflags, seq, 0)
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
            _cmd, top = wire.payload_attrs(payload)
            svc = decode.decode_service_attrs(payload, *wire.nested(top, C.IPVS_CMD_ATTR_SERVICE, "s"))
            if self.table.find(svc.key) is not None:
                return errno.EEXIST, []
            self.table.add_service(svc)
            return 0, []
        if cmd == C.IPVS_CMD_NEW_DEST:
            key = request_key(payload)
            if self.table.find(key) is None:
                return errno.ESRCH, []
            d = decode.decode_dest(payload, key.af)
            if any((x.addr, x.port) == (d.addr, d.port) for x in self.table.dests[key]):
                return errno.EEXIST, []
            self.table.add_dest(key, d)
            return 0, []
        if cmd == C.IPVS_CMD_FLUSH:
            for svc in list(self.table.services):
                self.table.del_service(svc.key)
            return 0, []
        if cmd == C.IPVS_CMD_GET_INFO:
            return 0, [bytes([C.IPVS_CMD_SET_INFO, 1, 0, 0]) + wire.nla_u32(C.IPVS_INFO_ATTR_VERSION, 0x010201)
                       + wire.nla_u32(C.IPVS_INFO_ATTR_CONN_TAB_SIZE, 4096)]
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
    return wire.NLMSGHDR.unpack_from(data)[1] >= C.NLMSG_MIN_TYPE and (
        wire.NLMSGHDR.unpack_from(data)[2] & C.NLM_F_MULTI)


def is_done(data: bytes, n: int = 0) -> bool:
    return wire.NLMSGHDR.unpack_from(data)[1] == C.NLMSG_DONE


def is_ack(data: bytes, n: int = 0) -> bool:
    return wire.NLMSGHDR.unpack_from(data)[1] == C.NLMSG_ERROR


def nth_part(k: int):
    """The k-th dump part received (1-based), counted over the whole test."""
    seen = [0]

    def when(data, n):
        if is_dump_part(data):
            seen[0] += 1
            return seen[0] == k
        return False
    return when


class FaultySocket(KernelSocket):
    """A KernelSocket whose deliveries go wrong as ``faults`` say.

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
        seq = wire.NLMSGHDR.unpack_from(data)[3]
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
    _cmd, top = wire.payload_attrs(payload)
    s, e = wire.nested(top, C.IPVS_CMD_ATTR_SERVICE, "service")
    return decode.decode_service_attrs(payload, s, e).key


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
    ``faults``, FaultySocket sockets (a fresh one each time the transport
    replaces its socket: ``backend.sockets`` lists them)."""
    sockets: list = []

    def new_socket():
        if faults is None:
            sockets.append(KernelSocket(table, part_bytes, between_parts))
        else:
            sockets.append(FaultySocket(table, faults, part_bytes, between_parts))
        return sockets[-1]

    sock = new_socket()
    backend = NetlinkBackend(transport=T.Transport(sock=sock, family=FAMILY, sock_factory=new_socket,
                                                   timeout=timeout))
    backend.sockets = sockets
    fake = LegacyFake(table) if snapshots else None
    backend._legacy = fake
    return backend, sock, fake


# --------------------------------------------------------------------------
# A scripted kernel, for the transport's tests
# --------------------------------------------------------------------------


def error_report(req_hdr: bytes, err: int) -> bytes:
    _len, _type, _flags, seq, _pid = wire.NLMSGHDR.unpack_from(req_hdr)
    return nlmsg(C.NLMSG_ERROR, C.NLM_F_CAPPED if err == 0 else 0, seq, struct.pack("=i", err) + req_hdr[:16])


class ScriptedKernel:
    """A socket whose 'kernel' answers each request with ``handler``.

    ``handler(cmd, msg_bytes) -> (errno, [reply payloads])``.
    """

    def __init__(self, handler=None, rcvbuf: int = 1 << 24, sndbuf: int = 1 << 23):
        self.handler = handler or (lambda cmd, msg: (0, []))
        self.queue: deque[bytes] = deque()
        self.sent: list[bytes] = []  # every send, as given
        self.rcvbuf, self.sndbuf = rcvbuf, sndbuf
        self.overrun = False
        self.closed = False

    # socket API used by Transport
    def getsockopt(self, level, opt):
        return {C.SO_RCVBUF: self.rcvbuf, C.SO_SNDBUF: self.sndbuf}[opt]

    def send(self, buf) -> int:
        buf = bytes(buf)
        assert len(buf) <= self.sndbuf - 32, "netlink_sendmsg would refuse this (EMSGSIZE)"
        self.sent.append(buf)
        for mtype, mflags, seq, payload in wire.iter_messages(buf):
            assert mflags & C.NLM_F_REQUEST
            hdr = wire.NLMSGHDR.pack(16 + len(payload), mtype, mflags, seq, 0)
            msg = hdr + bytes(payload)
            if mtype < C.NLMSG_MIN_TYPE:  # control message: acked, never handled
                if mflags & C.NLM_F_ACK:
                    self.queue.append(error_report(hdr, 0))
                continue
            if mflags & C.NLM_F_DUMP == C.NLM_F_DUMP:
                self.dump_reply(seq, msg)
                continue
            err, replies = self.handler(payload[0], msg)
            for r in replies:
                self.queue.append(nlmsg(FAMILY, 0, seq, r))
            if err == errno.EINTR:
                continue  # netlink_rcv_skb: "goto skip", no ACK, no report
            if err or mflags & C.NLM_F_ACK:
                self.queue.append(error_report(hdr, -err))
        return len(buf)

    def dump_reply(self, seq: int, msg: bytes) -> None:
        err, entries, intr = self.handler("dump", msg)
        if err:
            self.queue.append(error_report(msg[:16], -err))
            return
        flags = C.NLM_F_MULTI | (C.NLM_F_DUMP_INTR if intr else 0)
        # Two entries per datagram, like a kernel filling an skb.
        for i in range(0, len(entries), 2):
            self.queue.append(b"".join(nlmsg(FAMILY, flags, seq, e) for e in entries[i : i + 2]))
        self.queue.append(nlmsg(C.NLMSG_DONE, flags, seq, struct.pack("=i", 0)))

    def recv_into(self, buf, nbytes=0, flags=0) -> int:
        if self.overrun:
            self.overrun = False
            raise OSError(errno.ENOBUFS, "No buffer space available")
        if not self.queue:
            raise AssertionError("recv on an empty socket would block forever")
        data = self.queue.popleft()
        n = min(len(data), len(buf))
        buf[:n] = data[:n]
        return len(data) if flags & socket.MSG_TRUNC else n

    def close(self):
        self.closed = True


def transport(kernel: ScriptedKernel, **kw) -> T.Transport:
    return T.Transport(sock=kernel, family=FAMILY, **kw)


def dumps(kernel: ScriptedKernel, **kw) -> DumpReader:
    """A reader of dumps over ``transport(kernel, **kw)``."""
    return DumpReader(transport(kernel, **kw))
