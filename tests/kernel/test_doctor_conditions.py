"""`ipvsctl doctor` against a real kernel: each condition is set for real
(sysctls of the namespace, the table, sync daemons, an unloaded scheduler
module) and must be reported; a sound director exits 0."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import time
from pathlib import Path

import pytest
from nsutil import NetNS, run_ipvsadm, wait_for

from ipvsctl.commands.group import run_app


def _ipvsadm(ns: NetNS, *args: str) -> str:
    r = run_ipvsadm(ns, *args)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout


def doctor(ns: NetNS | None, *args: str) -> tuple[int, dict]:
    """`ipvsctl doctor --json` in ``ns``: (exit status, {id: [finding, ...]})."""
    out, err = io.StringIO(), io.StringIO()
    ctx = ns.enter() if ns is not None else contextlib.nullcontext()
    with ctx, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = run_app(["doctor", "--json", *args], "ipvsctl")
    doc = json.loads(out.getvalue())
    assert doc["ok"] == (status == 0) and err.getvalue() == ""
    found: dict[str, list] = {}
    for x in doc["findings"]:
        found.setdefault(x["id"], []).append(x)
    return status, found


def _one(found: dict, id: str) -> dict:
    (x,) = found[id]
    return x


def _loaded_modules() -> set[str]:
    return {line.split()[0] for line in Path("/proc/modules").read_text().splitlines()}


def test_a_sound_director_exits_0(netns):
    status, found = doctor(netns)
    assert status == 0
    assert _one(found, "ipvs")["message"].startswith("IPVS 1.2.1 is loaded")
    assert _one(found, "table")["message"] == "no virtual services"
    assert _one(found, "sync-daemons")["status"] == "ok"
    # what it says about each scheduler is what the kernel has
    text = _one(found, "schedulers")["message"]
    loaded = _loaded_modules()
    for name in ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh"):
        assert f"ip_vs_{name}" in loaded  # the guest loads them all
    assert text.startswith("schedulers: loaded: rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh")
    modprobe = Path("/proc/sys/kernel/modprobe").read_text().strip()
    twos = subprocess.run([modprobe, "-n", "-q", "ip_vs_twos"]).returncode == 0
    assert ("loadable on first use: twos" in text) == twos
    assert ("not in this kernel: twos" in text) == (not twos)
    assert _one(found, "persistence-engines")["message"] == "persistence engines: loaded: sip"
    # the plain text: one line per finding, then the count
    out = io.StringIO()
    with netns.enter(), contextlib.redirect_stdout(out):
        assert run_app(["doctor", "--no-color"], "ipvsctl") == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("ok       IPVS 1.2.1 is loaded")
    assert lines[-1].startswith("doctor: 0 problems, ")
    assert "\x1b[" not in out.getvalue()


def test_a_scheduler_that_is_not_loaded_is_loadable():
    """ip_vs_ovf unloaded (no service uses it), then loaded again."""
    name = "ip_vs_ovf"

    def unload():
        return subprocess.run(["rmmod", name], capture_output=True).returncode == 0

    wait_for(unload, timeout=10, interval=0.5, what=f"rmmod {name}")  # a deleted namespace may hold it a moment
    try:
        status, found = doctor(None)
        text = _one(found, "schedulers")["message"]
        assert "loadable on first use: ovf" in text and " ovf " not in text.split(";")[0] + " "
    finally:
        modprobe = Path("/proc/sys/kernel/modprobe").read_text().strip()
        subprocess.run([modprobe, name], check=True)
    assert name in _loaded_modules()


def test_sysctls_are_read_from_the_namespace_and_explained(netns_pair):
    a, b = netns_pair
    for key, value in (("conntrack", 1), ("expire_nodest_conn", 1), ("conn_reuse_mode", 0),
                       ("run_estimation", 0), ("expire_quiescent_template", 1)):
        a.sysctl(f"net.ipv4.vs.{key}", value)
    _ipvsadm(a, "-A", "-t", "192.0.2.1:80", "-s", "rr", "-p", "600")
    _ipvsadm(b, "-A", "-t", "192.0.2.1:80", "-s", "rr", "-p", "600")
    for ns in (a, b):
        ns.ip("link add d0 type dummy", "link set d0 up", "addr add 198.51.100.254/24 dev d0")
        _ipvsadm(ns, "-a", "-t", "192.0.2.1:80", "-r", "198.51.100.1:80", "-g")
    _, fa = doctor(a)
    _, fb = doctor(b)
    assert _one(fa, "conntrack")["message"].startswith("conntrack = 1: conntrack entries are kept")
    assert _one(fb, "conntrack")["message"].startswith("conntrack = 0: connections IPVS handles bypass")
    assert _one(fa, "expire_nodest_conn")["message"].startswith("expire_nodest_conn = 1:")
    assert _one(fb, "expire_nodest_conn")["message"].startswith("expire_nodest_conn = 0:")
    assert _one(fa, "conn_reuse_mode")["message"].startswith("conn_reuse_mode = 0:")
    assert _one(fb, "conn_reuse_mode")["message"].startswith("conn_reuse_mode = 1:")
    assert "every rate is 0" in _one(fa, "run_estimation")["message"]
    assert _one(fb, "run_estimation")["message"].startswith("run_estimation = 1:")
    assert _one(fa, "expire_quiescent_template")["status"] == "ok"
    x = _one(fb, "expire_quiescent_template")
    assert x["status"] == "note" and "up to 600 s" in x["message"]


def test_table_conditions_are_problems_until_fixed(netns):
    ns = netns
    ns.ip("link add d0 type dummy", "link set d0 up", "addr add 198.51.100.254/24 dev d0")
    ns.sysctl("net.ipv4.ip_forward", 0)
    _ipvsadm(ns, "-A", "-t", "192.0.2.1:80", "-s", "rr")           # no real servers
    _ipvsadm(ns, "-A", "-u", "192.0.2.1:53", "-s", "rr")           # all weights 0, NAT
    _ipvsadm(ns, "-a", "-u", "192.0.2.1:53", "-r", "198.51.100.1:53", "-m", "-w", "0")
    _ipvsadm(ns, "-a", "-u", "192.0.2.1:53", "-r", "198.51.100.2:53", "-m", "-w", "0")
    status, found = doctor(ns)
    assert status == 1
    assert _one(found, "empty-service")["message"] == \
        "TCP 192.0.2.1:80 has no real servers: its clients get no answer"
    assert _one(found, "all-weights-zero")["message"].startswith("UDP 192.0.2.1:53: every real server has weight 0")
    x = _one(found, "nat-forwarding")
    assert x["status"] == "problem" and x["message"].startswith(
        "net.ipv4.ip_forward = 0 but UDP 192.0.2.1:53 has NAT (masq) real servers")

    # fix them one by one: each problem goes away
    _ipvsadm(ns, "-a", "-t", "192.0.2.1:80", "-r", "198.51.100.1:80", "-g")
    _ipvsadm(ns, "-e", "-u", "192.0.2.1:53", "-r", "198.51.100.1:53", "-m", "-w", "1")
    status, found = doctor(ns)
    assert "empty-service" not in found and "all-weights-zero" not in found and status == 1
    ns.sysctl("net.ipv4.ip_forward", 1)
    status, found = doctor(ns)
    assert status == 0 and _one(found, "nat-forwarding")["status"] == "ok"
    assert _one(found, "table")["message"] == "2 virtual services, 3 real servers"


def test_sync_daemons_on_one_side_only(netns):
    ns = netns
    ns.ip("link add sync0 type veth peer name sync1", "link set sync0 up", "link set sync1 up")
    try:
        _ipvsadm(ns, "--start-daemon", "master", "--mcast-interface", "sync0", "--syncid", "4")
        status, found = doctor(ns)
        x = _one(found, "sync-daemons")
        assert status == 1 and x["status"] == "problem"
        assert x["message"].startswith("only the master sync daemon runs (on sync0, syncid 4)")
        assert _one(found, "sync_threshold")["message"].startswith("sync_threshold = 3 50:")
        # a director whose failover manager switches the daemons says so
        status, found = doctor(ns, "--ignore", "sync-daemons")
        assert status == 0 and _one(found, "sync-daemons")["ignored"] is True
        _ipvsadm(ns, "--start-daemon", "backup", "--mcast-interface", "sync1", "--syncid", "4")
        status, found = doctor(ns)
        assert status == 0
        assert _one(found, "sync-daemons")["message"].startswith("sync daemons: master (on sync0")
    finally:
        for role in ("master", "backup"):
            run_ipvsadm(ns, "--stop-daemon", role)


def test_doctor_errors():
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert run_app(["doctor", "--netns", "ipvsctl-no-such-ns"], "ipvsctl") == 2
    assert "network namespace 'ipvsctl-no-such-ns' not found" in err.getvalue()
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert run_app(["doctor", "--ignore", "nonsense"], "ipvsctl") == 2
    assert "no finding is called 'nonsense'" in err.getvalue()
