"""The native rows of benchmarks/run: measured on the host, judged against issue 15.

What runs here (natively; the host kernel has no IPVS):

* start-up: exec -> first netlink message (strace) of `ipvsctl -A/-a/-Ln/
  -Sn/-Lnc` from a regular install (a venv made by `pip install`, bytecode
  compiled at install), against a bare `python -c` of the same venv that
  opens a netlink socket and sends (the floor); ipvsadm's too;
* restore: `ipvsctl restore --dry-run` of the 110,000-line file minus a
  1-line file (per line), in-process (inproc.py dryrun: every step the
  command takes after start-up, the scheduler names checked against a
  fixture /proc/modules, since this host has no IPVS modules and the real
  check refuses them); and the whole -R path minus the kernel, in-process
  (inproc.py restore);
* listing: the recorded kernel answers (data/*.replay.xz) replayed through
  ipvsctl's decoding and rendering (inproc.py replay), per real server;
* nlpattern: ipvsadm's system-call patterns, ipvsctl's round trips and
  batch windows, and a C workload that gives this host's instructions per
  second (its instructions counted by callgrind, natively);
* the model: both tools' native estimates from the above and from the
  kernel tier's counts (data/uml-inputs.json).

Each measurement alternates its variants within a run and reports medians.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent.parent
DATA = HERE / "data"
CACHE = PROJECT / "benchmarks" / ".results" / "native"
SCN = "N native"

#: issue 15's targets
STARTUP_LIMIT = 2.0          # x the bare-Python netlink floor
RESTORE_US = 2.5             # us per line, restore --dry-run
LIST_US = 1.0                # us per real server, decode + render
MIXED = "table-mixed-110k"   # shown beside the judged fixtures, not judged
RESTORE_RATIO = 1 / 3        # ipvsctl -R / ipvsadm -R (>= 3x faster)
LIST_RATIO = 1.0             # ipvsctl -Ln / ipvsadm -Ln (no slower)

STARTUP_CMDS = {
    "-A": ["-A", "-t", "10.0.0.1:80", "-s", "rr"],
    "-a": ["-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2:80", "-m"],
    "-Ln": ["-Ln"],
    "-Sn": ["-Sn"],
    "-Lnc": ["-Lnc"],
}
FLOOR = "import _socket; s = _socket.socket(16, 3, 16); s.sendto(bytes(16), (0, 0))"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] native: {msg}", file=sys.stderr, flush=True)


def med(xs):
    return statistics.median(xs)


# ---------------------------------------------------------------- set-up


def build_nlpattern() -> Path:
    src = HERE / "nlpattern.c"
    exe = CACHE / "nlpattern"
    if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(exe), str(src)], check=True)
    return exe


def _source_key() -> str:
    h = hashlib.sha256()
    files = sorted(p for p in (PROJECT / "ipvsctl").rglob("*.py")) + \
        [PROJECT / "bin" / "ipvsctl", PROJECT / "pyproject.toml"]
    for p in files:
        h.update(str(p.relative_to(PROJECT)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def regular_install(python: str) -> Path:
    """A venv with ipvsctl installed by `pip install` (bytecode compiled by
    pip, the script with its shebang): what a user runs.  Rebuilt when the
    sources change; kept under benchmarks/.results."""
    venv = CACHE / "venv"
    key = _source_key()
    stamp = venv / ".ipvsctl-source"
    if stamp.exists() and stamp.read_text() == key:
        return venv
    log("making a regular install (venv + pip install) of the checkout")
    shutil.rmtree(venv, ignore_errors=True)
    src = CACHE / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    shutil.copytree(PROJECT / "ipvsctl", src / "ipvsctl", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(PROJECT / "bin", src / "bin")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT / name, src / name)
    base = subprocess.run([python, "-c", "import sys; print(sys._base_executable)"],
                          capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(src)],
                       capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"native: pip install of the checkout failed: {r.stderr[-500:]}")
    shutil.rmtree(src, ignore_errors=True)
    stamp.write_text(key)
    return venv


def env_without_dontwrite() -> dict:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


# ---------------------------------------------------------------- measurements


def measure_startup(b, t, venv: Path, reps: int) -> dict:
    """exec -> first netlink message, alternating every command within a rep."""
    strace = shutil.which("strace")
    if not strace:
        return {}
    ctl = str(venv / "bin" / "ipvsctl")
    py = str(venv / "bin" / "python")
    argvs = {"floor": [py, "-c", FLOOR], "ipvsadm -Ln": t.adm + ["-Ln"]}
    argvs.update({f"ipvsctl {k}": [ctl] + v for k, v in STARTUP_CMDS.items()})
    for argv in argvs.values():    # warm the page cache and any bytecode
        b.first_message(strace, argv, 1, t)
    out = {k: [] for k in argvs}
    for i in range(reps):
        order = list(argvs) if i % 2 == 0 else list(reversed(argvs))
        for k in order:
            out[k] += b.first_message(strace, argvs[k], 1, t)
    return out


def inproc(venv: Path, *args) -> dict:
    r = subprocess.run([str(venv / "bin" / "python"), str(HERE / "inproc.py"), *map(str, args)],
                       capture_output=True, text=True, env=env_without_dontwrite())
    if r.returncode:
        raise SystemExit(f"native: inproc.py {args[0]} failed: {r.stderr[-800:]}")
    return json.loads(r.stdout)


def nlpattern(exe: Path, *args) -> float:
    """Microseconds per iteration of one nlpattern run."""
    r = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"native: nlpattern {args}: {r.stderr.strip()}")
    return float(re.search(r"us_per_iteration=([\d.]+)", r.stdout).group(1))


def callgrind_ir(argv) -> int | None:
    if not shutil.which("valgrind"):
        return None
    r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *map(str, argv)],
                       capture_output=True, text=True)
    m = re.search(r"I\s+refs:\s+([\d,]+)", r.stderr)
    return int(m.group(1).replace(",", "")) if m else None


def nlpattern_syscalls(exe: Path, mode: str, units: int = 1000) -> float | None:
    """System calls per iteration of a pattern, natively (strace -c), to hold
    it against ipvsadm's count in the kernel tier."""
    if not shutil.which("strace"):
        return None
    totals = []
    for n in (1, units + 1):
        r = subprocess.run(["strace", "-c", "-f", "-o", "/dev/stdout", str(exe), mode, str(n)],
                           capture_output=True, text=True)
        m = re.search(r"^\s*100\.00\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?total", r.stdout, re.M)
        if not m:
            return None
        totals.append(int(m.group(1)))
    return (totals[1] - totals[0]) / units


