"""Encode IPVS generic-netlink requests and decode the kernel's replies.

Strategy
--------
No I/O: every function here turns model values into bytes or bytes into model
values, so it can be tested byte for byte without a kernel.  Only ``struct``
and ``socket`` (for inet_pton/inet_ntop/htons) are used.

Encoders return one complete request message: ``nlmsghdr`` + ``genlmsghdr``
(command, version 1) + attributes.  They take the IPVS family id (resolved at
run time by the transport), and ``seq``/``flags`` defaults that the transport
overwrites in place when it batches (bytes 6..12 of the message), so the codec
never needs to know about sequencing.

Speed is a requirement (a 110,000-line restore must encode in well under a
second), so the hot paths avoid building attribute lists:

* every fixed-layout part is one precompiled ``struct.Struct`` whose format
  spells out the attribute headers (length, type) next to the values; a whole
  destination request is a single ``pack`` call;
* the identifying part of a service (family, protocol, address, port or
  fwmark) is packed once per ServiceKey and cached, since a restore adds many
  destinations to few services;
* big-endian kernel fields (ports) are converted with ``socket.htons`` so one
  native-order format can carry them.

Decoding has a generic attribute walker (used for everything, and the
reference behaviour) and a fast path for the one message that comes in
hundreds of thousands, the destination dump entry: when the entry has exactly
the layout ``ip_vs_genl_fill_dest`` produces (checked by comparing every
attribute header), all values come out of one ``unpack_from``; otherwise the
generic walker decodes it.  Both give identical results (tested).

Kernel quirks are commented where they are handled; the short list:

* addresses travel in a 16-byte ``union nf_inet_addr``; the kernel always
  sends 16 bytes, IPv4 in the first 4 (we send 16 too, like libipvs);
* service and destination ports are ``__be16`` (``nla_get_be16``), as is the
  GUE tunnel port; the daemon's mcast port and sync_maxlen are host order;
* the service netmask is read with ``nla_get_be32`` but means two things: for
  IPv4 a network-order mask, for IPv6 a prefix length compared as a plain
  integer (1..128), so it is native order on the wire;
* the flags attribute is ``struct ip_vs_flags {flags, mask}``; we send mask
  ~0 like ipvsadm, so the request states every flag;
* the kernel reports ``IP_VS_SVC_F_HASHED`` on every listed service (its own
  bookkeeping, re-added by the kernel on add and edit); it is stripped on
  decode so a service read back equals the one that was added;
* strings (scheduler, pe, interface) are ``NLA_NUL_STRING``: the NUL is sent;
* stats come twice, 32-bit ``STATS`` and ``STATS64``: we prefer STATS64; u64
  attributes may be preceded by ``IPVS_STATS_ATTR_PAD`` on architectures that
  need 8-byte alignment, which the generic walker ignores.
"""

from __future__ import annotations

import struct
from operator import itemgetter
# _socket, not socket: socket.py's enum classes cost ~6 ms of start-up.
from _socket import AF_INET, AF_INET6, htonl, htons, inet_ntop, inet_pton, ntohl, ntohs

from ipvsctl.model import (
    Daemon,
    Destination,
    DestinationRows,
    Info,
    Service,
    ServiceKey,
    Stats,
    Timeouts,
)
from ipvsctl.netlink import constants as C
from ipvsctl.vocab import FWD_MASK, SVC_F_HASHED

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: collections.abc imports collections (start-up time)
    from collections.abc import Iterator

# ---------------------------------------------------------------------------
# Structures
# ---------------------------------------------------------------------------

#: nlmsghdr (len, type, flags, seq, pid) followed by genlmsghdr (cmd, version, reserved).
HEADER = struct.Struct("=IHHIIBBH")
NLMSGHDR = struct.Struct("=IHHII")
NLA = struct.Struct("=HH")
_U8 = struct.Struct("=B")
_U16 = struct.Struct("=H")
_U32 = struct.Struct("=I")
_I32 = struct.Struct("=i")
_U64 = struct.Struct("=Q")
_ERR = struct.Struct("=i")
#: Offset and layout of the (flags, seq) pair inside a message, for in-place patching.
FLAGS_SEQ_OFFSET = 6
FLAGS_SEQ = struct.Struct("=HI")

HDRLEN = C.NLMSG_HDRLEN + C.GENL_HDRLEN
FLAGS_ACK = C.NLM_F_REQUEST | C.NLM_F_ACK
FLAGS_DUMP = C.NLM_F_REQUEST | C.NLM_F_DUMP
_VERSION = C.IPVS_GENL_VERSION
_ZERO_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")
_ALL_FLAGS_MASK = 0xFFFFFFFF


class DecodeError(ValueError):
    """A reply the decoder cannot make sense of (truncated or missing attrs)."""


# ---------------------------------------------------------------------------
# Generic attribute building (used where speed does not matter)
# ---------------------------------------------------------------------------


def nla(atype: int, payload: bytes) -> bytes:
    """One attribute, padded to 4 bytes."""
    n = len(payload)
    return NLA.pack(n + C.NLA_HDRLEN, atype) + payload + _ZERO_PAD[n & 3]


def nla_u8(atype: int, v: int) -> bytes:
    return nla(atype, _U8.pack(v))


def nla_u16(atype: int, v: int) -> bytes:
    return nla(atype, _U16.pack(v))


def nla_u32(atype: int, v: int) -> bytes:
    return nla(atype, _U32.pack(v))


def nla_be16(atype: int, v: int) -> bytes:
    return nla(atype, _U16.pack(htons(v)))


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
    version: int = _VERSION,
) -> bytes:
    """A complete generic-netlink request: headers + already-encoded attributes."""
    return HEADER.pack(HDRLEN + len(body), family, flags, seq, 0, cmd, version, 0) + body


def _addr16(af: int, addr: str | None) -> bytes:
    """An address as the kernel's 16-byte union nf_inet_addr."""
    if not addr:
        return bytes(16)
    raw = inet_pton(af, addr)
    return raw if af == AF_INET6 else raw + bytes(12)


# ---------------------------------------------------------------------------
# Services
# ---------------------------------------------------------------------------

# Identity of an address-based service: AF u16, PROTOCOL u16, ADDR 16 bytes, PORT be16.
_SVC_ID_ADDR = struct.Struct("=HHH2x" "HHH2x" "HH16s" "HHH2x")
_SVC_ID_ADDR_LEN = _SVC_ID_ADDR.size  # 44
# Identity of a fwmark service: AF u16, FWMARK u32.
_SVC_ID_FWM = struct.Struct("=HHH2x" "HHI")
_SVC_ID_FWM_LEN = _SVC_ID_FWM.size  # 16
_SVC_KEY_CACHE: dict[ServiceKey, tuple[bytes, bytes]] = {}
_SVC_KEY_CACHE_MAX = 1 << 16
# FLAGS (struct ip_vs_flags), TIMEOUT u32, NETMASK u32: the tail of a full service.
_SVC_TAIL = struct.Struct("=HHII" "HHI" "HHI")


