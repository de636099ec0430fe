"""IPVS requests as generic-netlink messages: model values in, bytes out.

Strategy: no I/O.  Each encoder returns one complete request message:
``nlmsghdr`` + ``genlmsghdr`` (command, version 1) + attributes.  It takes
the IPVS family id (resolved at run time by the transport), and ``seq`` and
``flags`` defaults that the transport overwrites in place when it batches
(``wire.FLAGS_SEQ``), so encoding never needs to know about sequencing.
``encode_request`` maps a ``backend.Request`` to its encoder.

Speed is a requirement (a 110,000-line restore must encode in well under a
second), so the hot paths avoid building attribute lists:

* every fixed-layout part is one precompiled ``struct.Struct`` whose format
  spells out the attribute headers (length, type) next to the values; a whole
  destination request is a single ``pack`` call, each constant attribute
  header passed as one native u32 word;
* the identifying part of a service (family, protocol, address, port or
  fwmark) can be kept per ServiceKey (``idents``: the backend's cache,
  ``codec.Codec``), since a restore adds many destinations to few services;
* big-endian kernel fields (ports) are converted with ``htons`` so one
  native-order format can carry them.

Kernel facts encoded here:

* addresses travel in a 16-byte ``union nf_inet_addr`` (IPv4 in the first
  4 bytes; we send 16, like libipvs);
* service and destination ports are ``__be16`` (``nla_get_be16``), as is the
  GUE tunnel port; the daemon's mcast port and sync_maxlen are host order;
* the service netmask is read with ``nla_get_be32`` but means two things: for
  IPv4 a network-order mask, for IPv6 a prefix length compared as a plain
  integer (1..128), so it is native order on the wire;
* the flags attribute is ``struct ip_vs_flags {flags, mask}``; we send mask
  ~0 like ipvsadm, so the request states every flag;
* strings (scheduler, pe, interface) are ``NLA_NUL_STRING``: the NUL is sent;
* add and edit send every attribute the kernel requires for a full entry;
  delete, get, zero and the destination dump send only the identity.
"""

from __future__ import annotations

import struct
# _socket, not socket: socket.py's enum classes cost ~6 ms of start-up.
from _socket import AF_INET, AF_INET6, htonl, htons, inet_pton

from ipvsctl import backend as b
from ipvsctl.model import Daemon, Destination, Service, ServiceKey, Timeouts
from ipvsctl.netlink import constants as C
from ipvsctl.netlink.wire import FLAGS_ACK, FLAGS_DUMP, HDRLEN, NLA, U16, genl_word, hdr_word, message, nest, \
    nla, nla_str, nla_u8, nla_u16, nla_u32

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only
    from collections.abc import Callable, MutableMapping

_ALL_FLAGS_MASK = 0xFFFFFFFF


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
# FLAGS (struct ip_vs_flags), TIMEOUT u32, NETMASK u32: the tail of a full service.
_SVC_TAIL = struct.Struct("=HHII" "HHI" "HHI")


def service_ident(key: ServiceKey) -> tuple[bytes, bytes]:
    """(identity attributes, the same wrapped in IPVS_CMD_ATTR_SERVICE)."""
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
    return ident, NLA.pack(len(ident) + 4, C.IPVS_CMD_ATTR_SERVICE) + ident


# Where a service entry's identity attributes sit, as the kernel writes them
# (ip_vs_genl_fill_service: AF first, then PROTOCOL, ADDR, PORT or FWMARK):
# right after the genlmsghdr and the IPVS_CMD_ATTR_SERVICE nest's header,
# in exactly service_ident's layout.  Their headers, read as native words.
_ENTRY_IDENT = C.GENL_HDRLEN + 4
_IDENT_HDRS_ADDR = struct.Struct("=I4xI4xI16xI")  # AF, PROTOCOL, ADDR, PORT
_IDENT_HDRS_ADDR_WANT = (hdr_word(6, C.IPVS_SVC_ATTR_AF), hdr_word(6, C.IPVS_SVC_ATTR_PROTOCOL),
                         hdr_word(20, C.IPVS_SVC_ATTR_ADDR), hdr_word(6, C.IPVS_SVC_ATTR_PORT))
_IDENT_HDRS_FWM = struct.Struct("=I4xI")  # AF, FWMARK
_IDENT_HDRS_FWM_WANT = (hdr_word(6, C.IPVS_SVC_ATTR_AF), hdr_word(8, C.IPVS_SVC_ATTR_FWMARK))


