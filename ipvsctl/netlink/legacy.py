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

Cost, measured under User-Mode Linux, where it is highest
-----------------------------------------------------------
* The kernel's copy is cheap: 20,000 real servers in about 1 ms.
* Fresh memory is not: under UML each page a process first touches costs a
  fault of the host, ~40 us; 20,000 entries are 470 pages, and reading them
  out of a fresh mapping took 20 to 55 ms.  The kernel itself writes the
  snapshot without such faults, and copies it out again without them.  So a
  big snapshot goes to a mapping of a memfd, and is read back through
  ``os.preadv`` into one small buffer, a chunk at a time: 7 to 15 ms.  Small
  snapshots (most services) use one small mapping, touched once.
* ``socket.getsockopt`` cannot pass input bytes and caps its buffer at
  1 KiB, so the call goes through libc.  ctypes' package costs ~12 ms to
  import there; the few pieces of its C core used here cost ~4 ms.

Counting what the kernel filled: it writes entries and nothing else, no
count.  An empty slot is told by a field every real entry has non-zero: a
service's protocol (TCP, UDP or SCTP; fwmark services carry TCP) and a real
server's ``conn_flags``, in which the kernel always sets
IP_VS_CONN_F_INACTIVE (``__ip_vs_update_dest``).  Addresses are no
sentinel: 0.x.y.z is a valid real server.
"""

from __future__ import annotations

import errno as _errno
import os
import struct
import sys

from ipvsctl.netlink.consistency import ServiceGone, SnapshotUnavailable as Unavailable

# linux/ip_vs.h: socket options and structures, 64-bit layout (offsetof from
# the uapi header; the kernel tier reads real snapshots with them).
IP_VS_BASE_CTL = 64 + 1024 + 64
IP_VS_SO_GET_INFO = IP_VS_BASE_CTL + 1
IP_VS_SO_GET_SERVICES = IP_VS_BASE_CTL + 2
IP_VS_SO_GET_DESTS = IP_VS_BASE_CTL + 4
SOL_IP = 0
IP_VS_CONN_F_INACTIVE = 0x0100

#: struct ip_vs_getinfo: version, size, num_services.
GETINFO = struct.Struct("=III")
#: struct ip_vs_get_services header (num_services) and ip_vs_service_entry.
GET_SERVICES_HDR = 8
SERVICE_ENTRY = 104
#: A whole ip_vs_service_entry, read for its identity: protocol (u16), addr
#: (be32), port (be16), fwmark (u32) at offsets 0, 4, 8, 12.
SERVICE_KEY = struct.Struct("=H2x4sH2xI88x")
#: struct ip_vs_get_dests header: protocol, addr, port, fwmark, num_dests.
GET_DESTS_HDR = struct.Struct("=H2x4sH2xII4x")
DEST_ENTRY = 96

_LITTLE = sys.byteorder == "little"
#: Byte of a service entry's ``__u16 protocol`` that is never 0.
PROTOCOL_BYTE = 0 if _LITTLE else 1
#: Byte of a dest entry's ``conn_flags`` (u32 at offset 8) holding
#: IP_VS_CONN_F_INACTIVE, never 0.
INACTIVE_BYTE = 8 + (1 if _LITTLE else 2)

#: Slots asked for beyond the count the caller expects (a list may grow
#: between the dump and the snapshot; a full buffer is asked for again).
SLACK = 16
#: Snapshots up to this size reuse one buffer; bigger ones get a fresh one.
WARM_BYTES = 64 << 10


# sys/mman.h (the same numbers on every Linux architecture)
PROT_READ, PROT_WRITE, MAP_SHARED = 1, 2, 0x01
MAP_FAILED = (1 << 64) - 1  # (void *) -1 on the 64-bit systems this module serves


class _Libc:
    """libc's getsockopt, mmap and munmap, and views of raw memory, through
    ctypes' C core alone (``_ctypes``; the ctypes package if that fails).
    mmap through libc, not Python's mmap module: one import less, and the
    kernel alone touches a big snapshot's pages."""

    def __init__(self):
        try:
            import _ctypes as core

            def simple(code: str):
                return type("c_" + code, (core._SimpleCData,), {"_type_": code})

            c_char, c_int, c_uint, c_void_p, c_size_t, c_long = map(simple, "ciIPLl")

            def function(name: str, restype, argtypes):
                cls = type("F", (core.CFuncPtr,), {
                    "_flags_": core.FUNCFLAG_CDECL | core.FUNCFLAG_USE_ERRNO, "_restype_": restype})
                fn = cls(core.dlsym(core.dlopen(None, 0), name))
                fn.argtypes = argtypes
                return fn

            self.get_errno, self.addressof = core.get_errno, core.addressof
        except Exception:  # pragma: no cover - another Python's private core
            import ctypes as core

            c_char, c_int, c_uint, c_void_p, c_size_t, c_long = (
                core.c_char, core.c_int, core.c_uint, core.c_void_p, core.c_size_t, core.c_long)
            libc = core.CDLL(None, use_errno=True)

            def function(name: str, restype, argtypes):
                fn = getattr(libc, name)
                fn.restype, fn.argtypes = restype, argtypes
                return fn

            self.get_errno, self.addressof = core.get_errno, core.addressof
        self.c_char = c_char
        self._getsockopt = function("getsockopt", c_int, (c_int, c_int, c_int, c_void_p, c_void_p))
        self._mmap = function("mmap", c_void_p, (c_void_p, c_size_t, c_int, c_int, c_int, c_long))
        self._munmap = function("munmap", c_int, (c_void_p, c_size_t))
        self.length = c_uint()
        self.length_at = self.addressof(self.length)

    def getsockopt(self, fd: int, opt: int, address: int, size: int) -> int:
        """0, or the errno of getsockopt(fd, SOL_IP, opt, address, &size)."""
        self.length.value = size
        return 0 if self._getsockopt(fd, SOL_IP, opt, address, self.length_at) == 0 else self.get_errno()

    def mmap(self, size: int, flags: int, fd: int = -1) -> int:
        address = self._mmap(None, size, PROT_READ | PROT_WRITE, flags, fd, 0)
        if address is None or address == MAP_FAILED:
            err = self.get_errno()
            raise OSError(err, os.strerror(err))
        return address

    def munmap(self, address: int, size: int) -> None:
        self._munmap(address, size)

    def view(self, address: int, size: int) -> memoryview:
        """The memory at ``address`` as a writable memoryview of bytes."""
        return memoryview((self.c_char * size).from_address(address)).cast("B")


