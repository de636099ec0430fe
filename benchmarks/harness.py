"""The benchmarks' harness: children timed as a user starts them, the tools
side by side, one fresh network namespace at a time, deterministic data, and
the report (bench.py holds the scenarios; its docstring is the strategy).

Stdlib only, plus ipvsctl's own setns (the venv's python runs it).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
VENV_PY = PROJECT / ".venv" / "bin" / "python"
CONSOLE_SCRIPT = PROJECT / ".venv" / "bin" / "ipvsctl"

SCHEDULERS = ("rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "dh", "lblc",
              "lblcr", "mh", "fo", "ovf")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Child processes


@dataclass
class Run:
    wall: float          # seconds
    status: int          # exit status (negative: killed by that signal)
    maxrss_kb: int       # peak resident set of the child
    out: Path | None
    err: Path | None

    def text(self, which: str = "err") -> str:
        p = self.err if which == "err" else self.out
        return p.read_text(errors="replace") if p else ""


TIME = "/usr/bin/time"  # GNU time: the peak RSS of a child it forks itself


def spawn(argv, stdin: Path | None = None, out: Path | None = None,
          err: Path | None = None, env=None, rss: Path | None = None) -> Run:
    """Run argv to completion; time it from just before the spawn to reaping.

    ``maxrss_kb``: with ``rss`` (a file for it), the peak RSS of the command
    itself, as /usr/bin/time (``%M``) reports it for a child it forked; else
    this child's ru_maxrss, which is at least this process's RSS at the fork
    (Linux keeps the larger of the two across exec), so it overstates a small
    command started by a big benchmark."""
    fin = open(stdin, "rb") if stdin else subprocess.DEVNULL
    fout = open(out, "wb") if out else subprocess.DEVNULL
    ferr = open(err, "wb") if err else subprocess.DEVNULL
    if rss is not None:
        argv = [TIME, "-f", "%M", "-o", str(rss), *argv]
    try:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=fin, stdout=fout, stderr=ferr, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
    finally:
        for f in (fin, fout, ferr):
            if not isinstance(f, int):
                f.close()
    maxrss = ru.ru_maxrss
    if rss is not None:
        # Its last line ("Command exited with non-zero status N" may come first).
        maxrss = int(rss.read_text().split()[-1])
        rss.unlink()
    return Run(wall, p.returncode, maxrss, out, err)


def check(argv, **kw) -> str:
    """An untimed helper command that must succeed; returns its stdout."""
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    if r.returncode:
        raise SystemExit(f"bench: {' '.join(map(str, argv))} failed "
                         f"({r.returncode}): {r.stderr.strip()}")
    return r.stdout


class Tools:
    """The two command lines under test, plus helpers."""

    def __init__(self, args, work: Path):
        self.work = work
        self.python = str(args.python)
        self.adm = [shutil.which("ipvsadm") or "/usr/sbin/ipvsadm"]
        # The installed command, as users run it (bin/ipvsctl; `python -m
        # ipvsctl` only where it is not installed).
        default = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [self.python, "-m", "ipvsctl"]
        self.ctl = args.ctl.split() if args.ctl else default
        self.n = 0
        # How users run it: bytecode may be written (the guest's init sets
        # PYTHONDONTWRITEBYTECODE for the test suite; a user has no such thing).
        self.env = dict(os.environ)
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)

    def files(self, stem: str) -> tuple[Path, Path]:
        self.n += 1
        return (self.work / f"{self.n:05d}-{stem}.out",
                self.work / f"{self.n:05d}-{stem}.err")

    def run(self, tool: str, args, stdin: Path | None = None,
            keep: bool = False, rss: bool = False) -> Run:
        """``rss``: measure the command's own peak RSS (through /usr/bin/time)."""
        argv = (self.adm if tool == "adm" else self.ctl) + list(args)
        out, err = self.files(tool)
        r = spawn(argv, stdin=stdin, out=out if keep else None, err=err,
                  env=self.env, rss=self.work / "rss" if rss else None)
        return r

    def saved_state(self) -> tuple[str, int]:
        """sha256 and line count of `ipvsadm -Sn` of the current namespace."""
        out = self.work / "state.sn"
        r = spawn(self.adm + ["-Sn"], out=out)
        if r.status:
            raise SystemExit("bench: ipvsadm -Sn failed")
        data = out.read_bytes()
        out.unlink()
        return hashlib.sha256(data).hexdigest(), data.count(b"\n")

    def load(self, path: Path, loader: str) -> float:
        """Untimed set-up: restore a file with the loader tool; must succeed."""
        r = self.run(loader, ["-R"], stdin=path)
        if r.status:
            raise SystemExit(f"bench: loading {path.name} with {loader} failed "
                             f"({r.status}): {r.text()[:500]}")
        return r.wall


