"""Learned layouts: the fast decoders of real-server entries and counters.

A dump of 110,000 real servers must decode in a fraction of a second, and
the generic walker (``decode``) costs a few dozen attribute steps per entry.
But every entry of a dump has the same shape: ip_vs_genl_fill_dest writes
the same attributes in the same order, and only where
``IPVS_STATS_ATTR_PAD`` appears depends on the kernel (u64 attributes are
padded to 8-byte alignment on architectures without efficient unaligned
access: seen on User-Mode Linux, not on x86-64).  So the first entry of a
given shape is walked once to *learn* its layout:

* a Struct that reads every attribute header (the values skipped as
  padding), and the tuple of header words it must find;
* a Struct that reads every wanted value (headers and the 32-bit STATS
  skipped), plus an itemgetter that puts the values in Destination's order.

Each following entry is checked against the headers (one unpack, one tuple
comparison) and decoded with one unpack; an entry that does not match is
walked again, and if no layout fits, decoded generically.  So older kernels
(no tunnel attributes, no ADDR_FAMILY, no STATS64) and kernels that pad
still decode correctly, only more slowly.  STATS/STATS64 containers (of
services too) use the same scheme.

The layouts a backend learned are kept by its ``codec.Codec``, keyed by
message or container length (a handful at most: one per padding shape), in
a ``cache.BoundedCache``; without one (``layouts=None``) every entry is
learned afresh (tests).
"""

from __future__ import annotations

import struct
from _socket import AF_INET, AF_INET6, inet_ntop, ntohs
from operator import itemgetter

from ipvsctl.model import Destination, Stats
from ipvsctl.netlink import constants as C
from ipvsctl.netlink import decode
from ipvsctl.netlink.decode import STATS_ORDER, ZERO_STATS
from ipvsctl.netlink.wire import DecodeError, attrs
from ipvsctl.vocab import FWD_MASK

_ZERO10 = (0,) * 10

#: How many layouts a backend keeps per kind.
LAYOUTS_KEPT = 16


class Layout:
    """A learned attribute layout: header check, value Struct, reordering."""

    __slots__ = ("hdrs", "expected", "vals", "order")

    def __init__(self, hdrs: struct.Struct, expected: tuple, vals: struct.Struct, order):
        self.hdrs, self.expected, self.vals, self.order = hdrs, expected, vals, order


_INT_FMT = {1: "B", 2: "H", 4: "I", 8: "Q"}


def _header_words(headers: list[int]) -> tuple:
    """(len, type) pairs, flattened, as the u32 words the header Struct reads."""
    return struct.unpack(f"={len(headers) // 2}I", struct.pack(f"={len(headers)}H", *headers))


# ----- counters -----------------------------------------------------------------


def learn_stats_layout(buf, start: int, end: int) -> Layout | None:
    """The layout of one STATS/STATS64 container, or None if it is not the usual one."""
    hdr_fmt, val_fmt, headers, slots = [], [], [], []
    pos = start
    for atype, s, e in attrs(buf, start, end):
        if s - C.NLA_HDRLEN != pos:
            return None
        alen = e - s
        padded = (alen + 3) & ~3
        pos = s + padded
        if atype not in STATS_ORDER:  # PAD, or something new
            hdr_fmt.append(f"{padded + 4}x")
            val_fmt.append(f"{padded + 4}x")
            continue
        idx = STATS_ORDER.index(atype)
        fmt = _INT_FMT.get(alen)
        if fmt not in ("I", "Q") or idx in slots:
            return None
        slots.append(idx)
        headers.extend((alen + C.NLA_HDRLEN, atype))
        hdr_fmt.append(f"I{padded}x")
        val_fmt.append(f"4x{fmt}" + (f"{padded - alen}x" if padded > alen else ""))
    if pos != end or len(slots) != len(STATS_ORDER):
        return None
    hdrs = struct.Struct("=" + "".join(hdr_fmt))
    vals = struct.Struct("=" + "".join(val_fmt))
    order = None if slots == list(range(len(STATS_ORDER))) else itemgetter(*(slots.index(i) for i in range(10)))
    return Layout(hdrs, _header_words(headers), vals, order)


def decode_stats(buf, start: int, end: int, layouts=None) -> Stats:
    """A STATS or STATS64 container, through a learned layout when one fits
    (``layouts``: a cache of them by container length, or None)."""
    n = end - start
    lay = layouts.get(n) if layouts is not None else None
    if lay is None or lay.hdrs.unpack_from(buf, start) != lay.expected:
        lay = learn_stats_layout(buf, start, end)
        if lay is None:
            return decode.decode_stats(buf, start, end)
        if layouts is not None:
            layouts.put(n, lay)
    v = lay.vals.unpack_from(buf, start)
    if lay.order is not None:
        v = lay.order(v)
    return ZERO_STATS if v == _ZERO10 else Stats(*v)


# ----- real servers ---------------------------------------------------------------

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
_N_DEST_FIELDS = len(_DEST_FIELDS) + len(STATS_ORDER)
# struct format of each field by its attribute length (_INT_FMT otherwise).
_DEST_FIELD_FMT = {C.IPVS_DEST_ATTR_WEIGHT: {4: "i"}, C.IPVS_DEST_ATTR_ADDR: {4: "4s", 16: "16s"}}


def learn_dest_layout(payload) -> Layout | None:
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
            elif ctx == 2 and atype in STATS_ORDER:
                idx = len(_DEST_FIELDS) + STATS_ORDER.index(atype)
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
    if slots == list(range(_N_DEST_FIELDS)):
        order = None  # the kernel's order is Destination's order: no reordering
    else:
        position = {idx: i for i, idx in enumerate(slots)}
        order = itemgetter(*(position[i] for i in range(_N_DEST_FIELDS)))
    return Layout(hdrs, _header_words(headers), vals, order)


def decode_dest(payload, default_af: int = AF_INET, layouts=None) -> Destination:
    """A destination from an IPVS_CMD_NEW_DEST dump entry (payload after
    nlmsghdr), through a learned layout when one fits (``layouts``: a cache
    of them by payload length, or None); else decode.decode_dest.

    ``default_af`` is the service's family, used only by kernels that do not
    report the destination's own family.
    """
    n = len(payload)
    lay = layouts.get(n) if layouts is not None else None
    if lay is None or lay.hdrs.unpack_from(payload) != lay.expected:
        lay = learn_dest_layout(payload)
        if lay is None:
            return decode.decode_dest(payload, default_af)
        if layouts is not None:
            layouts.put(n, lay)
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