class _Buffer:
    """Memory the kernel writes a snapshot into, and the way to read it back:
    a memfd of ``size`` bytes, mapped for the kernel to write into.  ``warm``
    (one small buffer, reused): read in place.  Otherwise read back with
    preadv (see the module's comment on cost)."""

    def __init__(self, size: int, libc: _Libc, warm: bool):
        self.libc, self.size, self.fd, self.address, self.view = libc, size, -1, 0, None
        try:
            self.fd = os.memfd_create("ipvsctl-snapshot", os.MFD_CLOEXEC)
            os.ftruncate(self.fd, size)
            self.address = libc.mmap(size, MAP_SHARED, self.fd)
            if warm:
                self.view = libc.view(self.address, size)
        except OSError as e:
            self.close()
            raise Unavailable(f"no memory for a snapshot of {size} bytes: {e}") from None

    def write(self, data: bytes) -> None:
        """``data`` at the start of the buffer."""
        if self.view is not None:
            self.view[:len(data)] = data
        else:
            os.pwrite(self.fd, data, 0)  # the kernel writes it: no page touched here

    def clear(self, start: int, stop: int, step: int) -> None:
        """Zero one byte every ``step`` in [start, stop) (of the warm buffer)."""
        self.view[start:stop:step] = bytes(len(range(start, stop, step)))

    def chunks(self, start: int, stop: int, entry: int):
        """The bytes [start, stop) as memoryviews of whole entries."""
        if self.view is not None:
            yield self.view[start:stop]
            return
        step = READ_CHUNK // entry * entry
        into = _read_buffer(step)
        while start < stop:
            n = os.preadv(self.fd, [into], start)
            n -= n % entry
            if n <= 0:  # pragma: no cover - the file is as long as the mapping
                raise Unavailable("short read of a snapshot")
            yield memoryview(into)[:min(n, stop - start)]
            start += n

    def close(self) -> None:
        if self.view is not None:
            self.view.release()
            self.view = None
        if self.address:
            self.libc.munmap(self.address, self.size)
            self.address = 0
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


#: Chunk of a big snapshot read back at a time, into one reused buffer.
READ_CHUNK = 64 << 10
_READ_BUFFERS: dict[int, bytearray] = {}


def _read_buffer(size: int) -> bytearray:
    buf = _READ_BUFFERS.get(size)
    if buf is None:
        buf = _READ_BUFFERS[size] = bytearray(size)
    return buf


