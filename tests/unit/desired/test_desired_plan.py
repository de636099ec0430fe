"""plan(desired, live, scope, prune): the pure heart of diff and apply.

Every field the kernel edits in place must give exactly one edit (never a
delete and add); every identity change must give a delete and an add, said
in words; equal tables (after normalisation) must give nothing.  The kernel
tier proves the in-place claims (tests/kernel/test_apply_inplace.py)."""

from __future__ import annotations

import random

import pytest
from support.fake_ipvs import MemoryIPVS

from ipvsctl import model as m
from ipvsctl.desired import plan as P
from ipvsctl.desired.scope import Scope, ScopeError

KEY = m.ServiceKey(m.AF_INET, m.IPPROTO_TCP, "10.0.0.1", 80)
KEY6 = m.ServiceKey(m.AF_INET6, m.IPPROTO_TCP, "2001:db8::1", 80)
FWM = m.ServiceKey(m.AF_INET, fwmark=7)
SVC = m.Service(KEY, "rr")
D1 = m.Destination(m.AF_INET, "10.1.0.1", 80, m.FWD_MASQ, 1)
D2 = m.Destination(m.AF_INET, "10.1.0.2", 80, m.FWD_MASQ, 1)


def ops(plan):
    return [s.op for s in plan.steps]


def test_equal_tables_are_in_sync():
    table = [(SVC, [D1, D2])]
    p = P.plan(table, table)
    assert p.in_sync and p.steps == [] and p.unchanged == 1


def test_a_new_service_is_added_with_its_servers_in_order():
    p = P.plan([(SVC, [D2, D1])], [])
    assert [(s.op, s.dest) for s in p.steps] == [(P.ADD_SERVICE, None), (P.ADD_DEST, D2), (P.ADD_DEST, D1)]
    assert p.services[0].action == "add"


SERVICE_EDITS = [
    ("scheduler", dict(scheduler="wrr"), "rr", "wrr"),
    ("sched_flags", dict(scheduler="sh", flags=m.SVC_F_SCHED2), None, None),
    ("persistent", dict(flags=m.SVC_F_PERSISTENT, timeout=360), False, True),
    ("one_packet", dict(flags=m.SVC_F_ONEPACKET), False, True),
]


@pytest.mark.parametrize("name,change,old,new", SERVICE_EDITS, ids=[e[0] for e in SERVICE_EDITS])
def test_each_service_setting_is_one_edit_in_place(name, change, old, new):
    live = [(SVC, [D1])]
    desired = [(SVC.replace(**change), [D1])]
    p = P.plan(desired, live)
    assert ops(p) == [P.EDIT_SERVICE]
    step = p.steps[0]
    assert step.service == desired[0][0]  # every field, from the desired value
    assert name in [c.field for c in step.changes]
    if old is not None:
        c = next(c for c in step.changes if c.field == name)
        assert (c.old, c.new) == (old, new)


def test_persistent_settings_edit_in_place():
    base = SVC.replace(flags=m.SVC_F_PERSISTENT, timeout=300)
    for change, field in ((dict(timeout=60), "timeout"), (dict(netmask=0xFFFFFF00), "netmask"),
                          (dict(pe_name="sip"), "pe")):
        p = P.plan([(base.replace(**change), [])], [(base, [])])
        assert ops(p) == [P.EDIT_SERVICE] and [c.field for c in p.steps[0].changes] == [field]
    p = P.plan([(base, [])], [(base.replace(pe_name="sip"), [])])  # the engine removed: an edit too
    assert ops(p) == [P.EDIT_SERVICE] and p.steps[0].changes[0] == P.Change("pe", "sip", None)


def test_ipv6_netmask_is_a_prefix_length_edited_in_place():
    live = m.Service(KEY6, "rr", m.SVC_F_PERSISTENT, 30, 64)
    p = P.plan([(live.replace(netmask=96), [])], [(live, [])])
    assert ops(p) == [P.EDIT_SERVICE] and p.steps[0].changes == (P.Change("netmask", 64, 96),)


DEST_EDITS = [
    ("weight", dict(weight=5)),
    ("forward", dict(fwd=m.FWD_ROUTE)),
    ("u_threshold", dict(u_threshold=100)),
    ("l_threshold", dict(l_threshold=10)),
    ("tunnel", dict(fwd=m.FWD_TUNNEL, tun_type=m.TUN_GUE, tun_port=6080, tun_flags=m.TUN_F_CSUM)),
]


