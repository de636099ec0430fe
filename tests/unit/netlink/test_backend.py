"""Reads that are never silently torn, without a kernel (issue 13, item 1).

A fake IPVS (support/fake_ipvs.py) dumps positionally like the kernel, and the tests
change its table between two parts of a dump, as another process would.
The kernel tier (tests/kernel/test_torn_dumps.py) does the same with real
writers on a real kernel.
"""

from __future__ import annotations

import struct

import pytest
from support.fake_ipvs import KernelSocket, Table, backend_over
from support.golden import messages as golden_messages

from ipvsctl.backend import KernelError
from ipvsctl.model import AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, Destination, Service, ServiceKey
from ipvsctl.netlink.rows import DestinationRows
from ipvsctl.netlink import consistency, encode, wire
from ipvsctl.netlink import constants as C
from ipvsctl.netlink.backend import READ_RETRIES, InconsistentRead

BIG = ServiceKey(AF_INET, IPPROTO_TCP, "10.0.0.1", 80)
BIG6 = ServiceKey(AF_INET6, IPPROTO_TCP, "fd00::1", 80)
CHURNED = Destination(AF_INET, "10.2.0.1", 80)


def reals(n: int, af: int = AF_INET) -> list[Destination]:
    if af == AF_INET:
        return [Destination(AF_INET, f"10.1.{i // 250}.{i % 250 + 1}", 80) for i in range(n)]
    return [Destination(AF_INET6, f"fd00:1::{i + 1:x}", 80) for i in range(n)]


def table_with(key: ServiceKey = BIG, n: int = 300, services: int = 0) -> Table:
    t = Table()
    t.add_service(Service(key, "rr"))
    for d in reals(n, key.af):
        t.add_dest(key, d)
    for i in range(services):
        k = ServiceKey(AF_INET, IPPROTO_UDP, f"10.3.0.{i + 1}", 53)
        t.add_service(Service(k, "rr"))
        t.add_dest(k, Destination(AF_INET, "10.4.0.1", 53))
    return t


def keys(dests) -> list[tuple[str, int]]:
    return [(d.addr, d.port) for d in dests]


def whole(dests, n: int = 300, af: int = AF_INET) -> bool:
    listed = keys(dests)
    return set(keys(reals(n, af))) <= set(listed) and len(listed) == len(set(listed))


class Writer:
    """Changes the table just before chosen parts of a dump."""

    def __init__(self, table: Table, key: ServiceKey = BIG, at_parts=(2,), times: int = 1):
        self.table, self.key, self.at_parts, self.left = table, key, set(at_parts), times
        self.changes = 0

    def delete_head(self, n: int) -> None:
        """The churned server sits at the head (newest); deleting it moves
        every later server one place down, under the dump's index."""
        if n in self.at_parts and self.left:
            self.left -= 1
            self.table.del_dest(self.key, CHURNED.addr, CHURNED.port)
            self.changes += 1

    def add_head(self, n: int) -> None:
        if n in self.at_parts and self.left:
            self.left -= 1
            self.table.add_dest(self.key, CHURNED)
            self.changes += 1


# ---------------------------------------------------------------------------
# The defect, reproduced, and each way a dump can be torn
# ---------------------------------------------------------------------------


def test_a_deletion_between_parts_skips_a_server_in_the_raw_dump():
    # What the kernel does, shown on the fake: the raw dump (no checks) of a
    # list whose head is deleted between parts misses a server that never
    # changed.  This is the torn -Sn of the issue.
    t = table_with()
    t.add_dest(BIG, CHURNED)
    w = Writer(t)
    backend, _, _ = backend_over(t, between_parts=w.delete_head)
    raw = backend._dest_rows_once(BIG)
    assert w.changes == 1 and not whole(raw)
    assert len(raw) == 300 - 1 + 1  # one stable server lost, the deleted one kept: same count


@pytest.mark.parametrize("counters", [False, True])
@pytest.mark.parametrize("snapshots", [True, False], ids=["ipv4-snapshot", "second-dump"])
def test_a_skip_is_caught_and_the_list_read_again(counters, snapshots):
    t = table_with()
    t.add_dest(BIG, CHURNED)
    w = Writer(t)
    backend, _, legacy = backend_over(t, between_parts=w.delete_head, snapshots=snapshots)
    table = backend.table(counters=counters)
    assert w.changes == 1
    (svc, dests), = table
    assert whole(dests)
    if snapshots:
        assert legacy.calls >= 1


def test_an_addition_between_parts_repeats_a_server_which_is_dropped():
    t = table_with()
    w = Writer(t)
    backend, _, _ = backend_over(t, between_parts=w.add_head)
    raw = backend._dest_rows_once(BIG)
    assert len(set(keys(raw))) < len(raw)  # the raw dump repeats one
    t.del_dest(BIG, CHURNED.addr, CHURNED.port)
    w.left = 1
    dests = backend.destinations(BIG)
    assert whole(dests) and w.changes == 2