def _service_ident(key: ServiceKey) -> tuple[bytes, bytes]:
    """(identity attributes, the same wrapped in IPVS_CMD_ATTR_SERVICE), cached."""
    cached = _SVC_KEY_CACHE.get(key)
    if cached is not None:
        return cached
    if key.fwmark:
        ident = _SVC_ID_FWM.pack(
            6, C.IPVS_SVC_ATTR_AF, key.af,
            8, C.IPVS_SVC_ATTR_FWMARK, key.fwmark,
        )
    else:
        ident = _SVC_ID_ADDR.pack(
            6, C.IPVS_SVC_ATTR_AF, key.af,
            6, C.IPVS_SVC_ATTR_PROTOCOL, key.protocol,
            20, C.IPVS_SVC_ATTR_ADDR, _addr16(key.af, key.addr),
            6, C.IPVS_SVC_ATTR_PORT, htons(key.port),
        )
    result = (ident, NLA.pack(len(ident) + 4, C.IPVS_CMD_ATTR_SERVICE) + ident)
    if len(_SVC_KEY_CACHE) >= _SVC_KEY_CACHE_MAX:
        _SVC_KEY_CACHE.clear()
    _SVC_KEY_CACHE[key] = result
    return result


def _netmask_wire(af: int, netmask: int) -> int:
    # The kernel reads the netmask with nla_get_be32 into a __be32.  For IPv4
    # that is a network-order mask (ipvsadm passes inet_aton's s_addr); for
    # IPv6 ip_vs_add_service compares the raw value with 1..128, so the
    # prefix length goes as a native integer.  Returned as the native int
    # whose bytes are what the kernel expects.
    return netmask if af == AF_INET6 else htonl(netmask)


def _service_full(svc: Service) -> bytes:
    key = svc.key
    ident, _ = _service_ident(key)
    body = (
        ident
        + nla_str(C.IPVS_SVC_ATTR_SCHED_NAME, svc.scheduler)
        + (nla_str(C.IPVS_SVC_ATTR_PE_NAME, svc.pe_name) if svc.pe_name else b"")
        + _SVC_TAIL.pack(
            12, C.IPVS_SVC_ATTR_FLAGS, svc.flags, _ALL_FLAGS_MASK,
            8, C.IPVS_SVC_ATTR_TIMEOUT, svc.timeout,
            8, C.IPVS_SVC_ATTR_NETMASK, _netmask_wire(key.af, svc.netmask),
        )
    )
    return NLA.pack(len(body) + 4, C.IPVS_CMD_ATTR_SERVICE) + body


def encode_new_service(family: int, svc: Service, *, seq: int = 0, flags: int = FLAGS_ACK) -> bytes:
    return message(family, C.IPVS_CMD_NEW_SERVICE, _service_full(svc), flags=flags, seq=seq)


def encode_set_service(family: int, svc: Service, *, seq: int = 0, flags: int = FLAGS_ACK) -> bytes:
    return message(family, C.IPVS_CMD_SET_SERVICE, _service_full(svc), flags=flags, seq=seq)


def encode_del_service(family: int, key: ServiceKey, *, seq: int = 0, flags: int = FLAGS_ACK) -> bytes:
    # Only the identifying attributes: the kernel parses a partial entry here.
    return message(family, C.IPVS_CMD_DEL_SERVICE, _service_ident(key)[1], flags=flags, seq=seq)


def encode_get_service(family: int, key: ServiceKey, *, seq: int = 0, flags: int = FLAGS_ACK) -> bytes:
    return message(family, C.IPVS_CMD_GET_SERVICE, _service_ident(key)[1], flags=flags, seq=seq)


def encode_dump_services(family: int, *, seq: int = 0, flags: int = FLAGS_DUMP) -> bytes:
    return message(family, C.IPVS_CMD_GET_SERVICE, flags=flags, seq=seq)


def encode_zero(family: int, key: ServiceKey | None = None, *, seq: int = 0, flags: int = FLAGS_ACK) -> bytes:
    """Zero the counters of one service, or of everything when ``key`` is None."""
    body = _service_ident(key)[1] if key is not None else b""
    return message(family, C.IPVS_CMD_ZERO, body, flags=flags, seq=seq)


def encode_flush(family: int, *, seq: int = 0, flags: int = FLAGS_ACK) -> bytes:
    return message(family, C.IPVS_CMD_FLUSH, flags=flags, seq=seq)


# ---------------------------------------------------------------------------
# Destinations
# ---------------------------------------------------------------------------

# A full destination (add/edit): every attribute ip_vs_genl_parse_dest reads
# for a full entry, in libipvs' order.  TUN_PORT is __be16 (nla_get_be16).
# Each constant attribute header (u16 length, u16 type) is passed as one
# native u32 word ("I"): fewer arguments to pack, same bytes.
_DEST_FULL_FMT = (
    "I"       # IPVS_CMD_ATTR_DEST nest header (len 96)
    "IH2x"    # ADDR_FAMILY u16
    "I16s"    # ADDR union nf_inet_addr
    "IH2x"    # PORT be16
    "II"      # FWD_METHOD u32
    "Ii"      # WEIGHT (int in the kernel)
    "IB3x"    # TUN_TYPE u8
    "IH2x"    # TUN_PORT be16
    "IH2x"    # TUN_FLAGS u16
    "II"      # U_THRESH u32
    "II"      # L_THRESH u32
)
_DEST_FULL_LEN = struct.calcsize("=" + _DEST_FULL_FMT)  # 96


def _hdr_word(length: int, atype: int) -> int:
    """An attribute header as the native u32 with the same bytes as (u16 len, u16 type)."""
    return _U32.unpack(NLA.pack(length, atype))[0]


def _genl_word(cmd: int) -> int:
    """A genlmsghdr (cmd, version 1, reserved 0) as one native u32."""
    return _U32.unpack(bytes((cmd, _VERSION, 0, 0)))[0]


