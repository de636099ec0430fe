"""The listing query (ipvsctl.listing): what each view reads, in which order,
filtered how, and what a failed read becomes."""

from __future__ import annotations

import errno

import pytest

from ipvsctl import listing
from ipvsctl import model as m
from ipvsctl.backend import KernelError
from ipvsctl.grammar import parse
from ipvsctl.labels import service_label
from support.fake_ipvs import MemoryIPVS

A4, A6 = m.AF_INET, m.AF_INET6
TCP80 = m.ServiceKey(A4, m.IPPROTO_TCP, "192.0.2.10", 80)
TABLE = [
    (m.Service(m.ServiceKey(A4, m.IPPROTO_UDP, "192.0.2.53", 53), "rr"), []),
    (m.Service(TCP80, "wlc"), [m.Destination(A4, "198.51.100.2", 8080, m.FWD_MASQ),
                               m.Destination(A4, "198.51.100.1", 80, m.FWD_MASQ)]),
    (m.Service(m.ServiceKey(A6, fwmark=4294967295), "mh", m.SVC_F_PERSISTENT, 60, 64),
     [m.Destination(A6, "2001:db8::2", 0, m.FWD_TUNNEL)]),
    (m.Service(m.ServiceKey(A4, m.IPPROTO_SCTP, "192.0.2.11", 3868), "lc"),
     [m.Destination(A4, "198.51.100.9", 3868, m.FWD_ROUTE)]),
    (m.Service(m.ServiceKey(A4, fwmark=1), "rr"), []),
]


def names(table) -> list[str]:
    return [service_label(s.key) for s, _ in table]


def test_the_table_in_ipvsadms_order_or_the_kernels():
    from ipvsctl.order import sort_services

    backend = MemoryIPVS(TABLE)
    ipvsadms = names(sort_services(TABLE, service_of=lambda e: e[0]))  # order.py: held to ipvsadm's goldens
    assert ipvsadms != names(TABLE)
    assert names(listing.table(backend)) == ipvsadms
    assert names(listing.table(backend, sort=False)) == names(TABLE)
    ordered = dict(listing.table(backend))[m.Service(TCP80, "wlc")]
    assert [d.addr for d in ordered] == ["198.51.100.1", "198.51.100.2"]  # real servers sorted too


def test_one_service():
    (svc, dests), = listing.table(MemoryIPVS(TABLE), TCP80)
    assert svc.key == TCP80 and [d.port for d in dests] == [80, 8080]
    with pytest.raises(KernelError):
        listing.table(MemoryIPVS(TABLE), m.ServiceKey(A4, m.IPPROTO_TCP, "192.0.2.99", 80))


def test_filter_by_protocol():
    backend = MemoryIPVS(TABLE)
    assert names(listing.table(backend, sort=False, protocol="tcp")) == ["TCP 192.0.2.10:80"]
    assert names(listing.table(backend, sort=False, protocol="fwmark")) == ["FWM 4294967295 IPv6", "FWM 1"]
    assert names(listing.table(backend, sort=False, protocol="sctp")) == ["SCTP 192.0.2.11:3868"]


def test_filter_by_address_matches_virtual_or_real_server():
    backend = MemoryIPVS(TABLE)
    # a virtual address: the service with all its real servers
    (svc, dests), = listing.table(backend, address="192.0.2.10")
    assert len(dests) == 2
    # a real server: its services, with only that real server
    (svc, dests), = listing.table(backend, address="198.51.100.2")
    assert svc.key == TCP80 and [d.addr for d in dests] == ["198.51.100.2"]
    addr = listing.normalize_address("[2001:DB8:0:0::2]")
    assert addr == "2001:db8::2"
    assert names(listing.table(backend, address=addr)) == ["FWM 4294967295 IPv6"]
    assert listing.table(backend, address="203.0.113.99") == []
    with pytest.raises(ValueError):
        listing.normalize_address("example.com")


@pytest.mark.parametrize("line, as_json, kind, counters, sort, header", [
    ("-Ln", False, listing.TABLE, False, True, True),
    ("-Sn", False, listing.TABLE, False, True, False),  # -S prints no header
    ("-Ln --stats", False, listing.TABLE, True, True, True),
    ("-Ln --rate --nosort", False, listing.TABLE, True, False, True),
    ("-Ln --thresholds", False, listing.TABLE, False, True, True),
    ("-Ln", True, listing.TABLE, True, True, True),  # a document has every key
    ("-Ln -t 192.0.2.10:80", False, listing.SERVICE, False, True, False),
    ("-Ln -t 192.0.2.10:80", True, listing.SERVICE, True, True, True),
    ("-Lnc", False, listing.CONNECTIONS, True, True, False),
    ("-L --timeout", False, listing.TIMEOUTS, True, True, False),
    ("-L --daemon", True, listing.DAEMONS, True, True, False),
])
def test_what_each_list_command_reads(line, as_json, kind, counters, sort, header):
    q = listing.Query.of(parse(line.split()), as_json)
    assert (q.kind, q.header) == (kind, header)
    if kind in (listing.TABLE, listing.SERVICE):
        assert (q.counters, q.sort) == (counters, sort)
    if kind == listing.SERVICE:
        assert q.key == TCP80


class Failing(MemoryIPVS):
    """MemoryIPVS whose method ``fail`` raises KernelError(err, op)."""

    def __init__(self, fail: str, err: int, op: str = ""):
        super().__init__(TABLE)

        def refuse(*args, **kw):
            raise KernelError(err, op)

        setattr(self, fail, refuse)

    def read_proc_net(self, name):
        raise FileNotFoundError(name)


def test_a_failed_read_is_the_status_and_message_ipvsadm_gives():
    q = listing.Query.of(parse(["-Ln"]))
    r = listing.read(Failing("info", errno.EPERM, "get_info"), q)
    assert (r.status, r.info, r.message) == (1, None, "Permission denied (you must be root)")
    r = listing.read(Failing("table", errno.EAGAIN, "get_dests"), q)
    assert r.status == 1 and r.info is not None  # the header was read: ipvsadm prints it
    assert r.message.startswith("The IPVS table kept changing")
    r = listing.read(Failing("timeouts", errno.EPERM), listing.Query.of(parse(["-L", "--timeout"])))
    assert (r.status, r.message) == (1, "")  # ipvsadm says nothing
    r = listing.read(Failing("daemons", errno.EPERM), listing.Query.of(parse(["-Lnc"])))
    assert (r.status, r.message) == (1, "cannot open file /proc/net/ip_vs_conn")
    ok = listing.read(MemoryIPVS(TABLE), listing.Query.of(parse(["-Sn"])))
    assert ok.ok and ok.info is None and names(ok.value)[0] == "FWM 4294967295 IPv6"