def test_a_list_that_changes_during_every_read_is_refused():
    t = table_with()
    state = {"present": False}

    def toggle(n):
        # Delete the head when present, add it when not: every dump crosses a change.
        if state["present"]:
            t.del_dest(BIG, CHURNED.addr, CHURNED.port)
        else:
            t.add_dest(BIG, CHURNED)
        state["present"] = not state["present"]

    backend, sock, _ = backend_over(t, between_parts=toggle)
    with pytest.raises(InconsistentRead) as e:
        backend.destinations(BIG)
    assert e.value.errno == 11 and e.value.op == "get_dests"
    with pytest.raises(InconsistentRead):
        backend.table(counters=False)


def test_a_full_first_part_then_an_empty_one_is_not_taken_for_a_single_pass():
    # Part 1 (NLMSG_GOODSIZE: the kernel got no bigger buffer) is full; before
    # part 2 the list shrinks below the index, so part 2 is empty and the
    # servers after part 1 are lost, yet only one part carried entries.  Its
    # size shows it may have been full.
    t = table_with(n=8)
    churned = [Destination(AF_INET, f"10.5.0.{i + 1}", 80) for i in range(8)]
    for d in churned:
        t.add_dest(BIG, d)  # at the head
    gone = [False]

    def shrink(n):
        if n == 2 and not gone[0]:
            gone[0] = True
            for d in churned:
                t.del_dest(BIG, d.addr, d.port)

    backend, sock, legacy = backend_over(t, between_parts=shrink)
    raw = backend._dest_rows_once(BIG)
    assert backend._dumps.dump_shape.parts == 1 and not backend._dumps.dump_shape.one_pass
    assert not whole(raw, 8)
    gone[0] = False
    for d in churned:
        t.add_dest(BIG, d)
    assert whole(backend.destinations(BIG), 8) and legacy.calls >= 1


def test_a_small_list_in_one_part_needs_no_snapshot():
    t = table_with(n=4)
    backend, sock, legacy = backend_over(t)
    assert whole(backend.table(counters=False)[0][1], 4)
    assert backend._dumps.dump_shape.one_pass and legacy.calls == 0


def test_ipv6_lists_are_checked_by_a_second_dump():
    t = table_with(BIG6, n=200)
    t.add_dest(BIG6, Destination(AF_INET6, "fd00:2::1", 80))
    w = Writer(t, key=BIG6)
    w.delete_head = lambda n, w=w: (n == 2 and w.left and (setattr(w, "left", 0), t.del_dest(
        BIG6, "fd00:2::1", 80), setattr(w, "changes", 1)))
    backend, sock, legacy = backend_over(t, between_parts=w.delete_head)
    dests = backend.destinations(BIG6)
    assert w.changes == 1 and whole(dests, 200, AF_INET6) and legacy.calls == 0


# ---------------------------------------------------------------------------
# The service list
# ---------------------------------------------------------------------------


def test_a_service_skipped_by_the_service_dump_is_caught():
    t = table_with(n=3, services=40)
    victim = ServiceKey(AF_INET, IPPROTO_TCP, "10.9.0.1", 80)
    t.add_service(Service(victim, "rr"), at=0)
    done = [False]

    def delete_first(n):
        if n == 2 and not done[0]:
            done[0] = True
            t.del_service(victim)

    backend, sock, legacy = backend_over(t, between_parts=delete_first)
    raw = backend._service_list()[0]
    assert len(raw) == 42 - 1  # of 42 services the raw dump lost a stable one (and kept the victim)
    assert victim in {s.key for s in raw}
    t.add_service(Service(victim, "rr"), at=0)
    done[0] = False
    table = backend.table(counters=False)
    assert {s.key for s, _ in table} >= {s.key for s in t.services if s.key != victim}
    assert len(table) == len({s.key for s, _ in table})


def test_a_service_deleted_during_the_read_is_left_out():
    t = table_with(n=3, services=40)
    victim = t.services[-1].key
    done = [False]
    backend, sock, legacy = backend_over(t)
    real = backend._dests_once

    def meddling(key):
        if not done[0]:
            done[0] = True
            t.del_service(victim)
        return real(key)

    backend._dests_once = meddling
    table = backend.table()
    assert victim not in {s.key for s, _ in table} and len(table) == 40


def test_services_added_during_the_read_are_not_required():
    t = table_with(n=3, services=40)
    backend, sock, legacy = backend_over(t)
    real = backend._dests_once
    added = []

    def meddling(key):
        if len(added) < 3:
            k = ServiceKey(AF_INET, IPPROTO_TCP, f"10.8.0.{len(added) + 1}", 80)
            t.add_service(Service(k, "rr"), at=0)
            added.append(k)
        return real(key)

    backend._dests_once = meddling
    table = backend.table()
    assert len(table) == 41  # not started over, not refused


# ---------------------------------------------------------------------------
# The pure checks
# ---------------------------------------------------------------------------


def planes_of(dests) -> tuple[bytes, ...]:
    joined = b"".join(consistency.ipv4_dest_key(d) for d in dests)
    return tuple(joined[i::6] for i in range(6))


def rows_of(dests) -> DestinationRows:
    planes = planes_of(dests)
    return DestinationRows(tuple(bytearray(p) for p in planes), [(3, 1, 0, 0, 0, 0, 0, 0, 0, 0)] * len(dests))