def entry_identity(payload) -> bytes | None:
    """A service entry's identity attributes (payload after the nlmsghdr of
    a dump entry), byte for byte as the kernel wrote them: what names the
    service in a request (service_ident's first value, for the entries the
    kernel writes) and what tells two entries apart.  None for an entry of
    another shape (then the decoded key has to do)."""
    n = len(payload)
    if n >= _ENTRY_IDENT + _SVC_ID_ADDR_LEN and _IDENT_HDRS_ADDR.unpack_from(payload, _ENTRY_IDENT) \
            == _IDENT_HDRS_ADDR_WANT:
        return bytes(payload[_ENTRY_IDENT:_ENTRY_IDENT + _SVC_ID_ADDR_LEN])
    if n >= _ENTRY_IDENT + _SVC_ID_FWM_LEN and _IDENT_HDRS_FWM.unpack_from(payload, _ENTRY_IDENT) \
            == _IDENT_HDRS_FWM_WANT:
        return bytes(payload[_ENTRY_IDENT:_ENTRY_IDENT + _SVC_ID_FWM_LEN])
    return None


def identity_family(ident: bytes) -> int:
    """The address family an identity (entry_identity) names."""
    return U16.unpack_from(ident, 4)[0]


def encode_dump_dests_of(family: int, ident: bytes) -> bytes:
    """encode_dump_dests for the service of an identity (entry_identity):
    the same bytes, without decoding and encoding the key again."""
    return dump_dests_head(family, len(ident)) + ident


# nlmsghdr, genlmsghdr, then the IPVS_CMD_ATTR_SERVICE nest's header.
_DUMP_DESTS_HEAD = struct.Struct("=IHHIIBBH" "HH")


def dump_dests_head(family: int, ident_len: int) -> bytes:
    """What encode_dump_dests_of puts before an identity of ``ident_len``
    bytes: the headers of an IPVS_CMD_GET_DEST dump request, whose length
    counts the identity, and the header of the IPVS_CMD_ATTR_SERVICE nest
    that holds it (identities are 44 or 16 bytes: no padding)."""
    nest_len = C.NLA_HDRLEN + ident_len
    return _DUMP_DESTS_HEAD.pack(HDRLEN + nest_len, family, FLAGS_DUMP, 0, 0, C.IPVS_CMD_GET_DEST,
                                 C.IPVS_GENL_VERSION, 0, nest_len, C.IPVS_CMD_ATTR_SERVICE)


def _ident(key: ServiceKey, idents: MutableMapping | None) -> tuple[bytes, bytes]:
    # ``idents``: a cache whose missing keys are encoded (cache.BoundedCache).
    return service_ident(key) if idents is None else idents[key]


def _netmask_wire(af: int, netmask: int) -> int:
    # The kernel reads the netmask with nla_get_be32 into a __be32.  For IPv4
    # that is a network-order mask (ipvsadm passes inet_aton's s_addr); for
    # IPv6 ip_vs_add_service compares the raw value with 1..128, so the
    # prefix length goes as a native integer.  Returned as the native int
    # whose bytes are what the kernel expects.
    return netmask if af == AF_INET6 else htonl(netmask)


def _service_full(svc: Service, idents) -> bytes:
    key = svc.key
    ident, _ = _ident(key, idents)
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


def encode_new_service(family: int, svc: Service, *, seq: int = 0, flags: int = FLAGS_ACK,
                       idents=None) -> bytes:
    return message(family, C.IPVS_CMD_NEW_SERVICE, _service_full(svc, idents), flags=flags, seq=seq)


def encode_set_service(family: int, svc: Service, *, seq: int = 0, flags: int = FLAGS_ACK,
                       idents=None) -> bytes:
    return message(family, C.IPVS_CMD_SET_SERVICE, _service_full(svc, idents), flags=flags, seq=seq)


def encode_del_service(family: int, key: ServiceKey, *, seq: int = 0, flags: int = FLAGS_ACK,
                       idents=None) -> bytes:
    # Only the identifying attributes: the kernel parses a partial entry here.
    return message(family, C.IPVS_CMD_DEL_SERVICE, _ident(key, idents)[1], flags=flags, seq=seq)


def encode_get_service(family: int, key: ServiceKey, *, seq: int = 0, flags: int = FLAGS_ACK,
                       idents=None) -> bytes:
    return message(family, C.IPVS_CMD_GET_SERVICE, _ident(key, idents)[1], flags=flags, seq=seq)


def encode_dump_services(family: int, *, seq: int = 0, flags: int = FLAGS_DUMP) -> bytes:
    return message(family, C.IPVS_CMD_GET_SERVICE, flags=flags, seq=seq)


def encode_zero(family: int, key: ServiceKey | None = None, *, seq: int = 0, flags: int = FLAGS_ACK,
                idents=None) -> bytes:
    """Zero the counters of one service, or of everything when ``key`` is None."""
    body = _ident(key, idents)[1] if key is not None else b""
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

