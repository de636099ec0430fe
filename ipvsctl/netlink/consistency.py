"""Is a dump a table that existed?  Pure checks over what was read.

The guarantee ipvsctl gives for every listing (docs/design.md, "Reads that
are never silently torn"): every entry that existed throughout the read
appears exactly once, and every entry shown existed at some moment of it.
An entry that came or went during the read may or may not appear.

IPVS dumps are positional, so a dump that crossed a change can repeat an
entry (certain, and harmless once the repeat is dropped: no list holds one
key twice) or skip one (invisible in the dump itself).  A skip is caught by
comparing the dump with an atomic snapshot of the list's keys taken after
it: an entry that existed throughout the read is in the snapshot, so a dump
that *covers* the snapshot (holds every key of it) is whole.  When the
snapshot was taken long after the dump started (the service list, checked
after every service's real servers were read), only the keys that were also
in a snapshot taken right after the dump are required: an entry added in
between did not exist throughout the read.

Keys: a real server is its 6-byte (IPv4 address, port in network order) in
the IPv4 snapshots, and ``(af, addr, port)`` otherwise; a service is
``legacy_service_key`` for IPv4 and its ServiceKey otherwise.
"""

from __future__ import annotations

import os
from _socket import inet_aton
from operator import attrgetter, eq, itemgetter

from ipvsctl.model import AF_INET, Destination, ServiceKey
from ipvsctl.netlink.encode import identity_family
from ipvsctl.netlink.rows import DestinationRows

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: collections.abc imports collections (start-up time)
    from collections.abc import Iterable, Sequence


# --- one pass ------------------------------------------------------------------

#: The least room the kernel gives one part of a dump: NLMSG_GOODSIZE,
#: SKB_WITH_OVERHEAD(PAGE_SIZE) for 4 KiB pages, which is 3776 bytes on Linux
#: 6.1 x86-64 and no less than 3328 with the largest MAX_SKB_FRAGS (45).
DUMP_PART_FLOOR = 3072
#: netlink_dump() first tries a part of the size the socket's receives ask
#: for (max_recvmsg_len: ours are transport.RECV_BUFSIZE, which the kernel caps at
#: 16 or 32 KiB depending on its version), without reclaiming memory; when
#: that fails it falls back to NLMSG_GOODSIZE.  So a part bigger than any
#: NLMSG_GOODSIZE (below the page size, or 8 KiB, by at least the 256 bytes
#: of skb_shared_info) had the big room, at least this much.
GOODSIZE_CEILING = min(os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096, 8192) - 256
LARGE_PART_FLOOR = 12288
#: How much longer an IPVS dump entry can be than the longest one seen: a
#: real-server entry has a fixed size; a service entry varies with its
#: scheduler's and persistence engine's names (each at most 16 bytes).
ENTRY_SIZE_MARGIN = 64


class DumpShape:
    """How the kernel cut the last dump into parts (one part per received
    buffer), to tell whether the dump was read in a single pass.

    IPVS fills a part with entries until the next one does not fit, under
    __ip_vs_mutex, and resumes the next part at an index.  A dump whose
    entries all came in one part was therefore read in one hold of the lock,
    *if* that part was not full: had it been full, the entries after it would
    have come in the next part, and a deletion in between can shift them
    under the index so that the next part is empty and they are skipped.
    A part is provably not full when its bytes and one more entry (the
    largest seen, plus ``ENTRY_SIZE_MARGIN``) fit in the least room it can
    have had: ``DUMP_PART_FLOOR``, or ``LARGE_PART_FLOOR`` when it is bigger
    than any NLMSG_GOODSIZE.  (tests/kernel/test_torn_dumps.py checks the
    running kernel's part sizes against these bounds.)
    """

    __slots__ = ("parts", "first_bytes", "largest", "sizes")

    def __init__(self):
        self.parts = 0  # received buffers that carried entries
        self.first_bytes = 0
        self.largest = 0  # the longest entry, header included
        self.sizes: list[int] = []  # of every part, for the tests of the rule

    def part(self, nbytes: int, largest: int) -> None:
        self.parts += 1
        self.sizes.append(nbytes)
        if self.parts == 1:
            self.first_bytes = nbytes
        if largest > self.largest:
            self.largest = largest

    @property
    def one_pass(self) -> bool:
        """True when every entry came from one pass under the kernel's lock."""
        if self.parts != 1:
            return self.parts == 0
        return one_part_is_one_pass(self.first_bytes, self.largest)


def one_part_is_one_pass(nbytes: int, largest: int) -> bool:
    """Whether a dump whose entries all came in one part of ``nbytes``,
    the longest entry ``largest`` bytes, was provably read in one pass (the
    part was not full: see DumpShape)."""
    need = nbytes + ((largest + 3) & ~3) + ENTRY_SIZE_MARGIN
    if need <= DUMP_PART_FLOOR:
        return True
    return nbytes > GOODSIZE_CEILING and need <= LARGE_PART_FLOOR


class ServiceGone(Exception):
    """An atomic snapshot found the service gone (ESRCH)."""


class SnapshotUnavailable(Exception):
    """No atomic snapshot can be made here (no IPv4 socket, no ctypes, an
    unexpected refusal): the checks fall back to a second dump."""


# --- real servers -------------------------------------------------------------


def without_repeated_dests(dests: Sequence[Destination]) -> tuple[Sequence[Destination], bool]:
    """(the dests with every repeat after the first dropped, whether there was one)."""
    if isinstance(dests, DestinationRows):
        if not dests.has_repeats():
            return dests, False
        dests = list(dests)
    seen: set = set()
    kept = []
    for d in dests:
        k = (d.af, d.addr, d.port)
        if k not in seen:
            seen.add(k)
            kept.append(d)
    if len(kept) == len(dests):
        return dests, False
    return kept, True


