"""ipvsadm's listing order, reproduced exactly.

Strategy: ipvsadm sorts services by (fwmark, af, protocol, address, port) and
real servers by (address, port) with qsort and comparators that subtract
unsigned 32-bit fields and read the result as a signed int.  Where no
subtraction wraps, that is an ordinary total order and a key sort gives the
same answer (fast path).  Where one can wrap (fwmarks or addresses 2^31 or
more apart, e.g. 10.0.0.1 against 192.168.0.1), the comparator is circular,
not a total order, and the result depends on the sorting algorithm: then we
run the same comparator through the same top-down merge sort that glibc's
qsort uses (Debian 12, glibc 2.36), so the order still matches byte for byte.
"""

from __future__ import annotations

import _socket as socket  # the C module: socket.py's enum classes cost ~6 ms of start-up

from operator import itemgetter

from ipvsctl.model import AF_INET, AF_INET6, Destination, Service
from ipvsctl.netlink.rows import DestinationRows

_inet_aton = socket.inet_aton
_addr_port = itemgetter(0, 1)

_SPAN = 2**31


def _wrap(diff: int) -> int:
    """The C expression (int)(a - b) for 32-bit unsigned a and b."""
    diff &= 0xFFFFFFFF
    return diff - 2**32 if diff >= _SPAN else diff


def _words(af: int, addr: str | None) -> tuple[int, ...]:
    if addr is None:
        return (0, 0, 0, 0) if af == AF_INET6 else (0,)
    if af == AF_INET6:
        p = socket.inet_pton(AF_INET6, addr)
        return tuple(int.from_bytes(p[i:i + 4], "big") for i in range(0, 16, 4))
    return (int.from_bytes(socket.inet_aton(addr), "big"),)


def _addr_cmp(af1: int, w1: tuple, w2: tuple) -> int:
    # ipvsadm picks the width from the first entry's family only.
    n = 4 if af1 == AF_INET6 else 1
    w1 = w1 + (0,) * (4 - len(w1))
    w2 = w2 + (0,) * (4 - len(w2))
    for i in range(n):
        r = _wrap(w1[i] - w2[i])
        if r:
            return r
    return 0


def _fits(values) -> bool:
    """True when no pairwise 32-bit subtraction among values can wrap."""
    values = list(values)
    return not values or max(values) - min(values) < _SPAN


def _msort(items: list, cmp) -> list:
    """glibc's msort_with_tmp: top-down, left half first, stable on ties."""
    n = len(items)
    if n <= 1:
        return items
    n1 = n // 2
    left = _msort(items[:n1], cmp)
    right = _msort(items[n1:], cmp)
    out = []
    i = j = 0
    while i < len(left) and j < len(right):
        if cmp(left[i], right[j]) <= 0:
            out.append(left[i])
            i += 1
        else:
            out.append(right[j])
            j += 1
    out.extend(left[i:])
    out.extend(right[j:])
    return out


def sort_services(entries: list, service_of=lambda e: e) -> list:
    """Order entries (services, or anything ``service_of`` maps to one)."""
    keyed = []
    for e in entries:
        s: Service = service_of(e)
        k = s.key
        keyed.append((k.fwmark, k.af, k.protocol, _words(k.af, k.addr), k.port, e))
    # The fast path is exact when no field's subtraction can wrap.
    safe = _fits(t[0] for t in keyed)
    if safe:
        groups: dict = {}
        for t in keyed:
            groups.setdefault(t[:3], []).append(t[3])
        for words in groups.values():
            width = max(len(w) for w in words)
            for i in range(width):
                if not _fits(w[i] if i < len(w) else 0 for w in words):
                    safe = False
                    break
            if not safe:
                break
    if safe:
        return [t[5] for t in sorted(keyed, key=lambda t: t[:5])]

    def cmp(a, b):
        r = _wrap(a[0] - b[0]) or (a[1] - b[1]) or (a[2] - b[2])
        if r:
            return r
        return _addr_cmp(a[1], a[3], b[3]) or (a[4] - b[4])

    return [t[5] for t in _msort(keyed, cmp)]


def rows_in_order(rows: DestinationRows) -> DestinationRows | None:
    """The servers of ``rows`` in ipvsadm's order, still in columns; None
    when ipvsadm's comparator can wrap between them (addresses 2^31 or more
    apart), which only the general path below reproduces."""
    if len(rows) < 2:
        return rows
    first = rows.planes[0]
    # Addresses 2^31 or more apart need first bytes 128 or more apart.
    if max(first) - min(first) >= 128:
        lo, hi = min(rows.keys()), max(rows.keys())
        if int.from_bytes(bytes(hi[:4]), "big") - int.from_bytes(bytes(lo[:4]), "big") >= _SPAN:
            return None
    known = rows.ordered()
    if known is not None:
        return known
    planes, settings = rows.in_key_order()
    if planes is rows.planes:
        return rows
    return DestinationRows(tuple(planes), list(settings))


def sort_destinations(dests: list[Destination]) -> list[Destination]:
    """A service's real servers in ipvsadm's order (a DestinationRows stays
    one, in columns, where it can)."""
    if isinstance(dests, DestinationRows):
        ordered = rows_in_order(dests)
        if ordered is not None:
            return ordered
        dests = list(dests)
    if len(dests) < 2:
        return dests
    if all(d.af == AF_INET for d in dests):
        # The common case, cheaply: packed IPv4 bytes order like the numbers.
        keyed4 = [(_inet_aton(d.addr), d.port, d) for d in dests]
        lo = min(keyed4)[0]
        hi = max(keyed4)[0]
        if int.from_bytes(hi, "big") - int.from_bytes(lo, "big") < _SPAN:
            keyed4.sort(key=_addr_port)
            return [t[2] for t in keyed4]
    keyed = [(d.af, _words(d.af, d.addr), d.port, d) for d in dests]
    if len({t[0] for t in keyed}) <= 1:
        width = max((len(t[1]) for t in keyed), default=1)
        if all(_fits(t[1][i] for t in keyed) for i in range(width)):
            return [t[3] for t in sorted(keyed, key=lambda t: (t[1], t[2]))]

    def cmp(a, b):
        return _addr_cmp(a[0], a[1], b[1]) or (a[2] - b[2])

    return [t[3] for t in _msort(keyed, cmp)]