@pytest.mark.parametrize("shape", [list, rows_of])
def test_cover(shape):
    ds = reals(50)
    assert consistency.covers_ipv4_snapshot(shape(ds), planes_of(ds))
    assert consistency.covers_ipv4_snapshot(shape(ds[::-1]), planes_of(ds))  # any order
    assert consistency.covers_ipv4_snapshot(shape(ds + [CHURNED]), planes_of(ds))  # gone since: fine
    assert not consistency.covers_ipv4_snapshot(shape(ds[1:]), planes_of(ds))  # a skip
    assert not consistency.covers_ipv4_snapshot(shape(ds), planes_of(ds + [CHURNED]))


def test_repeats_are_dropped_keeping_the_first():
    ds = reals(5)
    for shape in (list, rows_of):
        kept, repeated = consistency.without_repeated_dests(shape(ds + ds[:2]))
        assert repeated and keys(kept) == keys(ds)
        kept, repeated = consistency.without_repeated_dests(shape(ds))
        assert not repeated and keys(kept) == keys(ds)


def test_services_cover_what_both_snapshots_hold():
    a, b, c = (ServiceKey(AF_INET, IPPROTO_TCP, f"10.0.0.{i}", 80) for i in (1, 2, 3))
    six = ServiceKey(AF_INET6, IPPROTO_TCP, "fd00::1", 80)
    L = consistency.legacy_service_key
    S = consistency.ServiceSnapshot
    listed = [Service(a), Service(b)]
    assert consistency.covers_services(listed, S({L(a), L(b)}, None), S({L(a), L(b), L(c)}, None))
    assert not consistency.covers_services(listed, S({L(a), L(c)}, None), S({L(a), L(c)}, None))
    assert consistency.covers_services(listed, S({L(a)}, {six}), S({L(a)}, set()))  # six gone
    assert not consistency.covers_services(listed, S({L(a)}, {six}), S({L(a)}, {six}))
    assert consistency.covers_services(listed + [Service(six)], S({L(a)}, {six}), S({L(a)}, {six}))
    # No IPv6 service was listed, so none was looked for before: one found
    # after is required (it came during the read, or the read skipped it).
    assert not consistency.covers_services(listed, S({L(a)}, None), S({L(a)}, {six}))
    assert consistency.covers_services(listed, S({L(a)}, None), S({L(a)}, set()))
    # Without the IPv4 snapshots, the netlink keys cover every family.
    assert not consistency.covers_services(listed, S(None, {a, b, c}), S(None, {a, b, c}))


@pytest.mark.parametrize("parts, one_pass", [
    ([], True),  # nothing at all
    ([2000], True),  # room for one more in the smallest part there is
    ([consistency.DUMP_PART_FLOOR - 420], False),  # maybe a full NLMSG_GOODSIZE part
    ([consistency.GOODSIZE_CEILING], False),  # the same
    ([consistency.GOODSIZE_CEILING + 4], True),  # bigger than any NLMSG_GOODSIZE: the big room, not full
    ([consistency.LARGE_PART_FLOOR - 400], False),  # maybe a full big part
    ([800, 800], False),  # two parts: two passes
])
def test_dump_shape(parts, one_pass):
    s = consistency.DumpShape()
    for nbytes in parts:
        s.part(nbytes, 400)
    assert s.one_pass is one_pass


def test_a_read_refused_says_why_in_every_surface():
    from ipvsctl.errors import kernel_message

    for op in ("get_services", "get_dests"):
        assert "kept changing while it was read" in kernel_message(op, InconsistentRead(op).errno)
    assert issubclass(InconsistentRead, KernelError) and READ_RETRIES >= 3


def test_service_family_is_read_in_place_and_decoded_otherwise():
    from support.kernel_entries import kernel_service_entry

    from ipvsctl.netlink import decode, wire
    from ipvsctl.netlink import constants as C

    for key in (BIG, BIG6, ServiceKey(AF_INET6, fwmark=7)):
        assert decode.service_family(kernel_service_entry(Service(key))) == key.af
    # The family not first in the nest (another kernel's order): decoded.
    entry = kernel_service_entry(Service(BIG6))
    nest = wire.nest(C.IPVS_CMD_ATTR_SERVICE, *reversed(list(_attrs(entry))))
    assert decode.service_family(entry[:4] + nest) == AF_INET6


def _attrs(entry: bytes):
    from ipvsctl.netlink import wire

    for _t, a, b in wire.attrs(entry, 8, len(entry)):
        yield entry[a - 4:b + (-b % 4)]


@pytest.mark.parametrize("argv", [["-Ln"], ["-Sn"], ["-Ln", "--json"], ["-Ln", "--stats"],
                                  ["-Ln", "-t", "10.0.0.1:80"], ["-Ln", "-t", "10.0.0.1:80", "--json"]])
def test_a_table_that_keeps_changing_is_refused_on_the_command_line(argv):
    import io

    from ipvsctl import cli, session

    t = table_with()
    state = {"present": False}

    def toggle(n):
        if state["present"]:
            t.del_dest(BIG, CHURNED.addr, CHURNED.port)
        else:
            t.add_dest(BIG, CHURNED)
        state["present"] = not state["present"]

    backend, _, _ = backend_over(t, between_parts=toggle)
    out, err = io.StringIO(), io.StringIO()
    real, session.open_backend = session.open_backend, lambda netns: backend
    try:
        status = cli.run_compat(argv, io.StringIO(), out, err)
    finally:
        session.open_backend = real
    assert status == 1
    assert err.getvalue() == "The IPVS table kept changing while it was read: no consistent listing could be made; try again\n"
    assert "10.1.0." not in out.getvalue()  # no table that never existed


