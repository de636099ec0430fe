"""NetlinkBackend against the real kernel's IPVS, with ipvsadm as the oracle.

Each test gets fresh namespaces (the ``netns``/``netns_pair`` fixtures), so
an empty table of its own.  The central check is differential: the same
configuration is made by the real ipvsadm in one namespace and by our backend
in the other, then both tables are read back by ipvsadm (-Sn, -Ln
--thresholds, --tun-info) and by our backend, and must all agree with what
was asked for.  Everything about kernel behaviour that the unit tests assume
(errno values, batching semantics, dump formats) is proven here.
"""

from __future__ import annotations

import errno
import os
import socket
import time

import pytest

from ipvsctl.backend import (
    OP_ADD_DEST,
    OP_ADD_SERVICE,
    OP_DEL_DEST,
    OP_DEL_SERVICE,
    OP_EDIT_DEST,
    OP_EDIT_SERVICE,
    OP_FLUSH,
    OP_GET_DESTS,
    OP_GET_SERVICE,
    OP_SET_TIMEOUTS,
    OP_START_DAEMON,
    OP_STOP_DAEMON,
    OP_ZERO,
    KernelError,
    Request,
)
from ipvsctl.model import (
    AF_INET,
    AF_INET6,
    DAEMON_BACKUP,
    DAEMON_MASTER,
    FWD_BYPASS,
    FWD_LOCAL,
    FWD_MASQ,
    FWD_ROUTE,
    FWD_TUNNEL,
    IPPROTO_SCTP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    SVC_F_ONEPACKET,
    SVC_F_PERSISTENT,
    SVC_F_SCHED1,
    SVC_F_SCHED2,
    SVC_F_SCHED3,
    TUN_F_CSUM,
    TUN_F_NOCSUM,
    TUN_F_REMCSUM,
    TUN_GRE,
    TUN_GUE,
    TUN_IPIP,
    Daemon,
    Destination,
    Service,
    ServiceKey,
    Stats,
    Timeouts,
)
from ipvsctl.netlink import decode, encode, wire
from ipvsctl.netlink.codec import Codec
from ipvsctl.netlink.backend import NetlinkBackend
from ipvsctl.netlink.netns import NetnsNotFound
from nsutil import run_ipvsadm, wait_for

CODEC = Codec()  # one backend's memos (learned layouts), shared as a dump's entries share them

pytestmark = pytest.mark.kernel


def ipvsadm(ns, *args: str, input: str | None = None) -> str:
    r = run_ipvsadm(ns, *args, input=input)
    assert r.returncode == 0, f"ipvsadm {' '.join(args)}: {r.stderr}"
    return r.stdout


def body(text: str) -> list[str]:
    """The entries of an ipvsadm -L listing (without its three header lines)."""
    return text.splitlines()[3:]


@pytest.fixture
def backend(netns):
    b = NetlinkBackend(netns.name)
    yield b
    b.close()


@pytest.fixture
def pair(netns_pair):
    a, b = netns_pair
    bb = NetlinkBackend(b.path)  # a namespace given as a path works too
    yield a, b, bb
    bb.close()


def S(*a, **kw) -> Service:
    return Service(*a, **kw)


def K(af, proto=0, addr=None, port=0, fwmark=0) -> ServiceKey:
    return ServiceKey(af, proto, addr, port, fwmark)


T4 = K(AF_INET, IPPROTO_TCP, "10.0.0.1", 80)
U4 = K(AF_INET, IPPROTO_UDP, "10.0.0.1", 5060)
SC4 = K(AF_INET, IPPROTO_SCTP, "10.0.0.1", 9999)
P4 = K(AF_INET, IPPROTO_TCP, "10.0.0.2", 0)
T6 = K(AF_INET6, IPPROTO_TCP, "2001:db8::1", 443)
U6 = K(AF_INET6, IPPROTO_UDP, "2001:db8::1", 53)
F4 = K(AF_INET, fwmark=1)
F6 = K(AF_INET6, fwmark=2)
FBIG = K(AF_INET, fwmark=0xFFFFFFF0)