def ipv4_dest_key(d: Destination) -> bytes:
    return inet_aton(d.addr) + d.port.to_bytes(2, "big")


def covers_ipv4_snapshot(dests: Sequence[Destination], planes: tuple[bytes, ...]) -> bool:
    """Does the listing hold every real server of an atomic IPv4 snapshot
    (six byte planes, see ``legacy.LegacySnapshots.dest_planes``)?"""
    if isinstance(dests, DestinationRows):
        if len(dests) == len(planes[0]) and all(map(bytes.__eq__, map(bytes, dests.planes), planes)):
            return True  # the same servers in the same order: the usual case, decided in C
        have = set(map(bytes, zip(*dests.planes)))
    else:
        have = {ipv4_dest_key(d) for d in dests if d.af == AF_INET}
    return all(map(have.__contains__, map(bytes, zip(*planes))))


def has_foreign_dests(dests: Sequence[Destination], af: int) -> bool:
    """Real servers of another address family than their service's (IPv6
    behind an IPv4 address, tunnelled): the IPv4 snapshot leaves them out."""
    if isinstance(dests, DestinationRows):
        return af != AF_INET
    return any(d.af != af for d in dests)


def covers_dests(dests: Sequence[Destination], again: Iterable[Destination], af: int | None = None) -> bool:
    """Does ``dests`` hold every real server of ``again`` (of family ``af``
    only, when given)?"""
    if isinstance(dests, DestinationRows) and isinstance(again, DestinationRows) and af in (None, AF_INET):
        # Both in columns (a big plain listing read twice): decided in C,
        # without a Destination per server.
        if len(dests) == len(again) and all(map(eq, dests.planes, again.planes)):
            return True
        have_keys = set(zip(*dests.planes))
        return all(map(have_keys.__contains__, zip(*again.planes)))
    have = {(d.af, d.addr, d.port) for d in dests}
    return all((d.af, d.addr, d.port) in have for d in again if af is None or d.af == af)


# --- services -----------------------------------------------------------------


def without_repeated_services(services: list) -> tuple[list, bool]:
    """(the services with every repeated key after the first dropped, whether there was one)."""
    seen: set = set()
    kept = []
    for s in services:
        if s.key not in seen:
            seen.add(s.key)
            kept.append(s)
    return kept, len(kept) != len(services)


def legacy_service_key(key: ServiceKey) -> tuple[int, bytes, int, int]:
    """An IPv4 service's key as the socket-option snapshot spells it."""
    if key.fwmark:
        return (0, b"", 0, key.fwmark)
    return (key.protocol, inet_aton(key.addr), key.port, 0)


#: A ServiceKey's values as a tuple (read in C): the sets of keys compared
#: here hold these, whose hashing and equality are C's, not the model's
#: Python methods (10,000 services: ~2 us per service less).
_key_values = attrgetter(*ServiceKey._compared)
_service_key = attrgetter("key")


class ServiceSnapshot:
    """The service keys of one moment: ``ipv4`` from the atomic socket-option
    read (None when it could not be made); ``other`` the keys of a netlink
    dump (any iterable of ServiceKey, kept as their values; or, with
    ``by_identity``, the entries' identities as the kernel wrote them,
    encode.entry_identity), of the other families when ``ipv4`` is there,
    else of all (None when not taken), and whether that dump was one pass
    (then atomic)."""

    __slots__ = ("ipv4", "other", "other_atomic", "by_identity")

    def __init__(self, ipv4: set | None, other: Iterable | None, other_atomic: bool = False,
                 by_identity: bool = False):
        self.ipv4 = ipv4
        self.by_identity = by_identity
        if other is not None:
            other = set(other) if by_identity else set(map(_key_values, other))
        self.other = other
        self.other_atomic = other_atomic

    def holds(self, key: ServiceKey, ident: bytes | None = None) -> bool | None:
        """Whether the service existed at this moment; None when this
        snapshot cannot say for sure (not atomic for its family, or held by
        identity and ``ident``, the service's, not given)."""
        if key.af == AF_INET and self.ipv4 is not None:
            return legacy_service_key(key) in self.ipv4
        if self.other is None or not self.other_atomic:
            return None
        if self.by_identity:
            return None if ident is None else ident in self.other
        return _key_values(key) in self.other


def covers_services(services: list, before: ServiceSnapshot, after: ServiceSnapshot,
                    idents: list[bytes] | None = None) -> bool:
    """Does the listing hold every service that is in both snapshots?

    Where ``before`` has no keys of the other families (the listing had
    none, so none were looked for), every one ``after`` holds is required:
    it either came during the read or was skipped by it, and only a new
    read tells which.  Snapshots held by identity are compared with
    ``idents`` (the listed services', in order); two snapshots held
    differently, or by identity without ``idents``, cannot be compared:
    False (read again)."""
    keys = list(map(_service_key, services))
    by_ipv4 = before.ipv4 is not None and after.ipv4 is not None
    if by_ipv4:
        have_ipv4 = {legacy_service_key(k) for k in keys if k.af == AF_INET}
        if not (before.ipv4 & after.ipv4) <= have_ipv4:
            return False
    if after.other is not None:
        if before.other is not None and before.by_identity != after.by_identity:
            return False
        if after.by_identity:
            if idents is None:
                return False
            listed, family_of = idents, identity_family
        else:
            listed, family_of = map(_key_values, keys), itemgetter(0)
        required = after.other if before.other is None else before.other & after.other
        missing = required.difference(listed)
        if by_ipv4:  # the IPv4 ones were checked against the atomic snapshots
            return all(family_of(values) == AF_INET for values in missing)
        return not missing
    return True