# ---------------------------------------------------------------------------
# Small services decoded together (backend._decode_pending)
# ---------------------------------------------------------------------------


def _plain(dests) -> list[tuple]:
    return [(d.af, d.addr, d.port, d.fwd, d.weight, d.active_conns, d.inact_conns) for d in dests]


def test_many_small_services_read_alike_decoded_together_or_one_by_one():
    """table(counters=False) keeps small services' dumps and decodes them
    PENDING_DECODED_AT at a time: the same real servers, in the same order,
    as decoding each service's dump on its own (table(counters=True)),
    IPv6 services and IPv6 servers behind IPv4 ones included."""
    from ipvsctl.netlink.backend import PENDING_DECODED_AT

    t = Table()
    n = PENDING_DECODED_AT + 45
    for i in range(n):
        k = ServiceKey(AF_INET6, IPPROTO_TCP, f"fd00:9::{i + 1:x}", 80) if i % 50 == 7 else \
            ServiceKey(AF_INET, IPPROTO_TCP, f"10.5.{i // 250}.{i % 250 + 1}", 80)
        t.add_service(Service(k, "rr"))
        for j in range(i % 12):
            if k.af == AF_INET6 or (i % 50 == 9 and j == 3):
                t.add_dest(k, Destination(AF_INET6, f"fd00:8::{i:x}:{j + 1:x}", 8080, weight=j))
            else:
                t.add_dest(k, Destination(AF_INET, f"10.6.{i % 200}.{j + 1}", 8000 + j, weight=j))
    backend, sock, legacy = backend_over(t)
    together = backend.table(counters=False)
    alone = backend.table(counters=True)
    assert len(together) == len(alone) == n
    assert [s.key for s, _ in together] == [s.key for s, _ in alone]
    assert [_plain(d) for _, d in together] == [_plain(d) for _, d in alone]
    assert sum(isinstance(d, DestinationRows) for _, d in together) > n // 2  # in columns


@pytest.mark.parametrize("gone", [False, True])
def test_a_small_dump_that_does_not_decode_is_read_again(gone):
    """A kept dump that does not decode is read again, as a dump that does
    not decode while it is read; if its service went away, it is left out."""
    t = table_with(n=3, services=30)
    victim = t.services[5].key
    backend, sock, legacy = backend_over(t)
    real = backend._decode_pending
    spoiled = [False]

    def decode_pending(pending):
        out = real(pending)
        if not spoiled[0] and len(pending) > 5:
            spoiled[0] = True
            out[5] = None  # as if the kernel's bytes for victim were garbled
            if gone:
                t.del_service(victim)
        return out

    backend._decode_pending = decode_pending
    table = backend.table(counters=False)
    assert spoiled[0]
    listed = {s.key: d for s, d in table}
    if gone:
        assert victim not in listed and len(table) == 30
    else:
        assert len(table) == 31 and _plain(listed[victim]) == _plain(t.dests[victim])


# ---------------------------------------------------------------------------
# Services named by the kernel's identity bytes (encode.entry_identity)
# ---------------------------------------------------------------------------


def ident(key: ServiceKey) -> bytes:
    return encode.service_ident(key)[0]


A, B = (ServiceKey(AF_INET, IPPROTO_TCP, f"10.0.0.{i}", 80) for i in (1, 2))
SIX, SIX2 = (ServiceKey(AF_INET6, IPPROTO_TCP, f"fd00::{i}", 80) for i in (1, 2))
MARK6 = ServiceKey(AF_INET6, fwmark=7)