@pytest.mark.parametrize("name,change", DEST_EDITS, ids=[e[0] for e in DEST_EDITS])
def test_each_server_setting_is_one_edit_in_place(name, change):
    new = D1.replace(**change)
    p = P.plan([(SVC, [new])], [(SVC, [D1])])
    assert ops(p) == [P.EDIT_DEST]
    assert p.steps[0].dest == new and p.steps[0].old == D1
    assert name in [c.field for c in p.steps[0].changes]


def test_tunnel_type_port_and_checksum_edit_in_place():
    gue = D1.replace(fwd=m.FWD_TUNNEL, tun_type=m.TUN_GUE, tun_port=6080, tun_flags=m.TUN_F_NOCSUM)
    for other in (gue.replace(tun_port=6081), gue.replace(tun_flags=m.TUN_F_REMCSUM),
                  gue.replace(tun_type=m.TUN_GRE, tun_port=0), gue.replace(tun_type=m.TUN_IPIP, tun_port=0)):
        p = P.plan([(SVC, [other])], [(SVC, [gue])])
        assert ops(p) == [P.EDIT_DEST] and [c.field for c in p.steps[0].changes] == ["tunnel"]


def test_a_new_port_is_a_delete_and_add_said_in_words():
    moved = D1.replace(port=8080)
    p = P.plan([(SVC, [moved])], [(SVC, [D1])])
    assert [(s.op, s.dest.port) for s in p.steps] == [(P.DEL_DEST, 80), (P.ADD_DEST, 8080)]
    assert "moves to port 8080" in p.steps[0].note and "delete and add" in p.steps[0].note
    assert "replaces port 80" in p.steps[1].note


def test_servers_not_in_the_file_are_removed_first_then_edited_then_added():
    d3 = D1.replace(addr="10.1.0.3")
    p = P.plan([(SVC, [D1.replace(weight=2), d3])], [(SVC, [D2, D1])])
    assert [(s.op, s.dest.addr) for s in p.steps] == [
        (P.DEL_DEST, "10.1.0.2"), (P.EDIT_DEST, "10.1.0.1"), (P.ADD_DEST, "10.1.0.3")]
    c = p.counts()
    assert (c["servers_added"], c["servers_changed"], c["servers_removed"]) == (1, 1, 1)


# --- normalisation ----------------------------------------------------------


def test_the_kernels_hashed_flag_does_not_count():
    p = P.plan([(SVC, [])], [(SVC.replace(flags=m.SVC_F_HASHED), [])])
    assert p.in_sync


def test_timeout_and_netmask_only_count_with_persistence():
    live = SVC.replace(timeout=300, netmask=0xFFFFFF00)  # kept by the kernel, read by nobody
    assert P.plan([(SVC, [])], [(live, [])]).in_sync
    pers = SVC.replace(flags=m.SVC_F_PERSISTENT, timeout=300)
    assert not P.plan([(pers, [])], [(pers.replace(netmask=0xFFFFFF00), [])]).in_sync


def test_tunnel_fields_count_only_where_the_tunnel_type_reads_them():
    assert P.plan([(SVC, [D1])], [(SVC, [D1.replace(tun_port=6080, tun_flags=1, tun_type=1)])]).in_sync
    ipip = D1.replace(fwd=m.FWD_TUNNEL)
    assert P.plan([(SVC, [ipip])], [(SVC, [ipip.replace(tun_port=9, tun_flags=1)])]).in_sync
    gre = D1.replace(fwd=m.FWD_TUNNEL, tun_type=m.TUN_GRE, tun_flags=m.TUN_F_CSUM)
    assert P.plan([(SVC, [gre])], [(SVC, [gre.replace(tun_port=9)])]).in_sync
    assert not P.plan([(SVC, [gre])], [(SVC, [gre.replace(tun_flags=0)])]).in_sync


def test_forwarding_flag_bits_do_not_count():
    assert P.plan([(SVC, [D1])], [(SVC, [D1.replace(fwd=m.FWD_MASQ | 0x0100)])]).in_sync


def test_counters_do_not_count():
    busy = D1.replace(active_conns=5, inact_conns=2, persist_conns=1, stats=m.Stats(conns=9))
    assert P.plan([(SVC, [D1])], [(SVC.replace(stats=m.Stats(conns=9)), [busy])]).in_sync


# --- scope and pruning ---------------------------------------------------------


FOREIGN = m.Service(m.ServiceKey(m.AF_INET, m.IPPROTO_UDP, "192.0.2.1", 53), "rr")


def test_without_prune_services_absent_from_the_file_are_left_alone():
    p = P.plan([(SVC, [D1])], [(SVC, [D1]), (FOREIGN, [D2])])
    assert p.in_sync


