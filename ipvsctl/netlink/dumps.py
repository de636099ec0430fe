"""Reading dumps: the multi-part replies of one NLM_F_DUMP request.

Strategy
--------
A ``DumpReader`` sends a dump request over a ``Transport`` (the socket, its
sequence numbers, its receive loop and faults) and reads the parts that
answer it, under that request's sequence number:

* ``dump(msg)``: every entry, one payload at a time.
* ``dump_runs(msg)``: each received buffer's consecutive entries as one
  run of whole messages (``wire.dump_part``), for the column decoders.
* ``dump_small(msg)``: a dump that usually comes whole in one part (a
  small service's real servers), read with as little per-dump work as that
  case needs, and handed to the general reader in any other case.

Whatever the way: a reader that stops early drains the rest of the dump
(its parts would otherwise be read as answers to the next exchange); an
error report or an NLMSG_DONE carrying an errno ends the dump with that
error; NLM_F_DUMP_INTR on an entry or on the NLMSG_DONE (the kernel's
netlink_dump checks a dump's consistency on both) raises
``DumpInterrupted`` once every entry was yielded; lost or malformed replies replace the socket
and raise ``DumpBroken`` (a DumpInterrupted), so the caller's retry reads
the dump again.  ``dump_shape`` tells how the last dump came in parts
(``consistency.DumpShape``), i.e. whether it was read in one pass.
"""

from __future__ import annotations

import errno as _errno
import struct

from ipvsctl.backend import KernelError
from ipvsctl.cache import BoundedCache
from ipvsctl.netlink import constants as C
from ipvsctl.netlink import wire
from ipvsctl.netlink.consistency import DumpShape, one_part_is_one_pass
from ipvsctl.netlink.transport import MalformedReply, NetlinkTimeout, RepliesLost, Transport

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: collections.abc imports collections (start-up time)
    from collections.abc import Iterator, Sequence


class DumpInterrupted(KernelError):
    """The kernel flagged a dump as inconsistent (NLM_F_DUMP_INTR): read it again."""

    def __init__(self, op: str = ""):
        super().__init__(_errno.EINTR, op)


class DumpBroken(DumpInterrupted):
    """A dump's replies were lost or malformed (``cause``): read it again."""

    def __init__(self, cause: KernelError):
        super().__init__(cause.op)
        self.cause = cause


#: An NLMSG_DONE: the netlink header and the dump's errno (0: it ended well).
_DONE = struct.Struct("=IHHIIi")
_DONE_LEN = _DONE.size