_W_DEST = _hdr_word(_DEST_FULL_LEN, C.IPVS_CMD_ATTR_DEST)
_W_D_AF = _hdr_word(6, C.IPVS_DEST_ATTR_ADDR_FAMILY)
_W_D_ADDR = _hdr_word(20, C.IPVS_DEST_ATTR_ADDR)
_W_D_PORT = _hdr_word(6, C.IPVS_DEST_ATTR_PORT)
_W_D_FWD = _hdr_word(8, C.IPVS_DEST_ATTR_FWD_METHOD)
_W_D_WEIGHT = _hdr_word(8, C.IPVS_DEST_ATTR_WEIGHT)
_W_D_TUN_TYPE = _hdr_word(5, C.IPVS_DEST_ATTR_TUN_TYPE)
_W_D_TUN_PORT = _hdr_word(6, C.IPVS_DEST_ATTR_TUN_PORT)
_W_D_TUN_FLAGS = _hdr_word(6, C.IPVS_DEST_ATTR_TUN_FLAGS)
_W_D_U_THRESH = _hdr_word(8, C.IPVS_DEST_ATTR_U_THRESH)
_W_D_L_THRESH = _hdr_word(8, C.IPVS_DEST_ATTR_L_THRESH)
_W_GENL = {cmd: _genl_word(cmd) for cmd in (C.IPVS_CMD_NEW_DEST, C.IPVS_CMD_SET_DEST)}
# Whole messages, one Struct per service-identity size: nlmsghdr, genlmsghdr
# word, service nest, dest nest.
_DEST_MSG_ADDR = struct.Struct(f"=IHHIII{_SVC_ID_ADDR_LEN + 4}s" + _DEST_FULL_FMT)
_DEST_MSG_FWM = struct.Struct(f"=IHHIII{_SVC_ID_FWM_LEN + 4}s" + _DEST_FULL_FMT)
# Identifying part only (delete): ADDR_FAMILY, ADDR, PORT.
_DEST_ID = struct.Struct("=HH" "HHH2x" "HH16s" "HHH2x")


def _encode_dest_full(family: int, cmd: int, key: ServiceKey, d: Destination, flags: int, seq: int) -> bytes:
    svc_nest = _service_ident(key)[1]
    S = _DEST_MSG_FWM if key.fwmark else _DEST_MSG_ADDR
    return S.pack(
        S.size, family, flags, seq, 0, _W_GENL[cmd],
        svc_nest,
        _W_DEST,
        _W_D_AF, d.af,
        _W_D_ADDR, inet_pton(d.af, d.addr),  # "16s" zero-fills an IPv4 address
        _W_D_PORT, htons(d.port),
        _W_D_FWD, d.fwd,
        _W_D_WEIGHT, d.weight,
        _W_D_TUN_TYPE, d.tun_type,
        _W_D_TUN_PORT, htons(d.tun_port),
        _W_D_TUN_FLAGS, d.tun_flags,
        _W_D_U_THRESH, d.u_threshold,
        _W_D_L_THRESH, d.l_threshold,
    )


def encode_new_dest(
    family: int, key: ServiceKey, dest: Destination, *, seq: int = 0, flags: int = FLAGS_ACK
) -> bytes:
    return _encode_dest_full(family, C.IPVS_CMD_NEW_DEST, key, dest, flags, seq)


def encode_set_dest(
    family: int, key: ServiceKey, dest: Destination, *, seq: int = 0, flags: int = FLAGS_ACK
) -> bytes:
    return _encode_dest_full(family, C.IPVS_CMD_SET_DEST, key, dest, flags, seq)


def encode_del_dest(
    family: int, key: ServiceKey, dest: Destination, *, seq: int = 0, flags: int = FLAGS_ACK
) -> bytes:
    body = _service_ident(key)[1] + _DEST_ID.pack(
        _DEST_ID.size, C.IPVS_CMD_ATTR_DEST,
        6, C.IPVS_DEST_ATTR_ADDR_FAMILY, dest.af,
        20, C.IPVS_DEST_ATTR_ADDR, inet_pton(dest.af, dest.addr),
        6, C.IPVS_DEST_ATTR_PORT, htons(dest.port),
    )
    return message(family, C.IPVS_CMD_DEL_DEST, body, flags=flags, seq=seq)


def encode_dump_dests(family: int, key: ServiceKey, *, seq: int = 0, flags: int = FLAGS_DUMP) -> bytes:
    return message(family, C.IPVS_CMD_GET_DEST, _service_ident(key)[1], flags=flags, seq=seq)


# ---------------------------------------------------------------------------
# Timeouts, daemons, info, family resolution
# ---------------------------------------------------------------------------


def encode_set_timeouts(family: int, t: Timeouts, *, seq: int = 0, flags: int = FLAGS_ACK) -> bytes:
    # All three are sent, like ipvsadm: the kernel treats 0 as "leave as is".
    body = (
        nla_u32(C.IPVS_CMD_ATTR_TIMEOUT_TCP, t.tcp)
        + nla_u32(C.IPVS_CMD_ATTR_TIMEOUT_TCP_FIN, t.tcp_fin)
        + nla_u32(C.IPVS_CMD_ATTR_TIMEOUT_UDP, t.udp)
    )
    return message(family, C.IPVS_CMD_SET_CONFIG, body, flags=flags, seq=seq)


def encode_get_timeouts(family: int, *, seq: int = 0, flags: int = FLAGS_ACK) -> bytes:
    return message(family, C.IPVS_CMD_GET_CONFIG, flags=flags, seq=seq)


def encode_get_info(family: int, *, seq: int = 0, flags: int = FLAGS_ACK) -> bytes:
    return message(family, C.IPVS_CMD_GET_INFO, flags=flags, seq=seq)


def encode_new_daemon(family: int, d: Daemon, *, seq: int = 0, flags: int = FLAGS_ACK) -> bytes:
    parts = [
        nla_u32(C.IPVS_DAEMON_ATTR_STATE, d.state),
        nla_str(C.IPVS_DAEMON_ATTR_MCAST_IFN, d.mcast_ifn),
        nla_u32(C.IPVS_DAEMON_ATTR_SYNC_ID, d.syncid),
    ]
    # Optional settings go only when set, as libipvs does: the kernel then
    # picks its defaults (port 8848, ttl 1, maxlen from the MTU, group
    # 224.0.0.81).  sync_maxlen and mcast_port are host order (nla_get_u16).
    if d.sync_maxlen:
        parts.append(nla_u16(C.IPVS_DAEMON_ATTR_SYNC_MAXLEN, d.sync_maxlen))
    if d.mcast_port:
        parts.append(nla_u16(C.IPVS_DAEMON_ATTR_MCAST_PORT, d.mcast_port))
    if d.mcast_ttl:
        parts.append(nla_u8(C.IPVS_DAEMON_ATTR_MCAST_TTL, d.mcast_ttl))
    if d.mcast_group:
        if ":" in d.mcast_group:
            parts.append(nla(C.IPVS_DAEMON_ATTR_MCAST_GROUP6, inet_pton(AF_INET6, d.mcast_group)))
        else:
            # nla_get_in_addr: the IPv4 group is a __be32, network-order bytes.
            parts.append(nla(C.IPVS_DAEMON_ATTR_MCAST_GROUP, inet_pton(AF_INET, d.mcast_group)))
    return message(family, C.IPVS_CMD_NEW_DAEMON, nest(C.IPVS_CMD_ATTR_DAEMON, *parts), flags=flags, seq=seq)


