"""Netlink and generic-netlink framing: messages and attributes as bytes.

Strategy: no I/O and nothing IPVS-specific.  This module knows the netlink
message header, the generic-netlink header, attributes (type, length,
padding), the error and done messages, the barrier the transport ends each
send with, and the controller's family look-up.  The IPVS encoders
(``encode``), decoders (``decode``, ``layouts``, ``runs``) and the socket
(``transport``) are built on it, so each framing rule is written here once.

Only ``struct`` and ``_socket`` (inet_ntop) are used: ``socket.py`` builds
enum classes at import (~6 ms of start-up).
"""

from __future__ import annotations

import struct
from _socket import AF_INET, AF_INET6, htons, inet_ntop, ntohs

from ipvsctl.netlink import constants as C

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: collections.abc imports collections (start-up time)
    from collections.abc import Iterator

#: nlmsghdr (len, type, flags, seq, pid) followed by genlmsghdr (cmd, version, reserved).
HEADER = struct.Struct("=IHHIIBBH")
NLMSGHDR = struct.Struct("=IHHII")
NLA = struct.Struct("=HH")
U8 = struct.Struct("=B")
U16 = struct.Struct("=H")
U32 = struct.Struct("=I")
U64 = struct.Struct("=Q")
_ERR = struct.Struct("=i")
#: Offset and layout of the (flags, seq) pair inside a message, for in-place
#: patching: encoders leave seq and flags to the transport, which sets them
#: as it batches (bytes 6..12 of each message).
FLAGS_SEQ_OFFSET = 6
FLAGS_SEQ = struct.Struct("=HI")

HDRLEN = C.NLMSG_HDRLEN + C.GENL_HDRLEN
FLAGS_ACK = C.NLM_F_REQUEST | C.NLM_F_ACK
FLAGS_DUMP = C.NLM_F_REQUEST | C.NLM_F_DUMP
_ZERO_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")


class DecodeError(ValueError):
    """Bytes that are not what they should be (truncated, missing attributes)."""


# ---------------------------------------------------------------------------
# Building messages and attributes (where speed does not matter)
# ---------------------------------------------------------------------------


def nla(atype: int, payload: bytes) -> bytes:
    """One attribute, padded to 4 bytes."""
    n = len(payload)
    return NLA.pack(n + C.NLA_HDRLEN, atype) + payload + _ZERO_PAD[n & 3]


def nla_u8(atype: int, v: int) -> bytes:
    return nla(atype, U8.pack(v))


def nla_u16(atype: int, v: int) -> bytes:
    return nla(atype, U16.pack(v))


def nla_u32(atype: int, v: int) -> bytes:
    return nla(atype, U32.pack(v))


def nla_be16(atype: int, v: int) -> bytes:
    return nla(atype, U16.pack(htons(v)))


def nla_str(atype: int, s: str) -> bytes:
    # NLA_NUL_STRING in the kernel's policy: the terminating NUL is required.
    # surrogateescape: a name given as raw bytes on argv or stdin goes to the
    # kernel as those bytes, as ipvsadm passes them.
    return nla(atype, s.encode(errors="surrogateescape") + b"\0")


def nest(atype: int, *parts: bytes) -> bytes:
    # No NLA_F_NESTED flag: IPVS parses with nla_parse_nested_deprecated and
    # itself sends nests without the flag (nla_nest_start_noflag).
    body = b"".join(parts)
    return NLA.pack(len(body) + C.NLA_HDRLEN, atype) + body


def message(
    family: int,
    cmd: int,
    body: bytes = b"",
    *,
    flags: int = FLAGS_ACK,
    seq: int = 0,
    version: int = C.IPVS_GENL_VERSION,
) -> bytes:
    """A complete generic-netlink request: headers + already-encoded attributes."""
    return HEADER.pack(HDRLEN + len(body), family, flags, seq, 0, cmd, version, 0) + body


def hdr_word(length: int, atype: int) -> int:
    """An attribute header as the native u32 with the same bytes as (u16 len, u16 type)."""
    return U32.unpack(NLA.pack(length, atype))[0]


def genl_word(cmd: int, version: int = C.IPVS_GENL_VERSION) -> int:
    """A genlmsghdr (cmd, version, reserved 0) as one native u32."""
    return U32.unpack(bytes((cmd, version, 0, 0)))[0]