class LegacySnapshots:
    """Atomic snapshots of IPv4 service and real-server identities.

    One AF_INET datagram socket in the backend's network namespace (the
    kernel answers for the socket's namespace), opened on first use.
    """

    def __init__(self, netns: str | None = None):
        self.netns = netns
        self._sock = None
        self._libc: _Libc | None = None
        self._warm: _Buffer | None = None

    def _open(self) -> None:
        import _socket

        if struct.calcsize("P") != 8 or not hasattr(os, "memfd_create"):
            # The structures' layout is the 64-bit one; memfd needs Linux 3.17.
            raise Unavailable("no socket-option snapshots on this system")

        def make():
            return _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC, 0)

        try:
            if self.netns is not None:
                from ipvsctl.netlink.netns import in_netns

                self._sock = in_netns(self.netns, make)
            else:
                self._sock = make()
        except OSError as e:
            raise Unavailable(f"no IPv4 socket: {e}") from None
        try:
            self._libc = _Libc()
        except Exception as e:  # pragma: no cover - a Python without ctypes
            raise Unavailable(str(e)) from None

    def close(self) -> None:
        if self._warm is not None:
            self._warm.close()
            self._warm = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _snapshot(self, opt: int, header: bytes, slots: int, entry: int, marker: int, what: str,
                  take) -> bool:
        """Ask for ``slots`` entries after ``header``; hand the filled ones to
        ``take(chunk)`` (a memoryview of whole entries, valid during the call
        only), chunk by chunk.  False when every slot was filled: the list may
        be longer, and the caller asks again with more (and drops what it took)."""
        if self._libc is None:
            self._open()
        start = len(header)
        size = start + slots * entry
        if size <= WARM_BYTES:
            if self._warm is None:
                self._warm = _Buffer(WARM_BYTES, self._libc, warm=True)
            buf = self._warm
            buf.clear(start + marker, size, entry)  # what a previous snapshot left in the markers
        else:
            buf = _Buffer(size, self._libc, warm=False)  # fresh, hence zero
        try:
            buf.write(header)
            err = self._libc.getsockopt(self._sock.fileno(), opt, buf.address, size)
            if err == _errno.ESRCH:
                raise ServiceGone(what)
            if err:
                raise Unavailable(f"{what}: {os.strerror(err)}")
            for chunk in buf.chunks(start, size, entry):
                empty = bytes(chunk[marker::entry]).find(0)
                if empty >= 0:
                    take(chunk[:empty * entry])
                    return True
                take(chunk)
            return False
        finally:
            if buf is not self._warm:
                buf.close()

    # -- services -------------------------------------------------------------

    def service_count(self) -> int:
        """How many IPv4 services the namespace has (GET_INFO: the kernel
        counts only those, for this interface)."""
        if self._libc is None:
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
        slots = self.service_count() + SLACK
        while True:
            keys: list = []
            add = keys.extend
            unpack = SERVICE_KEY.iter_unpack
            if self._snapshot(IP_VS_SO_GET_SERVICES, struct.pack("=I4x", slots), slots, SERVICE_ENTRY,
                              PROTOCOL_BYTE, "IP_VS_SO_GET_SERVICES", lambda chunk: add(unpack(chunk))):
                break
            slots *= 2  # the list grew past the buffer: ask again
        return [(0, b"", 0, fwmark) if fwmark else (proto, addr, _ntohs(port), 0)
                for proto, addr, port, fwmark in keys]

    # -- real servers ---------------------------------------------------------

    def dest_planes(self, protocol: int, addr: bytes, port: int, fwmark: int,
                    expect: int = 0) -> tuple[bytes, ...]:
        """The IPv4 real servers of one IPv4 service, read atomically, as six
        byte planes in the kernel's list order: the address's four bytes and
        the port's two (network order), a byte per server each (the layout of
        ``rows.DestinationRows``, so a listing is compared in C).  Real
        servers of the other family are not included.  ``ServiceGone`` if
        the service does not exist."""
        slots = expect + SLACK
        while True:
            parts: list[list[bytes]] = [[] for _ in range(6)]

            def take(chunk):
                for i, part in enumerate(parts):
                    part.append(bytes(chunk[i::DEST_ENTRY]))

            header = GET_DESTS_HDR.pack(protocol, addr, _htons(port), fwmark, slots)
            if self._snapshot(IP_VS_SO_GET_DESTS, header, slots, DEST_ENTRY, INACTIVE_BYTE,
                              "IP_VS_SO_GET_DESTS", take):
                break
            slots *= 2
        return tuple(b"".join(part) for part in parts)


def _ntohs(port: int) -> int:
    return ((port & 0xFF) << 8 | port >> 8) if _LITTLE else port


_htons = _ntohs