# (ipvsadm line, the same thing as a model value) for every service feature.
SERVICE_CASES = [
    ("-A -t 10.0.0.1:80 -s rr", S(T4, "rr")),
    ("-A -u 10.0.0.1:5060 -s rr -p 60 -M 255.255.0.0 --pe sip -o",
     S(U4, "rr", SVC_F_PERSISTENT | SVC_F_ONEPACKET, 60, 0xFFFF0000, "sip")),
    ("-A --sctp-service 10.0.0.1:9999 -s sh -b sh-fallback,sh-port", S(SC4, "sh", SVC_F_SCHED1 | SVC_F_SCHED2)),
    ("-A -t 10.0.0.2:0 -s lc -p 300 -M 255.255.255.0", S(P4, "lc", SVC_F_PERSISTENT, 300, 0xFFFFFF00)),
    ("-A -t [2001:db8::1]:443 -s mh -b flag-1,flag-3", S(T6, "mh", SVC_F_SCHED1 | SVC_F_SCHED3)),
    ("-A -u [2001:db8::1]:53 -s wrr -p 3600 -M 48", S(U6, "wrr", SVC_F_PERSISTENT, 3600, 48)),
    ("-A -f 1 -s wlc", S(F4, "wlc")),
    ("-A -f 2 -6 -s sed -p 120 -M 64 --pe sip", S(F6, "sed", SVC_F_PERSISTENT, 120, 64, "sip")),
    ("-A -f 4294967280 -s dh -p", S(FBIG, "dh", SVC_F_PERSISTENT, 360)),
]


def D(*a, **kw) -> Destination:
    return Destination(*a, **kw)


# (ipvsadm line, service key, destination) for every destination feature.
DEST_CASES = [
    ("-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 5", T4, D(AF_INET, "10.1.0.1", 8080, FWD_MASQ, 5)),
    ("-a -t 10.0.0.1:80 -r 10.1.0.2:80 -g -w 0 -x 1000 -y 10", T4, D(AF_INET, "10.1.0.2", 80, FWD_ROUTE, 0, 1000, 10)),
    ("-a -t 10.0.0.1:80 -r 10.1.0.3:80 -i", T4, D(AF_INET, "10.1.0.3", 80, FWD_TUNNEL, 1)),
    ("-a -t 10.0.0.1:80 -r 10.1.0.4:80 -i -w 2 --tun-type gue --tun-port 6080 --tun-nocsum",
     T4, D(AF_INET, "10.1.0.4", 80, FWD_TUNNEL, 2, tun_type=TUN_GUE, tun_port=6080, tun_flags=TUN_F_NOCSUM)),
    ("-a -t 10.0.0.1:80 -r 10.1.0.5:80 -i -w 3 --tun-type gue --tun-port 65000 --tun-csum",
     T4, D(AF_INET, "10.1.0.5", 80, FWD_TUNNEL, 3, tun_type=TUN_GUE, tun_port=65000, tun_flags=TUN_F_CSUM)),
    ("-a -t 10.0.0.1:80 -r 10.1.0.6:80 -i -w 4 --tun-type gue --tun-port 1 --tun-remcsum",
     T4, D(AF_INET, "10.1.0.6", 80, FWD_TUNNEL, 4, tun_type=TUN_GUE, tun_port=1, tun_flags=TUN_F_REMCSUM)),
    ("-a -t 10.0.0.1:80 -r 10.1.0.7:80 -i --tun-type gre --tun-csum",
     T4, D(AF_INET, "10.1.0.7", 80, FWD_TUNNEL, 1, tun_type=TUN_GRE, tun_flags=TUN_F_CSUM)),
    ("-a -t 10.0.0.1:80 -r 10.1.0.8:80 -i --tun-type ipip", T4, D(AF_INET, "10.1.0.8", 80, FWD_TUNNEL, tun_type=TUN_IPIP)),
    # An IPv6 real server behind an IPv4 service: only tunnelling allows it.
    ("-a -t 10.0.0.1:80 -r [2001:db8::5]:80 -i -w 7 --tun-type gue --tun-port 5555 --tun-csum",
     T4, D(AF_INET6, "2001:db8::5", 80, FWD_TUNNEL, 7, tun_type=TUN_GUE, tun_port=5555, tun_flags=TUN_F_CSUM)),
    ("-a -u 10.0.0.1:5060 -r 10.2.0.1:5060 -m -w 65535 -x 5 -y 0", U4, D(AF_INET, "10.2.0.1", 5060, FWD_MASQ, 65535, 5)),
    ("-a --sctp-service 10.0.0.1:9999 -r 10.3.0.1:9999 -g", SC4, D(AF_INET, "10.3.0.1", 9999, FWD_ROUTE)),
    ("-a -t 10.0.0.2:0 -r 10.4.0.1:0 -g", P4, D(AF_INET, "10.4.0.1", 0, FWD_ROUTE)),
    ("-a -t [2001:db8::1]:443 -r [2001:db8::10]:8443 -m -w 9 -x 100 -y 50", T6,
     D(AF_INET6, "2001:db8::10", 8443, FWD_MASQ, 9, 100, 50)),
    ("-a -u [2001:db8::1]:53 -r [2001:db8::11]:53 -i --tun-type gue --tun-port 6081", U6,
     D(AF_INET6, "2001:db8::11", 53, FWD_TUNNEL, tun_type=TUN_GUE, tun_port=6081)),
    ("-a -f 1 -r 10.5.0.1:0 -g -w 3", F4, D(AF_INET, "10.5.0.1", 0, FWD_ROUTE, 3)),
    ("-a -f 2 -6 -r [2001:db8::12]:0 -i --tun-type gre --tun-nocsum", F6,
     D(AF_INET6, "2001:db8::12", 0, FWD_TUNNEL, tun_type=TUN_GRE, tun_flags=TUN_F_NOCSUM)),
    ("-a -f 4294967280 -r 10.6.0.1:0 -m -w 2", FBIG, D(AF_INET, "10.6.0.1", 0, FWD_MASQ, 2)),
]