def test_prune_removes_what_the_file_does_not_name():
    p = P.plan([(SVC, [D1])], [(SVC, [D1]), (FOREIGN, [D2])], prune=True)
    assert ops(p) == [P.DEL_SERVICE] and p.steps[0].key == FOREIGN.key
    assert p.leaving() == [(FOREIGN.key, D2)]
    assert p.counts()["servers_removed"] == 1


def test_prune_never_leaves_its_scope():
    live = [(SVC, [D1]), (FOREIGN, [D2]), (m.Service(FWM), [])]
    p = P.plan([(SVC, [D1])], live, Scope.parse(["10.0.0.0/8"]), prune=True)
    assert p.in_sync
    p = P.plan([(SVC, [D1])], live, Scope.parse(["10.0.0.0/8", "fwmark:1-10"]), prune=True)
    assert [s.key for s in p.steps] == [FWM]


def test_a_desired_service_outside_the_scope_is_refused():
    with pytest.raises(ScopeError, match="TCP 10.0.0.1:80 is outside every --scope"):
        P.plan([(SVC, [])], [], Scope.parse(["192.0.2.0/24"]))


def test_scope_families_and_marks():
    s = Scope.parse(["10.0.0.0/8", "2001:db8::/32", "fwmark:5-9"])
    assert s.contains(KEY) and s.contains(KEY6)
    assert s.contains(m.ServiceKey(m.AF_INET6, fwmark=5)) and not s.contains(m.ServiceKey(m.AF_INET, fwmark=10))
    assert not s.contains(FOREIGN.key)
    assert Scope.parse(["fwmark:7"]).marks == ((7, 7),)
    assert Scope().contains(FOREIGN.key)
    for bad in ("10.0.0.0/33", "fwmark:9-5", "fwmark:0-3", "fwmark:x", "banana"):
        with pytest.raises(ScopeError):
            Scope.parse([bad])


# --- convergence, checked against an in-memory kernel ---------------------------


def _random_table(rng, n_services=6):
    table = []
    keys = set()
    while len(table) < n_services:
        if rng.random() < 0.2:
            key = m.ServiceKey(rng.choice([m.AF_INET, m.AF_INET6]), fwmark=rng.randint(1, 5))
        else:
            key = m.ServiceKey(m.AF_INET, rng.choice([6, 17]), f"10.0.0.{rng.randint(1, 4)}", rng.choice([80, 443]))
        if key in keys:
            continue
        keys.add(key)
        persistent = rng.random() < 0.4
        svc = m.Service(key, rng.choice(["rr", "wrr", "sh", "wlc"]),
                        (m.SVC_F_PERSISTENT if persistent else 0) | rng.choice([0, m.SVC_F_SCHED1]),
                        rng.choice([60, 360]) if persistent else 0, None, rng.choice(["", "sip"]) if persistent else "")
        dests = {}
        for _ in range(rng.randint(0, 4)):
            fwd = rng.choice([m.FWD_MASQ, m.FWD_ROUTE, m.FWD_TUNNEL])
            af = key.af
            addr = f"10.1.0.{rng.randint(1, 5)}" if af == m.AF_INET else f"2001:db8::{rng.randint(1, 5)}"
            port = rng.choice([80, 8080]) if fwd == m.FWD_MASQ else (key.port if not key.fwmark else 0)
            tun = rng.choice([(0, 0, 0), (1, 6080, 1), (2, 0, 1)]) if fwd == m.FWD_TUNNEL else (0, 0, 0)
            d = m.Destination(af, addr, port, fwd, rng.randint(0, 3), rng.choice([0, 100]), 0, *tun)
            dests[(af, addr, port)] = d
        table.append((svc, list(dests.values())))
    return table


@pytest.mark.parametrize("seed", range(40))
def test_applying_the_plan_converges_and_a_second_plan_is_empty(seed):
    rng = random.Random(seed)
    live, desired = _random_table(rng), _random_table(rng)
    prune = rng.random() < 0.5
    kernel = MemoryIPVS(live)
    p = P.plan(desired, kernel.table(), prune=prune)
    errors = kernel.apply_many([s.request() for s in p.steps])
    assert errors == {}
    again = P.plan(desired, kernel.table(), prune=prune)
    assert again.in_sync, again.steps
    # No service the file keeps is ever deleted; without prune the others are untouched.
    kept = {svc.key for svc, _ in desired}
    assert not [s for s in p.steps if s.op == P.DEL_SERVICE and s.key in kept]
    if not prune:
        live_only = {svc.key for svc, _ in live} - kept
        assert all(kernel.services.get(k) == dict((s.key, s) for s, _ in live)[k] for k in live_only)
