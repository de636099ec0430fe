"""ipvsadm's listing order (ipvsctl/order.py)."""

from __future__ import annotations

import random

from ipvsctl import model as m
from ipvsctl.order import _msort, sort_destinations, sort_services


def svc(addr, port=80, proto=m.IPPROTO_TCP, fwmark=0, af=m.AF_INET):
    if fwmark:
        return m.Service(key=m.ServiceKey(af=af, fwmark=fwmark))
    return m.Service(key=m.ServiceKey(af=af, protocol=proto, addr=addr, port=port))


def names(services):
    return [(s.key.fwmark, s.key.addr, s.key.port) for s in services]


def test_wrapping_address_comparison():
    # IPVSADM-FACTS: ipvsadm compares addresses by a wrapping int
    # subtraction, so 10.0.0.1 sorts after 192.168.0.1.
    ordered = sort_services([svc("10.0.0.1"), svc("192.168.0.1")])
    assert names(ordered) == [(0, "192.168.0.1", 80), (0, "10.0.0.1", 80)]


def test_fast_path_equals_the_merge_sort_where_the_order_is_total():
    rng = random.Random(7)
    entries = [svc(f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
                   port=rng.randrange(65536), proto=rng.choice([6, 17, 132])) for _ in range(500)]
    fast = sort_services(entries)
    # Force the slow path on the same data: the results must agree.
    from ipvsctl import order

    keyed = [(s.key.fwmark, s.key.af, s.key.protocol, order._words(s.key.af, s.key.addr), s.key.port, s)
             for s in entries]

    def cmp(a, b):
        r = order._wrap(a[0] - b[0]) or (a[1] - b[1]) or (a[2] - b[2])
        return r or order._addr_cmp(a[1], a[3], b[3]) or (a[4] - b[4])

    assert [t[5] for t in _msort(keyed, cmp)] == fast


def test_merge_sort_is_stable_and_left_first():
    items = [(1, "a"), (0, "b"), (1, "c"), (0, "d")]
    assert _msort(items, lambda x, y: x[0] - y[0]) == [(0, "b"), (0, "d"), (1, "a"), (1, "c")]


def test_destinations_by_address_then_port():
    ds = [m.Destination(af=m.AF_INET, addr=a, port=p) for a, p in
          [("10.0.0.2", 80), ("10.0.0.1", 90), ("10.0.0.1", 80)]]
    assert [(d.addr, d.port) for d in sort_destinations(ds)] == [
        ("10.0.0.1", 80), ("10.0.0.1", 90), ("10.0.0.2", 80)]