def expected_table() -> dict:
    return {svc.key: (svc, sorted((d for _, k, d in DEST_CASES if k == svc.key), key=_dkey))
            for _, svc in SERVICE_CASES}


def as_dict(table) -> dict:
    return {svc.key: (svc, sorted(dests, key=_dkey)) for svc, dests in table}


def _dkey(d: Destination):
    return (d.af, d.addr, d.port)


def requests() -> list[Request]:
    return [Request(OP_ADD_SERVICE, svc) for _, svc in SERVICE_CASES] + [
        Request(OP_ADD_DEST, k, d) for _, k, d in DEST_CASES
    ]


def ipvsadm_lines() -> str:
    return "".join(line + "\n" for line, *_ in SERVICE_CASES + DEST_CASES)


def assert_same_as_ipvsadm(a, b) -> None:
    """Namespace b (ours) reads back exactly like namespace a (ipvsadm's)."""
    for view in (["-Sn"], ["-Ln", "--thresholds"], ["-Ln", "--tun-info"], ["-Ln", "--persistent-conn"]):
        assert ipvsadm(a, *view) == ipvsadm(b, *view), view


def sort_table(d: dict) -> dict:
    return {k: (s, sorted(ds, key=_dkey)) for k, (s, ds) in d.items()}


# ---------------------------------------------------------------------------
# Services and destinations, against ipvsadm
# ---------------------------------------------------------------------------


def test_every_feature_matches_ipvsadm_applied_one_by_one(pair):
    a, b, ours = pair
    ipvsadm(a, "-R", input=ipvsadm_lines())
    for r in requests():
        ours.apply(r)
    assert_same_as_ipvsadm(a, b)
    want = sort_table(expected_table())
    assert as_dict(ours.table()) == want
    # And our decoder reads what ipvsadm made just the same.
    with NetlinkBackend(a.name) as theirs:
        assert as_dict(theirs.table()) == want


def test_every_feature_matches_ipvsadm_applied_as_one_batch(pair):
    a, b, ours = pair
    ipvsadm(a, "-R", input=ipvsadm_lines())
    assert ours.apply_many(requests()) == {}
    assert_same_as_ipvsadm(a, b)
    assert as_dict(ours.table()) == sort_table(expected_table())


def test_single_reads(backend):
    backend.apply_many(requests())
    for _, svc in SERVICE_CASES:
        got = backend.service(svc.key)
        assert got == svc and got.stats == Stats()
        dests = backend.destinations(svc.key)
        assert sorted(dests, key=_dkey) == expected_table()[svc.key][1]
        for d in dests:
            assert d.stats == Stats() and (d.active_conns, d.inact_conns, d.persist_conns) == (0, 0, 0)
    assert sorted(backend.services(), key=str) == sorted((s for _, s in SERVICE_CASES), key=str)