def test_services_cover_by_identity():
    L = consistency.legacy_service_key
    S = consistency.ServiceSnapshot
    covers = consistency.covers_services

    def by_ident(ipv4, keys, atomic=False):
        return S(ipv4, [ident(k) for k in keys], atomic, by_identity=True)

    listed = [Service(A), Service(SIX)]
    idents = [ident(A), ident(SIX)]
    # IPv4 from the socket options, the other families by identity.
    assert covers(listed, by_ident({L(A)}, [SIX]), by_ident({L(A)}, [SIX]), idents)
    assert not covers(listed, by_ident({L(A)}, [SIX, SIX2]), by_ident({L(A)}, [SIX, SIX2]), idents)
    assert covers(listed + [Service(SIX2)], by_ident({L(A)}, [SIX, SIX2]), by_ident({L(A)}, [SIX, SIX2]),
                  idents + [ident(SIX2)])
    assert covers(listed, by_ident({L(A)}, [SIX, SIX2]), by_ident({L(A)}, [SIX]), idents)  # SIX2 gone since
    assert covers(listed, by_ident({L(A)}, [SIX, MARK6]), by_ident({L(A)}, [SIX]), idents)
    assert not covers(listed, by_ident({L(A)}, [SIX, MARK6]), by_ident({L(A)}, [SIX, MARK6]), idents)
    assert not covers(listed, by_ident({L(A), L(B)}, [SIX]), by_ident({L(A), L(B)}, [SIX]), idents)
    # The identities listed are what is compared, not the keys.
    assert not covers(listed, by_ident({L(A)}, [SIX]), by_ident({L(A)}, [SIX]), [ident(A), ident(SIX2)])
    # Nothing of the other families looked for before: every one after is required.
    assert not covers(listed, S({L(A)}, None), by_ident({L(A)}, [SIX, SIX2]), idents)
    assert covers(listed, S({L(A)}, None), by_ident({L(A)}, [SIX]), idents)
    # An IPv4 identity left unlisted is the IPv4 snapshots' to judge.
    assert covers(listed, by_ident({L(A)}, [B, SIX]), by_ident({L(A)}, [B, SIX]), idents)
    # Without the IPv4 snapshots, identities of every family.
    assert covers(listed, by_ident(None, [A, SIX]), by_ident(None, [A, SIX]), idents)
    assert not covers(listed, by_ident(None, [A, B, SIX]), by_ident(None, [A, B, SIX]), idents)
    assert covers(listed, by_ident(None, [A, B, SIX]), by_ident(None, [A, SIX]), idents)
    # Two snapshots held differently cannot be compared: read again.
    assert not covers(listed, S({L(A)}, [SIX]), by_ident({L(A)}, [SIX]), idents)
    assert not covers(listed, by_ident({L(A)}, [SIX]), S({L(A)}, [SIX]), idents)
    assert not covers(listed, S(None, [A, SIX]), by_ident(None, [A, SIX]), idents)
    # By identity, but no identities listed: read again.
    assert not covers(listed, by_ident({L(A)}, [SIX]), by_ident({L(A)}, [SIX]), None)
    assert not covers(listed, S({L(A)}, None), by_ident({L(A)}, []), None)
    # By keys, as before.
    assert covers(listed, S({L(A)}, [SIX]), S({L(A)}, [SIX]))
    assert covers(listed, S({L(A)}, [SIX]), S({L(A)}, [SIX]), idents)


def test_a_snapshot_by_identity_holds_what_it_holds():
    L = consistency.legacy_service_key
    S = consistency.ServiceSnapshot
    snap = S({L(A)}, [ident(SIX), ident(MARK6)], True, by_identity=True)
    assert snap.holds(SIX, ident(SIX)) is True
    assert snap.holds(MARK6, ident(MARK6)) is True
    assert snap.holds(SIX2, ident(SIX2)) is False
    assert snap.holds(SIX, None) is None  # by identity, and none given: cannot say
    assert snap.holds(A) is True and snap.holds(B, ident(B)) is False  # IPv4: the socket options' snapshot
    assert S({L(A)}, [ident(SIX)], False, by_identity=True).holds(SIX, ident(SIX)) is None  # not atomic
    every = S(None, [ident(A), ident(SIX)], True, by_identity=True)
    assert every.holds(A, ident(A)) is True and every.holds(B, ident(B)) is False
    assert every.holds(A) is None
    keys = S({L(A)}, [SIX], True)
    assert keys.holds(SIX) is True and keys.holds(SIX2) is False and keys.holds(SIX, ident(SIX)) is True


@pytest.mark.parametrize("by_identity", [True, False], ids=["by identity", "by key"])
@pytest.mark.parametrize("snapshots", [True, False], ids=["ipv4-snapshot", "no-snapshot"])
def test_a_service_snapshot_reads_only_what_the_socket_options_do_not_hold(monkeypatch, by_identity, snapshots):
    """The netlink dump of a service snapshot: with the socket options'
    IPv4 snapshot, its IPv4 entries are dropped by their family before
    anything else is made of them (no identity, no key), and the others
    are held by identity or by key; without it, every entry is."""
    from ipvsctl.netlink.codec import Codec

    keys = [A, SIX, ServiceKey(AF_INET, fwmark=9), MARK6, B, SIX2]
    t = Table()
    for k in keys:
        t.add_service(Service(k, "rr"))
    backend, _sock, _ = backend_over(t, snapshots=snapshots)
    made, decoded = [], []
    entry_identity, service_key = encode.entry_identity, Codec.service_key
    monkeypatch.setattr(encode, "entry_identity", lambda p: made.append(entry_identity(p)) or made[-1])
    monkeypatch.setattr(Codec, "service_key", lambda self, p: decoded.append(service_key(self, p)) or decoded[-1])
    snap = backend._service_snapshot(others=True, by_identity=by_identity)
    read = [k for k in keys if k.af != AF_INET] if snapshots else keys
    assert (snap.ipv4 is not None) == snapshots and snap.by_identity == by_identity
    if by_identity:
        assert sorted(made) == sorted(map(ident, read)) and decoded == []
    else:
        assert made == [] and sorted(decoded, key=repr) == sorted(read, key=repr)
    assert len(snap.other) == len(read)
    assert all(snap.holds(k, ident(k)) for k in keys)  # one pass: atomic
    assert snap.holds(ServiceKey(AF_INET6, fwmark=10), ident(ServiceKey(AF_INET6, fwmark=10))) is False


def _plain_table(entries) -> list:
    return [(s.key, _plain(d)) for s, d in entries]


def _kernel_table(t: Table) -> list:
    """What the fake kernel holds, in its order: the reference."""
    return [(s.key, _plain(t.dests[s.key])) for s in t.services]


