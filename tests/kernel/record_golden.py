"""Record the golden files of the unit tier from a real kernel and the real ipvsadm.

Run inside the kernel tier (User-Mode Linux), once per change of expected
behaviour:

    scripts/record-golden                # = scripts/uml-run -- python tests/kernel/record_golden.py
    scripts/record-golden tunnels names  # only these scenarios

For each scenario a fresh namespace ("ref") gets the scenario's command lines
through the real ipvsadm 1.31; for every line the file keeps ipvsadm's exit
status, stdout and stderr and the kernel's state before and after it, as
the kernel's own netlink answers (tests/support/golden.py has the format).
A twin namespace ("ours") gets the same change lines through ipvsctl, for
the errno the kernel gives ipvsctl's request, and list lines run through
ipvsctl on ref: the recorder says where ipvsctl and ipvsadm differ (beyond
docs/compat.md), and exits 1 then, but the files always hold ipvsadm's
truth.  Outputs are never typed by hand.

Counters: real traffic gives small ones ("traffic"); for the K/M/G/T
formats, "big-counters" runs ipvsadm, and this recorder, under
tests/kernel/golden/counters_shim.c, which rewrites the counters of the
kernel's answers as they are received (see there).
"""

from __future__ import annotations

import io
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
PROJECT = TESTS.parent
for p in (str(PROJECT), str(TESTS), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

SHIM_SRC = HERE / "golden" / "counters_shim.c"
SHIM_VAR = "IPVSCTL_GOLDEN_COUNTERS"


def _ensure_shim() -> None:
    """Run under the counters shim (LD_PRELOAD, inherited by ipvsadm); it
    stays inert until SHIM_VAR is set."""
    if "counters_shim" in os.environ.get("LD_PRELOAD", ""):
        return
    out = Path(tempfile.mkdtemp(prefix="golden-shim-")) / "counters_shim.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", str(out), str(SHIM_SRC), "-ldl"], check=True)
    os.environ["LD_PRELOAD"] = str(out)
    os.execv(sys.executable, [sys.executable, *sys.argv])


if __name__ == "__main__":
    _ensure_shim()

from nsutil import NetNS, delete_many, run_ipvsadm  # noqa: E402
from support.compat import comparable  # noqa: E402
from support.golden import GOLDEN_DIR, Golden, messages, resolver  # noqa: E402
from test_differential import LIST_VIEWS, SCENARIOS  # noqa: E402

from ipvsctl.backend import KernelError  # noqa: E402
from ipvsctl.cli import run_compat  # noqa: E402
from ipvsctl.grammar import ParseError, parse  # noqa: E402
from ipvsctl.netlink import decode, encode, wire  # noqa: E402
from ipvsctl.netlink import constants as C  # noqa: E402
from ipvsctl.netlink.backend import NetlinkBackend  # noqa: E402
from ipvsctl.netlink.transport import Transport  # noqa: E402

# Every list view, for the table each scenario ends with.
VIEWS = [*LIST_VIEWS, "-L", "-S", "-Ln --stats --rate", "-L -n --exact", "--list --numeric --tun-info",
         "-Ln --thresholds --persistent-conn"]

