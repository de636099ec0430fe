"""End to end: real HTTP traffic through a round-robin NAT virtual service.

The service is configured by the project's CLI; the same test with the real
ipvsadm is the control: it shows the topology itself works, so a failure of
the first and not the second is ipvsctl's.
"""

import pytest

from nsutil import run_ipvsadm, run_ipvsctl, wait_for


def _conns(stats_output: str) -> dict[str, int]:
    """Address -> Conns, from `-Ln --stats` (service and real-server lines)."""
    conns = {}
    for line in stats_output.splitlines()[3:]:
        f = line.split()
        if len(f) >= 3 and f[0] in ("TCP", "UDP", "SCTP"):
            conns[f[1]] = int(f[2])
        elif len(f) >= 3 and f[0] == "->":
            conns[f[1]] = int(f[2])
    return conns


@pytest.mark.parametrize("tool", [run_ipvsctl, run_ipvsadm], ids=["ipvsctl", "ipvsadm-control"])
def test_round_robin_nat_spreads_30_requests_10_10_10(traffic_topology, tool):
    topo = traffic_topology
    service = f"{topo.vip}:80"
    r = tool(topo.director, "-A", "-t", service, "-s", "rr")
    assert r.returncode == 0, r.stderr
    for addr in topo.backend_addrs:
        r = tool(topo.director, "-a", "-t", service, "-r", f"{addr}:80", "-m")
        assert r.returncode == 0, r.stderr

    assert topo.get(30) == {"backend1": 10, "backend2": 10, "backend3": 10}

    # Linux 6.1 folds per-CPU counters into the reported stats on the rate
    # estimator's 2 s tick: poll instead of reading once.
    def all_counted():
        r = tool(topo.director, "-Ln", "--stats")
        assert r.returncode == 0, r.stderr
        conns = _conns(r.stdout)
        return conns if conns.get(service) == 30 else None

    conns = wait_for(all_counted, timeout=10, interval=0.5, what="-Ln --stats to count 30 connections")
    assert conns == {service: 30, **{f"{a}:80": 10 for a in topo.backend_addrs}}


@pytest.mark.parametrize("tool", [run_ipvsctl, run_ipvsadm], ids=["ipvsctl", "ipvsadm-control"])
def test_round_robin_nat_over_ipv6(traffic_topology, tool):
    topo = traffic_topology
    service = f"[{topo.vip6}]:80"
    r = tool(topo.director, "-A", "-t", service, "-s", "rr")
    assert r.returncode == 0, r.stderr
    for addr in topo.backend_addrs6:
        r = tool(topo.director, "-a", "-t", service, "-r", f"[{addr}]:80", "-m")
        assert r.returncode == 0, r.stderr
    assert topo.get(30, family=6) == {"backend1": 10, "backend2": 10, "backend3": 10}
