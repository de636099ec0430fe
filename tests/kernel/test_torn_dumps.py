"""Listings never silently torn by concurrent changes (issue 13, item 1).

IPVS dumps are positional and the kernel adds real servers at the head of a
service's list, so a dump that crosses a change can skip an entry that never
changed.  Here real writers change the table while it is read, on every path
that reads it: one process adds and deletes one real server in the very
service whose 3,000 other real servers never change, another adds and
deletes services among 400 that never change.  Every listing must hold each
stable entry exactly once, or fail cleanly (non-zero exit, the message, no
table); and some of each kind must succeed (a check that always failed would
prove nothing).

Before the fix, ipvsctl -Sn printed tables missing a stable real server in
about one dump in five under the same churn, with exit status 0.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from ipvsctl.backend import OP_ADD_DEST, OP_ADD_SERVICE, KernelError, Request
from ipvsctl.model import AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, Destination, Service, ServiceKey
from ipvsctl.netlink import consistency
from ipvsctl.netlink.backend import NetlinkBackend
from ipvsctl.netlink.legacy import LegacySnapshots, ServiceGone

CHURN = str(Path(__file__).with_name("churn.py"))
BIG = ServiceKey(AF_INET, IPPROTO_TCP, "10.0.0.1", 80)
BIG_REALS = [f"10.1.{i // 250}.{i % 250 + 1}" for i in range(3000)]
CHURNED_REAL = "10.2.0.1"
SMALL = [ServiceKey(AF_INET, IPPROTO_UDP, f"10.3.{i // 250}.{i % 250 + 1}", 53) for i in range(400)]
# IPv6 services have no atomic snapshot: their lists take the second-dump path.
SIX = [ServiceKey(AF_INET6, IPPROTO_TCP, f"fd00:13::{i + 1:x}", 443) for i in range(20)]
SIX_BIG = ServiceKey(AF_INET6, IPPROTO_TCP, "fd00:13::100", 80)
SIX_BIG_REALS = [f"fd00:14::{i + 1:x}" for i in range(200)]
CHURNED_SERVICES = ("10.9.0.1", 50)  # the service writer's range (never stable)
MESSAGE = "kept changing while it was read"


def stable_table() -> dict[ServiceKey, set[tuple[str, int]]]:
    table = {BIG: {(a, 80) for a in BIG_REALS}, SIX_BIG: {(a, 80) for a in SIX_BIG_REALS}}
    table.update({k: {("10.4.0.1", 53)} for k in SMALL})
    table.update({k: {("fd00:15::1", 443), ("fd00:15::2", 443)} for k in SIX})
    return table


def load(backend: NetlinkBackend) -> None:
    reqs = []
    for key, reals in stable_table().items():
        reqs.append(Request(OP_ADD_SERVICE, Service(key, "rr")))
        reqs += [Request(OP_ADD_DEST, key, Destination(key.af, a, p, fwd=3)) for a, p in sorted(reals)]
    assert backend.apply_many(reqs) == {}


class Verdicts:
    """Per reading path: how many listings were whole, torn, or refused."""

    def __init__(self):
        self.counts: dict[str, dict[str, int]] = {}
        self.torn: list[str] = []

    def add(self, path: str, verdict: str, detail: str = "") -> None:
        self.counts.setdefault(path, {"whole": 0, "torn": 0, "refused": 0})[verdict] += 1
        if verdict == "torn":
            self.torn.append(f"{path}: {detail}")

    def whole(self, path: str) -> int:
        return self.counts.get(path, {}).get("whole", 0)


def check_table(got: dict[ServiceKey, list[tuple[str, int]]]) -> str:
    """'' when every stable entry is there exactly once, else what is wrong."""
    for key, reals in stable_table().items():
        if key not in got:
            return f"service {key.addr}:{key.port} missing"
        listed = got[key]
        missing = reals - set(listed)
        if missing:
            return f"{len(missing)} stable real servers of {key.addr}:{key.port} missing, e.g. {min(missing)}"
        if len(listed) != len(set(listed)):
            return f"a real server of {key.addr}:{key.port} listed twice"
    return ""


def canonical(addr: str) -> str:
    return str(ipaddress.ip_address(addr.strip("[]")))


def parse_save(text: str) -> dict:
    got: dict = {}
    for line in text.splitlines():
        w = line.split()
        if w[0] == "-A":
            got.setdefault(_svc(w[1], w[2]), [])
        elif w[0] == "-a":
            got.setdefault(_svc(w[1], w[2]), []).append(_addr_port(w[4]))
    return got


def parse_list(text: str) -> dict:
    got: dict = {}
    current = None
    for line in text.splitlines():
        w = line.split()
        if w and w[0] in ("TCP", "UDP"):
            current = _svc("-t" if w[0] == "TCP" else "-u", w[1])
            got.setdefault(current, [])
        elif w and w[0] == "->" and current is not None and w[1] != "RemoteAddress:Port":
            got[current].append(_addr_port(w[1]))
    return got


def parse_json(text: str) -> dict:
    got: dict = {}
    for s in json.loads(text)["services"]:
        key = _key(s["family"], s["protocol"], s["address"], s["port"])
        got[key] = [(canonical(d["address"]), d["port"]) for d in s["destinations"]]
    return got


def parse_watch(text: str) -> dict:
    got: dict = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"^(TCP|UDP) (\S+)", line.strip())
        if m and not line.startswith("  "):
            current = _svc("-t" if m.group(1) == "TCP" else "-u", m.group(2))
            got.setdefault(current, [])
        elif current is not None and (m2 := re.match(r"^  (\[[0-9a-f:]+\]|[0-9.]+):(\d+)\s", line)):
            got[current].append((canonical(m2.group(1)), int(m2.group(2))))
    return got


def _addr_port(text: str) -> tuple[str, int]:
    addr, port = text.rsplit(":", 1)
    return canonical(addr), int(port)


def _svc(flag: str, text: str) -> ServiceKey:
    addr, port = _addr_port(text)
    af = AF_INET6 if ":" in addr else AF_INET
    return ServiceKey(af, IPPROTO_TCP if flag == "-t" else IPPROTO_UDP, addr, port)


def _key(family: str, protocol: str, address: str, port: int) -> ServiceKey:
    return ServiceKey(AF_INET6 if family == "inet6" else AF_INET,
                      IPPROTO_TCP if protocol == "tcp" else IPPROTO_UDP, canonical(address), port)


def library_table(backend, counters):
    return {s.key: [(canonical(d.addr), d.port) for d in ds] for s, ds in backend.table(counters=counters)}


CLI_PATHS = {
    "-Sn": (["-Sn"], parse_save),
    "-Ln": (["-Ln"], parse_list),
    "-Ln --json": (["-Ln", "--json"], parse_json),
    "list --json": (["list", "--json"], parse_json),
    "watch --once": (["watch", "--once", "--no-color", "--width", "200"], parse_watch),
}


@pytest.fixture
def churned(netns):
    """The stable table, and the two writers running in its namespace."""
    with netns.enter(), NetlinkBackend() as backend:
        load(backend)
    writers = [netns.popen([sys.executable, CHURN, "dest", f"{BIG.addr}:{BIG.port}", CHURNED_REAL],
                           stdout=-1, text=True),
               netns.popen([sys.executable, CHURN, "service", *map(str, CHURNED_SERVICES)],
                           stdout=-1, text=True)]
    try:
        time.sleep(1.0)  # both running (Python starts slowly under UML)
        assert all(w.poll() is None for w in writers), "a churn writer died at start"
        yield netns, writers
    finally:
        changes = []
        for w in writers:
            w.send_signal(signal.SIGTERM)
            out, _ = w.communicate(timeout=30)
            changes.append(out.strip())
        print(f"churn writers made {changes} changes")


def test_library_reads_are_whole_or_refused(churned):
    netns, writers = churned
    verdicts = Verdicts()
    with netns.enter(), NetlinkBackend() as backend:
        deadline = time.monotonic() + 10
        reads = 0
        while reads < 10 or (time.monotonic() < deadline and reads < 30):
            reads += 1
            for path, read in (("table()", lambda: library_table(backend, False)),
                               ("table(counters)", lambda: library_table(backend, True)),
                               ("destinations()", lambda: {BIG: [(d.addr, d.port) for d in
                                                                 backend.destinations(BIG)]})):
                try:
                    got = read()
                except KernelError as e:  # InconsistentRead: a refusal, with errno EAGAIN
                    assert e.errno == errno.EAGAIN, e
                    verdicts.add(path, "refused")
                    continue
                if path == "destinations()":
                    reals = {(a, 80) for a in BIG_REALS}
                    listed = got[BIG]
                    wrong = "" if reals <= set(listed) and len(listed) == len(set(listed)) else "torn"
                else:
                    wrong = check_table(got)
                verdicts.add(path, "torn" if wrong else "whole", wrong)
    assert all(w.poll() is None for w in writers), "a churn writer stopped during the reads"
    print(verdicts.counts)
    assert verdicts.torn == [], verdicts.torn
    for path in ("table()", "table(counters)", "destinations()"):
        assert verdicts.whole(path) >= 1, (path, verdicts.counts)


@pytest.mark.parametrize("path", list(CLI_PATHS))
def test_command_line_listings_are_whole_or_refused(churned, path):
    netns, writers = churned
    argv, parse = CLI_PATHS[path]
    verdicts = Verdicts()
    runs = 0
    env = dict(os.environ, COLUMNS="200")
    while runs < 2 or (verdicts.whole(path) < 2 and runs < 6):
        runs += 1
        r = netns.run([sys.executable, "-m", "ipvsctl", *argv], env=env, timeout=300)
        if r.returncode == 0:
            wrong = check_table(parse(r.stdout))
            verdicts.add(path, "torn" if wrong else "whole", wrong)
        else:
            # A refusal says why and prints no table that never existed.
            assert MESSAGE in r.stderr, (r.returncode, r.stderr[-2000:])
            assert not r.stdout.strip() or not parse(r.stdout), r.stdout[:500]
            verdicts.add(path, "refused")
    assert all(w.poll() is None for w in writers), "a churn writer stopped during the reads"
    print(path, verdicts.counts)
    assert verdicts.torn == [], verdicts.torn
    assert verdicts.whole(path) >= 1, verdicts.counts


def test_socket_option_snapshots_read_what_the_dumps_read(netns):
    """The atomic snapshots (IPv4 only) name exactly the services and real
    servers netlink lists, in every kind of service, from inside the
    namespace and from outside it by name."""
    from ipvsctl.model import FWD_MASQ, FWD_TUNNEL, IPPROTO_SCTP, TUN_GUE

    fw = ServiceKey(AF_INET, fwmark=7)
    sctp = ServiceKey(AF_INET, IPPROTO_SCTP, "10.0.0.3", 3868)
    six = ServiceKey(AF_INET6, IPPROTO_UDP, "fd00::1", 53)
    reqs = [Request(OP_ADD_SERVICE, Service(k, "rr")) for k in (BIG, fw, sctp, six)]
    # 900 real servers: a snapshot too big for the small reused buffer (read back from a memfd)
    reqs += [Request(OP_ADD_DEST, BIG, Destination(AF_INET, a, 80)) for a in BIG_REALS[:900]]
    reqs += [Request(OP_ADD_DEST, sctp, Destination(AF_INET, a, 3868)) for a in BIG_REALS[:3]]
    reqs += [Request(OP_ADD_DEST, BIG, Destination(AF_INET, "0.1.2.3", 8080)),  # a valid address
             Request(OP_ADD_DEST, BIG, Destination(AF_INET, "10.6.0.3", 80, FWD_MASQ, weight=0)),
             Request(OP_ADD_DEST, BIG, Destination(AF_INET, "10.6.0.1", 80, FWD_TUNNEL, tun_type=TUN_GUE,
                                                   tun_port=6080)),
             # IPv6 behind an IPv4 service (tunnel only): not in the IPv4 snapshot
             Request(OP_ADD_DEST, BIG, Destination(AF_INET6, "fd00:9::1", 80, FWD_TUNNEL)),
             Request(OP_ADD_DEST, fw, Destination(AF_INET, "10.6.0.2", 0)),
             Request(OP_ADD_DEST, six, Destination(AF_INET6, "fd00:9::2", 53))]
    with netns.enter(), NetlinkBackend() as backend:
        assert backend.apply_many(reqs) == {}
        listed = backend.table()
    for snapshots in (LegacySnapshots(netns.name),):  # opened from outside, by name
        try:
            assert snapshots.service_count() == 3  # the kernel counts IPv4 services only, here
            assert sorted(snapshots.service_keys()) == sorted(
                consistency.legacy_service_key(s.key) for s, _ in listed if s.key.af == AF_INET)
            for svc, dests in listed:
                if svc.key.af != AF_INET:
                    continue
                planes = snapshots.dest_planes(*consistency.legacy_service_key(svc.key), expect=3)
                got = sorted(map(bytes, zip(*planes)))
                want = sorted(consistency.ipv4_dest_key(d) for d in dests if d.af == AF_INET)
                assert got == want and len(got) == {BIG: 903, fw: 1, sctp: 3}[svc.key]
            with pytest.raises(ServiceGone):
                snapshots.dest_planes(IPPROTO_TCP, bytes([10, 0, 0, 99]), 80, 0)
        finally:
            snapshots.close()


def test_dump_parts_have_the_sizes_the_single_pass_rule_assumes(netns):
    """consistency.DumpShape takes a dump that came in one part for one pass
    under the kernel's lock when that part cannot have been full.  It assumes
    the room of a part is either at most NLMSG_GOODSIZE (<= GOODSIZE_CEILING)
    or at least LARGE_PART_FLOOR.  Every part but the last of a long dump is
    full, so its size shows the room the running kernel gives."""
    with netns.enter(), NetlinkBackend() as backend:
        reqs = [Request(OP_ADD_SERVICE, Service(BIG, "rr"))]
        reqs += [Request(OP_ADD_DEST, BIG, Destination(AF_INET, a, 80)) for a in BIG_REALS[:300]]
        reqs += [Request(OP_ADD_SERVICE, Service(k, "rr")) for k in SMALL[:300]]
        assert backend.apply_many(reqs) == {}
        shapes = []
        for read in (lambda: backend._dest_rows_once(BIG), lambda: backend._service_list()):
            read()
            shapes.append(backend._dumps.dump_shape)
    for shape in shapes:
        assert shape.parts > 1
        for size in shape.sizes[:-1]:  # full parts
            assert size <= consistency.GOODSIZE_CEILING or size + shape.largest > consistency.LARGE_PART_FLOOR, shape.sizes
    # A list of 10 (4,000 bytes, more than any NLMSG_GOODSIZE) is taken for
    # one pass, needing no snapshot, unless the kernel had to fall back to
    # NLMSG_GOODSIZE for it (then it came in two parts, and is checked).
    with netns.enter(), NetlinkBackend() as backend:
        assert backend.apply_many([Request(OP_ADD_DEST, SMALL[1], Destination(AF_INET, a, 53))
                                   for a in BIG_REALS[:10]]) == {}
        backend._dest_rows_once(SMALL[1])
        shape = backend._dumps.dump_shape
        assert shape.one_pass or shape.sizes[0] <= consistency.GOODSIZE_CEILING, shape.sizes
