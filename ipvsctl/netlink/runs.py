"""The columnar run decoder: a received buffer of real-server entries at once.

Listing a service with tens of thousands of real servers must not build an
object per server and per counter.  The transport hands over each received
buffer's consecutive dump entries as one "run" (whole netlink messages,
headers included, their netlink headers already checked equal by
``wire.same_headers``), and when every message has the layout learned from
the first one, the whole run is read in C, with strided slices (one byte of
every message at once):

* the address's four bytes and the port's two become six byte planes;
* the settings (forwarding method ... persistent connections, and the
  address family) sit together in every entry: that span, attribute
  headers included, is cut out of every message as one bytes "blob" by one
  ``iter_unpack``; equal blobs are one dict entry, so each distinct blob is
  checked (its attribute headers, AF_INET) and decoded once into the
  settings tuple of ``rows.DestinationRows``, in host units (the forwarding
  method without its flag bits, the tunnel port in host order): the model's
  values, made here, once per distinct blob, so that nothing after the
  decoder sees the wire's forms;
* every other byte that fixes the layout (the genl header, the destination
  nest header, the headers of the address, port and counter attributes) is
  compared with the learned message's (``wire.FixedBytes``: a strided slice
  per byte across a big run, one unpack of a small run).

Counters are not read at all: this path serves listings that do not print
them.  Any mismatch returns None, and the caller decodes that run entry by
entry (``layouts.decode_dest``).  A backend keeps the layouts it learned by
message length in its ``codec.Codec`` (``layouts``; None: learn afresh).
"""

from __future__ import annotations

import struct
from _socket import AF_INET, AF_INET6, ntohs
from operator import itemgetter

from ipvsctl.cache import BoundedCache
from ipvsctl.netlink import constants as C
from ipvsctl.netlink.layouts import LAYOUTS_KEPT
from ipvsctl.netlink.rows import SETTINGS, DestinationRows
from ipvsctl.netlink.wire import U16, U32, DecodeError, FixedBytes, attrs
from ipvsctl.vocab import FWD_MASK

#: How many distinct settings blobs a layout keeps decoded (counters differ
#: per server on a busy table: stay bounded).
BLOBS_KEPT = 4096

# The attribute of each settings field, with the struct code it needs by size.
_FIELD_ATTRS = {
    "fwd": (C.IPVS_DEST_ATTR_FWD_METHOD, {4: "I"}),
    "weight": (C.IPVS_DEST_ATTR_WEIGHT, {4: "i"}),
    "u_threshold": (C.IPVS_DEST_ATTR_U_THRESH, {4: "I"}),
    "l_threshold": (C.IPVS_DEST_ATTR_L_THRESH, {4: "I"}),
    "tun_type": (C.IPVS_DEST_ATTR_TUN_TYPE, {1: "B"}),
    "tun_port": (C.IPVS_DEST_ATTR_TUN_PORT, {2: "H"}),
    "tun_flags": (C.IPVS_DEST_ATTR_TUN_FLAGS, {2: "H"}),
    "active_conns": (C.IPVS_DEST_ATTR_ACTIVE_CONNS, {4: "I"}),
    "inact_conns": (C.IPVS_DEST_ATTR_INACT_CONNS, {4: "I"}),
    "persist_conns": (C.IPVS_DEST_ATTR_PERSIST_CONNS, {4: "I"}),
}
_RUN_SETTINGS = tuple(_FIELD_ATTRS[name] for name in SETTINGS)  # in the settings tuple's order
_RUN_BLOB_ATTRS = {atype for atype, _codes in _RUN_SETTINGS} | {C.IPVS_DEST_ATTR_ADDR_FAMILY}
_FWD = SETTINGS.index("fwd")
_TUN_PORT = SETTINGS.index("tun_port")
_first = itemgetter(0)
#: An IPv4 entry's IPVS_DEST_ATTR_ADDR_FAMILY value: the only family a layout decodes.
_AF_INET_BYTES = U16.pack(AF_INET)


class _LayoutMismatch(Exception):
    pass


def _blob_settings(lay: _RunLayout, blob: bytes) -> tuple:
    """The settings tuple of one blob, checked (its attribute headers,
    AF_INET) and in host units; _LayoutMismatch if it does not fit."""
    if blob[lay.blob_af:lay.blob_af + 2] != _AF_INET_BYTES or any(
            blob[off:off + 4] != hdr for off, hdr in lay.blob_headers):
        raise _LayoutMismatch
    values = lay.blob_values.unpack(blob)
    if lay.order is not None:
        values = lay.order(values)
    values = list(values)
    values[_FWD] &= FWD_MASK
    values[_TUN_PORT] = ntohs(values[_TUN_PORT])
    return tuple(values)


class _RunLayout:
    """One learned destination-entry layout (see the module)."""

    __slots__ = ("length", "planes", "fixed", "first", "blob", "blob_values", "blob_headers",
                 "blob_af", "af_at", "order", "settings")

    def __init__(self, length: int, first: bytes):
        self.length = length
        self.first = first  # the message it was learned from


