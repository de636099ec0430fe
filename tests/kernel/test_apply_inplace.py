"""Every field apply edits in place, proven in the real kernel with real traffic.

For each field: a TCP connection (UDP for one-packet scheduling) is opened
through the virtual service and kept open; the table is then changed by
apply in exactly that field.  The test demands, at once:

* on the wire (an nlmon tap, outside ipvsctl): exactly one IPVS_CMD_SET_SERVICE
  or IPVS_CMD_SET_DEST, nothing else: no delete, no add;
* the held connection still answers, through the same backend;
* the service's counters were kept: it still counts the held connection and
  all of its packets (a service deleted and added again starts from zero);
* the kernel now holds the new value (read back and compared with the file).

This is where the plan's claims about ip_vs_edit_service/ip_vs_edit_dest
(ipvsctl/desired/plan.py) are checked, on every kernel of the matrix.

What fails a delete-and-add implementation (tried: a plan rewritten that way
fails here): for a service, the counters (the service is a new object) and
the wire; for a real server, only the wire.  A real server deleted while a
connection uses it goes to the kernel's destination trash, and adding it
back within the trash's grace period returns the very same object, counters,
connection counts and all, so the held connection and every counter look
untouched unless a packet arrives in between.
"""

from __future__ import annotations

import pytest
from heldconn import PORT, EchoServers, HeldConnection
from nltap import NetlinkTap
from nsutil import wait_for
from topology import Topology

from ipvsctl import model as m
from ipvsctl.desired import apply as A
from ipvsctl.desired import plan as P
from ipvsctl.desired import source
from ipvsctl.netlink.backend import NetlinkBackend

VIP = Topology.vip
SERVER = "198.18.1.2"


def rules(proto: str, service: str, server: str, port: int) -> str:
    sw = "-t" if proto == "tcp" else "-u"
    return f"-A {sw} {VIP}:{port} {service}\n-a {sw} {VIP}:{port} -r {SERVER}:{port} {server}\n"


def apply(ns, text: str) -> A.Report:
    with ns.enter():
        backend = NetlinkBackend()
        try:
            return A.run(backend, source.load(text))
        finally:
            backend.close()


def service_stats(ns, key) -> m.Stats:
    with ns.enter():
        backend = NetlinkBackend()
        try:
            return backend.service(key).stats
        finally:
            backend.close()


def live_table(ns):
    with ns.enter():
        backend = NetlinkBackend()
        try:
            return P.table_of(backend.table(counters=False))
        finally:
            backend.close()


MASQ = "-m -w 1"
# (id, protocol, (service, server) before, (service, server) after, the one request on the wire)
CASES = [
    ("scheduler", "tcp", ("-s rr", MASQ), ("-s wrr", MASQ), "set_service"),
    ("scheduler flags", "tcp", ("-s sh", MASQ), ("-s sh -b sh-port,sh-fallback", MASQ), "set_service"),
    ("persistence on", "tcp", ("-s rr", MASQ), ("-s rr -p 60", MASQ), "set_service"),
    ("persistence off", "tcp", ("-s rr -p 60", MASQ), ("-s rr", MASQ), "set_service"),
    ("persistence timeout", "tcp", ("-s rr -p 60", MASQ), ("-s rr -p 120", MASQ), "set_service"),
    ("netmask", "tcp", ("-s rr -p 60", MASQ), ("-s rr -p 60 -M 255.255.255.0", MASQ), "set_service"),
    ("persistence engine set", "udp", ("-s rr -p 60", MASQ), ("-s rr -p 60 --pe sip", MASQ), "set_service"),
    ("persistence engine removed", "udp", ("-s rr -p 60 --pe sip", MASQ), ("-s rr -p 60", MASQ),
     "set_service"),
    ("one-packet scheduling", "udp", ("-s rr", MASQ), ("-s rr -o", MASQ), "set_service"),
    ("weight", "tcp", ("-s rr", MASQ), ("-s rr", "-m -w 7"), "set_dest"),
    ("weight 0", "tcp", ("-s rr", MASQ), ("-s rr", "-m -w 0"), "set_dest"),
    ("forwarding method", "tcp", ("-s rr", MASQ), ("-s rr", "-g -w 1"), "set_dest"),
    ("thresholds", "tcp", ("-s rr", MASQ), ("-s rr", "-m -w 1 -x 100 -y 10"), "set_dest"),
    ("tunnel type", "tcp", ("-s rr", "-i -w 1"), ("-s rr", "-i -w 1 --tun-type gre --tun-csum"), "set_dest"),
    ("tunnel port", "tcp", ("-s rr", "-i -w 1 --tun-type gue --tun-port 6080"),
     ("-s rr", "-i -w 1 --tun-type gue --tun-port 6081"), "set_dest"),
    ("tunnel checksum", "tcp", ("-s rr", "-i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum"),
     ("-s rr", "-i -w 1 --tun-type gue --tun-port 6080 --tun-remcsum"), "set_dest"),
]


PORTS = {case[0]: PORT + i for i, case in enumerate(CASES)}


@pytest.fixture(scope="module")
def network():
    """One topology for all cases: each case has a service and a backend port
    of its own (VIP:port -> backend1:port, so direct routing and tunnels keep
    the server's identity), hence its own table entries and connection."""
    with Topology(backends=1) as topo, EchoServers(topo, PORTS.values()):
        yield topo


@pytest.mark.parametrize("name,proto,before,after,wire", CASES, ids=[c[0] for c in CASES])
def test_edit_in_place_keeps_the_connection_and_the_counters(network, name, proto, before, after, wire):
    topo, director, port = network, network.director, PORTS[name]
    # The connection is opened through a plain NAT service (new connections
    # could not reach the backend over a tunnel or direct routing here)...
    start = apply(director, rules(proto, "-s rr", MASQ, port))
    assert start.status == 0, start.failed
    conn = HeldConnection(topo, VIP, port, udp=proto == "udp")
    try:
        assert conn.talk() == "backend1 line-1"
        # ...then the table is brought to the state before the change (in
        # place too), and the connection must survive that as well.
        first = apply(director, rules(proto, *before, port))
        assert first.status == 0, first.failed
        assert conn.talk() == "backend1 line-2"
        key = source.load(rules(proto, *before, port)).entries[0][0].key

        with NetlinkTap(director) as tap:
            report = apply(director, rules(proto, *after, port))
            sent = tap.take()
        assert report.status == 0 and report.verified, (report.failed, report.verify_plan)
        assert dict(sent) == {wire: 1}, f"{name}: expected one {wire}, the wire saw {dict(sent)}"
        assert [s.op for s in report.applied] == [P.EDIT_SERVICE if wire == "set_service" else P.EDIT_DEST]

        assert conn.talk() == "backend1 line-3"

        # Counters: the service still counts the connection it had before
        # the edit, and every packet of it (TCP: handshake, then a line and
        # an ack per talk; UDP: one datagram per talk).  A service deleted
        # and added again would have counted neither.  Polled: the kernel
        # folds its per-CPU counters into what it reports every 2 s.
        least = 3 if proto == "udp" else 5

        def counted():
            s = service_stats(director, key)
            return s if s.conns >= 1 and s.inpkts >= least else None

        wait_for(counted, timeout=10, interval=0.3,
                 what=f"the edited service to count its connection and {least} packets")
        assert P.plan(source.load(rules(proto, *after, port)), live_table(director)).in_sync
    finally:
        conn.close()