def test_edit_service_and_destination_match_ipvsadm(pair):
    a, b, ours = pair
    ipvsadm(a, "-R", input=ipvsadm_lines())
    ours.apply_many(requests())
    edits = [
        ("-E -t 10.0.0.1:80 -s wlc -p 10 -M 255.255.255.128", Request(
            OP_EDIT_SERVICE, S(T4, "wlc", SVC_F_PERSISTENT, 10, 0xFFFFFF80))),
        ("-E -u 10.0.0.1:5060 -s rr", Request(OP_EDIT_SERVICE, S(U4, "rr"))),  # drops persistence, pe, -o
        ("-E -f 2 -6 -s rr -p 50 -M 128", Request(OP_EDIT_SERVICE, S(F6, "rr", SVC_F_PERSISTENT, 50, 128))),
        ("-e -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 100 -x 7 -y 3",
         Request(OP_EDIT_DEST, T4, D(AF_INET, "10.1.0.1", 8080, FWD_MASQ, 100, 7, 3))),
        ("-e -t 10.0.0.1:80 -r 10.1.0.4:80 -i -w 2 --tun-type gre --tun-csum",
         Request(OP_EDIT_DEST, T4, D(AF_INET, "10.1.0.4", 80, FWD_TUNNEL, 2, tun_type=TUN_GRE, tun_flags=TUN_F_CSUM))),
        ("-e -t 10.0.0.1:80 -r 10.1.0.2:80 -m", Request(OP_EDIT_DEST, T4, D(AF_INET, "10.1.0.2", 80, FWD_MASQ))),
        ("-d -t 10.0.0.1:80 -r 10.1.0.3:80", Request(OP_DEL_DEST, T4, D(AF_INET, "10.1.0.3", 80))),
        ("-d -t 10.0.0.1:80 -r [2001:db8::5]:80", Request(OP_DEL_DEST, T4, D(AF_INET6, "2001:db8::5", 80))),
        ("-D --sctp-service 10.0.0.1:9999", Request(OP_DEL_SERVICE, SC4)),
        ("-D -f 4294967280", Request(OP_DEL_SERVICE, FBIG)),
    ]
    ipvsadm(a, "-R", input="".join(line + "\n" for line, _ in edits))
    for _, r in edits:
        ours.apply(r)
    assert_same_as_ipvsadm(a, b)
    got = {s.key: s for s in ours.services()}
    assert got[T4] == S(T4, "wlc", SVC_F_PERSISTENT, 10, 0xFFFFFF80)
    assert got[U4] == S(U4, "rr")
    assert SC4 not in got and FBIG not in got
    dests = {_dkey(d): d for d in ours.destinations(T4)}
    assert dests[(AF_INET, "10.1.0.1", 8080)] == D(AF_INET, "10.1.0.1", 8080, FWD_MASQ, 100, 7, 3)
    assert dests[(AF_INET, "10.1.0.4", 80)].tun_type == TUN_GRE
    assert (AF_INET, "10.1.0.3", 80) not in dests and (AF_INET6, "2001:db8::5", 80) not in dests


def test_forwarding_methods_ipvsadm_cannot_ask_for(backend, netns):
    # ipvsadm has no option for Local (1) or Bypass (4); the kernel stores them.
    backend.apply(Request(OP_ADD_SERVICE, S(T4, "rr")))
    backend.apply(Request(OP_ADD_DEST, T4, D(AF_INET, "10.1.1.1", 80, FWD_LOCAL)))
    backend.apply(Request(OP_ADD_DEST, T4, D(AF_INET, "10.1.1.2", 80, FWD_BYPASS)))
    assert {(d.addr, d.fwd) for d in backend.destinations(T4)} == {("10.1.1.1", FWD_LOCAL), ("10.1.1.2", FWD_BYPASS)}
    assert "-> 10.1.1.1:80                  Local   1" in ipvsadm(netns, "-Ln")


def test_an_ipv6_service_built_without_a_netmask_is_accepted(backend):
    # The model's default is the family's full mask: a prefix length of 128
    # for IPv6 (the kernel refuses 0xFFFFFFFF there).
    for svc in (S(T6, "rr"), S(F6, "rr", SVC_F_PERSISTENT, 30)):
        backend.apply(Request(OP_ADD_SERVICE, svc))
    assert sorted(backend.services(), key=repr) == sorted([S(T6, "rr"), S(F6, "rr", SVC_F_PERSISTENT, 30)], key=repr)


def test_a_service_can_be_given_as_service_or_key(backend):
    svc = S(T4, "rr")
    backend.apply(Request(OP_ADD_SERVICE, svc))
    backend.apply(Request(OP_ADD_DEST, svc, D(AF_INET, "10.1.0.1", 80, FWD_MASQ)))
    backend.apply(Request(OP_ZERO, svc))
    backend.apply(Request(OP_DEL_SERVICE, svc))
    assert backend.services() == []


# ---------------------------------------------------------------------------
# Errors: the right errno, the request's op
# ---------------------------------------------------------------------------


def kerr(backend, request: Request) -> KernelError:
    with pytest.raises(KernelError) as e:
        backend.apply(request)
    assert e.value.op == request.op
    return e.value


