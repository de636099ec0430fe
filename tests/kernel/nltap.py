"""Count the IPVS change requests really sent in a namespace, from outside.

An ``nlmon`` device shows every netlink message of its network namespace to
a packet socket, whoever sends it (an in-process backend, a spawned ipvsctl,
ipvsadm).  The tap keeps the generic-netlink requests addressed to the IPVS
family and counts those that change the table; nothing of ipvsctl's own code
is involved in the counting, so "a second apply sends no change request" is
checked on the wire.
"""

from __future__ import annotations

import ctypes
import socket
import struct
import sys
import threading
from collections import Counter

NLM_F_REQUEST = 0x1
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6  # struct tpacket_stats {tp_packets, tp_drops}, reset by each read
# genetlink commands of IPVS (uapi/linux/ip_vs.h) that change the table
CHANGE_COMMANDS = {1: "new_service", 2: "set_service", 3: "del_service", 5: "new_dest",
                   6: "set_dest", 7: "del_dest", 9: "new_daemon", 10: "del_daemon",
                   12: "set_config", 16: "zero", 17: "flush"}


SO_ATTACH_FILTER = 26


def _attach_request_filter(sock: socket.socket, family: int) -> None:
    """Let through only packets that start with a request to the IPVS family.

    Dump replies also carry the family as their type (without
    NLM_F_REQUEST), and a 10,000-service read makes tens of thousands of
    them: parsed in Python they made the socket drop packets under load.
    Classic BPF loads are big-endian and the netlink header is host order,
    hence the swapped constants (little-endian hosts only)."""
    assert sys.byteorder == "little"
    swap = lambda v: ((v & 0xFF) << 8) | (v >> 8)  # noqa: E731
    prog = [  # (code, jt, jf, k)
        (0x28, 0, 0, 4),                     # ldh [4]: nlmsg_type
        (0x15, 0, 3, swap(family)),          # jeq family, next, drop
        (0x28, 0, 0, 6),                     # ldh [6]: nlmsg_flags
        (0x45, 0, 1, swap(NLM_F_REQUEST)),   # jset REQUEST, accept, drop
        (0x06, 0, 0, 0xFFFFFFFF),            # accept: the whole packet
        (0x06, 0, 0, 0),                     # drop
    ]
    code = b"".join(struct.pack("=HBBI", *insn) for insn in prog)
    buf = ctypes.create_string_buffer(code)
    fprog = struct.pack("=HxxxxxxQ", len(prog), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)  # the kernel copies the program


def ipvs_family_id(ns) -> int:
    from ipvsctl.netlink.backend import NetlinkBackend

    with ns.enter():
        backend = NetlinkBackend()
        try:
            return backend.family
        finally:
            backend.close()


class NetlinkTap:
    """Reads the namespace's netlink traffic in a thread while it is open."""

    def __init__(self, ns, name: str = "nlmon0"):
        self.ns = ns
        self.name = name
        self.family = ipvs_family_id(ns)
        ns.ip(f"link add {name} type nlmon", f"link set {name} up")
        with ns.enter():
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, 33, 256 << 20)  # SO_RCVBUFFORCE: ipvsadm -R's 30,000 sends
        _attach_request_filter(self.sock, self.family)
        self.sock.bind((name, 0))
        self.sock.settimeout(0.05)
        self.requests: Counter = Counter()
        self.lost = False
        self.drops = 0
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buf = bytearray(4 << 20)
        while not self._stop.is_set():
            try:
                n = self.sock.recv_into(buf)
            except TimeoutError:
                self._paused.set()
                continue
            except OSError:
                self.lost = True
                continue
            self._paused.clear()
            self._count(memoryview(buf)[:n])

    def _count(self, pkt) -> None:
        off = 0
        while off + 20 <= len(pkt):
            length, mtype, flags = struct.unpack_from("=IHH", pkt, off)
            if length < 16:
                break
            if mtype == self.family and flags & NLM_F_REQUEST and pkt[off + 16] in CHANGE_COMMANDS:
                self.requests[CHANGE_COMMANDS[pkt[off + 16]]] += 1
            off += (length + 3) & ~3

    def settle(self) -> None:
        """Wait until everything sent so far has been read."""
        self._paused.clear()
        self._paused.wait(5)

    def take(self) -> Counter:
        """The change requests counted since the last take().  Raises if the
        packet socket dropped anything: a count with holes proves nothing."""
        self.settle()
        self.drops += struct.unpack("=II", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))[1]
        if self.drops or self.lost:
            raise RuntimeError(f"the netlink tap lost {self.drops} packets: the count is incomplete")
        got, self.requests = self.requests, Counter()
        return got

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        self.ns.ip(f"link del {self.name}")

    def __enter__(self) -> NetlinkTap:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
