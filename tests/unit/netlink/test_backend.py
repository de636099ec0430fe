"""Reads that are never silently torn, without a kernel (issue 13, item 1).

A fake IPVS (support/fake_ipvs.py) dumps positionally like the kernel, and the tests
change its table between two parts of a dump, as another process would.
The kernel tier (tests/kernel/test_torn_dumps.py) does the same with real
writers on a real kernel.
"""

from __future__ import annotations

import pytest
from support.fake_ipvs import Table, backend_over

from ipvsctl.backend import KernelError
from ipvsctl.model import AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, Destination, Service, ServiceKey
from ipvsctl.netlink.rows import DestinationRows
from ipvsctl.netlink import consistency
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
    assert backend._t.dump_shape.parts == 1 and not backend._t.dump_shape.one_pass
    assert not whole(raw, 8)
    gone[0] = False
    for d in churned:
        t.add_dest(BIG, d)
    assert whole(backend.destinations(BIG), 8) and legacy.calls >= 1


def test_a_small_list_in_one_part_needs_no_snapshot():
    t = table_with(n=4)
    backend, sock, legacy = backend_over(t)
    assert whole(backend.table(counters=False)[0][1], 4)
    assert backend._t.dump_shape.one_pass and legacy.calls == 0


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