def test_typed_errors(backend):
    svc = S(T4, "rr")
    dest = D(AF_INET, "10.1.0.1", 80, FWD_MASQ)
    backend.apply(Request(OP_ADD_SERVICE, svc))
    backend.apply(Request(OP_ADD_DEST, T4, dest))
    cases = [
        (Request(OP_ADD_SERVICE, svc), errno.EEXIST),  # "Service already exists"
        (Request(OP_ADD_SERVICE, S(U4, "no-such-sched")), errno.ENOENT),  # "Scheduler ... not found"
        (Request(OP_ADD_SERVICE, S(U4, "rr", SVC_F_PERSISTENT, 10, 0xFFFFFFFF, "no-such-pe")), errno.ENOENT),
        (Request(OP_EDIT_SERVICE, S(U4, "rr")), errno.ESRCH),  # "No such service"
        (Request(OP_DEL_SERVICE, U4), errno.ESRCH),
        (Request(OP_ZERO, U4), errno.ESRCH),
        (Request(OP_ADD_DEST, T4, dest), errno.EEXIST),  # "Destination already exists"
        (Request(OP_ADD_DEST, U4, dest), errno.ESRCH),  # "Service not defined"
        (Request(OP_EDIT_DEST, T4, D(AF_INET, "10.1.0.9", 80)), errno.ENOENT),  # "No such destination"
        (Request(OP_DEL_DEST, T4, D(AF_INET, "10.1.0.9", 80)), errno.ENOENT),
        (Request(OP_EDIT_DEST, U4, dest), errno.ESRCH),
        (Request(OP_ADD_DEST, T4, D(AF_INET, "10.1.0.2", 80, FWD_MASQ, 1, 5, 10)), errno.ERANGE),  # lower > upper
        # Mixed families only with tunnelling.
        (Request(OP_ADD_DEST, T4, D(AF_INET6, "2001:db8::9", 80, FWD_MASQ)), errno.EINVAL),
        # IPv6 netmask must be a prefix length 1..128.
        (Request(OP_ADD_SERVICE, S(T6, "rr", SVC_F_PERSISTENT, 10, 0xFFFFFFFF)), errno.EINVAL),
        (Request(OP_STOP_DAEMON, daemon=Daemon(DAEMON_MASTER)), errno.ESRCH),  # "No daemon is running"
    ]
    for request, want in cases:
        assert kerr(backend, request).errno == want, request
    with pytest.raises(KernelError) as e:
        backend.service(U4)
    assert (e.value.errno, e.value.op) == (errno.ESRCH, OP_GET_SERVICE)
    with pytest.raises(KernelError) as e:
        backend.destinations(U4)  # the kernel's dump is empty; ipvsadm says "No such service"
    assert (e.value.errno, e.value.op) == (errno.ESRCH, OP_GET_DESTS)
    # Nothing above changed the table.
    assert backend.table() == [(svc, [dest])]


# ---------------------------------------------------------------------------
# Batches: failures in the middle, order, size
# ---------------------------------------------------------------------------


def test_apply_many_reports_exactly_the_failing_indices_and_applies_the_rest(backend, netns):
    d = [D(AF_INET, f"10.1.0.{i}", 80, FWD_MASQ, i) for i in range(1, 7)]
    reqs = [
        Request(OP_ADD_SERVICE, S(T4, "rr")),  # 0
        Request(OP_ADD_DEST, T4, d[1]),  # 1
        Request(OP_ADD_DEST, T4, d[1]),  # 2 EEXIST
        Request(OP_ADD_DEST, U4, d[2]),  # 3 ESRCH: no such service yet
        Request(OP_ADD_SERVICE, S(U4, "wlc")),  # 4
        Request(OP_ADD_DEST, U4, d[2]),  # 5 now fine
        Request(OP_DEL_DEST, T4, d[5]),  # 6 ENOENT
        Request(OP_ADD_SERVICE, S(T4, "rr")),  # 7 EEXIST
        Request(OP_DEL_SERVICE, U4),  # 8
        Request(OP_ADD_SERVICE, S(U4, "lc")),  # 9 fine again: deleted just before
        Request(OP_ADD_DEST, T4, d[3]),  # 10
        Request(OP_EDIT_SERVICE, S(T4, "sh")),  # 11
        Request(OP_ADD_DEST, T4, D(AF_INET, "10.1.0.9", 80, FWD_MASQ, 1, 1, 2)),  # 12 ERANGE
        Request(OP_ADD_DEST, T4, d[4]),  # 13
    ]
    errs = backend.apply_many(reqs)
    assert {i: e.errno for i, e in errs.items()} == {
        2: errno.EEXIST, 3: errno.ESRCH, 6: errno.ENOENT, 7: errno.EEXIST, 12: errno.ERANGE
    }
    assert all(e.op == reqs[i].op for i, e in errs.items())
    assert as_dict(backend.table()) == {
        T4: (S(T4, "sh"), [d[1], d[3], d[4]]),
        U4: (S(U4, "lc"), []),
    }
    assert set(ipvsadm(netns, "-Sn").splitlines()) == {
        "-A -t 10.0.0.1:80 -s sh",
        "-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 2",
        "-a -t 10.0.0.1:80 -r 10.1.0.4:80 -m -w 4",
        "-a -t 10.0.0.1:80 -r 10.1.0.5:80 -m -w 5",
        "-A -u 10.0.0.1:5060 -s lc",
    }


