"""Atomic snapshots of IPVS lists, through the kernel's older socket options.

Why this exists
---------------
IPVS's netlink dumps are positional: each part of a multi-part dump resumes
at an index (``cb->args[0]``), the kernel never sets NLM_F_DUMP_INTR, and it
adds real servers at the head of a service's list.  A list that changes
between two parts of a dump is read with an entry repeated (an addition
before the cursor) or, worse, with an entry silently skipped (a deletion
before the cursor); nothing in the dump itself shows a skip.

The socket options ipvsadm used before netlink (``IP_VS_SO_GET_SERVICES``
and ``IP_VS_SO_GET_DESTS`` on any AF_INET socket) copy a whole list in one
call while holding ``__ip_vs_mutex``, the lock every change to the table
takes (``do_ip_vs_get_ctl`` in ip_vs_ctl.c): each such read is an atomic
snapshot.  They only speak IPv4 (IPv6 services are left out, and so are
real servers of the other family than their service's), and they carry no
tunnel settings and only 32-bit packet counters, so ipvsctl still lists from
netlink and uses these snapshots only to *check* a dump's membership
(``ipvsctl.netlink.backend``).

Cost: the kernel's copy is cheap (20,000 real servers in about 1 ms under
User-Mode Linux); what costs is fresh memory, each page of which faults
(~50 us under UML).  So the buffer is an anonymous mmap with MAP_POPULATE
(pages mapped by the kernel in one go), kept and reused.  Python's own
``socket.getsockopt`` cannot pass input bytes and caps the buffer at 1 KiB,
hence ctypes, imported only when a snapshot is first needed.

Counting what the kernel filled: it writes entries and nothing else (no
count).  Every slot is marked first with a value no real entry has: a
service slot's protocol 0 (every service has a protocol; fwmark services
TCP) and a real-server slot's negative weight (the kernel refuses a weight
below 0).  Addresses are no sentinel: 0.x.y.z is a valid real server.
"""

from __future__ import annotations

import errno as _errno
import os
import struct
import sys

# linux/ip_vs.h: socket options and structures, 64-bit layout (offsetof from
# the uapi header; the kernel tier reads real snapshots with them).
IP_VS_BASE_CTL = 64 + 1024 + 64
IP_VS_SO_GET_INFO = IP_VS_BASE_CTL + 1
IP_VS_SO_GET_SERVICES = IP_VS_BASE_CTL + 2
IP_VS_SO_GET_DESTS = IP_VS_BASE_CTL + 4
SOL_IP = 0

#: struct ip_vs_getinfo: version, size, num_services.
GETINFO = struct.Struct("=III")
#: struct ip_vs_get_services header (num_services) and ip_vs_service_entry.
GET_SERVICES_HDR = 8
SERVICE_ENTRY = 104
#: A whole ip_vs_service_entry, read for its identity: protocol (u16), addr
#: (be32), port (be16), fwmark (u32) at offsets 0, 4, 8, 12.
SERVICE_KEY = struct.Struct("=H2x4sH2xI88x")
#: Byte of a service entry's ``__u16 protocol`` that is never 0 (TCP, UDP,
#: SCTP; fwmark services carry TCP).
PROTOCOL_LOW_BYTE = 0 if sys.byteorder == "little" else 1
#: struct ip_vs_get_dests header: protocol, addr, port, fwmark, num_dests.
GET_DESTS_HDR = struct.Struct("=H2x4sH2xII4x")
DEST_ENTRY = 96
#: Byte of a dest entry's ``int weight`` (offset 12) that holds its sign.
WEIGHT_SIGN_BYTE = 15 if sys.byteorder == "little" else 12

#: Slots asked for beyond the count the caller expects (a list may grow
#: between the dump and the snapshot; a full buffer is asked for again).
SLACK = 16


class Unavailable(Exception):
    """The socket-option interface cannot be used here (no IPv4 socket, no
    ctypes, an unexpected refusal): callers fall back to a second dump."""


class ServiceGone(Exception):
    """The service no longer exists (ESRCH)."""