# Scenarios beyond the differential tests' (test_differential.SCENARIOS).
EXTRA = {
    "names": [
        "-A -t 127.0.0.1:80 -s rr", "-A -t localhost:https", "-A -u 127.0.0.1:domain",
        "-a -t 127.0.0.1:http -r 127.0.0.1:8080 -m", "-a -t 127.0.0.1:80 -r 127.0.0.2:ssh -m",
        "-A -t [::1]:80", "-a -t [::1]:80 -r [::1]:443 -m", "-A -f 7",
        "-A --sctp-service 127.0.0.1:80", "-L", "-l", "", "-S", "-L --stats", "-L -t localhost:http",
        "-L --tun-info", "-L --thresholds", "-L -u localhost:53", "-L -t localhost:nosuchservice",
    ],
    # ipvsadm's comparators wrap where fields are 2^31 or more apart.
    "order-wrap": [
        "-A -f 1", "-A -f 2147483647 -s rr", "-A -f 2147483648 -s rr", "-A -f 4294967295 -s wrr",
        "-A -f 3000000000 -6", "-A -f 5 -6",
        "-A -t 10.0.0.1:80", "-A -t 192.168.0.1:80", "-A -t 127.0.0.5:80", "-A -t 128.0.0.5:80",
        "-A -t 255.255.255.254:80", "-A -t 1.1.1.1:65535", "-A -u 10.0.0.1:80", "-A --sctp-service 10.0.0.1:80",
        "-A -t [2001:db8::1]:80", "-A -t [fd00::1]:80", "-A -t [::1]:80",
        *(f"-a -t 10.0.0.1:80 -r {a} -m" for a in ("10.0.0.2:80", "192.168.0.2:80", "127.0.0.9:80",
                                                    "128.0.0.9:80", "10.0.0.2:79", "200.1.1.1:1",
                                                    "55.0.0.1:9")),
        *(f"-a -f 4294967295 -r {a} -g" for a in ("10.1.0.1", "150.1.0.1", "10.1.0.2")),
        "-a -t [2001:db8::1]:80 -r [2001:db8::5]:80 -m", "-a -t [2001:db8::1]:80 -r [fe80::1]:80 -m",
        "-a -t [2001:db8::1]:80 -r [8000::1]:80 -m",
    ],
    # Exactly 2^31 apart: where the wrapping comparators turn over.
    "wrap-boundary-marks": ["-A -f 1", "-A -f 2147483649 -s rr", "-Ln", "-Sn", "-Ln --nosort"],
    "wrap-boundary-addresses": [
        "-A -t 10.20.0.1:80", "-A -t 138.20.0.1:80 -s rr",
        "-a -t 10.20.0.1:80 -r 10.0.0.1:80 -m", "-a -t 10.20.0.1:80 -r 138.0.0.1:80 -m",
        "-A -t 10.30.0.1:80", "-a -t 10.30.0.1:80 -r 138.0.0.1:80 -m", "-a -t 10.30.0.1:80 -r 10.0.0.1:80 -m",
        "-Ln", "-Sn", "-Ln --stats", "-Ln --nosort",
    ],
    # -Z zeroes one service only when the line names a mark, a non-zero
    # address or a port.
    "zero-rules": [
        "-A -t 10.8.0.1:80", "-A -u 10.8.0.2:53", "-A -f 9",
        "-Z -t 0.0.0.0:0", "-Z -u 0.0.0.0:0", "-Z --sctp-service 0.0.0.0:0", "-Z -t 0.0.0.0:80",
        "-Z -t 10.8.0.1:0", "-Z -t 10.8.0.1:80", "-Z -f 9", "-Z -f 10", "-Z -t [::]:0", "-Z",
        "--zero --tcp-service 10.8.0.1:80",
    ],
    # Bad lines as people type them, and lines that look wrong but are not.
    "mistakes": [
        "-A -t 10.9.0.1:80 -s rr", "-a -t 10.9.0.1:80 -r 10.9.1.1:80 -m",
        "-A -t 10.9.0.2", "-A -t 10.9.0.2:80 -s roundrobin", "-A -t 10.9.0.2:80 -s RR",
        "-A -t 10.9.0.1:80 -s rr", "-a -t 10.9.0.1:80 -r 10.9.1.1:80 -m",
        "-a -t 10.9.0.3:80 -r 10.9.1.1:80", "-a -t 10.9.0.1:80 -r 10.9.1.2:80 -w",
        "-a -t 10.9.0.1:80 -r 10.9.1.2:80 -w 1.5", "-a -t 10.9.0.1:80 -r 10.9.1.2:80 -m -g",
        "-A -t 10.9.0.4:80 -p 360s", "-A -t 10.9.0.4:80 -M 24", "-A -t 10.9.0.4:80 -p 60 -M 24",
        "-A -t 10.9.0.4:80 -p 60 -M /24", "-L -t 10.9.0.9:80", "-Ln -t 10.9.0.9:80 --stats",
        "-D -t 10.9.0.9:80", "-E -t 10.9.0.9:80 -s rr", "-d -t 10.9.0.1:80 -r 10.9.1.99:80",
        "-e -t 10.9.0.1:80 -r 10.9.1.99:80 -w 2", "-A -t 10.9.0.5:53 -o",
        "-A -t [2001:db8::9]:80 -p -M 255.255.255.0", "-A -t 2001:db8::9:80", "-A -t [2001:db8::9] -s rr",
        "-A -t 10.9.0.6:80 --scheduler", "-Ln -t", "-L -n -c -t 10.9.0.1:80", "-C -f 1", "--set 900 120",
        "-a -f 1 -r 10.9.1.3:80", "-A -t 10.9.0.7:htttp", "-A -t nosuchhost.invalid.:80",
        "-a -t 10.9.0.1:80 -r 10.9.1.4:80 -m -x 10 -y 20",
        "-a -t 10.9.0.1:80 -r 10.9.1.5:80 -i --tun-type gue --tun-port 70000",
        "-a -t 10.9.0.1:80 -r 10.9.1.5:80 -i --tun-type GUE", "--start-daemon",
        "--stop-daemon backup", "-A -t 10.9.0.8:80 -b sh-port", "-A -t 10.9.0.8:81 -s sh -b sh-port,bogus",
        "-A -t 10.9.0.8:82 -p -1", "-A -u 10.9.0.8:0", "-Z -t 10.9.0.9:80", "-L --stats --rate",
        "-L --thresholds --persistent-conn", "-S -t 10.9.0.1:80", "-A -t 10.9.0.10:80 -s rr -s wrr",
        "-a -t 10.9.0.1:80 -r 10.9.1.6:80 -m -w 2 foo", "-a -t 10.9.0.1:80 -r 10.9.1.7:80 -m -w 70000",
        "-A -t 10.9.0.11:80 -p 60 --pe sip", "-A -t 10.9.0.12:80 -s mh -b mh-port,mh-fallback",
        "-a -t 10.9.0.1:80 -r 10.9.1.8 -m -x -5", "-L -c --thresholds", "-Lnf 1", "-lt 10.9.0.1:80",
        "-A -t 10.9.0.13:80 -p 0", "-e -t 10.9.0.1:80 -r 10.9.1.1:80",
        # ipvsadm (popt) accepts these forms (issue 10 item 3 and 4)
        "-A -t=10.9.0.14:80 -s=rr", "-a -t 10.9.0.1:80 -r=10.9.1.9:80 -m -w=3", "-AL", "-SZ", "-LnC",
        "-Ln",
    ],
    "daemon": [
        "-L --daemon",
        "--start-daemon master --mcast-interface sync0",
        "--start-daemon master --mcast-interface sync0",
        "-L --daemon",
        "--start-daemon backup --mcast-interface sync1 --syncid 7 --sync-maxlen 1200 "
        "--mcast-group 239.1.2.3 --mcast-port 9000 --mcast-ttl 3",
        "-L --daemon", "-Ln --daemon",
        "--stop-daemon master", "--stop-daemon master", "-L --daemon", "--stop-daemon backup",
        "--start-daemon backup --mcast-interface sync1 --mcast-group ff02::1:3", "-L --daemon",
        "--stop-daemon backup", "--start-daemon master --mcast-interface nosuchif", "-L --daemon",
    ],
}