def encode_del_daemon(family: int, d: Daemon, *, seq: int = 0, flags: int = FLAGS_ACK) -> bytes:
    # The kernel only needs the state; ipvsadm also sends ifn and syncid.
    body = nest(
        C.IPVS_CMD_ATTR_DAEMON,
        nla_u32(C.IPVS_DAEMON_ATTR_STATE, d.state),
        nla_str(C.IPVS_DAEMON_ATTR_MCAST_IFN, d.mcast_ifn),
        nla_u32(C.IPVS_DAEMON_ATTR_SYNC_ID, d.syncid),
    )
    return message(family, C.IPVS_CMD_DEL_DAEMON, body, flags=flags, seq=seq)


def encode_dump_daemons(family: int, *, seq: int = 0, flags: int = FLAGS_DUMP) -> bytes:
    return message(family, C.IPVS_CMD_GET_DAEMON, flags=flags, seq=seq)


def encode_get_family(name: str = C.IPVS_GENL_NAME, *, seq: int = 0, flags: int = FLAGS_ACK) -> bytes:
    """CTRL_CMD_GETFAMILY: ask the generic-netlink controller for a family id."""
    return message(
        C.GENL_ID_CTRL,
        C.CTRL_CMD_GETFAMILY,
        nla_str(C.CTRL_ATTR_FAMILY_NAME, name),
        flags=flags,
        seq=seq,
        version=1,
    )


#: Length of a barrier message (a bare nlmsghdr).
BARRIER_LEN = C.NLMSG_HDRLEN


def encode_barrier(seq: int) -> bytes:
    """NLMSG_NOOP with NLM_F_REQUEST|NLM_F_ACK: always acked, after what precedes it.

    netlink_rcv_skb acknowledges control messages itself, without handing
    them to a family, so the ACK comes back whatever the kernel did with the
    messages before it in the same send (see transport.py).
    """
    return NLMSGHDR.pack(C.NLMSG_HDRLEN, C.NLMSG_NOOP, FLAGS_ACK, seq, 0)


# ---------------------------------------------------------------------------
# Decoding: messages and attributes
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


def same_bytes(buf: bytes, length: int, count: int, offsets, reference: bytes) -> bool:
    """True when ``buf`` starts with ``count`` messages of ``length`` bytes,
    each holding ``reference``'s byte at every one of ``offsets``.  Checked a
    byte position at a time across all messages (strided slices, in C): the
    bulk of a dump needs no walk message by message."""
    stop = length * count
    if count < 1 or len(buf) < stop:
        return False
    return all(buf[j:stop:length] == reference[j:j + 1] * count for j in offsets)


def same_headers(buf: bytes, length: int, count: int) -> bool:
    """True when ``buf`` starts with ``count`` messages of ``length`` bytes
    whose netlink headers (length, type, flags, seq, pid) are all the first
    one's."""
    return same_bytes(buf, length, count, range(C.NLMSG_HDRLEN), buf)


def decode_error(payload) -> tuple[int, int]:
    """(errno as a positive number, 0 for an ACK; seq of the request it answers).

    The seq is read from the request header the kernel echoes back after the
    error code (only the header when NETLINK_CAP_ACK is set).
    """
    if len(payload) < C.NLMSGERR_LEN:
        raise DecodeError("short NLMSG_ERROR")
    (err,) = _ERR.unpack_from(payload, 0)
    seq = _U32.unpack_from(payload, 4 + 8)[0]
    return -err, seq


def decode_done(payload) -> int:
    """errno (positive) carried by an NLMSG_DONE, 0 when the dump ended well."""
    if len(payload) >= 4:
        return -_ERR.unpack_from(payload, 0)[0]
    return 0


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


def _get_uint(buf, span: tuple[int, int]) -> int:
    s, e = span
    n = e - s
    if n >= 8:
        return _U64.unpack_from(buf, s)[0]
    if n >= 4:
        return _U32.unpack_from(buf, s)[0]
    if n >= 2:
        return _U16.unpack_from(buf, s)[0]
    if n >= 1:
        return buf[s]
    raise DecodeError("empty integer attribute")


def _get_be16(buf, span: tuple[int, int]) -> int:
    return ntohs(_U16.unpack_from(buf, span[0])[0])


def _get_str(buf, span: tuple[int, int]) -> str:
    raw = bytes(buf[span[0] : span[1]])
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def _get_addr(buf, span: tuple[int, int], af: int) -> str:
    # The kernel puts the whole 16-byte union; IPv4 is its first 4 bytes.
    # A 4-byte attribute (as older or other senders may use) works too.
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


def _require(table: dict, *types: int, what: str) -> None:
    for t in types:
        if t not in table:
            raise DecodeError(f"{what}: missing attribute {t}")


def _payload_attrs(payload) -> tuple[int, dict[int, tuple[int, int]]]:
    """(genl cmd, first-level attribute table) of an IPVS message payload."""
    if len(payload) < C.GENL_HDRLEN:
        raise DecodeError("short generic netlink message")
    return payload[0], attr_table(payload, C.GENL_HDRLEN)


def _nested(payload, table: dict, atype: int, what: str) -> tuple[int, int]:
    span = table.get(atype)
    if span is None:
        raise DecodeError(f"{what}: no nested attribute {atype}")
    return span


# ----- stats ------------------------------------------------------------------


class _Layout:
    """A learned attribute layout: header check, value Struct, reordering (see below)."""

    __slots__ = ("hdrs", "expected", "vals", "order")

    def __init__(self, hdrs: struct.Struct, expected: tuple, vals: struct.Struct, order):
        self.hdrs, self.expected, self.vals, self.order = hdrs, expected, vals, order


_INT_FMT = {1: "B", 2: "H", 4: "I", 8: "Q"}

_STATS_ORDER = (
    C.IPVS_STATS_ATTR_CONNS,
    C.IPVS_STATS_ATTR_INPKTS,
    C.IPVS_STATS_ATTR_OUTPKTS,
    C.IPVS_STATS_ATTR_INBYTES,
    C.IPVS_STATS_ATTR_OUTBYTES,
    C.IPVS_STATS_ATTR_CPS,
    C.IPVS_STATS_ATTR_INPPS,
    C.IPVS_STATS_ATTR_OUTPPS,
    C.IPVS_STATS_ATTR_INBPS,
    C.IPVS_STATS_ATTR_OUTBPS,
)
ZERO_STATS = Stats()
_ZERO10 = (0,) * 10


def _stats_from(values: tuple) -> Stats:
    # A fresh table has all-zero counters everywhere: share one frozen value.
    return ZERO_STATS if values == _ZERO10 else Stats(*values)