class LegacySnapshots:
    """Atomic snapshots of IPv4 service and real-server identities.

    One AF_INET datagram socket in the backend's network namespace (the
    kernel answers for the socket's namespace), opened on first use.
    """

    def __init__(self, netns: str | None = None):
        self.netns = netns
        self._sock = None
        self._call = None
        self._map = None
        self._view: memoryview | None = None
        self._addr = 0

    # -- plumbing -------------------------------------------------------------

    def _open(self) -> None:
        try:
            import ctypes
            import mmap
            import _socket
        except ImportError as e:  # pragma: no cover - a Python built without ctypes
            raise Unavailable(str(e)) from None

        def make():
            return _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC, 0)

        try:
            if self.netns:
                from ipvsctl.netlink.transport import in_netns

                self._sock = in_netns(self.netns, make)
            else:
                self._sock = make()
        except OSError as e:
            raise Unavailable(f"no IPv4 socket: {e}") from None
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.getsockopt
        fn.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
                       ctypes.POINTER(ctypes.c_uint))
        fn.restype = ctypes.c_int
        length = ctypes.c_uint()
        fd = self._sock.fileno()

        def call(opt: int, size: int) -> int:
            length.value = size
            if fn(fd, SOL_IP, opt, self._addr, ctypes.byref(length)) == 0:
                return 0
            return ctypes.get_errno()

        self._call = call
        self._ctypes, self._mmap = ctypes, mmap

    def _buffer(self, size: int) -> memoryview:
        """A buffer of at least ``size`` bytes, its pages already mapped."""
        if self._call is None:
            self._open()
        if self._map is None or len(self._map) < size:
            self._release_map()
            mmap = self._mmap
            flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
            pages = -(-size // mmap.PAGESIZE) * mmap.PAGESIZE
            try:
                self._map = mmap.mmap(-1, max(pages, 1 << 16), flags=flags)
            except OSError as e:
                raise Unavailable(f"no memory for a snapshot of {size} bytes: {e}") from None
            self._cbuf = (self._ctypes.c_char * len(self._map)).from_buffer(self._map)
            self._addr = self._ctypes.addressof(self._cbuf)
            self._view = memoryview(self._map)
        return self._view

    def _release_map(self) -> None:
        if self._map is not None:
            self._view.release()
            del self._cbuf
            self._map.close()
            self._map = self._view = None
            self._addr = 0

    def close(self) -> None:
        self._release_map()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _get(self, opt: int, size: int, what: str) -> None:
        err = self._call(opt, size)
        if err == _errno.ESRCH:
            raise ServiceGone(what)
        if err:
            raise Unavailable(f"{what}: {os.strerror(err)}")

    # -- services -------------------------------------------------------------

    def service_count(self) -> int:
        """How many IPv4 services the namespace has (GET_INFO: the kernel
        counts only those, for this interface)."""
        if self._call is None:
            self._open()
        try:
            raw = self._sock.getsockopt(SOL_IP, IP_VS_SO_GET_INFO, GETINFO.size)
        except OSError as e:
            raise Unavailable(f"IP_VS_SO_GET_INFO: {e}") from None
        return GETINFO.unpack(raw)[2]

    def service_keys(self) -> list[tuple[int, bytes, int, int]]:
        """Every IPv4 service as (protocol, addr, port, fwmark), read
        atomically; addr is 4 bytes, port in host order; a fwmark service
        has (0, b"", 0, fwmark)."""
        want = self.service_count() + SLACK
        while True:
            size = GET_SERVICES_HDR + want * SERVICE_ENTRY
            buf = self._buffer(size)
            struct.pack_into("=I", buf, 0, want)
            entries = buf[GET_SERVICES_HDR:size]
            entries[PROTOCOL_LOW_BYTE::SERVICE_ENTRY] = bytes(want)  # protocol 0: an empty slot
            self._get(IP_VS_SO_GET_SERVICES, size, "IP_VS_SO_GET_SERVICES")
            filled = bytes(entries[PROTOCOL_LOW_BYTE::SERVICE_ENTRY]).find(0)
            if filled >= 0:
                break
            want *= 2  # the list grew past the buffer: ask again
        return [(0, b"", 0, fwmark) if fwmark else (proto, addr, _ntohs(port), 0)
                for proto, addr, port, fwmark in SERVICE_KEY.iter_unpack(entries[:filled * SERVICE_ENTRY])]

    # -- real servers ---------------------------------------------------------

    def dest_planes(self, protocol: int, addr: bytes, port: int, fwmark: int,
                    expect: int = 0) -> tuple[bytes, ...]:
        """The IPv4 real servers of one IPv4 service, read atomically, as six
        byte planes in the kernel's list order: the address's four bytes and
        the port's two (network order), a byte per server each (the layout of
        ``model.DestinationRows``, so a listing is compared in C).  Real
        servers of the other family are not included.  ``ServiceGone`` if
        the service does not exist."""
        want = expect + SLACK
        while True:
            size = GET_DESTS_HDR.size + want * DEST_ENTRY
            buf = self._buffer(size)
            GET_DESTS_HDR.pack_into(buf, 0, protocol, addr, _htons(port), fwmark, want)
            entries = buf[GET_DESTS_HDR.size:size]
            entries[WEIGHT_SIGN_BYTE::DEST_ENTRY] = b"\xff" * want  # a negative weight: empty
            self._get(IP_VS_SO_GET_DESTS, size, "IP_VS_SO_GET_DESTS")
            marks = bytes(entries[WEIGHT_SIGN_BYTE::DEST_ENTRY])
            filled = marks.find(b"\xff")
            if filled >= 0:
                break
            want *= 2
        end = filled * DEST_ENTRY
        return tuple(bytes(entries[i:end:DEST_ENTRY]) for i in range(6))


def _ntohs(port: int) -> int:
    return ((port & 0xFF) << 8 | port >> 8) if sys.byteorder == "little" else port


_htons = _ntohs
