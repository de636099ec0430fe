"""Counters, rates and connections after real traffic, and the sync daemon:
ipvsctl's listings against ipvsadm's listings of the same table."""

from __future__ import annotations

import io
import re
import time

from differential import (
    Result,
    compare_lines,
    compare_state,
    compare_views,
    ipvsadm,
    ipvsctl,
)
from nsutil import wait_for

from ipvsctl.cli import run_compat

# The rate estimator ticks every 2 s and connection timers count down every
# second, so two listings taken a moment apart can differ honestly: compare
# a few times and accept the first moment both tools agree.
ATTEMPTS = 5


def _agree(ns, view: str) -> list[str]:
    problems: list[str] = []
    for _ in range(ATTEMPTS):
        problems = compare_views(ns, [view])
        if not problems:
            return []
        time.sleep(0.3)
    return problems


_EXPIRE = re.compile(r"^(\S+ )(\d\d):(\d\d)( .*)$")


def _from_outside(ns, args):
    """ipvsctl run from this (root) namespace, reaching ``ns`` by --netns."""
    out, err = io.StringIO(), io.StringIO()
    status = run_compat(["--netns", ns.name, *args], io.StringIO(), out, err, prog="ipvsadm")
    return Result(status, out.getvalue(), err.getvalue())


def _connections_agree(ns, view: str, through_netns: bool = False) -> list[str]:
    """-c listings, allowing each entry's timer to have ticked by one second
    between the two reads (the rest of every line must be identical)."""
    want = ipvsadm(ns, view.split())
    got = _from_outside(ns, view.split()) if through_netns else ipvsctl(ns, view.split())
    a, b = want.out.splitlines(), got.out.splitlines()
    ok = (want.status, want.err) == (got.status, got.err) and len(a) == len(b)
    for x, y in zip(a, b) if ok else ():
        mx, my = _EXPIRE.match(x), _EXPIRE.match(y)
        if mx and my:
            tx = int(mx[2]) * 60 + int(mx[3])
            ty = int(my[2]) * 60 + int(my[3])
            ok = ok and (mx[1], mx[4]) == (my[1], my[4]) and 0 <= tx - ty <= 1
        else:
            ok = ok and x == y
    return [] if ok else [f"listing {view} differs:\n--- ipvsadm\n{want}\n--- ipvsctl\n{got}"]


def test_counters_rates_and_connections_after_traffic(traffic_topology):
    topo = traffic_topology
    d = topo.director
    vip = f"{topo.vip}:80"
    for line in [f"-A -t {vip} -s rr -p 30", *(f"-a -t {vip} -r {a}:80 -m" for a in topo.backend_addrs),
                 f"-A -t [{topo.vip6}]:80 -s wrr",
                 *(f"-a -t [{topo.vip6}]:80 -r [{a}]:80 -m -w {i + 1}" for i, a in enumerate(topo.backend_addrs6))]:
        r = ipvsctl(d, line.split())
        assert r.status == 0, (line, r)
    assert sum(topo.get(30).values()) == 30
    assert sum(topo.get(12, family=6).values()) == 12

    # The kernel folds per-CPU counters in on the estimator's tick: poll.
    def service_counters():
        out = ipvsctl(d, ["-Ln", "--stats", "--exact"]).out
        line = next(x for x in out.splitlines() if x.startswith(f"TCP  {vip} "))
        values = list(map(int, line.split()[2:7]))
        return values if values[0] == 30 else None

    conns, inpkts, outpkts, inbytes, outbytes = wait_for(
        service_counters, timeout=8, interval=0.5, what="the 30 connections to be counted")
    assert inpkts > 0 and outpkts > 0 and inbytes > 0 and outbytes > 0

    problems = []
    for view in ["-Ln --stats", "-Ln --stats --exact", "-L --stats", "-Ln --rate", "-Ln --rate --exact",
                 "-Ln --persistent-conn", "-Ln", "-Ln --thresholds", f"-Ln -t {vip} --stats",
                 "-L -n --sort --stats"]:
        problems += _agree(d, view)
    for view in ["-Lnc", "-Lc", "-Lnc --persistent-conn", "-L -c -n --exact"]:
        problems += _connections_agree(d, view)
    # --netns reads the connections of the named namespace, not its own.
    problems += _connections_agree(d, "-Lnc", through_netns=True)
    assert len(_from_outside(d, ["-Lnc"]).out.splitlines()) > 30
    assert not problems, "\n\n".join(problems)

    # Zeroing: both tools read back the same zeroed counters.
    assert ipvsctl(d, ["-Z", "-t", vip]).status == 0
    assert not _agree(d, "-Ln --stats --exact")
    assert ipvsctl(d, ["-Z"]).status == 0
    assert not _agree(d, "-Ln --stats")


def test_sync_daemon(netns_pair):
    ref, ours = netns_pair
    for ns in (ref, ours):
        # The sync daemon needs a multicast-capable interface.
        ns.ip("link add sync0 type veth peer name sync1", "link set sync0 up", "link set sync1 up")
    lines = [
        "-L --daemon",
        "--start-daemon master --mcast-interface sync0",
        "--start-daemon master --mcast-interface sync0",
        "-L --daemon",
        "--start-daemon backup --mcast-interface sync1 --syncid 7 --sync-maxlen 1200 "
        "--mcast-group 239.1.2.3 --mcast-port 9000 --mcast-ttl 3",
        "-L --daemon",
        "-Ln --daemon",
        "--stop-daemon master",
        "--stop-daemon master",
        "-L --daemon",
        "--stop-daemon backup",
        "--start-daemon backup --mcast-interface sync1 --mcast-group ff02::1:3",
        "-L --daemon",
        "--stop-daemon backup",
        "--start-daemon master --mcast-interface nosuchif",
        "-L --daemon",
    ]
    problems = compare_lines(ref, ours, lines)
    problems += compare_state(ref, ours)
    assert not problems, "\n\n".join(problems)
    for ns in (ref, ours):
        ipvsadm(ns, ["--stop-daemon", "master"])
        ipvsadm(ns, ["--stop-daemon", "backup"])
