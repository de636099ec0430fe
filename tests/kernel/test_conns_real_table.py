"""`ipvsctl conns` against a real kernel's connection table, after real traffic.

Real connections: HTTP requests through a NAT service (TCP, TIME_WAIT
afterwards) and a burst of UDP datagrams from two client addresses, each
from its own source port (a UDP service keeps one entry per client
address and port), so the table holds tens of thousands of entries.
ipvsadm -Lnc, the oracle, lists the same table; every view of `conns`
(filters, --summary, --top, --json, the table) must agree with it, and
reading the big table must take memory bounded by the table's services and
real servers, not by its connections.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import os
import struct
import subprocess
import sys
import tempfile
from collections import Counter

from nsutil import NetNS, run_ipvsadm, wait_for

from ipvsctl.commands.group import run_app

UDP_PER_CLIENT = 12_000
CLIENTS = ("198.18.0.2", "198.18.0.3")


def _ipvsadm(ns: NetNS, *args: str) -> str:
    r = run_ipvsadm(ns, *args)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout


def conns(ns: NetNS, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with ns.enter(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = run_app(["conns", *args], "ipvsctl")
    return status, out.getvalue(), err.getvalue()


def ipvsadm_entries(ns: NetNS) -> list[tuple[str, ...]]:
    """(protocol, state, client, virtual, destination) of every line of -Lnc."""
    lines = _ipvsadm(ns, "-Lnc").splitlines()[2:]
    return [(f[0], f[2], f[3], f[4], f[5]) for f in (x.split() for x in lines)]


def udp_burst(ns: NetNS, sources, dst: str, dport: int, count: int) -> None:
    """``count`` datagrams from each source address, each from a port of its
    own (1024, 1025, ...), written as raw IPv4 packets: one socket and one
    sendto per connection instead of a socket per port."""
    dst_b = socket.inet_aton(dst)
    with ns.enter(), socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as s:
        for src in sources:
            src_b = socket.inet_aton(src)
            for sport in range(1024, 1024 + count):
                udp = struct.pack("!HHHH", sport, dport, 9, 0) + b"x"  # checksum 0: none (IPv4)
                # The kernel fills in the IP checksum, total length and id (raw(7)).
                ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 0, 0, 64, socket.IPPROTO_UDP, 0,
                                 src_b, dst_b)
                s.sendto(ip + udp, (dst, 0))


def _setup(topo, per_client: int = UDP_PER_CLIENT) -> int:
    d = topo.director
    vip = f"{topo.vip}:80"
    _ipvsadm(d, "-A", "-t", vip, "-s", "rr")
    _ipvsadm(d, "-A", "-u", f"{topo.vip}:53", "-s", "wrr")
    for i, a in enumerate(topo.backend_addrs):
        _ipvsadm(d, "-a", "-t", vip, "-r", f"{a}:80", "-m")
        _ipvsadm(d, "-a", "-u", f"{topo.vip}:53", "-r", f"{a}:53", "-m", "-w", str(i + 1))
    _ipvsadm(d, "-a", "-t", vip, "-r", f"{topo.backend_addrs[0]}:8080", "-m", "-w", "0")
    topo.client.ip(f"addr add {CLIENTS[1]}/24 dev eth0")
    assert topo.get(30) == {"backend1": 10, "backend2": 10, "backend3": 10}
    udp_burst(topo.client, CLIENTS, topo.vip, 53, per_client)
    expected = 30 + 2 * per_client
    wait_for(lambda: len(ipvsadm_entries(d)) == expected, timeout=30, interval=0.5,
             what=f"{expected} entries in the connection table")
    return expected


def _settled(d: NetNS, view):
    """(ipvsadm's entries, view()) at a moment when the table held still
    around our reading (TCP entries change state as connections close)."""
    def read():
        before = ipvsadm_entries(d)
        got = view()
        after = ipvsadm_entries(d)
        return (before, got) if Counter(before) == Counter(after) else None

    return wait_for(read, timeout=20, interval=0.5, what="a table that holds still")


def test_conns_views_agree_with_ipvsadm_on_a_big_real_table(traffic_topology):
    topo = traffic_topology
    d = topo.director
    total = _setup(topo)
    vip = topo.vip

    # --summary --json: counts by service, real server and state
    theirs, (status, out, err) = _settled(d, lambda: conns(d, "--summary", "--json"))
    assert (status, err) == (0, "")
    doc = json.loads(out)
    want = Counter((p.lower(), v, dst, st) for p, st, _, v, dst in theirs)
    ours = Counter()
    for svc in doc["services"]:
        virt = f"{svc['address']}:{svc['port']}"
        assert svc["connections"] == sum(r["connections"] for r in svc["real_servers"])
        for real in svc["real_servers"]:
            for state, n in real["states"].items():
                ours[(svc["protocol"], virt, f"{real['address']}:{real['port']}", state)] += n
    assert ours == want
    assert doc["connections"] == total == len(theirs)

    # filters, each against the same selection made from ipvsadm's lines
    cases = [
        (["--client", CLIENTS[1]], lambda e: e[2].startswith(CLIENTS[1] + ":")),
        (["--client", "198.18.0.0/24"], lambda e: True),
        (["--client", "198.19.0.0/16"], lambda e: False),
        (["-u", f"{vip}:53"], lambda e: e[0] == "UDP" and e[3] == f"{vip}:53"),
        (["-t", vip], lambda e: e[0] == "TCP" and e[3].startswith(vip + ":")),
        (["-r", f"{topo.backend_addrs[1]}:53"], lambda e: e[4] == f"{topo.backend_addrs[1]}:53"),
        (["-r", topo.backend_addrs[2]], lambda e: e[4].startswith(topo.backend_addrs[2] + ":")),
        (["--protocol", "tcp"], lambda e: e[0] == "TCP"),
        (["--state", "udp", "--client", CLIENTS[0]],
         lambda e: e[1] == "UDP" and e[2].startswith(CLIENTS[0] + ":")),
    ]
    for args, pick in cases:
        theirs, (status, out, err) = _settled(d, lambda: conns(d, *args, "--summary", "--json"))
        assert (status, err) == (0, ""), args
        assert json.loads(out)["connections"] == sum(1 for e in theirs if pick(e)), args

    # --top: the busiest real servers over all services
    theirs, (status, out, _) = _settled(d, lambda: conns(d, "--top", "2", "--json"))
    by_real = Counter(e[4] for e in theirs)
    ranked = sorted(by_real.items(), key=lambda kv: (-kv[1], socket.inet_aton(kv[0].split(":")[0])))
    top = json.loads(out)["real_servers"]
    assert [(f"{r['address']}:{r['port']}", r["connections"]) for r in top] == ranked[:2]
    assert ranked[0] == (f"{topo.backend_addrs[2]}:53", 12_000)  # weight 3 of 6 (wrr)

    # --json lists exactly ipvsadm's entries; the table view has a line per entry
    theirs, (status, out, _) = _settled(d, lambda: conns(d, "--json", "--protocol", "tcp"))
    listed = json.loads(out)["connections"]
    assert sorted((c["protocol"].upper(), c["state"], f"{c['client_address']}:{c['client_port']}",
                   f"{c['virtual_address']}:{c['virtual_port']}",
                   f"{c['destination_address']}:{c['destination_port']}") for c in listed) == \
        sorted(e for e in theirs if e[0] == "TCP")
    status, out, _ = conns(d, "--client", CLIENTS[1], "--no-color")
    lines = out.splitlines()
    assert lines[0].split() == ["Proto", "Client", "Virtual", "Real", "server", "State", "Expires"]
    assert len(lines) == 2 + UDP_PER_CLIENT
    assert all(x.startswith("UDP    198.18.0.3:") for x in lines[2:])


# Runs ipvsctl and reports its peak resident memory (VmHWM) on stderr at exit.
_MEASURED = """
import atexit, sys
def report():
    with open("/proc/self/status") as f:
        sys.stderr.write("".join(x for x in f if x.startswith("VmHWM")))
atexit.register(report)
sys.argv = ["ipvsctl", *sys.argv[1:]]
from ipvsctl.cli import main
main()
"""


def _peak_rss(ns: NetNS, *args: str) -> tuple[int, bytes]:
    """`ipvsctl conns ARGS` in ``ns``: (its peak RSS in KiB, its stdout).

    Measured by the process itself (VmHWM, which exec resets; wait4's
    ru_maxrss would count the test's own memory, inherited at the fork).
    tracemalloc would also do, but under User-Mode Linux it makes this
    command ~150x slower."""
    with tempfile.TemporaryFile() as out:
        with ns.enter():
            p = subprocess.run([sys.executable, "-c", _MEASURED, "conns", *args], stdout=out,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=300)
        assert p.returncode == 0, (args, p.stderr)
        out.seek(0)
        return int(p.stderr.split()[1]), out.read()


def test_conns_reads_a_big_table_in_bounded_memory(traffic_topology):
    """The summary of 60,000 real entries, and their JSON listing, in the
    memory of an empty table: never one object per connection."""
    topo = traffic_topology
    d = topo.director
    total = _setup(topo, per_client=30_000)
    with d.enter(), open("/proc/net/ip_vs_conn") as f:
        size = len(f.read())
    assert size > 3_500_000  # 60,000 lines of ~66 bytes
    # The same commands on an empty table (the client's namespace) are the baseline.
    for args in (["--summary", "--json"], ["--json"]):
        empty, _ = _peak_rss(topo.client, *args)
        full, out = _peak_rss(d, *args)
        if "--summary" in args:
            assert json.loads(out)["connections"] == total
        else:
            assert len(out) > size and out.count(b'"protocol"') == total
        # Holding the lines (as str in a list) would take ~7 MB more; one
        # 1 MiB read buffer and the counts is what streaming costs.
        assert full - empty < 3 * 1024, (args, f"peak RSS {empty} KiB empty, {full} KiB full")


def test_conns_errors(netns):
    status, out, err = conns(netns, "--client", "not-an-address")
    assert status == 2 and "not an address or network: 'not-an-address'" in err
    status, out, err = conns(netns, "-t", "192.0.2.1:99999")
    assert status == 2 and "bad port" in err
    status, out, err = conns(netns, "--summary", "--top", "3")
    assert status == 2 and "do not go together" in err
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = run_app(["conns", "--netns", "ipvsctl-no-such-ns"], "ipvsctl")
    assert status == 2 and "network namespace 'ipvsctl-no-such-ns' not found" in err.getvalue()
    # an empty table: the headers and nothing else; an empty summary
    status, out, _ = conns(netns, "--no-color")
    assert status == 0 and len(out.splitlines()) == 2
    status, out, _ = conns(netns, "--summary", "--json")
    assert json.loads(out) == {"connections": 0, "states": {}, "services": []}