def _learn_stats_layout(buf, start: int, end: int) -> _Layout | None:
    """The layout of one STATS/STATS64 container (see the destination fast path)."""
    hdr_fmt, val_fmt, headers, slots = [], [], [], []
    pos = start
    for atype, s, e in attrs(buf, start, end):
        if s - C.NLA_HDRLEN != pos:
            return None
        alen = e - s
        padded = (alen + 3) & ~3
        pos = s + padded
        if atype not in _STATS_ORDER:  # PAD, or something new
            hdr_fmt.append(f"{padded + 4}x")
            val_fmt.append(f"{padded + 4}x")
            continue
        idx = _STATS_ORDER.index(atype)
        fmt = _INT_FMT.get(alen)
        if fmt not in ("I", "Q") or idx in slots:
            return None
        slots.append(idx)
        headers.extend((alen + C.NLA_HDRLEN, atype))
        hdr_fmt.append(f"I{padded}x")
        val_fmt.append(f"4x{fmt}" + (f"{padded - alen}x" if padded > alen else ""))
    if pos != end or len(slots) != len(_STATS_ORDER):
        return None
    hdrs = struct.Struct("=" + "".join(hdr_fmt))
    vals = struct.Struct("=" + "".join(val_fmt))
    expected = struct.unpack(f"={len(headers) // 2}I", struct.pack(f"={len(headers)}H", *headers))
    order = None if slots == list(range(len(_STATS_ORDER))) else itemgetter(*(slots.index(i) for i in range(10)))
    return _Layout(hdrs, expected, vals, order)


_STATS_LAYOUTS: dict[int, _Layout] = {}


def decode_stats(buf, start: int, end: int) -> Stats:
    """A STATS or STATS64 container (integer width taken from each attribute)."""
    n = end - start
    lay = _STATS_LAYOUTS.get(n)
    if lay is None or lay.hdrs.unpack_from(buf, start) != lay.expected:
        lay = _learn_stats_layout(buf, start, end)
        if lay is None:
            t = attr_table(buf, start, end)
            return _stats_from(tuple(_get_uint(buf, t[a]) if a in t else 0 for a in _STATS_ORDER))
        if len(_STATS_LAYOUTS) >= 16:
            _STATS_LAYOUTS.clear()
        _STATS_LAYOUTS[n] = lay
    v = lay.vals.unpack_from(buf, start)
    if lay.order is not None:
        v = lay.order(v)
    return ZERO_STATS if v == _ZERO10 else Stats(*v)


def decode_stats_generic(buf, start: int, end: int) -> Stats:
    """decode_stats without the fast path (the reference it is tested against)."""
    t = attr_table(buf, start, end)
    return _stats_from(tuple(_get_uint(buf, t[a]) if a in t else 0 for a in _STATS_ORDER))


def _stats_of(buf, table: dict, a64: int, a32: int) -> Stats | None:
    span = table.get(a64) or table.get(a32)
    return decode_stats(buf, *span) if span else None


# ----- services ---------------------------------------------------------------


def decode_service(payload) -> Service:
    """A service from an IPVS_CMD_NEW_SERVICE message (dump entry or GET reply)."""
    _cmd, top = _payload_attrs(payload)
    s, e = _nested(payload, top, C.IPVS_CMD_ATTR_SERVICE, "service")
    return decode_service_attrs(payload, s, e)


_FAMILY_FIRST = struct.Struct("=HHHHH")  # nest len, type; first attribute's len, type, u16 value


def service_family(payload) -> int:
    """The address family of a service dump entry, read in place when it is
    the nest's first attribute (where the kernel writes it), else decoded.
    For the service-list check, which needs the keys of the non-IPv4
    services only (backend._service_snapshot)."""
    if len(payload) >= C.GENL_HDRLEN + 10:
        _nlen, ntype, alen, atype, af = _FAMILY_FIRST.unpack_from(payload, C.GENL_HDRLEN)
        if (ntype & C.NLA_TYPE_MASK == C.IPVS_CMD_ATTR_SERVICE and atype & C.NLA_TYPE_MASK == C.IPVS_SVC_ATTR_AF
                and alen == C.NLA_HDRLEN + 2):
            return af
    return decode_service(payload).key.af


def decode_service_attrs(buf, start: int, end: int) -> Service:
    t = attr_table(buf, start, end)
    _require(t, C.IPVS_SVC_ATTR_AF, what="service")
    af = _get_uint(buf, t[C.IPVS_SVC_ATTR_AF])
    if C.IPVS_SVC_ATTR_FWMARK in t:
        key = ServiceKey(af=af, fwmark=_get_uint(buf, t[C.IPVS_SVC_ATTR_FWMARK]))
    else:
        _require(t, C.IPVS_SVC_ATTR_PROTOCOL, C.IPVS_SVC_ATTR_ADDR, C.IPVS_SVC_ATTR_PORT, what="service")
        key = ServiceKey(
            af=af,
            protocol=_get_uint(buf, t[C.IPVS_SVC_ATTR_PROTOCOL]),
            addr=_get_addr(buf, t[C.IPVS_SVC_ATTR_ADDR], af),
            port=_get_be16(buf, t[C.IPVS_SVC_ATTR_PORT]),
        )
    flags = 0
    if C.IPVS_SVC_ATTR_FLAGS in t:
        flags = _U32.unpack_from(buf, t[C.IPVS_SVC_ATTR_FLAGS][0])[0] & ~SVC_F_HASHED
    netmask = 0xFFFFFFFF if af != AF_INET6 else 128
    if C.IPVS_SVC_ATTR_NETMASK in t:
        raw = _U32.unpack_from(buf, t[C.IPVS_SVC_ATTR_NETMASK][0])[0]
        # See _netmask_wire: IPv4 network-order mask, IPv6 native prefix length.
        netmask = raw if af == AF_INET6 else ntohl(raw)
    return Service(
        key=key,
        scheduler=_get_str(buf, t[C.IPVS_SVC_ATTR_SCHED_NAME]) if C.IPVS_SVC_ATTR_SCHED_NAME in t else "",
        flags=flags,
        timeout=_get_uint(buf, t[C.IPVS_SVC_ATTR_TIMEOUT]) if C.IPVS_SVC_ATTR_TIMEOUT in t else 0,
        netmask=netmask,
        pe_name=_get_str(buf, t[C.IPVS_SVC_ATTR_PE_NAME]) if C.IPVS_SVC_ATTR_PE_NAME in t else "",
        stats=_stats_of(buf, t, C.IPVS_SVC_ATTR_STATS64, C.IPVS_SVC_ATTR_STATS),
    )


# ----- destinations -----------------------------------------------------------