# One service with many real servers in no order, and one whose servers are
# 2^31 apart: the columnar listing and its fall-back.  Loaded with -R in
# both namespaces before recording (a state per line would be megabytes).
MANY_SERVERS = [
    "-A -t 10.10.0.1:80 -s wrr",
    *(f"-a -t 10.10.0.1:80 -r 10.{11 + (i * 37) % 5}.{(i * 53) % 256}.{1 + (i * 97) % 250}:"
      f"{80 + (i * 7) % 3} -m -w {i % 4}" for i in range(240)),
    "-A -t 10.10.0.2:80 -s rr",
    *(f"-a -t 10.10.0.2:80 -r {a}.{i}.0.1:80 -g" for a in (10, 192) for i in range(1, 60, 7)),
]

BIG_COUNTERS = [
    "-A -t 10.12.0.1:80 -s rr", "-a -t 10.12.0.1:80 -r 10.12.1.1:80 -m", "-a -t 10.12.0.1:80 -r 10.12.1.2:80 -m",
    "-a -t 10.12.0.1:80 -r 10.12.1.3:8080 -m", "-A -u 10.12.0.2:53", "-a -u 10.12.0.2:53 -r 10.12.1.4:53 -m",
    "-A -t [2001:db8::12]:443 -s wrr", "-a -t [2001:db8::12]:443 -r [2001:db8::13]:443 -m",
    "-A -f 12", "-a -f 12 -r 10.12.1.5 -g", "-A -f 4000000000 -6", "-A --sctp-service 10.12.0.3:9",
]
BIG_COUNTER_VIEWS = ["-Ln --stats", "-Ln --rate", "-Ln --stats --exact", "-Ln --rate --exact", "-L --stats",
                     "-L --rate", "-Ln -t 10.12.0.1:80 --stats", "-Ln -t 10.12.0.1:80 --rate --exact",
                     "-Ln -f 12 --stats", "-Ln --stats --nosort", "-Ln", "-Ln --persistent-conn"]