#: Length of a barrier message (a bare nlmsghdr).
BARRIER_LEN = C.NLMSG_HDRLEN


def encode_barrier(seq: int) -> bytes:
    """NLMSG_NOOP with NLM_F_REQUEST|NLM_F_ACK: always acked, after what precedes it.

    netlink_rcv_skb acknowledges control messages itself, without handing
    them to a family, so the ACK comes back whatever the kernel did with the
    messages before it in the same send (see transport.py).
    """
    return NLMSGHDR.pack(C.NLMSG_HDRLEN, C.NLMSG_NOOP, FLAGS_ACK, seq, 0)


def encode_get_family(name: str = C.IPVS_GENL_NAME, *, seq: int = 0, flags: int = FLAGS_ACK) -> bytes:
    """CTRL_CMD_GETFAMILY: ask the generic-netlink controller for a family id."""
    return message(C.GENL_ID_CTRL, C.CTRL_CMD_GETFAMILY, nla_str(C.CTRL_ATTR_FAMILY_NAME, name),
                   flags=flags, seq=seq, version=1)


# ---------------------------------------------------------------------------
# Reading messages
# ---------------------------------------------------------------------------


def iter_messages(buf) -> Iterator[tuple[int, int, int, memoryview]]:
    """Yield (type, flags, seq, payload) for every netlink message in ``buf``.

    ``payload`` is a memoryview of what follows the nlmsghdr (for IPVS
    messages: the genlmsghdr and the attributes).
    """
    mv = memoryview(buf)
    end = len(mv)
    off = 0
    unpack = NLMSGHDR.unpack_from
    while off + C.NLMSG_HDRLEN <= end:
        length, mtype, mflags, seq, _pid = unpack(mv, off)
        if length < C.NLMSG_HDRLEN or off + length > end:
            raise DecodeError(f"truncated netlink message ({length} bytes at {off} of {end})")
        yield mtype, mflags, seq, mv[off + C.NLMSG_HDRLEN : off + length]
        off += (length + 3) & ~3


#: Up to this many messages, FixedBytes compares message by message (one
#: unpack of the whole run); above, a byte position at a time.
SMALL_RUN = 48


class FixedBytes:
    """Which bytes of a message of ``length`` bytes must be the same in every
    message of a run (``offsets``), and the check that they are.

    Two ways, by the run's size, with the same answer: a big run (a service
    with thousands of real servers) is checked a byte position at a time
    across all messages (strided slices, in C), which costs per position; a
    small one (the usual service, ten real servers) with one unpack of the
    whole run by a Struct that reads the fixed spans of every message, which
    costs per message: 6.3 -> 0.8 us for ten entries of one layout.
    """

    __slots__ = ("length", "offsets", "one", "reference", "runs")

    def __init__(self, length: int, offsets):
        self.length = length
        self.offsets = tuple(offsets)
        spans: list[list[int]] = []
        for off in sorted(set(self.offsets)):
            if spans and spans[-1][1] == off:
                spans[-1][1] = off + 1
            else:
                spans.append([off, off + 1])
        fmt, pos = [], 0
        for start, end in spans:
            fmt.append(f"{start - pos}x{end - start}s")
            pos = end
        fmt.append(f"{length - pos}x")
        self.one = "".join(fmt)  # one message's fixed spans
        self.reference = struct.Struct("=" + self.one)
        self.runs: dict[int, struct.Struct] = {}  # count -> the Struct of a run (count <= SMALL_RUN)

    def same(self, buf, count: int, reference) -> bool:
        """True when ``buf`` starts with ``count`` messages that each hold
        ``reference``'s bytes at every one of the offsets."""
        length = self.length
        stop = length * count
        if count < 1 or len(buf) < stop or len(reference) < length:
            return False
        if count > SMALL_RUN:
            return all(buf[j:stop:length] == reference[j:j + 1] * count for j in self.offsets)
        run = self.runs.get(count)
        if run is None:
            run = self.runs[count] = struct.Struct("=" + self.one * count)
        return run.unpack_from(buf) == self.reference.unpack_from(reference) * count


