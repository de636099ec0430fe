"""The native model's inputs that only a kernel with IPVS can give.

Run inside the kernel tier (``benchmarks/run --only native-inputs``, which
boots User-Mode Linux); writes ``benchmarks/native/data/``:

* ``uml-inputs.json``: what does not depend on the machine's speed:
  - system calls per unit (``strace -c -f``): ipvsadm per ``-R`` line, per
    listed service (``-Ln``/``-Sn``, 10 real servers each) and per real
    server of one big service; ipvsctl's the same way;
  - ipvsadm's user-space instructions per unit (callgrind ``Ir``);
  each as the difference between a large and a small run of the same kind,
  so start-up drops out.
* ``*.replay.xz``: the kernel's answers to ipvsctl's ``-Ln`` and ``-Sn`` of
  the benchmark tables (replay.py), with the sha256 of ipvsadm's own output
  for the same table, so the host can check the replayed rendering; also of
  that table with every third service IPv6 (``table-mixed-110k``; alone:
  ``uml_inputs.py capture-mixed``).

Each table lives in a fresh network namespace of its own (harness.Netns).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
PROJECT = BENCH.parent
DATA = HERE / "data"
for p in (str(PROJECT), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

import harness as bench  # noqa: E402  (deterministic data, namespaces: bench.py's harness)
from native.replay import Recording, RecordingSocket  # noqa: E402

#: table sizes: (services, real servers each); big: real servers of one service
SMALL, LARGE = (100, 10), (1000, 10)
BIG_SMALL, BIG_LARGE = 2000, 20000
RESTORE_SMALL, RESTORE_LARGE = 1, 1100
FIXTURES = {"table": (10_000, 10), "big": None}
#: the mixed-family table: the same, every third service IPv6 (IPv6 servers)
MIXED_IPV6_EVERY = 3

_STRACE_ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$")
_IR = re.compile(r"I\s+refs:\s+([\d,]+)")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] native-inputs: {msg}", file=sys.stderr, flush=True)


class _Tools:
    adm = ["ipvsadm"]


def run(argv, stdin=None, out=None) -> subprocess.CompletedProcess:
    fin = open(stdin, "rb") if stdin else subprocess.DEVNULL
    try:
        return subprocess.run(argv, stdin=fin, stdout=out or subprocess.DEVNULL,
                              stderr=subprocess.PIPE, check=False)
    finally:
        if stdin:
            fin.close()


def strace_counts(argv, stdin=None) -> dict[str, int]:
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as f:
        r = run(["strace", "-c", "-f", "-o", f.name] + argv, stdin)
        if r.returncode:
            raise SystemExit(f"{argv}: exit {r.returncode}: {r.stderr.decode()[-300:]}")
        counts = {}
        for line in f.read().splitlines():
            m = _STRACE_ROW.match(line)
            if m and m.group(2) != "total":
                counts[m.group(2)] = int(m.group(1))
        return counts


def callgrind_ir(argv, stdin=None) -> int:
    r = run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"] + argv, stdin)
    m = _IR.search(r.stderr.decode(errors="replace"))
    if not m:
        raise SystemExit(f"callgrind {argv}: no instruction count: {r.stderr.decode()[-300:]}")
    return int(m.group(1).replace(",", ""))


def per_unit(small: dict, large: dict, units: int) -> dict[str, float]:
    names = set(small) | set(large)
    out = {n: (large.get(n, 0) - small.get(n, 0)) / units for n in sorted(names)}
    return {n: round(v, 3) for n, v in out.items() if abs(v) >= 0.001}


def load(lines, work: Path, name: str) -> Path:
    path = bench.write(work / name, lines)
    r = run(["ipvsctl", "-R"], path)
    if r.returncode:
        raise SystemExit(f"loading {name}: {r.stderr.decode()[-300:]}")
    return path


def measure_restore(work: Path, res: dict) -> None:
    lines = bench.restore_lines(100, 10)
    assert len(lines) == RESTORE_LARGE
    small = bench.write(work / "r-small.txt", lines[:RESTORE_SMALL])
    large = bench.write(work / "r-large.txt", lines)
    units = RESTORE_LARGE - RESTORE_SMALL
    for tool, argv in (("ipvsadm", ["ipvsadm", "-R"]), ("ipvsctl", ["ipvsctl", "-R"])):
        counts = []
        for path in (small, large):
            with bench.Netns(_Tools):
                counts.append(strace_counts(argv, path))
        res[f"{tool}_restore_syscalls_per_line"] = per_unit(*counts, units)
        res[f"{tool}_restore_syscalls_fixed"] = counts[0]
        log(f"{tool} -R syscalls per line: {sum(res[f'{tool}_restore_syscalls_per_line'].values()):.2f}")
    irs = []
    for path in (small, large):
        with bench.Netns(_Tools):
            irs.append(callgrind_ir(["ipvsadm", "-R"], path))
    res["ipvsadm_restore_ir"] = {"small": irs[0], "large": irs[1], "units": units,
                                 "per_line": round((irs[1] - irs[0]) / units, 1)}
    log(f"ipvsadm -R instructions per line: {res['ipvsadm_restore_ir']['per_line']:.0f}")


def measure_list(work: Path, res: dict) -> None:
    """Per service of 10 real servers (-Ln, -Sn), and per real server of one
    big service (-Ln)."""
    shapes = {"service": (SMALL, LARGE, LARGE[0] - SMALL[0]),
              "big": ((1, BIG_SMALL), (1, BIG_LARGE), BIG_LARGE - BIG_SMALL)}
    for shape, (small, large, units) in shapes.items():
        counts: dict[tuple, dict] = {}
        irs: dict[tuple, int] = {}
        for size in (small, large):
            with bench.Netns(_Tools):
                lines = (bench.restore_lines(*size) if shape == "service"
                         else bench.big_service_lines(size[1]))
                load(lines, work, "t.txt")
                for cmd in ("-Ln", "-Sn"):
                    for tool in ("ipvsadm", "ipvsctl"):
                        counts[(tool, cmd, size)] = strace_counts([tool, cmd])
                    irs[(cmd, size)] = callgrind_ir(["ipvsadm", cmd])
        for cmd in ("-Ln", "-Sn"):
            for tool in ("ipvsadm", "ipvsctl"):
                res[f"{tool}_{cmd[1:]}_syscalls_per_{shape}"] = per_unit(
                    counts[(tool, cmd, small)], counts[(tool, cmd, large)], units)
                res[f"{tool}_{cmd[1:]}_syscalls_fixed_{shape}"] = counts[(tool, cmd, small)]
            res[f"ipvsadm_{cmd[1:]}_ir_{shape}"] = {
                "small": irs[(cmd, small)], "large": irs[(cmd, large)], "units": units,
                "per_unit": round((irs[(cmd, large)] - irs[(cmd, small)]) / units, 1)}
            log(f"ipvsadm {cmd} per {shape}: "
                f"{sum(res[f'ipvsadm_{cmd[1:]}_syscalls_per_{shape}'].values()):.2f} syscalls, "
                f"{res[f'ipvsadm_{cmd[1:]}_ir_{shape}']['per_unit']:.0f} instructions")


def capture(name: str, lines, work: Path) -> dict:
    """Load the table; record ipvsctl's -Ln and -Sn exchanges in-process."""
    from ipvsctl.grammar import parse
    from ipvsctl.netlink.backend import NetlinkBackend
    from ipvsctl.netlink.transport import Transport
    from ipvsctl.ops import execute

    meta = {"name": name, "lines": len(lines), "kernel": os.uname().release,
            "recorded": time.strftime("%Y-%m-%d %H:%M:%S")}
    with bench.Netns(_Tools):
        load(lines, work, f"{name}.txt")
        real = Transport()
        rec = Recording(real.family)
        for cmd in ("-Ln", "-Sn"):
            out = work / "adm.out"
            with open(out, "wb") as f:
                r = run(["ipvsadm", cmd], out=f)
            assert r.returncode == 0, r.stderr
            adm = out.read_bytes()
            sock = RecordingSocket(real.sock, rec)
            backend = NetlinkBackend(transport=Transport(sock=sock, family=real.family))
            backend.info()   # as the command line does first (session.open_backend)
            outcome = execute(parse([cmd]), backend)
            text = "".join(outcome.out) if not isinstance(outcome.out, str) else outcome.out
            ok = text.encode() == adm
            meta[cmd] = {"sha256": hashlib.sha256(adm).hexdigest(), "bytes": len(adm),
                         "lines": adm.count(b"\n"), "ipvsctl_identical": ok,
                         "sends": sock.sends, "recvs": sock.recvs}
            if not ok:
                raise SystemExit(f"capture {name} {cmd}: ipvsctl's output differs from ipvsadm's")
        real.close()
    meta["services"] = sum(1 for l in lines if l.startswith("-A"))
    meta["real_servers"] = sum(1 for l in lines if l.startswith("-a"))
    meta["datagrams"] = rec.datagrams()
    meta["payload_bytes"] = rec.payload_bytes()
    rec.meta = meta
    size = rec.save(DATA / f"{name}.replay.xz")
    log(f"captured {name}: {meta['datagrams']} datagrams, {meta['payload_bytes']} bytes "
        f"-> {size} bytes compressed")
    return meta


