#!/usr/bin/env python3
"""ipvsctl against ipvsadm, side by side in the same kernel and the same run.

Strategy
--------
* Stdlib only.  Every measured command is a child process started the way a
  user starts it (the venv's ``ipvsctl`` command, ``ipvsadm ...``);
  the wall time is ``time.perf_counter`` around spawn + ``os.wait4``; a
  peak RSS that is judged is the command's own, through ``/usr/bin/time``
  (harness.spawn says why ``ru_maxrss`` is not).  Input and output go
  through files on tmpfs, never pipes, so a big listing costs the same
  plumbing for both tools.
* The two tools alternate (A B, then B A, ...) within one run, so drift in
  the machine hits both; each figure is the median of several runs, shown
  with its min and max.
* One network namespace at a time: this process ``unshare(CLONE_NEWNET)``s
  into a fresh namespace (children inherit it), brings ``lo`` up, measures,
  flushes the table, returns to its original namespace, and the namespace
  dies with its last user.  The kernel's IPVS service hash (256 buckets in
  6.1) is shared by all namespaces, so two loaded namespaces at once would
  slow each other down.
* Correctness rides along: the state each tool leaves is read back with
  ``ipvsadm -Sn`` and compared by hash; listings are compared byte by byte;
  restore errors are compared line by line.
* ``benchmarks/run`` is the one command: it runs the start-up check natively
  on the host (``--phase host``) and everything else inside User-Mode Linux
  (``--phase kernel``), and prints one table.  docs/performance.md has the
  numbers and how to read them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The harness (children, tools, namespaces, data, the report): harness.py;
# scenarios 5 and 6 (a change's cost as the table grows): growth.py;
# scenario 8 (a million lines): million.py.
from growth import iptables_flavour, sc_add_cost, sc_iptables
from million import sc_million
from harness import (CONSOLE_SCRIPT, NET_PROBE, PROJECT, VENV_PY, Netns, Report, Row, Tools, alternate,
                     big_service_lines, fmt_s, fmt_t, ip, log, restore_lines, spawn, with_duplicates,
                     write)

SCENARIOS = ("startup", "native", "restore", "restore-errors", "list", "views", "big-service",
             "single", "add-cost", "iptables", "metrics", "million", "native-inputs")
HOST_SCENARIOS = ("startup", "native")
# Run only when named (--only): refreshes benchmarks/native/data (kernel tier).
EXPLICIT_SCENARIOS = ("native-inputs",)

# Sizes: the full run, and --quick for a few-minute smoke run.
FULL = dict(services=10_000, dests=10, errors=100, big_dests=20_000,
            single_reps=30, add_sizes=(100, 10_000, 50_000), add_reps=10,
            add_batch=1000, ipt_sizes=(1000, 5000, 10_000, 20_000), ipt_reps=5,
            startup_reps=10, view_services=1000, view_dests=9,
            million_services=10_000, million_dests=99, million_adm_services=10_000)
QUICK = dict(services=1000, dests=10, errors=20, big_dests=2000,
             single_reps=10, add_sizes=(100, 1000, 5000), add_reps=5,
             add_batch=500, ipt_sizes=(500, 1000, 2000), ipt_reps=3,
             startup_reps=5, view_services=1000, view_dests=9,
             million_services=1000, million_dests=99, million_adm_services=100)

# --------------------------------------------------------------------------
# Scenarios


def sc_restore(t: Tools, rep: Report, p, a):
    """1. -R of services x (1 + dests) lines; state identical; ipvsctl's peak RSS."""
    n = p["services"] * (1 + p["dests"])
    what = f"-R {p['services']} svc x {p['dests']} dests ({n} lines)"
    src = write(t.work / "restore.txt", restore_lines(p["services"], p["dests"]))
    times = {"adm": [], "ctl": []}
    rss, states, status = [], {"adm": set(), "ctl": set()}, {"adm": set(), "ctl": set()}
    for i in range(a.runs):
        for tool in alternate(i):
            with Netns(t):
                r = t.run(tool, ["-R"], stdin=src, rss=tool == "ctl")
                times[tool].append(r.wall)
                status[tool].add(r.status)
                if tool == "ctl":
                    rss.append(r.maxrss_kb)
                digest, count = t.saved_state()
                states[tool].add((digest, count))
                log(f"  restore run {i + 1} {tool}: {fmt_t(r.wall)} rc={r.status} "
                    f"state {digest[:12]} ({count} lines)"
                    + (f" maxrss {r.maxrss_kb // 1024} MB" if tool == "ctl" else ""))
    row = Row("1 restore", what, times["adm"], times["ctl"],
              target="ctl/adm <= 0.200 (>= 5x faster)")
    row.judge(0.2)
    row.note = (f"speed-up {statistics.median(times['adm']) / statistics.median(times['ctl']):.1f}x")
    rep.row(row)
    peak = max(rss) / 1024
    rep.rows.append(Row("1 restore", f"ipvsctl -R peak RSS: {peak:.1f} MB (/usr/bin/time %M)", target="< 150 MB",
                        verdict="PASS" if peak < 150 else "FAIL",
                        note=f"{peak:.1f} MB max over {len(rss)} runs "
                             f"(median {statistics.median(rss) / 1024:.1f} MB)"))
    log(f"  peak RSS {peak:.1f} MB")
    expect_lines = n  # -Sn prints one line per service and one per destination
    same = len(states["adm"]) == 1 and states["adm"] == states["ctl"]
    rep.check("1 restore", "kernel state after -R identical (ipvsadm -Sn sha256, every run)",
              same, f"ipvsadm {sorted(states['adm'])}, ipvsctl {sorted(states['ctl'])}"
              if not same else f"sha256 {next(iter(states['adm']))[0][:16]}, "
                               f"{next(iter(states['adm']))[1]} lines")
    rep.check("1 restore", "-Sn holds every restored line",
              all(c == expect_lines for _, c in states["adm"] | states["ctl"]),
              f"expected {expect_lines}")
    rep.check("1 restore", "exit status 0 for both", status["adm"] == {0} == status["ctl"],
              f"ipvsadm {sorted(status['adm'])}, ipvsctl {sorted(status['ctl'])}")
    return states