def same_bytes(buf: bytes, length: int, count: int, offsets, reference: bytes) -> bool:
    """True when ``buf`` starts with ``count`` messages of ``length`` bytes,
    each holding ``reference``'s byte at every one of ``offsets`` (a
    FixedBytes made for the call; keep one to check many runs)."""
    return FixedBytes(length, offsets).same(buf, count, reference)


def header_check(length: int) -> FixedBytes:
    """The check that messages of ``length`` bytes all have one netlink
    header (length, type, flags, seq, pid): for same_headers' ``checks``."""
    return FixedBytes(length, range(C.NLMSG_HDRLEN))


def same_headers(buf: bytes, length: int, count: int, checks=None) -> bool:
    """True when ``buf`` starts with ``count`` messages of ``length`` bytes
    whose netlink headers (length, type, flags, seq, pid) are all the first
    one's.  ``checks``: header_check by length, kept by the caller (a
    cache.BoundedCache that makes them), or None."""
    check = checks[length] if checks is not None else header_check(length)
    return check.same(buf, count, buf)


class DumpPart:
    """What one received buffer of a dump holds (``dump_part``): ``runs``,
    the consecutive entries as memoryviews of whole messages; ``largest``,
    the longest entry; ``interrupted``, whether the kernel flagged one, or
    the dump's NLMSG_DONE (NLM_F_DUMP_INTR); ``end``, None while the dump goes on, else the
    errno its last message carried (0: it ended well)."""

    __slots__ = ("runs", "largest", "interrupted", "end")

    def __init__(self):
        self.runs: list[memoryview] = []
        self.largest = 0
        self.interrupted = False
        self.end: int | None = None


