"""The kernel's IPVS replies as model values: the generic decoders.

Strategy: no I/O.  Every decoder here walks the attributes one by one
(``wire.attr_table``): it takes whatever order, padding or extra attributes
a kernel sends, and is the reference the fast decoders are tested against
(``layouts``: one learned layout per dump; ``runs``: a whole received buffer
in columns).  Values come out in host units, as the model wants them.

Kernel facts decoded here:

* the kernel reports ``IP_VS_SVC_F_HASHED`` on every listed service (its own
  bookkeeping); it is stripped, so a service read back equals the one added;
* a real server's forwarding method shares its attribute with other
  connection flag bits, which are stripped too (``FWD_MASK``);
* ports and the GUE tunnel port are ``__be16``; the service netmask is an
  IPv4 network-order mask or an IPv6 prefix length (see encode._netmask_wire);
* stats come twice, 32-bit ``STATS`` and ``STATS64``: STATS64 is preferred;
  u64 attributes may be preceded by ``IPVS_STATS_ATTR_PAD`` on architectures
  that need 8-byte alignment, which the walk skips;
* ``ADDR_FAMILY`` of a real server exists since Linux 3.18; before, a real
  server had its service's family;
* the ``IPVS_CMD_SET_INFO`` reply puts ``IPVS_INFO_ATTR_*`` at the first
  level, where the same numbers mean SERVICE and DEST in every other reply.
"""

from __future__ import annotations

import struct
from _socket import AF_INET, AF_INET6, ntohl

from ipvsctl.model import Daemon, Destination, Info, Service, ServiceKey, Stats, Timeouts
from ipvsctl.netlink import constants as C
from ipvsctl.netlink.wire import (U32, attr_table, get_addr, get_be16, get_str, get_uint, nested,
                                  payload_attrs, require)
from ipvsctl.vocab import FWD_MASK, SVC_F_HASHED