def _many_dests(n_services: int, per_service: int):
    keys = [K(AF_INET, IPPROTO_TCP, f"10.0.{i // 250}.{i % 250 + 1}", 80) for i in range(n_services)]
    reqs = [Request(OP_ADD_SERVICE, S(k, "rr")) for k in keys]
    for j in range(per_service):
        for k in keys:
            reqs.append(Request(OP_ADD_DEST, k, D(AF_INET, f"10.{100 + j // 62500}.{j // 250 % 250}.{j % 250 + 1}",
                                                  8000 + keys.index(k) % 1000, FWD_MASQ, 1 + j % 100)))
    return keys, reqs


def test_a_batch_of_20000_destinations(backend, netns):
    keys, reqs = _many_dests(20, 1000)
    t0 = time.perf_counter()
    errs = backend.apply_many(reqs)
    elapsed = time.perf_counter() - t0
    assert errs == {}
    table = backend.table()
    assert len(table) == 20 and sum(len(ds) for _, ds in table) == 20_000
    want = {}
    for r in reqs[20:]:
        want.setdefault(r.service, set()).add(r.dest)
    for svc, dests in table:
        assert set(dests) == want[svc.key]
        assert {(d.weight, d.fwd) for d in dests} <= {(w, FWD_MASQ) for w in range(1, 101)}
    # The kernel's own view agrees (one line per service and per destination).
    lines = ipvsadm(netns, "-Sn").splitlines()
    assert len(lines) == 20 + 20_000
    print(f"\n20,000-destination batch applied in {elapsed:.2f}s")


def test_a_batch_where_every_request_fails_reports_every_index(backend):
    # The worst case for the receive buffer: one error report per request.
    reqs = [Request(OP_ADD_DEST, T4, D(AF_INET, f"10.1.{i // 250}.{i % 250 + 1}", 80)) for i in range(20_000)]
    errs = backend.apply_many(reqs)
    assert sorted(errs) == list(range(20_000))
    assert {e.errno for e in errs.values()} == {errno.ESRCH}


def test_batch_and_single_requests_interleave(backend):
    backend.apply(Request(OP_ADD_SERVICE, S(T4, "rr")))
    assert backend.apply_many([Request(OP_ADD_DEST, T4, D(AF_INET, "10.1.0.1", 80))]) == {}
    backend.apply(Request(OP_ADD_DEST, T4, D(AF_INET, "10.1.0.2", 80)))
    errs = backend.apply_many([Request(OP_ADD_DEST, T4, D(AF_INET, "10.1.0.2", 80))])
    assert list(errs) == [0]
    assert len(backend.destinations(T4)) == 2


# ---------------------------------------------------------------------------
# Zero, flush, timeouts, daemons, info
# ---------------------------------------------------------------------------


def _traffic(netns, vip: str, port: int, n: int) -> None:
    """Open n TCP connections from inside the namespace to a virtual service
    (IPVS schedules locally made connections too)."""
    with netns.enter():
        for _ in range(n):
            s = socket.socket()
            s.settimeout(2)
            try:
                s.connect((vip, port))
            except OSError:
                pass  # scheduled (and counted) is all we need
            finally:
                s.close()


def test_zero_clears_counters(backend, netns):
    # The VIP is a local address and so is the real server: connections made
    # inside the namespace are scheduled by IPVS, complete, and are counted.
    netns.ip("addr add 10.9.9.9/32 dev lo")
    listeners = []
    with netns.enter():
        for port in (80, 81):
            srv = socket.socket()
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind(("10.9.9.9", port))
            srv.listen(16)
            listeners.append(srv)
    try:
        vip = K(AF_INET, IPPROTO_TCP, "10.9.9.9", 80)
        other = K(AF_INET, IPPROTO_TCP, "10.9.9.9", 81)
        for key in (vip, other):
            backend.apply(Request(OP_ADD_SERVICE, S(key, "rr")))
            backend.apply(Request(OP_ADD_DEST, key, D(AF_INET, "10.9.9.9", key.port, FWD_ROUTE)))
        _traffic(netns, "10.9.9.9", 80, 3)
        _traffic(netns, "10.9.9.9", 81, 2)
        # Before Linux 6.2 the counters reach user space through the rate
        # estimator, which runs every 2 seconds.
        def counted():
            st = {s.key: s.stats for s in backend.services()}
            return st if st[vip].conns == 3 and st[other].conns == 2 else None

        stats = wait_for(counted, timeout=10, what="IPVS counters")
        assert stats[vip].conns == 3 and stats[vip].inpkts > 0 and stats[other].conns == 2
        (d,) = backend.destinations(vip)
        assert d.stats.conns == 3 and d.stats.inpkts > 0 and d.inact_conns + d.active_conns == 3
        stat_line = [line for line in body(ipvsadm(netns, "-Ln", "--stats", "--exact")) if "10.9.9.9:80 " in line][0]
        assert stat_line.split()[2:4] == ["3", str(stats[vip].inpkts)]

        backend.apply(Request(OP_ZERO, vip))  # one service
        stats = {s.key: s.stats for s in backend.services()}
        assert stats[vip].conns == 0 and stats[vip].inpkts == 0 and stats[other].conns == 2
        backend.apply(Request(OP_ZERO))  # everything
        assert all(s.stats.conns == s.stats.inpkts == 0 for s in backend.services())
        assert backend.destinations(other)[0].stats.conns == 0
    finally:
        for srv in listeners:
            srv.close()