def _mixed_table(n6: int = 14, n4: int = 6, with_empty: bool = False) -> Table:
    t = Table()
    for i in range(n6 + n4):
        k = ServiceKey(AF_INET6, fwmark=i + 1) if i % 5 == 3 else (
            ServiceKey(AF_INET6, IPPROTO_TCP, f"fd00:7::{i + 1:x}", 80) if i < n6 else
            ServiceKey(AF_INET, IPPROTO_UDP, f"10.7.0.{i + 1}", 53))
        t.add_service(Service(k, "rr"))
        for j in range(0 if with_empty and i % 7 == 2 else 1 + i % 3):
            if k.af == AF_INET6:
                t.add_dest(k, Destination(AF_INET6, f"fd00:8:{i + 1:x}::{j + 1:x}", 80, weight=j))
            else:
                t.add_dest(k, Destination(AF_INET, f"10.8.{i}.{j + 1}", 53, weight=j))
    return t


def _read_both_ways(monkeypatch, build, meddle, **kw):
    """table(counters=False) over ``build()``'s table, first naming services
    by their identity bytes, then (entry_identity disabled) by their keys:
    for each, (the table listed, every request sent, the fake kernel's table
    at the end, how many service lists were read).  ``meddle(table, n)``
    runs after the n-th service list is read."""
    from ipvsctl.netlink import encode as enc

    out = []
    for by_identity in (True, False):
        with monkeypatch.context() as mp:
            if not by_identity:
                mp.setattr(enc, "entry_identity", lambda payload: None)
            t = build()
            backend, sock, _ = backend_over(t, snapshots=False, **kw)
            real = backend._service_list
            calls = [0]

            def service_list(*args):
                got = real(*args)
                calls[0] += 1
                meddle(t, calls[0])
                return got

            backend._service_list = service_list
            table = backend.table(counters=False)
            out.append((_plain_table(table), [bytes(s) for s in sock.sent], _kernel_table(t), calls[0]))
    return out


@pytest.mark.parametrize("what", ["appears", "disappears", "empty one disappears", "one goes, another comes"])
@pytest.mark.parametrize("size", ["one pass", "in parts"])
def test_services_named_by_identity_are_checked_as_by_key(monkeypatch, what, size):
    """Without the socket options' snapshots, the service list is checked
    against netlink dumps, by identity bytes: a service that comes or goes
    between the list and the snapshot is read again or left out exactly as
    when the dumps are compared by key (the same requests, the same table)."""
    new = ServiceKey(AF_INET6, IPPROTO_UDP, "fd00:9::1", 53)

    def build():
        return _mixed_table(n6=3 if size == "one pass" else 14, n4=2 if size == "one pass" else 6,
                            with_empty=True)

    def meddle(t, call):
        if call != 1:
            return
        if what in ("disappears", "one goes, another comes"):
            t.del_service(t.services[1].key)
        if what in ("appears", "one goes, another comes"):
            t.add_service(Service(new, "rr"), at=0)
            t.add_dest(new, Destination(AF_INET6, "fd00:9::2", 53))
        if what == "empty one disappears":
            victim = next(s.key for s in t.services if not t.dests[s.key] and s.key.af == AF_INET6)
            t.del_service(victim)

    (by_ident, sent_ident, kernel, calls), (by_key, sent_key, _, calls_key) = \
        _read_both_ways(monkeypatch, build, meddle)
    assert by_ident == by_key and sent_ident == sent_key and calls == calls_key
    came = [entry for entry in kernel if entry[0] == new]
    if size == "one pass" and came:  # came after the list, not required: not read again
        assert sorted(by_ident, key=repr) == sorted([e for e in kernel if e not in came], key=repr)
    else:  # the table of the end, whole
        assert sorted(by_ident, key=repr) == sorted(kernel, key=repr)
    # In parts, a new one in both snapshots and not in the list: read again.
    assert calls == (2 if came and size == "in parts" else 1)


def test_an_empty_service_is_confirmed_from_an_atomic_snapshot_by_identity(monkeypatch):
    """A one-pass table with empty services (IPv6, fwmark, IPv4): the
    snapshot taken after (one pass: atomic) holds them by identity, so no
    service is asked for on its own; one deleted after the list is left out."""
    def build():
        t = Table()
        for k, n in ((SIX, 0), (MARK6, 0), (A, 0), (SIX2, 2), (B, 1), (ServiceKey(AF_INET, fwmark=9), 0)):
            t.add_service(Service(k, "rr"))
            for d in reals(n, k.af):
                t.add_dest(k, d)
        return t

    for victim in (None, SIX, MARK6, A):
        def meddle(t, call, victim=victim):
            if victim is not None and call == 1:
                t.del_service(victim)

        (by_ident, sent, kernel, _), (by_key, sent_key, _, _) = _read_both_ways(monkeypatch, build, meddle)
        assert by_ident == by_key == kernel and sent == sent_key
        assert len(kernel) == 6 - (victim is not None)
        gets = [m for raw in sent for _t, f, _s, m in wire.iter_messages(raw)
                if m[0] == C.IPVS_CMD_GET_SERVICE and not f & C.NLM_F_DUMP]
        assert gets == []