#: The counters of a STATS/STATS64 container, in Stats' order.
STATS_ORDER = (
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


def stats_from(values: tuple) -> Stats:
    # A fresh table has all-zero counters everywhere: share one frozen value.
    return ZERO_STATS if values == _ZERO10 else Stats(*values)


def decode_stats(buf, start: int, end: int) -> Stats:
    """A STATS or STATS64 container (integer width taken from each attribute)."""
    t = attr_table(buf, start, end)
    return stats_from(tuple(get_uint(buf, t[a]) if a in t else 0 for a in STATS_ORDER))


def _stats_of(buf, table: dict, a64: int, a32: int, stats) -> Stats | None:
    span = table.get(a64) or table.get(a32)
    return stats(buf, *span) if span else None


# ----- services ---------------------------------------------------------------


def decode_service(payload, stats=decode_stats) -> Service:
    """A service from an IPVS_CMD_NEW_SERVICE message (dump entry or GET
    reply).  ``stats``: the decoder of its counters (a learned one, see
    layouts.Layouts.stats)."""
    _cmd, top = payload_attrs(payload)
    s, e = nested(top, C.IPVS_CMD_ATTR_SERVICE, "service")
    return decode_service_attrs(payload, s, e, stats)


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


def decode_service_attrs(buf, start: int, end: int, stats=decode_stats) -> Service:
    t = attr_table(buf, start, end)
    require(t, C.IPVS_SVC_ATTR_AF, what="service")
    af = get_uint(buf, t[C.IPVS_SVC_ATTR_AF])
    if C.IPVS_SVC_ATTR_FWMARK in t:
        key = ServiceKey(af=af, fwmark=get_uint(buf, t[C.IPVS_SVC_ATTR_FWMARK]))
    else:
        require(t, C.IPVS_SVC_ATTR_PROTOCOL, C.IPVS_SVC_ATTR_ADDR, C.IPVS_SVC_ATTR_PORT, what="service")
        key = ServiceKey(
            af=af,
            protocol=get_uint(buf, t[C.IPVS_SVC_ATTR_PROTOCOL]),
            addr=get_addr(buf, t[C.IPVS_SVC_ATTR_ADDR], af),
            port=get_be16(buf, t[C.IPVS_SVC_ATTR_PORT]),
        )
    flags = 0
    if C.IPVS_SVC_ATTR_FLAGS in t:
        flags = U32.unpack_from(buf, t[C.IPVS_SVC_ATTR_FLAGS][0])[0] & ~SVC_F_HASHED
    netmask = 0xFFFFFFFF if af != AF_INET6 else 128
    if C.IPVS_SVC_ATTR_NETMASK in t:
        raw = U32.unpack_from(buf, t[C.IPVS_SVC_ATTR_NETMASK][0])[0]
        # See encode._netmask_wire: IPv4 network-order mask, IPv6 native prefix length.
        netmask = raw if af == AF_INET6 else ntohl(raw)
    return Service(
        key=key,
        scheduler=get_str(buf, t[C.IPVS_SVC_ATTR_SCHED_NAME]) if C.IPVS_SVC_ATTR_SCHED_NAME in t else "",
        flags=flags,
        timeout=get_uint(buf, t[C.IPVS_SVC_ATTR_TIMEOUT]) if C.IPVS_SVC_ATTR_TIMEOUT in t else 0,
        netmask=netmask,
        pe_name=get_str(buf, t[C.IPVS_SVC_ATTR_PE_NAME]) if C.IPVS_SVC_ATTR_PE_NAME in t else "",
        stats=_stats_of(buf, t, C.IPVS_SVC_ATTR_STATS64, C.IPVS_SVC_ATTR_STATS, stats),
    )


# ----- destinations -----------------------------------------------------------


def decode_dest(payload, default_af: int = AF_INET) -> Destination:
    """A destination from an IPVS_CMD_NEW_DEST dump entry (payload after
    nlmsghdr).  ``default_af`` is the service's family, used only by kernels
    that do not report the destination's own family."""
    _cmd, top = payload_attrs(payload)
    s, e = nested(top, C.IPVS_CMD_ATTR_DEST, "destination")
    return decode_dest_attrs(payload, s, e, default_af)


def decode_dest_attrs(buf, start: int, end: int, default_af: int = AF_INET) -> Destination:
    """An IPVS_CMD_ATTR_DEST container's content."""
    t = attr_table(buf, start, end)
    require(t, C.IPVS_DEST_ATTR_ADDR, C.IPVS_DEST_ATTR_PORT, what="destination")

    def u(a: int, default: int = 0) -> int:
        span = t.get(a)
        return get_uint(buf, span) if span else default

    af = u(C.IPVS_DEST_ATTR_ADDR_FAMILY, default_af)
    weight = u(C.IPVS_DEST_ATTR_WEIGHT)
    if weight >= 1 << 31:  # the kernel's weight is an int
        weight -= 1 << 32
    span = t.get(C.IPVS_DEST_ATTR_TUN_PORT)
    return Destination(
        af=af,
        addr=get_addr(buf, t[C.IPVS_DEST_ATTR_ADDR], af),
        port=get_be16(buf, t[C.IPVS_DEST_ATTR_PORT]),
        fwd=u(C.IPVS_DEST_ATTR_FWD_METHOD) & FWD_MASK,
        weight=weight,
        u_threshold=u(C.IPVS_DEST_ATTR_U_THRESH),
        l_threshold=u(C.IPVS_DEST_ATTR_L_THRESH),
        tun_type=u(C.IPVS_DEST_ATTR_TUN_TYPE),
        tun_port=get_be16(buf, span) if span else 0,
        tun_flags=u(C.IPVS_DEST_ATTR_TUN_FLAGS),
        active_conns=u(C.IPVS_DEST_ATTR_ACTIVE_CONNS),
        inact_conns=u(C.IPVS_DEST_ATTR_INACT_CONNS),
        persist_conns=u(C.IPVS_DEST_ATTR_PERSIST_CONNS),
        stats=_stats_of(buf, t, C.IPVS_DEST_ATTR_STATS64, C.IPVS_DEST_ATTR_STATS, decode_stats),
    )


# ----- daemons, timeouts, info ------------------------------------------------


def decode_daemon(payload) -> Daemon:
    _cmd, top = payload_attrs(payload)
    s, e = nested(top, C.IPVS_CMD_ATTR_DAEMON, "daemon")
    t = attr_table(payload, s, e)
    require(t, C.IPVS_DAEMON_ATTR_STATE, what="daemon")
    group = None
    if C.IPVS_DAEMON_ATTR_MCAST_GROUP6 in t:
        group = get_addr(payload, t[C.IPVS_DAEMON_ATTR_MCAST_GROUP6], AF_INET6)
    elif C.IPVS_DAEMON_ATTR_MCAST_GROUP in t:
        group = get_addr(payload, t[C.IPVS_DAEMON_ATTR_MCAST_GROUP], AF_INET)

    def u(a: int) -> int:
        span = t.get(a)
        return get_uint(payload, span) if span else 0

    return Daemon(
        state=u(C.IPVS_DAEMON_ATTR_STATE),
        mcast_ifn=get_str(payload, t[C.IPVS_DAEMON_ATTR_MCAST_IFN]) if C.IPVS_DAEMON_ATTR_MCAST_IFN in t else "",
        syncid=u(C.IPVS_DAEMON_ATTR_SYNC_ID),
        sync_maxlen=u(C.IPVS_DAEMON_ATTR_SYNC_MAXLEN),
        mcast_group=group,
        mcast_port=u(C.IPVS_DAEMON_ATTR_MCAST_PORT),
        mcast_ttl=u(C.IPVS_DAEMON_ATTR_MCAST_TTL),
    )


def decode_timeouts(payload) -> Timeouts:
    """The IPVS_CMD_SET_CONFIG reply to GET_CONFIG (first-level attributes)."""
    _cmd, t = payload_attrs(payload)

    def u(a: int) -> int:
        span = t.get(a)
        return get_uint(payload, span) if span else 0

    return Timeouts(
        tcp=u(C.IPVS_CMD_ATTR_TIMEOUT_TCP),
        tcp_fin=u(C.IPVS_CMD_ATTR_TIMEOUT_TCP_FIN),
        udp=u(C.IPVS_CMD_ATTR_TIMEOUT_UDP),
    )


def decode_info(payload) -> Info:
    """The IPVS_CMD_SET_INFO reply to GET_INFO (first-level IPVS_INFO_ATTR_*)."""
    _cmd, t = payload_attrs(payload)
    require(t, C.IPVS_INFO_ATTR_VERSION, C.IPVS_INFO_ATTR_CONN_TAB_SIZE, what="info")
    return Info(
        version=get_uint(payload, t[C.IPVS_INFO_ATTR_VERSION]),
        conn_tab_size=get_uint(payload, t[C.IPVS_INFO_ATTR_CONN_TAB_SIZE]),
    )