TRAFFIC_VIEWS = ["-Ln --stats", "-Ln --stats --exact", "-Ln --rate", "-Ln --rate --exact", "-Ln --persistent-conn",
                 "-Ln", "-Ln --thresholds", "-L --stats", "-Lnc", "-Lc", "-Lnc --persistent-conn",
                 "-L -c -n --exact"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] record-golden: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# The kernel's state, as its raw answers
# ---------------------------------------------------------------------------


def _stable(datagram: bytes) -> bytes:
    """The datagram with every message's seq and port id zeroed: they are the
    recorder's own (replay gives the live ones), and would make every
    reading of the same state look different."""
    out = bytearray(datagram)
    for _t, _f, _s, _p, off in messages(datagram):
        out[off + 8:off + 16] = bytes(8)
    return bytes(out)


class Snapper:
    """Reads a namespace's whole IPVS state as raw netlink datagrams."""

    def __init__(self, ns: NetNS):
        self.ns = ns
        with ns.enter():
            self.t = Transport()
        self.family = self.t.family
        self.seq = 1000
        self.rbuf = bytearray(1 << 16)

    def close(self) -> None:
        self.t.close()

    def exchange(self, msg: bytes, dump: bool) -> list[bytes]:
        self.seq += 2
        seq = self.seq
        buf = bytearray(msg)
        flags = C.NLM_F_REQUEST | (C.NLM_F_DUMP if dump else 0)
        wire.FLAGS_SEQ.pack_into(buf, wire.FLAGS_SEQ_OFFSET, flags, seq)
        if not dump:
            buf += wire.encode_barrier(seq + 1)
        self.t.sock.send(buf)
        out = []
        while True:
            n = self.t.sock.recv_into(self.rbuf, len(self.rbuf))
            d = bytes(self.rbuf[:n])
            msgs = list(messages(d))
            if not dump and all(t == C.NLMSG_ERROR and s == seq + 1 for t, _f, s, _p, _o in msgs):
                return out  # the barrier's ACK
            out.append(_stable(d))
            if dump and any(s == seq and t in (C.NLMSG_DONE, C.NLMSG_ERROR) for t, _f, s, _p, _o in msgs):
                return out

    def state(self, golden: Golden) -> int:
        f = self.family
        services = self.exchange(encode.encode_dump_services(f), True)
        dests = []
        for d in services:
            for t, _f, _s, payload, _o in messages(d):
                if t == f:
                    key = decode.decode_service(payload).key
                    dests.append(self.exchange(encode.encode_dump_dests(f, key), True))
        try:
            with self.ns.enter():
                conns = Path("/proc/thread-self/net/ip_vs_conn").read_text()
        except OSError:
            conns = None
        return golden.add_state(self.exchange(encode.encode_get_info(f), False),
                                self.exchange(encode.encode_get_timeouts(f), False), services, dests,
                                self.exchange(encode.encode_dump_daemons(f), True), conns)


# ---------------------------------------------------------------------------
# Running lines through both tools
# ---------------------------------------------------------------------------


def kind_of(args: list[str]) -> str:
    try:
        cmd = parse(args) if args else None
    except ParseError:
        return "bad"
    return "list" if cmd is None or cmd.name in ("list", "save") else "change"