def test_a_repeated_service_keeps_its_own_identity():
    """A service list dump that repeats an entry (one added at the head
    between two parts, and gone again before the list is checked): the
    repeat is dropped, and every service after it is still named by its
    own identity, so it gets its own real servers."""
    t = _mixed_table(n6=14, n4=26)
    x = ServiceKey(AF_INET, IPPROTO_TCP, "10.9.9.9", 80)
    added = []

    def add_at_head(n):
        if n == 2 and not added:
            added.append(x)
            t.add_service(Service(x, "rr"), at=0)

    backend, _sock, _legacy = backend_over(t, between_parts=add_at_head)
    real = backend._service_list
    lists = []

    def service_list(*args):
        lists.append(real(*args))
        if x in t.dests:
            t.del_service(x)  # gone again before anything checks the list
        return lists[-1]

    backend._service_list = service_list
    table = backend.table(counters=False)
    services, one_pass, idents = lists[0]
    assert added and len(services) == 40 and not one_pass and len(lists) == 1
    assert idents == [ident(s.key) for s in services]
    assert sorted(_plain_table(table), key=repr) == sorted(_kernel_table(t), key=repr)


# ---------------------------------------------------------------------------
# The order of real servers found per group (runs.decode_dest_runs)
# ---------------------------------------------------------------------------


def _servers(shape: str, i: int) -> list[Destination]:
    """A service's real servers, in the order they are added (the kernel
    lists them the other way round: newest first)."""
    base = [Destination(AF_INET, f"10.{i % 200}.{j // 3}.{10 + 7 * j}", 8000 + j % 3, weight=j + 1, u_threshold=i)
            for j in range(7)]
    asc = sorted(base, key=lambda d: (tuple(map(int, d.addr.split("."))), d.port))
    return {
        "listed descending": asc,  # added in order: listed newest first
        "listed ascending": asc[::-1],
        "mixed": [asc[k] for k in (3, 0, 6, 1, 5, 2, 4)],
        "ascending but the last pair": [asc[k] for k in (5, 6, 4, 3, 2, 1, 0)],
        "ascending but the first pair": [asc[k] for k in (6, 5, 4, 3, 2, 0, 1)],
        "descending but the last pair": [asc[k] for k in (1, 0, 2, 3, 4, 5, 6)],
        "descending but the first pair": [asc[k] for k in (0, 1, 2, 3, 4, 6, 5)],
        "two": asc[:2],
        "two the other way": asc[1::-1],
        "one": asc[:1],
        "none": [],
        "same address, ports descending": [Destination(AF_INET, "10.0.0.9", p, weight=p) for p in (1, 2, 3)],
    }[shape]


SHAPES = ["listed descending", "listed ascending", "mixed", "ascending but the last pair",
          "ascending but the first pair", "descending but the last pair", "descending but the first pair",
          "two", "two the other way", "one", "none", "same address, ports descending"]


def _ordered_table(count: int, shapes=SHAPES) -> Table:
    t = Table()
    for i in range(count):
        k = ServiceKey(AF_INET, IPPROTO_TCP, f"192.0.{i // 250}.{i % 250 + 1}", 80)
        t.add_service(Service(k, "rr"))
        for d in _servers(shapes[i % len(shapes)], i):
            t.add_dest(k, d)
    return t


@pytest.mark.parametrize("count", [len(SHAPES), 300], ids=["one of each", "groups of 256 and the rest"])
def test_a_tables_real_servers_keep_the_kernels_order_and_sort_as_ipvsadm(count):
    """table(counters=False) finds each small service's order for a group at
    once: --nosort (listing.table(sort=False)) shows the kernel's order; the
    sorted listing is ipvsadm's order (order.sort_destinations on plain
    Destination lists), as the per-service path gives them."""
    from ipvsctl import listing
    from ipvsctl.order import sort_destinations, sort_services

    t = _ordered_table(count)
    backend, _sock, _ = backend_over(t)
    kernel = _kernel_table(t)
    together = backend.table(counters=False)
    assert _plain_table(together) == kernel == _plain_table(backend.table(counters=True))
    assert _plain_table((s, backend.destinations(s.key)) for s, _ in together) == kernel
    rows = [d for _, d in together if isinstance(d, DestinationRows)]
    assert len(rows) >= count * 10 // len(SHAPES)  # decoded in columns, not entry by entry
    assert any(r._reversed is not None for r in rows)  # some were found descending for the group

    assert _plain_table(listing.table(backend, counters=False, sort=False)) == kernel
    want = [(s.key, _plain(sort_destinations(list(t.dests[s.key]))))
            for s in sort_services(list(t.services))]
    assert _plain_table(listing.table(backend, counters=False)) == want
    assert _plain_table(listing.table(backend, counters=True)) == want
    # And once more on the same backend (its learned layouts in use).
    assert _plain_table(listing.table(backend, counters=False)) == want


def test_the_rendered_listings_of_a_table_in_groups_are_the_per_service_ones():
    from ipvsctl import listing
    from ipvsctl.render import text
    from ipvsctl.render.format import Format

    t = _ordered_table(2 * len(SHAPES))
    backend, _sock, _ = backend_over(t)
    for fmt in (Format(numeric=True), Format(numeric=True, rule=True), Format(numeric=True, nosort=True),
                Format(numeric=True, rule=True, nosort=True)):
        sort = not fmt.nosort
        grouped = "".join(text.table_text(listing.table(backend, counters=False, sort=sort), fmt))
        each = "".join(text.table_text(listing.table(backend, counters=True, sort=sort), fmt))
        servers = sum(line.startswith(("  ->", "-a ")) for line in grouped.splitlines())
        assert grouped == each and servers == sum(map(len, t.dests.values()))