def test_flush(backend, netns):
    backend.apply_many(requests())
    backend.apply(Request(OP_FLUSH))
    assert backend.table() == [] and backend.services() == []
    assert body(ipvsadm(netns, "-Ln")) == []


def test_timeouts_set_and_get(backend, netns):
    assert backend.timeouts() == Timeouts(900, 120, 300)  # the kernel's defaults
    backend.apply(Request(OP_SET_TIMEOUTS, timeouts=Timeouts(100, 50, 30)))
    assert backend.timeouts() == Timeouts(100, 50, 30)
    assert ipvsadm(netns, "-L", "--timeout") == "Timeout (tcp tcpfin udp): 100 50 30\n"
    backend.apply(Request(OP_SET_TIMEOUTS, timeouts=Timeouts(0, 7, 0)))  # 0: leave as is
    assert backend.timeouts() == Timeouts(100, 7, 30)
    ipvsadm(netns, "--set", "1", "2", "3")
    assert backend.timeouts() == Timeouts(1, 2, 3)


def test_daemons_start_list_stop(backend, netns):
    # The sync daemon needs a multicast-capable interface: a veth pair.
    netns.ip(
        "link add ipvs0 type veth peer name ipvs1",
        "addr add 198.18.5.1/24 dev ipvs0",  # the master sends from an address of its interface
        "link set ipvs0 up",
        "link set ipvs1 up",
    )
    assert backend.daemons() == []
    master = Daemon(DAEMON_MASTER, "ipvs0", 5, 1400, "239.1.2.3", 8850, 3)
    backup = Daemon(DAEMON_BACKUP, "ipvs1", 6, 1400, "ff02::123", 9000, 1)
    backend.apply(Request(OP_START_DAEMON, daemon=master))
    e = kerr(backend, Request(OP_START_DAEMON, daemon=master))
    assert e.errno == errno.EEXIST  # "Daemon has already run"
    backend.apply(Request(OP_START_DAEMON, daemon=backup))
    assert sorted(backend.daemons(), key=lambda d: d.state) == [master, backup]
    assert ipvsadm(netns, "-L", "--daemon") == (
        "master sync daemon (mcast=ipvs0, syncid=5, maxlen=1400, group=239.1.2.3, port=8850, ttl=3)\n"
        "backup sync daemon (mcast=ipvs1, syncid=6, maxlen=1400, group=ff02::123, port=9000, ttl=1)\n"
    )
    backend.apply(Request(OP_STOP_DAEMON, daemon=Daemon(DAEMON_MASTER)))
    assert backend.daemons() == [backup]
    backend.apply(Request(OP_STOP_DAEMON, daemon=backup))
    assert backend.daemons() == []
    # Without the optional settings the kernel picks its defaults.
    backend.apply(Request(OP_START_DAEMON, daemon=Daemon(DAEMON_MASTER, "ipvs0", 1)))
    (d,) = backend.daemons()
    assert (d.mcast_group, d.mcast_port, d.mcast_ttl) == ("224.0.0.81", 8848, 1) and d.sync_maxlen > 0
    assert ipvsadm(netns, "-L", "--daemon").startswith("master sync daemon (mcast=ipvs0, syncid=1")
    backend.apply(Request(OP_STOP_DAEMON, daemon=Daemon(DAEMON_MASTER)))


def test_stopping_a_daemon_the_kernel_does_not_ack(backend, netns):
    # Stopping a sync daemon whose kernel thread has not run yet makes the
    # kernel skip its ACK (kthread_stop's -EINTR, which netlink_rcv_skb
    # swallows).  Start, list, stop at once reproduced it on Linux 6.1 (UML)
    # and hung a reader waiting for that ACK; the barrier ends the wait.
    netns.ip("link add ipvsd0 type dummy", "link set ipvsd0 up")
    for _ in range(3):
        backend.apply(Request(OP_START_DAEMON, daemon=Daemon(DAEMON_MASTER, "ipvsd0", 1)))
        assert [d.state for d in backend.daemons()] == [DAEMON_MASTER]
        backend.apply(Request(OP_STOP_DAEMON, daemon=Daemon(DAEMON_MASTER)))
        assert backend.daemons() == []
    # The same through a batch, the stop last in its window.
    start = Request(OP_START_DAEMON, daemon=Daemon(DAEMON_MASTER, "ipvsd0", 1))
    stop = Request(OP_STOP_DAEMON, daemon=Daemon(DAEMON_MASTER))
    assert backend.apply_many([start, stop, start, stop]) == {}
    assert backend.daemons() == []