def decode_dest_attrs(buf, start: int, end: int, default_af: int = AF_INET) -> Destination:
    """Generic decoder of an IPVS_CMD_ATTR_DEST container's content."""
    t = attr_table(buf, start, end)
    _require(t, C.IPVS_DEST_ATTR_ADDR, C.IPVS_DEST_ATTR_PORT, what="destination")

    def u(a: int, default: int = 0) -> int:
        span = t.get(a)
        return _get_uint(buf, span) if span else default

    # ADDR_FAMILY exists since kernel 3.18 (mixed-family tunnels); before, a
    # destination always had its service's family.
    af = u(C.IPVS_DEST_ATTR_ADDR_FAMILY, default_af)
    weight = u(C.IPVS_DEST_ATTR_WEIGHT)
    if weight >= 1 << 31:  # the kernel's weight is an int
        weight -= 1 << 32
    span = t.get(C.IPVS_DEST_ATTR_TUN_PORT)
    return Destination(
        af=af,
        addr=_get_addr(buf, t[C.IPVS_DEST_ATTR_ADDR], af),
        port=_get_be16(buf, t[C.IPVS_DEST_ATTR_PORT]),
        fwd=u(C.IPVS_DEST_ATTR_FWD_METHOD) & FWD_MASK,
        weight=weight,
        u_threshold=u(C.IPVS_DEST_ATTR_U_THRESH),
        l_threshold=u(C.IPVS_DEST_ATTR_L_THRESH),
        tun_type=u(C.IPVS_DEST_ATTR_TUN_TYPE),
        tun_port=_get_be16(buf, span) if span else 0,
        tun_flags=u(C.IPVS_DEST_ATTR_TUN_FLAGS),
        active_conns=u(C.IPVS_DEST_ATTR_ACTIVE_CONNS),
        inact_conns=u(C.IPVS_DEST_ATTR_INACT_CONNS),
        persist_conns=u(C.IPVS_DEST_ATTR_PERSIST_CONNS),
        stats=_stats_of(buf, t, C.IPVS_DEST_ATTR_STATS64, C.IPVS_DEST_ATTR_STATS),
    )


# --- the destination fast path ----------------------------------------------
#
# A dump of 110,000 destinations must decode in a fraction of a second, and
# the generic walker costs a few dozen attribute steps per entry.  But every
# entry of a dump has the same shape: ip_vs_genl_fill_dest writes the same
# attributes in the same order, and only where IPVS_STATS_ATTR_PAD appears
# depends on the kernel (u64 attributes are padded to 8-byte alignment on
# architectures without efficient unaligned access: seen on User-Mode Linux,
# not on x86-64).  So the first entry of a given shape is walked once to
# *learn* its layout: one Struct that reads every attribute header (values
# skipped as padding), the headers it must find, and one Struct that reads
# every wanted value (headers and the 32-bit STATS skipped), plus an
# itemgetter that puts the values in Destination's order.  Each following
# entry is checked against the headers (one unpack, one tuple comparison) and
# decoded with one unpack; an entry that does not match is walked again.

# Canonical order of the values the fast path extracts (Destination's order,
# then the ten STATS64 counters).
_DEST_FIELDS = {
    C.IPVS_DEST_ATTR_ADDR: 0,
    C.IPVS_DEST_ATTR_PORT: 1,
    C.IPVS_DEST_ATTR_FWD_METHOD: 2,
    C.IPVS_DEST_ATTR_WEIGHT: 3,
    C.IPVS_DEST_ATTR_TUN_TYPE: 4,
    C.IPVS_DEST_ATTR_TUN_PORT: 5,
    C.IPVS_DEST_ATTR_TUN_FLAGS: 6,
    C.IPVS_DEST_ATTR_U_THRESH: 7,
    C.IPVS_DEST_ATTR_L_THRESH: 8,
    C.IPVS_DEST_ATTR_ACTIVE_CONNS: 9,
    C.IPVS_DEST_ATTR_INACT_CONNS: 10,
    C.IPVS_DEST_ATTR_PERSIST_CONNS: 11,
    C.IPVS_DEST_ATTR_ADDR_FAMILY: 12,
}
_N_DEST_FIELDS = len(_DEST_FIELDS) + len(_STATS_ORDER)
# struct format of each field by its attribute length (_INT_FMT otherwise).
_DEST_FIELD_FMT = {C.IPVS_DEST_ATTR_WEIGHT: {4: "i"}, C.IPVS_DEST_ATTR_ADDR: {4: "4s", 16: "16s"}}


def _learn_dest_layout(payload) -> _Layout | None:
    """The layout of one destination dump entry, or None if it is not the usual one."""
    hdr_fmt = ["4x"]  # genlmsghdr
    val_fmt = ["4x"]
    headers: list[int] = []  # (len, type) pairs, flattened
    slots: list[int] = []  # canonical index of each value, in unpacking order
    seen: set[int] = set()

    def walk(start: int, end: int, ctx: int) -> bool:
        pos = start
        for atype, s, e in attrs(payload, start, end):
            if s - C.NLA_HDRLEN != pos:
                return False
            alen = e - s
            padded = (alen + 3) & ~3
            pos = s + padded
            container = (ctx == 0 and atype == C.IPVS_CMD_ATTR_DEST) or (
                ctx == 1 and atype == C.IPVS_DEST_ATTR_STATS64
            )
            if ctx == 1 and atype in _DEST_FIELDS:
                idx = _DEST_FIELDS[atype]
                fmt = _DEST_FIELD_FMT.get(atype, _INT_FMT).get(alen)
            elif ctx == 2 and atype in _STATS_ORDER:
                idx = len(_DEST_FIELDS) + _STATS_ORDER.index(atype)
                fmt = "Q" if alen == 8 else None
            elif container:
                idx, fmt = -1, ""
            elif ctx == 0:
                return False  # the first level holds the destination only
            else:
                # STATS (32-bit, superseded by STATS64), PAD, or something
                # new: neither its header nor its bytes matter, as long as
                # every header that does is checked where it is.
                hdr_fmt.append(f"{padded + 4}x")
                val_fmt.append(f"{padded + 4}x")
                continue
            # The header of everything read is checked (one u32 word each).
            headers.extend((alen + C.NLA_HDRLEN, atype))
            hdr_fmt.append("I")
            val_fmt.append("4x")
            if container:
                if not walk(s, e, ctx + 1):
                    return False
                continue
            if fmt is None or idx in seen:
                return False
            seen.add(idx)
            slots.append(idx)
            if padded:
                hdr_fmt.append(f"{padded}x")
            val_fmt.append(fmt + (f"{padded - alen}x" if padded > alen else ""))
        return pos == end

    try:
        if not walk(C.GENL_HDRLEN, len(payload), 0) or len(seen) != _N_DEST_FIELDS:
            return None
    except DecodeError:
        return None
    hdrs = struct.Struct("=" + "".join(hdr_fmt))
    vals = struct.Struct("=" + "".join(val_fmt))
    if hdrs.size != len(payload) or vals.size != len(payload):
        return None
    pairs = struct.pack(f"={len(headers)}H", *headers)
    expected = struct.unpack(f"={len(headers) // 2}I", pairs)
    if slots == list(range(_N_DEST_FIELDS)):
        order = None  # the kernel's order is Destination's order: no reordering
    else:
        position = {idx: i for i, idx in enumerate(slots)}
        order = itemgetter(*(position[i] for i in range(_N_DEST_FIELDS)))
    return _Layout(hdrs, expected, vals, order)