@pytest.mark.parametrize("sizes", [(8, 3, 10, 2, 11, 0, 300, 5), (40, 1, 7, 9)])
@pytest.mark.parametrize("af", [AF_INET, AF_INET6])
def test_services_too_big_for_one_pass_are_read_from_what_was_received(sizes, af):
    """A service whose dump is not one small part goes on in the general
    reader from the datagrams dump_small read: the same real servers as the
    per-service path, in the same order."""
    t = Table()
    for i, n in enumerate(sizes):
        k = ServiceKey(af, IPPROTO_TCP, f"10.9.0.{i + 1}" if af == AF_INET else f"fd00:9::{i + 1:x}", 80)
        t.add_service(Service(k, "rr"))
        for d in reals(n, af):
            t.add_dest(k, d)
    backend, sock, _ = backend_over(t)
    assert _plain_table(backend.table(counters=False)) == _kernel_table(t) == \
        _plain_table(backend.table(counters=True))
    assert not sock.queue
    if af == AF_INET:  # checked against the socket options' snapshots: each dump read once
        sock.sent.clear()
        backend.table(counters=False)
        dumps = [m for raw in sock.sent for _t, _f, _s, m in wire.iter_messages(raw) if m[0] == C.IPVS_CMD_GET_DEST]
        assert len(dumps) == len(sizes)


class FlaggingSocket(KernelSocket):
    """A KernelSocket that sets NLM_F_DUMP_INTR on the entries (or on the
    NLMSG_DONE) of the next ``flagged`` real-server dumps."""

    flagged = 0
    on_done = False

    def start_dump(self, cmd, seq, payload):
        self.flag = cmd == C.IPVS_CMD_GET_DEST and self.flagged > 0
        self.flagged -= self.flag
        super().start_dump(cmd, seq, payload)

    def next_part(self):
        super().next_part()
        last = self.queue[-1]
        if self.flag and (wire.NLMSGHDR.unpack_from(last)[1] == C.NLMSG_DONE) == self.on_done:
            flagged = bytearray(last)
            for _t, _f, _s, _p, off in golden_messages(last):
                struct.pack_into("=H", flagged, off + 6, C.NLM_F_MULTI | C.NLM_F_DUMP_INTR)
            self.queue[-1] = bytes(flagged)


@pytest.mark.parametrize("on_done", [False, True], ids=["entries flagged", "end flagged"])
@pytest.mark.parametrize("n", [3, 8, 40])
def test_a_flagged_real_server_dump_is_read_again(n, on_done):
    """A real-server dump the kernel flags as interrupted is read again, and
    the service listed with all its real servers.  (A small one flagged on
    its entries was once listed empty: the retry took the dump dump_small
    had handed over, already spent, for a fresh empty one-pass read.)"""
    t = table_with(n=n, services=3)
    backend, sock, _ = backend_over(t)
    s = FlaggingSocket(t)
    s.flagged, s.on_done = 2, on_done
    backend._t.sock = s
    assert _plain_table(backend.table(counters=False)) == _kernel_table(t)
    assert s.flagged == 0 and not s.queue
    # Each flagged dump was read again (the others are checked against the
    # socket options' snapshots: read once).
    dest_dumps = [m for raw in s.sent for _t, f, _s, m in wire.iter_messages(raw)
                  if f & C.NLM_F_DUMP and m[0] == C.IPVS_CMD_GET_DEST]
    assert len(dest_dumps) == len(t.services) + 2


@pytest.mark.parametrize("fault, when", [(fault, when) for fault in ("enobufs", "trunc", "bad_len")
                                         for when in ("first part", "second part", "third part", "the end")
                                         if fault != "bad_len" or when != "the end"])
@pytest.mark.parametrize("n", [3, 40])
def test_lost_real_server_replies_are_read_again(n, when, fault):
    """Replies of a real-server dump lost or garbled wherever dump_small or
    the reader it hands over to meets them: the dump is read again on a
    fresh socket and the table is whole (a first part that does not parse
    once left its service listed empty, as a flagged one did)."""
    from support import fake_ipvs as fake

    t = table_with(n=n, services=3)
    dest_parts = [0]

    def nth_dest_part(k):
        def when_(data, _n):
            if fake.is_dump_part(data) and data[16] == C.IPVS_CMD_NEW_DEST:
                dest_parts[0] += 1
                return dest_parts[0] == k
            return False
        return when_

    ends = [0]

    def first_dest_dumps_end(data, _n):  # the service list's end comes first
        if fake.is_done(data):
            ends[0] += 1
            return ends[0] == 2
        return False

    predicate = {"first part": nth_dest_part(1), "second part": nth_dest_part(2),
                 "third part": nth_dest_part(3), "the end": first_dest_dumps_end}[when]
    faults = fake.Faults((predicate, fault))
    backend, _sock, _ = backend_over(t, faults=faults)
    assert _plain_table(backend.table(counters=False)) == _kernel_table(t)
    assert faults.fired == [fault] and len(backend.sockets) == 2