_CTL_ERR = re.compile(r"^line (\d+): (.*)$")


def sc_restore_errors(t: Tools, rep: Report, p, a):
    """1b. -R with duplicate -a lines scattered: same failures as line by line."""
    base = restore_lines(p["services"], p["dests"])
    lines, expected = with_duplicates(base, p["errors"])
    src = write(t.work / "restore-errors.txt", lines)
    what = f"-R with {p['errors']} failing lines ({len(lines)} lines)"
    times = {"adm": [], "ctl": []}
    res = {}
    for i in range(a.error_runs):
        for tool in alternate(i):
            with Netns(t):
                r = t.run(tool, ["-R"], stdin=src)
                times[tool].append(r.wall)
                if i == 0:
                    res[tool] = (r, r.text(), t.saved_state())
                    if tool == "ctl":
                        # The line-by-line oracle: in the state ipvsctl left,
                        # every failing line run alone through ipvsadm.
                        oracle = {}
                        for no in sorted(expected):
                            o = t.run("adm", lines[no - 1].split())
                            oracle[no] = (o.status, o.text().strip())
                        res["oracle"] = oracle
    rep.row(Row("1 restore", what, times["adm"], times["ctl"],
                target="(time: info)").judge())
    adm_r, adm_err, adm_state = res["adm"]
    ctl_r, ctl_err, ctl_state = res["ctl"]
    ctl_fail = {}
    other = []
    for l in ctl_err.splitlines():
        m = _CTL_ERR.match(l)
        if m:
            ctl_fail[int(m.group(1))] = m.group(2)
        elif l.strip():
            other.append(l)
    ok = ctl_fail == expected
    detail = f"{len(ctl_fail)} reported, {len(expected)} expected"
    if not ok:
        miss = sorted(set(expected) - set(ctl_fail))[:5]
        extra = sorted(set(ctl_fail) - set(expected))[:5]
        wrong = [(k, ctl_fail[k]) for k in sorted(set(ctl_fail) & set(expected))
                 if ctl_fail[k] != expected[k]][:3]
        detail += f"; missing {miss} extra {extra} wrong {wrong}"
    rep.check("1 restore", "ipvsctl -R failing line numbers + messages == the injected duplicates",
              ok, detail)
    oracle = res["oracle"]
    oracle_ok = all(st != 0 and msg == expected[no] for no, (st, msg) in oracle.items())
    rep.check("1 restore", "line-by-line oracle: each failing line alone via ipvsadm "
              "gives the same message as ipvsctl",
              oracle_ok and all(ctl_fail.get(no) == msg for no, (_, msg) in oracle.items()),
              f"{sum(1 for v in oracle.values() if v[0] != 0)} of {len(oracle)} fail alone")
    adm_msgs = [l for l in adm_err.splitlines() if l.strip()]
    want = [expected[k] for k in sorted(expected)]
    rep.check("1 restore", "ipvsadm -R prints the same messages, in line order",
              adm_msgs == want, f"{len(adm_msgs)} messages")
    rep.check("1 restore", "ipvsctl -R exit status non-zero", ctl_r.status != 0,
              f"ipvsctl {ctl_r.status}; ipvsadm {adm_r.status} (ipvsadm returns its last line's status)")
    rep.check("1 restore", "state after the failing restore identical (ipvsadm -Sn)",
              adm_state == ctl_state, f"{adm_state[0][:12]} vs {ctl_state[0][:12]}")
    if other:
        rep.note(f"ipvsctl -R also printed: {other[-1][:200]}")