def ipvsctl_live(ns: NetNS, args: list[str], golden: Golden) -> tuple[tuple, int | None]:
    """ipvsctl in-process in ``ns``; (result, errno of its change request or None)."""
    seen: list[int] = []
    real_apply = NetlinkBackend.apply

    def apply(self, request):
        try:
            real_apply(self, request)
        except KernelError as e:
            seen.append(e.errno)
            raise
        seen.append(0)

    out, err = io.StringIO(), io.StringIO()
    NetlinkBackend.apply = apply
    try:
        with resolver(golden.resolver, record=True), ns.enter():
            status = run_compat(list(args), io.StringIO(""), out, err, prog="ipvsadm")
    finally:
        NetlinkBackend.apply = real_apply
    return (status, out.getvalue(), err.getvalue()), (seen[0] if seen else None)


class Recorder:
    def __init__(self, name: str, ref: NetNS, ours: NetNS | None, note: str = ""):
        self.ref, self.ours = ref, ours
        self.snap = Snapper(ref)
        self.golden = Golden(name, self.snap.family, {
            "kernel": platform.release(),
            "ipvsadm": subprocess.run(["ipvsadm", "-v"], capture_output=True, text=True).stdout.strip(),
            "recorded": time.strftime("%Y-%m-%d"),
            "by": "tests/kernel/record_golden.py",
            **({"note": note} if note else {}),
        })
        self.problems: list[str] = []
        self.current = self.snap.state(self.golden)

    def close(self) -> None:
        self.snap.close()

    def line(self, line: str) -> None:
        args = shlex.split(line)
        with resolver(self.golden.resolver, record=True):
            kind = kind_of(args)
        if kind == "list":
            self._list(args)
        else:
            self._change(args)

    def _check(self, args, want, got) -> None:
        w, g = comparable(args, want, got)
        if w != g:
            self.problems.append(f"$ ipvsadm {shlex.join(args)}\n--- ipvsadm\n{w}\n--- ipvsctl\n{g}")

    def _list(self, args) -> None:
        # Counters and connection timers move: keep a reading only when the
        # state was the same before and after ipvsadm read it.
        for _attempt in range(12):
            before = self.snap.state(self.golden)
            r = run_ipvsadm(self.ref, *args)
            got, _ = ipvsctl_live(self.ref, args, self.golden)
            after = self.snap.state(self.golden)
            if before == after:
                break
            time.sleep(0.15)
        else:
            self.problems.append(f"$ ipvsadm {shlex.join(args)}: the state never held still")
        want = (r.returncode, r.stdout, r.stderr)
        self._check(args, want, got)
        self.golden.steps.append({"argv": args, "status": r.returncode, "stdout": r.stdout,
                                  "stderr": r.stderr, "state": before})
        self.current = after

    def _change(self, args) -> None:
        before = self.current
        r = run_ipvsadm(self.ref, *args)
        after = self.current = self.snap.state(self.golden)
        want = (r.returncode, r.stdout, r.stderr)
        if self.ours is not None:
            got, errno = ipvsctl_live(self.ours, args, self.golden)
            self._check(args, want, got)
        else:  # a set-up line of a scenario without a twin: it must succeed
            if r.returncode:
                self.problems.append(f"set-up line {shlex.join(args)} failed: {r.stderr}")
            errno = 0
        self.golden.steps.append({"argv": args, "status": r.returncode, "stdout": r.stdout,
                                  "stderr": r.stderr, "before": before, "state": after, "errno": errno})

    def save(self) -> int:
        return self.golden.save(GOLDEN_DIR / f"{self.golden.name}.json")


def _sync_links(*spaces: NetNS) -> None:
    for ns in spaces:
        ns.ip("link add sync0 type veth peer name sync1", "link set sync0 up", "link set sync1 up")


def _many_servers(*spaces: NetNS) -> None:
    for ns in spaces:
        r = run_ipvsadm(ns, "-R", input="\n".join(MANY_SERVERS) + "\n")
        assert r.returncode == 0, r.stderr


