"""Recorded kernel answers, replayed without a kernel.

Strategy
--------
ipvsctl's ``Transport`` takes an injected socket (``Transport(sock=...,
family=...)``), and everything above it (backend, decoding, rendering) only
sees bytes that came out of ``sock.recv_into``.  So the seam for measuring
decoding and rendering natively, on a host without IPVS, is a socket:

* ``RecordingSocket`` wraps a real, bound netlink socket inside the kernel
  tier and keeps, for every request buffer sent, the datagrams received
  after it;
* ``ReplaySocket`` answers the same requests with the recorded datagrams;
* ``AckSocket`` answers every batch with the barrier's ACK alone, as the
  kernel does when every request succeeds (a ``-R`` without a kernel).

Requests are matched by their bytes with the sequence numbers and port ids
blanked, so a request may come in another order or more than once (the
table read asks for the services twice).  Answers are stored with their
sequence numbers as offsets from the request's first one and given the
live numbers when first replayed; the live answers are kept by the exact
request bytes, so after a warm-up pass a replayed request costs one dict
lookup and each datagram one copy (as the kernel's copy into the buffer).

Fixture file (lzma-compressed): ``MAGIC``, then records
``<I request length> request <I count> (<I length> datagram)*``, one per
distinct request, and a JSON trailer with what was recorded (sizes,
kernel, the sha256 of ipvsadm's own output for the same table).
"""

from __future__ import annotations

import json
import lzma
import struct

MAGIC = b"ipvsctl-netlink-replay-1\n"
_U32 = struct.Struct("=I")
_HDR = struct.Struct("=IHHII")   # nlmsghdr: len, type, flags, seq, pid
_SEQ = struct.Struct("=I")
NLMSG_ERROR = 2
_ERR0 = struct.pack("=i", 0)
NLMSG_ALIGN = 3


def _messages(buf):
    """(offset, length, type, seq) of each netlink message in buf."""
    off, end = 0, len(buf)
    while off + 16 <= end:
        length, mtype, _f, seq, _pid = _HDR.unpack_from(buf, off)
        if length < 16:
            break
        yield off, length, mtype, seq
        off += (length + NLMSG_ALIGN) & ~NLMSG_ALIGN


def request_key(buf) -> bytes:
    """The request's bytes with every message's seq and pid blanked."""
    key = bytearray(buf)
    for off, _len, _t, _s in _messages(buf):
        key[off + 8:off + 16] = bytes(8)
    return bytes(key)


def _first_seq(buf) -> int:
    return _HDR.unpack_from(buf, 0)[3]


def _reseq(chunks, delta: int) -> list[bytes]:
    """The datagrams with every seq moved by delta (mod 2**32)."""
    out = []
    for chunk in chunks:
        b = bytearray(chunk)
        for off, _len, _t, seq in _messages(b):
            _SEQ.pack_into(b, off + 8, (seq + delta) & 0xFFFFFFFF)
        out.append(bytes(b))
    return out


class Recording:
    """Distinct requests and their answers; meta describes the table."""

    def __init__(self, family: int, answers=None, meta=None):
        self.family = family
        self.answers: dict[bytes, list[bytes]] = answers or {}
        self.meta: dict = meta or {}

    # -- file ----------------------------------------------------------------

    def save(self, path) -> int:
        parts = [MAGIC, _U32.pack(self.family)]
        for key, chunks in self.answers.items():
            parts += [_U32.pack(len(key)), key, _U32.pack(len(chunks))]
            for c in chunks:
                parts += [_U32.pack(len(c)), c]
        parts += [_U32.pack(0xFFFFFFFF), json.dumps(self.meta, sort_keys=True).encode()]
        data = lzma.compress(b"".join(parts), preset=9 | lzma.PRESET_EXTREME)
        with open(path, "wb") as f:
            f.write(data)
        return len(data)

    @classmethod
    def load(cls, path) -> "Recording":
        with open(path, "rb") as f:
            raw = lzma.decompress(f.read())
        if not raw.startswith(MAGIC):
            raise ValueError(f"{path}: not a netlink replay fixture")
        off = len(MAGIC)
        (family,) = _U32.unpack_from(raw, off)
        off += 4
        answers = {}
        while True:
            (n,) = _U32.unpack_from(raw, off)
            off += 4
            if n == 0xFFFFFFFF:
                break
            key = raw[off:off + n]
            off += n
            (count,) = _U32.unpack_from(raw, off)
            off += 4
            chunks = []
            for _ in range(count):
                (m,) = _U32.unpack_from(raw, off)
                chunks.append(raw[off + 4:off + 4 + m])
                off += 4 + m
            answers[key] = chunks
        return cls(family, answers, json.loads(raw[off:].decode()))

    # -- counts for the model ---------------------------------------------------

    def datagrams(self) -> int:
        return sum(len(c) for c in self.answers.values())

    def payload_bytes(self) -> int:
        return sum(len(x) for c in self.answers.values() for x in c)