class DumpReader:
    """Reads dumps over ``transport``; ``dump_shape`` is the last one's."""

    def __init__(self, transport: Transport):
        self.transport = transport
        self.dump_shape = DumpShape()
        self._header_checks = BoundedCache(64, wire.header_check)  # by message length

    def dump(self, msg: bytes, op: str = "") -> Iterator[memoryview]:
        """Yield every entry of a dump; raise DumpInterrupted after it if flagged."""
        for run in self.dump_runs(msg, op):
            for _type, _flags, _seq, payload in wire.iter_messages(run):
                yield payload

    def dump_runs(self, msg: bytes, op: str = "") -> Iterator[memoryview]:
        """Send a dump request; yield each received buffer's consecutive
        entries (whole messages) as one memoryview (``wire.dump_part``; see
        runs.decode_dest_run); raise KernelError for an error report and
        DumpInterrupted, after the last entry, if the kernel flagged the
        dump, or DumpBroken (a DumpInterrupted) as soon as replies are lost
        or malformed.  An abandoned dump is read to its end (drained)."""
        seq = self._start_dump(msg, op)
        yield from self._dump_parts(seq, op)

    def dump_small(self, msg: bytes, op: str = ""):
        """A dump that usually comes whole in one part (a small service's
        real servers), read with as little work as that case needs.

        Returns the entries as one run (bytes; b"" for none) when they came
        in one part that was provably read in one pass (DumpShape.one_pass)
        and the next datagram is the dump's clean NLMSG_DONE; else the dump,
        already under way, as an iterator that yields what ``dump_runs``
        would (the datagrams read so far are handed over, none is lost).
        Raises what ``dump_runs`` raises for lost or malformed replies.

        Why: listing 10,000 services of ten servers is 10,000 dumps, and the
        general reader's per-dump work (a generator, a DumpPart per
        datagram, a header walk) was ~5 us of ~27 per service natively.
        """
        t = self.transport
        seq = self._start_dump(msg, op)
        received = []
        try:
            first = t.recv(op)
            received.append(first)
            n = len(first)
            if n >= _DONE_LEN:
                length, mtype, mflags, mseq, _pid = wire.NLMSGHDR.unpack_from(first)
                if mseq == seq and not mflags & C.NLM_F_DUMP_INTR:
                    # An end whose header does not say its own 20 bytes is
                    # the general reader's to judge (claiming more: malformed).
                    if mtype == C.NLMSG_DONE and n == length == _DONE_LEN and not _DONE.unpack(first)[5]:
                        self.dump_shape = DumpShape()  # no part carried entries: one pass
                        return b""
                    if (mtype >= C.NLMSG_MIN_TYPE and length >= C.NLMSG_HDRLEN and not length & 3
                            and not n % length and wire.same_headers(first, length, n // length,
                                                                     self._header_checks)):
                        second = t.recv(op)
                        received.append(second)
                        if len(second) == _DONE_LEN and one_part_is_one_pass(n, length):
                            end_len, mtype, mflags, mseq, _pid, err = _DONE.unpack(second)
                            if (mtype == C.NLMSG_DONE and end_len == _DONE_LEN and mseq == seq and not err
                                    and not mflags & C.NLM_F_DUMP_INTR):
                                shape = self.dump_shape = DumpShape()
                                shape.part(n, length)
                                return first
        except (RepliesLost, MalformedReply) as e:
            t.reset()  # as dump_runs: a fresh socket, and the dump read again
            raise DumpBroken(e) from None
        except NetlinkTimeout:
            t.reset()
            raise
        return self._dump_parts(seq, op, received)

    def _start_dump(self, msg: bytes, op: str) -> int:
        """Send a dump request under a fresh sequence number; return it."""
        t = self.transport
        seq = t.next_seq()
        buf = bytearray(msg)
        wire.FLAGS_SEQ.pack_into(buf, wire.FLAGS_SEQ_OFFSET, C.NLM_F_REQUEST | C.NLM_F_DUMP, seq)
        t.send(buf, op)
        return seq

    def _dump_parts(self, seq: int, op: str, received: Sequence[bytes] = ()) -> Iterator[memoryview]:
        """The rest of dump ``seq`` (dump_runs' reader): ``received``, the
        datagrams already read, come first."""
        t = self.transport
        shape = self.dump_shape = DumpShape()
        interrupted = False
        done = False
        try:
            k = 0
            while not done:
                if k < len(received):
                    chunk = received[k]
                    k += 1
                else:
                    chunk = t.recv(op)
                try:
                    part = wire.dump_part(chunk, seq, self._header_checks)
                except wire.DecodeError as e:
                    raise MalformedReply(op, str(e)) from None
                done = part.end is not None
                interrupted = interrupted or part.interrupted
                yield from part.runs
                if part.end:
                    raise KernelError(part.end, op)
                if part.largest:
                    shape.part(len(chunk), part.largest)
        except (RepliesLost, MalformedReply) as e:
            done = True  # given up: a fresh socket, and the dump read again
            t.reset()
            raise DumpBroken(e) from None
        except NetlinkTimeout:
            done = True
            t.reset()
            raise
        finally:
            if not done:
                self._drain(seq)
        if interrupted:
            raise DumpInterrupted(op)

    def _drain(self, seq: int) -> None:
        """Read and drop the rest of an abandoned dump (on trouble, start
        afresh with a new socket instead)."""
        t = self.transport
        while True:
            try:
                for mtype, _f, mseq, _p in t.messages(t.recv(), ""):
                    if mseq == seq and mtype in (C.NLMSG_DONE, C.NLMSG_ERROR):
                        return
            except KernelError:
                t.reset()
                return
