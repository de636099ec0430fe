#!/usr/bin/env python3
"""``ipvsctl apply`` of a big file against ``ipvsadm -C; ipvsadm -R`` of the same file.

Needs a kernel with IPVS and root: run it inside User-Mode Linux,

    scripts/uml-run --mem 2G --timeout 3600 -- python benchmarks/apply_bench.py
    scripts/uml-run --kernel 6.1.176 --mem 2G --timeout 3600 -- python benchmarks/apply_bench.py

What is measured (wall time of the command as a user starts it, spawn
included; each scenario in a fresh network namespace, because deleted real
servers stay in a per-namespace trash that slows later adds down):

* from empty: ``ipvsctl apply F`` against ``ipvsadm -C; ipvsadm -R < F``;
* 1% changed: the table is F, the file F' changes 1% of its services (a
  scheduler and a real server's weight each): ``ipvsctl apply F'`` against
  ``ipvsadm -C; ipvsadm -R < F'`` (what ipvsadm users do to converge);
* again: ``ipvsctl apply F`` on a table that already is F (and, to compare,
  ``ipvsctl -Sn``, which reads the same table);
* the change requests each one sends, counted on the wire by an nlmon tap
  (tests/kernel/nltap.py), not by ipvsctl, in a separate untimed repeat;
* where ``apply``'s time goes (in process: read, plan, batch, verify).

Prints a table; ``--json FILE`` saves the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT / "tests" / "kernel"), str(PROJECT)]
IPVSCTL = str(PROJECT / ".venv" / "bin" / "ipvsctl")

from nltap import NetlinkTap  # noqa: E402
from nsutil import NetNS, delete_many  # noqa: E402


def table_text(n: int, servers: int, changed_every: int = 0) -> str:
    """n TCP services, each with ``servers`` NAT real servers; with
    ``changed_every``, every such service gets another scheduler and its first
    server another weight (n / changed_every services change)."""
    out = []
    for i in range(n):
        vip = f"10.{100 + i // 60000}.{i // 250 % 240}.{i % 250 + 1}:80"
        change = changed_every and i % changed_every == 0
        out.append(f"-A -t {vip} -s {'wrr' if change else 'rr'}")
        for j in range(servers):
            weight = 5 if change and j == 0 else 1
            out.append(f"-a -t {vip} -r 10.{30 + j}.{i // 250 % 240}.{i % 250 + 1}:8080 -m -w {weight}")
    return "\n".join(out) + "\n"


def timed(ns: NetNS, argv, stdin_path=None) -> tuple[float, subprocess.CompletedProcess]:
    """Wall time of one command in ``ns``, spawn included."""
    stdin = open(stdin_path) if stdin_path else subprocess.DEVNULL
    try:
        t0 = time.perf_counter()
        with ns.enter():
            r = subprocess.run(argv, stdin=stdin, capture_output=True, text=True)
        return time.perf_counter() - t0, r
    finally:
        if stdin_path:
            stdin.close()


def check(r: subprocess.CompletedProcess, what: str) -> None:
    if r.returncode != 0:
        raise SystemExit(f"{what}: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")


def fresh(populate_with: str | None = None) -> NetNS:
    (ns,) = NetNS.create_many(["bench"])
    if populate_with:
        _, r = timed(ns, [IPVSCTL, "-R"], populate_with)
        check(r, "populate")
    return ns


def scenarios(files: dict):
    """(name, table to start from, argv) of every measured command."""
    ipvsctl_f = [IPVSCTL, "apply", files["F"]]
    return [
        ("ipvsctl apply, from empty", None, [ipvsctl_f]),
        ("ipvsadm -C; -R, from empty", None, [["sh", "-c", f"ipvsadm -C && ipvsadm -R < {files['F']}"]]),
        ("ipvsctl apply, 1% changed", files["F"], [[IPVSCTL, "apply", files["F1"]]]),
        ("ipvsadm -C; -R, 1% changed", files["F"], [["sh", "-c", f"ipvsadm -C && ipvsadm -R < {files['F1']}"]]),
        ("ipvsctl apply, again (in sync)", files["F"], [ipvsctl_f]),
        ("ipvsctl -Sn (reading the table)", files["F"], [[IPVSCTL, "-Sn"]]),
    ]


def one_run(files: dict, results: dict, counts: dict) -> None:
    """Each scenario in a fresh namespace, timed with nothing watching; the
    change requests are counted once, in another fresh namespace, by a tap
    (its reader would otherwise compete for the guest's one CPU)."""
    for name, start, commands in scenarios(files):
        ns = fresh(start)
        try:
            for argv in commands:
                t, r = timed(ns, argv)
                check(r, name)
            results[name].append(t)
        finally:
            delete_many([ns])
        if name in counts:
            continue
        ns = fresh(start)
        try:
            with NetlinkTap(ns) as tap:
                for argv in commands:
                    _, r = timed(ns, argv)
                    check(r, name)
                counts[name] = sum(tap.take().values())
        finally:
            delete_many([ns])
    # where apply's time goes, in process, 1% changed
    ns = fresh(files["F"])
    try:
        results.setdefault("phases", []).append(phases(ns, files["F1"]))
    finally:
        delete_many([ns])


def phases(ns: NetNS, path: str) -> dict:
    from ipvsctl.desired import apply as A
    from ipvsctl.desired import plan as P
    from ipvsctl.desired import source
    from ipvsctl.netlink.backend import NetlinkBackend

    spent = {"parse": 0.0, "read table": 0.0, "plan": 0.0, "batch": 0.0}
    t0 = time.perf_counter()
    desired = source.load(Path(path).read_text())
    spent["parse"] = time.perf_counter() - t0
    real_plan = P.plan

    def plan(*a, **k):
        t = time.perf_counter()
        try:
            return real_plan(*a, **k)
        finally:
            spent["plan"] += time.perf_counter() - t

    with ns.enter():
        backend = NetlinkBackend()
        real_table, real_many = backend.table, backend.apply_many

        def table(*a, **k):
            t = time.perf_counter()
            try:
                return real_table(*a, **k)
            finally:
                spent["read table"] += time.perf_counter() - t

        def many(reqs):
            t = time.perf_counter()
            try:
                return real_many(reqs)
            finally:
                spent["batch"] += time.perf_counter() - t

        backend.table, backend.apply_many = table, many
        P.plan = plan
        try:
            t0 = time.perf_counter()
            report = A.run(backend, desired)
            spent["total (run)"] = time.perf_counter() - t0
        finally:
            P.plan = real_plan
            backend.close()
    assert report.status == 0, report.failed
    return spent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--services", type=int, default=10000)
    p.add_argument("--servers", type=int, default=2, help="real servers per service")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()
    if not os.path.exists("/proc/net/ip_vs") or os.geteuid() != 0:
        raise SystemExit("needs IPVS and root: run it through scripts/uml-run")
    with tempfile.TemporaryDirectory() as tmp:
        files = {"F": os.path.join(tmp, "F.rules"), "F1": os.path.join(tmp, "F1.rules")}
        Path(files["F"]).write_text(table_text(args.services, args.servers))
        Path(files["F1"]).write_text(table_text(args.services, args.servers, changed_every=100))
        results: dict = {name: [] for name, _, _ in scenarios(files)}
        counts: dict = {}
        for _ in range(args.runs):
            one_run(files, results, counts)
    lines = args.services * (1 + args.servers)
    print(f"kernel {platform.release()}, {args.services} services x {args.servers} real servers "
          f"({lines} lines), {args.runs} runs, each in a fresh namespace")
    print(f"{'what':34} {'median s':>9} {'min s':>7} {'max s':>7} {'change requests':>16}")
    summary = {}
    for name, times in results.items():
        if name == "phases":
            continue
        summary[name] = {"median": statistics.median(times), "min": min(times), "max": max(times),
                         "requests": counts.get(name)}
        print(f"{name:34} {statistics.median(times):9.2f} {min(times):7.2f} {max(times):7.2f} "
              f"{counts.get(name, ''):>16}")
    print("apply, 1% changed, in process (median s): " + ", ".join(
        f"{k} {statistics.median(r[k] for r in results['phases']):.2f}" for k in results["phases"][0]))
    if args.json:
        Path(args.json).write_text(json.dumps({"kernel": platform.release(), "services": args.services,
                                               "servers": args.servers, "summary": summary,
                                               "phases": results["phases"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