class RecordingSocket:
    """A real socket that remembers what was answered to each request.

    Answers are stored with seq offsets relative to the request's first
    message (seq 0), so they replay at any sequence number.
    """

    def __init__(self, sock, recording: Recording):
        self.sock = sock
        self.rec = recording
        self._key: bytes | None = None
        self._base = 0
        self.sends = 0
        self.recvs = 0

    def send(self, buf) -> int:
        self._key = request_key(buf)
        self._base = _first_seq(buf)
        self.rec.answers[self._key] = []
        self.sends += 1
        return self.sock.send(buf)

    def recv_into(self, buf, nbytes=0, flags=0) -> int:
        n = self.sock.recv_into(buf, nbytes, flags)
        self.recvs += 1
        if self._key is not None:
            got = bytes(memoryview(buf)[:min(n, len(buf))])
            self.rec.answers[self._key] += _reseq([got], -self._base)
        return n

    def getsockopt(self, *a):
        return self.sock.getsockopt(*a)

    def setsockopt(self, *a):
        return self.sock.setsockopt(*a)

    def close(self):
        self.sock.close()


class ReplayMismatch(LookupError):
    """A request the recording has no answer for: the fixture is stale
    (ipvsctl now asks differently); capture it again in the kernel tier."""


class ReplaySocket:
    """Answers requests from a Recording, without a kernel."""

    #: what a root process's socket reports after SO_RCVBUFFORCE/SO_SNDBUFFORCE
    RCVBUF = 16 << 20
    SNDBUF = 8 << 20

    def __init__(self, recording: Recording):
        self.rec = recording
        self._live: dict[bytes, list[bytes]] = {}
        self._queue: list[bytes] = []
        self._next = 0
        self.sends = 0
        self.recvs = 0

    def send(self, buf) -> int:
        # Fast path, as in every timed pass: these very bytes (sequence
        # numbers included) were answered before.
        exact = bytes(buf)
        chunks = self._live.get(exact)
        if chunks is None:
            key = request_key(buf)
            try:
                stored = self.rec.answers[key]
            except KeyError:
                raise ReplayMismatch(f"no recorded answer for a request of {len(buf)} bytes "
                                     f"(type {_HDR.unpack_from(buf, 0)[1]})") from None
            chunks = self._live[exact] = _reseq(stored, _first_seq(buf))
        self._queue = chunks
        self._next = 0
        self.sends += 1
        return len(buf)

    def recv_into(self, buf, nbytes=0, flags=0) -> int:
        if self._next >= len(self._queue):
            raise ReplayMismatch("ipvsctl read past the recorded answer")
        chunk = self._queue[self._next]
        self._next += 1
        self.recvs += 1
        n = len(chunk)
        buf[:min(n, len(buf))] = chunk[:len(buf)]
        return n

    def getsockopt(self, level, opt):
        return self.RCVBUF if opt == 8 else self.SNDBUF   # SO_RCVBUF is 8

    def setsockopt(self, *a):
        return None

    def close(self):
        pass


class AckSocket:
    """The kernel's answer to a batch in which every request succeeded: one
    ACK for the barrier (the last message of each send)."""

    RCVBUF = ReplaySocket.RCVBUF
    SNDBUF = ReplaySocket.SNDBUF

    def __init__(self):
        self._pending: list[bytes] = []
        self.sends = 0
        self.recvs = 0
        self.bytes_sent = 0

    def send(self, buf) -> int:
        # ipvsctl ends every send with its barrier, a bare 16-byte header:
        # answer that one (no walk over the requests: this is timed).
        barrier = bytes(buf[-16:])
        seq = _HDR.unpack(barrier)[3]
        self._pending.append(_HDR.pack(36, NLMSG_ERROR, 0x100, seq, 0) + _ERR0 + barrier)
        self.sends += 1
        self.bytes_sent += len(buf)
        return len(buf)

    def recv_into(self, buf, nbytes=0, flags=0) -> int:
        chunk = self._pending.pop(0)
        buf[:len(chunk)] = chunk
        self.recvs += 1
        return len(chunk)

    def getsockopt(self, level, opt):
        return self.RCVBUF if opt == 8 else self.SNDBUF

    def setsockopt(self, *a):
        return None

    def close(self):
        pass