def sc_list(t: Tools, rep: Report, p, a):
    """2. -Ln and -Sn of the big table: no slower than ipvsadm; bytes identical."""
    n = p["services"] * (1 + p["dests"])
    src = write(t.work / "restore.txt", restore_lines(p["services"], p["dests"]))
    with Netns(t):
        log(f"  loading {n} lines with {a.loader}: {fmt_t(t.load(src, a.loader))}")
        for flag in ("-Ln", "-Sn"):
            times = {"adm": [], "ctl": []}
            digests = {"adm": set(), "ctl": set()}
            for i in range(a.runs):
                for tool in alternate(i):
                    r = t.run(tool, [flag], keep=True)
                    times[tool].append(r.wall)
                    digests[tool].add((r.status, hashlib.sha256(r.out.read_bytes()).hexdigest(),
                                       r.out.stat().st_size))
                    r.out.unlink()
            rep.row(Row("2 list", f"{flag} of {n} entries", times["adm"], times["ctl"],
                        target="ctl/adm <= 1.000").judge(1.0))
            same = len(digests["adm"]) == 1 and digests["adm"] == digests["ctl"]
            rep.check("2 list", f"{flag} output byte-identical (every run)", same,
                      f"{next(iter(digests['adm']))[2]} bytes" if same
                      else f"ipvsadm {sorted(digests['adm'])} ipvsctl {sorted(digests['ctl'])}")


def sc_views(t: Tools, rep: Report, p, a):
    """2b. ipvsctl's views on a big table: `list` and `list --stats` within
    1.5x of `-Ln --stats`; a `watch` frame within its interval."""
    svcs, dests = p["view_services"], p["view_dests"]
    entries = svcs * (1 + dests)
    src = write(t.work / "views.txt", restore_lines(svcs, dests))
    with Netns(t):
        log(f"  loading {entries} entries with {a.loader}: {fmt_t(t.load(src, a.loader))}")
        runs = max(a.runs, 5)
        times: dict[str, list] = {}
        cases = [("adm", ["-Ln", "--stats"]), ("ctl", ["-Ln", "--stats"]), ("ctl", ["list"]),
                 ("ctl", ["list", "--stats"]), ("ctl", ["watch", "--once"])]
        for i in range(runs):
            order = cases if i % 2 == 0 else cases[::-1]
            for tool, args in order:
                r = t.run(tool, args)
                if r.status:
                    raise SystemExit(f"bench: {tool} {' '.join(args)} failed: {r.text()[:300]}")
                times.setdefault(f"{tool} {' '.join(args)}", []).append(r.wall)
        ref = times["adm -Ln --stats"]
        for what in ("list", "list --stats"):
            rep.row(Row("2b views", f"{what} vs -Ln --stats, {entries} entries", ref,
                        times[f"ctl {what}"], target="ctl/adm <= 1.500").judge(1.5))
            ratio = statistics.median(times[f"ctl {what}"]) / statistics.median(times["ctl -Ln --stats"])
            rep.rows[-1].note = f"{ratio:.2f}x ipvsctl -Ln --stats ({fmt_s(times['ctl -Ln --stats'])})"
        frame = times["ctl watch --once"]
        rep.row(Row("2b views", f"watch frame (--once, start-up included), {entries} entries", [],
                    frame, target="frame/interval(1 s) <= 1.000").judge(1.0, ratio=statistics.median(frame)))
        # Three frames at an interval of 1 s: on time, and saying so.
        out = t.work / "watch.out"
        r = spawn(t.ctl + ["watch", "--interval", "1", "--iterations", "3"], out=out, env=t.env)
        text = out.read_text()
        bound = 2 * 1.0 + 2 * statistics.median(frame)  # two intervals, a frame's cost, slack
        on_time = (r.status == 0 and text.count("busiest first") == 3 and "late" not in text
                   and r.wall <= bound)
        rep.check("2b views", "watch --interval 1 --iterations 3: three frames, none late "
                  "(none says so, and the run takes two intervals and about one frame)",
                  on_time, f"{fmt_t(r.wall)} in all, bound {fmt_t(bound)}")
        rep.rows.append(Row("2b views", "watch --interval 1 --iterations 3 (wall)", [], [r.wall],
                            target="(info)"))

