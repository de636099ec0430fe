"""The plain listings of a table of many small services, against ipvsadm.

`-Ln` and `-Sn` read a table without counters: each small service's real
servers come as one lean dump (DumpReader.dump_small), each service is named
in its real-server request by the identity bytes the kernel wrote for it
(encode.entry_identity), and each service's order is found for a group of
256 services at once (runs.decode_dest_runs), the kernel's order kept for
--nosort.  Here the real ipvsadm builds a table of 600 services whose real
servers the kernel lists descending (added in order, as a restore of a
sorted save does), ascending, mixed, one or none, with addresses 2^31 or
more apart, some services too big for one lean dump; once with IPv4 real
servers only (the groups are decoded at once), once with IPv6 and fwmark
services and IPv6 servers behind IPv4 ones too, IPv4 and IPv6 services
interleaved in the kernel's order (their entries are as long as IPv4 ones:
the IPv4 services' runs are still decoded as one group, the IPv6 ones
service by service).  Both tools list it, every view byte for byte the same; and once
more with the socket-option snapshots unavailable (as where the kernel or
Python offers none: every check by netlink dumps, services compared by
their identity bytes)."""

from __future__ import annotations

import random
import socket

import pytest
from differential import ipvsadm, ipvsctl

SERVICES = 600
VIEWS = [["-Ln"], ["-Sn"], ["-Ln", "--nosort"]]  # ipvsadm refuses -S with --nosort


def _numeric(server: tuple[str, int]) -> tuple:
    """ipvsadm's order of real servers (address, then port), where no
    address is 2^31 or more from another."""
    addr, port = server
    return (":" in addr, socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET, addr), port)


def _servers(kind: int, i: int, rnd: random.Random) -> list[tuple[str, int]]:
    """(address, port) of a service's real servers, in the order they are added."""
    if kind == 5:
        n = rnd.choice((0, 1, 9, 12, 30))  # 9 and more: not one lean dump
    else:
        n = rnd.choice((0, 1, 2, 3, 5, 7))
    if kind == 3:
        servers = [(f"fd00:41:{i:x}::{rnd.randrange(1, 1 << 16):x}", rnd.choice((80, 8080))) for _ in range(n)]
    else:
        servers = [(f"10.{41 + i % 50}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}", rnd.choice((80, 81, 8080)))
                   for _ in range(n)]
        if kind == 2 and n > 2:
            servers[0] = (f"192.168.{i % 256}.{rnd.randrange(1, 255)}", 80)  # 2^31 or more from 10/8
    servers = sorted(set(servers), key=_numeric)
    if kind == 0 or kind == 4:
        return servers  # added in order: the kernel lists them descending
    if kind == 1:
        return servers[::-1]  # the kernel lists them ascending
    rnd.shuffle(servers)
    return servers


def _rules(ipv6: bool) -> str:
    """The table, as ipvsadm -R lines; ``ipv6``: with IPv6 and fwmark IPv6
    services and IPv6 servers behind IPv4 ones."""
    rnd = random.Random(16)
    lines = []
    for i in range(SERVICES):
        kind = i % 6
        if kind == 3 and not ipv6:
            kind = 0
        if kind == 3:
            svc = f"-t [fd00:40::{i + 1:x}]:80"
        elif kind == 4:
            svc = f"-f {i + 1}" + (" -6" if ipv6 and i % 4 == 0 else "")
        else:
            svc = f"{'-u' if kind == 2 else '-t'} 10.40.{i >> 8}.{i & 255}:{80 + i % 3}"
        lines.append(f"-A {svc} -s rr")
        servers = _servers(kind, i, rnd)
        if kind == 4 and ipv6 and i % 4 == 0:
            servers = [(f"fd00:42:{i:x}::{k + 1:x}", 0) for k in range(len(servers))]
        for k, (addr, port) in enumerate(servers):
            shown = f"[{addr}]" if ":" in addr else addr
            lines.append(f"-a {svc} -r {shown}:{port} -m -w {k % 4}")
        if kind == 5 and ipv6 and i % 12 == 5:  # IPv6 behind IPv4: tunnelled only
            lines.append(f"-a {svc} -r [fd00:43::{i:x}]:{80 + i % 3} -i -w 2")
    return "\n".join(lines) + "\n"


def _same_views(ns):
    for view in VIEWS:
        want, got = ipvsadm(ns, view), ipvsctl(ns, view)
        assert want.status == 0 and want.err == "", (view, want.err)
        assert got == want, view


def _spy(monkeypatch):
    """What the listing did: how many real-server dumps came as one lean
    run, how many services were found descending for their group, how
    often the service list was checked by identity."""
    from ipvsctl.netlink import consistency, runs
    from ipvsctl.netlink.dumps import DumpReader

    seen = {"lean": 0, "by identity": 0, "descending": 0}
    dump_small, covers, decode_dest_runs = DumpReader.dump_small, consistency.covers_services, runs.decode_dest_runs

    def counting_dump_small(self, msg, op=""):
        got = dump_small(self, msg, op)
        seen["lean"] += isinstance(got, bytes) and bool(got)
        return got

    def watching_covers(services, before, after, idents=None):
        seen["by identity"] += after.by_identity and idents is not None
        return covers(services, before, after, idents)

    def counting_decode_dest_runs(*args):
        got = decode_dest_runs(*args)
        seen["descending"] += sum(rows is not None and rows._reversed is not None for rows in got)
        return got

    monkeypatch.setattr(runs, "decode_dest_runs", counting_decode_dest_runs)
    monkeypatch.setattr(DumpReader, "dump_small", counting_dump_small)
    monkeypatch.setattr(consistency, "covers_services", watching_covers)
    return seen


@pytest.mark.parametrize("snapshots", [True, False], ids=["snapshots", "no snapshots"])
@pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4 servers", "every family"])
def test_small_services_list_as_ipvsadm_lists_them(netns, monkeypatch, ipv6, snapshots):
    from ipvsctl.netlink import legacy

    def unavailable(self):
        raise legacy.Unavailable("the test says so")

    r = ipvsadm(netns, ["-R"], input=_rules(ipv6))
    assert r.status == 0 and r.err == "", r.err
    if not snapshots:
        monkeypatch.setattr(legacy.LegacySnapshots, "_open", unavailable)
    if ipv6:  # the kernel lists IPv4 and IPv6 services interleaved: groups hold both
        families = [line.startswith(("TCP  [", "UDP  [")) for line in ipvsadm(netns, ["-Ln", "--nosort"]).out.splitlines()
                    if line.startswith(("TCP ", "UDP "))]
        assert sum(map(bool.__ne__, families, families[1:])) >= 20, families
    seen = _spy(monkeypatch)
    _same_views(netns)
    assert seen["lean"] >= len(VIEWS) * SERVICES // 2
    # Found so for their group, IPv6 services among them or not.
    assert seen["descending"] >= len(VIEWS) * SERVICES // 10
    if not snapshots:
        assert seen["by identity"] >= len(VIEWS)  # 600 services come in parts: checked, by identity