# Learned layouts by payload length (a handful at most: one per padding shape).
_DEST_LAYOUTS: dict[int, _Layout] = {}


def decode_dest(payload, default_af: int = AF_INET) -> Destination:
    """A destination from an IPVS_CMD_NEW_DEST dump entry (payload after nlmsghdr).

    ``default_af`` is the service's family, used only by kernels that do not
    report the destination's own family.
    """
    n = len(payload)
    lay = _DEST_LAYOUTS.get(n)
    if lay is None or lay.hdrs.unpack_from(payload) != lay.expected:
        lay = _learn_dest_layout(payload)
        if lay is None:
            return decode_dest_generic(payload, default_af)
        if len(_DEST_LAYOUTS) >= 16:
            _DEST_LAYOUTS.clear()
        _DEST_LAYOUTS[n] = lay
    v = lay.vals.unpack_from(payload)
    if lay.order is not None:
        v = lay.order(v)
    (addr, port, fwd, weight, tun_type, tun_port, tun_flags, u_th, l_th, active, inact, persist, af,
     c0, c1, c2, c3, c4, c5, c6, c7, c8, c9) = v
    if af != AF_INET and af != AF_INET6:
        raise DecodeError(f"unknown address family {af}")
    return Destination(
        af,
        inet_ntop(af, addr if af == AF_INET6 else addr[:4]),
        ntohs(port),
        fwd & FWD_MASK,
        weight,
        u_th,
        l_th,
        tun_type,
        ntohs(tun_port),
        tun_flags,
        active,
        inact,
        persist,
        Stats(c0, c1, c2, c3, c4, c5, c6, c7, c8, c9)
        if (c0 or c1 or c2 or c3 or c4 or c5 or c6 or c7 or c8 or c9)
        else ZERO_STATS,
    )




def decode_dest_generic(payload, default_af: int = AF_INET) -> Destination:
    """decode_dest without the fast path (the reference the fast path is tested against)."""
    _cmd, top = _payload_attrs(payload)
    s, e = _nested(payload, top, C.IPVS_CMD_ATTR_DEST, "destination")
    return decode_dest_attrs(payload, s, e, default_af)


# --- runs of destination dump entries (bulk listing) -------------------------
#
# Listing a service with tens of thousands of real servers must not build an
# object per server and per counter.  The transport hands over each received
# buffer's consecutive dump entries as one "run" (whole netlink messages,
# headers included, their netlink headers already checked equal by
# same_headers), and when every message has the layout learned from the
# first one, the whole run is read in C, with strided slices (one byte of
# every message at once):
#
# * the address's four bytes and the port's two become six byte planes;
# * the settings (forwarding method ... persistent connections, and the
#   address family) sit together in every entry: that span, attribute
#   headers included, is cut out of every message as one bytes "blob" by one
#   ``iter_unpack``; equal blobs are one dict entry, so each distinct blob is
#   checked (its attribute headers, AF_INET) and decoded once into the
#   settings tuple of DestinationRows;
# * every other byte that fixes the layout (the genl header, the destination
#   nest header, the headers of the address, port and counter attributes) is
#   compared across all messages with one strided slice per byte.
#
# Counters are not read at all: this path serves listings that do not print
# them.  Any mismatch returns None, and the caller decodes that run entry by
# entry with decode_dest.

# Settings in DestinationRows order, with the struct code each needs by size.
_RUN_SETTINGS = (
    (C.IPVS_DEST_ATTR_FWD_METHOD, {4: "I"}),
    (C.IPVS_DEST_ATTR_WEIGHT, {4: "i"}),
    (C.IPVS_DEST_ATTR_TUN_TYPE, {1: "B"}),
    (C.IPVS_DEST_ATTR_TUN_PORT, {2: "H"}),
    (C.IPVS_DEST_ATTR_TUN_FLAGS, {2: "H"}),
    (C.IPVS_DEST_ATTR_U_THRESH, {4: "I"}),
    (C.IPVS_DEST_ATTR_L_THRESH, {4: "I"}),
    (C.IPVS_DEST_ATTR_ACTIVE_CONNS, {4: "I"}),
    (C.IPVS_DEST_ATTR_INACT_CONNS, {4: "I"}),
    (C.IPVS_DEST_ATTR_PERSIST_CONNS, {4: "I"}),
)
_RUN_BLOB_ATTRS = {atype for atype, _codes in _RUN_SETTINGS} | {C.IPVS_DEST_ATTR_ADDR_FAMILY}
_first = itemgetter(0)


class _LayoutMismatch(Exception):
    pass


class _BlobSettings(dict):
    """settings blob -> settings tuple, each distinct blob checked and decoded once."""

    def __init__(self, lay: _RunLayout):
        super().__init__()
        self.lay = lay

    def __missing__(self, blob: bytes) -> tuple:
        lay = self.lay
        if blob[lay.blob_af:lay.blob_af + 2] != lay.af_bytes or any(
                blob[off:off + 4] != hdr for off, hdr in lay.blob_headers):
            raise _LayoutMismatch
        values = lay.blob_values.unpack(blob)
        if lay.order is not None:
            values = lay.order(values)
        if len(self) >= 4096:  # counters differ per server on a busy table: stay bounded
            self.clear()
        self[blob] = values
        return values


class _RunLayout:
    """One learned destination-entry layout (see above)."""

    __slots__ = ("length", "planes", "fixed", "first", "blob", "blob_values", "blob_headers",
                 "blob_af", "af_bytes", "order", "settings")

    def __init__(self, length: int, first: bytes):
        self.length = length
        self.first = first  # the message it was learned from