# The same families as `ipvsctl metrics`, built and written by
# prometheus_client (the library the issue suggested) as a collector of
# that library would, over the same read of the table: the measured reason
# ipvsctl writes the format itself (ipvsctl/metrics.py).
PROM_CLIENT = r"""
import sys
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import CollectorRegistry
from ipvsctl import metrics as M
from ipvsctl.netlink.backend import NetlinkBackend
from ipvsctl.vocab import FAMILIES, FORWARDS, PROTOCOLS

SVC = ["family", "protocol", "address", "port", "fwmark", "scheduler"]
REAL = SVC + ["real_address", "real_port", "forward"]
snap = M.Snapshot.read(NetlinkBackend())
snap.table = snap.table[:int(sys.argv[1])]  # the first N services

class Collector:
    def collect(self):
        services, reals = [], []
        for svc, dests in snap.table:
            k = svc.key
            labels = [FAMILIES.key(k.af), "" if k.fwmark else PROTOCOLS.key(k.protocol),
                      "" if k.fwmark else k.addr, "" if k.fwmark else str(k.port),
                      str(k.fwmark) if k.fwmark else "", svc.scheduler]
            dests = list(dests)
            services.append((labels, svc.stats, dests))
            reals += [(labels + [d.addr, str(d.port), FORWARDS.key(d.fwd)], d) for d in dests]
        for scope, names, rows in (("service", SVC, services), ("real_server", REAL, reals)):
            for suffix, attr, text in M.COUNTERS + M.RATES:
                counter = suffix.endswith("_total")
                f = (CounterMetricFamily(f"ipvs_{scope}_{suffix[:-6]}", text, labels=names) if counter
                     else GaugeMetricFamily(f"ipvs_{scope}_{suffix}", text, labels=names))
                for row in rows:
                    st = row[1] if scope == "service" else row[1].stats
                    f.add_metric(row[0], getattr(st, attr))
                yield f
            for suffix, attr, text in M.GAUGES:
                f = GaugeMetricFamily(f"ipvs_{scope}_{suffix}", text, labels=names)
                for row in rows:
                    value = (sum(getattr(d, attr) for d in row[2]) if scope == "service"
                             else getattr(row[1], attr))
                    f.add_metric(row[0], value)
                yield f

registry = CollectorRegistry()
registry.register(Collector())
sys.stdout.buffer.write(generate_latest(registry))
"""