def record_pair(name: str, lines: list[str], prepare=None, note: str = "", counters: bool = False) -> list[str]:
    ref, ours = NetNS.create_many([f"{name[:6]}-ref", f"{name[:6]}-ours"])
    rec = None
    try:
        if prepare:
            prepare(ref, ours)
        rec = Recorder(name, ref, ours, note)
        for line in lines:
            if counters and not line.startswith("-"):
                continue
            rec.line(line)
        if counters:
            os.environ[SHIM_VAR] = str(rec.golden.family)
            try:
                for view in BIG_COUNTER_VIEWS:
                    rec.line(view)
            finally:
                del os.environ[SHIM_VAR]
        if name == "daemon":
            for ns in (ref, ours):
                run_ipvsadm(ns, "--stop-daemon", "master")
                run_ipvsadm(ns, "--stop-daemon", "backup")
        size = rec.save()
        log(f"{name}: {len(rec.golden.steps)} lines, {len(rec.golden.states)} states, {size} bytes")
        return rec.problems
    finally:
        if rec:
            rec.close()
        delete_many([ref, ours])


def record_traffic() -> list[str]:
    from topology import Topology

    with Topology(backends=3) as topo:
        vip = f"{topo.vip}:80"
        lines = [f"-A -t {vip} -s rr -p 30", *(f"-a -t {vip} -r {a}:80 -m" for a in topo.backend_addrs),
                 f"-A -t [{topo.vip6}]:80 -s wrr",
                 *(f"-a -t [{topo.vip6}]:80 -r [{a}]:80 -m -w {i + 1}" for i, a in enumerate(topo.backend_addrs6))]
        rec = Recorder("traffic", topo.director, None, "real HTTP traffic: 30 IPv4 and 12 IPv6 requests")
        try:
            for line in lines:
                rec.line(line)
            assert sum(topo.get(30).values()) == 30
            assert sum(topo.get(12, family=6).values()) == 12
            time.sleep(2.5)  # the estimator folds per-CPU counters in on its 2 s tick
            for view in TRAFFIC_VIEWS:
                rec.line(view)
            size = rec.save()
            log(f"traffic: {len(rec.golden.steps)} lines, {len(rec.golden.states)} states, {size} bytes")
            return rec.problems
        finally:
            rec.close()


def scenarios() -> dict:
    out = {name: (lines + VIEWS, None, "") for name, lines in SCENARIOS.items()}
    for name, lines in EXTRA.items():
        views = [] if name in ("names", "daemon", "mistakes") or name.startswith("wrap-") else VIEWS
        # No routes in these namespaces: without -n every address is looked
        # up, and a route to the resolver's server would make each look-up
        # wait for its timeout instead of failing at once.
        out[name] = (lines + views, _sync_links if name == "daemon" else None, "")
    out["many-servers"] = (["-Ln", "-Sn", "-Ln --nosort", "-Ln -t 10.10.0.1:80", "-Ln -t 10.10.0.2:80 --thresholds",
                            "-e -t 10.10.0.1:80 -r 10.11.0.1:80 -m -w 9", "-d -t 10.10.0.2:80 -r 192.1.0.1:80",
                            "-Ln", "-Sn", "-L -t 10.10.0.2:80", "-Ln --tun-info -t 10.10.0.2:80"],
                           _many_servers, "table loaded with ipvsadm -R before recording")
    out["big-counters"] = (BIG_COUNTERS, None,
                           "counters rewritten on receipt by tests/kernel/golden/counters_shim.c")
    out["traffic"] = None
    return out


def main(argv: list[str]) -> int:
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    table = scenarios()
    wanted = argv or list(table)
    unknown = [n for n in wanted if n not in table]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(table)}", file=sys.stderr)
        return 2
    problems: list[str] = []
    for name in wanted:
        log(f"recording {name}")
        if name == "traffic":
            problems += record_traffic()
        else:
            lines, prepare, note = table[name]
            problems += record_pair(name, lines, prepare, note, counters=name == "big-counters")
    for p in problems:
        print(p + "\n", file=sys.stderr)
    log(f"{len(wanted)} scenario(s) recorded; ipvsctl differed from ipvsadm on {len(problems)} line(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
