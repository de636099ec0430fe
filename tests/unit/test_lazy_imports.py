"""The plain ipvsadm path stays light: no ipvsadm list mode (nor a change
command) imports rich, click, json or pyroute2, nor the standard library's
costlier corners: socket (its enum classes), dataclasses, functools, re,
enum (docs/design.md "Start-up"; they cost milliseconds to tens of ms
natively and far more under User-Mode Linux).

Each check runs in a fresh interpreter, so what an earlier test imported
cannot hide anything, and inspects sys.modules after the command ran.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("rich", "click", "json", "pyroute2", "socket", "dataclasses", "functools", "re", "enum",
         "prometheus_client")

# A fake backend inside the child: the command's whole path runs except the socket.
CHILD = r"""
import io, sys
from ipvsctl import cli, session, model as m

class Fake:
    def info(self): return m.Info(0x010201, 4096)
    def table(self, counters=True):
        svc = m.Service(m.ServiceKey(m.AF_INET, m.IPPROTO_TCP, "192.0.2.1", 80), stats=m.Stats(1, 2, 3, 4, 5))
        return [(svc, [m.Destination(m.AF_INET, "198.51.100.1", 80, stats=m.Stats())])]
    def service(self, key): return self.table()[0][0]
    def destinations(self, key): return self.table()[0][1]
    def timeouts(self): return m.Timeouts(900, 120, 300)
    def daemons(self): return [m.Daemon(m.DAEMON_MASTER, "eth0", 1)]
    def read_proc_net(self, name):
        return ("Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"
                "TCP C0A80001 1F90 C0000201 0050 C6336401 0050 ESTABLISHED 899\n"
                "UDP 20010DB8000000000000000000000001 0035 C0000201 0035 C6336401 0035 UDP 120 sip abc\n")
    def apply(self, req): pass
    def apply_many(self, reqs): return {}
    def close(self): pass

session.open_backend = lambda netns: Fake()
out, err = io.StringIO(), io.StringIO()
status = cli.run_compat(sys.argv[1:], io.StringIO(""), out, err)
assert status == 0, (status, err.getvalue())
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(%r))
sys.__stdout__.write(repr((heavy, "ipvsctl.commands.group" in sys.modules, out.getvalue())))
""" % (HEAVY,)


def _run(*argv: str):
    r = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    import ast

    return ast.literal_eval(r.stdout)


# Every ipvsadm list mode, with and without -n (without, addresses and ports
# are looked up by name), and the change commands.
LIST_MODES = [[], ["-Ln"], ["-L"], ["-l"], ["-Ln", "--stats"], ["-L", "--stats"], ["-Ln", "--rate"],
              ["-Ln", "--rate", "--exact"], ["-Ln", "--stats", "--exact"], ["-Ln", "--thresholds"],
              ["-Ln", "--persistent-conn"], ["-Ln", "--tun-info"], ["-Ln", "--nosort"],
              ["-Ln", "--sort"], ["-Ln", "-t", "192.0.2.1:80"], ["-L", "-t", "192.0.2.1:80", "--stats"],
              ["-Lnc"], ["-Lc"], ["-Lnc", "--persistent-conn"], ["-L", "-c", "--exact"],
              ["-L", "--timeout"], ["-L", "--daemon"], ["-Sn"], ["-S"]]
CHANGES = [["-A", "-t", "192.0.2.1:80"], ["-a", "-t", "192.0.2.1:80", "-r", "198.51.100.1", "-m"],
           ["-E", "-t", "192.0.2.1:80", "-s", "rr"], ["-Z"], ["-Z", "-t", "0.0.0.0:0"], ["-C"],
           ["--set", "1", "2", "3"], ["--start-daemon", "master"]]


@pytest.mark.parametrize("argv", LIST_MODES + CHANGES, ids=lambda a: " ".join(a) or "(no arguments)")
def test_compat_path_imports_nothing_heavy(argv):
    heavy, app_loaded, out = _run(*argv)
    assert heavy == [], f"ipvsctl {' '.join(argv)} imported {heavy}"
    assert not app_loaded
    if not argv or argv[0][1] in "LlS":
        assert out  # it did list something


def test_netlink_backend_module_imports_nothing_heavy():
    code = ("import sys, ipvsctl.cli, ipvsctl.netlink.backend, ipvsctl.ops, ipvsctl.order; "
            "print(sorted({n.split('.')[0] for n in sys.modules} & set(%r)))" % (HEAVY,))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_metrics_never_imports_prometheus_client():
    """`ipvsctl metrics` writes the format itself (ipvsctl/metrics.py says
    why): prometheus_client is for the tests only."""
    code = CHILD.split("session.open_backend = ")[0] + (
        "session.open_backend = lambda netns: Fake()\n"
        "from ipvsctl.commands.group import run_app\n"
        "import contextlib\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    assert run_app(['metrics'], 'ipvsctl') == 0\n"
        "assert 'ipvs_scrape_success 1' in out.getvalue()\n"
        "sys.__stdout__.write(repr(sorted(n for n in sys.modules if n.startswith('prometheus'))))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "[]"


def test_the_check_would_notice():
    """--json on the same path does load json: the probe sees imports."""
    heavy, _, out = _run("-Ln", "--json")
    assert "json" in heavy  # (json itself imports re, enum, functools)
    assert json.loads(out)["services"][0]["address"] == "192.0.2.1"


# The views without click: `ipvsctl list` / `watch --once` on a plain line.
VIEW_CHILD = CHILD.split("session.open_backend = lambda netns: Fake()")[0] + r"""
session.open_backend = lambda netns: Fake()
out = io.StringIO()
sys.stdout = out
try:
    cli.main(sys.argv[1:])
except SystemExit as e:
    status = e.code
sys.stdout = sys.__stdout__
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(%r))
sys.__stdout__.write(repr((status, heavy, out.getvalue())))
""" % (HEAVY,)


@pytest.mark.parametrize("argv", [["list"], ["ls", "--stats", "--width", "100"], ["list", "-n"],
                                  ["--netns", "x", "list", "--rate", "-X"],
                                  ["watch", "--once", "--interval", "1"]])
def test_views_on_a_plain_line_import_no_click_or_rich(argv):
    r = subprocess.run([sys.executable, "-c", VIEW_CHILD, *argv], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    import ast

    status, heavy, out = ast.literal_eval(r.stdout)
    assert status == 0 and heavy == [], (argv, heavy)
    assert "198.51.100.1:80" in out


def test_views_hand_anything_unusual_to_click():
    r = subprocess.run([sys.executable, "-c", VIEW_CHILD, "list", "--width", "5"],
                       capture_output=True, text=True, timeout=60)
    import ast

    status, heavy, _ = ast.literal_eval(r.stdout)
    # click said what is wrong with --width 5 (click itself brings enum, functools, re)
    assert status == 2 and "click" in heavy and "rich" not in heavy
    assert "Invalid value for '--width'" in r.stderr