def sc_metrics(t: Tools, rep: Report, p, a):
    """7. `ipvsctl metrics` of the big table against `-Ln --stats` of it."""
    n = p["services"] * (1 + p["dests"])
    src = write(t.work / "restore.txt", restore_lines(p["services"], p["dests"]))
    with Netns(t):
        log(f"  loading {n} lines with {a.loader}: {fmt_t(t.load(src, a.loader))}")
        times = {"adm": [], "ctl": [], "ctl-stats": []}
        sizes, rss = set(), []
        for i in range(a.runs):
            for tool in alternate(i):
                r = t.run(tool, ["-Ln", "--stats"], keep=True)
                assert r.status == 0, r.text()
                times[tool if tool == "adm" else "ctl-stats"].append(r.wall)
                r.out.unlink()
            r = t.run("ctl", ["metrics"], keep=True, rss=True)
            assert r.status == 0, r.text()
            times["ctl"].append(r.wall)
            rss.append(r.maxrss_kb)
            # Read in chunks: holding 285 MB here would inflate the next
            # child's ru_maxrss (Linux carries the parent's RSS at fork over
            # into the child's peak; the prometheus_client run below has it).
            lines = size = 0
            with open(r.out, "rb") as f:
                while chunk := f.read(1 << 20):
                    lines += chunk.count(b"\n")
                    size += len(chunk)
                    tail = chunk[-400:]
            sizes.add((size, lines, int(b"ipvs_scrape_success 1\n" in tail)))
            r.out.unlink()
        row = Row("7 metrics", f"ipvsctl metrics of {n} entries vs ipvsadm -Ln --stats",
                  times["adm"], times["ctl"], target="ctl/adm <= 1.000")
        row.judge(1.0)
        size, lines, ok = next(iter(sizes))
        row.note = (f"{size / 1e6:.0f} MB, {lines} lines per scrape; peak RSS "
                    f"{max(rss) / 1024:.0f} MB; ipvsctl -Ln --stats "
                    f"{fmt_t(statistics.median(times['ctl-stats']))}")
        rep.row(row)
        rep.row(Row("7 metrics", f"ipvsctl metrics vs ipvsctl -Ln --stats ({n} entries)",
                    times["ctl-stats"], times["ctl"], target="(info: ratio to ipvsctl -Ln --stats)").judge())
        expect = p["services"] * 15 + p["services"] * p["dests"] * 14  # samples
        rep.check("7 metrics", "every scrape the same size, successful, with every sample",
                  len(sizes) == 1 and ok == 1 and lines > expect,
                  f"{sorted(sizes)}; at least {expect} lines expected")
        # prometheus_client over the same read (info): the whole table, then
        # a tenth of it (the whole one may not fit in the guest's memory).
        script = t.work / "prom_client.py"
        script.write_text(PROM_CLIENT)
        for n_svc in (p["services"], p["services"] // 10):
            out, err = t.files("prom")
            r = spawn([t.python, str(script), str(n_svc)], out=out, err=err, env=t.env)
            entries = n_svc * (1 + p["dests"])
            what = f"the same with prometheus_client's writer ({entries} entries)"
            if r.status == 0:
                rep.rows.append(Row("7 metrics", what, ctl=[r.wall], target="(info)",
                                    note=f"peak RSS {r.maxrss_kb / 1024:.0f} MB, "
                                         f"{out.stat().st_size / 1e6:.0f} MB (values as floats)"))
            else:
                rep.rows.append(Row("7 metrics", what, ctl=[r.wall], target="(info)", verdict="info",
                                    note=f"failed: exit status {r.status}"
                                         + (" (SIGKILL: out of memory)" if r.status == -9 else "")
                                         + f" after {fmt_t(r.wall)}; {r.text()[-200:].strip()}"))
            log(f"  prometheus_client, {entries} entries: {fmt_t(r.wall)}, status {r.status}, "
                f"peak RSS {r.maxrss_kb // 1024} MB")
            out.unlink(missing_ok=True)

def sc_big_service(t: Tools, rep: Report, p, a):
    """3. One service with many real servers: -R and -Ln within 10%."""
    d = p["big_dests"]
    src = write(t.work / "big.txt", big_service_lines(d))
    times = {"adm": [], "ctl": []}
    states = {"adm": set(), "ctl": set()}
    for i in range(a.runs):
        for tool in alternate(i):
            with Netns(t):
                r = t.run(tool, ["-R"], stdin=src)
                times[tool].append(r.wall)
                states[tool].add(t.saved_state() + (r.status,))
    rep.row(Row("3 big service", f"-R 1 svc x {d} dests", times["adm"], times["ctl"],
                target="ctl/adm <= 1.100").judge(1.10))
    same = len(states["adm"]) == 1 and states["adm"] == states["ctl"]
    rep.check("3 big service", "state after -R identical (ipvsadm -Sn sha256)", same,
              str(sorted(states["adm"] | states["ctl"]))[:200])
    with Netns(t):
        t.load(src, a.loader)
        times = {"adm": [], "ctl": []}
        digests = {"adm": set(), "ctl": set()}
        for i in range(max(a.runs, 5)):
            for tool in alternate(i):
                r = t.run(tool, ["-Ln"], keep=True)
                times[tool].append(r.wall)
                digests[tool].add((r.status, hashlib.sha256(r.out.read_bytes()).hexdigest()))
                r.out.unlink()
        rep.row(Row("3 big service", f"-Ln 1 svc x {d} dests", times["adm"], times["ctl"],
                    target="ctl/adm <= 1.100").judge(1.10))
        rep.check("3 big service", "-Ln output byte-identical",
                  len(digests["adm"]) == 1 and digests["adm"] == digests["ctl"])


def sc_single(t: Tools, rep: Report, p, a):
    """4. Single commands on a 10-service table vs a bare `python -c pass`."""
    reps = p["single_reps"]
    small = write(t.work / "small.txt", restore_lines(10, 2))
    svc0 = "10.16.0.1:80"
    with Netns(t):
        t.load(small, "adm")
        base, script = [], []
        times = {k: {"adm": [], "ctl": []} for k in ("-A", "-a", "-Ln")}
        for i in range(reps):
            r = spawn([t.python, "-c", "pass"], env=t.env)
            base.append(r.wall)
            for tool in alternate(i):
                k = 2 * i + (tool == "ctl")
                vip = f"{ip(NET_PROBE, k + 1)}:80"
                r = t.run(tool, ["-A", "-t", vip, "-s", "rr"])
                assert r.status == 0, r.text()
                times["-A"][tool].append(r.wall)
                r = t.run(tool, ["-a", "-t", svc0, "-r", f"{ip(NET_PROBE, 4096 + k)}:80", "-m"])
                assert r.status == 0, r.text()
                times["-a"][tool].append(r.wall)
                r = t.run(tool, ["-Ln"])
                times["-Ln"][tool].append(r.wall)
                # keep the table at its size: undo, untimed
                spawn(t.adm + ["-D", "-t", vip])
                spawn(t.adm + ["-d", "-t", svc0, "-r", f"{ip(NET_PROBE, 4096 + k)}:80"])
            if not a.ctl:
                script.append(spawn([t.python, "-m", "ipvsctl", "-Ln"], env=t.env).wall)
        mb = statistics.median(base)
        rep.rows.append(Row("4 single", "python -c pass (baseline)", ctl=base,
                            note="the venv's interpreter, same spawn path"))
        for k in ("-A", "-a", "-Ln"):
            row = Row("4 single", f"{k} (10-svc table)", times[k]["adm"], times[k]["ctl"],
                      target="ctl/pass <= 3.0")
            row.judge(3.0, statistics.median(times[k]["ctl"]) / mb)
            row.note = (f"ctl/pass {row.ratio:.2f}; ctl/ipvsadm "
                        f"{statistics.median(times[k]['ctl']) / statistics.median(times[k]['adm']):.2f}")
            rep.row(row)
        if script:
            ms = statistics.median(script)
            rep.rows.append(Row("4 single", "python -m ipvsctl -Ln", ctl=script,
                                ratio=ms / mb, target="(info: ctl/pass)",
                                note=f"python -m vs the ipvsctl command: "
                                     f"{(ms - statistics.median(times['-Ln']['ctl'])) * 1e3:+.1f} ms"))


# ---- start-up (natively on the host)


_STRACE_LINE = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(\w+)\((.*)")


def first_message(strace: str, argv, reps: int, t: Tools) -> list[float]:
    """Seconds from the first execve to the first send on a netlink socket."""
    deltas = []
    for _ in range(reps):
        trace = t.work / "strace.txt"
        spawn([strace, "-f", "-ttt", "-qq", "-yy", "--seccomp-bpf", "-e",
               "trace=execve,sendto,sendmsg", "-o", str(trace)] + list(argv), env=t.env)
        t0 = t1 = None
        for line in trace.read_text().splitlines():
            m = _STRACE_LINE.match(line)
            if not m:
                continue
            ts, call, rest = float(m.group(2)), m.group(3), m.group(4)
            if call == "execve" and t0 is None:
                t0 = ts
            elif call in ("sendto", "sendmsg") and "NETLINK" in rest:
                t1 = ts
                break
        if t0 is not None and t1 is not None:
            deltas.append(t1 - t0)
    return deltas


def sc_startup(t: Tools, rep: Report, p, a):
    """Time from exec to the first netlink message sent, for `ipvsctl -Ln`."""
    reps = p["startup_reps"]
    ctl = t.ctl + ["-Ln"]
    walls = [spawn(ctl, env=t.env).wall for _ in range(reps)]
    base = [spawn([t.python, "-c", "pass"], env=t.env).wall for _ in range(reps)]
    rep.rows.append(Row("0 startup", "host: ipvsctl -Ln wall (no IPVS: fails)", ctl=walls,
                        target="(info)", note=f"python -c pass {fmt_t(statistics.median(base))}"))
    strace = shutil.which("strace")
    if strace:
        # The floor for any Python tool on this interpreter: start, open a
        # netlink socket, send (an empty header, which the kernel ignores).
        floor = [t.python, "-c", "import _socket; s = _socket.socket(16, 3, 16); "
                 "s.sendto(bytes(16), (0, 0))"]
        deltas = first_message(strace, ctl, reps, t)
        floors = first_message(strace, floor, reps, t)
        if deltas:
            row = Row("0 startup", "host: exec -> first netlink message (strace)", ctl=deltas,
                      target="< 80 ms", limit=0.08,
                      verdict="PASS" if statistics.median(deltas) < 0.080 else "FAIL",
                      note="strace -f -ttt --seccomp-bpf -e trace=execve,sendto,sendmsg; "
                           "same for a bare python that sends at once: "
                           + fmt_s(floors))
            rep.row(row)
            if floors:
                rep.rows.append(Row("0 startup", "host: same, bare `python -c` netlink send (floor)",
                                    ctl=floors, target="(info)"))
        else:
            rep.check("0 startup", "strace saw a netlink message", False)
    # Imports, as a cross-check (no strace needed).
    err = t.work / "importtime.err"
    spawn([t.python, "-X", "importtime", *t.ctl[-1:], "-Ln"] if t.ctl == [str(CONSOLE_SCRIPT)]
          else [t.python, "-X", "importtime", "-m", "ipvsctl", "-Ln"], err=err, env=t.env)
    total, count, top = 0, 0, []
    for line in err.read_text().splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            count += 1
            if not m.group(3).strip() and len(m.group(3)) == 1:
                total += int(m.group(2))
                top.append((int(m.group(2)), m.group(4)))
    top.sort(reverse=True)
    rep.note(f"host: python -X importtime ipvsctl -Ln: {count} modules imported, "
             f"{total / 1000:.1f} ms cumulative in top-level imports; largest: "
             + ", ".join(f"{n} {us / 1000:.1f} ms" for us, n in top[:5]))


# ---- the native model (benchmarks/native/)


def sc_native(t: Tools, rep: Report, p, a):
    """Native rows: start-up, restore per line, listing per server, the model."""
    from native import host

    host.run(sys.modules[__name__], t, rep, p, a)


def sc_native_inputs(t: Tools, rep: Report, p, a):
    """Kernel tier: refresh the native model's counts and recorded dumps."""
    r = subprocess.run([t.python, str(PROJECT / "benchmarks" / "native" / "uml_inputs.py")])
    rep.check("N native", "native-inputs: counts and fixtures written to benchmarks/native/data",
              r.returncode == 0, f"exit {r.returncode}")


# --------------------------------------------------------------------------


def host_facts(rep: Report):
    """The machine as seen natively (inside UML, /proc/cpuinfo says "UML")."""
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    rep.note(f"host: CPU {model}, {os.cpu_count()} cores, kernel {os.uname().release}, "
             f"load average {load} at the start (the machine is shared: other work "
             f"running at the same time shows up as spread between min and max)")


def describe(rep: Report, t: Tools, iptables: bool):
    """The environment line; ``iptables``: scenario 6 runs (its flavour named)."""
    def first(path, key):
        try:
            for line in open(path):
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "?"

    adm_v = subprocess.run(t.adm + ["--version"], capture_output=True, text=True).stdout.strip()
    ctl_v = subprocess.run(t.ctl + ["--version"], capture_output=True, text=True)
    rep.note(f"kernel {os.uname().release} ({'User-Mode Linux' if os.environ.get('IPVSCTL_UML') else 'native'}),"
             f" CPU {first('/proc/cpuinfo', 'model name')}, {os.cpu_count()} CPU(s) visible, "
             f"python {sys.version.split()[0]}")
    ctl_text = (ctl_v.stdout or ctl_v.stderr).strip()
    if iptables:
        flavour, version = iptables_flavour()
        ipt = f"; {version}, used by scenario 6" if flavour else f"; iptables: no flavour works ({version})"
    else:
        ipt = ""
    head = subprocess.run(["git", "-C", str(PROJECT), "log", "-1", "--format=%h %s"],
                          capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(PROJECT), "status", "--porcelain", "--", "ipvsctl"],
                           capture_output=True, text=True).stdout.split("\n")
    dirty = [l[3:] for l in dirty if l.strip()]
    rep.note(f"{adm_v}; ipvsctl: {ctl_text.splitlines()[0] if ctl_text else '?'} "
             f"(git {head or '?'}"
             + (f"; uncommitted changes in {', '.join(dirty)}" if dirty else "")
             + f"){ipt}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller tables, fewer repetitions")
    ap.add_argument("--runs", type=int, default=3, help="runs per measurement (median; default 3)")
    ap.add_argument("--error-runs", type=int, default=1,
                    help="runs of the failing-lines restore (default 1)")
    ap.add_argument("--only", action="append", default=[],
                    help="scenario(s) to run, comma-separated: " + ", ".join(SCENARIOS))
    ap.add_argument("--skip", action="append", default=[], help="scenario(s) to leave out")
    ap.add_argument("--phase", choices=("all", "host", "kernel"), default="all",
                    help="host: only the start-up check; kernel: all but it")
    ap.add_argument("--save", type=Path, help="write the results as JSON here")
    ap.add_argument("--merge", type=Path, help="include results saved by an earlier --save")
    ap.add_argument("--ctl", help="command line to use instead of .venv/bin/ipvsctl "
                    "(e.g. ipvsadm, to check the harness)")
    ap.add_argument("--loader", choices=("ctl", "adm"), default="ctl",
                    help="tool that loads untimed set-up tables (default ctl)")
    ap.add_argument("--python", type=Path, default=VENV_PY if VENV_PY.exists() else Path(sys.executable))
    ap.add_argument("--keep", action="store_true", help="keep the data folder")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=N",
                    help="override a size, e.g. --set services=2000")
    ap.add_argument("--plan", action="store_true",
                    help="print the scenarios this phase would run, and exit")
    a = ap.parse_args(argv)

    p = dict(QUICK if a.quick else FULL)
    for kv in a.set:
        k, v = kv.split("=", 1)
        p[k] = tuple(int(x) for x in v.split(",")) if "," in v else int(v)
    only = [s for o in a.only for s in o.split(",") if s]
    skip = [s for o in a.skip for s in o.split(",") if s]
    for s in only + skip:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s!r}; known: {', '.join(SCENARIOS)}")
    chosen = [s for s in SCENARIOS if (s in only if only else s not in EXPLICIT_SCENARIOS)
              and s not in skip]
    if a.phase == "host":
        chosen = [s for s in chosen if s in HOST_SCENARIOS]
    elif a.phase == "kernel":
        chosen = [s for s in chosen if s not in HOST_SCENARIOS]

    if a.plan:
        print(",".join(chosen))
        return 0
    rep = Report()
    if a.merge and a.merge.exists():
        rep.merge(json.loads(a.merge.read_text()))
    if a.phase == "host":
        host_facts(rep)
    if not chosen:
        if a.save:
            a.save.write_text(json.dumps(rep.to_json()))
        if a.phase == "host":
            return 0
        rep.print()    # e.g. only host rows, merged
        fails = [r for r in rep.rows if r.verdict == "FAIL"] + [c for c in rep.checks if not c.ok]
        return 1 if fails else 0
    work = Path(tempfile.mkdtemp(prefix="ipvsctl-bench-"))
    t = Tools(a, work)
    # Bytecode as an installed package has it (pip compiles on install).
    subprocess.run([t.python, "-m", "compileall", "-q", str(PROJECT / "ipvsctl")],
                   capture_output=True)
    needs_kernel = [s for s in chosen if s not in HOST_SCENARIOS]
    if needs_kernel:
        if os.geteuid() != 0 or not os.path.exists("/proc/net/ip_vs"):
            print("bench: the kernel scenarios need root and a kernel with IPVS; "
                  "use benchmarks/run (it boots User-Mode Linux)", file=sys.stderr)
            return 2
        describe(rep, t, "iptables" in chosen)
    log(f"scenarios: {', '.join(chosen)}; runs {a.runs}; sizes {p}; data in {work}")
    t_start = time.perf_counter()
    funcs = {"startup": sc_startup, "restore": sc_restore, "restore-errors": sc_restore_errors,
             "list": sc_list, "views": sc_views, "big-service": sc_big_service, "single": sc_single,
             "add-cost": sc_add_cost, "iptables": sc_iptables, "metrics": sc_metrics,
             "million": sc_million, "native": sc_native, "native-inputs": sc_native_inputs}
    try:
        for s in chosen:
            t0 = time.perf_counter()
            log(f"== {s}")
            try:
                funcs[s](t, rep, p, a)
            except (AssertionError, SystemExit, OSError, subprocess.SubprocessError) as e:
                rep.check(s, "scenario ran to completion", False, f"{type(e).__name__}: {e}"[:300])
            log(f"== {s} done in {fmt_t(time.perf_counter() - t0)}")
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    rep.note(f"{a.phase} phase: {'quick' if a.quick else 'full'} run, {a.runs} runs per measurement; "
             f"took {fmt_t(time.perf_counter() - t_start)}")
    if a.save:
        a.save.write_text(json.dumps(rep.to_json()))
    if a.phase != "host":
        rep.print()
    fails = [r for r in rep.rows if r.verdict == "FAIL"] + [c for c in rep.checks if not c.ok]
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