def _learn_run_layout(run) -> _RunLayout | None:
    """The layout of the run's first message, or None if it is not a plain IPv4 entry."""
    (length,) = _U32.unpack_from(run, 0)
    if length & 3 or length < C.NLMSG_HDRLEN + C.GENL_HDRLEN or len(run) < length:
        return None
    first = bytes(run[:length])
    headers: dict[int, int] = {}  # attribute header offset -> attribute type (dest level)
    found: dict[int, tuple[int, int]] = {}  # destination attribute -> (value offset, size)
    try:
        top = list(attrs(first, C.NLMSG_HDRLEN + C.GENL_HDRLEN, length))
        if len(top) != 1 or top[0][0] != C.IPVS_CMD_ATTR_DEST:
            return None
        _t, ds, de = top[0]
        for atype, s, e in attrs(first, ds, de):
            if atype in found:
                return None
            headers[s - C.NLA_HDRLEN] = atype
            found[atype] = (s, e - s)
    except DecodeError:
        return None
    af = found.get(C.IPVS_DEST_ATTR_ADDR_FAMILY)
    addr = found.get(C.IPVS_DEST_ATTR_ADDR)
    port = found.get(C.IPVS_DEST_ATTR_PORT)
    if af is None or af[1] != 2 or _U16.unpack_from(first, af[0])[0] != AF_INET:
        return None
    if addr is None or addr[1] < 4 or port is None or port[1] != 2:
        return None
    if not _RUN_BLOB_ATTRS <= found.keys():
        return None
    # The blob: from the first settings attribute's header to the end of the
    # last one, holding those attributes and nothing else.
    in_blob = [off for off, atype in headers.items() if atype in _RUN_BLOB_ATTRS]
    start = min(in_blob)
    end = max(found[headers[off]][0] + ((found[headers[off]][1] + 3) & ~3) for off in in_blob)
    if any(start <= off < end for off, atype in headers.items() if atype not in _RUN_BLOB_ATTRS):
        return None
    fields = []  # (offset in the blob, struct code, settings index)
    for idx, (atype, codes) in enumerate(_RUN_SETTINGS):
        off, size = found[atype]
        code = codes.get(size)
        if code is None:
            return None
        fields.append((off - start, code, idx))
    fields.sort()
    fmt, pos = ["="], 0
    for off, code, _idx in fields:
        fmt.append(f"{off - pos}x{code}")
        pos = off + struct.calcsize(code)
    fmt.append(f"{end - start - pos}x")
    slots = [idx for _, _, idx in fields]

    lay = _RunLayout(length, first)
    lay.planes = (addr[0], addr[0] + 1, addr[0] + 2, addr[0] + 3, port[0], port[0] + 1)
    lay.blob = struct.Struct(f"={start}x{end - start}s{length - end}x")
    lay.blob_values = struct.Struct("".join(fmt))
    lay.blob_headers = [(off - start, first[off:off + 4]) for off in in_blob]
    lay.blob_af = af[0] - start
    lay.af_bytes = first[af[0]:af[0] + 2]
    lay.order = None if slots == sorted(slots) else itemgetter(*(slots.index(i) for i in range(len(slots))))
    # Every other byte that fixes the layout: the genl header, the nest's
    # header and the headers of the attributes outside the blob.
    fixed = [*range(C.NLMSG_HDRLEN, C.NLMSG_HDRLEN + C.GENL_HDRLEN), *range(ds - C.NLA_HDRLEN, ds)]
    for off, atype in headers.items():
        if atype not in _RUN_BLOB_ATTRS:
            fixed.extend(range(off, off + C.NLA_HDRLEN))
    lay.fixed = fixed
    lay.settings = _BlobSettings(lay)
    return lay


# Learned layouts by message length (one or two in practice: see decode_dest).
_RUN_LAYOUTS: dict[int, _RunLayout] = {}


def decode_dest_run(run) -> DestinationRows | None:
    """Destination dump entries (whole messages) in columns, or None when any
    of them is not a plain IPv4 entry of the learned layout."""
    if len(run) < C.NLMSG_HDRLEN:
        return None
    (length,) = _U32.unpack_from(run, 0)
    lay = _RUN_LAYOUTS.get(length)
    if lay is None:
        lay = _learn_run_layout(run)
        if lay is None:
            return None
        if len(_RUN_LAYOUTS) >= 16:
            _RUN_LAYOUTS.clear()
        _RUN_LAYOUTS[length] = lay
    count, rest = divmod(len(run), length)
    data = bytes(run)
    if rest or not same_bytes(data, length, count, lay.fixed, lay.first):
        return None
    try:
        settings = list(map(lay.settings.__getitem__, map(_first, lay.blob.iter_unpack(data))))
    except _LayoutMismatch:
        return None
    planes = tuple(bytearray(data[off::length]) for off in lay.planes)
    return DestinationRows(planes, settings)


# ----- daemons, timeouts, info, family ---------------------------------------


def decode_daemon(payload) -> Daemon:
    _cmd, top = _payload_attrs(payload)
    s, e = _nested(payload, top, C.IPVS_CMD_ATTR_DAEMON, "daemon")
    t = attr_table(payload, s, e)
    _require(t, C.IPVS_DAEMON_ATTR_STATE, what="daemon")
    group = None
    if C.IPVS_DAEMON_ATTR_MCAST_GROUP6 in t:
        group = _get_addr(payload, t[C.IPVS_DAEMON_ATTR_MCAST_GROUP6], AF_INET6)
    elif C.IPVS_DAEMON_ATTR_MCAST_GROUP in t:
        group = _get_addr(payload, t[C.IPVS_DAEMON_ATTR_MCAST_GROUP], AF_INET)

    def u(a: int) -> int:
        span = t.get(a)
        return _get_uint(payload, span) if span else 0

    return Daemon(
        state=u(C.IPVS_DAEMON_ATTR_STATE),
        mcast_ifn=_get_str(payload, t[C.IPVS_DAEMON_ATTR_MCAST_IFN]) if C.IPVS_DAEMON_ATTR_MCAST_IFN in t else "",
        syncid=u(C.IPVS_DAEMON_ATTR_SYNC_ID),
        sync_maxlen=u(C.IPVS_DAEMON_ATTR_SYNC_MAXLEN),
        mcast_group=group,
        mcast_port=u(C.IPVS_DAEMON_ATTR_MCAST_PORT),
        mcast_ttl=u(C.IPVS_DAEMON_ATTR_MCAST_TTL),
    )


def decode_timeouts(payload) -> Timeouts:
    """The IPVS_CMD_SET_CONFIG reply to GET_CONFIG (first-level attributes)."""
    _cmd, t = _payload_attrs(payload)

    def u(a: int) -> int:
        span = t.get(a)
        return _get_uint(payload, span) if span else 0

    return Timeouts(
        tcp=u(C.IPVS_CMD_ATTR_TIMEOUT_TCP),
        tcp_fin=u(C.IPVS_CMD_ATTR_TIMEOUT_TCP_FIN),
        udp=u(C.IPVS_CMD_ATTR_TIMEOUT_UDP),
    )


def decode_info(payload) -> Info:
    """The IPVS_CMD_SET_INFO reply to GET_INFO (first-level IPVS_INFO_ATTR_*)."""
    _cmd, t = _payload_attrs(payload)
    _require(t, C.IPVS_INFO_ATTR_VERSION, C.IPVS_INFO_ATTR_CONN_TAB_SIZE, what="info")
    return Info(
        version=_get_uint(payload, t[C.IPVS_INFO_ATTR_VERSION]),
        conn_tab_size=_get_uint(payload, t[C.IPVS_INFO_ATTR_CONN_TAB_SIZE]),
    )


def decode_family_id(payload) -> int:
    """The family id from the controller's CTRL_CMD_NEWFAMILY reply."""
    _cmd, t = _payload_attrs(payload)
    _require(t, C.CTRL_ATTR_FAMILY_ID, what="family")
    return _get_uint(payload, t[C.CTRL_ATTR_FAMILY_ID])