# ---------------------------------------------------------------- the scenario


def run(b, t, rep, p, a) -> None:
    """bench.py's `native` scenario (b is the bench module)."""
    quick = a.quick
    reps = max(3, a.runs) if quick else max(5, a.runs)
    inputs_path = DATA / "uml-inputs.json"
    if not inputs_path.exists():
        rep.check(SCN, "kernel-tier inputs present (benchmarks/run --only native-inputs)", False,
                  str(inputs_path))
        return
    uml = json.loads(inputs_path.read_text())
    exe = build_nlpattern()
    venv = regular_install(t.python)
    work = t.work
    inputs: list[tuple[str, str, str]] = []   # (input, value, where and how)

    # -- start-up
    log("start-up: exec -> first netlink message, regular install")
    st = measure_startup(b, t, venv, 5 if quick else p["startup_reps"])
    if st:
        floor = med(st["floor"])
        for cmd in STARTUP_CMDS:
            xs = st[f"ipvsctl {cmd}"]
            r = b.Row(SCN, f"start-up {cmd}: exec -> first netlink message (regular install)",
                      ctl=xs, target=f"ctl/floor <= {STARTUP_LIMIT}")
            r.judge(STARTUP_LIMIT, med(xs) / floor)
            rep.row(r)
        rep.row(b.Row(SCN, "start-up floor: bare `python -c` of that venv, socket + send",
                      ctl=st["floor"], target="(info)"))
        rep.row(b.Row(SCN, "start-up ipvsadm -Ln: exec -> first netlink message",
                      adm=st["ipvsadm -Ln"], target="(info)"))
    else:
        rep.check(SCN, "strace available for the start-up rows", False)

    # -- restore, listing and the system-call patterns, interleaved: each
    # repetition runs every measurement once, so a change in the machine's
    # load (it is shared) hits both sides of every ratio alike.
    lines = b.restore_lines(10_000, 10)
    large = b.write(work / "native-restore.txt", lines)
    small = b.write(work / "native-restore-1.txt", lines[:1])
    # The mixed table (every third service IPv6) is shown, not judged: the
    # issue's targets and the ipvsadm model are for the IPv4 table.
    fixtures = [(f, label, DATA / f"{f}.replay.xz")
                for f, label in (("table-110k", "110k entries"), ("big-20k", "1 service x 20k"),
                                 ("table-mixed-110k", "110k entries, 1/3 IPv6 (info)"))]
    for f, _label, path in fixtures:
        if not path.exists():
            rep.check(SCN, f"fixture {path.name} present (benchmarks/run --only native-inputs)", False)
    fixtures = [x for x in fixtures if x[2].exists()]
    sizes = {}   # ipvsctl's datagrams: the average size each recorded listing received
    for f, _label, path in fixtures:
        from native.replay import Recording
        meta = Recording.load(path).meta
        sizes[f] = int(meta["payload_bytes"] / meta["datagrams"])
    it = 5000 if quick else 20000
    cpu_n = 100_000 if quick else 400_000
    dry = {"small": [], "large": []}
    full = {"small": [], "large": []}
    replays: dict = {}
    pat = {k: [] for k in ("line", "service", "chunk16k", "rt", "batch", "cpu",
                           *(f"chunk {f}" for f in sizes))}
    shape = None
    for i in range(reps):
        log(f"repetition {i + 1} of {reps}: restore --dry-run, -R minus the kernel, "
            "listing replays, nlpattern")
        d = inproc(venv, "dryrun", small, large, 1)
        for k in dry:
            dry[k] += d[k]
        res = inproc(venv, "restore", small, large, 1)
        for k in full:
            full[k] += res[k]
        shape = res["shape"]["large"]
        for f, _label, path in fixtures:
            for cmd in ("-Ln", "-Sn"):
                res = inproc(venv, "replay", path, cmd, 1)
                if (f, cmd) in replays:
                    replays[(f, cmd)]["times"] += res["times"]
                    replays[(f, cmd)]["socket_times"] += res["socket_times"]
                    replays[(f, cmd)]["identical"] &= res["identical"]
                else:
                    replays[(f, cmd)] = res
        windows = shape["sends"]
        per_window_msgs = shape["requests"] / windows
        avg_size = shape["bytes"] / shape["requests"]
        pat["line"].append(nlpattern(exe, "line", it))
        pat["service"].append(nlpattern(exe, "service", it))
        pat["chunk16k"].append(nlpattern(exe, "chunk", it, 16384, 1))
        for f, size in sizes.items():
            pat[f"chunk {f}"].append(nlpattern(exe, "chunk", it, size, 0))
        pat["rt"].append(nlpattern(exe, "rt", it))
        pat["batch"].append(nlpattern(exe, "batch", max(20, it // 100), int(per_window_msgs), int(avg_size)))
        pat["cpu"].append(nlpattern(exe, "cpu", cpu_n))

    dry_per_line = (med(dry["large"]) - med(dry["small"])) / (len(lines) - 1)
    r = b.Row(SCN, f"restore --dry-run: us per line ({len(lines)} lines minus 1 line)",
              ctl=dry["large"], target=f"us/line <= {RESTORE_US}",
              note=f"{dry_per_line * 1e6:.2f} us/line; 1-line file {b.fmt_s(dry['small'])}; "
                   "in-process after start-up: read, parse, validate, encode, names checked "
                   "against data/proc-modules, report")
    r.judge(RESTORE_US, dry_per_line * 1e6)
    rep.row(r)
    full_per_line = (med(full["large"]) - med(full["small"])) / (len(lines) - 1)
    for f, label, _path in fixtures:
        for cmd in ("-Ln", "-Sn"):
            res = replays[(f, cmd)]
            sock_s = med(res["socket_times"])
            own = [max(0.0, t - sock_s) for t in res["times"]]
            per = med(own) / res["real_servers"]
            rep.check(SCN, f"replayed {cmd} of {label} == ipvsadm's output (sha256)", res["identical"])
            r = b.Row(SCN, f"{cmd} {label}: decode + render, us per real server (replay)",
                      ctl=own, target=f"us/server <= {LIST_US}",
                      note=f"{per * 1e6:.2f} us per real server ({res['real_servers']} servers, "
                           f"{res['services']} services; {res['sends']} requests, "
                           f"{res['recvs']} datagrams replayed); the pass took "
                           f"{b.fmt_t(med(res['times']))}, of which the replay socket itself "
                           f"{b.fmt_t(sock_s)} (taken out: it stands in for the kernel)")
            if f == MIXED:
                r.target = "(info)"
                r.judge(None, per * 1e6)
            else:
                r.judge(LIST_US, per * 1e6)
            rep.row(r)

    P = {k: med(v) * 1e-6 for k, v in pat.items()}   # seconds per iteration
    ir_small, ir_large = callgrind_ir([exe, "cpu", 2000]), callgrind_ir([exe, "cpu", 22000])
    if ir_small is None or ir_large is None:
        rep.check(SCN, "callgrind available (instructions per second of this host)", False)
        return
    ir_cpu = (ir_large - ir_small) / 20000
    ips = ir_cpu / P["cpu"]
    sys_line = nlpattern_syscalls(exe, "line")
    sys_service = nlpattern_syscalls(exe, "service")

    # -- the model
    adm_line_sys = sum(uml["ipvsadm_restore_syscalls_per_line"].values())
    adm_ir_line = uml["ipvsadm_restore_ir"]["per_line"]
    adm_line = P["line"] + adm_ir_line / ips
    ctl_batch_per_line = P["batch"] * windows / shape["requests"]
    ctl_line = full_per_line + ctl_batch_per_line
    start_adm = med(st["ipvsadm -Ln"]) if st else 0.0
    start_ctl = {k: med(st[f"ipvsctl {k}"]) for k in STARTUP_CMDS} if st else {}
    r = b.Row(SCN, "model: -R per line (110k-line file)", adm=[adm_line], ctl=[ctl_line],
              target=f"ctl/adm <= {RESTORE_RATIO:.3f} (>= 3x faster)",
              note=f"ipvsadm {adm_line * 1e6:.2f} us = pattern {P['line'] * 1e6:.2f} + "
                   f"{adm_ir_line:.0f} instructions / {ips / 1e9:.2f} G/s; ipvsctl "
                   f"{ctl_line * 1e6:.2f} us = own work {full_per_line * 1e6:.2f} + batch "
                   f"system calls {ctl_batch_per_line * 1e6:.3f}; speed-up {adm_line / ctl_line:.2f}x; "
                   f"110k lines: ipvsadm {b.fmt_t(start_adm + adm_line * len(lines))}, ipvsctl "
                   f"{b.fmt_t(start_ctl.get('-Ln', 0) + ctl_line * len(lines))}")
    r.judge(RESTORE_RATIO)
    rep.row(r)

    for (fixture, cmd), res in sorted(replays.items()):
        if fixture == MIXED:
            continue  # no ipvsadm model for IPv6 entries (its instructions were counted on IPv4)
        meta = res["meta"]
        services, servers = meta["services"], meta["real_servers"]
        key = cmd[1:]
        if fixture == "table-110k":
            per_service = P["service"] + uml[f"ipvsadm_{key}_ir_service"]["per_unit"] / ips
            # GET_INFO and the services dump: one socket and round trips each
            adm = start_adm + 2 * P["service"] + services * per_service
            label = "110k entries"
        else:
            per_dest_chunks = uml[f"ipvsadm_{key}_syscalls_per_big"].get("recvmsg", 0) / 2
            per_dest = per_dest_chunks * P["chunk16k"] + uml[f"ipvsadm_{key}_ir_big"]["per_unit"] / ips
            adm = start_adm + 3 * P["service"] + servers * per_dest
            label = "1 service x 20k"
        extra = max(0, res["recvs"] - res["sends"])
        ctl_sys = res["sends"] * P["rt"] + extra * P[f"chunk {fixture}"]
        own_work = max(0.0, med(res["times"]) - med(res["socket_times"]))  # the replay socket's own time out
        ctl = start_ctl.get(cmd, 0.0) + own_work + ctl_sys
        r = b.Row(SCN, f"model: {cmd} {label}", adm=[adm], ctl=[ctl],
                  target=f"ctl/adm <= {LIST_RATIO:.3f}",
                  note=f"ipvsadm: start {b.fmt_t(start_adm)} + system calls and "
                       f"{'per-service' if fixture == 'table-110k' else 'per-server'} instructions; "
                       f"ipvsctl: start {b.fmt_t(start_ctl.get(cmd, 0.0))} + decode/render "
                       f"{b.fmt_t(own_work)} + {res['sends']} round trips and {extra} more "
                       f"datagrams {b.fmt_t(ctl_sys)}; the kernel's IPVS work is left out for both")
        r.judge(LIST_RATIO)
        rep.row(r)

    # -- inputs, each with where and how it was measured
    us = lambda s: f"{s * 1e6:.2f} us"   # noqa: E731
    spread = lambda k: f"{min(pat[k]):.2f}-{max(pat[k]):.2f} us"   # noqa: E731
    inputs += [
        ("ipvsadm -R: system calls per line", f"{adm_line_sys:.2f}",
         f"UML, strace -c -f, {uml['sizes']['restore'][1]} lines minus 1 line"),
        ("ipvsadm -R: instructions per line (user space)", f"{adm_ir_line:.0f}",
         "UML, callgrind Ir, same two runs"),
        ("ipvsadm -Ln: system calls per service (10 servers)",
         f"{sum(uml['ipvsadm_Ln_syscalls_per_service'].values()):.2f}",
         "UML, strace -c -f, 1000 minus 100 services"),
        ("ipvsadm -Ln / -Sn: instructions per service (10 servers)",
         f"{uml['ipvsadm_Ln_ir_service']['per_unit']:.0f} / {uml['ipvsadm_Sn_ir_service']['per_unit']:.0f}",
         "UML, callgrind Ir, 1000 minus 100 services"),
        ("ipvsadm -Ln / -Sn: instructions per real server (one big service)",
         f"{uml['ipvsadm_Ln_ir_big']['per_unit']:.0f} / {uml['ipvsadm_Sn_ir_big']['per_unit']:.0f}",
         "UML, callgrind Ir, 20000 minus 2000 servers"),
        ("ipvsadm -Ln: received datagrams per real server (one big service)",
         f"{uml['ipvsadm_Ln_syscalls_per_big'].get('recvmsg', 0) / 2:.4f}",
         "UML, strace -c: recvmsg / 2 (peek + read)"),
        ("pattern: ipvsadm -R line (15 system calls, 2 round trips)", us(P["line"]),
         f"host, nlpattern line x{it}, {spread('line')}; "
         f"{sys_line if sys_line is not None else '?'} system calls per line (strace -c), "
         f"UML count without time(): {adm_line_sys - 1:.2f}"),
        ("pattern: ipvsadm -Ln per service", us(P["service"]),
         f"host, nlpattern service x{it}, {spread('service')}; "
         f"{sys_service if sys_service is not None else '?'} system calls (strace -c)"),
        ("pattern: one more 16 KiB chunk, peek + read", us(P["chunk16k"]),
         f"host, nlpattern chunk, {spread('chunk16k')}"),
        ("pattern: ipvsctl round trip (send, one recv)", us(P["rt"]), f"host, nlpattern rt, {spread('rt')}"),
        *((f"pattern: ipvsctl, one more datagram of {size} bytes ({f}'s average)",
           us(P[f"chunk {f}"]), "host, nlpattern chunk (one recv)") for f, size in sizes.items()),
        (f"pattern: ipvsctl batch window ({per_window_msgs:.0f} requests of {avg_size:.0f} bytes)",
         us(P["batch"]), f"host, nlpattern batch (NLMSG_NOOP requests), {spread('batch')}"),
        ("this host: instructions per second (C parsing/formatting workload)",
         f"{ips / 1e9:.2f} G/s", f"{ir_cpu:.0f} Ir per iteration (callgrind, host) / "
         f"{P['cpu'] * 1e6:.3f} us (host, {spread('cpu')})"),
        ("ipvsctl -R own work per line (plan + encode + batch, no kernel)", us(full_per_line),
         f"host, in-process over AckSocket, 110000 minus 1 line, {reps} runs"),
        ("ipvsctl -R windows for 110k lines", f"{windows}", f"{shape['bytes']} bytes sent"),
        ("ipvsctl start-up -A/-a/-Ln/-Sn/-Lnc; floor",
         " / ".join(b.fmt_t(v) for v in start_ctl.values()) + (f"; {b.fmt_t(floor)}" if st else ""),
         "host, strace exec -> first netlink message"),
        ("kernel-tier inputs", f"git {uml.get('git')}", f"{uml.get('kernel')}, {uml.get('measured')}"),
    ]
    rep.table("N native model: inputs (medians)", ("input", "value", "where / how"), inputs)
    rep.note(f"native: {SCN} rows are measured on this host (no IPVS); the model adds "
             "kernel-tier counts (data/uml-inputs.json); see docs/performance.md 'The native model'")