_W_DEST = hdr_word(_DEST_FULL_LEN, C.IPVS_CMD_ATTR_DEST)
_W_D_AF = hdr_word(6, C.IPVS_DEST_ATTR_ADDR_FAMILY)
_W_D_ADDR = hdr_word(20, C.IPVS_DEST_ATTR_ADDR)
_W_D_PORT = hdr_word(6, C.IPVS_DEST_ATTR_PORT)
_W_D_FWD = hdr_word(8, C.IPVS_DEST_ATTR_FWD_METHOD)
_W_D_WEIGHT = hdr_word(8, C.IPVS_DEST_ATTR_WEIGHT)
_W_D_TUN_TYPE = hdr_word(5, C.IPVS_DEST_ATTR_TUN_TYPE)
_W_D_TUN_PORT = hdr_word(6, C.IPVS_DEST_ATTR_TUN_PORT)
_W_D_TUN_FLAGS = hdr_word(6, C.IPVS_DEST_ATTR_TUN_FLAGS)
_W_D_U_THRESH = hdr_word(8, C.IPVS_DEST_ATTR_U_THRESH)
_W_D_L_THRESH = hdr_word(8, C.IPVS_DEST_ATTR_L_THRESH)
_W_GENL = {cmd: genl_word(cmd) for cmd in (C.IPVS_CMD_NEW_DEST, C.IPVS_CMD_SET_DEST)}
# Whole messages, one Struct per service-identity size: nlmsghdr, genlmsghdr
# word, service nest, dest nest.
_DEST_MSG_ADDR = struct.Struct(f"=IHHIII{_SVC_ID_ADDR_LEN + 4}s" + _DEST_FULL_FMT)
_DEST_MSG_FWM = struct.Struct(f"=IHHIII{_SVC_ID_FWM_LEN + 4}s" + _DEST_FULL_FMT)
# Identifying part only (delete): ADDR_FAMILY, ADDR, PORT.
_DEST_ID = struct.Struct("=HH" "HHH2x" "HH16s" "HHH2x")


def _encode_dest_full(family: int, cmd: int, key: ServiceKey, d: Destination, flags: int, seq: int,
                      idents) -> bytes:
    svc_nest = (service_ident(key) if idents is None else idents[key])[1]  # _ident, inlined: hot
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


# An IPv4 real server added by a restore's common line, encoded from its
# parts alone (restore_stream.py): the message is a prefix fixed per service
# (header, genlmsghdr, the service nest, the dest nest's head up to the
# address), the variable middle, and a constant tail (tunnel fields and
# thresholds 0).  Byte for byte what _encode_dest_full makes for the same
# Destination (tests/unit/netlink/test_encode.py holds them together).
_DEST_V4_MID = struct.Struct("=4s12xIH2xIIIi")  # ADDR, PORT, FWD_METHOD, WEIGHT
_DEST_V4_TAIL = struct.Struct("=IB3xIH2xIH2xIIII").pack(
    _W_D_TUN_TYPE, 0, _W_D_TUN_PORT, 0, _W_D_TUN_FLAGS, 0, _W_D_U_THRESH, 0, _W_D_L_THRESH, 0)


class V4Dests:
    """IPv4 real servers added to ``data``/``ends`` from their parts, each
    message one ``pack`` into ``data``: ``prefix(key)`` once per service (the
    headers, the service nest and the dest nest's head), then per real
    server ``pack(prefix, addr4, *words, ...)``, spelt out in
    restore_stream.plan_block: ``addr4`` 4 packed bytes, then the PORT
    header word, the port (network order), the FWD_METHOD word, the
    method, the WEIGHT word, the weight, and ``tail``."""

    #: PORT, FWD_METHOD and WEIGHT attribute headers, as native u32 words
    words = (_W_D_PORT, _W_D_FWD, _W_D_WEIGHT)
    tail = _DEST_V4_TAIL

    def __init__(self, family: int, idents, data: bytearray, ends, flags: int = FLAGS_ACK):
        self.family, self.idents, self.flags = family, idents, flags
        self.data, self.ends = data, ends
        self.pack = struct.Struct(f"={_DEST_V4_PREFIX_LEN}s" + _DEST_V4_MID.format[1:]
                                  + f"{len(_DEST_V4_TAIL)}s").pack

    def prefix(self, key: ServiceKey) -> bytes:
        nest = _ident(key, self.idents)[1]
        return (struct.pack("=IHHIII", _DEST_MSG_ADDR.size, self.family, self.flags, 0, 0,
                            _W_GENL[C.IPVS_CMD_NEW_DEST])
                + nest + struct.pack("=IIH2xI", _W_DEST, _W_D_AF, AF_INET, _W_D_ADDR))