# --------------------------------------------------------------------------
# Network namespaces

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class Netns:
    """`with Netns(tools):` runs the block in a fresh, empty network namespace.
    ``iptables``: the iptables command (iptables-legacy, iptables-nft) whose
    nat table is emptied on the way out too."""

    def __init__(self, tools: Tools, iptables: str | None = None):
        self.tools = tools
        self.iptables = iptables

    def __enter__(self):
        self.home = os.open("/proc/self/ns/net", os.O_RDONLY)
        if _libc.unshare(CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"unshare(CLONE_NEWNET): {os.strerror(e)}")
        check(["ip", "link", "set", "lo", "up"])
        return self

    def __exit__(self, *exc):
        # Empty the table here, so the namespace's asynchronous clean-up has
        # nothing left to do while the next measurement runs.
        try:
            subprocess.run(self.tools.adm + ["-C"], capture_output=True)
            if self.iptables:
                subprocess.run([self.iptables, "-t", "nat", "-F"], capture_output=True)
                subprocess.run([self.iptables, "-t", "nat", "-X"], capture_output=True)
        finally:
            from ipvsctl.netlink.netns import setns  # ipvsctl's own (the venv's python)

            try:
                setns(self.home)
            finally:
                os.close(self.home)
        time.sleep(0.3)
        return False


# --------------------------------------------------------------------------
# Deterministic data


def ip(base: int, i: int) -> str:
    n = base + i
    return f"{n >> 24 & 255}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


NET_SVC = 10 << 24 | 16 << 16        # 10.16.0.0/12: restore services
NET_REAL = 10 << 24 | 32 << 16       # 10.32.0.0/12: real servers
NET_BIG = 10 << 24 | 48 << 16        # 10.48.0.0/12: the big service's reals
NET_FILL = 10 << 24 | 64 << 16       # 10.64.0.0/12: filler services
NET_PROBE = 10 << 24 | 80 << 16      # 10.80.0.0/12: services added while timing
NET_POD = 10 << 24 | 96 << 16        # 10.96.0.0/12: endpoints (iptables scenario)


def ip6(net: int, i: int) -> str:
    """The i-th address of IPv6 network fd00:<net>::/32 (net: one of NET_*'s
    second byte), for the tables that mix families."""
    return f"fd00:{net:x}::{i >> 16:x}:{i & 0xffff:x}"


def restore_lines(services: int, dests: int, ipv6_every: int = 0) -> list[str]:
    """services x (1 + dests) lines: -t, a mix of schedulers, -m/-g, -w.
    ``ipv6_every``: the last service of every so many is IPv6, with IPv6
    real servers (a table that mixes families, interleaved)."""
    lines = []
    for i in range(services):
        port = (80, 443, 8080)[i % 3]
        v6 = ipv6_every and i % ipv6_every == ipv6_every - 1
        svc = f"[{ip6(NET_SVC >> 16 & 255, i + 1)}]:{port}" if v6 else f"{ip(NET_SVC, i + 1)}:{port}"
        sched = SCHEDULERS[i % len(SCHEDULERS)]
        persist = " -p 300" if i % 7 == 3 else ""
        lines.append(f"-A -t {svc} -s {sched}{persist}")
        direct = i % 4 == 1            # a quarter of the services use -g
        for j in range(dests):
            real = f"[{ip6(NET_REAL >> 16 & 255, i * dests + j + 1)}]" if v6 else ip(NET_REAL, i * dests + j + 1)
            weight = (j % 5) + (0 if j == dests - 1 and i % 5 == 0 else 1)
            if direct:
                lines.append(f"-a -t {svc} -r {real}:{port} -g -w {weight}")
            else:
                lines.append(f"-a -t {svc} -r {real}:{8000 + j} -m -w {weight}")
    return lines


def with_duplicates(lines: list[str], count: int, seed: int = 4):
    """Insert `count` copies of earlier -a lines, scattered, each after its
    original.  Returns (lines, {line number: expected message})."""
    rng = random.Random(seed)
    adds = [k for k, l in enumerate(lines) if l.startswith("-a ")]
    picks = sorted(rng.sample(adds, count))
    inserts: dict[int, list[str]] = {}
    for k in picks:
        at = min(len(lines), k + 1 + rng.randrange(0, 3000))
        inserts.setdefault(at, []).append(lines[k])
    out, expected = [], {}
    for k in range(len(lines) + 1):
        for dup in inserts.get(k, []):
            out.append(dup)
            expected[len(out)] = "Destination already exists"
        if k < len(lines):
            out.append(lines[k])
    return out, expected


def big_service_lines(dests: int) -> list[str]:
    svc = f"{ip(NET_BIG, 1)}:80"
    lines = [f"-A -t {svc} -s wrr"]
    for j in range(dests):
        lines.append(f"-a -t {svc} -r {ip(NET_BIG, 256 + j)}:8080 -m -w {j % 10 + 1}")
    return lines


def write(path: Path, lines) -> Path:
    path.write_text("".join(l + "\n" for l in lines))
    return path


# --------------------------------------------------------------------------
# Results


def stats(xs):
    return (statistics.median(xs), min(xs), max(xs)) if xs else None