def main() -> int:
    if os.geteuid() != 0 or not os.path.exists("/proc/net/ip_vs"):
        os.system("modprobe ip_vs 2>/dev/null")
    DATA.mkdir(parents=True, exist_ok=True)
    res: dict = {"kernel": os.uname().release,
                 "ipvsadm": subprocess.run(["ipvsadm", "--version"], capture_output=True,
                                           text=True).stdout.strip(),
                 "git": subprocess.run(["git", "-C", str(PROJECT), "log", "-1", "--format=%h"],
                                       capture_output=True, text=True).stdout.strip(),
                 "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
                 "sizes": {"restore": [RESTORE_SMALL, RESTORE_LARGE], "service": [SMALL, LARGE],
                           "big": [BIG_SMALL, BIG_LARGE]}}
    only = sys.argv[1:] or ["counts", "capture"]
    with tempfile.TemporaryDirectory(prefix="native-inputs-") as tmp:
        work = Path(tmp)
        if "counts" in only:
            measure_restore(work, res)
            measure_list(work, res)
            (DATA / "uml-inputs.json").write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
        if "capture" in only:
            capture("table-110k", bench.restore_lines(*FIXTURES["table"]), work)
            capture("big-20k", bench.big_service_lines(20_000), work)
        if "capture" in only or "capture-mixed" in only:
            capture("table-mixed-110k", bench.restore_lines(*FIXTURES["table"], ipv6_every=MIXED_IPV6_EVERY), work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