def test_info(backend, netns):
    info = backend.info()
    assert info.version_text == "1.2.1"
    assert ipvsadm(netns, "-Ln").splitlines()[0] == f"IP Virtual Server version 1.2.1 (size={info.conn_tab_size})"


# ---------------------------------------------------------------------------
# Namespaces, consistent reads, real kernel bytes
# ---------------------------------------------------------------------------


def test_backend_works_in_the_namespace_it_was_opened_in(netns):
    with netns.enter():
        inside = NetlinkBackend()  # no netns argument: the thread's namespace
    with inside, NetlinkBackend(netns.name) as by_name:
        inside.apply(Request(OP_ADD_SERVICE, S(T4, "rr")))
        assert by_name.services() == [S(T4, "rr")]
    assert ipvsadm(netns, "-Sn") == "-A -t 10.0.0.1:80 -s rr\n"
    # The calling thread is back where it was.
    assert os.readlink("/proc/thread-self/ns/net") == os.readlink("/proc/1/ns/net")


def test_missing_namespace():
    with pytest.raises(NetnsNotFound) as e:
        NetlinkBackend("ipvsctl-there-is-no-such-netns")
    assert isinstance(e.value, FileNotFoundError) and "ipvsctl-there-is-no-such-netns" in str(e.value)


def test_a_service_deleted_during_the_read_is_left_out_and_the_rest_is_whole(backend, netns):
    # Between two services' real-server dumps another process deletes a
    # service not read yet (its dump then comes back empty, as for a service
    # without real servers) and adds a new one.  Neither existed throughout
    # the read, so neither must appear; every other service must, whole.
    backend.apply_many(requests())
    order = [s.key for s in backend.services()]
    with_dests = {k for _, k, _ in DEST_CASES}
    victim = next(k for k in reversed(order) if k in with_dests)
    newcomer = K(AF_INET, IPPROTO_TCP, "10.7.7.7", 7)
    with NetlinkBackend(netns.name) as other:
        real = backend._dests_once
        calls = []

        def meddling(key):
            calls.append(key)
            if len(calls) == 2:
                other.apply(Request(OP_DEL_SERVICE, victim))
                other.apply(Request(OP_ADD_SERVICE, S(newcomer, "rr")))
            return real(key)

        backend._dests_once = meddling
        table = backend.table()
    keys = [s.key for s, _ in table]
    assert victim in calls[2:]  # it was read after its deletion
    assert victim not in keys and newcomer not in keys
    with NetlinkBackend(netns.name) as fresh:
        now = as_dict(fresh.table())
    assert as_dict(table) == {k: v for k, v in now.items() if k != newcomer}


def test_kernel_bytes_decode_like_pyroute2_reads_them(backend):
    pyroute2 = pytest.importorskip("pyroute2.netlink.generic.ipvs")
    backend.apply_many(requests())
    dumps = backend._dumps
    checked = 0
    for _, svc in SERVICE_CASES:
        for p in dumps.dump(encode.encode_dump_dests(backend.family, svc.key)):
            raw = wire.NLMSGHDR.pack(16 + len(p), backend.family, 2, 1, 0) + bytes(p)
            m = pyroute2.ipvsmsg(raw)
            m.decode()
            a = dict(m.get_attr("IPVS_CMD_ATTR_DEST")["attrs"])
            ours = CODEC.dest(p)
            assert ours == decode.decode_dest(p)
            assert (a["IPVS_DEST_ATTR_ADDR"], a["IPVS_DEST_ATTR_PORT"]) == (ours.addr, ours.port)
            assert (a["IPVS_DEST_ATTR_FWD_METHOD"], a["IPVS_DEST_ATTR_WEIGHT"]) == (ours.fwd, ours.weight)
            assert (a["IPVS_DEST_ATTR_U_THRESH"], a["IPVS_DEST_ATTR_L_THRESH"]) == (ours.u_threshold, ours.l_threshold)
            assert (a["IPVS_DEST_ATTR_TUN_TYPE"], a["IPVS_DEST_ATTR_TUN_FLAGS"]) == (ours.tun_type, ours.tun_flags)
            # pyroute2 reads the kernel's big-endian tunnel port as host order.
            assert a["IPVS_DEST_ATTR_TUN_PORT"] == socket.ntohs(ours.tun_port)
            checked += 1
    assert checked == len(DEST_CASES)