_DEST_V4_PREFIX_LEN = 20 + _SVC_ID_ADDR_LEN + 4 + 16  # headers, service nest, dest nest to ADDR's header


def encode_new_dest(family: int, key: ServiceKey, dest: Destination, *, seq: int = 0,
                    flags: int = FLAGS_ACK, idents=None) -> bytes:
    return _encode_dest_full(family, C.IPVS_CMD_NEW_DEST, key, dest, flags, seq, idents)


def encode_set_dest(family: int, key: ServiceKey, dest: Destination, *, seq: int = 0,
                    flags: int = FLAGS_ACK, idents=None) -> bytes:
    return _encode_dest_full(family, C.IPVS_CMD_SET_DEST, key, dest, flags, seq, idents)


def encode_del_dest(family: int, key: ServiceKey, dest: Destination, *, seq: int = 0,
                    flags: int = FLAGS_ACK, idents=None) -> bytes:
    body = _ident(key, idents)[1] + _DEST_ID.pack(
        _DEST_ID.size, C.IPVS_CMD_ATTR_DEST,
        6, C.IPVS_DEST_ATTR_ADDR_FAMILY, dest.af,
        20, C.IPVS_DEST_ATTR_ADDR, inet_pton(dest.af, dest.addr),
        6, C.IPVS_DEST_ATTR_PORT, htons(dest.port),
    )
    return message(family, C.IPVS_CMD_DEL_DEST, body, flags=flags, seq=seq)


def encode_dump_dests(family: int, key: ServiceKey, *, seq: int = 0, flags: int = FLAGS_DUMP,
                      idents=None) -> bytes:
    return message(family, C.IPVS_CMD_GET_DEST, _ident(key, idents)[1], flags=flags, seq=seq)


# ---------------------------------------------------------------------------
# Timeouts, daemons, info
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


# ---------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------


def _key(obj) -> ServiceKey:
    if isinstance(obj, ServiceKey):
        return obj
    if isinstance(obj, Service):
        return obj.key
    raise ValueError(f"a ServiceKey or Service is needed, not {obj!r}")


def _service(r: b.Request) -> Service:
    if not isinstance(r.service, Service):
        raise ValueError(f"{r.op} needs a Service, not {r.service!r}")
    return r.service


def _dest(r: b.Request) -> Destination:
    if r.dest is None:
        raise ValueError(f"{r.op} needs a Destination")
    return r.dest


def _timeouts(r: b.Request) -> Timeouts:
    if r.timeouts is None:
        raise ValueError(f"{r.op} needs Timeouts")
    return r.timeouts


def _daemon(r: b.Request) -> Daemon:
    if r.daemon is None:
        raise ValueError(f"{r.op} needs a Daemon")
    return r.daemon


#: op -> function(family, request, idents) -> message bytes.
ENCODERS: dict[str, Callable[[int, b.Request, object], bytes]] = {
    b.OP_ADD_SERVICE: lambda f, r, i: encode_new_service(f, _service(r), idents=i),
    b.OP_EDIT_SERVICE: lambda f, r, i: encode_set_service(f, _service(r), idents=i),
    b.OP_DEL_SERVICE: lambda f, r, i: encode_del_service(f, _key(r.service), idents=i),
    b.OP_ZERO: lambda f, r, i: encode_zero(f, None if r.service is None else _key(r.service), idents=i),
    b.OP_FLUSH: lambda f, r, i: encode_flush(f),
    b.OP_ADD_DEST: lambda f, r, i: encode_new_dest(f, _key(r.service), _dest(r), idents=i),
    b.OP_EDIT_DEST: lambda f, r, i: encode_set_dest(f, _key(r.service), _dest(r), idents=i),
    b.OP_DEL_DEST: lambda f, r, i: encode_del_dest(f, _key(r.service), _dest(r), idents=i),
    b.OP_SET_TIMEOUTS: lambda f, r, i: encode_set_timeouts(f, _timeouts(r)),
    b.OP_START_DAEMON: lambda f, r, i: encode_new_daemon(f, _daemon(r)),
    b.OP_STOP_DAEMON: lambda f, r, i: encode_del_daemon(f, _daemon(r)),
}


def encode_request(family: int, request: b.Request, idents=None) -> bytes:
    """The netlink message for one Request (ValueError if it is malformed).
    ``idents``: a cache of encoded service identities (see the module)."""
    try:
        enc = ENCODERS[request.op]
    except KeyError:
        raise ValueError(f"unknown operation {request.op!r}") from None
    try:
        return enc(family, request, idents)
    except (OSError, OverflowError, struct.error) as e:  # bad address, value out of range
        raise ValueError(f"{request.op}: {e}") from None