def _learn_run_layout(run) -> _RunLayout | None:
    """The layout of the run's first message, or None if it is not a plain
    entry.  An IPv6 entry has the same layout as an IPv4 one (the kernel
    writes 16 address bytes for both), so it teaches the layout too; only
    IPv4 entries decode by it (``_AF_INET_BYTES``)."""
    (length,) = U32.unpack_from(run, 0)
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
    if af is None or af[1] != 2 or U16.unpack_from(first, af[0])[0] not in (AF_INET, AF_INET6):
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
    lay.af_at = af[0]  # in a message, where the address family's two bytes are
    lay.order = None if slots == sorted(slots) else itemgetter(*(slots.index(i) for i in range(len(slots))))
    # Every other byte that fixes the layout: the genl header, the nest's
    # header and the headers of the attributes outside the blob.
    fixed = [*range(C.NLMSG_HDRLEN, C.NLMSG_HDRLEN + C.GENL_HDRLEN), *range(ds - C.NLA_HDRLEN, ds)]
    for off, atype in headers.items():
        if atype not in _RUN_BLOB_ATTRS:
            fixed.extend(range(off, off + C.NLA_HDRLEN))
    lay.fixed = FixedBytes(length, fixed)
    lay.settings = BoundedCache(BLOBS_KEPT, lambda blob: _blob_settings(lay, blob))
    return lay


def decode_dest_run(run, layouts=None) -> DestinationRows | None:
    """Destination dump entries (whole messages) in columns, or None when any
    of them is not a plain IPv4 entry of the learned layout.  ``layouts``: the
    layouts learned before, by message length (cache.BoundedCache), or None."""
    if len(run) < C.NLMSG_HDRLEN:
        return None
    lay = _layout_of(run, layouts)
    return None if lay is None else _decode(lay, run)


def _layout_of(run, layouts) -> _RunLayout | None:
    """The layout for the length of the run's first message: the one learned
    before (``layouts``), else learned from that message (and kept)."""
    (length,) = U32.unpack_from(run, 0)
    lay = layouts.get(length) if layouts is not None else None
    if lay is None:
        lay = _learn_run_layout(run)
        if lay is not None and layouts is not None:
            layouts.put(length, lay)
    return lay


def _decode(lay: _RunLayout, run) -> DestinationRows | None:
    """decode_dest_run by this layout."""
    count, rest = divmod(len(run), lay.length)
    data = bytes(run)
    if rest or not lay.fixed.same(data, count, lay.first):
        return None
    try:
        settings = list(map(lay.settings.__getitem__, map(_first, lay.blob.iter_unpack(data))))
    except _LayoutMismatch:
        return None
    planes = tuple(bytearray(data[off::lay.length]) for off in lay.planes)
    return DestinationRows(planes, settings)


def decode_dest_runs(runs: list, layouts=None) -> list[DestinationRows | None]:
    """Many runs at once (one per service, each as ``decode_dest_run`` takes
    it): what ``decode_dest_run`` gives for each with these ``layouts``
    (None: layouts learned for this call, shared by its runs), decoded a
    message length at a time as one joined run and then cut per run.

    A table of 10,000 services of ten real servers costs one layout check,
    one settings pass and six byte planes per group instead of per service.
    A group is the runs whose first entry is IPv4: IPv6 entries have the
    same length (16 address bytes for both families), and a table that
    mixes IPv4 and IPv6 services would otherwise make every group fail
    whole.  A run whose first entry is not IPv4 is None without a look
    (decode_dest_run, by the same layout, stops at that entry).  A group
    that does not decode whole (an entry of another layout or family after
    the first) is decoded run by run."""
    out: list[DestinationRows | None] = [None] * len(runs)
    if layouts is None:
        layouts = BoundedCache(LAYOUTS_KEPT)
    groups: dict[int, tuple[_RunLayout, list[int]]] = {}  # by message length
    for i, run in enumerate(runs):
        if len(run) >= C.NLMSG_HDRLEN:
            lay = _layout_of(run, layouts)
            if lay is not None and run[lay.af_at:lay.af_at + 2] == _AF_INET_BYTES:
                groups.setdefault(lay.length, (lay, []))[1].append(i)
    for length, (lay, members) in groups.items():
        whole = not any(len(runs[i]) % length for i in members)
        joined = _decode(lay, b"".join([runs[i] for i in members])) if whole else None
        if joined is None:
            for i in members:
                out[i] = _decode(lay, runs[i])
            continue
        planes, settings = joined.planes, joined.settings
        # Each service's order, found for the group at once: up[k] (down[k])
        # is 1 when entry k+1's key is above (below) entry k's.  The kernel
        # lists servers newest first, so a service restored from a sorted
        # dump comes exactly reversed: its rows in ipvsadm's order are cut
        # from the group reversed once, and kept beside the kernel's order
        # (--nosort shows that one), so that ordering has nothing to do.
        # Planes with one value throughout the group never decide: left out.
        keys = list(zip(*[p for p in planes if p.count(p[0]) != len(p)] or planes))
        following = keys[1:]
        up = bytes(map(tuple.__lt__, keys, following))
        down = bytes(map(tuple.__gt__, keys, following))
        total = len(settings)
        a, b, c, d, h, l = planes  # cut below without a comprehension per service: ~1 us less each
        backwards = None
        pos = 0
        for i in members:
            end = pos + len(runs[i]) // length
            rows = DestinationRows((a[pos:end], b[pos:end], c[pos:end], d[pos:end], h[pos:end], l[pos:end]),
                                   settings[pos:end])
            if up.find(0, pos, end - 1) < 0:
                rows.known_ascending()
            elif down.find(0, pos, end - 1) < 0:
                if backwards is None:
                    backwards = (tuple([p[::-1] for p in planes]), settings[::-1])
                (ra, rb, rc, rd, rh, rl), rsettings = backwards
                lo, hi = total - end, total - pos
                ordered = DestinationRows((ra[lo:hi], rb[lo:hi], rc[lo:hi], rd[lo:hi], rh[lo:hi], rl[lo:hi]),
                                          rsettings[lo:hi])
                ordered.known_ascending()
                rows.known_descending(ordered)
            out[i] = rows
            pos = end
    return out