def fmt_t(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 10:
        return f"{x:.1f}s"
    if x >= 1:
        return f"{x:.2f}s"
    if x >= 0.01:
        return f"{x * 1e3:.0f}ms"
    if x >= 0.001:
        return f"{x * 1e3:.1f}ms"
    return f"{x * 1e6:.0f}us"


def fmt_s(xs) -> str:
    s = stats(xs)
    if not s:
        return "-"
    return f"{fmt_t(s[0])} ({fmt_t(s[1])}-{fmt_t(s[2])})"


def render_table(head, rows) -> list[str]:
    table = [list(map(str, head))] + [list(map(str, r)) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    out = []
    for k, row in enumerate(table):
        out.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())
        if k == 0:
            out.append("  ".join("-" * x for x in widths))
    return out


@dataclass
class Row:
    scenario: str
    what: str
    adm: list = field(default_factory=list)
    ctl: list = field(default_factory=list)
    target: str = ""          # e.g. "ctl/adm <= 0.20"
    limit: float | None = None
    verdict: str = "info"
    note: str = ""
    ratio: float | None = None

    def judge(self, limit: float | None = None, ratio: float | None = None):
        if ratio is None and self.adm and self.ctl:
            ratio = statistics.median(self.ctl) / statistics.median(self.adm)
        self.ratio = ratio
        if limit is not None:
            self.limit = limit
            self.verdict = "PASS" if ratio is not None and ratio <= limit else "FAIL"
        return self


@dataclass
class Check:
    scenario: str
    what: str
    ok: bool
    detail: str = ""


class Report:
    def __init__(self):
        self.rows: list[Row] = []
        self.checks: list[Check] = []
        self.notes: list[str] = []
        self.tables: list[dict] = []   # {"title", "head", "rows"}: printed as is

    def table(self, title: str, head, rows):
        self.tables.append({"title": title, "head": list(head),
                            "rows": [list(map(str, r)) for r in rows]})
        for line in render_table(head, rows):
            log("  " + line)

    def row(self, r: Row) -> Row:
        self.rows.append(r)
        ratio = f"{r.ratio:.3f}" if r.ratio is not None else "-"
        log(f"  {r.scenario}: {r.what}: ipvsadm {fmt_s(r.adm)}  ipvsctl {fmt_s(r.ctl)}"
            f"  ratio {ratio}  {r.target} {r.verdict} {r.note}")
        return r

    def check(self, scenario, what, ok, detail=""):
        self.checks.append(Check(scenario, what, bool(ok), detail))
        log(f"  check {scenario}: {what}: {'PASS' if ok else 'FAIL'} {detail}")

    def note(self, text):
        self.notes.append(text)
        log(f"  note: {text}")

    def to_json(self):
        return {"rows": [r.__dict__ for r in self.rows],
                "checks": [c.__dict__ for c in self.checks],
                "notes": self.notes, "tables": self.tables}

    def merge(self, data):
        self.rows = [Row(**r) for r in data["rows"]] + self.rows
        self.checks = [Check(**c) for c in data["checks"]] + self.checks
        self.notes = data["notes"] + self.notes
        self.tables = data.get("tables", []) + self.tables

    def print(self, out=sys.stdout):
        w = out.write
        w("\n== Timings (median (min-max) of the runs; ratio = ipvsctl/ipvsadm "
          "unless the target says otherwise) ==\n")
        head = ("scenario", "what", "ipvsadm", "ipvsctl", "ratio", "target", "result")
        table = []
        for r in self.rows:
            table.append((r.scenario, r.what, fmt_s(r.adm), fmt_s(r.ctl),
                          f"{r.ratio:.3f}" if r.ratio is not None else "-",
                          r.target, r.verdict))
        for line in render_table(head, table):
            w(line + "\n")
        for t in self.tables:
            w(f"\n== {t['title']} ==\n")
            for line in render_table(t["head"], t["rows"]):
                w(line + "\n")
        notes = [r for r in self.rows if r.note]
        if notes:
            w("\nRow notes:\n")
            for r in notes:
                w(f"  {r.scenario} / {r.what}: {r.note}\n")
        if self.checks:
            w("\n== Checks ==\n")
            for c in self.checks:
                w(f"  {'PASS' if c.ok else 'FAIL'}  {c.scenario}: {c.what}"
                  f"{'  (' + c.detail + ')' if c.detail else ''}\n")
        if self.notes:
            w("\n== Notes ==\n")
            for n in self.notes:
                w(f"  - {n}\n")
        fails = [r for r in self.rows if r.verdict == "FAIL"] + \
                [c for c in self.checks if not c.ok]
        passes = [r for r in self.rows if r.verdict == "PASS"] + \
                 [c for c in self.checks if c.ok]
        w(f"\nbench: {len(passes)} passed, {len(fails)} failed\n")


def alternate(i: int):
    """The two tools in turn: ipvsadm first in even runs, ipvsctl in odd ones."""
    return ("adm", "ctl") if i % 2 == 0 else ("ctl", "adm")