def dump_part(chunk: bytes, seq: int, checks=None) -> DumpPart:
    """Split one received buffer of the dump with sequence number ``seq``.

    Messages of other exchanges are skipped; an error report or NLMSG_DONE
    of this dump ends it.  DecodeError for a buffer that is not well-formed
    netlink.  Most buffers are nothing but entries of one length: those are
    taken in one piece once their headers are seen to agree (same_headers;
    ``checks`` as it takes them).
    """
    part = DumpPart()
    mv = memoryview(chunk)
    end = len(mv)
    off = 0
    start = -1  # where the current run of entries began
    unpack = NLMSGHDR.unpack_from
    min_type, hdrlen = C.NLMSG_MIN_TYPE, C.NLMSG_HDRLEN
    if end >= hdrlen:
        length, mtype, mflags, mseq, _pid = unpack(mv, 0)
        if (mseq == seq and mtype >= min_type and not mflags & C.NLM_F_DUMP_INTR
                and length >= hdrlen and not length & 3 and same_headers(chunk, length, end // length, checks)):
            off = length * (end // length)
            start = 0
            part.largest = length
    while off + hdrlen <= end:
        length, mtype, mflags, mseq, _pid = unpack(mv, off)
        if length < hdrlen or off + length > end:
            raise DecodeError(f"truncated netlink message ({length} bytes at {off} of {end})")
        if mseq == seq and mtype >= min_type:
            if mflags & C.NLM_F_DUMP_INTR:
                part.interrupted = True
            if start < 0:
                start = off
            if length > part.largest:
                part.largest = length
        else:
            if start >= 0:
                part.runs.append(mv[start:off])
                start = -1
            if mseq == seq and mtype in (C.NLMSG_DONE, C.NLMSG_ERROR):
                payload = mv[off + hdrlen : off + length]
                if mtype == C.NLMSG_DONE:
                    part.end = decode_done(payload)
                    # netlink_dump checks the dump's consistency once more
                    # as it writes the end (nl_dump_check_consistent): a
                    # change after the last entry flags only the NLMSG_DONE.
                    if mflags & C.NLM_F_DUMP_INTR:
                        part.interrupted = True
                else:
                    part.end = decode_error(payload)[0]
                return part
        off += (length + 3) & ~3
    if off < end:
        raise DecodeError(f"{end - off} stray bytes after the last netlink message")
    if start >= 0:
        part.runs.append(mv[start:min(off, end)])
    return part


def decode_error(payload) -> tuple[int, int]:
    """(errno as a positive number, 0 for an ACK; seq of the request it answers).

    The seq is read from the request header the kernel echoes back after the
    error code (only the header when NETLINK_CAP_ACK is set).
    """
    if len(payload) < C.NLMSGERR_LEN:
        raise DecodeError("short NLMSG_ERROR")
    (err,) = _ERR.unpack_from(payload, 0)
    seq = U32.unpack_from(payload, 4 + 8)[0]
    return -err, seq


def decode_done(payload) -> int:
    """errno (positive) carried by an NLMSG_DONE, 0 when the dump ended well."""
    if len(payload) >= 4:
        return -_ERR.unpack_from(payload, 0)[0]
    return 0


# ---------------------------------------------------------------------------
# Reading attributes
# ---------------------------------------------------------------------------


def attrs(buf, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, int]]:
    """Yield (type, value start, value end) for each attribute in buf[start:end]."""
    if end is None:
        end = len(buf)
    unpack = NLA.unpack_from
    while start + C.NLA_HDRLEN <= end:
        alen, atype = unpack(buf, start)
        if alen < C.NLA_HDRLEN or start + alen > end:
            raise DecodeError(f"bad attribute length {alen} at {start}")
        yield atype & C.NLA_TYPE_MASK, start + C.NLA_HDRLEN, start + alen
        start += (alen + 3) & ~3


def attr_table(buf, start: int = 0, end: int | None = None) -> dict[int, tuple[int, int]]:
    """{type: (value start, value end)}; the last one wins, like nla_parse."""
    if end is None:
        end = len(buf)
    table = {}
    unpack = NLA.unpack_from
    while start + C.NLA_HDRLEN <= end:
        alen, atype = unpack(buf, start)
        if alen < C.NLA_HDRLEN or start + alen > end:
            raise DecodeError(f"bad attribute length {alen} at {start}")
        table[atype & C.NLA_TYPE_MASK] = (start + C.NLA_HDRLEN, start + alen)
        start += (alen + 3) & ~3
    return table


def payload_attrs(payload) -> tuple[int, dict[int, tuple[int, int]]]:
    """(genl cmd, first-level attribute table) of a generic-netlink payload."""
    if len(payload) < C.GENL_HDRLEN:
        raise DecodeError("short generic netlink message")
    return payload[0], attr_table(payload, C.GENL_HDRLEN)


def require(table: dict, *types: int, what: str) -> None:
    for t in types:
        if t not in table:
            raise DecodeError(f"{what}: missing attribute {t}")


def nested(table: dict, atype: int, what: str) -> tuple[int, int]:
    """The span of nested attribute ``atype``; DecodeError when absent."""
    span = table.get(atype)
    if span is None:
        raise DecodeError(f"{what}: no nested attribute {atype}")
    return span


def get_uint(buf, span: tuple[int, int]) -> int:
    """An unsigned integer of the attribute's own width (1, 2, 4 or 8 bytes)."""
    s, e = span
    n = e - s
    if n >= 8:
        return U64.unpack_from(buf, s)[0]
    if n >= 4:
        return U32.unpack_from(buf, s)[0]
    if n >= 2:
        return U16.unpack_from(buf, s)[0]
    if n >= 1:
        return buf[s]
    raise DecodeError("empty integer attribute")


def get_be16(buf, span: tuple[int, int]) -> int:
    return ntohs(U16.unpack_from(buf, span[0])[0])


def get_str(buf, span: tuple[int, int]) -> str:
    raw = bytes(buf[span[0] : span[1]])
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def get_addr(buf, span: tuple[int, int], af: int) -> str:
    # The kernel puts the whole 16-byte union nf_inet_addr; IPv4 is its
    # first 4 bytes.  A 4-byte attribute (as older or other senders may
    # use) works too.
    s, e = span
    if af == AF_INET6:
        if e - s < 16:
            raise DecodeError("short IPv6 address attribute")
        return inet_ntop(AF_INET6, bytes(buf[s : s + 16]))
    if af != AF_INET:
        raise DecodeError(f"unknown address family {af}")
    if e - s < 4:
        raise DecodeError("short IPv4 address attribute")
    return inet_ntop(AF_INET, bytes(buf[s : s + 4]))


def decode_family_id(payload) -> int:
    """The family id from the controller's CTRL_CMD_NEWFAMILY reply."""
    _cmd, t = payload_attrs(payload)
    require(t, C.CTRL_ATTR_FAMILY_ID, what="family")
    return get_uint(payload, t[C.CTRL_ATTR_FAMILY_ID])
